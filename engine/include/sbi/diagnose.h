/* Calibration diagnostics of posterior estimators (docs/diagnostics.md).
 *
 * A test set (theta_i, x_i) comes from the prior and the simulator. For
 * every test point the estimator's posterior q(theta | x_i) is sampled and
 * three statistics are kept:
 *   hpd rank   the fraction of draws whose log density exceeds that of
 *              theta_i (expected coverage, Cannon et al. 2022): theta_i lies
 *              in the 1 - a highest-density region iff rank < 1 - a;
 *   sbc ranks  per parameter, the number of draws below theta_i (SBC,
 *              Talts et al. 2018);
 *   tarp       the fraction of draws closer to a reference point than
 *              theta_i (TARP, Lemos et al. 2023), distances scaled per
 *              parameter.
 *
 * sbi_diag_test_point computes them for one test point from a model file
 * (every caller loads its own copy, so test points may run in parallel
 * threads) with randomness from streams of (seed, test index) only: results
 * do not depend on the order or the thread a test point runs in.
 *
 * Densities: NPE evaluates the flow q(theta | x_i) on draws kept inside the
 * prior's support; NLE and NRE sample the unnormalized posterior
 * log p(theta) + log q(x_i | theta) (NLE) or log p(theta) + log r(theta, x_i)
 * (NRE) by slice sampling and rank by that same unnormalized density (the
 * constant does not change the ranks). */
#ifndef SBI_DIAGNOSE_H
#define SBI_DIAGNOSE_H

#include <stddef.h>
#include <stdint.h>

#include "sbi/err.h"
#include "sbi/prior.h"

/* The estimators whose test-set posteriors the engine samples itself. */
typedef enum sbi_diag_kind {
	SBI_DIAG_NPE, /* flow q(theta | x) */
	SBI_DIAG_NLE, /* flow q(x | theta), MCMC */
	SBI_DIAG_NRE, /* classifier log r(theta, x), MCMC */
} sbi_diag_kind;

/* What every test point shares (all borrowed). */
typedef struct sbi_diag_spec {
	sbi_diag_kind kind;
	const unsigned char *model; /* the model file */
	size_t model_len;
	const sbi_prior *prior;
	const double *theta; /* ntests x d */
	const double *x;     /* ntests x dx, on the estimator's scale */
	const double *ref;   /* ntests x d TARP reference points */
	const double *scale; /* d: TARP's distance scale per parameter */
	size_t ntests, d, dx, nsamples;
	uint64_t seed;
	size_t chains, warmup, thin, candidates; /* NLE, NRE: the slice sampler */
} sbi_diag_spec;

/* What one test point yields. */
typedef struct sbi_diag_point {
	double hpd;   /* hpd rank in [0, 1] */
	double tarp;  /* TARP fraction in [0, 1] */
	double rhat;  /* NLE, NRE: the largest split R-hat of its chains; NaN for NPE */
	double *sbc;  /* d ranks in 0..nsamples (caller's buffer) */
} sbi_diag_point;

/* Per-thread state: a loaded model, its tape, a generator and buffers.
 * Caller frees with sbi_diag_worker_free; NULL with err set on failure. */
typedef struct sbi_diag_worker sbi_diag_worker;
sbi_diag_worker *sbi_diag_worker_alloc(const sbi_diag_spec *s, sbi_err *err);
void sbi_diag_worker_free(sbi_diag_worker *w); /* NULL is fine */

/* Test point i (0-based). NPE draws from stream (seed, SBI_STREAM_DIAG, i);
 * NLE and NRE choose their chains' starts among `candidates` prior draws
 * from that stream and sample with the streams of round i + 1 (mcmc.h).
 * SBI_EINVAL when fewer than 1% of NPE's draws fall inside the prior. */
int sbi_diag_test_point(sbi_diag_worker *w, size_t i, sbi_diag_point *out, sbi_err *err);

/* The fraction of the n values lq[] strictly above lq_true. */
double sbi_diag_hpd_rank(const double *lq, size_t n, double lq_true);

/* The band a calibrated estimator's empirical coverage at level p lies in
 * with probability conf (e.g. 0.95) over n test points: the (1 - conf) / 2
 * and (1 + conf) / 2 quantiles of Binomial(n, p), divided by n. */
void sbi_diag_binomial_band(double p, size_t n, double conf, double *lo, double *hi);

/* The upper-tail p-value of Pearson's chi-square test that counts[] (nbins
 * bins) are uniform; 1 when every count is zero. */
double sbi_diag_chi2_uniform_p(const double *counts, size_t nbins);

/* The p-value of the one-sample Kolmogorov-Smirnov test that the n values
 * u[] (sorted in place) are uniform on [0, 1] (asymptotic distribution with
 * Stephens' correction). */
double sbi_diag_ks_uniform_p(double *u, size_t n);

#endif
