/* Plots as SVG (sbi/plot.h): frames, nice ticks, and the five plots. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/plot.h"
#include "sbi/svg.h"

/* Okabe-Ito's colour-blind safe palette, black last. */
static const char *const palette[] = { "#0072B2", "#D55E00", "#009E73", "#CC79A7",
	"#E69F00", "#56B4E9", "#8C6D00", "#000000" };

const char *
sbi_plot_colour(size_t i)
{
	return palette[i % (sizeof palette / sizeof *palette)];
}

/* A data-to-pixel frame: the data box [xmin, xmax] x [ymin, ymax] drawn
 * in the pixel box at (x0, y0) of size w x h (y grows downwards). */
typedef struct frame {
	double x0, y0, w, h, xmin, xmax, ymin, ymax;
} frame;

static double
fx(const frame *f, double v)
{
	return f->x0 + (v - f->xmin) / (f->xmax - f->xmin) * f->w;
}

static double
fy(const frame *f, double v)
{
	return f->y0 + f->h - (v - f->ymin) / (f->ymax - f->ymin) * f->h;
}

static double
clampd(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* 1, 2 or 5 times a power of ten, near range / n. */
static double
nice_step(double range, double n)
{
	double raw = range / n, mag = pow(10, floor(log10(raw))), r = raw / mag;
	return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

/* Widens an empty or non-finite range so that a frame can be drawn. */
static void
fix_range(double *lo, double *hi)
{
	if (!isfinite(*lo) || !isfinite(*hi)) {
		*lo = 0;
		*hi = 1;
	}
	if (!isfinite(*hi - *lo)) { /* e.g. -1e308 .. 1e308: keep the frame's arithmetic finite */
		*lo = fmax(*lo, -1e307);
		*hi = fmin(*hi, 1e307);
	}
	if (*hi - *lo <= 1e-12 * (fabs(*lo) + fabs(*hi)) || *hi <= *lo) {
		double pad = fabs(*lo) > 0 ? 0.1 * fabs(*lo) : 0.5;
		*lo -= pad;
		*hi += pad;
	}
}

static void
svg_open(sbi_svg *s, double w, double h)
{
	sbi_svg_printf(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
	    "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n", w, h, w, h);
	sbi_svg_printf(s, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", w, h);
}

static int
svg_close(sbi_svg *s, char **out, sbi_err *err)
{
	sbi_svg_puts(s, "</svg>\n");
	*out = sbi_svg_take(s, NULL);
	return *out ? SBI_OK : sbi_err_set(err, SBI_ENOMEM, "out of memory while drawing a plot");
}

static void
move_line(sbi_svg *s, int move, double x, double y)
{
	sbi_svg_puts(s, move ? "M" : "L");
	sbi_svg_num(s, x);
	sbi_svg_puts(s, " ");
	sbi_svg_num(s, y);
}

/* The frame's border, and ticks with labels on the sides asked for. */
static void
axes(sbi_svg *s, const frame *f, int xticks, int yticks)
{
	sbi_svg_puts(s, "<rect x=\"");
	sbi_svg_num(s, f->x0);
	sbi_svg_puts(s, "\" y=\"");
	sbi_svg_num(s, f->y0);
	sbi_svg_puts(s, "\" width=\"");
	sbi_svg_num(s, f->w);
	sbi_svg_puts(s, "\" height=\"");
	sbi_svg_num(s, f->h);
	sbi_svg_puts(s, "\" fill=\"none\" stroke=\"#444444\" stroke-width=\"0.8\"/>\n");
	for (int axis = 0; axis < 2; axis++) {
		if (!(axis ? yticks : xticks))
			continue;
		double lo = axis ? f->ymin : f->xmin, hi = axis ? f->ymax : f->xmax;
		double step = nice_step(hi - lo, 4);
		if (!(step > 0) || !isfinite(step) || !isfinite(lo / step) || !isfinite(hi / step))
			continue;
		long k0 = (long)ceil(lo / step - 1e-9), k1 = (long)floor(hi / step + 1e-9);
		for (long k = k0; k <= k1 && k - k0 < 50; k++) {
			double v = (double)k * step;
			char lab[48];
			sbi_svg_tick_label(lab, sizeof lab, v, step);
			sbi_svg_puts(s, "<path d=\"");
			if (axis) {
				move_line(s, 1, f->x0 - 4, fy(f, v));
				move_line(s, 0, f->x0, fy(f, v));
			} else {
				move_line(s, 1, fx(f, v), f->y0 + f->h);
				move_line(s, 0, fx(f, v), f->y0 + f->h + 4);
			}
			sbi_svg_puts(s, "\" stroke=\"#444444\" stroke-width=\"0.8\"/>\n");
			if (axis)
				sbi_svg_text(s, f->x0 - 6, fy(f, v) + 3, "end", 9, 0, lab);
			else
				sbi_svg_text(s, fx(f, v), f->y0 + f->h + 14, "middle", 9, 0, lab);
		}
	}
}

/* One legend line per name at the top left, from (x, y). */
static void
legend(sbi_svg *s, double x, double y, const char *const *names, size_t n, size_t colour0)
{
	for (size_t i = 0; i < n; i++) {
		if (names[i] == NULL)
			continue;
		double yy = y + 16.0 * (double)i;
		sbi_svg_printf(s, "<rect x=\"%.2f\" y=\"%.2f\" width=\"14\" height=\"10\" fill=\"%s\"/>\n", x, yy - 9,
		    sbi_plot_colour(colour0 + i));
		sbi_svg_text(s, x + 20, yy, "start", 11, 0, names[i]);
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The q-quantile of sorted v[0..n-1] (linear interpolation, as GSL). */
static double
quantile_sorted(const double *v, size_t n, double q)
{
	double pos = q * (double)(n - 1);
	size_t i = (size_t)pos;
	if (i + 1 >= n)
		return v[n - 1];
	double t = pos - (double)i;
	return v[i] + t * (v[i + 1] - v[i]);
}

/* ---- corner plot ---- */

/* Axis limits of column j over every posterior: the 0.5% and 99.5%
 * quantiles (finite values only); tmp has room for the longest column. */
static void
corner_range(const sbi_mat *const *post, size_t np, size_t j, double *tmp, double *lo, double *hi)
{
	*lo = INFINITY;
	*hi = -INFINITY;
	for (size_t p = 0; p < np; p++) {
		size_t n = 0;
		for (size_t i = 0; i < post[p]->nrow; i++) {
			double v = post[p]->data[i * post[p]->ncol + j];
			if (isfinite(v))
				tmp[n++] = v;
		}
		if (n == 0)
			continue;
		qsort(tmp, n, sizeof *tmp, cmp_double);
		*lo = fmin(*lo, quantile_sorted(tmp, n, 0.005));
		*hi = fmax(*hi, quantile_sorted(tmp, n, 0.995));
	}
	fix_range(lo, hi);
}

/* Bin of v in [lo, hi) of nb bins, or -1 outside. */
static long
bin_of(double v, double lo, double hi, size_t nb)
{
	if (!(v >= lo && v <= hi))
		return -1;
	double t = (v - lo) / (hi - lo) * (double)nb;
	if (!(t >= 0)) /* NaN from an overflowing range */
		return 0;
	return t >= (double)nb ? (long)nb - 1 : (long)t;
}

/* Density histograms of column j of each posterior into dens[p * nb + b];
 * returns the largest density. */
static double
histograms(const sbi_mat *const *post, size_t np, size_t j, double lo, double hi, size_t nb, double *dens)
{
	double top = 0, width = (hi - lo) / (double)nb;
	for (size_t p = 0; p < np; p++) {
		double *d = dens + p * nb;
		memset(d, 0, nb * sizeof *d);
		for (size_t i = 0; i < post[p]->nrow; i++) {
			long b = bin_of(post[p]->data[i * post[p]->ncol + j], lo, hi, nb);
			if (b >= 0)
				d[b] += 1;
		}
		for (size_t b = 0; b < nb; b++) {
			d[b] /= (double)post[p]->nrow * width;
			top = fmax(top, d[b]);
		}
	}
	return top > 0 ? top : 1;
}

static void
draw_histogram(sbi_svg *s, const frame *f, const double *d, size_t nb, const char *colour)
{
	double base = f->y0 + f->h;
	sbi_svg_puts(s, "<path d=\"");
	move_line(s, 1, f->x0, base);
	for (size_t b = 0; b < nb; b++) {
		double y = fy(f, d[b]);
		move_line(s, 0, f->x0 + f->w * (double)b / (double)nb, y);
		move_line(s, 0, f->x0 + f->w * (double)(b + 1) / (double)nb, y);
	}
	move_line(s, 0, f->x0 + f->w, base);
	sbi_svg_printf(s, "\" fill=\"%s\" fill-opacity=\"0.15\" stroke=\"%s\" stroke-width=\"1.2\"/>\n", colour,
	    colour);
}

/* The smoothed 2-D histogram of columns (jx, jy) of m on a g x g grid,
 * into the interior of the (g+2) x (g+2) array h (a zero border, so that
 * contours close); tmp has (g+2)^2 entries. */
static void
grid2d(const sbi_mat *m, size_t jx, size_t jy, const frame *f, size_t g, double *h, double *tmp)
{
	size_t G = g + 2;
	memset(h, 0, G * G * sizeof *h);
	for (size_t i = 0; i < m->nrow; i++) {
		long a = bin_of(m->data[i * m->ncol + jx], f->xmin, f->xmax, g);
		long b = bin_of(m->data[i * m->ncol + jy], f->ymin, f->ymax, g);
		if (a >= 0 && b >= 0)
			h[(size_t)(b + 1) * G + (size_t)(a + 1)] += 1;
	}
	/* Twice the separable [1 2 1] / 4 kernel, inside the border. */
	for (int pass = 0; pass < 4; pass++) {
		memcpy(tmp, h, G * G * sizeof *h);
		for (size_t b = 1; b <= g; b++)
			for (size_t a = 1; a <= g; a++) {
				size_t k = b * G + a, st = pass % 2 ? G : 1;
				h[k] = 0.25 * tmp[k - st] + 0.5 * tmp[k] + 0.25 * tmp[k + st];
			}
	}
}

/* The value t such that the cells at or above t hold `level` of the mass
 * (a highest-density region); tmp has n entries. */
static double
hdr_threshold(const double *h, size_t n, double level, double *tmp)
{
	memcpy(tmp, h, n * sizeof *h);
	qsort(tmp, n, sizeof *tmp, cmp_double);
	double total = 0, cum = 0;
	for (size_t i = 0; i < n; i++)
		total += tmp[i];
	for (size_t i = n; i-- > 0;) {
		cum += tmp[i];
		if (cum >= level * total)
			return tmp[i];
	}
	return tmp[0];
}

/* Point on edge e (0 bottom, 1 right, 2 top, 3 left in grid order) of the
 * square with corners v[0]=(a,b), v[1]=(a+1,b), v[2]=(a+1,b+1), v[3]=(a,b+1). */
static void
edge_point(int e, const double *v, double t, double a, double b, double *px, double *py)
{
	static const int from[4] = { 0, 1, 3, 0 }, to[4] = { 1, 2, 2, 3 };
	double va = v[from[e]], vb = v[to[e]];
	double r = vb != va ? (t - va) / (vb - va) : 0.5;
	switch (e) {
	case 0: *px = a + r; *py = b; break;
	case 1: *px = a + 1; *py = b + r; break;
	case 2: *px = a + r; *py = b + 1; break;
	default: *px = a; *py = b + r; break;
	}
}

/* Marching squares: the segments of the contour at t of the (g+2)^2 grid
 * h, as one path in frame f (cell k's centre at xmin + (k - 0.5) cells). */
static void
contour(sbi_svg *s, const frame *f, const double *h, size_t g, double t, const char *colour, double width,
    double opacity)
{
	/* Segments per case as edge pairs; -1 ends; saddles (5, 10) below. */
	static const signed char seg[16][4] = { { -1 }, { 3, 0, -1 }, { 0, 1, -1 }, { 3, 1, -1 }, { 1, 2, -1 },
		{ -1 }, { 0, 2, -1 }, { 3, 2, -1 }, { 2, 3, -1 }, { 0, 2, -1 }, { -1 }, { 1, 2, -1 }, { 3, 1, -1 },
		{ 0, 1, -1 }, { 3, 0, -1 }, { -1 } };
	size_t G = g + 2;
	double cw = (f->xmax - f->xmin) / (double)g, ch = (f->ymax - f->ymin) / (double)g;
	sbi_svg_puts(s, "<path d=\"");
	for (size_t b = 0; b + 1 < G; b++)
		for (size_t a = 0; a + 1 < G; a++) {
			double v[4] = { h[b * G + a], h[b * G + a + 1], h[(b + 1) * G + a + 1], h[(b + 1) * G + a] };
			int c = (v[0] >= t) | (v[1] >= t) << 1 | (v[2] >= t) << 2 | (v[3] >= t) << 3;
			signed char e[4] = { -1, -1, -1, -1 };
			if (c == 5 || c == 10) {
				int centre = (v[0] + v[1] + v[2] + v[3]) / 4 >= t;
				static const signed char s5[2][4] = { { 3, 0, 1, 2 }, { 0, 1, 2, 3 } };
				memcpy(e, s5[(c == 5) == centre], 4);
			} else
				memcpy(e, seg[c], 4);
			for (int k = 0; k + 1 < 4 && e[k] >= 0; k += 2) {
				for (int q = 0; q < 2; q++) {
					double gx, gy;
					edge_point(e[k + q], v, t, (double)a, (double)b, &gx, &gy);
					double x = fx(f, f->xmin + (gx - 0.5) * cw), y = fy(f, f->ymin + (gy - 0.5) * ch);
					move_line(s, q == 0, clampd(x, f->x0, f->x0 + f->w), clampd(y, f->y0, f->y0 + f->h));
				}
			}
		}
	sbi_svg_printf(s, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-opacity=\"%.2f\"/>\n", colour,
	    width, opacity);
}

static void
scatter(sbi_svg *s, const frame *f, const sbi_mat *m, size_t jx, size_t jy, const char *colour)
{
	size_t stride = m->nrow > 400 ? (m->nrow + 399) / 400 : 1;
	sbi_svg_printf(s, "<g fill=\"%s\" fill-opacity=\"0.35\">\n", colour);
	for (size_t i = 0; i < m->nrow; i += stride) {
		double x = m->data[i * m->ncol + jx], y = m->data[i * m->ncol + jy];
		if (!(x >= f->xmin && x <= f->xmax && y >= f->ymin && y <= f->ymax))
			continue;
		sbi_svg_puts(s, "<circle cx=\"");
		sbi_svg_num(s, fx(f, x));
		sbi_svg_puts(s, "\" cy=\"");
		sbi_svg_num(s, fy(f, y));
		sbi_svg_puts(s, "\" r=\"1.3\"/>\n");
	}
	sbi_svg_puts(s, "</g>\n");
}

static int
corner_check(const sbi_mat *const *post, size_t np, sbi_err *err)
{
	if (np == 0)
		return sbi_err_set(err, SBI_EINVAL, "corner plot: no posterior given");
	for (size_t p = 0; p < np; p++) {
		if (post[p] == NULL || post[p]->nrow == 0 || post[p]->ncol == 0)
			return sbi_err_set(err, SBI_EINVAL, "corner plot: posterior %zu has no samples", p + 1);
		if (post[p]->ncol != post[0]->ncol)
			return sbi_err_set(err, SBI_EINVAL, "corner plot: posterior %zu has %zu parameters, posterior 1 "
			    "has %zu", p + 1, post[p]->ncol, post[0]->ncol);
	}
	if (post[0]->ncol > 64)
		return sbi_err_set(err, SBI_EINVAL, "corner plot: %zu parameters (at most 64)", post[0]->ncol);
	return SBI_OK;
}

/* The lower-triangle panel (row i, column j < i) of every posterior. */
static void
corner_pair(sbi_svg *s, const frame *f, const sbi_mat *const *post, size_t np, size_t i, size_t j,
    const sbi_plot_corner_opts *o, size_t g, double *h, double *tmp)
{
	for (size_t p = 0; p < np; p++) {
		const char *c = sbi_plot_colour(p);
		if (o->scatter) {
			scatter(s, f, post[p], j, i, c);
			continue;
		}
		grid2d(post[p], j, i, f, g, h, tmp);
		size_t G = (g + 2) * (g + 2);
		double t90 = hdr_threshold(h, G, 0.9, tmp), t50 = hdr_threshold(h, G, 0.5, tmp);
		if (t90 > 0)
			contour(s, f, h, g, t90, c, 1.0, 0.6);
		if (t50 > 0)
			contour(s, f, h, g, t50, c, 1.6, 1.0);
	}
}

int
sbi_plot_corner(const sbi_mat *const *post, size_t np, const sbi_plot_corner_opts *o, char **svg, sbi_err *err)
{
	*svg = NULL;
	sbi_plot_corner_opts def = { 0 };
	o = o ? o : &def;
	int rc = corner_check(post, np, err);
	if (rc != SBI_OK)
		return rc;
	size_t d = post[0]->ncol, nmax = 0, nb = o->bins ? o->bins : 30, g = o->grid ? o->grid : 40;
	for (size_t p = 0; p < np; p++)
		nmax = post[p]->nrow > nmax ? post[p]->nrow : nmax;
	size_t G = (g + 2) * (g + 2), ntmp = nmax > G ? nmax : G;
	double *lo = sbi_malloc(2 * d * sizeof *lo), *tmp = sbi_malloc(ntmp * sizeof *tmp);
	double *h = sbi_malloc(G * sizeof *h), *dens = sbi_malloc(np * nb * sizeof *dens);
	if (!lo || !tmp || !h || !dens) {
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory while drawing a corner plot");
		goto done;
	}
	double *hi = lo + d;
	for (size_t j = 0; j < d; j++) {
		if (o->lower && o->upper && isfinite(o->lower[j]) && isfinite(o->upper[j]) && o->upper[j] > o->lower[j]) {
			lo[j] = o->lower[j];
			hi[j] = o->upper[j];
		} else
			corner_range(post, np, j, tmp, &lo[j], &hi[j]);
	}
	double P = o->panel > 0 ? o->panel : 130, gap = 8, left = 58, top = o->names ? 12 + 16.0 * (double)np : 12;
	double W = left + (double)d * P + (double)(d - 1) * gap + 16, H = top + (double)d * P + (double)(d - 1) * gap + 42;
	sbi_svg s = { 0 };
	svg_open(&s, W, H);
	if (o->names)
		legend(&s, left, 20, o->names, np, 0);
	for (size_t i = 0; i < d; i++)
		for (size_t j = 0; j <= i; j++) {
			frame f = { left + (double)j * (P + gap), top + (double)i * (P + gap), P, P, lo[j], hi[j], lo[i], hi[i] };
			if (i == j) {
				f.ymin = 0;
				f.ymax = 1.05 * histograms(post, np, j, lo[j], hi[j], nb, dens);
				for (size_t p = 0; p < np; p++)
					draw_histogram(&s, &f, dens + p * nb, nb, sbi_plot_colour(p));
			} else
				corner_pair(&s, &f, post, np, i, j, o, g, h, tmp);
			axes(&s, &f, i == d - 1, j == 0 && i > 0);
			char def_label[32];
			snprintf(def_label, sizeof def_label, "theta[%zu]", j + 1);
			const char *xl = o->labels && o->labels[j] ? o->labels[j] : def_label;
			if (i == d - 1)
				sbi_svg_text(&s, f.x0 + P / 2, f.y0 + P + 30, "middle", 12, 0, xl);
			if (j == 0 && i > 0) {
				snprintf(def_label, sizeof def_label, "theta[%zu]", i + 1);
				sbi_svg_text(&s, 14, f.y0 + P / 2, "middle", 12, -90,
				    o->labels && o->labels[i] ? o->labels[i] : def_label);
			}
		}
	rc = svg_close(&s, svg, err);
done:
	sbi_free(lo);
	sbi_free(tmp);
	sbi_free(h);
	sbi_free(dens);
	return rc;
}

/* ---- curves ---- */

static void
series_range(const sbi_plot_series *s, size_t ns, double *r)
{
	r[0] = r[2] = INFINITY;
	r[1] = r[3] = -INFINITY;
	for (size_t k = 0; k < ns; k++)
		for (size_t i = 0; i < s[k].n; i++) {
			double x = s[k].x ? s[k].x[i] : (double)(i + 1);
			double ys[3] = { s[k].y[i], s[k].lo ? s[k].lo[i] : NAN, s[k].hi ? s[k].hi[i] : NAN };
			if (!isfinite(x))
				continue;
			r[0] = fmin(r[0], x);
			r[1] = fmax(r[1], x);
			for (int q = 0; q < 3; q++)
				if (isfinite(ys[q])) {
					r[2] = fmin(r[2], ys[q]);
					r[3] = fmax(r[3], ys[q]);
				}
		}
}

/* The band lo..hi of a series as one closed filled path. */
static void
band(sbi_svg *s, const frame *f, const double *x, const double *lo, const double *hi, size_t n,
    const char *colour, double opacity)
{
	sbi_svg_puts(s, "<path d=\"");
	int first = 1;
	for (size_t i = 0; i < n; i++) {
		double xi = x ? x[i] : (double)(i + 1);
		if (isfinite(xi) && isfinite(hi[i])) {
			move_line(s, first, fx(f, xi), fy(f, hi[i]));
			first = 0;
		}
	}
	for (size_t i = n; i-- > 0;) {
		double xi = x ? x[i] : (double)(i + 1);
		if (isfinite(xi) && isfinite(lo[i]))
			move_line(s, first, fx(f, xi), fy(f, lo[i]));
	}
	sbi_svg_printf(s, "Z\" fill=\"%s\" fill-opacity=\"%.2f\" stroke=\"none\"/>\n", colour, opacity);
}

static void
polyline(sbi_svg *s, const frame *f, const double *x, const double *y, size_t n, size_t stride,
    const char *colour, double width)
{
	sbi_svg_puts(s, "<path d=\"");
	int move = 1;
	for (size_t i = 0; i < n; i += stride) {
		double xi = x ? x[i] : (double)(i + 1);
		if (!isfinite(xi) || !isfinite(y[i])) {
			move = 1;
			continue;
		}
		move_line(s, move, fx(f, xi), fy(f, clampd(y[i], f->ymin, f->ymax)));
		move = 0;
	}
	sbi_svg_printf(s, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\"/>\n", colour, width);
}

static void
points(sbi_svg *s, const frame *f, const double *x, const double *y, size_t n, const char *colour)
{
	sbi_svg_printf(s, "<g fill=\"%s\">\n", colour);
	for (size_t i = 0; i < n; i++) {
		double xi = x ? x[i] : (double)(i + 1);
		if (!isfinite(xi) || !isfinite(y[i]) || y[i] < f->ymin || y[i] > f->ymax)
			continue;
		sbi_svg_puts(s, "<circle cx=\"");
		sbi_svg_num(s, fx(f, xi));
		sbi_svg_puts(s, "\" cy=\"");
		sbi_svg_num(s, fy(f, y[i]));
		sbi_svg_puts(s, "\" r=\"2.2\"/>\n");
	}
	sbi_svg_puts(s, "</g>\n");
}

/* Title, axis labels and the frame of a single-panel plot of size W x H. */
static void
single_frame(sbi_svg *s, frame *f, double W, double H, double top, const char *title, const char *xlabel,
    const char *ylabel)
{
	f->x0 = 62;
	f->y0 = top;
	f->w = W - 62 - 16;
	f->h = H - top - 46;
	if (title)
		sbi_svg_text(s, W / 2, 16, "middle", 13, 0, title);
	if (xlabel)
		sbi_svg_text(s, f->x0 + f->w / 2, H - 8, "middle", 12, 0, xlabel);
	if (ylabel)
		sbi_svg_text(s, 14, f->y0 + f->h / 2, "middle", 12, -90, ylabel);
}

int
sbi_plot_curve(const sbi_plot_series *sr, size_t ns, const sbi_plot_curve_opts *o, char **svg, sbi_err *err)
{
	*svg = NULL;
	sbi_plot_curve_opts def = { .xmin = NAN, .xmax = NAN, .ymin = NAN, .ymax = NAN };
	o = o ? o : &def;
	if (ns == 0)
		return sbi_err_set(err, SBI_EINVAL, "curve plot: no series given");
	for (size_t k = 0; k < ns; k++)
		if (sr[k].y == NULL || sr[k].n == 0)
			return sbi_err_set(err, SBI_EINVAL, "curve plot: series %zu has no points", k + 1);
	double r[4];
	series_range(sr, ns, r);
	double xr[2] = { isnan(o->xmin) ? r[0] : o->xmin, isnan(o->xmax) ? r[1] : o->xmax };
	double yr[2] = { isnan(o->ymin) ? r[2] : o->ymin, isnan(o->ymax) ? r[3] : o->ymax };
	fix_range(&xr[0], &xr[1]);
	fix_range(&yr[0], &yr[1]);
	size_t nnamed = 0;
	for (size_t k = 0; k < ns; k++)
		nnamed += sr[k].name != NULL;
	double W = o->width > 0 ? o->width : 420, H = o->height > 0 ? o->height : 300;
	double top = (o->title ? 26 : 10) + 16.0 * (double)nnamed;
	H += 16.0 * (double)nnamed;
	sbi_svg s = { 0 };
	svg_open(&s, W, H);
	frame f = { 0, 0, 0, 0, xr[0], xr[1], yr[0], yr[1] };
	single_frame(&s, &f, W, H, top, o->title, o->xlabel, o->ylabel);
	for (size_t k = 0, row = 0; k < ns; k++)
		if (sr[k].name) {
			const char *nm[1] = { sr[k].name };
			legend(&s, f.x0 + 4, (o->title ? 38 : 22) + 16.0 * (double)row++, nm, 1, k);
		}
	for (size_t k = 0; k < ns; k++)
		if (sr[k].lo && sr[k].hi)
			band(&s, &f, sr[k].x, sr[k].lo, sr[k].hi, sr[k].n, sbi_plot_colour(k), 0.2);
	if (o->diagonal) {
		double a = fmax(xr[0], yr[0]), b = fmin(xr[1], yr[1]);
		sbi_svg_puts(&s, "<path d=\"");
		move_line(&s, 1, fx(&f, a), fy(&f, a));
		move_line(&s, 0, fx(&f, b), fy(&f, b));
		sbi_svg_puts(&s, "\" stroke=\"#777777\" stroke-width=\"1\" stroke-dasharray=\"4 3\"/>\n");
	}
	for (size_t k = 0; k < ns; k++) {
		polyline(&s, &f, sr[k].x, sr[k].y, sr[k].n, 1, sbi_plot_colour(k), 1.6);
		if (sr[k].points)
			points(&s, &f, sr[k].x, sr[k].y, sr[k].n, sbi_plot_colour(k));
	}
	axes(&s, &f, 1, 1);
	return svg_close(&s, svg, err);
}

/* ---- rank histograms ---- */

int
sbi_plot_ranks(const sbi_mat *ranks, double max_rank, size_t bins, const char *const *labels, char **svg,
    sbi_err *err)
{
	*svg = NULL;
	if (ranks == NULL || ranks->nrow == 0 || ranks->ncol == 0)
		return sbi_err_set(err, SBI_EINVAL, "rank histogram: no ranks given");
	if (!(max_rank >= 1) || !isfinite(max_rank))
		return sbi_err_set(err, SBI_EINVAL, "rank histogram: max_rank must be at least 1");
	size_t nb = bins ? bins : 20, d = ranks->ncol, n = ranks->nrow;
	if ((double)nb > max_rank + 1)
		nb = (size_t)max_rank + 1;
	double *c = sbi_calloc(nb * d, sizeof *c);
	if (c == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory while drawing rank histograms");
	double top = 0;
	for (size_t j = 0; j < d; j++) {
		for (size_t i = 0; i < n; i++) {
			long b = bin_of(ranks->data[i * d + j], 0, max_rank + 1, nb);
			if (b >= 0)
				c[j * nb + (size_t)b] += 1;
		}
		for (size_t b = 0; b < nb; b++)
			top = fmax(top, c[j * nb + b]);
	}
	/* The 99% band of a bin's count under uniform ranks (normal approximation). */
	double p = 1.0 / (double)nb, mean = (double)n * p, sd = sqrt((double)n * p * (1 - p));
	double blo = fmax(0, mean - 2.576 * sd), bhi = mean + 2.576 * sd;
	top = fmax(top, bhi) * 1.08;
	double P = 150, gap = 14, left = 50, W = left + (double)d * (P + gap) + 6, H = P + 62;
	sbi_svg s = { 0 };
	svg_open(&s, W, H);
	for (size_t j = 0; j < d; j++) {
		frame f = { left + (double)j * (P + gap), 12, P, P, 0, max_rank + 1, 0, top };
		sbi_svg_printf(&s, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#999999\" "
		    "fill-opacity=\"0.25\"/>\n", f.x0, fy(&f, bhi), f.w, fy(&f, blo) - fy(&f, bhi));
		sbi_svg_printf(&s, "<g fill=\"%s\" fill-opacity=\"0.8\">\n", sbi_plot_colour(0));
		for (size_t b = 0; b < nb; b++) {
			double x0 = f.x0 + f.w * (double)b / (double)nb, w = f.w / (double)nb, y = fy(&f, c[j * nb + b]);
			sbi_svg_printf(&s, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", x0 + 0.5, y,
			    w > 1 ? w - 1 : w, f.y0 + f.h - y);
		}
		sbi_svg_puts(&s, "</g>\n");
		axes(&s, &f, 1, j == 0);
		char lab[32];
		snprintf(lab, sizeof lab, "theta[%zu]", j + 1);
		sbi_svg_text(&s, f.x0 + P / 2, f.y0 + P + 30, "middle", 12, 0, labels && labels[j] ? labels[j] : lab);
	}
	sbi_svg_text(&s, 14, 12 + P / 2, "middle", 12, -90, "count");
	sbi_free(c);
	return svg_close(&s, svg, err);
}

/* ---- MCMC traces ---- */

int
sbi_plot_trace(const sbi_mat *const *chains, size_t nc, const char *const *labels, char **svg, sbi_err *err)
{
	*svg = NULL;
	if (nc == 0 || chains[0] == NULL || chains[0]->nrow == 0 || chains[0]->ncol == 0)
		return sbi_err_set(err, SBI_EINVAL, "trace plot: no chains given");
	size_t d = chains[0]->ncol, len = 0;
	for (size_t c = 0; c < nc; c++) {
		if (chains[c] == NULL || chains[c]->ncol != d || chains[c]->nrow == 0)
			return sbi_err_set(err, SBI_EINVAL, "trace plot: chain %zu is empty or has another number of "
			    "parameters than chain 1", c + 1);
		len = chains[c]->nrow > len ? chains[c]->nrow : len;
	}
	double *col = sbi_malloc(len * sizeof *col);
	if (col == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory while drawing traces");
	double PH = 90, gap = 10, W = 620, H = 10 + (double)d * (PH + gap) + 30;
	sbi_svg s = { 0 };
	svg_open(&s, W, H);
	for (size_t j = 0; j < d; j++) {
		double lo = INFINITY, hi = -INFINITY;
		for (size_t c = 0; c < nc; c++)
			for (size_t i = 0; i < chains[c]->nrow; i++) {
				double v = chains[c]->data[i * d + j];
				if (isfinite(v)) {
					lo = fmin(lo, v);
					hi = fmax(hi, v);
				}
			}
		fix_range(&lo, &hi);
		frame f = { 70, 10 + (double)j * (PH + gap), W - 86, PH, 1, (double)len, lo, hi };
		if (len < 2)
			f.xmax = 2;
		size_t stride = len > 1000 ? (len + 999) / 1000 : 1;
		for (size_t c = 0; c < nc; c++) {
			for (size_t i = 0; i < chains[c]->nrow; i++)
				col[i] = chains[c]->data[i * d + j];
			polyline(&s, &f, NULL, col, chains[c]->nrow, stride, sbi_plot_colour(c), 0.7);
		}
		axes(&s, &f, j == d - 1, 1);
		char lab[32];
		snprintf(lab, sizeof lab, "theta[%zu]", j + 1);
		sbi_svg_text(&s, 14, f.y0 + PH / 2, "middle", 12, -90, labels && labels[j] ? labels[j] : lab);
	}
	sbi_svg_text(&s, 70 + (W - 86) / 2, H - 4, "middle", 12, 0, "iteration");
	sbi_free(col);
	return svg_close(&s, svg, err);
}

/* ---- predictive plot ---- */

/* Quantiles 5, 25, 50, 75, 95% of each column of pred into q[5 * n]. */
static int
column_quantiles(const sbi_mat *pred, double *q, double *tmp)
{
	static const double levels[5] = { 0.05, 0.25, 0.5, 0.75, 0.95 };
	size_t n = pred->ncol;
	for (size_t j = 0; j < n; j++) {
		size_t k = 0;
		for (size_t i = 0; i < pred->nrow; i++)
			if (isfinite(pred->data[i * n + j]))
				tmp[k++] = pred->data[i * n + j];
		if (k == 0)
			return -1;
		qsort(tmp, k, sizeof *tmp, cmp_double);
		for (int l = 0; l < 5; l++)
			q[(size_t)l * n + j] = quantile_sorted(tmp, k, levels[l]);
	}
	return 0;
}

int
sbi_plot_predictive(const double *obs, const sbi_mat *pred, const sbi_plot_predictive_opts *o, char **svg,
    sbi_err *err)
{
	*svg = NULL;
	sbi_plot_predictive_opts def = { 0 };
	o = o ? o : &def;
	if (pred == NULL || pred->nrow == 0 || pred->ncol == 0)
		return sbi_err_set(err, SBI_EINVAL, "predictive plot: no predicted series given");
	size_t n = pred->ncol;
	double *q = sbi_malloc((5 * n + pred->nrow) * sizeof *q);
	if (q == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory while drawing a predictive plot");
	if (column_quantiles(pred, q, q + 5 * n) != 0) {
		sbi_free(q);
		return sbi_err_set(err, SBI_EINVAL, "predictive plot: a column of the predicted series has no finite "
		    "value");
	}
	sbi_plot_series sr[2] = {
		{ .x = o->x, .y = q + 2 * n, .lo = q, .hi = q + 4 * n, .n = n, .name = NULL },
		{ .x = o->x, .y = q + 2 * n, .lo = q + n, .hi = q + 3 * n, .n = n, .name = NULL },
	};
	double r[4];
	series_range(sr, 2, r);
	if (obs)
		for (size_t i = 0; i < n; i++)
			if (isfinite(obs[i])) {
				r[2] = fmin(r[2], obs[i]);
				r[3] = fmax(r[3], obs[i]);
			}
	fix_range(&r[0], &r[1]);
	fix_range(&r[2], &r[3]);
	double W = 520, H = 340 + 32;
	sbi_svg s = { 0 };
	svg_open(&s, W, H);
	frame f = { 0, 0, 0, 0, r[0], r[1], r[2] - 0.03 * (r[3] - r[2]), r[3] + 0.03 * (r[3] - r[2]) };
	single_frame(&s, &f, W, H, o->title ? 58 : 42, o->title, o->xlabel ? o->xlabel : "x",
	    o->ylabel ? o->ylabel : "data");
	const char *leg[2] = { "predictive median, 50% and 90% bands", obs ? "observation" : NULL };
	legend(&s, f.x0 + 4, (o->title ? 34 : 18), leg, 2, 0);
	band(&s, &f, o->x, q, q + 4 * n, n, sbi_plot_colour(0), 0.18);
	band(&s, &f, o->x, q + n, q + 3 * n, n, sbi_plot_colour(0), 0.3);
	polyline(&s, &f, o->x, q + 2 * n, n, 1, sbi_plot_colour(0), 1.6);
	if (obs)
		points(&s, &f, o->x, obs, n, sbi_plot_colour(1));
	axes(&s, &f, 1, 1);
	sbi_free(q);
	return svg_close(&s, svg, err);
}
