/* Part of sbi.core: statistics of sample matrices (engine/numerics/stats.c)
 * and the rejection-ABC primitives over them (engine/infer/abc.c):
 * core.summary, core.scales, core.log_candidates, core.abc_distances,
 * core.abc_select, core.kde_bandwidth_cv, core.abc_adjust_linear,
 * core.abc_adjust_linear_weighted, core.abc_adjust_quadratic. */
#include "lsbi.h"
#include "sbi/abc.h"
#include "sbi/alloc.h"
#include "sbi/progress.h"
#include "sbi/stats.h"

#include <string.h>

/* core.summary(Mat) -> { {mean=, std=, q05=, q50=, q95=}, ... } */
static int
l_summary(lua_State *L)
{
	sbi_mat *m = sbi__check_mat(L, 1)->m;
	lua_createtable(L, (int)m->ncol, 0);
	for (size_t j = 0; j < m->ncol; j++) {
		sbi_col_summary s;
		sbi_err err = { 0 };
		if (sbi_stats_column(m, j, &s, &err) != SBI_OK)
			return luaL_error(L, "%s", err.msg);
		lua_createtable(L, 0, 5);
		lua_pushnumber(L, s.mean);
		lua_setfield(L, -2, "mean");
		lua_pushnumber(L, s.std);
		lua_setfield(L, -2, "std");
		lua_pushnumber(L, s.q05);
		lua_setfield(L, -2, "q05");
		lua_pushnumber(L, s.q50);
		lua_setfield(L, -2, "q50");
		lua_pushnumber(L, s.q95);
		lua_setfield(L, -2, "q95");
		lua_seti(L, -2, (lua_Integer)j + 1);
	}
	return 1;
}

/* core.scales(x Mat, "std"|"mad") -> table */
static int
l_scales(lua_State *L)
{
	sbi_mat *x = sbi__check_mat(L, 1)->m;
	const char *method = luaL_optstring(L, 2, "std");
	double *s = sbi__scratch(L, x->ncol);
	sbi_err err = { 0 };
	if (sbi_stats_scales(x, method, s, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	sbi__push_numbers(L, s, x->ncol);
	return 1;
}

/* core.log_candidates(x Mat) -> positive, skewed: two lists of booleans,
 * one per column (sbi_stats_log_candidates). */
static int
l_log_candidates(lua_State *L)
{
	sbi_mat *x = sbi__check_mat(L, 1)->m;
	size_t n = x->ncol ? x->ncol : 1;
	int *flags = lua_newuserdatauv(L, 2 * n * sizeof *flags, 0); /* freed by Lua */
	sbi_err err = { 0 };
	if (sbi_stats_log_candidates(x, flags, flags + n, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	for (size_t k = 0; k < 2; k++) {
		lua_createtable(L, (int)x->ncol, 0);
		for (size_t j = 0; j < x->ncol; j++) {
			lua_pushboolean(L, flags[k * n + j]);
			lua_seti(L, -2, (lua_Integer)j + 1);
		}
	}
	return 2;
}

/* core.abc_distances(x Mat, obs, scale) -> Mat (n x 1) */
static int
l_abc_distances(lua_State *L)
{
	sbi_mat *x = sbi__check_mat(L, 1)->m;
	double *obs = sbi__to_vector(L, 2, x->ncol, "the observation");
	double *scale = sbi__to_vector(L, 3, x->ncol, "the scale");
	sbi_mat *d = sbi__push_new_mat(L, x->nrow, 1); /* [.., d] */
	sbi_abc_distances(x, obs, scale, d->data);
	return 1;
}

/* core.abc_smc_kernel_sums(theta Mat, particles Mat, weights Mat, chol Mat)
 * -> Mat (n x 1) (sbi_abc_smc_kernel_sums) */
static int
l_abc_smc_kernel_sums(lua_State *L)
{
	sbi_mat *t = sbi__check_mat(L, 1)->m, *p = sbi__check_mat(L, 2)->m;
	sbi_mat *w = sbi__check_mat(L, 3)->m, *c = sbi__check_mat(L, 4)->m;
	size_t d = t->ncol;
	if (d > SBI_ABC_SMC_MAXDIM || p->ncol != d || c->nrow != d || c->ncol != d)
		return luaL_error(L, "theta, particles and chol must have the same number of columns (at most 64), "
		    "chol d x d");
	if (w->nrow * w->ncol != p->nrow)
		return luaL_error(L, "there are %d particles but %d weights", (int)p->nrow, (int)(w->nrow * w->ncol));
	for (size_t a = 0; a < d; a++)
		if (!(sbi_mat_row(c, a)[a] > 0))
			return luaL_error(L, "chol's diagonal must be positive");
	sbi_mat *out = sbi__push_new_mat(L, t->nrow, 1); /* [.., sums] */
	sbi_abc_smc_kernel_sums(t, p, w->data, c, out->data);
	return 1;
}

/* __gc of a block box: frees the block, once. */
static int
block_gc(lua_State *L)
{
	void **box = lua_touserdata(L, 1);
	sbi_free(*box);
	*box = NULL;
	return 0;
}

/* Pushes a box for one sbi_malloc'ed block (NULL for now), freed by its
 * __gc: C memory that a call holds while it may raise, so a Lua error
 * cannot leak it.  [..] -> [.., box] */
static void **
push_block_box(lua_State *L)
{
	sbi__refuse_closing(L); /* a box made at lua_close would never be finalized */
	void **box = lua_newuserdatauv(L, sizeof *box, 0); /* [.., box] */
	*box = NULL;
	if (sbi__newmetatable(L, "sbi.BlockBox")) {         /* [.., box, mt] */
		lua_pushcfunction(L, block_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2); /* [.., box] */
	return box;
}

/* core.abc_select(dist Mat, quantile, epsilon) -> indices (1-based), eps
 * [dist, quantile?, epsilon?] -> [.., box, indices, eps]: the accepted
 * indices live in the box until the table is filled (lua_createtable may
 * raise a memory error). */
static int
l_abc_select(lua_State *L)
{
	sbi_mat *d = sbi__check_mat(L, 1)->m;
	double q = luaL_optnumber(L, 2, 0), e = luaL_optnumber(L, 3, 0);
	void **box = push_block_box(L); /* [.., box] */
	size_t *idx = NULL, n;
	double eps;
	sbi_err err = { 0 };
	if (sbi_abc_select(d->data, d->nrow * d->ncol, q, e, &idx, &n, &eps, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	*box = idx; /* nothing raised since the allocation */
	lua_createtable(L, (int)n, 0); /* [.., box, indices] */
	for (size_t i = 0; i < n; i++) {
		lua_pushinteger(L, (lua_Integer)idx[i] + 1);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	*box = NULL;
	sbi_free(idx);
	lua_pushnumber(L, eps);
	return 2;
}

/* core.kde_bandwidth_cv(samples Mat, std [, label]) -> factor, logliks:
 * the KDE bandwidth factor chosen by leave-one-out cross-validation over
 * the grid of sbi_abc_kde_cv, and the LOO log likelihood at each grid
 * value. With a label, a run that is not --quiet shows progress, and a
 * final line when it took a second or more (short runs print nothing).
 * [samples, std, label?] -> [samples, std, label, v, factor, logliks] */
static int
l_kde_bandwidth_cv(lua_State *L)
{
	size_t ncol = sbi__check_mat(L, 1)->m->ncol;
	const char *label = luaL_optstring(L, 3, NULL);
	lua_settop(L, 3);
	double *std = sbi__to_vector(L, 2, ncol, "the std"); /* [.., v] */
	sbi_mat *x = sbi__check_mat(L, 1)->m; /* again: the std's metamethods ran */
	if (x->ncol != ncol)
		return luaL_error(L, "the samples changed while reading the std");
	sbi_runctx *ctx = sbi__runctx(L);
	sbi_progress p;
	char what[96];
	snprintf(what, sizeof what, "%s: bandwidth", label ? label : "");
	sbi_progress_start(&p, what, x->nrow, label == NULL || (ctx && ctx->quiet));
	double h, ll[SBI_ABC_KDE_GRID];
	sbi_err err = { 0 };
	if (sbi_abc_kde_cv(x, std, &h, ll, &p, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	if (p.drawn || sbi_now() - p.t0 >= 1.0) /* a bar on screen is replaced by the final line */
		sbi_progress_finish(&p, "samples cross-validated");
	lua_pushnumber(L, h);                    /* [.., v, factor] */
	sbi__push_numbers(L, ll, SBI_ABC_KDE_GRID); /* [.., v, factor, logliks] */
	return 2;
}

/* The arguments both regression adjustments share: theta, x, obs, scale
 * and a per-row vector (what) at 1-5; adj is a copy of theta to adjust.
 * [theta, x, obs, scale, v, ...] -> [.., o, s, v, adjusted, beta] */
typedef struct adjust_args {
	sbi_mat *x, *adj, *beta;
	double *obs, *scale, *v;
} adjust_args;

static adjust_args
push_adjust_args(lua_State *L, const char *what)
{
	size_t n = sbi__check_mat(L, 1)->m->nrow, k = sbi__check_mat(L, 2)->m->ncol;
	adjust_args a;
	a.obs = sbi__to_vector(L, 3, k, "the observation"); /* [.., o] */
	a.scale = sbi__to_vector(L, 4, k, "the scale");     /* [.., o, s] */
	a.v = sbi__to_vector(L, 5, n, what);                /* [.., o, s, v] */
	sbi_mat *theta = sbi__check_mat(L, 1)->m; /* again: metamethods ran */
	a.x = sbi__check_mat(L, 2)->m;
	if (theta->nrow != n || a.x->ncol != k)
		luaL_error(L, "the matrices changed while reading the vectors");
	if (a.x->nrow != n)
		luaL_error(L, "theta has %d rows but x has %d", (int)n, (int)a.x->nrow);
	a.adj = sbi__push_new_mat(L, n, theta->ncol);  /* [.., adjusted] */
	a.beta = sbi__push_new_mat(L, k, theta->ncol); /* [.., adjusted, beta] */
	if (n > 0 && theta->ncol > 0)
		memcpy(a.adj->data, theta->data, n * theta->ncol * sizeof *a.adj->data);
	return a;
}

/* core.abc_adjust_linear(theta, x, obs, scale, dist, h) -> adjusted, beta:
 * the regression adjustment of Beaumont et al. (2002) (sbi_abc_adjust_linear)
 * on copies; theta and x are not changed.
 * [theta, x, obs, scale, dist, h] -> [.., o, s, d, adjusted, beta] */
static int
l_abc_adjust_linear(lua_State *L)
{
	double h = luaL_checknumber(L, 6);
	lua_settop(L, 6);
	adjust_args a = push_adjust_args(L, "the distances");
	sbi_err err = { 0 };
	if (sbi_abc_adjust_linear(a.adj, a.x, a.obs, a.scale, a.v, h, a.beta, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 2;
}

/* core.abc_adjust_linear_weighted(theta, x, obs, scale, w) -> adjusted, beta:
 * the same adjustment with given weights (sbi_abc_adjust_linear_weighted).
 * [theta, x, obs, scale, w] -> [.., o, s, w, adjusted, beta] */
static int
l_abc_adjust_linear_weighted(lua_State *L)
{
	lua_settop(L, 5);
	adjust_args a = push_adjust_args(L, "the weights");
	sbi_err err = { 0 };
	if (sbi_abc_adjust_linear_weighted(a.adj, a.x, a.obs, a.scale, a.v, a.beta, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 2;
}

/* core.abc_adjust_quadratic(theta, x, obs, scale, dist, h) -> adjusted:
 * the quadratic regression adjustment (sbi_abc_adjust_quadratic) on a copy;
 * theta and x are not changed.
 * [theta, x, obs, scale, dist, h] -> [.., o, s, d, adjusted] */
static int
l_abc_adjust_quadratic(lua_State *L)
{
	double h = luaL_checknumber(L, 6);
	lua_settop(L, 6);
	adjust_args a = push_adjust_args(L, "the distances"); /* its beta is not used */
	sbi_err err = { 0 };
	if (sbi_abc_adjust_quadratic(a.adj, a.x, a.obs, a.scale, a.v, h, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	lua_pop(L, 1); /* [.., o, s, d, adjusted] */
	return 1;
}

static const luaL_Reg stats_funcs[] = {
	{ "summary", l_summary }, { "scales", l_scales }, { "log_candidates", l_log_candidates },
	{ "abc_distances", l_abc_distances }, { "abc_smc_kernel_sums", l_abc_smc_kernel_sums },
	{ "abc_select", l_abc_select },
	{ "kde_bandwidth_cv", l_kde_bandwidth_cv }, { "abc_adjust_linear", l_abc_adjust_linear },
	{ "abc_adjust_linear_weighted", l_abc_adjust_linear_weighted },
	{ "abc_adjust_quadratic", l_abc_adjust_quadratic },
	{ NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_stats(lua_State *L)
{
	luaL_setfuncs(L, stats_funcs, 0);
}
