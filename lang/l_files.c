/* Part of sbi.core: data files: core.read_matrix, core.write_samples,
 * core.file_hash and core.file_exists, each checked against the sandbox's
 * read and write rules (l_state.c) and recorded for bundles (l_prov.c). */
#include <string.h>

#include "lsbi.h"
#include "sbi/alloc.h"
#include "sbi/fsutil.h"
#include "sbi/io.h"

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The failure result of the file functions. [..] -> [.., nil, msg] */
static int
push_failure(lua_State *L, const char *msg)
{
	lua_pushnil(L);
	lua_pushstring(L, msg);
	return 2;
}

/* The file argument 1 names, after a bundle's path map, at stack index 2;
 * NULL with nil and a message pushed when reading it is not allowed. */
static const char *
readable_path(lua_State *L)
{
	const char *given = luaL_checkstring(L, 1), *path = sbi__prov_map(L, given);
	lua_settop(L, 1);
	lua_pushstring(L, path); /* [given, path] */
	path = lua_tostring(L, 2);
	if (!sbi__check_read(L, path)) { /* [.., msg] */
		lua_pushnil(L);
		lua_insert(L, -2);       /* [.., nil, msg] */
		return NULL;
	}
	return path;
}

/* The header of a CSV file while it is turned into a table. */
typedef struct names_box {
	char **names; /* owned, as each name */
	size_t n;
} names_box;

/* __gc and __close of a names box. [box] -> [box] */
static int
names_box_free(lua_State *L)
{
	names_box *b = lua_touserdata(L, 1);
	for (size_t i = 0; i < b->n; i++)
		sbi_free(b->names[i]);
	sbi_free(b->names);
	b->names = NULL;
	b->n = 0;
	return 0;
}

/* core.read_matrix(path) -> Mat, names | nil, message
 * [path] -> [path, found, box, Mat, names] | [path, found, box, nil, msg] */
static int
l_read_matrix(lua_State *L)
{
	const char *path = readable_path(L);
	if (path == NULL)
		return 2; /* [.., nil, msg] */
	/* What the file gives goes into userdata before anything can raise. */
	names_box *nb = sbi__push_box(L, sizeof *nb, "sbi.NamesBox", names_box_free);
	sbi_mat *m = NULL;
	sbi_err err = { 0 };
	int rc = ends_with(path, ".npy") ? sbi_npy_read(path, &m, &err)
					 : sbi_csv_read(path, &m, &nb->names, &nb->n, &err);
	if (rc != SBI_OK)
		return push_failure(L, err.msg);
	sbi__push_mat(L, m); /* owns m, also if it raises */
	sbi__prov_read(L, lua_tostring(L, 1), path);
	lua_createtable(L, (int)nb->n, 0);
	for (size_t i = 0; i < nb->n; i++) {
		lua_pushstring(L, nb->names[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 2;
}

/* core.write_samples(dir, name, Mat, names) writes name.csv and name.npy;
 * returns the content hashes of the two files as written. */
static int
l_write_samples(lua_State *L)
{
	const char *dir = luaL_checkstring(L, 1), *name = luaL_checkstring(L, 2);
	sbi_mat *m = sbi__check_mat(L, 3)->m;
	luaL_checktype(L, 4, LUA_TTABLE);
	if (!sbi__check_write(L, dir))
		return luaL_error(L, "cannot write output '%s': %s", name, lua_tostring(L, -1));
	if (lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_ALLOWED_OUT) == LUA_TSTRING && strchr(name, '/'))
		return luaL_error(L, "cannot write output '%s': a recipe from a bundle runs restricted and writes only "
		    "into its output folder, not into subfolders (run it with --trust to lift this)", name);
	lua_pop(L, 1);
	const char **names = lua_newuserdatauv(L, (m->ncol ? m->ncol : 1) * sizeof *names, 0);
	lua_createtable(L, (int)m->ncol, 0); /* [.., names, anchor]: an __index may make fresh strings */
	for (size_t j = 0; j < m->ncol; j++) {
		if (lua_geti(L, 4, (lua_Integer)j + 1) != LUA_TSTRING)
			luaL_argerror(L, 4, lua_pushfstring(L, "element %I must be a string, got %s", (lua_Integer)j + 1,
			    luaL_typename(L, -1)));
		names[j] = lua_tostring(L, -1);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
	sbi_err err = { 0 };
	int rc = sbi_fs_mkdirs(dir, &err);
	const char *csv = lua_pushfstring(L, "%s/%s.csv", dir, name);
	const char *npy = lua_pushfstring(L, "%s/%s.npy", dir, name);
	if (rc == SBI_OK)
		rc = sbi_csv_write(csv, m, names, &err);
	if (rc == SBI_OK)
		rc = sbi_npy_write(npy, m, &err);
	char hex[2][SBI_KEY_HEX];
	for (int i = 0; i < 2 && rc == SBI_OK; i++)
		rc = sbi_hash_file_hex(i ? npy : csv, hex[i], &err);
	if (rc != SBI_OK) {
		/* No position: the caller is the stdlib, not the recipe. */
		lua_pushfstring(L, "cannot write output '%s' to the output folder %s (choose another with --out DIR): %s",
		    name, dir, err.msg);
		return lua_error(L);
	}
	lua_pushstring(L, hex[0]);
	lua_pushstring(L, hex[1]); /* [.., csv hash, npy hash] */
	return 2;
}

/* core.file_hash(path) -> hex | nil, message */
static int
l_file_hash(lua_State *L)
{
	const char *path = readable_path(L);
	if (path == NULL)
		return 2; /* [.., nil, msg] */
	char hex[SBI_KEY_HEX];
	sbi_err err = { 0 };
	if (sbi_hash_file_hex(path, hex, &err) != SBI_OK)
		return push_failure(L, err.msg);
	sbi__prov_read(L, lua_tostring(L, 1), path);
	lua_pushstring(L, hex);
	return 1;
}

/* core.file_exists(path) -> boolean | false, message when the file
 * exists but a restricted recipe may not read it */
static int
l_file_exists(lua_State *L)
{
	const char *path = sbi__prov_map(L, luaL_checkstring(L, 1));
	lua_settop(L, 1);
	lua_pushstring(L, path);
	path = lua_tostring(L, 2);
	int exists = sbi_fs_exists(path);
	if (exists && !sbi__check_read(L, path)) { /* [.., msg] */
		lua_pushboolean(L, 0);
		lua_insert(L, -2);                 /* [.., false, msg] */
		return 2;
	}
	lua_pushboolean(L, exists);
	return 1;
}

static const luaL_Reg files_funcs[] = {
	{ "read_matrix", l_read_matrix }, { "write_samples", l_write_samples }, { "file_hash", l_file_hash },
	{ "file_exists", l_file_exists }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_files(lua_State *L)
{
	luaL_setfuncs(L, files_funcs, 0);
}
