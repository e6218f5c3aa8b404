/* Prior distributions over parameter vectors (see prior.h).
 *
 * The independent kinds (uniform, normal, lognormal, gamma, beta,
 * exponential) keep two parameter vectors and, per component, the log of
 * the normalizing constant, so that a log density costs a few flops per
 * component. The multivariate normal keeps its mean, the covariance as
 * given, the Cholesky factor L of the covariance (a sample is mean + L z)
 * and L^-1 (the log density needs |L^-1 (x - mean)|^2; with L^-1 stored
 * the triangular solve needs no scratch vector, so a prior can be shared
 * by threads). A joint prior owns its blocks and delegates to them. Nothing
 * is allocated after construction.
 *
 * Supports are closed where the density has a finite limit at the boundary:
 * uniform [low, high], gamma and exponential [0, inf), beta [0, 1];
 * lognormal is (0, inf). At a boundary point where the density is zero or
 * unbounded (beta with a != 1 at 0 or b != 1 at 1, gamma with shape != 1 at
 * 0) the log density is -INFINITY: the point has probability zero, and an
 * infinite log density would poison importance weights downstream. The log
 * density is never NaN. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sf_gamma.h>

#include "sbi/alloc.h"
#include "sbi/prior.h"

#define LOG_2PI 1.83787706640934548356065947281123527
#define NUM_MAX 40

struct sbi_prior {
	sbi_prior_kind kind;
	size_t dim;
	double *data;            /* the one allocation behind the vectors below */
	double *p1, *p2;         /* parameter vectors; p2 is NULL for exponential and mvn */
	double *lc;              /* per component: log normalizing constant */
	double *cov, *chol, *chol_inv; /* mvn: dim x dim, row-major; p1 is the mean */
	double lc_total;         /* mvn: log normalizing constant */
	size_t nblocks;          /* joint */
	sbi_prior **blocks;
};

static const struct {
	const char *name;
	const char *field[2];
} kinds[] = {
	[SBI_PRIOR_UNIFORM] = { "uniform", { "low", "high" } },
	[SBI_PRIOR_NORMAL] = { "normal", { "mean", "std" } },
	[SBI_PRIOR_MVN] = { "mvn", { "mean", "cov" } },
	[SBI_PRIOR_LOGNORMAL] = { "lognormal", { "mu", "sigma" } },
	[SBI_PRIOR_GAMMA] = { "gamma", { "shape", "scale" } },
	[SBI_PRIOR_BETA] = { "beta", { "a", "b" } },
	[SBI_PRIOR_EXPONENTIAL] = { "exponential", { "rate", NULL } },
	[SBI_PRIOR_JOINT] = { "joint", { NULL, NULL } },
};

/* ---- messages ---- */

/* x in the shortest %g form that reads back as x, for messages. */
static const char *
num(char buf[NUM_MAX], double x)
{
	for (int prec = 6; prec < 17 && isfinite(x); prec++) {
		snprintf(buf, NUM_MAX, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			return buf;
	}
	snprintf(buf, NUM_MAX, "%.17g", x);
	return buf;
}

static int
check_finite(sbi_prior_kind kind, int f, size_t dim, const double *x, sbi_err *err)
{
	const char *name = kinds[kind].name, *field = kinds[kind].field[f];
	char b[NUM_MAX];

	if (x == NULL)
		return sbi_err_set(err, SBI_EINVAL, "prior.%s: %s is missing", name, field);
	for (size_t i = 0; i < dim; i++)
		if (!isfinite(x[i]))
			return sbi_err_set(err, SBI_EINVAL, "prior.%s: %s[%zu] = %s must be a finite number",
			    name, field, i + 1, num(b, x[i]));
	return 0;
}

static int
check_positive(sbi_prior_kind kind, int f, size_t dim, const double *x, sbi_err *err)
{
	char b[NUM_MAX];
	int rc = check_finite(kind, f, dim, x, err);

	for (size_t i = 0; rc == 0 && i < dim; i++)
		if (!(x[i] > 0))
			rc = sbi_err_set(err, SBI_EINVAL, "prior.%s: %s[%zu] = %s must be positive",
			    kinds[kind].name, kinds[kind].field[f], i + 1, num(b, x[i]));
	return rc;
}

static int
check_bounds(size_t dim, const double *low, const double *high, sbi_err *err)
{
	char b1[NUM_MAX], b2[NUM_MAX];

	for (size_t i = 0; i < dim; i++) {
		if (!(high[i] > low[i]))
			return sbi_err_set(err, SBI_EINVAL,
			    "prior.uniform: high[%zu] = %s must be greater than low[%zu] = %s",
			    i + 1, num(b1, high[i]), i + 1, num(b2, low[i]));
		if (!isfinite(high[i] - low[i]))
			return sbi_err_set(err, SBI_EINVAL,
			    "prior.uniform: high[%zu] - low[%zu] is too large", i + 1, i + 1);
	}
	return 0;
}

static int
check_dim(sbi_prior_kind kind, size_t dim, sbi_err *err)
{
	if (dim == 0)
		return sbi_err_set(err, SBI_EINVAL, "prior.%s: dim must be at least 1",
		    kinds[kind].name);
	return 0;
}

/* Validates the parameters of an independent kind. */
static int
check_params(sbi_prior_kind kind, size_t dim, const double *p1, const double *p2, sbi_err *err)
{
	int pos1 = kind == SBI_PRIOR_GAMMA || kind == SBI_PRIOR_BETA ||
	    kind == SBI_PRIOR_EXPONENTIAL;
	int rc = check_dim(kind, dim, err);

	if (rc == 0)
		rc = pos1 ? check_positive(kind, 0, dim, p1, err) : check_finite(kind, 0, dim, p1, err);
	if (rc == 0 && kind == SBI_PRIOR_UNIFORM)
		rc = check_finite(kind, 1, dim, p2, err);
	else if (rc == 0 && kinds[kind].field[1] != NULL)
		rc = check_positive(kind, 1, dim, p2, err);
	if (rc == 0 && kind == SBI_PRIOR_UNIFORM)
		rc = check_bounds(dim, p1, p2, err);
	return rc;
}

static int
check_cov(size_t dim, const double *cov, sbi_err *err)
{
	char b1[NUM_MAX], b2[NUM_MAX];

	if (cov == NULL)
		return sbi_err_set(err, SBI_EINVAL, "prior.mvn: cov is missing");
	for (size_t i = 0; i < dim; i++) {
		for (size_t j = 0; j < dim; j++) {
			double x = cov[i * dim + j], y = cov[j * dim + i];
			if (!isfinite(x))
				return sbi_err_set(err, SBI_EINVAL,
				    "prior.mvn: cov[%zu][%zu] = %s must be a finite number",
				    i + 1, j + 1, num(b1, x));
			if (fabs(x - y) > 1e-12 * fmax(fabs(x), fabs(y)))
				return sbi_err_set(err, SBI_EINVAL,
				    "prior.mvn: cov is not symmetric (cov[%zu][%zu] = %s, cov[%zu][%zu] = %s)",
				    i + 1, j + 1, num(b1, x), j + 1, i + 1, num(b2, y));
		}
	}
	return 0;
}

/* ---- construction ---- */

/* The number of doubles behind a prior of kind and dim; 0 on overflow. */
static size_t
data_len(sbi_prior_kind kind, size_t dim)
{
	size_t max = SIZE_MAX / sizeof(double);

	if (kind != SBI_PRIOR_MVN)
		return dim <= max / 3 ? 3 * dim : 0;
	if (dim > max / dim || dim * dim > (max - dim) / 3)
		return 0;
	return dim + 3 * dim * dim;
}

static sbi_prior *
new_prior(sbi_prior_kind kind, size_t dim, sbi_err *err)
{
	size_t len = data_len(kind, dim);
	sbi_prior *p = NULL;

	if (len != 0 && (p = sbi_calloc(1, sizeof *p)) != NULL &&
	    (p->data = sbi_calloc(len, sizeof(double))) == NULL) {
		sbi_free(p);
		p = NULL;
	}
	if (p == NULL) {
		sbi_err_set(err, SBI_ENOMEM, "prior.%s: out of memory (dim = %zu)",
		    kinds[kind].name, dim);
		return NULL;
	}
	p->kind = kind;
	p->dim = dim;
	return p;
}

/* The log normalizing constant of one component; NaN when it cannot be
 * represented. GSL's error handler must be off. */
static double
log_norm(sbi_prior_kind kind, double a, double b)
{
	gsl_sf_result r;

	switch (kind) {
	case SBI_PRIOR_UNIFORM:
		return -log(b - a);
	case SBI_PRIOR_NORMAL:
	case SBI_PRIOR_LOGNORMAL:
		return -log(b) - 0.5 * LOG_2PI;
	case SBI_PRIOR_GAMMA:
		if (gsl_sf_lngamma_e(a, &r) != GSL_SUCCESS)
			return NAN;
		return -r.val - a * log(b);
	case SBI_PRIOR_BETA:
		if (gsl_sf_lnbeta_e(a, b, &r) != GSL_SUCCESS)
			return NAN;
		return -r.val;
	case SBI_PRIOR_EXPONENTIAL:
		return log(a);
	default:
		return NAN;
	}
}

static int
fill_log_norms(sbi_prior *p, sbi_err *err)
{
	const char *name = kinds[p->kind].name;
	char b1[NUM_MAX], b2[NUM_MAX];
	gsl_error_handler_t *old = gsl_set_error_handler_off();
	int rc = 0;

	for (size_t i = 0; i < p->dim && rc == 0; i++) {
		double a = p->p1[i], b = p->p2 ? p->p2[i] : 0;
		p->lc[i] = log_norm(p->kind, a, b);
		if (!isfinite(p->lc[i]) && p->p2 != NULL)
			rc = sbi_err_set(err, SBI_EINVAL,
			    "prior.%s: %s[%zu] = %s and %s[%zu] = %s are out of range", name,
			    kinds[p->kind].field[0], i + 1, num(b1, a),
			    kinds[p->kind].field[1], i + 1, num(b2, b));
		else if (!isfinite(p->lc[i]))
			rc = sbi_err_set(err, SBI_EINVAL, "prior.%s: %s[%zu] = %s is out of range",
			    name, kinds[p->kind].field[0], i + 1, num(b1, a));
	}
	gsl_set_error_handler(old);
	return rc;
}

static sbi_prior *
indep_alloc(sbi_prior_kind kind, size_t dim, const double *p1, const double *p2, sbi_err *err)
{
	if (check_params(kind, dim, p1, p2, err) != 0)
		return NULL;
	sbi_prior *p = new_prior(kind, dim, err);
	if (p == NULL)
		return NULL;
	p->p1 = p->data;
	p->lc = p->data + dim;
	memcpy(p->p1, p1, dim * sizeof(double));
	if (p2 != NULL) {
		p->p2 = p->data + 2 * dim;
		memcpy(p->p2, p2, dim * sizeof(double));
	}
	if (fill_log_norms(p, err) != 0) {
		sbi_prior_free(p);
		return NULL;
	}
	return p;
}

sbi_prior *
sbi_prior_uniform_alloc(size_t dim, const double *low, const double *high, sbi_err *err)
{
	return indep_alloc(SBI_PRIOR_UNIFORM, dim, low, high, err);
}

sbi_prior *
sbi_prior_normal_alloc(size_t dim, const double *mean, const double *std, sbi_err *err)
{
	return indep_alloc(SBI_PRIOR_NORMAL, dim, mean, std, err);
}

sbi_prior *
sbi_prior_lognormal_alloc(size_t dim, const double *mu, const double *sigma, sbi_err *err)
{
	return indep_alloc(SBI_PRIOR_LOGNORMAL, dim, mu, sigma, err);
}

sbi_prior *
sbi_prior_gamma_alloc(size_t dim, const double *shape, const double *scale, sbi_err *err)
{
	return indep_alloc(SBI_PRIOR_GAMMA, dim, shape, scale, err);
}

sbi_prior *
sbi_prior_beta_alloc(size_t dim, const double *a, const double *b, sbi_err *err)
{
	return indep_alloc(SBI_PRIOR_BETA, dim, a, b, err);
}

sbi_prior *
sbi_prior_exponential_alloc(size_t dim, const double *rate, sbi_err *err)
{
	return indep_alloc(SBI_PRIOR_EXPONENTIAL, dim, rate, NULL, err);
}

/* inv = L^-1 for the lower triangular d x d matrix l (row-major). */
static void
invert_lower(size_t d, const double *l, double *inv)
{
	memset(inv, 0, d * d * sizeof *inv);
	for (size_t j = 0; j < d; j++) {
		inv[j * d + j] = 1.0 / l[j * d + j];
		for (size_t i = j + 1; i < d; i++) {
			double s = 0;
			for (size_t k = j; k < i; k++)
				s += l[i * d + k] * inv[k * d + j];
			inv[i * d + j] = -s / l[i * d + i];
		}
	}
}

static int
all_finite(size_t n, const double *x)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}

/* Fills chol, chol_inv and lc_total from cov; -1 when cov is not
 * (numerically) positive definite. */
static int
factor(sbi_prior *p)
{
	size_t d = p->dim;
	double logdet = 0;
	gsl_matrix_view m = gsl_matrix_view_array(p->chol, d, d);

	memcpy(p->chol, p->cov, d * d * sizeof(double));
	gsl_error_handler_t *old = gsl_set_error_handler_off();
	int rc = gsl_linalg_cholesky_decomp1(&m.matrix);
	gsl_set_error_handler(old);
	if (rc != GSL_SUCCESS)
		return -1;
	for (size_t i = 0; i < d; i++) {
		double lii = p->chol[i * d + i];
		if (!(lii > 0) || !isfinite(lii))
			return -1;
		logdet += log(lii);
		for (size_t j = i + 1; j < d; j++)
			p->chol[i * d + j] = 0;
	}
	invert_lower(d, p->chol, p->chol_inv);
	p->lc_total = -logdet - 0.5 * (double)d * LOG_2PI;
	return all_finite(d * d, p->chol_inv) && isfinite(p->lc_total) ? 0 : -1;
}

sbi_prior *
sbi_prior_mvn_alloc(size_t dim, const double *mean, const double *cov, sbi_err *err)
{
	if (check_dim(SBI_PRIOR_MVN, dim, err) != 0 ||
	    check_finite(SBI_PRIOR_MVN, 0, dim, mean, err) != 0 ||
	    check_cov(dim, cov, err) != 0)
		return NULL;
	sbi_prior *p = new_prior(SBI_PRIOR_MVN, dim, err);
	if (p == NULL)
		return NULL;
	p->p1 = p->data;
	p->cov = p->p1 + dim;
	p->chol = p->cov + dim * dim;
	p->chol_inv = p->chol + dim * dim;
	memcpy(p->p1, mean, dim * sizeof(double));
	memcpy(p->cov, cov, dim * dim * sizeof(double));
	if (factor(p) != 0) {
		sbi_prior_free(p);
		sbi_err_set(err, SBI_EINVAL, "prior.mvn: cov is not symmetric positive definite");
		return NULL;
	}
	return p;
}

static void
free_blocks(size_t nblocks, sbi_prior **blocks)
{
	for (size_t i = 0; blocks != NULL && i < nblocks; i++)
		sbi_prior_free(blocks[i]);
}

static sbi_prior *
joint_new(size_t nblocks, sbi_prior **blocks, sbi_err *err)
{
	sbi_prior *p = sbi_calloc(1, sizeof *p);

	if (p != NULL && (p->blocks = sbi_calloc(nblocks, sizeof *p->blocks)) == NULL) {
		sbi_free(p);
		p = NULL;
	}
	if (p == NULL) {
		sbi_err_set(err, SBI_ENOMEM, "prior.joint: out of memory");
		return NULL;
	}
	p->kind = SBI_PRIOR_JOINT;
	p->nblocks = nblocks;
	for (size_t i = 0; i < nblocks; i++) {
		p->blocks[i] = blocks[i];
		p->dim += blocks[i]->dim;
	}
	return p;
}

sbi_prior *
sbi_prior_joint_alloc(size_t nblocks, sbi_prior **blocks, sbi_err *err)
{
	sbi_prior *p = NULL;
	int rc = 0;

	if (nblocks == 0 || blocks == NULL)
		rc = sbi_err_set(err, SBI_EINVAL, "prior.joint: needs at least one block");
	for (size_t i = 0; rc == 0 && i < nblocks; i++)
		if (blocks[i] == NULL)
			rc = sbi_err_set(err, SBI_EINVAL, "prior.joint: block[%zu] is missing", i + 1);
	if (rc == 0)
		p = joint_new(nblocks, blocks, err);
	if (p == NULL)
		free_blocks(nblocks, blocks);
	return p;
}

void
sbi_prior_free(sbi_prior *p)
{
	if (p == NULL)
		return;
	if (p->kind == SBI_PRIOR_JOINT) {
		free_blocks(p->nblocks, p->blocks);
		sbi_free(p->blocks);
	}
	sbi_free(p->data);
	sbi_free(p);
}

/* ---- queries ---- */

sbi_prior_kind
sbi_prior_kind_of(const sbi_prior *p)
{
	return p->kind;
}

const char *
sbi_prior_kind_name(sbi_prior_kind kind)
{
	if ((unsigned)kind >= sizeof kinds / sizeof kinds[0])
		return "unknown";
	return kinds[kind].name;
}

size_t
sbi_prior_dim(const sbi_prior *p)
{
	return p->dim;
}

/* ---- independent kinds, one component at a time ---- */

static double
draw1(const sbi_prior *p, size_t i, gsl_rng *r)
{
	double a = p->p1[i], b = p->p2 ? p->p2[i] : 0;

	switch (p->kind) {
	case SBI_PRIOR_UNIFORM: return gsl_ran_flat(r, a, b);
	case SBI_PRIOR_NORMAL: return a + gsl_ran_gaussian_ziggurat(r, b);
	case SBI_PRIOR_LOGNORMAL: return gsl_ran_lognormal(r, a, b);
	case SBI_PRIOR_GAMMA: return gsl_ran_gamma(r, a, b);
	case SBI_PRIOR_BETA: return gsl_ran_beta(r, a, b);
	case SBI_PRIOR_EXPONENTIAL: return gsl_ran_exponential(r, 1.0 / a);
	default: SBI_ASSERT(0);
	}
}

static int
inside1(const sbi_prior *p, size_t i, double x)
{
	switch (p->kind) {
	case SBI_PRIOR_UNIFORM: return p->p1[i] <= x && x <= p->p2[i];
	case SBI_PRIOR_NORMAL: return isfinite(x);
	case SBI_PRIOR_LOGNORMAL: return x > 0 && isfinite(x);
	case SBI_PRIOR_GAMMA:
	case SBI_PRIOR_EXPONENTIAL: return x >= 0 && isfinite(x);
	case SBI_PRIOR_BETA: return 0 <= x && x <= 1;
	default: SBI_ASSERT(0);
	}
}

/* k log(y), 0 when k == 0 and -inf when y == 0 (see the top comment). */
static double
xlogy(double k, double y)
{
	if (k == 0)
		return 0;
	return y == 0 ? -INFINITY : k * log(y);
}

/* k log(1 - x), likewise. */
static double
xlog1mx(double k, double x)
{
	if (k == 0)
		return 0;
	return x == 1 ? -INFINITY : k * log1p(-x);
}

/* The log density of component i at x inside its support. */
static double
lpdf1(const sbi_prior *p, size_t i, double x)
{
	double a = p->p1[i], b = p->p2 ? p->p2[i] : 0, c = p->lc[i], z;

	switch (p->kind) {
	case SBI_PRIOR_UNIFORM:
		return c;
	case SBI_PRIOR_NORMAL:
		z = (x - a) / b;
		return c - 0.5 * z * z;
	case SBI_PRIOR_LOGNORMAL:
		z = (log(x) - a) / b;
		return c - log(x) - 0.5 * z * z;
	case SBI_PRIOR_GAMMA:
		return c + xlogy(a - 1, x) - x / b;
	case SBI_PRIOR_BETA:
		return c + xlogy(a - 1, x) + xlog1mx(b - 1, x);
	case SBI_PRIOR_EXPONENTIAL:
		return c - a * x;
	default:
		SBI_ASSERT(0);
	}
}

static void
moments1(const sbi_prior *p, size_t i, double *mean, double *var)
{
	double a = p->p1[i], b = p->p2 ? p->p2[i] : 0, s;

	switch (p->kind) {
	case SBI_PRIOR_UNIFORM:
		*mean = a + 0.5 * (b - a);
		*var = (b - a) * (b - a) / 12;
		break;
	case SBI_PRIOR_NORMAL:
		*mean = a;
		*var = b * b;
		break;
	case SBI_PRIOR_LOGNORMAL:
		*mean = exp(a + 0.5 * b * b);
		*var = expm1(b * b) * exp(2 * a + b * b);
		break;
	case SBI_PRIOR_GAMMA:
		*mean = a * b;
		*var = *mean * b;
		break;
	case SBI_PRIOR_BETA:
		s = a + b;
		*mean = a / s;
		*var = *mean * (b / s) / (s + 1);
		break;
	case SBI_PRIOR_EXPONENTIAL:
		*mean = 1 / a;
		*var = *mean * *mean;
		break;
	default:
		SBI_ASSERT(0);
	}
}

/* ---- mvn ---- */

static void
mvn_sample(const sbi_prior *p, gsl_rng *r, double *theta)
{
	size_t d = p->dim;

	for (size_t j = 0; j < d; j++)
		theta[j] = gsl_ran_gaussian_ziggurat(r, 1.0);
	/* theta = mean + L z in place: row i of L only reads z[0..i], so
	 * going from the last row up never reads an overwritten entry. */
	for (size_t i = d; i-- > 0;) {
		const double *row = p->chol + i * d;
		double s = p->p1[i];
		for (size_t j = 0; j <= i; j++)
			s += row[j] * theta[j];
		theta[i] = s;
	}
}

static double
mvn_log_density(const sbi_prior *p, const double *x)
{
	size_t d = p->dim;
	double q = 0;

	if (!all_finite(d, x))
		return -INFINITY;
	for (size_t i = 0; i < d; i++) {
		const double *row = p->chol_inv + i * d;
		double s = 0;
		for (size_t j = 0; j <= i; j++)
			s += row[j] * (x[j] - p->p1[j]);
		q += s * s;
	}
	return p->lc_total - 0.5 * q;
}

/* ---- dispatch ---- */

void
sbi_prior_sample(const sbi_prior *p, gsl_rng *r, double *theta)
{
	switch (p->kind) {
	case SBI_PRIOR_MVN:
		mvn_sample(p, r, theta);
		break;
	case SBI_PRIOR_JOINT:
		for (size_t k = 0; k < p->nblocks; k++) {
			sbi_prior_sample(p->blocks[k], r, theta);
			theta += p->blocks[k]->dim;
		}
		break;
	default:
		for (size_t i = 0; i < p->dim; i++)
			theta[i] = draw1(p, i, r);
	}
}

static double
log_density(const sbi_prior *p, const double *theta)
{
	double lp = 0;

	switch (p->kind) {
	case SBI_PRIOR_MVN:
		return mvn_log_density(p, theta);
	case SBI_PRIOR_JOINT:
		for (size_t k = 0; k < p->nblocks && lp > -INFINITY; k++) {
			lp += log_density(p->blocks[k], theta);
			theta += p->blocks[k]->dim;
		}
		return lp;
	default:
		for (size_t i = 0; i < p->dim; i++) {
			if (!inside1(p, i, theta[i]))
				return -INFINITY;
			lp += lpdf1(p, i, theta[i]);
		}
		return lp;
	}
}

double
sbi_prior_log_density(const sbi_prior *p, const double *theta)
{
	double lp = log_density(p, theta);

	return isnan(lp) ? -INFINITY : lp;
}

int
sbi_prior_in_support(const sbi_prior *p, const double *theta)
{
	switch (p->kind) {
	case SBI_PRIOR_MVN:
		return all_finite(p->dim, theta);
	case SBI_PRIOR_JOINT:
		for (size_t k = 0; k < p->nblocks; k++) {
			if (!sbi_prior_in_support(p->blocks[k], theta))
				return 0;
			theta += p->blocks[k]->dim;
		}
		return 1;
	default:
		for (size_t i = 0; i < p->dim; i++)
			if (!inside1(p, i, theta[i]))
				return 0;
		return 1;
	}
}

/* Writes the mean and variance of every component (either may be NULL). */
static void
moments(const sbi_prior *p, double *mean, double *var)
{
	double m, v;

	if (p->kind == SBI_PRIOR_JOINT) {
		for (size_t k = 0, off = 0; k < p->nblocks; off += p->blocks[k++]->dim)
			moments(p->blocks[k], mean ? mean + off : NULL, var ? var + off : NULL);
		return;
	}
	for (size_t i = 0; i < p->dim; i++) {
		if (p->kind == SBI_PRIOR_MVN) {
			m = p->p1[i];
			v = p->cov[i * p->dim + i];
		} else {
			moments1(p, i, &m, &v);
		}
		if (mean)
			mean[i] = m;
		if (var)
			var[i] = v;
	}
}

void
sbi_prior_mean(const sbi_prior *p, double *mean)
{
	moments(p, mean, NULL);
}

void
sbi_prior_variance(const sbi_prior *p, double *var)
{
	moments(p, NULL, var);
}

/* ---- description ---- */

/* An snprintf-like output: writes what fits in buf[0..n-1], counts all. */
struct out {
	char *buf;
	size_t n, len;
};

__attribute__((format(printf, 2, 3)))
static void
put(struct out *o, const char *fmt, ...)
{
	size_t room = o->len < o->n ? o->n - o->len : 0;
	va_list ap;

	va_start(ap, fmt);
	int k = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
	va_end(ap);
	if (k > 0)
		o->len += (size_t)k;
}

static void
put_list(struct out *o, const double *x, size_t n)
{
	put(o, "[");
	for (size_t i = 0; i < n; i++)
		put(o, i ? ",%a" : "%a", x[i]);
	put(o, "]");
}

static void
describe(const sbi_prior *p, struct out *o)
{
	put(o, "%s(", kinds[p->kind].name);
	if (p->kind == SBI_PRIOR_JOINT) {
		for (size_t k = 0; k < p->nblocks; k++) {
			if (k > 0)
				put(o, ",");
			describe(p->blocks[k], o);
		}
	} else {
		put(o, "dim=%zu;%s=", p->dim, kinds[p->kind].field[0]);
		put_list(o, p->p1, p->dim);
	}
	if (p->kind == SBI_PRIOR_MVN) {
		put(o, ";cov=[");
		for (size_t i = 0; i < p->dim; i++) {
			if (i > 0)
				put(o, ",");
			put_list(o, p->cov + i * p->dim, p->dim);
		}
		put(o, "]");
	} else if (p->p2 != NULL) {
		put(o, ";%s=", kinds[p->kind].field[1]);
		put_list(o, p->p2, p->dim);
	}
	put(o, ")");
}

size_t
sbi_prior_describe(const sbi_prior *p, char *buf, size_t n)
{
	struct out o = { buf, n, 0 };

	if (n > 0)
		buf[0] = '\0';
	describe(p, &o);
	return o.len;
}
