/* Userdata types of sbi.core: every metatable is made here and locked
 * (__metatable = false), a requirement of the sandbox (l_state.c):
 * getmetatable from a recipe must never reach a __gc or __close. Boxes
 * are userdata that own C memory, so a binding holds none across a call
 * that can raise. */
#include <string.h>

#include "lsbi.h"

int
sbi__newmetatable(lua_State *L, const char *tname)
{
	if (!luaL_newmetatable(L, tname))     /* [mt] */
		return 0;
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");   /* getmetatable(u) is false */
	return 1;
}

void
sbi__new_type(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods)
{
	sbi__new_type_up(L, tname, meta, methods, 0);
}

void
sbi__new_type_up(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods, int nup)
{
	sbi__newmetatable(L, tname);    /* [.., up.., mt] */
	lua_insert(L, -(nup + 1));      /* [.., mt, up..] */
	luaL_setfuncs(L, meta, nup);    /* [.., mt] */
	if (methods) {
		lua_newtable(L);         /* [.., mt, methods] */
		luaL_setfuncs(L, methods, 0);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);                  /* [..] */
}

/* __tostring of boxes: their type name. [box] -> [box, name] */
static int
box_tostring(lua_State *L)
{
	if (luaL_getmetafield(L, 1, "__name") != LUA_TSTRING)
		lua_pushliteral(L, "sbi.Box");
	return 1;
}

void *
sbi__push_udata(lua_State *L, size_t size, const char *tname, const luaL_Reg *meta)
{
	void *u = lua_newuserdatauv(L, size ? size : 1, 0); /* [.., u] */
	memset(u, 0, size ? size : 1);
	if (luaL_getmetatable(L, tname) == LUA_TNIL) {      /* [.., u, mt?] */
		lua_pop(L, 1);
		sbi__new_type(L, tname, meta, NULL);
		luaL_getmetatable(L, tname);                 /* [.., u, mt] */
	}
	lua_setmetatable(L, -2);                            /* [.., u] */
	return u;
}

void *
sbi__push_box(lua_State *L, size_t size, const char *tname, lua_CFunction free_fn)
{
	sbi__refuse_closing(L); /* a box made now would never be finalized */
	const luaL_Reg meta[] = {
		{ "__gc", free_fn }, { "__close", free_fn }, { "__tostring", box_tostring }, { NULL, NULL },
	};
	return sbi__push_udata(L, size, tname, meta);
}
