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
