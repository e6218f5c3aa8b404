/* The SVG text buffer (sbi/svg.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/svg.h"

void
sbi_svg_init(sbi_svg *s)
{
	memset(s, 0, sizeof *s);
}

void
sbi_svg_clear(sbi_svg *s)
{
	sbi_free(s->buf);
	sbi_svg_init(s);
}

char *
sbi_svg_take(sbi_svg *s, size_t *len)
{
	char *t = s->failed ? NULL : s->buf;
	if (t == NULL && !s->failed)
		t = sbi_strdup("");
	if (len)
		*len = t ? s->len : 0;
	if (s->failed)
		sbi_free(s->buf);
	sbi_svg_init(s);
	return t;
}

/* Makes room for n more bytes and the NUL; 0 when out of memory. */
static int
reserve(sbi_svg *s, size_t n)
{
	if (s->failed)
		return 0;
	if (s->len + n + 1 <= s->cap)
		return 1;
	size_t cap = s->cap ? s->cap : 4096;
	while (cap < s->len + n + 1)
		cap *= 2;
	char *b = sbi_realloc(s->buf, cap);
	if (b == NULL) {
		s->failed = 1;
		return 0;
	}
	s->buf = b;
	s->cap = cap;
	return 1;
}

static void
append(sbi_svg *s, const char *p, size_t n)
{
	if (!reserve(s, n))
		return;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

void
sbi_svg_puts(sbi_svg *s, const char *text)
{
	append(s, text, strlen(text));
}

void
sbi_svg_printf(sbi_svg *s, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof small) {
		append(s, small, (size_t)n);
		return;
	}
	if (!reserve(s, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(s->buf + s->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	s->len += (size_t)n;
}

void
sbi_svg_escape(sbi_svg *s, const char *text)
{
	for (const char *p = text; *p; p++) {
		switch (*p) {
		case '&': sbi_svg_puts(s, "&amp;"); break;
		case '<': sbi_svg_puts(s, "&lt;"); break;
		case '>': sbi_svg_puts(s, "&gt;"); break;
		case '"': sbi_svg_puts(s, "&quot;"); break;
		case '\'': sbi_svg_puts(s, "&#39;"); break;
		default: append(s, p, 1);
		}
	}
}

void
sbi_svg_num(sbi_svg *s, double v)
{
	if (!isfinite(v))
		v = 0;
	char b[64];
	snprintf(b, sizeof b, "%.2f", v);
	sbi_svg_puts(s, strcmp(b, "-0.00") == 0 ? "0.00" : b);
}

void
sbi_svg_text(sbi_svg *s, double x, double y, const char *anchor, double size, double rotate, const char *text)
{
	sbi_svg_puts(s, "<text x=\"");
	sbi_svg_num(s, x);
	sbi_svg_puts(s, "\" y=\"");
	sbi_svg_num(s, y);
	sbi_svg_printf(s, "\" font-size=\"%.1f\" text-anchor=\"%s\"", size, anchor);
	if (rotate != 0) {
		sbi_svg_printf(s, " transform=\"rotate(%.0f ", rotate);
		sbi_svg_num(s, x);
		sbi_svg_puts(s, " ");
		sbi_svg_num(s, y);
		sbi_svg_puts(s, ")\"");
	}
	sbi_svg_puts(s, ">");
	sbi_svg_escape(s, text);
	sbi_svg_puts(s, "</text>\n");
}

void
sbi_svg_tick_label(char *out, size_t n, double v, double step)
{
	if (fabs(v) < step * 1e-6)
		v = 0;
	int dec = 0;
	if (step > 0 && step < 1)
		dec = (int)ceil(-log10(step) - 1e-9);
	if (dec > 10)
		dec = 10;
	if (fabs(v) >= 1e5 || (v != 0 && fabs(v) < 1e-4))
		snprintf(out, n, "%.2g", v);
	else
		snprintf(out, n, "%.*f", dec, v);
}
