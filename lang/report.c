/* The HTML report (report.h): run.json and the output files of a folder
 * turned into one page with inline CSS and SVG (engine/plot), nothing
 * fetched. Output files are recognized by their columns (docs/report.md):
 * posterior samples, a predictive (x[1]..x[K] over many rows) and its
 * observation (x[1]..x[K] in one row), coverage (level, coverage, lower,
 * upper), loss curves (epoch, ...), SBC ranks (a file named *ranks), MCMC
 * traces (chain, ...). Everything but times is the same for the same
 * outputs; times are inside <span class="t">. */
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
#include "sbi/alloc.h"
#include "sbi/fsutil.h"
#include "sbi/io.h"
#include "sbi/plot.h"
#include "sbi/svg.h"

enum file_kind { F_POSTERIOR, F_PREDICTIVE, F_OBSERVATION, F_COVERAGE, F_LOSS, F_RANKS, F_TRACE };

/* One output file read back: its matrix and header. */
typedef struct rfile {
	char *output, *file; /* output name, file name (owned) */
	sbi_mat *m;          /* owned */
	char **names;        /* ncol header fields (owned) */
	size_t nnames, xfirst; /* xfirst: the first x[1] column of a predictive */
	enum file_kind kind;
	int used;            /* drawn already */
} rfile;

typedef struct report {
	const char *dir;
	json_t *run;   /* run.json (owned) */
	rfile *f;      /* nf files (owned) */
	size_t nf;
	sbi_svg h;     /* the page */
	sbi_svg notes; /* files left out, shown under Plots */
	int nplots;
} report;

/* Output files larger than this are listed but not read: a recipe that
 * outputs a million simulations should not wait for its report. */
#define REPORT_MAX_FILE (64.0 * 1024 * 1024)

static const char css[] =
    "body{font-family:sans-serif;margin:24px auto;max-width:1100px;color:#222;line-height:1.4}"
    "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:2px;margin-top:28px}"
    "h3{font-size:15px}table{border-collapse:collapse;margin:8px 0;font-size:13px}"
    "th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
    "td.l,th.l{text-align:left}.pass{color:#1a7f37;font-weight:bold}.fail{color:#c62828;font-weight:bold}"
    ".warn{color:#9a6700}figure{margin:12px 0;display:inline-block;vertical-align:top}"
    "figcaption{font-size:13px;color:#555}code{background:#f5f5f5;padding:0 3px}";

static int
has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && strcmp(s + n - m, suf) == 0;
}

static void
rfile_clear(rfile *f)
{
	sbi_free(f->output);
	sbi_free(f->file);
	sbi_mat_free(f->m);
	for (size_t i = 0; i < f->nnames; i++)
		sbi_free(f->names[i]);
	sbi_free(f->names);
}

/* 1 when names[k..k+K-1] are "x[1]" .. "x[K]" and nothing follows. */
static int
x_columns_from(char **names, size_t n, size_t k)
{
	if (k >= n)
		return 0;
	for (size_t j = k; j < n; j++) {
		char want[32];
		snprintf(want, sizeof want, "x[%zu]", j - k + 1);
		if (strcmp(names[j], want) != 0)
			return 0;
	}
	return 1;
}

static void
classify(rfile *f)
{
	char **n = f->names;
	size_t k = f->nnames;
	char stem[256];
	snprintf(stem, sizeof stem, "%s", f->file);
	stem[strlen(stem) - 4] = '\0'; /* ".csv" */
	f->kind = F_POSTERIOR;
	if (k >= 2 && strcmp(n[0], "level") == 0 && strcmp(n[1], "coverage") == 0)
		f->kind = F_COVERAGE;
	else if (k >= 2 && strcmp(n[0], "epoch") == 0)
		f->kind = F_LOSS;
	else if (k >= 2 && strcmp(n[0], "chain") == 0)
		f->kind = F_TRACE;
	else if (has_suffix(stem, "ranks"))
		f->kind = F_RANKS;
	else if (x_columns_from(n, k, 0) && f->m->nrow == 1)
		f->kind = F_OBSERVATION;
	else
		for (size_t j = 0; j < k; j++)
			if (x_columns_from(n, k, j) && k - j >= 2) {
				f->kind = F_PREDICTIVE;
				f->xfirst = j;
				break;
			}
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reads one CSV output file into r->f (skipped with a note in the page
 * when it cannot be read or has no header). */
static int
read_file(report *r, const char *output, const char *file, sbi_err *err)
{
	char *path = sbi_path_join(r->dir, file);
	if (path == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	rfile f = { 0 };
	sbi_err e = { 0 };
	struct stat st;
	if (stat(path, &st) == 0 && (double)st.st_size > REPORT_MAX_FILE) {
		sbi_svg_puts(&r->notes, "<p class=\"warn\"><code>");
		sbi_svg_escape(&r->notes, file);
		sbi_svg_printf(&r->notes, "</code>: not read for the report (%.0f MB, more than the %.0f MB it reads)</p>\n",
		    (double)st.st_size / 1048576, REPORT_MAX_FILE / 1048576);
		sbi_free(path);
		return SBI_OK;
	}
	int rc = sbi_csv_read(path, &f.m, &f.names, &f.nnames, &e);
	sbi_free(path);
	if (rc != SBI_OK || f.nnames != f.m->ncol || f.m->nrow == 0) {
		rfile_clear(&f);
		return SBI_OK; /* listed under Files, not drawn */
	}
	rfile *g = sbi_realloc(r->f, (r->nf + 1) * sizeof *g);
	f.output = sbi_strdup(output);
	f.file = sbi_strdup(file);
	if (g == NULL || f.output == NULL || f.file == NULL) {
		rfile_clear(&f);
		if (g)
			r->f = g;
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	}
	r->f = g;
	classify(&f);
	r->f[r->nf++] = f;
	return SBI_OK;
}

/* Every .csv file of every output in run.json, in output order and, within
 * an output, by file name. */
static int
read_outputs(report *r, sbi_err *err)
{
	json_t *outs = json_object_get(r->run, "outputs"), *o;
	size_t i;
	json_array_foreach(outs, i, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		json_t *files = json_object_get(o, "files");
		size_t n = json_object_size(files), k = 0;
		if (name == NULL || n == 0)
			continue;
		const char **keys = sbi_malloc(n * sizeof *keys);
		if (keys == NULL)
			return sbi_err_set(err, SBI_ENOMEM, "out of memory");
		const char *key;
		json_t *v;
		json_object_foreach(files, key, v) if (has_suffix(key, ".csv") && strchr(key, '/') == NULL)
			keys[k++] = key;
		qsort(keys, k, sizeof *keys, cmp_str);
		int rc = SBI_OK;
		for (size_t j = 0; j < k && rc == SBI_OK; j++)
			rc = read_file(r, name, keys[j], err);
		sbi_free(keys);
		if (rc != SBI_OK)
			return rc;
	}
	return SBI_OK;
}

/* ---- page pieces ---- */

static void
num(sbi_svg *h, double v)
{
	if (isnan(v))
		sbi_svg_puts(h, "nan");
	else
		sbi_svg_printf(h, "%.4g", v);
}

/* A JSON scalar as text (escaped); other values as compact JSON. */
static void
json_text(sbi_svg *h, const json_t *v)
{
	if (json_is_string(v))
		sbi_svg_escape(h, json_string_value(v));
	else if (json_is_integer(v))
		sbi_svg_printf(h, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		num(h, json_real_value(v));
	else if (json_is_true(v))
		sbi_svg_puts(h, "true");
	else if (json_is_false(v))
		sbi_svg_puts(h, "false");
	else if (v != NULL && !json_is_null(v)) {
		char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		if (s)
			sbi_svg_escape(h, s);
		free(s);
	}
}

static void
figure(report *r, const char *svg, const char *caption)
{
	sbi_svg_puts(&r->h, "<figure>\n");
	if (svg)
		sbi_svg_puts(&r->h, svg);
	sbi_svg_puts(&r->h, "<figcaption>");
	sbi_svg_escape(&r->h, caption);
	sbi_svg_puts(&r->h, "</figcaption></figure>\n");
	r->nplots++;
}

/* Draws svg (freed here) with its caption, or notes why it could not be drawn. */
static void
plot_or_note(report *r, int rc, char *svg, const sbi_err *e, const char *caption)
{
	if (rc == SBI_OK)
		figure(r, svg, caption);
	else {
		sbi_svg_puts(&r->h, "<p class=\"warn\">");
		sbi_svg_escape(&r->h, caption);
		sbi_svg_puts(&r->h, ": not drawn: ");
		sbi_svg_escape(&r->h, e->msg);
		sbi_svg_puts(&r->h, "</p>\n");
	}
	sbi_free(svg);
}

static void
header(report *r)
{
	sbi_svg *h = &r->h;
	const char *recipe = json_string_value(json_object_get(r->run, "recipe"));
	sbi_svg_puts(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>sbirun report");
	if (recipe) {
		sbi_svg_puts(h, ": ");
		sbi_svg_escape(h, recipe);
	}
	sbi_svg_printf(h, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>sbirun report</h1>\n<p>", css);
	if (recipe) {
		sbi_svg_puts(h, "Recipe <code>");
		sbi_svg_escape(h, recipe);
		sbi_svg_puts(h, "</code>, ");
	}
	json_t *ver = json_object_get(json_object_get(r->run, "versions"), "sbirun");
	if (ver) {
		sbi_svg_puts(h, "sbirun ");
		json_text(h, ver);
		sbi_svg_puts(h, ". ");
	}
	int ok = json_is_true(json_object_get(r->run, "ok"));
	sbi_svg_printf(h, "The run <span class=\"%s\">%s</span>: ", ok ? "pass" : "fail", ok ? "succeeded" : "failed");
	json_text(h, json_object_get(r->run, "nodes_ran"));
	sbi_svg_puts(h, " steps ran, ");
	json_text(h, json_object_get(r->run, "cache_hits"));
	sbi_svg_puts(h, " cache hits, ");
	json_text(h, json_object_get(r->run, "jobs"));
	sbi_svg_puts(h, " jobs, <span class=\"t\">");
	num(h, json_real_value(json_object_get(r->run, "seconds")));
	sbi_svg_puts(h, " s</span>.</p>\n");
	json_t *params = json_object_get(r->run, "params");
	if (json_object_size(params) > 0) {
		const char *k;
		json_t *v;
		sbi_svg_puts(h, "<p>Parameters (<code>--set</code>): ");
		size_t n = json_object_size(params), i = 0;
		const char **keys = sbi_malloc(n * sizeof *keys);
		if (keys) {
			json_object_foreach(params, k, v) keys[i++] = k;
			qsort(keys, n, sizeof *keys, cmp_str);
			for (i = 0; i < n; i++) {
				sbi_svg_puts(h, i ? ", <code>" : "<code>");
				sbi_svg_escape(h, keys[i]);
				sbi_svg_puts(h, "=");
				json_text(h, json_object_get(params, keys[i]));
				sbi_svg_puts(h, "</code>");
			}
			sbi_free(keys);
		}
		sbi_svg_puts(h, "</p>\n");
	}
}

/* A diagnostic's pass/fail from "pass", "passed" or "ok"; -1 when absent. */
static int
passed(const json_t *d)
{
	static const char *const keys[] = { "pass", "passed", "ok" };
	for (size_t i = 0; i < 3; i++) {
		json_t *v = json_object_get(d, keys[i]);
		if (json_is_boolean(v))
			return json_is_true(v);
	}
	return -1;
}

static int
is_known_field(const char *k)
{
	static const char *const known[] = { "name", "value", "threshold", "pass", "passed", "ok" };
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		if (strcmp(k, known[i]) == 0)
			return 1;
	return 0;
}

static void
diagnostic_row(sbi_svg *h, const char *key, const json_t *d)
{
	sbi_svg_puts(h, "<tr><td class=\"l\">");
	json_t *name = json_object_get(d, "name");
	if (name)
		json_text(h, name);
	else if (key)
		sbi_svg_escape(h, key);
	sbi_svg_puts(h, "</td><td>");
	json_text(h, json_is_object(d) ? json_object_get(d, "value") : d);
	sbi_svg_puts(h, "</td><td>");
	json_text(h, json_object_get(d, "threshold"));
	int p = passed(d);
	sbi_svg_printf(h, "</td><td class=\"%s\">%s</td><td class=\"l\">", p < 0 ? "" : p ? "pass" : "fail",
	    p < 0 ? "" : p ? "pass" : "FAIL");
	if (json_is_object(d)) {
		size_t n = json_object_size(d), i = 0;
		const char **keys = sbi_malloc((n ? n : 1) * sizeof *keys), *k;
		json_t *v;
		if (keys) {
			json_object_foreach((json_t *)d, k, v) if (!is_known_field(k)) keys[i++] = k;
			qsort(keys, i, sizeof *keys, cmp_str);
			for (size_t j = 0; j < i; j++) {
				sbi_svg_puts(h, j ? "; " : "");
				sbi_svg_escape(h, keys[j]);
				sbi_svg_puts(h, " = ");
				json_text(h, json_object_get(d, keys[j]));
			}
			sbi_free(keys);
		}
	}
	sbi_svg_puts(h, "</td></tr>\n");
}

/* run.json's "diagnostics" (a list, or an object by name) and "warnings". */
static void
diagnostics(report *r)
{
	sbi_svg *h = &r->h;
	json_t *d = json_object_get(r->run, "diagnostics"), *w = json_object_get(r->run, "warnings"), *v;
	sbi_svg_puts(h, "<h2>Diagnostics</h2>\n");
	if ((json_is_array(d) && json_array_size(d) > 0) || (json_is_object(d) && json_object_size(d) > 0)) {
		sbi_svg_puts(h, "<table>\n<tr><th class=\"l\">diagnostic</th><th>value</th><th>threshold</th>"
		    "<th>result</th><th class=\"l\">details</th></tr>\n");
		size_t i;
		if (json_is_array(d))
			json_array_foreach(d, i, v) diagnostic_row(h, NULL, v);
		else {
			size_t n = json_object_size(d), k = 0;
			const char **keys = sbi_malloc(n * sizeof *keys), *key;
			if (keys) {
				json_object_foreach(d, key, v) keys[k++] = key;
				qsort(keys, n, sizeof *keys, cmp_str);
				for (i = 0; i < n; i++)
					diagnostic_row(h, keys[i], json_object_get(d, keys[i]));
				sbi_free(keys);
			}
		}
		sbi_svg_puts(h, "</table>\n");
	} else
		sbi_svg_puts(h, "<p>No diagnostics in this run.</p>\n");
	sbi_svg_puts(h, "<h3>Warnings</h3>\n");
	if (json_is_array(w) && json_array_size(w) > 0) {
		size_t i;
		sbi_svg_puts(h, "<ul>\n");
		json_array_foreach(w, i, v) {
			sbi_svg_puts(h, "<li class=\"warn\">");
			json_t *msg = json_is_object(v) ? json_object_get(v, "message") : NULL;
			json_text(h, msg ? msg : v);
			sbi_svg_puts(h, "</li>\n");
		}
		sbi_svg_puts(h, "</ul>\n");
	} else
		sbi_svg_puts(h, "<p>No warnings.</p>\n");
}

/* Mean, sd and quantiles of every column of f (the posterior part). */
static int
summary_table(report *r, const rfile *f, size_t ncols)
{
	sbi_svg *h = &r->h;
	size_t n = f->m->nrow;
	double *c = sbi_malloc(n * sizeof *c);
	if (c == NULL)
		return SBI_ENOMEM;
	sbi_svg_printf(h, "<h3>");
	sbi_svg_escape(h, f->output);
	sbi_svg_printf(h, " <small>(%zu samples, <code>", n);
	sbi_svg_escape(h, f->file);
	sbi_svg_puts(h, "</code>)</small></h3>\n<table>\n<tr><th class=\"l\">parameter</th><th>mean</th><th>sd</th>"
	    "<th>5%</th><th>25%</th><th>50%</th><th>75%</th><th>95%</th></tr>\n");
	static const double q[5] = { 0.05, 0.25, 0.5, 0.75, 0.95 };
	for (size_t j = 0; j < ncols; j++) {
		for (size_t i = 0; i < n; i++)
			c[i] = f->m->data[i * f->m->ncol + j];
		gsl_sort(c, 1, n);
		sbi_svg_puts(h, "<tr><td class=\"l\">");
		sbi_svg_escape(h, f->names[j]);
		sbi_svg_puts(h, "</td><td>");
		num(h, gsl_stats_mean(c, 1, n));
		sbi_svg_puts(h, "</td><td>");
		num(h, n > 1 ? gsl_stats_sd(c, 1, n) : 0);
		for (int k = 0; k < 5; k++) {
			sbi_svg_puts(h, "</td><td>");
			num(h, gsl_stats_quantile_from_sorted_data(c, 1, n, q[k]));
		}
		sbi_svg_puts(h, "</td></tr>\n");
	}
	sbi_svg_puts(h, "</table>\n");
	sbi_free(c);
	return SBI_OK;
}

static int
same_names(const rfile *a, const rfile *b)
{
	if (a->nnames != b->nnames)
		return 0;
	for (size_t j = 0; j < a->nnames; j++)
		if (strcmp(a->names[j], b->names[j]) != 0)
			return 0;
	return 1;
}

/* One corner plot per set of posteriors over the same parameters. */
static int
corner_plots(report *r)
{
	const sbi_mat **m = sbi_malloc((r->nf ? r->nf : 1) * sizeof *m);
	const char **names = sbi_malloc((r->nf ? r->nf : 1) * sizeof *names);
	if (m == NULL || names == NULL) {
		sbi_free(m);
		sbi_free(names);
		return SBI_ENOMEM;
	}
	for (size_t i = 0; i < r->nf; i++) {
		rfile *a = &r->f[i];
		if (a->kind != F_POSTERIOR || a->used)
			continue;
		size_t np = 0;
		sbi_svg cap = { 0 };
		sbi_svg_puts(&cap, "Posterior samples: ");
		for (size_t k = i; k < r->nf; k++) {
			rfile *b = &r->f[k];
			if (b->kind == F_POSTERIOR && !b->used && same_names(a, b)) {
				b->used = 1;
				m[np] = b->m;
				names[np++] = b->output;
				sbi_svg_printf(&cap, "%s%s", np > 1 ? ", " : "", b->output);
			}
		}
		sbi_svg_puts(&cap, np > 1 ? ", overlaid" : "");
		sbi_svg_puts(&cap, " (diagonal: marginal histograms; below: 50% and 90% highest-density contours)");
		sbi_plot_corner_opts o = { .labels = (const char *const *)a->names, .names = names };
		char *svg = NULL;
		sbi_err e = { 0 };
		int rc = sbi_plot_corner(m, np, &o, &svg, &e);
		plot_or_note(r, rc, svg, &e, cap.buf ? cap.buf : "corner plot");
		sbi_svg_clear(&cap);
	}
	sbi_free(m);
	sbi_free(names);
	return SBI_OK;
}

/* Column j of f as a fresh array (caller frees). */
static double *
column(const rfile *f, size_t j)
{
	double *c = sbi_malloc(f->m->nrow * sizeof *c);
	for (size_t i = 0; c && i < f->m->nrow; i++)
		c[i] = f->m->data[i * f->m->ncol + j];
	return c;
}

static int
find_col(const rfile *f, const char *name)
{
	for (size_t j = 0; j < f->nnames; j++)
		if (strcmp(f->names[j], name) == 0)
			return (int)j;
	return -1;
}

static void
coverage_plot(report *r, const rfile *f)
{
	int lo = find_col(f, "lower"), hi = find_col(f, "upper");
	double *x = column(f, 0), *y = column(f, 1), *l = lo >= 0 ? column(f, (size_t)lo) : NULL,
	       *u = hi >= 0 ? column(f, (size_t)hi) : NULL;
	sbi_plot_series s = { .x = x, .y = y, .lo = l && u ? l : NULL, .hi = l && u ? u : NULL, .n = f->m->nrow,
		.name = f->output };
	sbi_plot_curve_opts o = { .title = "Expected coverage", .xlabel = "credibility level",
		.ylabel = "empirical coverage", .diagonal = 1, .xmin = 0, .xmax = 1, .ymin = 0, .ymax = 1 };
	char *svg = NULL;
	sbi_err e = { 0 };
	int rc = x && y ? sbi_plot_curve(&s, 1, &o, &svg, &e) : sbi_err_set(&e, SBI_ENOMEM, "out of memory");
	char cap[512];
	snprintf(cap, sizeof cap, "Expected coverage of %s (%s): the diagonal is a calibrated posterior; the band, "
	    "the binomial band of the test count. Above: underconfident, below: overconfident.", f->output, f->file);
	plot_or_note(r, rc, svg, &e, cap);
	sbi_free(x);
	sbi_free(y);
	sbi_free(l);
	sbi_free(u);
}

static void
loss_plot(report *r, const rfile *f)
{
	size_t ns = f->nnames - 1;
	if (ns > 8)
		ns = 8;
	sbi_plot_series s[8];
	double *x = column(f, 0), *ys[8] = { 0 };
	for (size_t k = 0; k < ns; k++) {
		ys[k] = column(f, k + 1);
		s[k] = (sbi_plot_series){ .x = x, .y = ys[k], .n = f->m->nrow, .name = f->names[k + 1] };
	}
	sbi_plot_curve_opts o = { .title = "Training", .xlabel = "epoch", .ylabel = "loss", .xmin = NAN,
		.xmax = NAN, .ymin = NAN, .ymax = NAN };
	char *svg = NULL;
	sbi_err e = { 0 };
	int ok = x != NULL;
	for (size_t k = 0; k < ns; k++)
		ok = ok && ys[k];
	int rc = ok ? sbi_plot_curve(s, ns, &o, &svg, &e) : sbi_err_set(&e, SBI_ENOMEM, "out of memory");
	char cap[512];
	snprintf(cap, sizeof cap, "Loss curves of the estimator behind %s (%s)", f->output, f->file);
	plot_or_note(r, rc, svg, &e, cap);
	sbi_free(x);
	for (size_t k = 0; k < ns; k++)
		sbi_free(ys[k]);
}

static void
ranks_plot(report *r, const rfile *f)
{
	double top = 0;
	for (size_t i = 0; i < f->m->nrow * f->m->ncol; i++)
		top = fmax(top, f->m->data[i]);
	char *svg = NULL;
	sbi_err e = { 0 };
	int rc = sbi_plot_ranks(f->m, ceil(top), 0, (const char *const *)f->names, &svg, &e);
	char cap[512];
	snprintf(cap, sizeof cap, "SBC rank histograms of %s (%s); grey: the 99%% band of a uniform count per bin",
	    f->output, f->file);
	plot_or_note(r, rc, svg, &e, cap);
}

/* Traces: rows grouped by the chain column, in order of first appearance. */
static void
trace_plot(report *r, const rfile *f)
{
	size_t n = f->m->nrow, d = f->m->ncol - 1, nc = 0;
	double *ids = sbi_malloc(n * sizeof *ids);
	sbi_mat **ch = sbi_calloc(n, sizeof *ch);
	sbi_err e = { 0 };
	int rc = ids && ch ? SBI_OK : sbi_err_set(&e, SBI_ENOMEM, "out of memory");
	for (size_t i = 0; rc == SBI_OK && i < n; i++) {
		double id = f->m->data[i * f->m->ncol];
		size_t c = 0;
		while (c < nc && ids[c] != id)
			c++;
		if (c == nc) {
			ids[nc] = id;
			size_t len = 0;
			for (size_t k = i; k < n; k++)
				len += f->m->data[k * f->m->ncol] == id;
			if ((ch[nc] = sbi_mat_alloc(len, d)) == NULL) {
				rc = sbi_err_set(&e, SBI_ENOMEM, "out of memory");
				break;
			}
			ch[nc++]->nrow = 0;
		}
		memcpy(sbi_mat_row(ch[c], ch[c]->nrow++), f->m->data + i * f->m->ncol + 1, d * sizeof(double));
	}
	char *svg = NULL;
	if (rc == SBI_OK)
		rc = sbi_plot_trace((const sbi_mat *const *)ch, nc > 8 ? 8 : nc, (const char *const *)f->names + 1, &svg,
		    &e);
	char cap[512];
	snprintf(cap, sizeof cap, "MCMC traces of %s (%s), one colour per chain%s", f->output, f->file,
	    nc > 8 ? " (the first 8 chains)" : "");
	plot_or_note(r, rc, svg, &e, cap);
	for (size_t c = 0; c < nc; c++)
		sbi_mat_free(ch[c]);
	sbi_free(ch);
	sbi_free(ids);
}

/* The predictive's x columns against the observation with as many. */
static void
predictive_plot(report *r, const rfile *f)
{
	size_t k = f->nnames - f->xfirst;
	const double *obs = NULL;
	const char *obs_name = NULL;
	for (size_t i = 0; i < r->nf && obs == NULL; i++)
		if (r->f[i].kind == F_OBSERVATION && r->f[i].nnames == k) {
			obs = r->f[i].m->data;
			obs_name = r->f[i].output;
		}
	sbi_mat *p = sbi_mat_alloc(f->m->nrow, k);
	char *svg = NULL;
	sbi_err e = { 0 };
	int rc = p ? SBI_OK : sbi_err_set(&e, SBI_ENOMEM, "out of memory");
	for (size_t i = 0; p && i < f->m->nrow; i++)
		memcpy(sbi_mat_row(p, i), f->m->data + i * f->m->ncol + f->xfirst, k * sizeof(double));
	sbi_plot_predictive_opts o = { .title = "Posterior predictive", .xlabel = "data index", .ylabel = "data" };
	if (rc == SBI_OK)
		rc = sbi_plot_predictive(obs, p, &o, &svg, &e);
	char cap[512];
	snprintf(cap, sizeof cap, "Output %s (%s, %zu predicted series): median, 50%% and 90%% bands%s%s%s", f->output,
	    f->file, f->m->nrow, obs ? "; points: the observation (output " : "", obs ? obs_name : "", obs ? ")" : "");
	plot_or_note(r, rc, svg, &e, cap);
	sbi_mat_free(p);
}

static void
plots(report *r)
{
	sbi_svg_puts(&r->h, "<h2>Plots</h2>\n");
	if (r->notes.buf)
		sbi_svg_puts(&r->h, r->notes.buf);
	corner_plots(r);
	for (size_t i = 0; i < r->nf; i++) {
		switch (r->f[i].kind) {
		case F_COVERAGE: coverage_plot(r, &r->f[i]); break;
		case F_LOSS: loss_plot(r, &r->f[i]); break;
		case F_RANKS: ranks_plot(r, &r->f[i]); break;
		case F_TRACE: trace_plot(r, &r->f[i]); break;
		case F_PREDICTIVE: predictive_plot(r, &r->f[i]); break;
		default: break;
		}
	}
	if (r->nplots == 0)
		sbi_svg_puts(&r->h, "<p>No plots: the outputs hold no samples.</p>\n");
}

static void
posteriors(report *r)
{
	sbi_svg_puts(&r->h, "<h2>Posteriors</h2>\n");
	int any = 0;
	for (size_t i = 0; i < r->nf; i++)
		if (r->f[i].kind == F_POSTERIOR) {
			summary_table(r, &r->f[i], r->f[i].nnames);
			any = 1;
		}
	if (!any)
		sbi_svg_puts(&r->h, "<p>No posterior samples among the outputs.</p>\n");
}

static void
steps(report *r)
{
	sbi_svg *h = &r->h;
	json_t *nodes = json_object_get(r->run, "nodes"), *n;
	size_t i;
	sbi_svg_puts(h, "<h2>Steps</h2>\n<table>\n<tr><th>id</th><th class=\"l\">kind</th><th class=\"l\">step</th>"
	    "<th class=\"l\">state</th><th>seconds</th></tr>\n");
	json_array_foreach(nodes, i, n) {
		sbi_svg_puts(h, "<tr><td>");
		json_text(h, json_object_get(n, "id"));
		sbi_svg_puts(h, "</td><td class=\"l\">");
		json_text(h, json_object_get(n, "kind"));
		sbi_svg_puts(h, "</td><td class=\"l\">");
		json_text(h, json_object_get(n, "label"));
		sbi_svg_puts(h, "</td><td class=\"l\">");
		json_text(h, json_object_get(n, "state"));
		sbi_svg_puts(h, "</td><td><span class=\"t\">");
		num(h, json_real_value(json_object_get(n, "seconds")));
		sbi_svg_puts(h, "</span></td></tr>\n");
	}
	sbi_svg_puts(h, "</table>\n<h2>Files</h2>\n<ul>\n");
	json_t *outs = json_object_get(r->run, "outputs"), *o;
	json_array_foreach(outs, i, o) {
		json_t *files = json_object_get(o, "files");
		size_t nf = json_object_size(files), k = 0;
		const char **keys = sbi_malloc((nf ? nf : 1) * sizeof *keys), *key;
		json_t *v;
		if (keys == NULL)
			continue;
		json_object_foreach(files, key, v) keys[k++] = key;
		qsort(keys, k, sizeof *keys, cmp_str);
		for (size_t j = 0; j < k; j++) {
			sbi_svg_puts(h, "<li><code>");
			sbi_svg_escape(h, keys[j]);
			sbi_svg_puts(h, "</code> (BLAKE2b ");
			json_text(h, json_object_get(files, keys[j]));
			sbi_svg_puts(h, ")</li>\n");
		}
		json_t *err = json_object_get(o, "error");
		if (err) {
			sbi_svg_puts(h, "<li class=\"fail\">");
			json_text(h, json_object_get(o, "name"));
			sbi_svg_puts(h, ": ");
			json_text(h, err);
			sbi_svg_puts(h, "</li>\n");
		}
		sbi_free(keys);
	}
	sbi_svg_puts(h, "</ul>\n");
}

int
sbi_report_write(const char *out_dir, sbi_err *err)
{
	report r = { .dir = out_dir };
	char *path = sbi_path_join(out_dir, "run.json");
	if (path == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	json_error_t je;
	r.run = sbi_fs_exists(path) ? json_load_file(path, 0, &je) : NULL;
	if (r.run == NULL || !json_is_object(r.run)) {
		int rc = sbi_err_set(err, SBI_EINVAL, "%s: %s (not the output folder of an sbirun run?)", path,
		    !sbi_fs_exists(path) ? "no such file" : r.run ? "not a JSON object" : je.text);
		json_decref(r.run);
		sbi_free(path);
		return rc;
	}
	sbi_free(path);
	int rc = read_outputs(&r, err);
	if (rc == SBI_OK) {
		header(&r);
		diagnostics(&r);
		posteriors(&r);
		plots(&r);
		steps(&r);
		sbi_svg_puts(&r.h, "</body>\n</html>\n");
		size_t len;
		char *text = sbi_svg_take(&r.h, &len);
		char *out = sbi_path_join(out_dir, "report.html");
		if (text == NULL || out == NULL)
			rc = sbi_err_set(err, SBI_ENOMEM, "out of memory while writing the report");
		else
			rc = sbi_fs_write_atomic(out, text, len, err);
		sbi_free(text);
		sbi_free(out);
	}
	sbi_svg_clear(&r.h);
	sbi_svg_clear(&r.notes);
	for (size_t i = 0; i < r.nf; i++)
		rfile_clear(&r.f[i]);
	sbi_free(r.f);
	json_decref(r.run);
	return rc;
}
