/* The Lua side of the step graph. The engine's sbi_graph (ctx->g) is the
 * one list of a recipe's steps: the stdlib adds each node to it as the
 * recipe declares it (internal.node, from sbi.graph) and keeps beside it,
 * indexed by the node's id, only what is Lua: the node table with its
 * options, its run function and the stdlib's own fields. Keying hashes
 * those options into the graph once the recipe has loaded. */
#include <stdlib.h>
#include <string.h>

#include "lsbi.h"
#include "sbi/alloc.h"
#include "sbi/bundle.h"
#include "sbi/fsutil.h"
#include "sbi_config.h"

static sbi_graph *
graph_of(lua_State *L)
{
	sbi_runctx *ctx = sbi__runctx(L);
	if (ctx == NULL || ctx->g == NULL)
		luaL_error(L, "sbi: steps can be declared only in a recipe run by sbirun");
	return ctx->g;
}

/* The id of the node table at idx (its _id - 1), or raises naming what. */
static size_t
node_id(lua_State *L, sbi_graph *g, int idx, const char *what)
{
	lua_getfield(L, idx, "_id");
	lua_Integer id = lua_tointeger(L, -1);
	lua_pop(L, 1);
	if (id < 1 || (size_t)id > g->nnodes)
		luaL_error(L, "%s is not a node declared before it", what);
	return (size_t)id - 1;
}

/* Adds the node and its inputs; the label is escaped once, here: labels
 * are printed everywhere, and a recipe (from a bundle) chooses them.
 * Raises before adding anything when an input is not a node. */
static size_t
add_node(lua_State *L, sbi_graph *g, const char *kind, const char *label)
{
	lua_getfield(L, 1, "inputs"); /* [n, inputs] */
	lua_Integer nin = luaL_len(L, -1);
	for (lua_Integer k = 1; k <= nin; k++) {
		lua_geti(L, -1, k);
		if (!lua_istable(L, -1))
			luaL_error(L, "%s: input %d is not a node declared before it", label, (int)k);
		lua_pushfstring(L, "%s: input %d", label, (int)k);
		node_id(L, g, -2, lua_tostring(L, -1));
		lua_pop(L, 2);
	}
	size_t id = 0, cap = 4 * strlen(label) + 8;
	char *shown = sbi_malloc(cap);
	int rc = shown ? sbi_graph_add(g, kind, sbi_bundle_escape(label, shown, cap), NULL, &id) : SBI_ENOMEM;
	sbi_free(shown);
	for (lua_Integer k = 1; rc == SBI_OK && k <= nin; k++) {
		lua_geti(L, -1, k);
		lua_getfield(L, -1, "_id");
		rc = sbi_graph_add_input(g, id, (size_t)lua_tointeger(L, -1) - 1);
		lua_pop(L, 2);
	}
	if (rc != SBI_OK)
		luaL_error(L, "out of memory");
	lua_pop(L, 1); /* [n] */
	return id;
}

/* internal.node(n) -> id + 1, label as shown: adds the node table n
 * { kind, label, opts, inputs, run } to the graph and to SBI_REG_NODES.
 * [n] -> [n, id + 1, shown] */
static int
l_node(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	sbi_graph *g = graph_of(L);
	lua_getfield(L, 1, "kind");
	lua_getfield(L, 1, "label"); /* [n, kind, label] */
	const char *kind = luaL_checkstring(L, 2), *label = luaL_checkstring(L, 3);
	size_t id = add_node(L, g, kind, label);
	lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_NODES);
	lua_pushvalue(L, 1);
	lua_rawseti(L, -2, (lua_Integer)id + 1);
	lua_pop(L, 1);
	lua_pushinteger(L, (lua_Integer)id + 1);
	lua_pushstring(L, g->nodes[id].label);
	return 2;
}

/* internal.output(name, node): the recipe writes node's artifact as name.
 * [name, node] -> [] */
static int
l_output(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	sbi_graph *g = graph_of(L);
	if (sbi_graph_add_output(g, name, node_id(L, g, 2, name)) != SBI_OK)
		return luaL_error(L, "out of memory");
	return 0;
}

/* internal.noutputs() -> the number of outputs declared. [] -> [n] */
static int
l_noutputs(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)graph_of(L)->noutputs);
	return 1;
}

void
sbi__open_graph(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "node", l_node },
		{ "output", l_output },
		{ "noutputs", l_noutputs },
		{ NULL, NULL },
	};
	luaL_newlib(L, fns);
	lua_setfield(L, LUA_REGISTRYINDEX, SBI_REG_INTERNAL);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, SBI_REG_NODES);
}

void
sbi__push_node(lua_State *L, size_t id)
{
	lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_NODES);
	lua_rawgeti(L, -1, (lua_Integer)id + 1);
	lua_remove(L, -2);
}

int
sbi__graph_key(lua_State *L)
{
	sbi_graph *g = graph_of(L);
	for (size_t i = 0; i < g->nnodes; i++) {
		sbi__push_node(L, i);
		lua_getfield(L, -1, "opts"); /* [node, opts] */
		sbi__hash_value(L, -1, &g->nodes[i].opts);
		if (lua_istable(L, -1)) { /* the seed, for run.json and bundle manifests */
			lua_getfield(L, -1, "seed");
			if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0)
				g->nodes[i].seed = (long long)lua_tointeger(L, -1);
			lua_pop(L, 1);
		}
		lua_pop(L, 2);
	}
	sbi_err err = { 0 };
	if (sbi_graph_compute_keys(g, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 0;
}

void
sbi__push_outputs(lua_State *L)
{
	sbi_graph *g = graph_of(L);
	lua_createtable(L, (int)g->noutputs, 0);
	for (size_t i = 0; i < g->noutputs; i++) {
		lua_createtable(L, 0, 2);
		lua_pushstring(L, g->outputs[i].name);
		lua_setfield(L, -2, "name");
		sbi__push_node(L, g->outputs[i].node);
		lua_setfield(L, -2, "node");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/* The hash of the stdlib a run loads: the files built in, or with
 * SBI_STDLIB_DIR set (l_state.c) those files read from that folder, so an
 * edit of the stdlib changes every key. A file that cannot be read hashes
 * as missing (loading it fails anyway). */
static void
stdlib_hash(sbi_key *out)
{
	const char *dir = getenv("SBI_STDLIB_DIR");
	sbi_hasher h;
	sbi_hash_init(&h);
	sbi_hash_str(&h, "sbirun-stdlib", 13);
	for (size_t i = 0; i < sbi_stdlib_nfiles; i++) {
		const sbi_stdlib_file *f = &sbi_stdlib_files[i];
		sbi_hash_str(&h, f->path, strlen(f->path));
		char *path = dir && *dir ? sbi_path_join(dir, f->path) : NULL, *text = NULL;
		size_t n = 0;
		if (path == NULL)
			sbi_hash_str(&h, f->source, f->len);
		else if (sbi_fs_read_all(path, &text, &n, NULL) == SBI_OK)
			sbi_hash_str(&h, text, n);
		else
			sbi_hash_u64(&h, 0); /* missing: unlike any string */
		sbi_free(text);
		sbi_free(path);
	}
	sbi_hash_final(&h, out);
}

/* What every key starts with (docs/caching.md): the version, the hash of
 * the stdlib loaded and the hash of the engine's code. */
sbi_graph *
sbi__graph_new(void)
{
	sbi_key k;
	char hex[SBI_KEY_HEX], id[256];
	stdlib_hash(&k);
	sbi_key_hex(&k, hex);
	snprintf(id, sizeof id, "%s stdlib %s code %s", SBI_VERSION, hex, sbi_code_hash);
	return sbi_graph_alloc(id);
}
