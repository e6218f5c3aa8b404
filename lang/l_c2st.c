/* Part of sbi.core: core.c2st, the classifier two-sample test
 * (engine/nn/c2st.c) over two sample matrices. */
#include "lnn.h"
#include "sbi/c2st.h"

#include <string.h>

/* Reads opts[k] as an integer in min..max when present.
 * [..] -> [..] */
static lua_Integer
opt_int(lua_State *L, int opts, const char *k, lua_Integer def, lua_Integer min, lua_Integer max)
{
	if (opts == 0)
		return def;
	int t = lua_getfield(L, opts, k); /* [.., v] */
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return def;
	}
	int ok;
	lua_Integer v = lua_tointegerx(L, -1, &ok);
	if (!ok)
		luaL_error(L, "core.c2st: option '%s' must be an integer, got %s", k,
		    t == LUA_TNUMBER ? "a number with a fraction" : luaL_typename(L, -1));
	if (v < min || v > max)
		luaL_error(L, "core.c2st: option '%s' must be in %I..%I, got %I", k, min, max, v);
	lua_pop(L, 1);
	return v;
}

/* Raises on a key of opts that core.c2st does not know (a typo would
 * otherwise silently run the defaults). [..] -> [..] */
static void
check_keys(lua_State *L, int opts)
{
	static const char *const known[] = { "folds", "seed", "z_score", "max_iter", "hidden", NULL };
	lua_pushnil(L); /* [.., nil] */
	while (lua_next(L, opts)) { /* [.., k, v] */
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
		int found = 0;
		for (int i = 0; k && known[i]; i++)
			found |= strcmp(k, known[i]) == 0;
		if (!found)
			luaL_error(L, "core.c2st: unknown option %s (known: folds, seed, z_score, max_iter, hidden)",
			    k ? lua_pushfstring(L, "'%s'", k) : "(not a string)");
		lua_pop(L, 1); /* [.., k] */
	}
}

/* Reads the options table at index 3 (absent or nil: the defaults). */
static void
read_opts(lua_State *L, sbi_c2st_opts *o)
{
	sbi_c2st_defaults(o);
	int opts = lua_isnoneornil(L, 3) ? 0 : 3;
	if (opts) {
		luaL_checktype(L, 3, LUA_TTABLE);
		check_keys(L, opts);
	}
	o->folds = (size_t)opt_int(L, opts, "folds", 5, 2, 100);
	o->seed = (uint32_t)opt_int(L, opts, "seed", 1, 0, UINT32_MAX);
	o->max_iter = (size_t)opt_int(L, opts, "max_iter", 10000, 1, 1000000);
	o->hidden = (size_t)opt_int(L, opts, "hidden", 0, 0, 10000);
	if (opts && lua_getfield(L, opts, "z_score") != LUA_TNIL) { /* [.., v] */
		if (!lua_isboolean(L, -1))
			luaL_error(L, "core.c2st: option 'z_score' must be a boolean, got %s", luaL_typename(L, -1));
		o->z_score = lua_toboolean(L, -1);
	}
	if (opts)
		lua_pop(L, 1); /* [..] */
	sbi_runctx *ctx = sbi__runctx(L);
	o->threads = ctx && ctx->jobs > 1 ? (size_t)ctx->jobs : 1;
}

/* core.c2st(a Mat, b Mat [, opts]) -> accuracy, { {accuracy=, epochs=, ntest=}, ... }
 * [a, b, opts] -> [a, b, opts, accuracy, folds] */
static int
l_c2st(lua_State *L)
{
	sbi_mat *a = sbi__check_mat(L, 1)->m, *b = sbi__check_mat(L, 2)->m;
	sbi_c2st_opts o;
	read_opts(L, &o);
	/* Scratch from Lua: freed by the collector even if a later call raises. */
	sbi_c2st_fold *folds = lua_newuserdatauv(L, o.folds * sizeof *folds, 0); /* [.., box] */
	double acc = 0.0;
	sbi_err err = { 0 };
	sbi__blas_threads(); /* one BLAS thread: the folds are the parallel part */
	if (sbi_c2st(a, b, &o, &acc, folds, &err) != SBI_OK)
		return luaL_error(L, "core.c2st: %s", err.msg + (strncmp(err.msg, "c2st: ", 6) ? 0 : 6));
	lua_pushnumber(L, acc);                 /* [.., box, acc] */
	lua_createtable(L, (int)o.folds, 0);    /* [.., box, acc, list] */
	for (size_t f = 0; f < o.folds; f++) {
		lua_createtable(L, 0, 3);       /* [.., list, e] */
		lua_pushnumber(L, folds[f].accuracy);
		lua_setfield(L, -2, "accuracy");
		lua_pushinteger(L, (lua_Integer)folds[f].epochs);
		lua_setfield(L, -2, "epochs");
		lua_pushinteger(L, (lua_Integer)folds[f].ntest);
		lua_setfield(L, -2, "ntest");
		lua_rawseti(L, -2, (lua_Integer)f + 1); /* [.., list] */
	}
	return 2;
}

static const luaL_Reg c2st_funcs[] = {
	{ "c2st", l_c2st },
	{ NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_c2st(lua_State *L)
{
	luaL_setfuncs(L, c2st_funcs, 0);
}
