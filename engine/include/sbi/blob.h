/* Little-endian byte buffers for model files: a growable writer and a
 * bounds-checked reader. A blob ends with a BLAKE2b-256 trailer over all
 * preceding bytes (sbi_blobw_finish / sbi_blobr_verify). */
#ifndef SBI_BLOB_H
#define SBI_BLOB_H

#include <stddef.h>
#include <stdint.h>

typedef struct sbi_blobw {
	unsigned char *p; /* owned until taken by the caller */
	size_t n, cap;
	int oom;
} sbi_blobw;

void sbi_blobw_bytes(sbi_blobw *w, const void *p, size_t n);
void sbi_blobw_u32(sbi_blobw *w, uint32_t v);
void sbi_blobw_u64(sbi_blobw *w, uint64_t v);
void sbi_blobw_f64(sbi_blobw *w, double v);
void sbi_blobw_f32s(sbi_blobw *w, const float *v, size_t n);
/* Appends the trailer; returns 0, or -1 when an allocation failed (then the
 * buffer is freed). */
int sbi_blobw_finish(sbi_blobw *w);

typedef struct sbi_blobr {
	const unsigned char *p;
	size_t n, off;
	int bad; /* set on any read past the end */
} sbi_blobr;

/* Checks the trailer and excludes it from what can be read: 0 or -1. */
int sbi_blobr_verify(sbi_blobr *r);
void sbi_blobr_bytes(sbi_blobr *r, void *out, size_t n);
uint32_t sbi_blobr_u32(sbi_blobr *r);
uint64_t sbi_blobr_u64(sbi_blobr *r);
double sbi_blobr_f64(sbi_blobr *r);
void sbi_blobr_f32s(sbi_blobr *r, float *out, size_t n);

#endif
