/* Analysis bundles: writing, verifying and unpacking (see bundle.h and
 * docs/bundles.md for the format). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "sbi/alloc.h"
#include "sbi/bundle.h"
#include "sbi/cache.h"
#include "sbi/fsutil.h"

#define BLOCK ((size_t)1 << 16)
#define MANIFEST "manifest.json"
#define MANIFEST_HASH "manifest.blake2b"

enum { COMP_NONE, COMP_ZSTD, COMP_GZIP, COMP_XZ };

/* ---- hashing files ---- */

/* A hasher over all bytes, plus one over all but the last 32 (an
 * artifact's body), keeping the last 32 (its trailer). */
typedef struct thash {
	sbi_hasher all, body;
	unsigned char win[SBI_KEY_BYTES];
	size_t nwin;
	uint64_t n;
} thash;

static void
th_init(thash *t)
{
	memset(t, 0, sizeof *t);
	sbi_hash_init(&t->all);
	sbi_hash_init(&t->body);
}

static void
th_update(thash *t, const unsigned char *p, size_t n)
{
	sbi_hash_bytes(&t->all, p, n);
	t->n += n;
	if (n >= SBI_KEY_BYTES) {
		sbi_hash_bytes(&t->body, t->win, t->nwin);
		sbi_hash_bytes(&t->body, p, n - SBI_KEY_BYTES);
		memcpy(t->win, p + n - SBI_KEY_BYTES, SBI_KEY_BYTES);
		t->nwin = SBI_KEY_BYTES;
		return;
	}
	if (t->nwin + n > SBI_KEY_BYTES) {
		size_t out = t->nwin + n - SBI_KEY_BYTES;
		sbi_hash_bytes(&t->body, t->win, out);
		memmove(t->win, t->win + out, t->nwin - out);
		t->nwin -= out;
	}
	memcpy(t->win + t->nwin, p, n);
	t->nwin += n;
}

/* 1 when the bytes hashed form an artifact whose trailer is name. */
static int
th_artifact_ok(thash *t, const sbi_key *name)
{
	sbi_key body;
	if (t->n < 8 + 4 + SBI_KEY_BYTES || t->nwin != SBI_KEY_BYTES)
		return 0;
	sbi_hasher copy = t->body;
	sbi_hash_final(&copy, &body);
	return sbi_key_equal(&body, name) && memcmp(t->win, name->b, SBI_KEY_BYTES) == 0;
}

static int
hash_file(const char *src, thash *t, sbi_err *err)
{
	FILE *f;
	int rc = sbi_fs_open_regular(src, &f, err); /* a FIFO must not block bundling */
	if (rc != SBI_OK)
		return rc;
	unsigned char *buf = sbi_malloc(BLOCK);
	if (buf == NULL) {
		fclose(f);
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	}
	th_init(t);
	size_t k;
	while ((k = fread(buf, 1, BLOCK, f)) > 0)
		th_update(t, buf, k);
	int bad = ferror(f);
	fclose(f);
	sbi_free(buf);
	if (bad)
		return sbi_err_set(err, SBI_EIO, "cannot read %s", src);
	return SBI_OK;
}

/* ---- names ---- */

static int
is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[n] == '\0';
}

/* Why rest (a name after recipe/ or data/, which unpack writes to
 * DIR/rest) is reserved, or NULL: only cache/ entries may reach the
 * cache folder .sbirun (its reads.json lists files to bundle), and the
 * marker and the map are unpack's own. */
static const char *
reserved_name(const char *rest)
{
	if (strncmp(rest, SBI_BUNDLE_MARKER, strlen(SBI_BUNDLE_MARKER)) == 0)
		return "reserved name (" SBI_BUNDLE_MARKER "...)";
	for (const char *c = rest; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL)
		if (strncmp(c, ".sbirun", 7) == 0 && (c[7] == '/' || c[7] == '\0'))
			return "a .sbirun folder (cache metadata) outside cache/";
	return NULL;
}

const char *
sbi_bundle_check_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0)
		return "empty name";
	if (n > 1024)
		return "name longer than 1024 bytes";
	if (name[0] == '/')
		return "absolute path";
	for (const char *c = name;;) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return "'..' component";
		if (len == 1 && c[0] == '.')
			return "'.' component";
		if (len == 0)
			return "empty path component";
		if (e == NULL)
			break;
		c = e + 1;
	}
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		if (*c < 0x20 || *c == 0x7f || *c == '\\')
			return "control character or backslash";
	if (strncmp(name, "cache/objects/", 14) == 0 || strncmp(name, "cache/refs/", 11) == 0) {
		const char *h = name + (name[6] == 'o' ? 14 : 11);
		if (strlen(h) != 65 || h[2] != '/' || !is_hex(h + 3, 62))
			return "cache path not of the form xx/<62 hex digits>";
		char two[3] = { h[0], h[1], '\0' };
		return is_hex(two, 2) ? NULL : "cache path not of the form xx/<62 hex digits>";
	}
	if (strncmp(name, "recipe/", 7) == 0 || strncmp(name, "data/", 5) == 0)
		return reserved_name(name + (name[0] == 'r' ? 7 : 5));
	return "not under recipe/, data/ or cache/";
}

/* ---- text from a bundle ---- */

size_t
sbi_utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	size_t len = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 :
	    p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) || (p[0] == 0xf0 && p[1] < 0x90) ||
	    (p[0] == 0xf4 && p[1] >= 0x90))
		return 0; /* overlong, surrogate or beyond U+10FFFF */
	return len;
}

/* Length of the valid UTF-8 sequence at p (p[0] >= 0x80) that is safe to
 * print, else 0 (C1 controls U+0080-9F and the bidirectional overrides
 * U+202A-202E, U+2066-2069 are not: they reorder or recolour what follows). */
static size_t
utf8_printable(const unsigned char *p)
{
	size_t len = sbi_utf8_len(p);
	if (len == 0 || (p[0] == 0xc2 && p[1] < 0xa0))
		return 0;
	if (p[0] == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) || (p[1] == 0x81 && p[2] >= 0xa6 &&
	    p[2] <= 0xa9)))
		return 0;
	return len;
}

char *
sbi_bundle_escape(const char *s, char *out, size_t n)
{
	SBI_ASSERT(n >= 8);
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t o = 0;
	while (*p) {
		char piece[8];
		size_t adv = *p >= 0x20 && *p < 0x7f ? 1 : *p >= 0x80 ? utf8_printable(p) : 0, len;
		if (adv)
			memcpy(piece, p, len = adv);
		else
			len = (size_t)snprintf(piece, sizeof piece, "\\x%02x", *p), adv = 1;
		if (o + len + 4 > n) { /* room for "..." and the NUL */
			memcpy(out + o, "...", 4);
			return out;
		}
		memcpy(out + o, piece, len);
		o += len;
		p += adv;
	}
	out[o] = '\0';
	return out;
}

char *
sbi_bundle_shell_quote(const char *s)
{
	size_t n = strlen(s), extra = 0;
	int plain = n > 0;
	for (const char *c = s; *c; c++) {
		plain = plain && (strchr("_./=:,+@%-", *c) != NULL || (*c >= 'a' && *c <= 'z') ||
		    (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'));
		extra += *c == '\'' ? 3 : 0;
	}
	char *q = sbi_malloc(n + extra + 3), *o = q;
	if (q == NULL)
		return NULL;
	if (plain) {
		memcpy(q, s, n + 1);
		return q;
	}
	*o++ = '\'';
	for (const char *c = s; *c; c++)
		if (*c == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else
			*o++ = *c;
	*o++ = '\'';
	*o = '\0';
	return q;
}

/* ---- the list of files ---- */

void
sbi_bundle_files_clear(sbi_bundle_files *f)
{
	for (size_t i = 0; i < f->n; i++) {
		sbi_free(f->v[i].name);
		sbi_free(f->v[i].src);
	}
	sbi_free(f->v);
	memset(f, 0, sizeof *f);
}

int
sbi_bundle_files_has(const sbi_bundle_files *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->v[i].name, name) == 0)
			return 1;
	return 0;
}

static int
files_push(sbi_bundle_files *f, const char *name, const char *src, const thash *t, sbi_err *err)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 16;
		sbi_bundle_file *v = sbi_realloc(f->v, cap * sizeof *v);
		if (v == NULL)
			return sbi_err_set(err, SBI_ENOMEM, "out of memory");
		f->v = v;
		f->cap = cap;
	}
	sbi_bundle_file *e = &f->v[f->n];
	e->name = sbi_strdup(name);
	e->src = sbi_strdup(src);
	if (e->name == NULL || e->src == NULL) {
		sbi_free(e->name);
		sbi_free(e->src);
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	}
	e->size = t->n;
	sbi_hasher copy = t->all;
	sbi_hash_final(&copy, &e->hash);
	f->n++;
	return SBI_OK;
}

int
sbi_bundle_files_add(sbi_bundle_files *f, const char *name, const char *src, sbi_err *err)
{
	const char *why = sbi_bundle_check_name(name);
	if (why)
		return sbi_err_set(err, SBI_EINVAL, "bundle entry %s: %s", name, why);
	if (sbi_bundle_files_has(f, name))
		return SBI_OK;
	thash t;
	int rc = hash_file(src, &t, err);
	return rc != SBI_OK ? rc : files_push(f, name, src, &t, err);
}

/* Adds the ref at ref_path (named key) and its object, after checking
 * both. */
static int
add_ref_file(sbi_bundle_files *f, const char *cache_dir, const char *ref_path, const sbi_key *key,
    sbi_key *obj, sbi_err *err)
{
	sbi_key o;
	int rc = sbi_cache_read_ref(ref_path, &o, err);
	if (rc != SBI_OK)
		return rc;
	char *opath = sbi_cache_object_path(cache_dir, &o);
	if (opath == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	thash th, tr;
	rc = hash_file(opath, &th, err);
	if (rc == SBI_OK && !th_artifact_ok(&th, &o))
		rc = sbi_err_set(err, SBI_ECORRUPT, "cache object %s is corrupt: checksum mismatch", opath);
	if (rc == SBI_OK)
		rc = hash_file(ref_path, &tr, err);
	char kh[SBI_KEY_HEX], oh[SBI_KEY_HEX], oname[96], rname[96];
	sbi_key_hex(key, kh);
	sbi_key_hex(&o, oh);
	snprintf(oname, sizeof oname, "cache/objects/%.2s/%s", oh, oh + 2);
	snprintf(rname, sizeof rname, "cache/refs/%.2s/%s", kh, kh + 2);
	if (rc == SBI_OK && !sbi_bundle_files_has(f, oname))
		rc = files_push(f, oname, opath, &th, err);
	if (rc == SBI_OK && !sbi_bundle_files_has(f, rname))
		rc = files_push(f, rname, ref_path, &tr, err);
	sbi_free(opath);
	if (rc == SBI_OK && obj)
		*obj = o;
	return rc;
}

int
sbi_bundle_add_cached(sbi_bundle_files *f, const char *cache_dir, const sbi_key *key, sbi_key *obj,
    sbi_err *err)
{
	char *rpath = sbi_cache_ref_path(cache_dir, key);
	if (rpath == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	int rc = add_ref_file(f, cache_dir, rpath, key, obj, err);
	sbi_free(rpath);
	return rc;
}

typedef struct chunk_adder {
	sbi_bundle_files *f;
	const char *cache_dir;
	long count;
} chunk_adder;

/* sbi_cache_ref_fn: adds one chunk; a damaged one is skipped. */
static int
add_chunk(void *ud, const char *ref_path, const sbi_key *key)
{
	chunk_adder *c = ud;
	sbi_err e = { 0 };
	int rc = add_ref_file(c->f, c->cache_dir, ref_path, key, NULL, &e);
	if (rc == SBI_OK)
		c->count++;
	return rc == SBI_ENOMEM ? rc : SBI_OK;
}

int
sbi_bundle_add_chunks(sbi_bundle_files *f, const char *cache_dir, const sbi_key *owner, long *count,
    sbi_err *err)
{
	chunk_adder c = { f, cache_dir, 0 };
	int rc = sbi_cache_each_chunk(cache_dir, owner, add_chunk, &c);
	*count = c.count;
	if (rc != SBI_OK)
		return sbi_err_set(err, rc, "out of memory");
	return SBI_OK;
}

/* ---- writing ---- */

int
sbi_bundle_compression(const char *name, int *out)
{
	static const struct { const char *name; int c; } t[] = {
		{ "zstd", COMP_ZSTD }, { "gzip", COMP_GZIP }, { "xz", COMP_XZ }, { "none", COMP_NONE },
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++)
		if (strcmp(name, t[i].name) == 0) {
			*out = t[i].c;
			return SBI_OK;
		}
	return SBI_EINVAL;
}

static int
ar_err(struct archive *a, sbi_err *err, const char *what, const char *path)
{
	const char *m = archive_error_string(a);
	return sbi_err_set(err, SBI_EIO, "%s %s: %s", what, path, m ? m : "unknown libarchive error");
}

static int
write_entry_header(struct archive *a, const char *name, uint64_t size, time_t mtime, const char *path,
    sbi_err *err)
{
	struct archive_entry *e = archive_entry_new();
	if (e == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	archive_entry_set_pathname(e, name);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, mtime, 0);
	int r = archive_write_header(a, e);
	archive_entry_free(e);
	return r == ARCHIVE_OK ? SBI_OK : ar_err(a, err, "cannot write bundle", path);
}

static int
write_buffer_entry(struct archive *a, const char *name, const char *data, size_t n, time_t mtime,
    const char *path, sbi_err *err)
{
	int rc = write_entry_header(a, name, n, mtime, path, err);
	if (rc == SBI_OK && n > 0 && archive_write_data(a, data, n) != (la_ssize_t)n)
		rc = ar_err(a, err, "cannot write bundle", path);
	return rc;
}

static int
write_file_entry(struct archive *a, const sbi_bundle_file *fe, unsigned char *buf, time_t mtime,
    const char *path, sbi_err *err)
{
	int rc = write_entry_header(a, fe->name, fe->size, mtime, path, err);
	if (rc != SBI_OK)
		return rc;
	FILE *f;
	if ((rc = sbi_fs_open_regular(fe->src, &f, err)) != SBI_OK)
		return rc;
	sbi_hasher h;
	sbi_hash_init(&h);
	uint64_t total = 0;
	size_t k;
	while (rc == SBI_OK && (k = fread(buf, 1, BLOCK, f)) > 0) {
		if (total + k > fe->size)
			k = (size_t)(fe->size - total); /* grew: the hash check below fails */
		sbi_hash_bytes(&h, buf, k);
		total += k;
		if (k > 0 && archive_write_data(a, buf, k) != (la_ssize_t)k)
			rc = ar_err(a, err, "cannot write bundle", path);
		if (total == fe->size && !feof(f) && fgetc(f) != EOF)
			total++; /* grew */
		if (total > fe->size)
			break;
	}
	fclose(f);
	sbi_key got;
	sbi_hash_final(&h, &got);
	if (rc == SBI_OK && (total != fe->size || !sbi_key_equal(&got, &fe->hash)))
		rc = sbi_err_set(err, SBI_EIO, "%s changed while the bundle was written; try again", fe->src);
	return rc;
}

int
sbi_bundle_write(const char *path, int compression, json_t *manifest, const sbi_bundle_files *f,
    sbi_err *err)
{
	json_t *files = json_array();
	for (size_t i = 0; files && i < f->n; i++) {
		char hex[SBI_KEY_HEX];
		sbi_key_hex(&f->v[i].hash, hex);
		json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", f->v[i].name, "size",
		    (json_int_t)f->v[i].size, "blake2b", hex));
	}
	if (files == NULL || json_object_set_new(manifest, "files", files) != 0)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	char *text = json_dumps(manifest, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "cannot encode the manifest");
	size_t tn = strlen(text);
	sbi_key mh;
	char mhex[SBI_KEY_HEX + 1];
	sbi_hash_buffer(text, tn, &mh);
	sbi_key_hex(&mh, mhex);
	mhex[SBI_KEY_HEX - 1] = '\n';
	mhex[SBI_KEY_HEX] = '\0';

	size_t pl = strlen(path);
	char *tmp = sbi_malloc(pl + 16);
	unsigned char *buf = sbi_malloc(BLOCK);
	struct archive *a = archive_write_new();
	int rc = SBI_OK, fd = -1;
	if (tmp == NULL || buf == NULL || a == NULL) {
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory");
		goto done;
	}
	snprintf(tmp, pl + 16, "%s.tmp-XXXXXX", path);
	if ((fd = mkstemp(tmp)) < 0) {
		rc = sbi_err_set(err, SBI_EIO, "cannot write bundle %s: %s", path, strerror(errno));
		goto done;
	}
	fchmod(fd, 0644);
	int fr = ARCHIVE_OK;
	switch (compression) {
	case COMP_ZSTD: fr = archive_write_add_filter_zstd(a); break;
	case COMP_GZIP: fr = archive_write_add_filter_gzip(a); break;
	case COMP_XZ: fr = archive_write_add_filter_xz(a); break;
	default: fr = archive_write_add_filter_none(a); break;
	}
	if (fr != ARCHIVE_OK || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		rc = ar_err(a, err, "cannot write bundle", path);
		goto done;
	}
	time_t now = time(NULL);
	rc = write_buffer_entry(a, MANIFEST, text, tn, now, path, err);
	if (rc == SBI_OK)
		rc = write_buffer_entry(a, MANIFEST_HASH, mhex, SBI_KEY_HEX, now, path, err);
	for (size_t i = 0; rc == SBI_OK && i < f->n; i++)
		rc = write_file_entry(a, &f->v[i], buf, now, path, err);
	if (rc == SBI_OK && archive_write_close(a) != ARCHIVE_OK)
		rc = ar_err(a, err, "cannot write bundle", path);
	if (rc == SBI_OK && fsync(fd) != 0)
		rc = sbi_err_set(err, SBI_EIO, "cannot write bundle %s: %s", path, strerror(errno));
	if (rc == SBI_OK && rename(tmp, path) != 0)
		rc = sbi_err_set(err, SBI_EIO, "cannot write bundle %s: %s", path, strerror(errno));
done:
	if (a)
		archive_write_free(a);
	if (fd >= 0) {
		close(fd);
		if (rc != SBI_OK)
			unlink(tmp);
	}
	sbi_free(tmp);
	sbi_free(buf);
	free(text);
	return rc;
}

/* ---- reading ---- */

typedef struct decl {
	const char *name; /* borrowed from the manifest */
	uint64_t size;
	sbi_key hash;
	int seen;
} decl;

typedef struct reader {
	const char *path;
	struct archive *a;
	json_t *manifest;
	decl *d;
	size_t nd;
	sbi_bundle_limits lim; /* every field set */
	int unpack;          /* stop at the first problem */
	const char *tmp;     /* unpack: the temporary directory */
	sbi_bundle_problems *p;
	int code;            /* code of the first problem */
	sbi_err *err;
	unsigned char *buf;
} reader;

void
sbi_bundle_problems_clear(sbi_bundle_problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		sbi_free(p->msg[i]);
	sbi_free(p->msg);
	memset(p, 0, sizeof *p);
}

/* Records a problem; returns 1 when reading must stop (unpack). */
__attribute__((format(printf, 3, 4))) static int
problem(reader *r, int code, const char *fmt, ...)
{
	char raw[SBI_ERR_MSG_MAX], msg[SBI_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	sbi_bundle_escape(raw, msg, sizeof msg); /* it quotes names and text from the bundle */
	if (r->code == SBI_OK) {
		r->code = code;
		sbi_err_set(r->err, code, "bundle %s: %s", r->path, msg);
	}
	if (r->p && r->p->n == r->p->cap) {
		size_t cap = r->p->cap ? 2 * r->p->cap : 8;
		char **v = sbi_realloc(r->p->msg, cap * sizeof *v);
		if (v) {
			r->p->msg = v;
			r->p->cap = cap;
		}
	}
	if (r->p && r->p->n < r->p->cap && (r->p->msg[r->p->n] = sbi_strdup(msg)) != NULL)
		r->p->n++;
	return r->unpack;
}

static int
decl_cmp(const void *a, const void *b)
{
	return strcmp(((const decl *)a)->name, ((const decl *)b)->name);
}

static decl *
decl_find(reader *r, const char *name)
{
	decl k = { name, 0, { { 0 } }, 0 };
	return r->nd ? bsearch(&k, r->d, r->nd, sizeof *r->d, decl_cmp) : NULL;
}

static const char *
type_name(struct archive_entry *e)
{
	if (archive_entry_hardlink(e))
		return "a hard link";
	switch (archive_entry_filetype(e)) {
	case AE_IFREG: return NULL;
	case AE_IFLNK: return "a symbolic link";
	case AE_IFDIR: return "a directory";
	case AE_IFCHR: return "a character device";
	case AE_IFBLK: return "a block device";
	case AE_IFIFO: return "a FIFO";
	case AE_IFSOCK: return "a socket";
	}
	return "not a regular file";
}

/* The manifest's recipe.file, which replay runs and unpack names, must be
 * one of the bundle's entries under recipe/ (so it unpacks inside DIR). */
static int
check_recipe_file(reader *r)
{
	const char *file = json_string_value(json_object_get(json_object_get(r->manifest, "recipe"), "file"));
	const char *why = file == NULL ? "missing" : strncmp(file, "recipe/", 7) != 0 ? "not under recipe/" :
	    sbi_bundle_check_name(file) ? sbi_bundle_check_name(file) :
	    decl_find(r, file) == NULL ? "not an entry of the bundle" : NULL;
	if (why)
		return problem(r, SBI_EINVAL, "manifest.json: recipe.file %s%s%s: refused: %s", file ? "\"" : "",
		    file ? file : "", file ? "\"" : "", why), -1;
	return SBI_OK;
}

/* strcmp with '/' before every other byte, so that "a/b" sorts right
 * after "a" (and before "a-b"). */
static int
path_cmp(const void *pa, const void *pb)
{
	const unsigned char *a = *(const unsigned char *const *)pa, *b = *(const unsigned char *const *)pb;
	for (; *a && *a == *b; a++, b++)
		;
	int x = *a == '/' ? 1 : *a, y = *b == '/' ? 1 : *b;
	return x - y;
}

/* recipe/P and data/P both unpack to DIR/P: two entries must not land on
 * the same file, nor one on a folder another needs (P and P/Q), or unpack
 * would fail where verify passed. */
static int
check_destinations(reader *r)
{
	const char **v = sbi_calloc(r->nd ? r->nd : 1, sizeof *v);
	size_t n = 0;
	if (v == NULL)
		return problem(r, SBI_ENOMEM, "out of memory"), -1;
	for (size_t i = 0; i < r->nd; i++)
		if (strncmp(r->d[i].name, "cache/", 6) != 0)
			v[n++] = r->d[i].name + (r->d[i].name[0] == 'r' ? 7 : 5);
	qsort(v, n, sizeof *v, path_cmp);
	int rc = SBI_OK;
	for (size_t i = 1; i < n && rc == SBI_OK; i++) {
		size_t k = strlen(v[i - 1]);
		if (strcmp(v[i - 1], v[i]) == 0)
			rc = (problem(r, SBI_EINVAL, "manifest.json: two entries unpack to the same file %s", v[i]), -1);
		else if (strncmp(v[i - 1], v[i], k) == 0 && v[i][k] == '/')
			rc = (problem(r, SBI_EINVAL, "manifest.json: %s would be both a file and a folder once unpacked",
			    v[i - 1]), -1);
	}
	sbi_free(v);
	return rc;
}

/* The declared sizes against the limits, before any data is read. */
static int
check_total(reader *r)
{
	uint64_t total = 0;
	for (size_t i = 0; i < r->nd; i++) {
		if (r->d[i].size > r->lim.max_entry)
			return problem(r, SBI_EINVAL, "entry %s is %llu bytes, over the limit of %llu", r->d[i].name,
			    (unsigned long long)r->d[i].size, (unsigned long long)r->lim.max_entry), -1;
		total = total > UINT64_MAX - r->d[i].size ? UINT64_MAX : total + r->d[i].size;
	}
	if (total > r->lim.max_unpacked)
		return problem(r, SBI_EINVAL, "its entries unpack to %llu bytes, over the limit of %llu bytes "
		    "(--max-unpacked-size)", (unsigned long long)total, (unsigned long long)r->lim.max_unpacked), -1;
	return SBI_OK;
}

/* Parses the manifest text into r; SBI_OK or a problem (fatal). */
static int
parse_manifest(reader *r, const char *text, size_t n)
{
	json_error_t je;
	r->manifest = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
	if (r->manifest == NULL)
		return problem(r, SBI_ECORRUPT, "manifest.json is not valid JSON: %s (line %d)", je.text, je.line), -1;
	const char *fmt = json_string_value(json_object_get(r->manifest, "format"));
	if (fmt == NULL || strcmp(fmt, SBI_BUNDLE_FORMAT) != 0)
		return problem(r, SBI_ECORRUPT, "manifest.json: format is %s%s%s, expected \"%s\"",
		    fmt ? "\"" : "", fmt ? fmt : "missing", fmt ? "\"" : "", SBI_BUNDLE_FORMAT), -1;
	json_t *files = json_object_get(r->manifest, "files");
	if (!json_is_array(files))
		return problem(r, SBI_ECORRUPT, "manifest.json has no \"files\" array"), -1;
	r->nd = json_array_size(files);
	r->d = sbi_calloc(r->nd ? r->nd : 1, sizeof *r->d);
	if (r->d == NULL)
		return problem(r, SBI_ENOMEM, "out of memory"), -1;
	for (size_t i = 0; i < r->nd; i++) {
		json_t *fe = json_array_get(files, i);
		const char *name = json_string_value(json_object_get(fe, "name"));
		const char *hex = json_string_value(json_object_get(fe, "blake2b"));
		json_t *size = json_object_get(fe, "size");
		const char *why = name ? sbi_bundle_check_name(name) : "no name";
		if (why)
			return problem(r, SBI_EINVAL, "manifest.json: file %zu (%s): refused name: %s", i + 1,
			    name ? name : "?", why), -1;
		if (!json_is_integer(size) || json_integer_value(size) < 0 || hex == NULL ||
		    sbi_key_from_hex(hex, &r->d[i].hash) != SBI_OK)
			return problem(r, SBI_ECORRUPT, "manifest.json: file %s: bad size or blake2b", name), -1;
		r->d[i].name = name;
		r->d[i].size = (uint64_t)json_integer_value(size);
	}
	qsort(r->d, r->nd, sizeof *r->d, decl_cmp);
	for (size_t i = 1; i < r->nd; i++)
		if (strcmp(r->d[i - 1].name, r->d[i].name) == 0)
			return problem(r, SBI_ECORRUPT, "manifest.json lists %s twice", r->d[i].name), -1;
	return check_total(r) == SBI_OK && check_recipe_file(r) == SBI_OK && check_destinations(r) == SBI_OK ?
	    SBI_OK : -1;
}

/* Reads the current entry's data into memory (at most max bytes). */
static int
read_small(reader *r, const char *name, uint64_t max, char **out, size_t *n)
{
	struct archive_entry *e = NULL;
	int h = archive_read_next_header(r->a, &e);
	if (h == ARCHIVE_EOF)
		return problem(r, SBI_ECORRUPT, "the archive is empty or ends before %s", name), -1;
	if (h != ARCHIVE_OK) {
		const char *m = archive_error_string(r->a);
		return problem(r, SBI_ECORRUPT, "not a readable bundle: %s", m ? m : "damaged archive"), -1;
	}
	const char *got = archive_entry_pathname(e), *t = type_name(e);
	if (got == NULL || strcmp(got, name) != 0)
		return problem(r, SBI_ECORRUPT, "entry %s is %s, expected %s", strcmp(name, MANIFEST) == 0 ? "1" : "2",
		    got ? got : "unnamed", name), -1;
	if (t)
		return problem(r, SBI_EINVAL, "%s is %s", name, t), -1;
	if (!archive_entry_size_is_set(e) || (uint64_t)archive_entry_size(e) > max)
		return problem(r, SBI_EINVAL, "%s is larger than %llu bytes%s", name, (unsigned long long)max,
		    strcmp(name, MANIFEST) == 0 ? " (--max-manifest-size)" : ""), -1;
	size_t sz = (size_t)archive_entry_size(e);
	char *b = sbi_malloc(sz + 1);
	if (b == NULL)
		return problem(r, SBI_ENOMEM, "out of memory"), -1;
	size_t got_n = 0;
	for (;;) {
		la_ssize_t k = archive_read_data(r->a, b + got_n, sz - got_n);
		if (k < 0) {
			const char *m = archive_error_string(r->a);
			sbi_free(b);
			return problem(r, SBI_ECORRUPT, "%s is damaged: %s", name, m ? m : "read error"), -1;
		}
		if (k == 0)
			break;
		got_n += (size_t)k;
	}
	if (got_n != sz) {
		sbi_free(b);
		return problem(r, SBI_ECORRUPT, "%s is truncated", name), -1;
	}
	b[sz] = '\0';
	*out = b;
	*n = sz;
	return SBI_OK;
}

/* Opens the archive and reads manifest.json and manifest.blake2b. */
static int
open_reader(reader *r, int want_hash)
{
	r->a = archive_read_new();
	if (r->a == NULL)
		return problem(r, SBI_ENOMEM, "out of memory"), -1;
	archive_read_support_filter_all(r->a);
	archive_read_support_format_tar(r->a);
	if (archive_read_open_filename(r->a, r->path, BLOCK) != ARCHIVE_OK) {
		const char *m = archive_error_string(r->a);
		r->code = sbi_err_set(r->err, errno == ENOENT ? SBI_ENOTFOUND : SBI_EIO, "cannot open bundle %s: %s",
		    r->path, m ? m : "unknown error");
		return -1;
	}
	char *text = NULL, *hex = NULL;
	size_t n, hn;
	if (read_small(r, MANIFEST, r->lim.max_manifest, &text, &n) != SBI_OK)
		return -1;
	int rc = parse_manifest(r, text, n);
	if (rc == SBI_OK && want_hash) {
		sbi_key mh, want;
		sbi_hash_buffer(text, n, &mh);
		rc = read_small(r, MANIFEST_HASH, 2 * SBI_KEY_HEX, &hex, &hn);
		if (rc == SBI_OK && (hn != SBI_KEY_HEX || hex[SBI_KEY_HEX - 1] != '\n' ||
		    (hex[SBI_KEY_HEX - 1] = '\0', sbi_key_from_hex(hex, &want)) != SBI_OK ||
		    !sbi_key_equal(&want, &mh)))
			rc = problem(r, SBI_ECORRUPT, "manifest.json does not match manifest.blake2b") ? -1 : SBI_OK;
	}
	sbi_free(text);
	sbi_free(hex);
	return rc;
}

static void
close_reader(reader *r)
{
	if (r->a)
		archive_read_free(r->a);
	sbi_free(r->d);
	sbi_free(r->buf);
	json_decref(r->manifest);
}

/* Where entry name goes under the unpack directory. */
static void
dest_of(const char *name, char *out, size_t n)
{
	if (strncmp(name, "recipe/", 7) == 0)
		snprintf(out, n, "%s", name + 7);
	else if (strncmp(name, "data/", 5) == 0)
		snprintf(out, n, "%s", name + 5);
	else
		snprintf(out, n, ".sbirun/%s", name + 6);
}

/* Creates the parent directories of rel under root and opens rel for
 * writing; never follows links (nothing but our own files is there). */
static int
create_out(reader *r, const char *name, int *fd)
{
	char rel[1100], full[4200];
	dest_of(name, rel, sizeof rel);
	snprintf(full, sizeof full, "%s/%s", r->tmp, rel);
	for (char *s = full + strlen(r->tmp) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		int bad = mkdir(full, 0755) != 0 && errno != EEXIST, why = errno;
		struct stat st;
		if (!bad && (lstat(full, &st) != 0 || !S_ISDIR(st.st_mode)))
			bad = 1, why = ENOTDIR;
		*s = '/';
		if (bad)
			return problem(r, why == ENOTDIR ? SBI_EINVAL : SBI_EIO, "%s: cannot create its folder in %s: %s",
			    name, r->tmp, strerror(why));
	}
	*fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (*fd < 0)
		return problem(r, errno == EEXIST ? SBI_EINVAL : SBI_EIO, "%s: cannot create %s: %s", name, rel,
		    errno == EEXIST ? "two entries unpack to the same file" : strerror(errno));
	return SBI_OK;
}

/* Writes all n bytes; on failure errno says why (a short write, as on a
 * full disk, is retried so that the error is the real one). */
static int
write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = EIO;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Reads the data of entry d, hashing it (and writing it in unpack mode). */
static int
read_entry_data(reader *r, decl *d)
{
	int fd = -1;
	if (r->unpack && create_out(r, d->name, &fd) != SBI_OK)
		return -1;
	thash t;
	th_init(&t);
	int rc = SBI_OK;
	for (;;) {
		la_ssize_t k = archive_read_data(r->a, r->buf, BLOCK);
		if (k < 0) {
			const char *m = archive_error_string(r->a);
			problem(r, SBI_ECORRUPT, "%s: the archive is damaged: %s", d->name, m ? m : "read error");
			rc = -1; /* the stream cannot be trusted after this */
			break;
		}
		if (k == 0)
			break;
		if (t.n + (uint64_t)k > d->size) {
			problem(r, SBI_ECORRUPT, "%s has more data than its declared %llu bytes", d->name,
			    (unsigned long long)d->size);
			rc = -1;
			break;
		}
		th_update(&t, r->buf, (size_t)k);
		if (fd >= 0 && write_all(fd, r->buf, (size_t)k) != 0) {
			problem(r, SBI_EIO, "%s: cannot write: %s", d->name, strerror(errno));
			rc = -1;
			break;
		}
	}
	if (fd >= 0 && close(fd) != 0 && rc == SBI_OK) {
		problem(r, SBI_EIO, "%s: cannot write: %s", d->name, strerror(errno));
		rc = -1;
	}
	if (rc != SBI_OK)
		return rc;
	sbi_key got;
	sbi_hasher copy = t.all;
	sbi_hash_final(&copy, &got);
	if (t.n != d->size)
		return problem(r, SBI_ECORRUPT, "%s is truncated: %llu of %llu bytes", d->name,
		    (unsigned long long)t.n, (unsigned long long)d->size) ? -1 : SBI_OK;
	if (!sbi_key_equal(&got, &d->hash))
		return problem(r, SBI_ECORRUPT, "%s: hash mismatch (the file is damaged)", d->name) ? -1 : SBI_OK;
	if (strncmp(d->name, "cache/objects/", 14) == 0) {
		char hex[SBI_KEY_HEX];
		sbi_key name;
		snprintf(hex, sizeof hex, "%.2s%s", d->name + 14, d->name + 17);
		if (sbi_key_from_hex(hex, &name) != SBI_OK || !th_artifact_ok(&t, &name))
			return problem(r, SBI_ECORRUPT, "%s: the artifact's checksum does not match its name",
			    d->name) ? -1 : SBI_OK;
	}
	return SBI_OK;
}

/* Checks and reads every entry after the manifest; -1 when it had to stop. */
static int
read_entries(reader *r)
{
	r->buf = sbi_malloc(BLOCK);
	if (r->buf == NULL)
		return problem(r, SBI_ENOMEM, "out of memory"), -1;
	const char *prev = "manifest.blake2b";
	char prevbuf[1100];
	for (;;) {
		struct archive_entry *e = NULL;
		int h = archive_read_next_header(r->a, &e);
		if (h == ARCHIVE_EOF)
			break;
		if (h != ARCHIVE_OK) {
			const char *m = archive_error_string(r->a);
			problem(r, SBI_ECORRUPT, "the archive is damaged after %s: %s", prev, m ? m : "read error");
			return -1;
		}
		const char *name = archive_entry_pathname(e), *t = type_name(e), *why;
		if (name == NULL) {
			if (problem(r, SBI_EINVAL, "an entry after %s has no name", prev))
				return -1;
			continue;
		}
		snprintf(prevbuf, sizeof prevbuf, "%s", name);
		prev = prevbuf;
		decl *d = NULL;
		int refused = 1, ok = 0;
		if (t)
			refused = problem(r, SBI_EINVAL, "%s is %s; bundles hold regular files only", name, t);
		else if (strcmp(name, MANIFEST) == 0 || strcmp(name, MANIFEST_HASH) == 0)
			refused = problem(r, SBI_EINVAL, "duplicate entry %s", name);
		else if ((why = sbi_bundle_check_name(name)) != NULL)
			refused = problem(r, SBI_EINVAL, "refused entry %s: %s", name, why);
		else if ((d = decl_find(r, name)) == NULL)
			refused = problem(r, SBI_EINVAL, "entry %s is not in the manifest", name);
		else if (d->seen)
			refused = problem(r, SBI_EINVAL, "duplicate entry %s", name);
		else if (!archive_entry_size_is_set(e) || (uint64_t)archive_entry_size(e) != d->size)
			refused = problem(r, SBI_EINVAL, "entry %s is %lld bytes, the manifest says %llu", name,
			    (long long)archive_entry_size(e), (unsigned long long)d->size);
		else
			refused = 0, ok = 1, d->seen = 1;
		if (refused)
			return -1;
		if (!ok) {
			if (archive_read_data_skip(r->a) != ARCHIVE_OK) {
				const char *m = archive_error_string(r->a);
				problem(r, SBI_ECORRUPT, "the archive is damaged in %s: %s", name, m ? m : "read error");
				return -1;
			}
			continue;
		}
		if (read_entry_data(r, d) != SBI_OK)
			return -1;
	}
	for (size_t i = 0; i < r->nd; i++)
		if (!r->d[i].seen && problem(r, SBI_ECORRUPT, "%s is missing from the archive", r->d[i].name))
			return -1;
	return SBI_OK;
}

/* lim with its defaults filled in. */
static sbi_bundle_limits
limits_of(const sbi_bundle_limits *lim)
{
	sbi_bundle_limits l = lim ? *lim : (sbi_bundle_limits){ 0 };
	l.max_entry = l.max_entry ? l.max_entry : SBI_BUNDLE_MAX_ENTRY;
	l.max_manifest = l.max_manifest ? l.max_manifest : SBI_BUNDLE_MAX_MANIFEST;
	l.max_unpacked = l.max_unpacked ? l.max_unpacked : SBI_BUNDLE_MAX_UNPACKED;
	return l;
}

int
sbi_bundle_read_manifest(const char *path, const sbi_bundle_limits *lim, json_t **out, sbi_err *err)
{
	reader r = { 0 };
	r.path = path;
	r.err = err;
	r.unpack = 1;
	r.lim = limits_of(lim);
	r.lim.max_entry = r.lim.max_unpacked = UINT64_MAX; /* nothing is unpacked: show says how much */
	if (open_reader(&r, 0) == SBI_OK) {
		*out = json_incref(r.manifest);
	}
	close_reader(&r);
	return r.code;
}

int
sbi_bundle_verify(const char *path, const sbi_bundle_limits *lim, sbi_bundle_problems *p, sbi_err *err)
{
	reader r = { 0 };
	r.path = path;
	r.err = err;
	r.p = p;
	r.lim = limits_of(lim);
	if (open_reader(&r, 1) == SBI_OK)
		read_entries(&r);
	close_reader(&r);
	if (r.code != SBI_OK && r.code != SBI_ENOMEM && r.code != SBI_EIO && r.code != SBI_ENOTFOUND)
		return SBI_ECORRUPT;
	return r.code;
}

/* Writes text to fd (from open; -1 is an error) and closes it; -1 with
 * errno on failure. */
static int
write_small(int fd, const char *text, size_t n)
{
	if (fd < 0)
		return -1;
	int bad = write_all(fd, (const unsigned char *)text, n) != 0, why = errno;
	if (close(fd) != 0 && !bad)
		bad = 1, why = errno;
	errno = why;
	return bad ? -1 : 0;
}

static int
dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	struct dirent *e;
	int empty = 1;
	while (empty && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			empty = 0;
	closedir(d);
	return empty;
}

int
sbi_bundle_unpack(const char *path, const char *dir, const sbi_bundle_limits *lim, json_t **manifest,
    sbi_err *err)
{
	struct stat st;
	if (lstat(dir, &st) == 0 && !(S_ISDIR(st.st_mode) && dir_is_empty(dir)))
		return sbi_err_set(err, SBI_EINVAL, "cannot unpack into %s: it exists and is not an empty folder",
		    dir);
	size_t n = strlen(dir);
	char *d = sbi_malloc(n + 1), *d2 = sbi_malloc(n + 1), *tmp = sbi_malloc(2 * n + 32);
	if (d == NULL || d2 == NULL || tmp == NULL) {
		sbi_free(d);
		sbi_free(d2);
		sbi_free(tmp);
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	}
	memcpy(d, dir, n + 1);
	while (n > 1 && d[n - 1] == '/')
		d[--n] = '\0';
	memcpy(d2, d, n + 1);
	snprintf(tmp, 2 * n + 32, "%s/.%s.unpack-XXXXXX", dirname(d), basename(d2));
	sbi_free(d);
	sbi_free(d2);
	if (mkdtemp(tmp) == NULL) {
		int rc = sbi_err_set(err, SBI_EIO, "cannot unpack into %s: cannot create %s: %s", dir, tmp,
		    strerror(errno));
		sbi_free(tmp);
		return rc;
	}
	mode_t mask = umask(0);
	umask(mask);
	chmod(tmp, 0777 & ~mask);
	reader r = { 0 };
	r.path = path;
	r.err = err;
	r.unpack = 1;
	/* The marker is written first, with O_EXCL, so that no entry can
	 * create or replace it (an entry recipe/.sbirun-bundle is refused). */
	char *marker = sbi_path_join(tmp, SBI_BUNDLE_MARKER);
	int mfd = marker ? open(marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644) : -1;
	static const char mtext[] = "This folder was unpacked from an sbirun bundle: its recipe runs restricted "
	    "unless --trust is given.\n";
	if (write_small(mfd, mtext, sizeof mtext - 1) != 0)
		r.code = sbi_err_set(err, SBI_EIO, "cannot unpack into %s: cannot write %s: %s", dir, SBI_BUNDLE_MARKER,
		    strerror(errno));
	sbi_free(marker);
	r.tmp = tmp;
	r.lim = limits_of(lim);
	if (r.code == SBI_OK && open_reader(&r, 1) == SBI_OK)
		read_entries(&r);
	if (r.code == SBI_OK) {
		/* The map of data paths, after the entries: O_EXCL makes an
		 * entry of that name an error rather than a forged map. */
		json_t *reads = json_object_get(r.manifest, "reads");
		char *dumped = json_is_array(reads) ? json_dumps(reads, JSON_INDENT(2)) : NULL;
		const char *text = json_is_array(reads) ? dumped : "[]";
		char *pfile = sbi_path_join(tmp, SBI_BUNDLE_PATHS);
		int pfd = pfile ? open(pfile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644) : -1;
		size_t tn = text ? strlen(text) : 0;
		if (text == NULL)
			r.code = sbi_err_set(err, SBI_ENOMEM, "out of memory");
		else if (write_small(pfd, text, tn) != 0)
			r.code = sbi_err_set(err, SBI_EIO, "cannot unpack into %s: cannot write %s: %s", dir,
			    SBI_BUNDLE_PATHS, strerror(errno));
		sbi_free(pfile);
		free(dumped);
	}
	if (r.code == SBI_OK && rename(tmp, dir) != 0)
		r.code = sbi_err_set(err, SBI_EIO, "cannot unpack into %s: %s", dir, strerror(errno));
	if (r.code != SBI_OK)
		sbi_fs_remove_tree(tmp);
	else if (manifest)
		*manifest = json_incref(r.manifest);
	close_reader(&r);
	sbi_free(tmp);
	return r.code;
}
