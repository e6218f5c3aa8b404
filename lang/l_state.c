/* Lua states for recipes: the stdlib loader and the recipe sandbox.
 *
 * The stdlib is compiled into the binary; with SBI_STDLIB_DIR set it is read
 * from that directory instead (for stdlib development), with one warning.
 *
 * The sandbox is a security boundary (bundles from strangers run in it), so
 * it is built by removal, state-wide: a sandboxed state has no io, debug,
 * package, load, loadfile, dofile, string.dump or unsafe os function at
 * all, not merely hidden from the recipe, so no path through the stdlib,
 * package.loaded or a shared table can reach one. What the stdlib needs of
 * them (writing to stderr, the caller's line) are narrow C functions of
 * sbi.core. Metatables of strings and of every userdata are locked
 * (__metatable) so getmetatable cannot reach a __gc or the shared string
 * table. A recipe runs in its own _ENV over copies of the safe libraries;
 * require finds the stdlib and Lua modules beside the recipe, never C
 * modules. Nondeterministic functions (math.random, os.time, ...) are
 * refused where they would make a cached result irreproducible. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmpi.h"
#include "lnative.h"
#include "lstate.h"
#include "sbi/alloc.h"
#include "sbi/fsutil.h"

static const char *
stdlib_dir(void)
{
	static int warned;
	const char *d = getenv("SBI_STDLIB_DIR");
	if (d && *d && !warned) {
		fprintf(stderr, "sbirun: warning: loading the stdlib from %s (SBI_STDLIB_DIR)\n", d);
		warned = 1;
	}
	return d && *d ? d : NULL;
}

/* The loader of a stdlib module: runs its chunk with (name, path,
 * internal), internal being the registry's SBI_REG_INTERNAL table, what
 * only the stdlib may use (lang/l_graph.c: declaring steps into the
 * engine's graph). require returns the module and the path, never the
 * table, so it reaches the stdlib's chunks and no recipe. Upvalue: the
 * chunk. [name, path] -> [module] */
static int
stdlib_loader(lua_State *L)
{
	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_INTERNAL); /* [chunk, name, path, internal] */
	lua_call(L, 3, 1);
	return 1;
}

/* package.searchers entry: finds "sbi" and "sbi.*" in the stdlib.
 * [name] -> [loader, path] */
static int
stdlib_searcher(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	for (size_t i = 0; i < sbi_stdlib_nfiles; i++) {
		const sbi_stdlib_file *f = &sbi_stdlib_files[i];
		if (strcmp(f->module, name) != 0)
			continue;
		const char *dir = stdlib_dir();
		int rc;
		if (dir) {
			lua_pushfstring(L, "%s/%s", dir, f->path);
			rc = luaL_loadfilex(L, lua_tostring(L, -1), "t");
		} else {
			lua_pushfstring(L, "@[stdlib]/%s", f->path);
			rc = luaL_loadbufferx(L, f->source, f->len, lua_tostring(L, -1), "t");
		}
		if (rc != LUA_OK)
			return lua_error(L);
		lua_pushcclosure(L, stdlib_loader, 1);
		lua_pushstring(L, f->path); /* [.., loader, path] */
		return 2;
	}
	lua_pushfstring(L, "no stdlib module '%s'", name);
	return 1;
}

/* The limit of a restricted recipe under key in the registry (a string),
 * pushed; NULL and nothing pushed when there is none (a trusted recipe).
 * [..] -> [.., limit] | [..] */
static const char *
push_limit(lua_State *L, const char *key)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, key) == LUA_TSTRING)
		return lua_tostring(L, -1);
	lua_pop(L, 1);
	return NULL;
}

/* Drops the limit, leaving the reason pushed above it when refused.
 * [.., limit] -> [..] | [.., limit, msg] -> [.., msg] */
static int
end_check(lua_State *L, int ok)
{
	lua_remove(L, ok ? -1 : -2);
	return ok;
}

int
sbi__check_read(lua_State *L, const char *path)
{
	const char *root = push_limit(L, SBI_REG_ALLOWED_ROOT); /* [root] | [] */
	if (root == NULL)
		return 1;
	char *real = realpath(path, NULL);
	int ok = real == NULL || sbi_fs_within(real, root);
	free(real);
	if (!ok)
		lua_pushfstring(L, "%s is outside the bundle folder %s: a recipe from a bundle runs restricted and "
		    "reads only files inside its folder (run it with --trust to lift this)", path, root); /* [root, msg] */
	return end_check(L, ok);
}

int
sbi__check_write(lua_State *L, const char *dir)
{
	const char *out = push_limit(L, SBI_REG_ALLOWED_OUT); /* [out] | [] */
	if (out == NULL)
		return 1;
	int ok = strcmp(out, dir) == 0;
	if (!ok)
		lua_pushfstring(L, "%s is not the output folder %s: a recipe from a bundle runs restricted and writes "
		    "only to its output folder (run it with --trust to lift this)", dir, out); /* [out, msg] */
	return end_check(L, ok);
}

/* Pushes the package table, which a sandboxed state keeps only here. */
static void
push_package(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_PACKAGE);
}

/* package.searchers entry for Lua files on package.path (beside the
 * recipe). A module found there runs in the recipe's own _ENV: it gets the
 * same restricted globals, and its functions hash by the recipe's globals
 * rather than by the name "_G". Without a recipe (sbirun lua) it uses _G. */
static int
module_searcher(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	push_package(L);
	lua_getfield(L, -1, "searchpath");
	lua_pushstring(L, name);
	lua_getfield(L, -3, "path");
	lua_call(L, 2, 2); /* [name, package, path or nil, msg] */
	if (lua_isnil(L, -2))
		return 1; /* the message */
	const char *path = lua_tostring(L, -2);
	if (!sbi__check_read(L, path))
		return luaL_error(L, "cannot load module '%s': %s", name, lua_tostring(L, -1));
	if (luaL_loadfilex(L, path, "t") != LUA_OK)
		return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path,
		    lua_tostring(L, -1));
	sbi__prov_module(L, path); /* for bundles */
	if (lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_RECIPE_ENV) == LUA_TTABLE) {
		if (lua_setupvalue(L, -2, 1) == NULL)
			lua_pop(L, 1);
	} else
		lua_pop(L, 1);
	lua_pushvalue(L, -3); /* [.., loader, path] */
	return 2;
}

/* Modules a sandboxed state does not have. */
static const char *const denied_modules[] = { "io", "os", "debug", "package", "_G", NULL };

/* package.searchers entry, first: names a denied module, so that require
 * says why it is not found. [name] -> [message] */
static int
denied_searcher(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	for (int i = 0; denied_modules[i]; i++)
		if (strcmp(name, denied_modules[i]) == 0) {
			lua_pushfstring(L, "\n\tmodule '%s' is not available in a recipe (the sandbox: "
			    "docs/recipes.md#the-sandbox)", name);
			return 1;
		}
	lua_pushliteral(L, "");
	return 1;
}

static void
install_searcher(lua_State *L)
{
	lua_getglobal(L, "package");          /* [package] */
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, SBI_REG_PACKAGE);
	lua_getfield(L, -1, "searchers");     /* [package, searchers] */
	/* the sandbox's refusals, preload, then the stdlib (so a recipe's
	 * file cannot shadow it), then Lua files on package.path; no C module
	 * searchers. */
	lua_geti(L, -1, 1);                   /* [package, searchers, preload] */
	lua_seti(L, -2, 2);
	lua_pushcfunction(L, denied_searcher);
	lua_seti(L, -2, 1);
	lua_pushcfunction(L, stdlib_searcher);
	lua_seti(L, -2, 3);
	lua_pushcfunction(L, module_searcher);
	lua_seti(L, -2, 4);
	lua_pop(L, 1);                        /* [package] */
	lua_pushstring(L, "");
	lua_setfield(L, -2, "cpath");
	lua_getfield(L, -1, "preload");       /* [package, preload] */
	lua_pushcfunction(L, luaopen_sbi_core);
	lua_setfield(L, -2, "sbi.core");
	lua_pop(L, 2);                        /* [] */
}

void
sbi__set_module_dir(lua_State *L, const char *dir)
{
	push_package(L);                      /* [package] */
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
	lua_setfield(L, -2, "path");
	lua_pop(L, 1);                        /* [] */
}

/* ---- nondeterminism ---- */

/* Raises when fn is called while a step or a simulator runs: its result
 * would enter a cached artifact without entering the artifact's key, and
 * the artifact could not be reproduced (a replayed bundle would differ). */
void
sbi__refuse_in_step(lua_State *L, const char *fn, int steps_too)
{
	sbi_runctx *ctx = sbi__runctx(L);
	if (ctx == NULL || !(ctx->in_simulator || (steps_too && ctx->node != NULL)))
		return;
	ctx->refused = 1;
	luaL_error(L, "%s is not available %s: its value would enter a cached result without entering its key, "
	    "so the result could not be reproduced; draw random numbers from the simulator's rng argument "
	    "(rng:uniform(), rng:normal(), ...) and pass data in from the recipe (docs/recipes.md#the-sandbox)",
	    fn, ctx->in_simulator ? "in a simulator" : "while a step runs");
}

/* An os function that works while the recipe loads and is refused while a
 * step runs, and with upvalue 3 true also to a restricted recipe (a
 * stranger's recipe has no business with this machine's secrets).
 * Upvalues: the function, its name, that flag. [args] -> [results] */
static int
os_guarded(lua_State *L)
{
	const char *name = lua_tostring(L, lua_upvalueindex(2));
	sbi__refuse_in_step(L, name, 1);
	if (lua_toboolean(L, lua_upvalueindex(3))) {
		int restricted = lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_ALLOWED_ROOT) == LUA_TSTRING;
		lua_pop(L, 1);
		if (restricted)
			return luaL_error(L, "%s is not available to a recipe from a bundle: it runs restricted (run it "
			    "with --trust to lift this)", name);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* math.random and math.randomseed in a sandbox. [..] -> error */
static int
math_random_refused(lua_State *L)
{
	return luaL_error(L, "math.random and math.randomseed are not available in recipes: their numbers do not "
	    "depend on the seed, so results could not be cached or replayed; use the simulator's rng argument "
	    "(rng:uniform(), rng:integer(a, b), ...) or sbi.core.rng(seed) (docs/recipes.md#the-sandbox)");
}

/* ---- the sandbox ---- */

static const char *const safe_os[] = { "clock", "date", "difftime", "getenv", "time", NULL };

/* Replaces _G.os by the safe functions of os, each guarded. [] -> [] */
static void
install_safe_os(lua_State *L)
{
	lua_getglobal(L, "os");               /* [os] */
	lua_newtable(L);                      /* [os, safe] */
	for (int i = 0; safe_os[i]; i++) {
		lua_getfield(L, -2, safe_os[i]);
		lua_pushfstring(L, "os.%s", safe_os[i]);
		lua_pushboolean(L, strcmp(safe_os[i], "getenv") == 0);
		lua_pushcclosure(L, os_guarded, 3);
		lua_setfield(L, -2, safe_os[i]);
	}
	lua_setglobal(L, "os");               /* [os] */
	lua_pop(L, 1);                        /* [] */
}

/* Sets t[name] = nil for each name, t at idx. */
static void
clear_fields(lua_State *L, int idx, const char *const *names)
{
	idx = lua_absindex(L, idx);
	for (int i = 0; names[i]; i++) {
		lua_pushnil(L);
		lua_setfield(L, idx, names[i]);
	}
}

static const char *const unsafe_globals[] = { "io", "debug", "package", "load", "loadfile", "dofile", NULL };
static const char *const unsafe_loaded[] = { "io", "os", "debug", "package", "_G", NULL };

/* Removes from the whole state what could reach outside the sandbox, and
 * locks the string metatable. [] -> [] */
static void
strip_state(lua_State *L)
{
	install_safe_os(L);
	lua_pushglobaltable(L);               /* [G] */
	clear_fields(L, -1, unsafe_globals);
	lua_getfield(L, -1, "string");        /* [G, string] */
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");          /* bytecode is for load, which is gone */
	lua_getfield(L, -2, "math");          /* [G, string, math] */
	lua_pushcfunction(L, math_random_refused);
	lua_setfield(L, -2, "random");
	lua_pushcfunction(L, math_random_refused);
	lua_setfield(L, -2, "randomseed");
	lua_pop(L, 3);                        /* [] */
	push_package(L);                      /* [package] */
	lua_getfield(L, -1, "loaded");        /* [package, loaded] */
	clear_fields(L, -1, unsafe_loaded);
	lua_pop(L, 2);                        /* [] */
	lua_pushliteral(L, "");               /* [""] */
	lua_getmetatable(L, -1);              /* ["", mt] */
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);                        /* [] */
}

lua_State *
sbi__state_new(sbi_runctx *ctx, int sandbox)
{
	lua_State *L = luaL_newstate();
	if (L == NULL)
		return NULL;
	luaL_openlibs(L);
	install_searcher(L);
	sbi__set_module_dir(L, ".");
	lua_pushlightuserdata(L, ctx);
	lua_setfield(L, LUA_REGISTRYINDEX, SBI_RUNCTX);
	sbi__open_graph(L);
	sbi__open_prov(L);
	sbi__open_native(L);
	if (sandbox)
		strip_state(L);
	return L;
}

static const char *const safe_globals[] = {
	"assert", "error", "ipairs", "next", "pairs", "pcall", "print", "rawequal", "rawget", "rawlen",
	"rawset", "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "xpcall",
	"require", "_VERSION", NULL,
};

/* The libraries a recipe gets as its own copies: changing one changes
 * nothing for the stdlib. */
static const char *const copied_libs[] = { "coroutine", "math", "os", "string", "table", "utf8", NULL };

/* Pushes a shallow copy of the table at idx. */
static void
push_copy(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_newtable(L);                      /* [copy] */
	lua_pushnil(L);
	while (lua_next(L, idx)) {            /* [copy, k, v] */
		lua_pushvalue(L, -2);
		lua_insert(L, -2);                /* [copy, k, k, v] */
		lua_rawset(L, -4);                /* [copy, k] */
	}
}

/* Pushes a new recipe environment. */
static void
push_env(lua_State *L)
{
	lua_newtable(L);                      /* [env] */
	lua_newtable(L);                      /* [env, mt] */
	lua_newtable(L);                      /* [env, mt, base] */
	for (int i = 0; safe_globals[i]; i++) {
		lua_getglobal(L, safe_globals[i]);
		lua_setfield(L, -2, safe_globals[i]);
	}
	push_package(L);
	lua_getfield(L, -1, "loaded");        /* [env, mt, base, package, loaded] */
	for (int i = 0; copied_libs[i]; i++) {
		lua_getglobal(L, copied_libs[i]); /* [.., loaded, lib] */
		push_copy(L, -1);                 /* [.., loaded, lib, copy] */
		lua_pushvalue(L, -1);
		lua_setfield(L, -6, copied_libs[i]);  /* base[name] = copy */
		if (strcmp(copied_libs[i], "os") != 0)
			lua_setfield(L, -3, copied_libs[i]); /* require(name) = copy */
		else
			lua_pop(L, 1);
		lua_pop(L, 1);                    /* [.., loaded] */
	}
	lua_pop(L, 2);                        /* [env, mt, base] */
	lua_setfield(L, -2, "__index");       /* [env, mt] */
	lua_setmetatable(L, -2);              /* [env] */
}

/* ---- the stdlib's console (what it used io and debug for) ---- */

/* core.stderr(s, ...) and core.stdout(s, ...): write strings, as
 * io.stderr:write would. Upvalue: the stream. [s, ..] -> [] */
static int
l_write_stream(lua_State *L)
{
	FILE *f = lua_touserdata(L, lua_upvalueindex(1));
	int n = lua_gettop(L);
	if (f == stderr && sbi__mpi_rank() != 0)
		return 0; /* MPI ranks other than 0 rerun steps' code for rank 0: it reports */
	for (int i = 1; i <= n; i++) {
		size_t len;
		const char *s = luaL_checklstring(L, i, &len);
		fwrite(s, 1, len, f);
	}
	fflush(f);
	return 0;
}

/* core.where(level) -> "file:line" of the function at level (1 = the
 * caller of core.where), or "?". [level] -> [where] */
static int
l_where(lua_State *L)
{
	lua_Debug ar;
	int level = (int)luaL_checkinteger(L, 1);
	if (level < 0 || !lua_getstack(L, level, &ar) || !lua_getinfo(L, "Sl", &ar)) {
		lua_pushliteral(L, "?");
		return 1;
	}
	lua_pushfstring(L, "%s:%d", ar.short_src, ar.currentline);
	return 1;
}

void
sbi__open_console(lua_State *L)
{
	lua_pushlightuserdata(L, stderr);
	lua_pushcclosure(L, l_write_stream, 1);
	lua_setfield(L, -2, "stderr");
	lua_pushlightuserdata(L, stdout);
	lua_pushcclosure(L, l_write_stream, 1);
	lua_setfield(L, -2, "stdout");
	lua_pushcfunction(L, l_where);
	lua_setfield(L, -2, "where");
}

static int
traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (msg == NULL && luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
		msg = lua_tostring(L, -1);
	if (msg == NULL) {
		/* error({...}) and the like: say where it was raised. */
		lua_Debug ar;
		for (int level = 1; msg == NULL && lua_getstack(L, level, &ar); level++)
			if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
				msg = lua_pushfstring(L, "%s:%d: (error object is a %s value)", ar.short_src,
				    ar.currentline, luaL_typename(L, 1));
		if (msg == NULL)
			msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	if (getenv("SBI_TRACEBACK"))
		luaL_traceback(L, L, msg, 1);
	else
		lua_pushstring(L, msg);
	return 1;
}

int
sbi__pcall(lua_State *L, int nargs, int nres)
{
	int base = lua_gettop(L) - nargs;
	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	int rc = lua_pcall(L, nargs, nres, base);
	lua_remove(L, base);
	return rc;
}

int
sbi__load_recipe(lua_State *L, const char *path)
{
	lua_pushfstring(L, "@%s", path);
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		lua_pop(L, 1);
		lua_pushfstring(L, "cannot open recipe %s: %s", path, strerror(errno));
		return LUA_ERRFILE;
	}
	fclose(f);
	lua_pop(L, 1);
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		lua_pushfstring(L, "cannot open recipe %s: it is a directory, expected a .lua file", path);
		return LUA_ERRFILE;
	}
	if (luaL_loadfilex(L, path, "t") != LUA_OK) /* [chunk or msg] */
		return LUA_ERRSYNTAX;
	push_env(L);                               /* [chunk, env] */
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, SBI_REG_RECIPE_ENV);
	if (lua_setupvalue(L, -2, 1) == NULL)      /* [chunk] */
		lua_pop(L, 1);
	return sbi__pcall(L, 0, 0);
}
