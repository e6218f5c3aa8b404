/* Hand-off of finished chunks of rows from pool tasks to the parent
 * through shared memory, so the parent need not read back from the cache
 * what a worker has just stored there.
 *
 * A hand-off holds, for chunk c of nchunks, room for `rows` rows of two
 * matrices (na and nb columns; the last chunk may be shorter). It is
 * mapped shared before the workers fork, so a worker's put is seen by the
 * parent once the task has answered. The parent takes chunks back in
 * increasing order; each take releases the memory of the chunks before it,
 * so the hand-off and the gathered result are not both whole at once. */
#ifndef SBI_HANDOFF_H
#define SBI_HANDOFF_H

#include <stddef.h>

#include "sbi/mat.h"

typedef struct sbi_handoff sbi_handoff;

/* NULL when the memory cannot be mapped (callers fall back to the cache).
 * Caller frees with sbi_handoff_free. */
sbi_handoff *sbi_handoff_alloc(size_t nchunks, size_t rows, size_t na, size_t nb);
void sbi_handoff_free(sbi_handoff *h); /* NULL is fine */

/* Copies chunk c's matrices in (a->nrow == b->nrow <= rows, columns na and
 * nb) and marks it present. Returns 0, or -1 when they do not fit. */
int sbi_handoff_put(sbi_handoff *h, size_t c, const sbi_mat *a, const sbi_mat *b);

/* When chunk c is present and a, b have room: copies its rows to them
 * from row `row` on, sets *nrows, releases the memory of chunks 0..c and
 * returns 1; otherwise returns 0 and copies nothing. Chunks are taken in
 * increasing c; one skipped is not present any more. */
int sbi_handoff_take(sbi_handoff *h, size_t c, sbi_mat *a, sbi_mat *b, size_t row, size_t *nrows);

#endif
