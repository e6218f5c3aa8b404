/* Lua states for recipes: the stdlib loader and the recipe sandbox.
 *
 * The stdlib is compiled into the binary; with SBI_STDLIB_DIR set it is read
 * from that directory instead (for stdlib development), with one warning.
 * A recipe runs in its own _ENV whose __index is a table of safe globals:
 * no load/loadfile/dofile, no io, no os.execute; require finds the stdlib
 * and Lua modules beside the recipe, never C modules. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lstate.h"
#include "sbi/alloc.h"

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

/* package.searchers entry: finds "sbi" and "sbi.*" in the stdlib. */
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
		lua_pushstring(L, f->path); /* [.., chunk, path] */
		return 2;
	}
	lua_pushfstring(L, "no stdlib module '%s'", name);
	return 1;
}

int
sbi__check_read(lua_State *L, const char *path)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_ALLOWED_ROOT) != LUA_TSTRING) { /* [root?] */
		lua_pop(L, 1);                                                        /* [] */
		return 1;
	}
	const char *root = lua_tostring(L, -1);
	size_t n = strlen(root);
	char *real = realpath(path, NULL);
	int ok = real == NULL || (strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0'));
	free(real);
	if (ok) {
		lua_pop(L, 1);                                                        /* [] */
		return 1;
	}
	lua_pushfstring(L, "%s is outside the bundle folder %s: a recipe from a bundle runs restricted and "
	    "reads only files inside its folder (run it with --trust to lift this)", path, root); /* [root, msg] */
	lua_remove(L, -2);                                                            /* [msg] */
	return 0;
}

int
sbi__check_write(lua_State *L, const char *dir)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_ALLOWED_OUT) != LUA_TSTRING) { /* [out?] */
		lua_pop(L, 1);                                                       /* [] */
		return 1;
	}
	const char *out = lua_tostring(L, -1);
	if (strcmp(out, dir) == 0) {
		lua_pop(L, 1);                                                       /* [] */
		return 1;
	}
	lua_pushfstring(L, "%s is not the output folder %s: a recipe from a bundle runs restricted and writes "
	    "only to its output folder (run it with --trust to lift this)", dir, out); /* [out, msg] */
	lua_remove(L, -2);                                                           /* [msg] */
	return 0;
}

/* Appends path to the registry list SBI_REG_MODULE_FILES (the module
 * files a recipe loaded, for bundles). */
static void
record_module(lua_State *L, const char *path)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_MODULE_FILES) != LUA_TTABLE) { /* [list?] */
		lua_pop(L, 1);
		lua_newtable(L);                                          /* [list] */
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, SBI_REG_MODULE_FILES);
	}
	lua_pushstring(L, path);                                          /* [list, path] */
	lua_seti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);              /* [list] */
	lua_pop(L, 1);                                                    /* [] */
}

/* package.searchers entry for Lua files on package.path (beside the
 * recipe). A module found there runs in the recipe's own _ENV: it gets the
 * same restricted globals, and its functions hash by the recipe's globals
 * rather than by the name "_G". Without a recipe (sbirun lua) it uses _G. */
static int
module_searcher(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	lua_getglobal(L, "package");
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
	record_module(L, path);
	if (lua_getfield(L, LUA_REGISTRYINDEX, "sbi.recipe_env") == LUA_TTABLE) {
		if (lua_setupvalue(L, -2, 1) == NULL)
			lua_pop(L, 1);
	} else
		lua_pop(L, 1);
	lua_pushvalue(L, -3); /* [.., loader, path] */
	return 2;
}

static void
install_searcher(lua_State *L)
{
	lua_getglobal(L, "package");          /* [package] */
	lua_getfield(L, -1, "searchers");     /* [package, searchers] */
	/* preload, then the stdlib (so a recipe's file cannot shadow it),
	 * then Lua files on package.path; no C module searchers. */
	lua_pushnil(L);
	lua_seti(L, -2, 4);
	lua_pushcfunction(L, module_searcher);
	lua_seti(L, -2, 3);
	lua_pushcfunction(L, stdlib_searcher);
	lua_seti(L, -2, 2);
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
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", dir, dir);
	lua_setfield(L, -2, "path");
	lua_pop(L, 1);
}

lua_State *
sbi__state_new(sbi_runctx *ctx)
{
	lua_State *L = luaL_newstate();
	if (L == NULL)
		return NULL;
	luaL_openlibs(L);
	install_searcher(L);
	sbi__set_module_dir(L, ".");
	lua_pushlightuserdata(L, ctx);
	lua_setfield(L, LUA_REGISTRYINDEX, SBI_RUNCTX);
	return L;
}

static const char *const safe_globals[] = {
	"assert", "error", "ipairs", "next", "pairs", "pcall", "print", "rawequal", "rawget", "rawlen",
	"rawset", "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "xpcall",
	"require", "_VERSION", "math", "string", "table", "utf8", "coroutine", NULL,
};

static const char *const safe_os[] = { "clock", "date", "difftime", "getenv", "time", NULL };

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
	lua_newtable(L);                      /* [env, mt, base, os] */
	lua_getglobal(L, "os");
	for (int i = 0; safe_os[i]; i++) {
		lua_getfield(L, -1, safe_os[i]);
		lua_setfield(L, -3, safe_os[i]);
	}
	lua_pop(L, 1);
	lua_setfield(L, -2, "os");            /* [env, mt, base] */
	lua_setfield(L, -2, "__index");       /* [env, mt] */
	lua_setmetatable(L, -2);              /* [env] */
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
	lua_setfield(L, LUA_REGISTRYINDEX, "sbi.recipe_env");
	if (lua_setupvalue(L, -2, 1) == NULL)      /* [chunk] */
		lua_pop(L, 1);
	return sbi__pcall(L, 0, 0);
}
