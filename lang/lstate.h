/* Lua state setup and recipe loading (l_state.c). */
#ifndef SBI_LSTATE_H
#define SBI_LSTATE_H

#include <errno.h>
#include <stdio.h>

#include "lsbi.h"

/* Registry key of the list of Lua module files the recipe loaded with
 * require (paths as found on package.path), in load order. */
#define SBI_REG_MODULE_FILES "sbi.module_files"

/* A new state with the standard libraries, the stdlib searcher and ctx in
 * the registry; NULL when out of memory. */
lua_State *sbi__state_new(sbi_runctx *ctx);

/* Makes require look for Lua modules in dir. */
void sbi__set_module_dir(lua_State *L, const char *dir);

/* lua_pcall with a message handler (a traceback when SBI_TRACEBACK is set). */
int sbi__pcall(lua_State *L, int nargs, int nres);

/* Loads and runs the recipe at path in a fresh sandboxed _ENV. Returns a
 * LUA_* status; on failure the message is on the stack. */
int sbi__load_recipe(lua_State *L, const char *path);

#endif
