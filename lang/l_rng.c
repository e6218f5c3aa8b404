/* sbi.Rng: a random stream for simulators, with GSL's distributions. */
#include <gsl/gsl_randist.h>
#include <math.h>

#include "lsbi.h"
#include "sbi/rng.h"

typedef struct l_rng {
	gsl_rng *r;
	int closable; /* made by core.rng: the recipe's own; else the engine holds r */
	int released; /* closed: unusable, but r is freed only by __gc (a C
	               * function that called back into Lua may still use it) */
} l_rng;

gsl_rng *
sbi__check_rng(lua_State *L, int idx)
{
	l_rng *lr = luaL_checkudata(L, idx, SBI_MT_RNG);
	if (lr->r == NULL || lr->released)
		sbi__argerror(L, idx, "released random stream");
	return lr->r;
}

/* The methods' check: the metatable is their first upvalue, which saves the
 * registry lookup of luaL_checkudata on this hot path (two calls per
 * simulation in a typical simulator). */
static gsl_rng *
self_rng(lua_State *L)
{
	l_rng *lr = lua_touserdata(L, 1);
	if (lr == NULL || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
		luaL_typeerror(L, 1, SBI_MT_RNG);
	lua_pop(L, 1);
	if (lr->r == NULL || lr->released)
		luaL_argerror(L, 1, "released random stream");
	return lr->r;
}

gsl_rng *
sbi__push_rng(lua_State *L, uint64_t seed, uint64_t purpose, uint64_t index)
{
	sbi__refuse_closing(L);
	l_rng *lr = lua_newuserdatauv(L, sizeof *lr, 0); /* [ud] */
	lr->r = NULL;
	lr->closable = lr->released = 0;
	luaL_setmetatable(L, SBI_MT_RNG);
	if ((lr->r = sbi_rng_alloc()) == NULL)
		luaL_error(L, "out of memory");
	sbi_rng_set_stream(lr->r, seed, purpose, index);
	return lr->r;
}

static uint64_t
check_u64(lua_State *L, int idx)
{
	lua_Integer v = luaL_checkinteger(L, idx);
	luaL_argcheck(L, v >= 0, idx, "must be a non-negative integer");
	return (uint64_t)v;
}

/* core.rng(seed [, purpose [, index]]) */
static int
l_rng_new(lua_State *L)
{
	sbi__push_rng(L, check_u64(L, 1), (uint64_t)luaL_optinteger(L, 2, SBI_STREAM_METHOD),
	    (uint64_t)luaL_optinteger(L, 3, 0));
	((l_rng *)lua_touserdata(L, -1))->closable = 1;
	return 1;
}

/* The number argument idx, which must be > 0 (name: for the message). [..] -> [..] */
static double
positive(lua_State *L, int idx, const char *name)
{
	double v = luaL_checknumber(L, idx);
	if (!(v > 0))
		luaL_error(L, "rng: %s must be positive, got %g", name, v);
	return v;
}

/* r:uniform() in [0, 1), r:uniform(a, b) in [a, b) */
static int
l_uniform(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	if (lua_isnoneornil(L, 2)) {
		lua_pushnumber(L, gsl_rng_uniform(r));
		return 1;
	}
	double a = luaL_checknumber(L, 2), b = luaL_checknumber(L, 3);
	lua_pushnumber(L, a + (b - a) * gsl_rng_uniform(r));
	return 1;
}

/* r:normal([mean [, std]]) */
static int
l_normal(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	double mu = luaL_optnumber(L, 2, 0.0), sd = luaL_optnumber(L, 3, 1.0);
	if (sd < 0)
		return luaL_error(L, "rng:normal: std must be non-negative, got %g", sd);
	lua_pushnumber(L, mu + gsl_ran_gaussian_ziggurat(r, sd));
	return 1;
}

/* r:lognormal(mu, sigma) -> number. [r, mu, sigma] -> [.., x] */
static int
l_lognormal(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	lua_pushnumber(L, gsl_ran_lognormal(r, luaL_checknumber(L, 2), positive(L, 3, "sigma")));
	return 1;
}

/* r:exponential(rate) */
static int
l_exponential(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	lua_pushnumber(L, gsl_ran_exponential(r, 1.0 / positive(L, 2, "rate")));
	return 1;
}

/* r:gamma(shape, scale) */
static int
l_gamma(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	lua_pushnumber(L, gsl_ran_gamma(r, positive(L, 2, "shape"), positive(L, 3, "scale")));
	return 1;
}

/* r:beta(a, b) -> number in (0, 1). [r, a, b] -> [.., x] */
static int
l_beta(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	lua_pushnumber(L, gsl_ran_beta(r, positive(L, 2, "a"), positive(L, 3, "b")));
	return 1;
}

/* r:chisq(nu) -> number. [r, nu] -> [.., x] */
static int
l_chisq(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	lua_pushnumber(L, gsl_ran_chisq(r, positive(L, 2, "nu")));
	return 1;
}

/* r:student_t(nu) -> number. [r, nu] -> [.., x] */
static int
l_student_t(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	lua_pushnumber(L, gsl_ran_tdist(r, positive(L, 2, "nu")));
	return 1;
}

/* r:poisson(mean) -> integer. [r, mean] -> [.., k] */
static int
l_poisson(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	double mu = luaL_checknumber(L, 2);
	/* GSL's sampler never returns for an infinite or huge mean, and its
	 * result is an unsigned int. */
	if (!(mu >= 0 && mu <= 1e9))
		return luaL_error(L, "rng:poisson: mean must be in [0, 1e9], got %g", mu);
	lua_pushinteger(L, (lua_Integer)gsl_ran_poisson(r, mu));
	return 1;
}

/* r:binomial(n, p) */
static int
l_binomial(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	lua_Integer n = luaL_checkinteger(L, 2);
	double p = luaL_checknumber(L, 3);
	if (n < 0 || n > 0xffffffffLL || !(p >= 0 && p <= 1))
		return luaL_error(L, "rng:binomial: need n >= 0 and 0 <= p <= 1, got n = %d, p = %g", (int)n, p);
	lua_pushinteger(L, (lua_Integer)gsl_ran_binomial(r, p, (unsigned)n));
	return 1;
}

/* r:bernoulli(p) -> 0 or 1. [r, p] -> [.., k] */
static int
l_bernoulli(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	double p = luaL_checknumber(L, 2);
	if (!(p >= 0 && p <= 1))
		return luaL_error(L, "rng:bernoulli: p must be in [0, 1], got %g", p);
	lua_pushinteger(L, gsl_rng_uniform(r) < p);
	return 1;
}

/* r:integer(n) uniform in 1..n */
static int
l_integer(lua_State *L)
{
	gsl_rng *r = self_rng(L);
	lua_Integer n = luaL_checkinteger(L, 2);
	if (n < 1 || n > 0xffffffffLL)
		return luaL_error(L, "rng:integer: n must be in 1..2^32-1, got %d", (int)n);
	lua_pushinteger(L, 1 + (lua_Integer)gsl_rng_uniform_int(r, (unsigned long)n));
	return 1;
}

/* __gc: frees the stream. [r] -> [r] */
static int
l_rng_gc(lua_State *L)
{
	l_rng *lr = luaL_checkudata(L, 1, SBI_MT_RNG);
	if (lr->r)
		gsl_rng_free(lr->r);
	lr->r = NULL;
	return 0;
}

/* __close: releases a stream of core.rng (freed by __gc). The engine's
 * streams (a simulator's rng) stay: the engine keeps using them after the
 * call. */
static int
l_rng_close(lua_State *L)
{
	l_rng *lr = luaL_checkudata(L, 1, SBI_MT_RNG);
	if (!lr->closable)
		return luaL_error(L, "this random stream belongs to the engine (a simulator's rng) and cannot be closed");
	lr->released = 1;
	return 0;
}

/* __tostring: "sbi.Rng", or "sbi.Rng (released)". [r] -> [r, s] */
static int
l_rng_tostring(lua_State *L)
{
	l_rng *lr = luaL_checkudata(L, 1, SBI_MT_RNG);
	lua_pushstring(L, lr->r == NULL || lr->released ? SBI_MT_RNG " (released)" : SBI_MT_RNG);
	return 1;
}

static const luaL_Reg rng_meta[] = {
	{ "__gc", l_rng_gc }, { "__close", l_rng_close }, { "__tostring", l_rng_tostring }, { NULL, NULL },
};

static const luaL_Reg rng_methods[] = {
	{ "uniform", l_uniform }, { "normal", l_normal }, { "lognormal", l_lognormal },
	{ "exponential", l_exponential }, { "gamma", l_gamma }, { "beta", l_beta },
	{ "chisq", l_chisq }, { "student_t", l_student_t }, { "poisson", l_poisson },
	{ "binomial", l_binomial }, { "bernoulli", l_bernoulli }, { "integer", l_integer },
	{ NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_rng(lua_State *L)
{
	sbi__new_type(L, SBI_MT_RNG, rng_meta, NULL);
	luaL_getmetatable(L, SBI_MT_RNG); /* [core, mt] */
	/* The methods get mt as upvalue (see self_rng). */
	luaL_newlibtable(L, rng_methods); /* [core, mt, methods] */
	lua_pushvalue(L, -2);             /* [core, mt, methods, mt] */
	luaL_setfuncs(L, rng_methods, 1); /* [core, mt, methods] */
	lua_setfield(L, -2, "__index");   /* [core, mt] */
	lua_pop(L, 1);                    /* [core] */
	lua_pushcfunction(L, l_rng_new);
	lua_setfield(L, -2, "rng");
}
