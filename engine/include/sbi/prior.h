/* Prior distributions over parameter vectors, built on GSL.
 *
 * Every prior can draw a sample, evaluate its log density and test whether a
 * point lies in its support. Constructors validate their parameters and,
 * on bad input, return NULL with a message naming the prior and the field,
 * e.g. "prior.uniform: high[2] = 0.5 must be greater than low[2] = 1". */
#ifndef SBI_PRIOR_H
#define SBI_PRIOR_H

#include <stddef.h>
#include <gsl/gsl_rng.h>

#include "sbi/err.h"

typedef enum sbi_prior_kind {
	SBI_PRIOR_UNIFORM,     /* independent U(low_i, high_i) */
	SBI_PRIOR_NORMAL,      /* independent N(mean_i, std_i^2) */
	SBI_PRIOR_MVN,         /* N(mean, cov), full covariance */
	SBI_PRIOR_LOGNORMAL,   /* independent, log theta_i ~ N(mu_i, sigma_i^2) */
	SBI_PRIOR_GAMMA,       /* independent Gamma(shape_i, scale_i) */
	SBI_PRIOR_BETA,        /* independent Beta(a_i, b_i) */
	SBI_PRIOR_EXPONENTIAL, /* independent Exp(rate_i) */
	SBI_PRIOR_JOINT,       /* concatenation of independent blocks */
} sbi_prior_kind;

typedef struct sbi_prior sbi_prior;

/* Constructors. Arrays have dim entries (cov has dim*dim, row-major) and
 * are copied. The result is freed with sbi_prior_free; NULL with err set on
 * bad parameters (SBI_EINVAL) or out of memory (SBI_ENOMEM). */
sbi_prior *sbi_prior_uniform_alloc(size_t dim, const double *low, const double *high, sbi_err *err);
sbi_prior *sbi_prior_normal_alloc(size_t dim, const double *mean, const double *std, sbi_err *err);
sbi_prior *sbi_prior_mvn_alloc(size_t dim, const double *mean, const double *cov, sbi_err *err);
sbi_prior *sbi_prior_lognormal_alloc(size_t dim, const double *mu, const double *sigma, sbi_err *err);
sbi_prior *sbi_prior_gamma_alloc(size_t dim, const double *shape, const double *scale, sbi_err *err);
sbi_prior *sbi_prior_beta_alloc(size_t dim, const double *a, const double *b, sbi_err *err);
sbi_prior *sbi_prior_exponential_alloc(size_t dim, const double *rate, sbi_err *err);

/* A joint prior of nblocks independent blocks, in order. Takes ownership of
 * blocks[0..nblocks-1] (they are freed with the joint prior, or at once on
 * failure); the array itself stays the caller's. */
sbi_prior *sbi_prior_joint_alloc(size_t nblocks, sbi_prior **blocks, sbi_err *err);

void sbi_prior_free(sbi_prior *p); /* NULL is fine */

sbi_prior_kind sbi_prior_kind_of(const sbi_prior *p);
const char *sbi_prior_kind_name(sbi_prior_kind kind); /* "uniform", ... */
size_t sbi_prior_dim(const sbi_prior *p);

/* Draws one sample into theta[0..dim-1]. */
void sbi_prior_sample(const sbi_prior *p, gsl_rng *r, double *theta);

/* log p(theta); -INFINITY outside the support. */
double sbi_prior_log_density(const sbi_prior *p, const double *theta);

/* 1 when theta is in the support (density > 0), else 0. */
int sbi_prior_in_support(const sbi_prior *p, const double *theta);

/* Exact mean and marginal variance of every component (for tests and
 * standardization). */
void sbi_prior_mean(const sbi_prior *p, double *mean);
void sbi_prior_variance(const sbi_prior *p, double *var);

/* A canonical text description (kind and every parameter printed with %a, so
 * it is exact) written to buf like snprintf; used for cache keys. Returns the
 * length the full text needs. */
size_t sbi_prior_describe(const sbi_prior *p, char *buf, size_t n);

#endif
