/* Dense row-major matrices of doubles: the currency of artifacts. */
#ifndef SBI_MAT_H
#define SBI_MAT_H

#include <stddef.h>

/* A nrow x ncol matrix, element (i, j) at data[i * ncol + j]. */
typedef struct sbi_mat {
	size_t nrow, ncol;
	double *data;
	int owner; /* 1 when data is freed with the matrix; 0 for views */
} sbi_mat;

/* A zero-filled matrix; NULL when out of memory. Free with sbi_mat_free. */
sbi_mat *sbi_mat_alloc(size_t nrow, size_t ncol);
void sbi_mat_free(sbi_mat *m); /* NULL is fine */

/* A deep copy; NULL when out of memory. */
sbi_mat *sbi_mat_dup(const sbi_mat *m);

/* Keeps the first nrow rows (nrow <= m->nrow); memory is not returned. */
void sbi_mat_truncate(sbi_mat *m, size_t nrow);

static inline double *
sbi_mat_row(const sbi_mat *m, size_t i)
{
	return m->data + i * m->ncol;
}

#endif
