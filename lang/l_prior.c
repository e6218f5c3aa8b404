/* sbi.Prior: the engine's priors, built from Lua option tables. The stdlib
 * (stdlib/sbi/prior.lua) validates names and shapes first; the engine
 * validates values and its messages name the field. */
#include <string.h>

#include "lsbi.h"
#include "sbi/alloc.h"
#include "sbi/rng.h"

/* The largest dimension (or number of joint blocks) core.prior accepts. */
#define SBI_PRIOR_MAX_DIM 100000

typedef struct l_prior {
	sbi_prior *p; /* owned; NULL once consumed by a joint prior */
	int released; /* closed: unusable, but p is freed only by __gc (a C
	               * function that called back into Lua may still use it) */
} l_prior;

sbi_prior *
sbi__check_prior(lua_State *L, int idx)
{
	l_prior *lp = luaL_checkudata(L, idx, SBI_MT_PRIOR);
	if (lp->p == NULL)
		sbi__argerror(L, idx, "prior was consumed by a joint prior");
	if (lp->released)
		sbi__argerror(L, idx, "released prior");
	return lp->p;
}

/* Reads params[field] (a table of numbers, or of rows when rows > 0) into a
 * new userdata-backed buffer on the stack, so a later error cannot leak it. */
static double *
numbers(lua_State *L, int params, const char *kind, const char *field, size_t *n, int rows)
{
	if (lua_getfield(L, params, field) != LUA_TTABLE) /* [.., v] */
		luaL_error(L, "prior.%s: field '%s' must be a table of numbers", kind, field);
	lua_Integer ilen = luaL_len(L, -1);
	/* A dimension beyond SBI_PRIOR_MAX_DIM is absurd, and a lying __len
	 * must not make len * per overflow the buffer below. */
	if (ilen < 0 || ilen > SBI_PRIOR_MAX_DIM)
		luaL_error(L, "prior.%s: field '%s' has %I entries, more than %d", kind, field, ilen,
		    SBI_PRIOR_MAX_DIM);
	size_t len = (size_t)ilen, per = 1;
	if (rows) {
		per = len;
		if (len > 0) {
			lua_geti(L, -1, 1);
			if (!lua_istable(L, -1) || (size_t)luaL_len(L, -1) != len)
				luaL_error(L, "prior.%s: field '%s' must be a square table of rows", kind, field);
			lua_pop(L, 1);
		}
	}
	double *buf = lua_newuserdatauv(L, (len * per > 0 ? len * per : 1) * sizeof *buf, 0); /* [.., v, buf] */
	for (size_t i = 0; i < len; i++) {
		lua_geti(L, -2, (lua_Integer)i + 1); /* [.., v, buf, e] */
		for (size_t j = 0; j < per; j++) {
			if (rows)
				lua_geti(L, -1, (lua_Integer)j + 1);
			else
				lua_pushvalue(L, -1);
			if (!lua_isnumber(L, -1))
				luaL_error(L, "prior.%s: %s[%d] must be a number", kind, field, (int)(i * per + j) + 1);
			buf[i * per + j] = lua_tonumber(L, -1);
			lua_pop(L, 1);
		}
		if (rows && (size_t)luaL_len(L, -1) != per)
			luaL_error(L, "prior.%s: field '%s' must be a square table of rows", kind, field);
		lua_pop(L, 1); /* [.., v, buf] */
	}
	lua_remove(L, -2); /* [.., buf] */
	*n = len;
	return buf;
}

/* Pushes a Prior owning p, or raises err when p is NULL. [..] -> [.., Prior] */
static void
push_prior(lua_State *L, sbi_prior *p, const sbi_err *err)
{
	if (p == NULL)
		luaL_error(L, "%s", err->msg);
	sbi_runctx *ctx = sbi__runctx(L);
	if (ctx && ctx->closing) {
		sbi_prior_free(p);
		sbi__refuse_closing(L);
	}
	l_prior *lp = lua_newuserdatauv(L, sizeof *lp, 0); /* [.., ud] */
	lp->p = NULL;
	lp->released = 0;
	luaL_setmetatable(L, SBI_MT_PRIOR);
	lp->p = p;
}

/* Raises unless the fields a and b have as many entries. [..] -> [..] */
static void
same_length(lua_State *L, const char *kind, const char *a, size_t na, const char *b, size_t nb)
{
	if (na != nb)
		luaL_error(L, "prior.%s: '%s' has %d entries but '%s' has %d", kind, a, (int)na, b, (int)nb);
}

/* Builds the prior of kind from params (at index params) and pushes it. */
static void new_prior(lua_State *L, const char *kind, int params, int depth);

/* A prior of two equally long parameter lists fa and fb of params.
 * [.., params ..] -> [.., params .., Prior] */
static void
new_pair(lua_State *L, const char *kind, int params, const char *fa, const char *fb,
    sbi_prior *(*alloc)(size_t, const double *, const double *, sbi_err *))
{
	size_t na, nb;
	double *a = numbers(L, params, kind, fa, &na, 0);
	double *b = numbers(L, params, kind, fb, &nb, 0);
	same_length(L, kind, fa, na, fb, nb);
	sbi_err err = { 0 };
	sbi_prior *p = alloc(na, a, b, &err);
	lua_pop(L, 2);
	push_prior(L, p, &err);
}

/* A joint prior of params.blocks, each block { kind =, params = } made
 * by new_prior and handed over. [..] -> [.., Prior] */
static void
new_joint(lua_State *L, int params, int depth)
{
	if (depth > 50)
		luaL_error(L, "prior.joint: joint priors nested more than 50 deep");
	if (lua_getfield(L, params, "blocks") != LUA_TTABLE) /* [.., blocks] */
		luaL_error(L, "prior.joint: field 'blocks' must be a table");
	int blocks = lua_gettop(L);
	lua_Integer nb = luaL_len(L, blocks);
	if (nb < 0 || nb > SBI_PRIOR_MAX_DIM)
		luaL_error(L, "prior.joint: field 'blocks' has %I entries, more than %d", nb, SBI_PRIOR_MAX_DIM);
	size_t n = (size_t)nb;
	/* One stack slot per block until they are handed over below. */
	luaL_checkstack(L, (int)n + 8, "prior.joint: too many blocks");
	sbi_prior **ps = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ps, 0); /* [.., blocks, ps] */
	for (size_t i = 0; i < n; i++) {
		if (lua_geti(L, blocks, (lua_Integer)i + 1) != LUA_TTABLE) /* [.., e] */
			luaL_error(L, "prior.joint: block %I must be a table, got %s", (lua_Integer)i + 1,
			    luaL_typename(L, -1));
		int e = lua_gettop(L);
		int tk = lua_getfield(L, e, "kind");
		int tp = lua_getfield(L, e, "params"); /* [.., e, kind, params] */
		if (tk != LUA_TSTRING || tp != LUA_TTABLE)
			luaL_error(L, "prior.joint: block %I needs a string 'kind' and a table 'params', got %s and %s",
			    (lua_Integer)i + 1, lua_typename(L, tk), lua_typename(L, tp));
		const char *k = lua_tostring(L, -2);
		new_prior(L, k, lua_gettop(L), depth + 1); /* [.., e, kind, params, ud] */
		lua_replace(L, e);                 /* [.., ud, kind, params] */
		lua_pop(L, 2);                     /* [.., ud] */
	}
	/* Every block is now a Prior userdata; hand them to the joint prior. */
	for (size_t i = 0; i < n; i++) {
		l_prior *lp = lua_touserdata(L, blocks + 2 + (int)i);
		ps[i] = lp->p;
		lp->p = NULL;
	}
	sbi_err err = { 0 };
	sbi_prior *p = sbi_prior_joint_alloc(n, ps, &err);
	lua_settop(L, blocks - 1);
	push_prior(L, p, &err);
}

static void
new_prior(lua_State *L, const char *kind, int params, int depth)
{
	size_t n, m;
	sbi_err err = { 0 };
	if (strcmp(kind, "uniform") == 0)
		new_pair(L, kind, params, "low", "high", sbi_prior_uniform_alloc);
	else if (strcmp(kind, "normal") == 0)
		new_pair(L, kind, params, "mean", "std", sbi_prior_normal_alloc);
	else if (strcmp(kind, "lognormal") == 0)
		new_pair(L, kind, params, "mu", "sigma", sbi_prior_lognormal_alloc);
	else if (strcmp(kind, "gamma") == 0)
		new_pair(L, kind, params, "shape", "scale", sbi_prior_gamma_alloc);
	else if (strcmp(kind, "beta") == 0)
		new_pair(L, kind, params, "a", "b", sbi_prior_beta_alloc);
	else if (strcmp(kind, "exponential") == 0) {
		double *rate = numbers(L, params, kind, "rate", &n, 0);
		sbi_prior *p = sbi_prior_exponential_alloc(n, rate, &err);
		lua_pop(L, 1);
		push_prior(L, p, &err);
	} else if (strcmp(kind, "mvn") == 0) {
		double *mean = numbers(L, params, kind, "mean", &n, 0);
		double *cov = numbers(L, params, kind, "cov", &m, 1);
		same_length(L, kind, "mean", n, "cov", m);
		sbi_prior *p = sbi_prior_mvn_alloc(n, mean, cov, &err);
		lua_pop(L, 2);
		push_prior(L, p, &err);
	} else if (strcmp(kind, "joint") == 0)
		new_joint(L, params, depth);
	else
		luaL_error(L, "unknown prior kind '%s'", kind);
}

/* core.prior(kind, params) */
static int
l_prior_new(lua_State *L)
{
	const char *kind = luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	new_prior(L, kind, 2, 0);
	return 1;
}

/* Reads theta, the table of dim numbers at idx, into new scratch.
 * [..] -> [.., buf] */
static double *
check_theta(lua_State *L, int idx, const sbi_prior *p)
{
	size_t d = sbi_prior_dim(p);
	double *buf = sbi__scratch(L, d);
	luaL_checktype(L, idx, LUA_TTABLE);
	if ((size_t)luaL_len(L, idx) != d)
		luaL_error(L, "theta has %d values, the prior has dimension %d", (int)luaL_len(L, idx), (int)d);
	for (size_t j = 0; j < d; j++) {
		if (lua_geti(L, idx, (lua_Integer)j + 1) != LUA_TNUMBER)
			luaL_argerror(L, idx, lua_pushfstring(L, "theta[%d] must be a number, got %s", (int)j + 1,
			    luaL_typename(L, -1)));
		buf[j] = lua_tonumber(L, -1);
		lua_pop(L, 1);
	}
	return buf;
}

/* p:sample(rng) -> table */
static int
l_prior_sample(lua_State *L)
{
	sbi_prior *p = sbi__check_prior(L, 1);
	gsl_rng *r = sbi__check_rng(L, 2);
	size_t d = sbi_prior_dim(p);
	double *t = sbi__scratch(L, d);
	sbi_prior_sample(p, r, t);
	sbi__push_numbers(L, t, d);
	return 1;
}

/* p:sample_mat(n, seed) -> Mat: row i from stream (seed, PRIOR, i - 1) */
static int
l_prior_sample_mat(lua_State *L)
{
	sbi_prior *p = sbi__check_prior(L, 1);
	lua_Integer n = luaL_checkinteger(L, 2), seed = luaL_checkinteger(L, 3);
	luaL_argcheck(L, n >= 0, 2, "must be non-negative");
	gsl_rng *r = sbi__push_rng(L, (uint64_t)seed, SBI_STREAM_PRIOR, 0);
	sbi_mat *m = sbi_mat_alloc((size_t)n, sbi_prior_dim(p));
	if (m == NULL)
		return luaL_error(L, "out of memory");
	sbi__push_mat(L, m);
	for (lua_Integer i = 0; i < n; i++) {
		sbi_rng_set_stream(r, (uint64_t)seed, SBI_STREAM_PRIOR, (uint64_t)i);
		sbi_prior_sample(p, r, sbi_mat_row(m, (size_t)i));
	}
	return 1;
}

/* p:log_density(theta) -> number. [p, theta] -> [.., lp] */
static int
l_prior_log_density(lua_State *L)
{
	sbi_prior *p = sbi__check_prior(L, 1);
	double *t = check_theta(L, 2, p);
	lua_pushnumber(L, sbi_prior_log_density(p, t));
	return 1;
}

/* p:in_support(theta) -> boolean. [p, theta] -> [.., b] */
static int
l_prior_in_support(lua_State *L)
{
	sbi_prior *p = sbi__check_prior(L, 1);
	double *t = check_theta(L, 2, p);
	lua_pushboolean(L, sbi_prior_in_support(p, t));
	return 1;
}

/* p:filter(Mat) -> Mat of the rows inside the support, in order */
static int
l_prior_filter(lua_State *L)
{
	sbi_prior *p = sbi__check_prior(L, 1);
	sbi_mat *m = sbi__check_mat(L, 2)->m;
	if (m->ncol != sbi_prior_dim(p))
		return luaL_error(L, "filter: the matrix has %d columns, the prior has dimension %d", (int)m->ncol,
		    (int)sbi_prior_dim(p));
	size_t k = 0;
	for (size_t i = 0; i < m->nrow; i++)
		k += sbi_prior_in_support(p, sbi_mat_row(m, i)) != 0;
	sbi_mat *out = sbi__push_new_mat(L, k, m->ncol);
	k = 0;
	for (size_t i = 0; i < m->nrow; i++)
		if (sbi_prior_in_support(p, sbi_mat_row(m, i)))
			memcpy(sbi_mat_row(out, k++), sbi_mat_row(m, i), m->ncol * sizeof(double));
	return 1;
}

/* p:dim() -> D. [p] -> [p, D] */
static int
l_prior_dim(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)sbi_prior_dim(sbi__check_prior(L, 1)));
	return 1;
}

/* Pushes the D numbers moment gives of the prior at 1 (its mean or its
 * variance). [p] -> [p, buf, t] */
static int
push_moment(lua_State *L, void (*moment)(const sbi_prior *, double *))
{
	sbi_prior *p = sbi__check_prior(L, 1);
	double *t = sbi__scratch(L, sbi_prior_dim(p));
	moment(p, t);
	sbi__push_numbers(L, t, sbi_prior_dim(p));
	return 1;
}

/* p:mean() -> D numbers. [p] -> [p, buf, t] */
static int
l_prior_mean(lua_State *L)
{
	return push_moment(L, sbi_prior_mean);
}

/* p:variance() -> D numbers. [p] -> [p, buf, t] */
static int
l_prior_variance(lua_State *L)
{
	return push_moment(L, sbi_prior_variance);
}

/* p:describe() -> the canonical description. [p] -> [p, buf, s] */
static int
l_prior_describe(lua_State *L)
{
	sbi_prior *p = sbi__check_prior(L, 1);
	size_t n = sbi_prior_describe(p, NULL, 0);
	char *buf = lua_newuserdatauv(L, n + 1, 0);
	sbi_prior_describe(p, buf, n + 1);
	lua_pushlstring(L, buf, n);
	return 1;
}

/* __gc: frees the prior. [p] -> [p] */
static int
l_prior_gc(lua_State *L)
{
	l_prior *lp = luaL_checkudata(L, 1, SBI_MT_PRIOR);
	sbi_prior_free(lp->p);
	lp->p = NULL;
	return 0;
}

/* __close: releases the prior (freed by __gc). [p] -> [p] */
static int
l_prior_close(lua_State *L)
{
	((l_prior *)luaL_checkudata(L, 1, SBI_MT_PRIOR))->released = 1;
	return 0;
}

/* __tostring: "sbi.Prior(dim 2)", or why it cannot be used. [p] -> [p, s] */
static int
l_prior_tostring(lua_State *L)
{
	l_prior *lp = luaL_checkudata(L, 1, SBI_MT_PRIOR);
	if (lp->p == NULL || lp->released)
		lua_pushstring(L, lp->p == NULL ? SBI_MT_PRIOR " (consumed by a joint prior)" : SBI_MT_PRIOR " (released)");
	else
		lua_pushfstring(L, SBI_MT_PRIOR "(dim %I)", (lua_Integer)sbi_prior_dim(lp->p));
	return 1;
}

static const luaL_Reg prior_meta[] = {
	{ "__gc", l_prior_gc }, { "__close", l_prior_close }, { "__tostring", l_prior_tostring }, { NULL, NULL },
};

static const luaL_Reg prior_methods[] = {
	{ "sample", l_prior_sample }, { "sample_mat", l_prior_sample_mat },
	{ "log_density", l_prior_log_density }, { "in_support", l_prior_in_support },
	{ "dim", l_prior_dim }, { "filter", l_prior_filter }, { "mean", l_prior_mean }, { "variance", l_prior_variance },
	{ "describe", l_prior_describe }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_prior(lua_State *L)
{
	sbi__new_type(L, SBI_MT_PRIOR, prior_meta, prior_methods);
	lua_pushcfunction(L, l_prior_new);
	lua_setfield(L, -2, "prior");
}
