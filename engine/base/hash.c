/* BLAKE2b-256 keys (see hash.h). */
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/err.h"
#include "sbi/fsutil.h"
#include "sbi/hash.h"

enum { TAG_U64 = 1, TAG_F64 = 2, TAG_STR = 3, TAG_KEY = 4 };

void
sbi_hash_init(sbi_hasher *h)
{
	blake2b_init(&h->st, SBI_KEY_BYTES);
}

void
sbi_hash_bytes(sbi_hasher *h, const void *p, size_t n)
{
	blake2b_update(&h->st, p, n);
}

static void
put_tag_u64(sbi_hasher *h, unsigned char tag, uint64_t v)
{
	unsigned char b[9];
	b[0] = tag;
	for (int i = 0; i < 8; i++)
		b[1 + i] = (unsigned char)(v >> (8 * i));
	sbi_hash_bytes(h, b, sizeof b);
}

void
sbi_hash_u64(sbi_hasher *h, uint64_t v)
{
	put_tag_u64(h, TAG_U64, v);
}

void
sbi_hash_f64(sbi_hasher *h, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof bits);
	put_tag_u64(h, TAG_F64, bits);
}

void
sbi_hash_str(sbi_hasher *h, const char *s, size_t n)
{
	put_tag_u64(h, TAG_STR, (uint64_t)n);
	sbi_hash_bytes(h, s, n);
}

void
sbi_hash_key(sbi_hasher *h, const sbi_key *k)
{
	unsigned char tag = TAG_KEY;
	sbi_hash_bytes(h, &tag, 1);
	sbi_hash_bytes(h, k->b, SBI_KEY_BYTES);
}

void
sbi_hash_final(sbi_hasher *h, sbi_key *out)
{
	blake2b_final(&h->st, out->b, SBI_KEY_BYTES);
}

void
sbi_hash_buffer(const void *p, size_t n, sbi_key *out)
{
	sbi_hasher h;
	sbi_hash_init(&h);
	sbi_hash_bytes(&h, p, n);
	sbi_hash_final(&h, out);
}

int
sbi_hash_file_hex(const char *path, char hex[SBI_KEY_HEX], sbi_err *err)
{
	char *data; /* owned, freed here */
	size_t n;
	int rc = sbi_fs_read_all(path, &data, &n, err);
	if (rc != SBI_OK)
		return rc;
	sbi_key k;
	sbi_hash_buffer(data, n, &k);
	sbi_free(data);
	sbi_key_hex(&k, hex);
	return SBI_OK;
}

void
sbi_key_hex(const sbi_key *k, char out[SBI_KEY_HEX])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < SBI_KEY_BYTES; i++) {
		out[2 * i] = digits[k->b[i] >> 4];
		out[2 * i + 1] = digits[k->b[i] & 15];
	}
	out[2 * SBI_KEY_BYTES] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
sbi_key_from_hex(const char *hex, sbi_key *out)
{
	for (int i = 0; i < SBI_KEY_BYTES; i++) {
		int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return SBI_EINVAL;
		out->b[i] = (unsigned char)(hi << 4 | lo);
	}
	return SBI_OK;
}

int
sbi_key_equal(const sbi_key *a, const sbi_key *b)
{
	return memcmp(a->b, b->b, SBI_KEY_BYTES) == 0;
}
