/* CSV and .npy matrices (see io.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/fsutil.h"
#include "sbi/io.h"

/* ---- CSV ---- */

typedef struct csv {
	const char *path;
	double *vals;
	size_t n, cap, ncol, nrow;
	sbi_err *err;
} csv;

static int
push(csv *c, double v)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		double *nv = sbi_realloc(c->vals, cap * sizeof *nv);
		if (nv == NULL)
			return sbi_err_set(c->err, SBI_ENOMEM, "out of memory reading %s", c->path);
		c->vals = nv;
		c->cap = cap;
	}
	c->vals[c->n++] = v;
	return SBI_OK;
}

static char *
trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	if (*s == '"' && e > s + 1 && e[-1] == '"') {
		e[-1] = '\0';
		s++;
	}
	return s;
}

static int
is_number(const char *s)
{
	char *end;
	s = *s == '"' ? s + 1 : s;
	strtod(s, &end);
	return end != s;
}

static int
parse_row(csv *c, char *line, size_t lineno)
{
	size_t col = 0;
	for (char *tok = line, *next; tok; tok = next) {
		next = strchr(tok, ',');
		if (next)
			*next++ = '\0';
		char *t = trim(tok), *end;
		errno = 0;
		double v = strtod(t, &end);
		if (end == t || *end != '\0')
			return sbi_err_set(c->err, SBI_EINVAL, "%s:%zu: column %zu: expected a number, got '%s'",
			    c->path, lineno, col + 1, t);
		if (push(c, v) != SBI_OK)
			return SBI_ENOMEM;
		col++;
	}
	if (c->nrow == 0)
		c->ncol = col;
	else if (col != c->ncol)
		return sbi_err_set(c->err, SBI_EINVAL, "%s:%zu: %zu values, expected %zu like the first row",
		    c->path, lineno, col, c->ncol);
	c->nrow++;
	return SBI_OK;
}

static int
parse_header(csv *c, char *line, char ***names, size_t *nnames)
{
	size_t n = 1;
	for (char *p = line; *p; p++)
		n += *p == ',';
	char **v = sbi_calloc(n, sizeof *v);
	if (v == NULL)
		return sbi_err_set(c->err, SBI_ENOMEM, "out of memory");
	size_t i = 0;
	for (char *tok = line, *next; tok; tok = next, i++) {
		next = strchr(tok, ',');
		if (next)
			*next++ = '\0';
		if ((v[i] = sbi_strdup(trim(tok))) == NULL)
			break;
	}
	if (i < n) {
		for (size_t j = 0; j < n; j++)
			sbi_free(v[j]);
		sbi_free(v);
		return sbi_err_set(c->err, SBI_ENOMEM, "out of memory");
	}
	*names = v;
	*nnames = n;
	return SBI_OK;
}

int
sbi_csv_read(const char *path, sbi_mat **out, char ***names, size_t *nnames, sbi_err *err)
{
	char *text;
	size_t len;
	int rc = sbi_fs_read_all(path, &text, &len, err);
	if (rc != SBI_OK)
		return rc;
	csv c = { .path = path, .err = err };
	char **hdr = NULL;
	size_t nhdr = 0, lineno = 0;
	/* A UTF-8 byte order mark (spreadsheets write one) is not data. */
	size_t bom = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
	for (char *line = text + bom, *next; rc == SBI_OK && line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		char *t = trim(line);
		if (*t == '\0' || *t == '#')
			continue;
		if (c.nrow == 0 && hdr == NULL && !is_number(t))
			rc = parse_header(&c, t, &hdr, &nhdr);
		else
			rc = parse_row(&c, t, lineno);
	}
	sbi_free(text);
	if (rc == SBI_OK && c.nrow == 0)
		rc = sbi_err_set(err, SBI_EINVAL, "%s: no rows of numbers", path);
	if (rc == SBI_OK && hdr && nhdr != c.ncol)
		rc = sbi_err_set(err, SBI_EINVAL, "%s: header has %zu names but rows have %zu values",
		    path, nhdr, c.ncol);
	sbi_mat *m = NULL;
	if (rc == SBI_OK && (m = sbi_mat_alloc(c.nrow, c.ncol)) == NULL)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory");
	if (rc == SBI_OK)
		memcpy(m->data, c.vals, c.n * sizeof(double));
	sbi_free(c.vals);
	if (rc != SBI_OK || names == NULL) {
		for (size_t i = 0; i < nhdr; i++)
			sbi_free(hdr[i]);
		sbi_free(hdr);
		hdr = NULL;
		nhdr = 0;
	}
	if (rc != SBI_OK)
		return rc;
	*out = m;
	if (names) {
		*names = hdr;
		*nnames = nhdr;
	}
	return SBI_OK;
}

/* A growable text buffer for building files before an atomic write. */
typedef struct strbuf {
	char *p;
	size_t n, cap;
	int oom;
} strbuf;

static void
sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(strbuf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (k >= 0 && (size_t)k < b->cap - b->n) {
			b->n += (size_t)k;
			return;
		}
		size_t cap = 2 * b->cap + (size_t)(k > 0 ? k : 0) + 64;
		char *np = sbi_realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

int
sbi_csv_write(const char *path, const sbi_mat *m, const char *const *names, sbi_err *err)
{
	strbuf b = { 0 };
	b.cap = 1024 + m->nrow * m->ncol * 24;
	if ((b.p = sbi_malloc(b.cap)) == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory writing %s", path);
	for (size_t j = 0; j < m->ncol; j++)
		sb_printf(&b, "%s%s", j ? "," : "", names[j]);
	sb_printf(&b, "\n");
	for (size_t i = 0; i < m->nrow; i++) {
		const double *r = sbi_mat_row(m, i);
		for (size_t j = 0; j < m->ncol; j++)
			sb_printf(&b, "%s%.17g", j ? "," : "", r[j]);
		sb_printf(&b, "\n");
	}
	int rc = b.oom ? sbi_err_set(err, SBI_ENOMEM, "out of memory writing %s", path)
		       : sbi_fs_write_atomic(path, b.p, b.n, err);
	sbi_free(b.p);
	return rc;
}

/* ---- .npy ---- */

int
sbi_npy_write(const char *path, const sbi_mat *m, sbi_err *err)
{
	char dict[128];
	int k = snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu, %zu), }",
	    m->nrow, m->ncol);
	size_t hlen = 10 + (size_t)k + 1;
	size_t pad = (64 - hlen % 64) % 64;
	size_t dlen = (size_t)k + pad + 1;
	size_t total = 10 + dlen + m->nrow * m->ncol * sizeof(double);
	unsigned char *buf = sbi_malloc(total);
	if (buf == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory writing %s", path);
	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (unsigned char)(dlen & 0xff);
	buf[9] = (unsigned char)(dlen >> 8);
	memcpy(buf + 10, dict, (size_t)k);
	memset(buf + 10 + k, ' ', pad);
	buf[10 + dlen - 1] = '\n';
	memcpy(buf + 10 + dlen, m->data, m->nrow * m->ncol * sizeof(double));
	int rc = sbi_fs_write_atomic(path, buf, total, err);
	sbi_free(buf);
	return rc;
}

/* Parses "(a, b)" / "(a,)" / "()" after 'shape': in the header dict. */
static int
npy_shape(const char *dict, size_t *nrow, size_t *ncol)
{
	const char *p = strstr(dict, "'shape':");
	if (p == NULL || (p = strchr(p, '(')) == NULL)
		return -1;
	size_t dims[2] = { 1, 1 }, nd = 0;
	for (p++; *p && *p != ')';) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == ')')
			break;
		char *end;
		unsigned long long v = strtoull(p, &end, 10);
		if (end == p || nd == 2)
			return -1;
		dims[nd++] = (size_t)v;
		p = end;
	}
	*nrow = nd == 2 ? dims[0] : 1;
	*ncol = nd == 2 ? dims[1] : dims[0];
	return 0;
}

int
sbi_npy_read(const char *path, sbi_mat **out, sbi_err *err)
{
	char *buf;
	size_t len;
	int rc = sbi_fs_read_all(path, &buf, &len, err);
	if (rc != SBI_OK)
		return rc;
	const unsigned char *u = (const unsigned char *)buf;
	size_t hlen = len >= 10 ? (size_t)u[8] | (size_t)u[9] << 8 : 0, off = 10 + hlen;
	size_t nrow = 0, ncol = 0;
	int f4 = 0;
	rc = SBI_EINVAL;
	if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0 || u[6] != 1 || off > len)
		sbi_err_set(err, rc, "%s: not a version 1 .npy file", path);
	else if (strstr(buf + 10, "'fortran_order': True"))
		sbi_err_set(err, rc, "%s: Fortran-ordered arrays are not supported", path);
	else if (!strstr(buf + 10, "'<f8'") && !(f4 = strstr(buf + 10, "'<f4'") != NULL))
		sbi_err_set(err, rc, "%s: expected float64 ('<f8') or float32 ('<f4') data", path);
	else if (npy_shape(buf + 10, &nrow, &ncol) != 0)
		sbi_err_set(err, rc, "%s: cannot read the array shape", path);
	else if ((len - off) != nrow * ncol * (f4 ? 4 : 8))
		sbi_err_set(err, rc, "%s: data size does not match shape (%zu, %zu)", path, nrow, ncol);
	else
		rc = SBI_OK;
	sbi_mat *m = NULL;
	if (rc == SBI_OK && (m = sbi_mat_alloc(nrow, ncol)) == NULL)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory");
	for (size_t i = 0; rc == SBI_OK && i < nrow * ncol; i++) {
		float f;
		if (f4) {
			memcpy(&f, buf + off + 4 * i, 4);
			m->data[i] = f;
		} else
			memcpy(&m->data[i], buf + off + 8 * i, 8);
	}
	sbi_free(buf);
	if (rc == SBI_OK)
		*out = m;
	return rc;
}
