/* Artifacts and their checksummed file format (see artifact.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sbi/alloc.h"
#include "sbi/artifact.h"
#include "sbi/fsutil.h"

#define MAGIC "SBIART02"
#define MAGIC_V1 "SBIART01" /* no key: written by sbirun before the key binding */
#define MAX_NAME 4096
#define MAX_FIELDS 65536

sbi_artifact *
sbi_artifact_alloc(void)
{
	sbi_artifact *a = sbi_calloc(1, sizeof(sbi_artifact));
	if (a)
		a->refs = 1;
	return a;
}

sbi_artifact *
sbi_artifact_retain(sbi_artifact *a)
{
	a->refs++;
	return a;
}

static void
field_clear(sbi_field *f)
{
	sbi_free(f->name);
	sbi_mat_free(f->mat);
	sbi_free(f->str);
	if (f->strs)
		for (size_t i = 0; i < f->len; i++)
			sbi_free(f->strs[i]);
	sbi_free(f->strs);
	sbi_free(f->lens);
	memset(f, 0, sizeof *f);
}

void
sbi_artifact_free(sbi_artifact *a)
{
	if (a == NULL || --a->refs > 0)
		return;
	for (size_t i = 0; i < a->nfields; i++)
		field_clear(&a->fields[i]);
	sbi_free(a->fields);
	sbi_free(a);
}

/* A cleared slot for name: the existing field of that name or a new one. */
static sbi_field *
slot(sbi_artifact *a, const char *name)
{
	for (size_t i = 0; i < a->nfields; i++)
		if (strcmp(a->fields[i].name, name) == 0) {
			char *keep = a->fields[i].name;
			a->fields[i].name = NULL;
			field_clear(&a->fields[i]);
			a->fields[i].name = keep;
			return &a->fields[i];
		}
	char *n = sbi_strdup(name);
	sbi_field *nf = n ? sbi_realloc(a->fields, (a->nfields + 1) * sizeof *nf) : NULL;
	if (nf == NULL) {
		sbi_free(n);
		return NULL;
	}
	a->fields = nf;
	sbi_field *f = &a->fields[a->nfields++];
	memset(f, 0, sizeof *f);
	f->name = n;
	return f;
}

int
sbi_artifact_set_mat(sbi_artifact *a, const char *name, sbi_mat *m)
{
	sbi_field *f = slot(a, name);
	if (f == NULL) {
		sbi_mat_free(m);
		return SBI_ENOMEM;
	}
	f->type = SBI_FIELD_MAT;
	f->mat = m;
	return SBI_OK;
}

int
sbi_artifact_set_str(sbi_artifact *a, const char *name, const char *s, size_t len)
{
	char *copy = sbi_malloc(len + 1);
	sbi_field *f = copy ? slot(a, name) : NULL;
	if (f == NULL) {
		sbi_free(copy);
		return SBI_ENOMEM;
	}
	memcpy(copy, s, len);
	copy[len] = '\0';
	f->type = SBI_FIELD_STR;
	f->str = copy;
	f->len = len;
	return SBI_OK;
}

int
sbi_artifact_set_num(sbi_artifact *a, const char *name, double v)
{
	sbi_field *f = slot(a, name);
	if (f == NULL)
		return SBI_ENOMEM;
	f->type = SBI_FIELD_NUM;
	f->num = v;
	return SBI_OK;
}

int
sbi_artifact_set_strs(sbi_artifact *a, const char *name, const char *const *s, const size_t *lens, size_t n)
{
	char **copy = sbi_calloc(n ? n : 1, sizeof *copy);
	size_t *len = sbi_calloc(n ? n : 1, sizeof *len);
	if (copy == NULL || len == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		len[i] = lens ? lens[i] : strlen(s[i]);
		if ((copy[i] = sbi_malloc(len[i] + 1)) == NULL)
			goto nomem;
		memcpy(copy[i], s[i], len[i]);
		copy[i][len[i]] = '\0';
	}
	sbi_field *f = slot(a, name);
	if (f == NULL)
		goto nomem;
	f->type = SBI_FIELD_STRS;
	f->strs = copy;
	f->lens = len;
	f->len = n;
	return SBI_OK;
nomem:
	for (size_t i = 0; copy && i < n; i++)
		sbi_free(copy[i]);
	sbi_free(copy);
	sbi_free(len);
	return SBI_ENOMEM;
}

const sbi_field *
sbi_artifact_get(const sbi_artifact *a, const char *name, int type)
{
	for (size_t i = 0; i < a->nfields; i++)
		if (strcmp(a->fields[i].name, name) == 0)
			return a->fields[i].type == type ? &a->fields[i] : NULL;
	return NULL;
}

sbi_mat *
sbi_artifact_mat(const sbi_artifact *a, const char *name)
{
	const sbi_field *f = sbi_artifact_get(a, name, SBI_FIELD_MAT);
	return f ? f->mat : NULL;
}

double
sbi_artifact_num(const sbi_artifact *a, const char *name, double def)
{
	const sbi_field *f = sbi_artifact_get(a, name, SBI_FIELD_NUM);
	return f ? f->num : def;
}

/* ---- writing ---- */

typedef struct writer {
	sbi_awriter aw;
	sbi_hasher h;
	sbi_err *err;
	int rc;
} writer;

static void
put(writer *w, const void *p, size_t n)
{
	if (w->rc != SBI_OK)
		return;
	sbi_hash_bytes(&w->h, p, n);
	w->rc = sbi_awriter_write(&w->aw, p, n, w->err);
}

static void
put_u32(writer *w, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8),
		(unsigned char)(v >> 16), (unsigned char)(v >> 24) };
	put(w, b, 4);
}

static void
put_u64(writer *w, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	put(w, b, 8);
}

/* Doubles are written in host order; the engine only supports
 * little-endian hosts (checked at build time below). */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian hosts only");

static void
put_field(writer *w, const sbi_field *f)
{
	put_u32(w, (uint32_t)f->type);
	put_u32(w, (uint32_t)strlen(f->name));
	put(w, f->name, strlen(f->name));
	switch (f->type) {
	case SBI_FIELD_MAT:
		put_u64(w, f->mat->nrow);
		put_u64(w, f->mat->ncol);
		put(w, f->mat->data, f->mat->nrow * f->mat->ncol * sizeof(double));
		break;
	case SBI_FIELD_STR:
		put_u64(w, f->len);
		put(w, f->str, f->len);
		break;
	case SBI_FIELD_NUM:
		put(w, &f->num, sizeof f->num);
		break;
	case SBI_FIELD_STRS:
		put_u64(w, f->len);
		for (size_t i = 0; i < f->len; i++) {
			put_u64(w, f->lens[i]);
			put(w, f->strs[i], f->lens[i]);
		}
		break;
	}
}

int
sbi_artifact_content_hash(const char *path, sbi_key *out, sbi_err *err)
{
	sbi_artifact *a = NULL;
	int rc = sbi_artifact_load(path, NULL, &a, err); /* valid, so the layout below holds */
	sbi_artifact_free(a);
	char *data = NULL;
	size_t n = 0;
	if (rc == SBI_OK)
		rc = sbi_fs_read_all(path, &data, &n, err);
	if (rc == SBI_OK && n < 8 + 2 * SBI_KEY_BYTES)
		rc = sbi_err_set(err, SBI_ECORRUPT, "artifact %s changed while read", path);
	if (rc == SBI_OK) {
		/* magic, key | fields | trailer */
		sbi_hasher h;
		sbi_hash_init(&h);
		sbi_hash_bytes(&h, data + 8 + SBI_KEY_BYTES, n - 8 - 2 * SBI_KEY_BYTES);
		sbi_hash_final(&h, out);
	}
	sbi_free(data);
	return rc;
}

char *
sbi_artifact_path(const char *dir, const sbi_key *h)
{
	char hex[SBI_KEY_HEX], rel[SBI_KEY_HEX + 1];
	sbi_key_hex(h, hex);
	snprintf(rel, sizeof rel, "%.2s/%s", hex, hex + 2);
	return sbi_path_join(dir, rel);
}

static int
cmp_field_name(const void *x, const void *y)
{
	return strcmp((*(const sbi_field *const *)x)->name, (*(const sbi_field *const *)y)->name);
}

int
sbi_artifact_store(const sbi_artifact *a, const char *dir, const sbi_key *key, sbi_key *hash, sbi_err *err)
{
	return sbi_artifact_store_sync(a, dir, key, 1, hash, err);
}

int
sbi_artifact_store_sync(const sbi_artifact *a, const char *dir, const sbi_key *key, int sync, sbi_key *hash,
    sbi_err *err)
{
	/* Fields are written sorted by name, so equal contents give equal bytes
	 * (and hashes) whatever order they were set in. */
	const sbi_field **order = sbi_malloc((a->nfields ? a->nfields : 1) * sizeof *order);
	if (order == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	for (size_t i = 0; i < a->nfields; i++)
		order[i] = &a->fields[i];
	qsort(order, a->nfields, sizeof *order, cmp_field_name);
	writer w = { .err = err, .rc = SBI_OK };
	int rc = sbi_awriter_open(&w.aw, dir, err);
	if (rc != SBI_OK) {
		sbi_free(order);
		return rc;
	}
	w.aw.sync = sync;
	sbi_hash_init(&w.h);
	put(&w, MAGIC, 8);
	put(&w, key->b, SBI_KEY_BYTES);
	put_u32(&w, (uint32_t)a->nfields);
	for (size_t i = 0; i < a->nfields; i++)
		put_field(&w, order[i]);
	sbi_free(order);
	sbi_hash_final(&w.h, hash);
	if (w.rc == SBI_OK)
		w.rc = sbi_awriter_write(&w.aw, hash->b, SBI_KEY_BYTES, err);
	char *path = sbi_artifact_path(dir, hash), *sub = NULL;
	if (w.rc == SBI_OK && path == NULL)
		w.rc = sbi_err_set(err, SBI_ENOMEM, "out of memory");
	if (w.rc == SBI_OK) {
		sub = sbi_strdup(path);
		if (sub == NULL)
			w.rc = sbi_err_set(err, SBI_ENOMEM, "out of memory");
		else {
			*strrchr(sub, '/') = '\0';
			w.rc = sbi_fs_mkdirs(sub, err);
		}
	}
	if (w.rc == SBI_OK)
		w.rc = sbi_awriter_commit(&w.aw, path, err);
	else
		sbi_awriter_abort(&w.aw);
	sbi_free(sub);
	sbi_free(path);
	return w.rc;
}

/* ---- reading ---- */

typedef struct reader {
	FILE *f;
	sbi_hasher h;
	const char *path;
	sbi_err *err;
	int rc;
	uint64_t left; /* payload bytes not read yet, trailer excluded */
} reader;

static int
corrupt(reader *r, const char *what)
{
	if (r->rc == SBI_OK)
		r->rc = sbi_err_set(r->err, SBI_ECORRUPT, "artifact %s is corrupt: %s", r->path, what);
	return r->rc;
}

static int
get(reader *r, void *p, size_t n)
{
	if (r->rc != SBI_OK)
		return r->rc;
	if (n > r->left || fread(p, 1, n, r->f) != n)
		return corrupt(r, "truncated");
	r->left -= n;
	sbi_hash_bytes(&r->h, p, n);
	return SBI_OK;
}

static uint64_t
get_u64(reader *r)
{
	unsigned char b[8] = { 0 };
	get(r, b, 8);
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static uint32_t
get_u32(reader *r)
{
	unsigned char b[4] = { 0 };
	get(r, b, 4);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Reads a length-prefixed string of at most max bytes; caller frees. */
static char *
get_string(reader *r, uint64_t len, uint64_t max)
{
	if (len > max || len > r->left) {
		corrupt(r, "string length out of range");
		return NULL;
	}
	char *s = sbi_malloc(len + 1);
	if (s == NULL) {
		r->rc = sbi_err_set(r->err, SBI_ENOMEM, "out of memory reading %s", r->path);
		return NULL;
	}
	if (get(r, s, len) != SBI_OK) {
		sbi_free(s);
		return NULL;
	}
	s[len] = '\0';
	return s;
}

static void
get_mat(reader *r, sbi_artifact *a, const char *name)
{
	uint64_t nrow = get_u64(r), ncol = get_u64(r);
	if (r->rc != SBI_OK)
		return;
	if (ncol > (1u << 30) || (ncol && nrow > r->left / sizeof(double) / ncol)) {
		corrupt(r, "matrix size out of range");
		return;
	}
	sbi_mat *m = sbi_mat_alloc(nrow, ncol);
	if (m == NULL) {
		r->rc = sbi_err_set(r->err, SBI_ENOMEM, "out of memory reading %s", r->path);
		return;
	}
	if (get(r, m->data, nrow * ncol * sizeof(double)) != SBI_OK) {
		sbi_mat_free(m);
		return;
	}
	if (sbi_artifact_set_mat(a, name, m) != SBI_OK)
		r->rc = sbi_err_set(r->err, SBI_ENOMEM, "out of memory");
}

static void
get_strs(reader *r, sbi_artifact *a, const char *name)
{
	uint64_t n = get_u64(r);
	if (r->rc == SBI_OK && n > r->left / 8) {
		corrupt(r, "string list too long");
		return;
	}
	char **v = r->rc == SBI_OK ? sbi_calloc(n ? n : 1, sizeof *v) : NULL;
	size_t *lens = v ? sbi_calloc(n ? n : 1, sizeof *lens) : NULL;
	if (lens == NULL) {
		if (r->rc == SBI_OK)
			r->rc = sbi_err_set(r->err, SBI_ENOMEM, "out of memory");
		sbi_free(v);
		return;
	}
	for (uint64_t i = 0; i < n && r->rc == SBI_OK; i++) {
		uint64_t len = get_u64(r);
		v[i] = get_string(r, len, (uint64_t)1 << 32);
		lens[i] = (size_t)len;
	}
	if (r->rc == SBI_OK && sbi_artifact_set_strs(a, name, (const char *const *)v, lens, n) != SBI_OK)
		r->rc = sbi_err_set(r->err, SBI_ENOMEM, "out of memory");
	for (uint64_t i = 0; i < n; i++)
		sbi_free(v[i]);
	sbi_free(v);
	sbi_free(lens);
}

static void
get_field(reader *r, sbi_artifact *a)
{
	uint32_t type = get_u32(r);
	char *name = get_string(r, get_u32(r), MAX_NAME);
	if (name == NULL)
		return;
	switch (type) {
	case SBI_FIELD_MAT:
		get_mat(r, a, name);
		break;
	case SBI_FIELD_STR: {
		uint64_t len = get_u64(r);
		char *s = get_string(r, len, (uint64_t)1 << 32);
		if (s && sbi_artifact_set_str(a, name, s, len) != SBI_OK)
			r->rc = sbi_err_set(r->err, SBI_ENOMEM, "out of memory");
		sbi_free(s);
		break;
	}
	case SBI_FIELD_NUM: {
		double v = 0;
		if (get(r, &v, sizeof v) == SBI_OK && sbi_artifact_set_num(a, name, v) != SBI_OK)
			r->rc = sbi_err_set(r->err, SBI_ENOMEM, "out of memory");
		break;
	}
	case SBI_FIELD_STRS:
		get_strs(r, a, name);
		break;
	default:
		corrupt(r, "unknown field type");
	}
	sbi_free(name);
}

static void
check_trailer(reader *r, const sbi_key *expect)
{
	sbi_key got, stored;
	sbi_hash_final(&r->h, &got);
	if (fread(stored.b, 1, SBI_KEY_BYTES, r->f) != SBI_KEY_BYTES) {
		corrupt(r, "truncated");
		return;
	}
	if (r->left != 0)
		corrupt(r, "trailing bytes");
	else if (!sbi_key_equal(&got, &stored))
		corrupt(r, "checksum mismatch");
	else if (expect && !sbi_key_equal(&got, expect))
		corrupt(r, "content does not match its name");
}

int
sbi_artifact_load(const char *path, const sbi_key *expect, sbi_artifact **out, sbi_err *err)
{
	reader r = { .path = path, .err = err, .rc = SBI_OK };
	sbi_err why = { 0 };
	int rc = sbi_fs_open_regular(path, &r.f, &why);
	if (rc != SBI_OK) /* not a regular file: corrupt, so the cache drops it */
		return sbi_err_set(err, rc == SBI_EINVAL ? SBI_ECORRUPT : rc, "%s", why.msg);
	sbi_artifact *a = sbi_artifact_alloc();
	if (a == NULL) {
		fclose(r.f);
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	}
	sbi_hash_init(&r.h);
	struct stat st;
	if (fstat(fileno(r.f), &st) != 0 || st.st_size < 2 * SBI_KEY_BYTES + 12)
		corrupt(&r, "truncated");
	else
		r.left = (uint64_t)st.st_size - SBI_KEY_BYTES;
	char magic[8];
	if (get(&r, magic, 8) == SBI_OK && memcmp(magic, MAGIC, 8) != 0) {
		if (memcmp(magic, MAGIC_V1, 8) == 0) /* a miss, never read as today's format */
			r.rc = sbi_err_set(err, SBI_ENOTFOUND, "artifact %s has format version 1 (an older sbirun)",
			    path);
		else
			corrupt(&r, "bad magic");
	}
	get(&r, a->key.b, SBI_KEY_BYTES);
	uint32_t n = get_u32(&r);
	if (r.rc == SBI_OK && n > MAX_FIELDS)
		corrupt(&r, "too many fields");
	for (uint32_t i = 0; i < n && r.rc == SBI_OK; i++)
		get_field(&r, a);
	if (r.rc == SBI_OK)
		check_trailer(&r, expect);
	fclose(r.f);
	if (r.rc != SBI_OK) {
		sbi_artifact_free(a);
		return r.rc;
	}
	*out = a;
	return SBI_OK;
}
