/* Dense matrices (see mat.h). */
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/mat.h"

sbi_mat *
sbi_mat_alloc(size_t nrow, size_t ncol)
{
	if (ncol != 0 && nrow > (size_t)-1 / sizeof(double) / ncol)
		return NULL;
	sbi_mat *m = sbi_malloc(sizeof *m);
	if (m == NULL)
		return NULL;
	m->nrow = nrow;
	m->ncol = ncol;
	m->owner = 1;
	m->data = sbi_calloc(nrow * ncol > 0 ? nrow * ncol : 1, sizeof(double));
	if (m->data == NULL) {
		sbi_free(m);
		return NULL;
	}
	return m;
}

void
sbi_mat_free(sbi_mat *m)
{
	if (m == NULL)
		return;
	if (m->owner)
		sbi_free(m->data);
	sbi_free(m);
}

sbi_mat *
sbi_mat_dup(const sbi_mat *m)
{
	sbi_mat *d = sbi_mat_alloc(m->nrow, m->ncol);
	if (d)
		memcpy(d->data, m->data, m->nrow * m->ncol * sizeof(double));
	return d;
}

void
sbi_mat_truncate(sbi_mat *m, size_t nrow)
{
	if (nrow < m->nrow)
		m->nrow = nrow;
}
