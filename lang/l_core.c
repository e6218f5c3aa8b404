/* Part of the sbi.core module (assembled in l_open.c): what every binding
 * file shares (the run context, argument checks, scratch memory, number
 * lists), core.simulate's registration and core.clock. */
#include <string.h>
#include <time.h>

#include "lsbi.h"

sbi_runctx *
sbi__runctx(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, SBI_RUNCTX);
	sbi_runctx *ctx = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return ctx;
}

void
sbi__refuse_closing(lua_State *L)
{
	sbi_runctx *ctx = sbi__runctx(L);
	if (ctx && ctx->closing)
		luaL_error(L, "sbi.core: cannot make matrices, streams, priors or models in a finalizer run when "
		    "sbirun exits");
}

/* ---- argument checks shared by the bindings ---- */

void *
sbi__check_field_udata(lua_State *L, int idx, const char *tname, const char *what)
{
	void *p = luaL_testudata(L, idx, tname);
	if (p == NULL) {
		const char *got = luaL_getmetafield(L, idx, "__name") == LUA_TSTRING ? lua_tostring(L, -1)
										    : luaL_typename(L, idx);
		luaL_error(L, "%s must be a %s, got %s", what, tname, got);
	}
	return p;
}

int
sbi__argerror(lua_State *L, int idx, const char *msg)
{
	if (idx > 0)
		return luaL_argerror(L, idx, msg);
	return luaL_error(L, "%s", msg);
}

/* ---- scratch memory and number lists ---- */

double *
sbi__scratch(lua_State *L, size_t n)
{
	return lua_newuserdatauv(L, (n ? n : 1) * sizeof(double), 0);
}

void
sbi__push_numbers(lua_State *L, const double *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t j = 0; j < n; j++) {
		lua_pushnumber(L, v[j]);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
}

double *
sbi__to_vector(lua_State *L, int idx, size_t n, const char *what)
{
	double *v = sbi__scratch(L, n);
	if (luaL_testudata(L, idx, SBI_MT_MAT)) {
		sbi_mat *m = sbi__check_mat(L, idx)->m;
		if (m->nrow * m->ncol != n)
			luaL_error(L, "%s has %d values, expected %d", what, (int)(m->nrow * m->ncol), (int)n);
		memcpy(v, m->data, n * sizeof *v);
		return v;
	}
	luaL_checktype(L, idx, LUA_TTABLE);
	if ((size_t)luaL_len(L, idx) != n)
		luaL_error(L, "%s has %d values, expected %d", what, (int)luaL_len(L, idx), (int)n);
	for (size_t j = 0; j < n; j++) {
		if (lua_geti(L, idx, (lua_Integer)j + 1) != LUA_TNUMBER)
			luaL_error(L, "%s: value %d must be a number, got %s", what, (int)j + 1, luaL_typename(L, -1));
		v[j] = lua_tonumber(L, -1);
		lua_pop(L, 1);
	}
	return v;
}

/* core.clock() -> monotonic seconds */
static int
l_clock(lua_State *L)
{
	sbi__refuse_in_step(L, "sbi.core.clock", 0);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
	return 1;
}

static const luaL_Reg core_funcs[] = {
	{ "simulate", sbi__l_simulate }, { "clock", l_clock }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_core(lua_State *L)
{
	luaL_setfuncs(L, core_funcs, 0);
}
