/* Keys and content hashes: BLAKE2b-256 from libb2.
 *
 * libb2 is the reference BLAKE2 implementation packaged by Debian; BLAKE2b
 * is a cryptographic hash (a tampered artifact cannot be made to match its
 * name) and is faster than SHA-256 on 64-bit CPUs. */
#ifndef SBI_HASH_H
#define SBI_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <blake2.h>

#define SBI_KEY_BYTES 32
#define SBI_KEY_HEX (2 * SBI_KEY_BYTES + 1)

/* A 256-bit hash: a node key or the name of an artifact. */
typedef struct sbi_key {
	unsigned char b[SBI_KEY_BYTES];
} sbi_key;

typedef struct sbi_hasher {
	blake2b_state st;
} sbi_hasher;

void sbi_hash_init(sbi_hasher *h);
void sbi_hash_bytes(sbi_hasher *h, const void *p, size_t n);
/* Typed updates: each writes a tag byte first, so that ("ab", "c") and
 * ("a", "bc") or 1 and 1.0 hash differently. */
void sbi_hash_u64(sbi_hasher *h, uint64_t v);
void sbi_hash_f64(sbi_hasher *h, double v); /* bit pattern; -0.0 != 0.0 */
void sbi_hash_str(sbi_hasher *h, const char *s, size_t n);
void sbi_hash_key(sbi_hasher *h, const sbi_key *k);
void sbi_hash_final(sbi_hasher *h, sbi_key *out);

/* The hash of one buffer. */
void sbi_hash_buffer(const void *p, size_t n, sbi_key *out);

struct sbi_err;
/* The hash of a file's content, as lower-case hex (SBI_KEY_HEX bytes);
 * SBI_OK or the read error. */
int sbi_hash_file_hex(const char *path, char hex[SBI_KEY_HEX], struct sbi_err *err);

/* Lower-case hex, NUL-terminated (SBI_KEY_HEX bytes). */
void sbi_key_hex(const sbi_key *k, char out[SBI_KEY_HEX]);
/* Parses 64 hex digits; SBI_OK or SBI_EINVAL. */
int sbi_key_from_hex(const char *hex, sbi_key *out);
int sbi_key_equal(const sbi_key *a, const sbi_key *b);

#endif
