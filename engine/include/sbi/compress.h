/* Summary compressors: the linear algebra behind sbi.summary
 * (stdlib/sbi/summary.lua): applying a linear map to many rows, column
 * covariances, principal components, and the MOPED weight vectors
 * (Heavens, Jimenez & Lahav 2000). Matrix products go through BLAS,
 * eigendecompositions and solves through GSL. */
#ifndef SBI_COMPRESS_H
#define SBI_COMPRESS_H

#include <stddef.h>

#include "sbi/err.h"
#include "sbi/mat.h"

/* out = (x - offset) w, one row per row of x: x is n x d, offset d numbers
 * (NULL: none), w d x k, out n x k (allocated by the caller). One
 * cblas_dgemm, then the offset's image subtracted from each row, so x is
 * never copied. SBI_EINVAL on mismatched sizes. */
int sbi_compress_linear(const sbi_mat *x, const double *offset, const sbi_mat *w, sbi_mat *out, sbi_err *err);

/* The column means (d numbers) and covariance (d x d, divisor n - 1) of
 * the n >= 2 rows of x. Rows are centered in
 * blocks and accumulated with cblas_dsyrk: no copy of x, no cancellation
 * of large means. SBI_EINVAL for fewer than 2 rows or a non-finite value
 * (naming the row and column), SBI_ENOMEM. */
int sbi_compress_covariance(const sbi_mat *x, double *mean, sbi_mat *cov, sbi_err *err);

/* Principal components of the rows of x (n >= 2, d columns), 1 <= k <= d:
 * with standardize, each column is divided by its standard deviation
 * first (a constant column by 1). Fills w (d x k): column c is the c-th
 * eigenvector of the covariance (eigenvalues descending, gsl_eigen_symmv;
 * sign: its entry of largest magnitude positive) divided elementwise by
 * the column scales, and with whiten also by sqrt(eigenvalue c), so that
 * (x - offset) w has uncorrelated columns of variance eigval[c] (or 1).
 * offset receives the d column means, eigval the k largest eigenvalues,
 * *total the sum of all d. SBI_EINVAL when whiten meets a component of
 * zero variance. */
int sbi_compress_pca(const sbi_mat *x, size_t k, int standardize, int whiten, sbi_mat *w, double *offset,
                     double *eigval, double *total, sbi_err *err);

/* MOPED weights from the data covariance cov (d x d, positive definite)
 * and the derivatives of the mean, dmu (p x d, row i = d mu / d theta_i):
 * w (d x p) column i is b_i. With gram_schmidt,
 *   b_i = (C^-1 mu_,i - sum_{q<i} (mu_,i . b_q) b_q)
 *         / sqrt(mu_,i . C^-1 mu_,i - sum_{q<i} (mu_,i . b_q)^2),
 * so that b_i . C b_j = delta_ij (Heavens et al. 2000, eq. 11-12);
 * without, b_i = C^-1 mu_,i (the score compression t = grad mu^T C^-1
 * (x - mu), Alsing & Wandelt 2018). SBI_EINVAL when cov is not positive
 * definite or a derivative is (nearly) a combination of earlier ones. */
int sbi_compress_moped(const sbi_mat *cov, const sbi_mat *dmu, int gram_schmidt, sbi_mat *w, sbi_err *err);

#endif
