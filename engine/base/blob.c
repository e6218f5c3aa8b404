/* Model-file byte buffers (see blob.h). Floats are stored in host order;
 * the engine only builds on little-endian hosts (artifact.c checks). */
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/blob.h"
#include "sbi/hash.h"

void
sbi_blobw_bytes(sbi_blobw *w, const void *p, size_t n)
{
	if (w->oom)
		return;
	if (w->cap - w->n < n) {
		size_t cap = (w->cap + n) * 2;
		unsigned char *np = sbi_realloc(w->p, cap);
		if (np == NULL) {
			w->oom = 1;
			return;
		}
		w->p = np;
		w->cap = cap;
	}
	memcpy(w->p + w->n, p, n);
	w->n += n;
}

void sbi_blobw_u32(sbi_blobw *w, uint32_t v) { sbi_blobw_bytes(w, &v, 4); }
void sbi_blobw_u64(sbi_blobw *w, uint64_t v) { sbi_blobw_bytes(w, &v, 8); }
void sbi_blobw_f64(sbi_blobw *w, double v) { sbi_blobw_bytes(w, &v, 8); }
void sbi_blobw_f32s(sbi_blobw *w, const float *v, size_t n) { sbi_blobw_bytes(w, v, n * sizeof(float)); }

int
sbi_blobw_finish(sbi_blobw *w)
{
	sbi_key k;
	if (!w->oom) {
		sbi_hash_buffer(w->p, w->n, &k);
		sbi_blobw_bytes(w, k.b, SBI_KEY_BYTES);
	}
	if (w->oom) {
		sbi_free(w->p);
		w->p = NULL;
		return -1;
	}
	return 0;
}

int
sbi_blobr_verify(sbi_blobr *r)
{
	if (r->n < SBI_KEY_BYTES)
		return -1;
	sbi_key k;
	sbi_hash_buffer(r->p, r->n - SBI_KEY_BYTES, &k);
	if (memcmp(k.b, r->p + r->n - SBI_KEY_BYTES, SBI_KEY_BYTES) != 0)
		return -1;
	r->n -= SBI_KEY_BYTES;
	return 0;
}

void
sbi_blobr_bytes(sbi_blobr *r, void *out, size_t n)
{
	if (r->bad || r->n - r->off < n) {
		r->bad = 1;
		memset(out, 0, n);
		return;
	}
	memcpy(out, r->p + r->off, n);
	r->off += n;
}

uint32_t sbi_blobr_u32(sbi_blobr *r) { uint32_t v; sbi_blobr_bytes(r, &v, 4); return v; }
uint64_t sbi_blobr_u64(sbi_blobr *r) { uint64_t v; sbi_blobr_bytes(r, &v, 8); return v; }
double sbi_blobr_f64(sbi_blobr *r) { double v; sbi_blobr_bytes(r, &v, 8); return v; }
void sbi_blobr_f32s(sbi_blobr *r, float *out, size_t n) { sbi_blobr_bytes(r, out, n * sizeof(float)); }
