/* Shared-memory hand-off of finished chunks (see handoff.h).
 *
 * One MAP_SHARED anonymous mapping: a page-rounded header with each
 * chunk's row count plus one (0: not present), then the chunks' rows
 * packed back to back, chunk c at c * rows * (na + nb) doubles: a's rows,
 * then b's. Untouched pages cost nothing; taken ones are unmapped. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sbi/alloc.h"
#include "sbi/handoff.h"

struct sbi_handoff {
	size_t nchunks, rows, na, nb;
	unsigned char *map;       /* the mapping (owned) */
	volatile size_t *count;   /* the header, at the map's start */
	size_t bytes, head;       /* the map's size and the header's */
	size_t released;          /* the rows' bytes below this offset are unmapped */
	size_t next;              /* chunks below this one were taken or skipped */
};

static size_t
page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);
	return p > 0 ? (size_t)p : 4096;
}

sbi_handoff *
sbi_handoff_alloc(size_t nchunks, size_t rows, size_t na, size_t nb)
{
	size_t page = page_size(), width = na + nb;
	if (nchunks == 0 || rows == 0 || width == 0 || rows > (size_t)-1 / 4 / sizeof(double) / width ||
	    nchunks > (size_t)-1 / 4 / (rows * width * sizeof(double)))
		return NULL;
	sbi_handoff *h = sbi_malloc(sizeof *h);
	if (h == NULL)
		return NULL;
	*h = (sbi_handoff){ .nchunks = nchunks, .rows = rows, .na = na, .nb = nb };
	h->head = (nchunks * sizeof(size_t) + page - 1) / page * page;
	h->bytes = h->head + nchunks * rows * width * sizeof(double);
	h->released = h->head;
	/* MAP_NORESERVE: only the pages written count against memory. */
	void *m = mmap(NULL, h->bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		sbi_free(h);
		return NULL;
	}
	h->map = m;
	h->count = m;
	return h;
}

void
sbi_handoff_free(sbi_handoff *h)
{
	if (h == NULL)
		return;
	munmap(h->map, h->head);
	if (h->released < h->bytes)
		munmap(h->map + h->released, h->bytes - h->released);
	sbi_free(h);
}

/* Offset of chunk c's rows in the map. */
static size_t
chunk_offset(const sbi_handoff *h, size_t c)
{
	return h->head + c * h->rows * (h->na + h->nb) * sizeof(double);
}

int
sbi_handoff_put(sbi_handoff *h, size_t c, const sbi_mat *a, const sbi_mat *b)
{
	size_t m = a->nrow;
	if (c >= h->nchunks || m > h->rows || b->nrow != m || a->ncol != h->na || b->ncol != h->nb ||
	    chunk_offset(h, c) < h->released)
		return -1;
	double *d = (double *)(void *)(h->map + chunk_offset(h, c));
	memcpy(d, a->data, m * h->na * sizeof(double));
	memcpy(d + m * h->na, b->data, m * h->nb * sizeof(double));
	/* Written last: the parent reads the rows only after the task has
	 * answered over its socket (a system call on both sides). */
	h->count[c] = m + 1;
	return 0;
}

int
sbi_handoff_take(sbi_handoff *h, size_t c, sbi_mat *a, sbi_mat *b, size_t row, size_t *nrows)
{
	if (c >= h->nchunks || c < h->next || h->count[c] == 0)
		return 0;
	size_t m = h->count[c] - 1;
	if (row + m > a->nrow || row + m > b->nrow || a->ncol != h->na || b->ncol != h->nb)
		return 0;
	const double *d = (const double *)(const void *)(h->map + chunk_offset(h, c));
	memcpy(sbi_mat_row(a, row), d, m * h->na * sizeof(double));
	memcpy(sbi_mat_row(b, row), d + m * h->na, m * h->nb * sizeof(double));
	/* Unmaps the whole pages up to this chunk's end. */
	size_t page = page_size(), end = (chunk_offset(h, c) + m * (h->na + h->nb) * sizeof(double)) / page * page;
	if (end > h->released) {
		munmap(h->map + h->released, end - h->released);
		h->released = end;
	}
	h->next = c + 1;
	*nrows = m;
	return 1;
}
