/* Part of sbi.core: plots as SVG strings over engine/plot (sbi/plot.h):
 * core.plot_corner, core.plot_curve, core.plot_ranks, core.plot_trace,
 * core.plot_predictive. They only return text: writing it anywhere goes
 * through the outputs (the report), never through a path given here.
 * Options are read with raw access, so no Lua code runs while C holds
 * pointers into the option tables. */
#include <math.h>
#include <string.h>

#include "lsbi.h"
#include "sbi/alloc.h"
#include "sbi/plot.h"

/* Scratch memory the collector frees if an error unwinds: [..] -> [.., ud] */
static void *
scratch(lua_State *L, size_t n)
{
	return lua_newuserdatauv(L, n ? n : 1, 0);
}

/* opts[field] as a list of strings (borrowed from the table), with at
 * least `want` entries when want > 0; NULL when absent. [..] -> [.., ud?] */
static const char **
opt_strings(lua_State *L, int opts, const char *fn, const char *field, size_t want)
{
	lua_pushstring(L, field);
	int t = lua_rawget(L, opts);
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return NULL;
	}
	if (t != LUA_TTABLE)
		luaL_error(L, "%s: '%s' must be a list of strings, got %s", fn, field, luaL_typename(L, -1));
	size_t n = lua_rawlen(L, -1);
	if (want > 0 && n < want)
		luaL_error(L, "%s: '%s' has %d entries, expected %d", fn, field, (int)n, (int)want);
	const char **s = scratch(L, (n + 1) * sizeof *s);
	for (size_t i = 0; i < n; i++) {
		if (lua_rawgeti(L, -2, (lua_Integer)i + 1) != LUA_TSTRING)
			luaL_error(L, "%s: '%s'[%d] must be a string, got %s", fn, field, (int)i + 1, luaL_typename(L, -1));
		s[i] = lua_tostring(L, -1); /* stays alive: the table holds it */
		lua_pop(L, 1);
	}
	s[n] = NULL;
	lua_remove(L, -2);
	return s;
}

/* A list of numbers or a Mat at the top as a C array of *n values
 * (scratch pushed under nothing: [.., v] -> [.., v, ud]). */
static double *
to_numbers(lua_State *L, const char *fn, const char *field, size_t *n)
{
	int v = lua_gettop(L);
	if (lua_type(L, v) == LUA_TUSERDATA) {
		sbi_mat *m = sbi__check_mat(L, v)->m;
		if (m == NULL)
			luaL_error(L, "%s: '%s' is a released Mat", fn, field);
		*n = m->nrow * m->ncol;
		double *d = scratch(L, *n * sizeof *d);
		if (*n)
			memcpy(d, m->data, *n * sizeof *d);
		return d;
	}
	if (lua_type(L, v) != LUA_TTABLE)
		luaL_error(L, "%s: '%s' must be a list of numbers or a Mat, got %s", fn, field, luaL_typename(L, v));
	*n = lua_rawlen(L, v);
	double *d = scratch(L, *n * sizeof *d);
	for (size_t i = 0; i < *n; i++) {
		if (lua_rawgeti(L, v, (lua_Integer)i + 1) != LUA_TNUMBER)
			luaL_error(L, "%s: '%s'[%d] must be a number, got %s", fn, field, (int)i + 1, luaL_typename(L, -1));
		d[i] = lua_tonumber(L, -1);
		lua_pop(L, 1);
	}
	return d;
}

/* opts[field] as numbers (NULL when absent; *n set). [..] -> [.., v?, ud?] */
static double *
opt_numbers(lua_State *L, int opts, const char *fn, const char *field, size_t *n)
{
	lua_pushstring(L, field);
	if (lua_rawget(L, opts) == LUA_TNIL) {
		lua_pop(L, 1);
		*n = 0;
		return NULL;
	}
	return to_numbers(L, fn, field, n);
}

static double
opt_number(lua_State *L, int opts, const char *fn, const char *field, double def)
{
	lua_pushstring(L, field);
	int t = lua_rawget(L, opts);
	double v = def;
	if (t == LUA_TNUMBER)
		v = lua_tonumber(L, -1);
	else if (t != LUA_TNIL)
		luaL_error(L, "%s: '%s' must be a number, got %s", fn, field, luaL_typename(L, -1));
	lua_pop(L, 1);
	return v;
}

static size_t
opt_count(lua_State *L, int opts, const char *fn, const char *field, size_t max)
{
	double v = opt_number(L, opts, fn, field, 0);
	if (!(v >= 0 && v <= (double)max) || v != floor(v))
		luaL_error(L, "%s: '%s' must be an integer in 0..%d", fn, field, (int)max);
	return (size_t)v;
}

static const char *
opt_string(lua_State *L, int opts, const char *fn, const char *field)
{
	lua_pushstring(L, field);
	int t = lua_rawget(L, opts);
	const char *s = NULL;
	if (t == LUA_TSTRING)
		s = lua_tostring(L, -1); /* the table holds it */
	else if (t != LUA_TNIL)
		luaL_error(L, "%s: '%s' must be a string, got %s", fn, field, luaL_typename(L, -1));
	lua_pop(L, 1);
	return s;
}

static int
opt_bool(lua_State *L, int opts, const char *field)
{
	lua_pushstring(L, field);
	lua_rawget(L, opts);
	int b = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return b;
}

/* opts[field] as a list of Mats (borrowed). [..] -> [.., ud] */
static const sbi_mat **
opt_mats(lua_State *L, int opts, const char *fn, const char *field, size_t *n)
{
	lua_pushstring(L, field);
	if (lua_rawget(L, opts) != LUA_TTABLE)
		luaL_error(L, "%s: '%s' must be a list of Mats, got %s", fn, field, luaL_typename(L, -1));
	*n = lua_rawlen(L, -1);
	if (*n == 0)
		luaL_error(L, "%s: '%s' is empty", fn, field);
	const sbi_mat **m = scratch(L, *n * sizeof *m);
	for (size_t i = 0; i < *n; i++) {
		lua_rawgeti(L, -2, (lua_Integer)i + 1);
		if (!luaL_testudata(L, -1, SBI_MT_MAT))
			luaL_error(L, "%s: '%s'[%d] must be a Mat, got %s", fn, field, (int)i + 1, luaL_typename(L, -1));
		m[i] = sbi__check_mat(L, -1)->m;
		if (m[i] == NULL)
			luaL_error(L, "%s: '%s'[%d] is a released Mat", fn, field, (int)i + 1);
		lua_pop(L, 1);
	}
	lua_remove(L, -2);
	return m;
}

/* Pushes the plot text (freeing it) or raises with the engine's message. */
static int
push_svg(lua_State *L, const char *fn, int rc, char *svg, const sbi_err *err)
{
	if (rc != SBI_OK)
		return luaL_error(L, "%s: %s", fn, err->msg);
	lua_pushstring(L, svg);
	sbi_free(svg);
	return 1;
}

/* core.plot_corner{ samples = {Mat, ...}, labels =, names =, bins =, grid =,
 * scatter =, lower =, upper =, panel = } -> svg. [opts] -> [opts, .., svg] */
static int
l_plot_corner(lua_State *L)
{
	const char *fn = "core.plot_corner";
	luaL_checktype(L, 1, LUA_TTABLE);
	size_t np, nl, nu;
	const sbi_mat **m = opt_mats(L, 1, fn, "samples", &np);
	sbi_plot_corner_opts o = { 0 };
	o.labels = opt_strings(L, 1, fn, "labels", m[0]->ncol);
	o.names = opt_strings(L, 1, fn, "names", np);
	o.bins = opt_count(L, 1, fn, "bins", 1000);
	o.grid = opt_count(L, 1, fn, "grid", 400);
	o.scatter = opt_bool(L, 1, "scatter");
	o.panel = opt_number(L, 1, fn, "panel", 0);
	if (!(o.panel >= 0 && o.panel <= 2000))
		return luaL_error(L, "%s: 'panel' must be a size in px from 0 (the default, 130) to 2000", fn);
	o.lower = opt_numbers(L, 1, fn, "lower", &nl);
	o.upper = opt_numbers(L, 1, fn, "upper", &nu);
	if ((o.lower && nl != m[0]->ncol) || (o.upper && nu != m[0]->ncol) || (!o.lower != !o.upper))
		return luaL_error(L, "%s: 'lower' and 'upper' need %d values each", fn, (int)m[0]->ncol);
	char *svg;
	sbi_err err = { 0 };
	int rc = sbi_plot_corner(m, np, &o, &svg, &err);
	return push_svg(L, fn, rc, svg, &err);
}

/* One series table at the top into *s (arrays as scratch on the stack). */
static void
read_series(lua_State *L, const char *fn, sbi_plot_series *s)
{
	luaL_checkstack(L, 16, fn);
	int t = lua_gettop(L);
	if (!lua_istable(L, t))
		luaL_error(L, "%s: each series must be a table { x =, y =, lo =, hi =, name = }", fn);
	size_t n, k;
	s->y = opt_numbers(L, t, fn, "y", &n);
	if (s->y == NULL || n == 0)
		luaL_error(L, "%s: a series needs 'y' values", fn);
	s->n = n;
	const double **arr[3] = { &s->x, &s->lo, &s->hi };
	const char *names[3] = { "x", "lo", "hi" };
	for (int i = 0; i < 3; i++) {
		*arr[i] = opt_numbers(L, t, fn, names[i], &k);
		if (*arr[i] && k != n)
			luaL_error(L, "%s: a series' '%s' has %d values, its 'y' %d", fn, names[i], (int)k, (int)n);
	}
	if (!s->lo != !s->hi)
		luaL_error(L, "%s: a series' band needs both 'lo' and 'hi'", fn);
	s->name = opt_string(L, t, fn, "name");
	s->points = opt_bool(L, t, "points");
}

/* core.plot_curve{ series = {{ x =, y =, lo =, hi =, name =, points = }, ...},
 * title =, xlabel =, ylabel =, diagonal =, xmin =, xmax =, ymin =, ymax =,
 * width =, height = } -> svg. [opts] -> [opts, .., svg] */
static int
l_plot_curve(lua_State *L)
{
	const char *fn = "core.plot_curve";
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_pushstring(L, "series");
	if (lua_rawget(L, 1) != LUA_TTABLE || lua_rawlen(L, -1) == 0)
		return luaL_error(L, "%s: 'series' must be a non-empty list of series tables", fn);
	int list = lua_gettop(L);
	size_t ns = lua_rawlen(L, list);
	if (ns > 64)
		return luaL_error(L, "%s: at most 64 series", fn);
	sbi_plot_series *s = scratch(L, ns * sizeof *s);
	memset(s, 0, ns * sizeof *s);
	for (size_t k = 0; k < ns; k++) {
		lua_rawgeti(L, list, (lua_Integer)k + 1); /* stays: it anchors the series' scratch */
		read_series(L, fn, &s[k]);
	}
	sbi_plot_curve_opts o = { .title = opt_string(L, 1, fn, "title"), .xlabel = opt_string(L, 1, fn, "xlabel"),
		.ylabel = opt_string(L, 1, fn, "ylabel"), .diagonal = opt_bool(L, 1, "diagonal"),
		.xmin = opt_number(L, 1, fn, "xmin", NAN), .xmax = opt_number(L, 1, fn, "xmax", NAN),
		.ymin = opt_number(L, 1, fn, "ymin", NAN), .ymax = opt_number(L, 1, fn, "ymax", NAN),
		.width = opt_number(L, 1, fn, "width", 0), .height = opt_number(L, 1, fn, "height", 0) };
	if (!(o.width >= 0 && o.width <= 5000 && o.height >= 0 && o.height <= 5000))
		return luaL_error(L, "%s: 'width' and 'height' must be sizes in px from 0 (the default) to 5000", fn);
	char *svg;
	sbi_err err = { 0 };
	int rc = sbi_plot_curve(s, ns, &o, &svg, &err);
	return push_svg(L, fn, rc, svg, &err);
}

/* core.plot_ranks{ ranks = Mat, max_rank =, bins =, labels = } -> svg */
static int
l_plot_ranks(lua_State *L)
{
	const char *fn = "core.plot_ranks";
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_pushstring(L, "ranks");
	lua_rawget(L, 1);
	if (!luaL_testudata(L, -1, SBI_MT_MAT))
		return luaL_error(L, "%s: 'ranks' must be a Mat, got %s", fn, luaL_typename(L, -1));
	const sbi_mat *r = sbi__check_mat(L, -1)->m;
	if (r == NULL)
		return luaL_error(L, "%s: 'ranks' is a released Mat", fn);
	double max_rank = opt_number(L, 1, fn, "max_rank", NAN);
	if (isnan(max_rank))
		return luaL_error(L, "%s: 'max_rank' (the number of posterior draws per test) is required", fn);
	size_t bins = opt_count(L, 1, fn, "bins", 1000);
	const char **labels = opt_strings(L, 1, fn, "labels", r->ncol);
	char *svg;
	sbi_err err = { 0 };
	int rc = sbi_plot_ranks(r, max_rank, bins, labels, &svg, &err);
	return push_svg(L, fn, rc, svg, &err);
}

/* core.plot_trace{ chains = {Mat, ...}, labels = } -> svg */
static int
l_plot_trace(lua_State *L)
{
	const char *fn = "core.plot_trace";
	luaL_checktype(L, 1, LUA_TTABLE);
	size_t nc;
	const sbi_mat **c = opt_mats(L, 1, fn, "chains", &nc);
	const char **labels = opt_strings(L, 1, fn, "labels", c[0]->ncol);
	char *svg;
	sbi_err err = { 0 };
	int rc = sbi_plot_trace(c, nc, labels, &svg, &err);
	return push_svg(L, fn, rc, svg, &err);
}

/* core.plot_predictive{ predictive = Mat (draws x n), observation =, x =,
 * title =, xlabel =, ylabel = } -> svg */
static int
l_plot_predictive(lua_State *L)
{
	const char *fn = "core.plot_predictive";
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_pushstring(L, "predictive");
	lua_rawget(L, 1);
	if (!luaL_testudata(L, -1, SBI_MT_MAT))
		return luaL_error(L, "%s: 'predictive' must be a Mat (draws x points), got %s", fn, luaL_typename(L, -1));
	const sbi_mat *p = sbi__check_mat(L, -1)->m;
	if (p == NULL)
		return luaL_error(L, "%s: 'predictive' is a released Mat", fn);
	size_t no, nx;
	const double *obs = opt_numbers(L, 1, fn, "observation", &no);
	sbi_plot_predictive_opts o = { 0 };
	o.x = opt_numbers(L, 1, fn, "x", &nx);
	if ((obs && no != p->ncol) || (o.x && nx != p->ncol))
		return luaL_error(L, "%s: 'observation' and 'x' need %d values (the columns of 'predictive')", fn,
		    (int)p->ncol);
	o.title = opt_string(L, 1, fn, "title");
	o.xlabel = opt_string(L, 1, fn, "xlabel");
	o.ylabel = opt_string(L, 1, fn, "ylabel");
	char *svg;
	sbi_err err = { 0 };
	int rc = sbi_plot_predictive(obs, p, &o, &svg, &err);
	return push_svg(L, fn, rc, svg, &err);
}

static const luaL_Reg plot_funcs[] = {
	{ "plot_corner", l_plot_corner }, { "plot_curve", l_plot_curve }, { "plot_ranks", l_plot_ranks },
	{ "plot_trace", l_plot_trace }, { "plot_predictive", l_plot_predictive }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_plot(lua_State *L)
{
	luaL_setfuncs(L, plot_funcs, 0);
}
