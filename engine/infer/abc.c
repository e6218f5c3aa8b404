/* Rejection ABC (see abc.h). */
#include <math.h>
#include <stdlib.h>

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
