/* A growing text buffer for SVG (and the HTML report around it):
 * formatted appends, XML escaping, fixed-precision numbers. Output is
 * deterministic: every number goes through one fixed format, nothing
 * depends on time, addresses or random ids. */
#ifndef SBI_SVG_H
#define SBI_SVG_H

#include <stddef.h>

/* A buffer; zero-initialize it (or sbi_svg_init). After an allocation
 * failure every append is a no-op and failed is 1. */
typedef struct sbi_svg {
	char *buf; /* NUL-terminated text (owned) */
	size_t len, cap;
	int failed;
} sbi_svg;

void sbi_svg_init(sbi_svg *s);
void sbi_svg_clear(sbi_svg *s); /* frees the text; s may be reused */
/* The text, handed over (caller frees with sbi_free); NULL after an
 * allocation failure. s is left empty. */
char *sbi_svg_take(sbi_svg *s, size_t *len);

/* Appends printf-style text, as is (no escaping). */
void sbi_svg_printf(sbi_svg *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbi_svg_puts(sbi_svg *s, const char *text);
/* Appends text with &, <, >, " and ' escaped for XML/HTML. */
void sbi_svg_escape(sbi_svg *s, const char *text);
/* Appends v with 2 decimals (coordinates; -0.00 is written 0.00). */
void sbi_svg_num(sbi_svg *s, double v);
/* Appends <text> at (x, y): anchor "start", "middle" or "end"; rotate
 * is in degrees around (x, y) (0: none); text is escaped. */
void sbi_svg_text(sbi_svg *s, double x, double y, const char *anchor, double size, double rotate,
    const char *text);
/* A short tick label for v on a grid of step `step`: as many decimals as
 * the step needs, "0" for values within step/1e6 of zero. */
void sbi_svg_tick_label(char *out, size_t n, double v, double step);

#endif
