/* Column statistics of sample matrices (over GSL) and of training data. */
#ifndef SBI_STATS_H
#define SBI_STATS_H

#include "sbi/blob.h"
#include "sbi/err.h"
#include "sbi/mat.h"

/* Mean, standard deviation and the 5%, 50% and 95% quantiles of a column. */
typedef struct sbi_col_summary {
	double mean, std, q05, q50, q95;
} sbi_col_summary;

/* Summarizes column j of m (at least one row). */
int sbi_stats_column(const sbi_mat *m, size_t j, sbi_col_summary *out, sbi_err *err);

/* Per-column scales for standardizing data: "std" (sample standard
 * deviation) or "mad" (1.4826 x median absolute deviation, robust to
 * outliers). A zero or non-finite scale becomes 1, so constant columns
 * neither blow up nor dominate distances. scale has m->ncol entries. */
int sbi_stats_scales(const sbi_mat *m, const char *method, double *scale, sbi_err *err);

/* Which columns of m are candidates for the log scale: positive[j] = 1
 * when every value of column j is > 0; skewed[j] = 1 when, moreover, its
 * skewness is above 1 and the log makes it smaller in magnitude (long
 * right tails of multiplicative noise). Both have m->ncol entries. */
int sbi_stats_log_candidates(const sbi_mat *m, int *positive, int *skewed, sbi_err *err);

/* The mean and sample standard deviation of each column of x (n x d,
 * row-major), for z-scoring a network's inputs: sums in row order, then
 * the squared deviations from the mean (two passes); a standard deviation
 * that is not finite or at most 1e-14 becomes 1 (constant columns). The
 * operation order is part of every trained model: do not change it. */
void sbi_stats_mean_std(const double *x, size_t n, size_t d, double *mean, double *std);

/* The z-scoring of a network's inputs, d columns: z = (x - mean) / std. */
typedef struct sbi_zscore {
	size_t d;
	double *mean, *std; /* d entries each (owned) */
} sbi_zscore;

/* Mean 0 and std 1 for d columns: 0, or -1 when out of memory (then z
 * holds nothing, as after sbi_zscore_clear). */
int sbi_zscore_init(sbi_zscore *z, size_t d);
void sbi_zscore_clear(sbi_zscore *z); /* frees the arrays; a zeroed z is fine */
/* Mean and std from x (n x d, row-major), by sbi_stats_mean_std. */
void sbi_zscore_fit(sbi_zscore *z, const double *x, size_t n);
/* out[i*d + j] = (float)((x[i*d + j] - mean[j]) / std[j]) for n rows. */
void sbi_zscore_apply(const sbi_zscore *z, const double *x, size_t n, float *out);
/* The model-file form: f64 mean[d], f64 std[d]. */
void sbi_zscore_write(const sbi_zscore *z, sbi_blobw *w);
void sbi_zscore_read(sbi_zscore *z, sbi_blobr *r);

#endif
