/* The Lua side of provenance (engine/store/provenance.c): the session's record
 * (ctx->prov) filled from the sbi.core file functions, require and the
 * stdlib, and a bundle's path map consulted. Without a record (sbirun
 * lua) nothing is recorded or mapped. */
#include "lsbi.h"

static sbi_prov *
prov_of(lua_State *L)
{
	sbi_runctx *ctx = sbi__runctx(L);
	return ctx ? ctx->prov : NULL;
}

static void
check(lua_State *L, int rc)
{
	if (rc != SBI_OK)
		luaL_error(L, "out of memory");
}

const char *
sbi__prov_map(lua_State *L, const char *path)
{
	return sbi_prov_map(prov_of(L), path);
}

void
sbi__prov_read(lua_State *L, const char *path, const char *found)
{
	sbi_runctx *ctx = sbi__runctx(L);
	if (ctx && ctx->prov)
		check(L, sbi_prov_add_read(ctx->prov, path, found, ctx->node ? &ctx->node->key : NULL));
}

void
sbi__prov_module(lua_State *L, const char *path)
{
	sbi_prov *p = prov_of(L);
	if (p)
		check(L, sbi_prov_add_module(p, path));
}

/* internal.data_file(path, found): sbi.observation read the file found
 * for the path the recipe wrote. [path, found] -> [] */
static int
l_data_file(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1), *found = luaL_checkstring(L, 2);
	sbi_prov *p = prov_of(L);
	if (p)
		check(L, sbi_prov_add_data(p, path, found));
	return 0;
}

void
sbi__open_prov(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_INTERNAL);
	lua_pushcfunction(L, l_data_file);
	lua_setfield(L, -2, "data_file");
	lua_pop(L, 1);
}
