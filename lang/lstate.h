/* Lua state setup and recipe loading (l_state.c). */
#ifndef SBI_LSTATE_H
#define SBI_LSTATE_H

#include <errno.h>
#include <stdio.h>

#include "lsbi.h"

/* Registry keys of the package table (gone from _G in a sandbox) and of
 * the recipe's _ENV, which modules beside the recipe share. */
#define SBI_REG_PACKAGE "sbi.package"
#define SBI_REG_RECIPE_ENV "sbi.recipe_env"

/* A new state with the standard libraries, the stdlib searcher and ctx in
 * the registry; NULL when out of memory. With sandbox, the state holds
 * only what the recipe sandbox allows (docs/recipes.md#the-sandbox): every
 * state that loads a recipe is one; `sbirun lua` (tests, benchmarks) is not. */
lua_State *sbi__state_new(sbi_runctx *ctx, int sandbox);

/* Makes require look for Lua modules in dir. */
void sbi__set_module_dir(lua_State *L, const char *dir);

/* lua_pcall with a message handler (a traceback when SBI_TRACEBACK is set). */
int sbi__pcall(lua_State *L, int nargs, int nres);

/* Loads and runs the recipe at path in a fresh sandboxed _ENV. Returns a
 * LUA_* status; on failure the message is on the stack. */
int sbi__load_recipe(lua_State *L, const char *path);

#endif
