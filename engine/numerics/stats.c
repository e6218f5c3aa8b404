/* Column statistics (see stats.h). */
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/stats.h"

/* Copies column j into a new array the caller frees. */
static double *
column(const sbi_mat *m, size_t j)
{
	double *c = sbi_malloc((m->nrow ? m->nrow : 1) * sizeof *c);
	if (c)
		for (size_t i = 0; i < m->nrow; i++)
			c[i] = m->data[i * m->ncol + j];
	return c;
}

int
sbi_stats_column(const sbi_mat *m, size_t j, sbi_col_summary *out, sbi_err *err)
{
	if (m->nrow == 0 || j >= m->ncol)
		return sbi_err_set(err, SBI_EINVAL, "cannot summarize column %zu of a %zux%zu matrix",
		    j + 1, m->nrow, m->ncol);
	double *c = column(m, j);
	if (c == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	out->mean = gsl_stats_mean(c, 1, m->nrow);
	out->std = m->nrow > 1 ? gsl_stats_sd_m(c, 1, m->nrow, out->mean) : 0.0;
	gsl_sort(c, 1, m->nrow);
	out->q05 = gsl_stats_quantile_from_sorted_data(c, 1, m->nrow, 0.05);
	out->q50 = gsl_stats_quantile_from_sorted_data(c, 1, m->nrow, 0.50);
	out->q95 = gsl_stats_quantile_from_sorted_data(c, 1, m->nrow, 0.95);
	sbi_free(c);
	return SBI_OK;
}

static double
mad(double *c, size_t n)
{
	gsl_sort(c, 1, n);
	double med = gsl_stats_median_from_sorted_data(c, 1, n);
	for (size_t i = 0; i < n; i++)
		c[i] = fabs(c[i] - med);
	gsl_sort(c, 1, n);
	return 1.4826 * gsl_stats_median_from_sorted_data(c, 1, n);
}

static int
all_positive(const double *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(c[i] > 0))
			return 0;
	return 1;
}

int
sbi_stats_log_candidates(const sbi_mat *m, int *positive, int *skewed, sbi_err *err)
{
	for (size_t j = 0; j < m->ncol; j++) {
		double *c = column(m, j); /* owned here */
		if (c == NULL)
			return sbi_err_set(err, SBI_ENOMEM, "out of memory");
		positive[j] = m->nrow > 0 && all_positive(c, m->nrow);
		skewed[j] = 0;
		double raw = m->nrow > 2 ? gsl_stats_skew(c, 1, m->nrow) : 0;
		if (positive[j] && raw > 1) {
			for (size_t i = 0; i < m->nrow; i++)
				c[i] = log(c[i]);
			skewed[j] = fabs(gsl_stats_skew(c, 1, m->nrow)) < raw;
		}
		sbi_free(c);
	}
	return SBI_OK;
}

int
sbi_stats_scales(const sbi_mat *m, const char *method, double *scale, sbi_err *err)
{
	int use_mad = strcmp(method, "mad") == 0;
	if (!use_mad && strcmp(method, "std") != 0)
		return sbi_err_set(err, SBI_EINVAL, "unknown scale '%s' (expected \"std\" or \"mad\")", method);
	for (size_t j = 0; j < m->ncol; j++) {
		double *c = column(m, j);
		if (c == NULL)
			return sbi_err_set(err, SBI_ENOMEM, "out of memory");
		double s = m->nrow < 2 ? 1.0 : use_mad ? mad(c, m->nrow) : gsl_stats_sd(c, 1, m->nrow);
		scale[j] = (s > 0 && isfinite(s)) ? s : 1.0;
		sbi_free(c);
	}
	return SBI_OK;
}

void
sbi_stats_mean_std(const double *x, size_t n, size_t d, double *mean, double *std)
{
	for (size_t j = 0; j < d; j++) {
		double s = 0, ss = 0;
		for (size_t i = 0; i < n; i++)
			s += x[i * d + j];
		double m = n ? s / (double)n : 0;
		for (size_t i = 0; i < n; i++)
			ss += (x[i * d + j] - m) * (x[i * d + j] - m);
		double sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 1;
		mean[j] = m;
		std[j] = sd > 1e-14 && isfinite(sd) ? sd : 1;
	}
}

int
sbi_zscore_init(sbi_zscore *z, size_t d)
{
	z->d = d;
	z->mean = sbi_calloc(d ? d : 1, sizeof(double));
	z->std = sbi_calloc(d ? d : 1, sizeof(double));
	if (z->mean == NULL || z->std == NULL) {
		sbi_zscore_clear(z);
		return -1;
	}
	for (size_t j = 0; j < d; j++)
		z->std[j] = 1;
	return 0;
}

void
sbi_zscore_clear(sbi_zscore *z)
{
	sbi_free(z->mean);
	sbi_free(z->std);
	z->mean = z->std = NULL;
}

void
sbi_zscore_fit(sbi_zscore *z, const double *x, size_t n)
{
	sbi_stats_mean_std(x, n, z->d, z->mean, z->std);
}

void
sbi_zscore_apply(const sbi_zscore *z, const double *x, size_t n, float *out)
{
	size_t d = z->d;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			out[i * d + j] = (float)((x[i * d + j] - z->mean[j]) / z->std[j]);
}

void
sbi_zscore_write(const sbi_zscore *z, sbi_blobw *w)
{
	sbi_blobw_bytes(w, z->mean, z->d * sizeof(double));
	sbi_blobw_bytes(w, z->std, z->d * sizeof(double));
}

void
sbi_zscore_read(sbi_zscore *z, sbi_blobr *r)
{
	sbi_blobr_bytes(r, z->mean, z->d * sizeof(double));
	sbi_blobr_bytes(r, z->std, z->d * sizeof(double));
}
