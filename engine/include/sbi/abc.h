/* Rejection approximate Bayesian computation primitives. */
#ifndef SBI_ABC_H
#define SBI_ABC_H

#include <stddef.h>

#include "sbi/err.h"
#include "sbi/mat.h"

/* dist[i] = sqrt(sum_j ((x[i,j] - obs[j]) / scale[j])^2): the Euclidean
 * distance on standardized data. A row with a non-finite value gets +inf. */
void sbi_abc_distances(const sbi_mat *x, const double *obs, const double *scale, double *dist);

/* Selects accepted rows: with quantile in (0, 1], the ceil(quantile * n)
 * nearest (at least 1; ties broken by lower row index); otherwise every row
 * with dist <= epsilon. *idx (caller frees with sbi_free) receives the
 * accepted row indices in increasing order, *nacc their count, and *eps the
 * largest accepted distance. Infinite distances are never accepted.
 * SBI_EINVAL when nothing can be accepted. */
int sbi_abc_select(const double *dist, size_t n, double quantile, double epsilon,
    size_t **idx, size_t *nacc, double *eps, sbi_err *err);

#endif
