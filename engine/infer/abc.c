/* Rejection ABC (see abc.h). */
#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit.h>

#include "sbi/abc.h"
#include "sbi/alloc.h"

void
sbi_abc_distances(const sbi_mat *x, const double *obs, const double *scale, double *dist)
{
	for (size_t i = 0; i < x->nrow; i++) {
		const double *r = sbi_mat_row(x, i);
		double s = 0;
		for (size_t j = 0; j < x->ncol; j++) {
			double d = (r[j] - obs[j]) / scale[j];
			s += d * d;
		}
		dist[i] = isfinite(s) ? sqrt(s) : INFINITY;
	}
}

void
sbi_abc_smc_kernel_sums(const sbi_mat *theta, const sbi_mat *particles, const double *w, const sbi_mat *chol,
                        double *out)
{
	size_t d = theta->ncol;
	double yy[SBI_ABC_SMC_MAXDIM];
	for (size_t i = 0; i < theta->nrow; i++) {
		const double *t = sbi_mat_row(theta, i);
		double sum = 0;
		for (size_t j = 0; j < particles->nrow; j++) {
			const double *p = sbi_mat_row(particles, j);
			double q = 0;
			for (size_t a = 0; a < d && a < SBI_ABC_SMC_MAXDIM; a++) { /* forward substitution: chol y = t - p */
				const double *l = sbi_mat_row(chol, a);
				double v = t[a] - p[a];
				for (size_t b = 0; b < a; b++)
					v -= l[b] * yy[b];
				yy[a] = v / l[a];
				q += yy[a] * yy[a];
			}
			sum += w[j] * exp(-0.5 * q);
		}
		out[i] = sum;
	}
}

typedef struct ranked {
	double d;
	size_t i;
} ranked;

static int
cmp_ranked(const void *a, const void *b)
{
	const ranked *x = a, *y = b;
	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

static int
cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

int
sbi_abc_select(const double *dist, size_t n, double quantile, double epsilon,
    size_t **idx, size_t *nacc, double *eps, sbi_err *err)
{
	ranked *r = sbi_malloc((n ? n : 1) * sizeof *r);
	size_t *out = sbi_malloc((n ? n : 1) * sizeof *out);
	if (r == NULL || out == NULL) {
		sbi_free(r);
		sbi_free(out);
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	}
	size_t finite = 0;
	for (size_t i = 0; i < n; i++)
		if (isfinite(dist[i]))
			r[finite++] = (ranked){ dist[i], i };
	qsort(r, finite, sizeof *r, cmp_ranked);
	size_t k = 0;
	if (quantile > 0) {
		k = (size_t)ceil(quantile * (double)n - 1e-9);
		k = k < 1 ? 1 : k > finite ? finite : k;
	} else {
		while (k < finite && r[k].d <= epsilon)
			k++;
	}
	if (k == 0) {
		int rc = finite ? sbi_err_set(err, SBI_EINVAL, "no simulation is within epsilon = %g of the "
		    "observation (the nearest is at %g)", epsilon, r[0].d)
				: sbi_err_set(err, SBI_EINVAL, "no simulation has a finite distance to the observation");
		sbi_free(r);
		sbi_free(out);
		return rc;
	}
	for (size_t i = 0; i < k; i++)
		out[i] = r[i].i;
	*eps = r[k - 1].d;
	qsort(out, k, sizeof *out, cmp_size);
	sbi_free(r);
	*idx = out;
	*nacc = k;
	return SBI_OK;
}

double
sbi_abc_kde_grid(int k)
{
	/* Lua's 10 ^ (-2 + 2 * k / 30): pow, an integer product, a float division. */
	return pow(10.0, -2.0 + (double)(2 * k) / 30.0);
}

/* Row i of Q (standardized squared distances to every row, q[i] = +inf so
 * that it is skipped); returns the smallest over k != i. */
static double
distance_row(const sbi_mat *x, const double *inv_std, size_t i, double *q)
{
	const double *a = sbi_mat_row(x, i);
	double m = INFINITY;
	for (size_t k = 0; k < x->nrow; k++) {
		const double *b = sbi_mat_row(x, k);
		double s = 0;
		for (size_t j = 0; j < x->ncol; j++) {
			double z = (a[j] - b[j]) * inv_std[j];
			s += z * z;
		}
		q[k] = s;
		if (k != i && s < m)
			m = s;
	}
	q[i] = INFINITY;
	return m;
}

/* Adds row i's leave-one-out log density at every grid value to ll, with
 * the largest term (distance m) factored out, as the stdlib did. A term
 * exp(-t) with t > cut is left out: with cut = 42 + log n the terms left
 * out sum to less than 2^-60 of the row's sum (which is >= 1), far below
 * its rounding. Each grid value still sums its terms in row order; a term
 * left out at h is left out at every smaller h, hence the early break. */
static void
add_row(const double *q, size_t n, double m, size_t d, const double *h, double *ll)
{
	double c[SBI_ABC_KDE_GRID], sum[SBI_ABC_KDE_GRID] = { 0 };
	double cut = 42 + log((double)n);
	for (int g = 0; g < SBI_ABC_KDE_GRID; g++)
		c[g] = 0.5 / (h[g] * h[g]);
	for (size_t k = 0; k < n; k++) {
		double dq = q[k] - m; /* +inf for k = i */
		for (int g = SBI_ABC_KDE_GRID - 1; g >= 0 && dq * c[g] <= cut; g--)
			sum[g] += exp(-dq * c[g]);
	}
	for (int g = 0; g < SBI_ABC_KDE_GRID; g++)
		ll[g] += -m * c[g] + log(sum[g] / (double)(n - 1)) - (double)d * log(h[g]);
}

int
sbi_abc_kde_cv(const sbi_mat *x, const double *std, double *factor, double *loglik, sbi_progress *progress,
    sbi_err *err)
{
	size_t n = x->nrow, d = x->ncol;
	if (n < 2)
		return sbi_err_set(err, SBI_EINVAL, "cross-validation needs at least 2 samples, got %zu", n);
	for (size_t j = 0; j < d; j++)
		if (!(std[j] > 0) || !isfinite(std[j]))
			return sbi_err_set(err, SBI_EINVAL, "std[%zu] must be positive and finite", j + 1);
	double *q = sbi_malloc(n * sizeof *q), *inv_std = sbi_malloc((d ? d : 1) * sizeof *inv_std);
	if (q == NULL || inv_std == NULL) {
		sbi_free(q);
		sbi_free(inv_std);
		return sbi_err_set(err, SBI_ENOMEM, "out of memory for cross-validation of %zu samples", n);
	}
	for (size_t j = 0; j < d; j++)
		inv_std[j] = 1 / std[j];
	double h[SBI_ABC_KDE_GRID], ll[SBI_ABC_KDE_GRID] = { 0 };
	for (int g = 0; g < SBI_ABC_KDE_GRID; g++)
		h[g] = sbi_abc_kde_grid(g);
	for (size_t i = 0; i < n; i++) {
		add_row(q, n, distance_row(x, inv_std, i, q), d, h, ll);
		if (progress)
			sbi_progress_update(progress, i + 1);
	}
	sbi_free(q);
	sbi_free(inv_std);
	/* The first strict maximum, starting from h = 1 at -inf, as the stdlib. */
	double best_h = 1, best_ll = -INFINITY;
	for (int g = 0; g < SBI_ABC_KDE_GRID; g++) {
		if (ll[g] > best_ll) {
			best_h = h[g];
			best_ll = ll[g];
		}
		if (loglik)
			loglik[g] = ll[g];
	}
	*factor = best_h;
	return SBI_OK;
}

/* The Epanechnikov weights w_i = max(0, 1 - (dist_i / h)^2) of
 * sbi_abc_adjust_linear (0 for a NaN distance), after checking h. */
static int
adjust_kernel_weights(const double *dist, size_t n, double h, double *w, sbi_err *err)
{
	if (!(h > 0) || !isfinite(h))
		return sbi_err_set(err, SBI_EINVAL, "the kernel width must be positive and finite, got %g "
		    "(every accepted simulation matches the observation exactly?)", h);
	for (size_t i = 0; i < n; i++) {
		double u = dist[i] / h;
		w[i] = u < 1 ? 1 - u * u : 0; /* also 0 for a NaN distance */
	}
	return SBI_OK;
}

/* The regression of an adjustment: linear in the scaled summaries z, or
 * quadratic (z, and every product z_j z_k, j <= k). */
typedef struct adjust_form {
	int quadratic;
	const char *name;  /* in messages */
	const char *count; /* how the number of coefficients is counted, in messages */
} adjust_form;

static const adjust_form adjust_linear_form = { 0, "linear", "the number of summaries + 1" };
static const adjust_form adjust_quadratic_form = { 1, "quadratic",
	"1 + K + K(K+1)/2 for K summaries: the intercept, the linear and the quadratic terms" };

/* The number of regressors besides the intercept for k summaries. */
static size_t
adjust_terms(const adjust_form *form, size_t k)
{
	return form->quadratic ? k + k * (k + 1) / 2 : k;
}

/* The checks of an adjustment of the given form that need no fit: finite
 * inputs, as many rows of positive weight w (n values) as the fit has
 * coefficients (K + 1 for the linear form), and no column constant over
 * them. */
static int
adjust_check(const sbi_mat *theta, const sbi_mat *x, const double *obs, const double *scale, const double *w,
    const adjust_form *form, sbi_err *err)
{
	size_t n = x->nrow, k = x->ncol, pos = 0;
	for (size_t j = 0; j < k; j++)
		if (!(scale[j] > 0) || !isfinite(scale[j]) || !isfinite(obs[j]))
			return sbi_err_set(err, SBI_EINVAL, "summary %zu: the observation and the scale must be "
			    "finite, the scale positive", j + 1);
	for (size_t i = 0; i < n; i++) {
		pos += w[i] > 0;
		for (size_t j = 0; j < k; j++)
			if (!isfinite(sbi_mat_row(x, i)[j]))
				return sbi_err_set(err, SBI_EINVAL, "summary %zu of accepted simulation %zu is not "
				    "finite", j + 1, i + 1);
		for (size_t j = 0; j < theta->ncol; j++)
			if (!isfinite(sbi_mat_row(theta, i)[j]))
				return sbi_err_set(err, SBI_EINVAL, "parameter %zu of accepted simulation %zu is not "
				    "finite", j + 1, i + 1);
	}
	size_t p = 1 + adjust_terms(form, k);
	if (pos < p)
		return sbi_err_set(err, SBI_EINVAL, "the %s adjustment needs at least %zu accepted "
		    "simulations with a positive weight (%s), got %zu; accept more "
		    "simulations", form->name, p, form->count, pos);
	for (size_t j = 0; j < k; j++) {
		double lo = INFINITY, hi = -INFINITY;
		for (size_t i = 0; i < n; i++)
			if (w[i] > 0) {
				lo = fmin(lo, sbi_mat_row(x, i)[j]);
				hi = fmax(hi, sbi_mat_row(x, i)[j]);
			}
		if (lo == hi)
			return sbi_err_set(err, SBI_EINVAL, "summary %zu is constant (%g) over the accepted "
			    "simulations: the regression cannot separate it from the intercept", j + 1, lo);
	}
	return SBI_OK;
}

/* Fits the weighted regression: X (n x K+1, rows sqrt(w_i) [1, z_i]) is
 * decomposed once; column d of theta is solved for its coefficients,
 * whose slopes (c[1..K]) go into column d of b (K x D). */
static int
adjust_fit(const sbi_mat *theta, const double *w, gsl_matrix *X, gsl_matrix *b, sbi_err *err)
{
	size_t n = X->size1, p = X->size2;
	gsl_multifit_linear_workspace *ws = gsl_multifit_linear_alloc(n, p);
	gsl_vector *y = gsl_vector_alloc(n), *c = gsl_vector_alloc(p);
	int rc = SBI_OK;
	if (ws == NULL || y == NULL || c == NULL) {
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for the linear adjustment");
		goto done;
	}
	size_t rank = 0;
	if (gsl_multifit_linear_svd(X, ws) != GSL_SUCCESS
	    || (rank = gsl_multifit_linear_rank(1e-10, ws)) < p) {
		rc = sbi_err_set(err, SBI_EINVAL, "the summaries of the accepted simulations are linearly "
		    "dependent (the weighted design with an intercept has rank %zu < %zu): drop or combine "
		    "redundant summaries", rank, p);
		goto done;
	}
	for (size_t d = 0; d < theta->ncol; d++) {
		for (size_t i = 0; i < n; i++)
			gsl_vector_set(y, i, sqrt(w[i]) * sbi_mat_row(theta, i)[d]);
		double rnorm, snorm;
		gsl_multifit_linear_solve(0.0, X, y, c, &rnorm, &snorm, ws);
		for (size_t j = 0; j + 1 < p; j++)
			gsl_matrix_set(b, j, d, gsl_vector_get(c, j + 1));
	}
done:
	gsl_vector_free(c);
	gsl_vector_free(y);
	if (ws)
		gsl_multifit_linear_free(ws);
	return rc;
}

/* Z (n x K) = the scaled summaries z_ij; X (n x K+1) = rows sqrt(w_i) [1, z_i]. */
static void
adjust_design(const sbi_mat *x, const double *obs, const double *scale, const double *w, gsl_matrix *Z,
    gsl_matrix *X)
{
	for (size_t i = 0; i < x->nrow; i++) {
		double sw = sqrt(w[i]);
		gsl_matrix_set(X, i, 0, sw);
		for (size_t j = 0; j < x->ncol; j++) {
			double z = (sbi_mat_row(x, i)[j] - obs[j]) / scale[j];
			gsl_matrix_set(Z, i, j, z);
			gsl_matrix_set(X, i, j + 1, sw * z);
		}
	}
}

/* The fit and the adjustment with the weights w (checked). The
 * regression runs on the scaled summaries z (columns of comparable size, a
 * better-conditioned design); the adjustment itself does not depend on
 * per-column scaling. */
static int
adjust_with(sbi_mat *theta, const sbi_mat *x, const double *obs, const double *scale, const double *w,
    sbi_mat *beta, sbi_err *err)
{
	size_t n = x->nrow, k = x->ncol, dim = theta->ncol;
	int rc = adjust_check(theta, x, obs, scale, w, &adjust_linear_form, err);
	if (rc != SBI_OK || k == 0 || dim == 0) /* nothing to regress on or to adjust */
		return rc;
	gsl_error_handler_t *old = gsl_set_error_handler_off(); /* errors are return codes here */
	gsl_matrix *Z = gsl_matrix_alloc(n, k), *X = gsl_matrix_alloc(n, k + 1), *b = gsl_matrix_alloc(k, dim);
	if (Z == NULL || X == NULL || b == NULL)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for the linear adjustment");
	if (rc == SBI_OK) {
		adjust_design(x, obs, scale, w, Z, X);
		rc = adjust_fit(theta, w, X, b, err);
	}
	if (rc == SBI_OK) { /* theta -= Z b */
		gsl_matrix_view t = gsl_matrix_view_array(theta->data, n, dim);
		gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, -1.0, Z, b, 1.0, &t.matrix);
	}
	for (size_t j = 0; rc == SBI_OK && beta && j < k; j++)
		for (size_t d = 0; d < dim; d++)
			sbi_mat_row(beta, j)[d] = gsl_matrix_get(b, j, d) / scale[j];
	gsl_set_error_handler(old);
	if (Z)
		gsl_matrix_free(Z);
	if (X)
		gsl_matrix_free(X);
	if (b)
		gsl_matrix_free(b);
	return rc;
}

/* Checks the shapes shared by both entry points. */
static int
adjust_shapes(const sbi_mat *theta, const sbi_mat *x, const sbi_mat *beta, sbi_err *err)
{
	if (theta->nrow != x->nrow)
		return sbi_err_set(err, SBI_EINVAL, "%zu parameter rows but %zu summary rows", theta->nrow, x->nrow);
	if (beta && (beta->nrow != x->ncol || beta->ncol != theta->ncol))
		return sbi_err_set(err, SBI_EINVAL, "beta must be %zu x %zu", x->ncol, theta->ncol);
	return SBI_OK;
}

int
sbi_abc_adjust_linear(sbi_mat *theta, const sbi_mat *x, const double *obs, const double *scale,
    const double *dist, double h, sbi_mat *beta, sbi_err *err)
{
	size_t n = x->nrow;
	int rc = adjust_shapes(theta, x, beta, err);
	if (rc != SBI_OK)
		return rc;
	double *w = sbi_malloc((n ? n : 1) * sizeof *w); /* freed here */
	if (w == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory for the linear adjustment");
	rc = adjust_kernel_weights(dist, n, h, w, err);
	if (rc == SBI_OK)
		rc = adjust_with(theta, x, obs, scale, w, beta, err);
	sbi_free(w);
	return rc;
}

int
sbi_abc_adjust_linear_weighted(sbi_mat *theta, const sbi_mat *x, const double *obs, const double *scale,
    const double *w, sbi_mat *beta, sbi_err *err)
{
	int rc = adjust_shapes(theta, x, beta, err);
	if (rc != SBI_OK)
		return rc;
	for (size_t i = 0; i < x->nrow; i++)
		if (!(w[i] >= 0) || !isfinite(w[i]))
			return sbi_err_set(err, SBI_EINVAL, "weight %zu is %g: the weights must be finite and "
			    "non-negative", i + 1, w[i]);
	return adjust_with(theta, x, obs, scale, w, beta, err);
}

/* Z (n x K): the scaled summaries z_ij = (x_ij - obs_j) / scale_j. */
static void
quadratic_scaled(const sbi_mat *x, const double *obs, const double *scale, gsl_matrix *Z)
{
	for (size_t i = 0; i < x->nrow; i++)
		for (size_t j = 0; j < x->ncol; j++)
			gsl_matrix_set(Z, i, j, (sbi_mat_row(x, i)[j] - obs[j]) / scale[j]);
}

/* F (n x q): the regressors u_j = z_j / r_j and u_j u_k (j <= k), r_j the
 * largest |z_ij| over the rows of positive weight (not 0: adjust_check
 * rejected constant columns), so that every regressor lies in [-1, 1] there
 * (the squares of small z would otherwise make a badly conditioned design;
 * the fitted values do not depend on the scaling). X (n x q+1): rows
 * sqrt(w_i) [1, F_i]. r: K values of scratch. */
static void
quadratic_design(const gsl_matrix *Z, const double *w, double *r, gsl_matrix *F, gsl_matrix *X)
{
	size_t n = Z->size1, k = Z->size2;
	for (size_t j = 0; j < k; j++) {
		r[j] = 0;
		for (size_t i = 0; i < n; i++)
			if (w[i] > 0)
				r[j] = fmax(r[j], fabs(gsl_matrix_get(Z, i, j)));
	}
	for (size_t i = 0; i < n; i++) {
		double sw = sqrt(w[i]);
		size_t c = k;
		gsl_matrix_set(X, i, 0, sw);
		for (size_t j = 0; j < k; j++) {
			double u = gsl_matrix_get(Z, i, j) / r[j];
			gsl_matrix_set(F, i, j, u);
			for (size_t l = 0; l <= j; l++)
				gsl_matrix_set(F, i, c++, u * gsl_matrix_get(F, i, l));
		}
		for (size_t j = 0; j < F->size2; j++)
			gsl_matrix_set(X, i, j + 1, sw * gsl_matrix_get(F, i, j));
	}
}

/* The quadratic fit and adjustment with the weights w (checked here). */
static int
adjust_quadratic_with(sbi_mat *theta, const sbi_mat *x, const double *obs, const double *scale, const double *w,
    sbi_err *err)
{
	size_t n = x->nrow, k = x->ncol, dim = theta->ncol, q = adjust_terms(&adjust_quadratic_form, k);
	int rc = adjust_check(theta, x, obs, scale, w, &adjust_quadratic_form, err);
	if (rc != SBI_OK || k == 0 || dim == 0) /* nothing to regress on or to adjust */
		return rc;
	gsl_error_handler_t *old = gsl_set_error_handler_off(); /* errors are return codes here */
	gsl_matrix *Z = gsl_matrix_alloc(n, k), *F = gsl_matrix_alloc(n, q), *X = gsl_matrix_alloc(n, q + 1);
	gsl_matrix *b = gsl_matrix_alloc(q, dim);
	double *r = sbi_malloc(k * sizeof *r); /* freed here */
	if (Z == NULL || F == NULL || X == NULL || b == NULL || r == NULL)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for the quadratic adjustment");
	if (rc == SBI_OK) {
		quadratic_scaled(x, obs, scale, Z);
		quadratic_design(Z, w, r, F, X);
		rc = adjust_fit(theta, w, X, b, err);
	}
	if (rc == SBI_OK) { /* theta -= F b: the fitted mean at z_i minus the one at the observation */
		gsl_matrix_view t = gsl_matrix_view_array(theta->data, n, dim);
		gsl_blas_dgemm(CblasNoTrans, CblasNoTrans, -1.0, F, b, 1.0, &t.matrix);
	}
	gsl_set_error_handler(old);
	sbi_free(r);
	gsl_matrix *all[] = { Z, F, X, b };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (all[i])
			gsl_matrix_free(all[i]);
	return rc;
}

int
sbi_abc_adjust_quadratic(sbi_mat *theta, const sbi_mat *x, const double *obs, const double *scale,
    const double *dist, double h, sbi_err *err)
{
	size_t n = x->nrow;
	int rc = adjust_shapes(theta, x, NULL, err);
	if (rc != SBI_OK)
		return rc;
	double *w = sbi_malloc((n ? n : 1) * sizeof *w); /* freed here */
	if (w == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory for the quadratic adjustment");
	rc = adjust_kernel_weights(dist, n, h, w, err);
	if (rc == SBI_OK)
		rc = adjust_quadratic_with(theta, x, obs, scale, w, err);
	sbi_free(w);
	return rc;
}
