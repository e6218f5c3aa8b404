/* Rejection approximate Bayesian computation primitives. */
#ifndef SBI_ABC_H
#define SBI_ABC_H

#include <stddef.h>

#include "sbi/err.h"
#include "sbi/mat.h"
#include "sbi/progress.h"

/* dist[i] = sqrt(sum_j ((x[i,j] - obs[j]) / scale[j])^2): the Euclidean
 * distance on standardized data. A row with a non-finite value gets +inf. */
void sbi_abc_distances(const sbi_mat *x, const double *obs, const double *scale, double *dist);

/* The SMC-ABC weight denominator (without the kernel's constant):
 * out[i] = sum_j w[j] exp(-|chol^-1 (theta_i - particle_j)|^2 / 2), chol the
 * lower Cholesky factor (d x d, its diagonal positive) of the kernel's
 * covariance. theta is n x d, particles m x d, w m numbers, out n;
 * d <= SBI_ABC_SMC_MAXDIM. */
#define SBI_ABC_SMC_MAXDIM 64
void sbi_abc_smc_kernel_sums(const sbi_mat *theta, const sbi_mat *particles, const double *w, const sbi_mat *chol,
                             double *out);

/* Selects accepted rows: with quantile in (0, 1], the ceil(quantile * n)
 * nearest (at least 1; ties broken by lower row index); otherwise every row
 * with dist <= epsilon. *idx (caller frees with sbi_free) receives the
 * accepted row indices in increasing order, *nacc their count, and *eps the
 * largest accepted distance. Infinite distances are never accepted.
 * SBI_EINVAL when nothing can be accepted. */
int sbi_abc_select(const double *dist, size_t n, double quantile, double epsilon,
    size_t **idx, size_t *nacc, double *eps, sbi_err *err);

/* The candidate bandwidth factors of sbi_abc_kde_cv: h_k = 10^(-2 + 2k/30),
 * k = 0..30, a log grid from 0.01 to 1 (computed as the stdlib did, so the
 * grid values are the same bits). */
#define SBI_ABC_KDE_GRID 31
double sbi_abc_kde_grid(int k);

/* The bandwidth factor of a Gaussian KDE on the n >= 2 rows of x (kernel
 * sd h * std[j] in column j) chosen by leave-one-out cross-validation: the
 * grid value h_k with the largest
 *   LOO(h) = sum_i [ log( 1/(n-1) sum_{k != i} exp(-Q_ik / (2 h^2)) ) - d log h ],
 *   Q_ik = sum_j ((x[i,j] - x[k,j]) / std[j])^2
 * (the first one on a tie). O(n^2 d) for the distances and O(n^2) exps per
 * grid value; no extra memory beyond one row of distances. *factor
 * receives h; loglik (SBI_ABC_KDE_GRID values, may be NULL) receives LOO(h_k);
 * progress (may be NULL, started by the caller) is updated with the rows
 * done.
 * SBI_EINVAL when n < 2 or a std[j] is not positive and finite, SBI_ENOMEM. */
int sbi_abc_kde_cv(const sbi_mat *x, const double *std, double *factor, double *loglik,
    sbi_progress *progress, sbi_err *err);

/* The linear regression adjustment of Beaumont, Zhang & Balding (2002).
 * theta: the n x D accepted parameters, adjusted in place; x: their n x K
 * summaries; obs, scale: K values (the observed summaries and positive
 * column scales); dist: their n distances; h > 0: the kernel width. With
 * Epanechnikov weights w_i = max(0, 1 - (dist_i / h)^2) and
 * z_ij = (x_ij - obs_j) / scale_j, fits by weighted least squares (one SVD,
 * all D columns) theta_i = alpha + z_i^T b + e_i and sets
 * theta_i -= z_i^T b. beta (K x D, may be NULL) receives the slopes in the
 * units of x: beta_jd = b_jd / scale_j. SBI_EINVAL, naming the problem,
 * when fewer than K + 1 rows have a positive weight, when a column of z is
 * constant over them, or when the weighted design has rank < K + 1 (a
 * singular value below 1e-10 of the largest); SBI_ENOMEM. */
int sbi_abc_adjust_linear(sbi_mat *theta, const sbi_mat *x, const double *obs, const double *scale,
    const double *dist, double h, sbi_mat *beta, sbi_err *err);

/* sbi_abc_adjust_linear with given weights w (n finite values >= 0, e.g.
 * an SMC-ABC population's importance weights; borrowed) instead of the
 * Epanechnikov kernel: the same fit, adjustment, beta and errors, and
 * SBI_EINVAL naming a negative or non-finite weight. */
int sbi_abc_adjust_linear_weighted(sbi_mat *theta, const sbi_mat *x, const double *obs, const double *scale,
    const double *w, sbi_mat *beta, sbi_err *err);

/* The quadratic regression adjustment (Blum 2010, "Approximate Bayesian
 * computation: a nonparametric perspective", JASA 105: the local
 * regression of Beaumont et al. (2002) with the quadratic terms added):
 * sbi_abc_adjust_linear's inputs, weights and checks, but the weighted
 * least-squares fit is theta_i = alpha + u_i^T b + (u_i (x) u_i)^T c + e_i
 * (u_ij = z_ij / r_j, r_j the largest |z_ij| over the rows of positive
 * weight; the K(K+1)/2 products u_ij u_ik, j <= k) and theta_i is set to
 * alpha + e_i: the fitted mean at its summaries is replaced by the one at
 * the observation. It removes a bias the linear adjustment leaves when
 * E[theta | x] bends over the accepted region. It needs
 * 1 + K + K(K+1)/2 rows of positive weight (21 for K = 5); SBI_EINVAL
 * otherwise, naming the count, and as sbi_abc_adjust_linear; SBI_ENOMEM. */
int sbi_abc_adjust_quadratic(sbi_mat *theta, const sbi_mat *x, const double *obs, const double *scale,
    const double *dist, double h, sbi_err *err);

#endif
