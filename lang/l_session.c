/* Sessions: load a recipe, build and key its graph, run it, print it,
 * clean its cache entries, write run.json (see session.h). */
#include <archive.h>
#include <cblas.h>
#include <errno.h>
#include <gsl/gsl_version.h>
#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lstate.h"
#include "sbi/alloc.h"
#include "sbi/fsutil.h"
#include "sbi/progress.h"
#include "sbi_config.h"
#include "sbi/bundle.h"
#include "session.h"

struct sbi_session {
	sbi_session_opts o;
	lua_State *L;
	sbi_runctx ctx;
	sbi_graph *g;
	sbi_cache *cache;
	char *recipe_dir, *recipe_name, *cache_dir, *out_dir; /* owned */
	char *root; /* owned: the real path a restricted recipe may read in, or NULL */
	double t0;
};

static void
print_error(const char *msg)
{
	fprintf(stderr, "sbirun: error: %s\n", msg);
}

/* Pushes require("sbi"). */
static void
push_sbi(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_getfield(L, -1, "sbi");
	lua_remove(L, -2);
}

/* Calls sbi[fname](args...) protected; prints the error and returns 1 on
 * failure. nargs values are on the stack; nres results are left. */
static int
call_sbi(sbi_session *s, const char *fname, int nargs, int nres)
{
	lua_State *L = s->L;
	push_sbi(L);
	lua_getfield(L, -1, fname);
	lua_remove(L, -2);
	lua_insert(L, -nargs - 1);
	if (sbi__pcall(L, nargs, nres) != LUA_OK) {
		print_error(lua_tostring(L, -1));
		lua_pop(L, 1);
		return 1;
	}
	return 0;
}

static char *
dup_or_join(const char *given, const char *base, const char *rel)
{
	if (given)
		return sbi_strdup(given);
	return sbi_path_join(base, rel);
}

static int
init_paths(sbi_session *s)
{
	char *a = sbi_strdup(s->o.recipe), *b = sbi_strdup(s->o.recipe);
	if (a == NULL || b == NULL) {
		sbi_free(a);
		sbi_free(b);
		return 1;
	}
	s->recipe_dir = sbi_strdup(dirname(a));
	char *name = basename(b), *dot = strrchr(name, '.');
	if (dot && strcmp(dot, ".lua") == 0)
		*dot = '\0';
	s->recipe_name = sbi_strdup(name);
	sbi_free(a);
	sbi_free(b);
	char out_rel[512];
	snprintf(out_rel, sizeof out_rel, "sbirun-out/%s", s->recipe_name ? s->recipe_name : "recipe");
	s->cache_dir = dup_or_join(s->o.cache_dir, s->recipe_dir ? s->recipe_dir : ".", ".sbirun");
	s->out_dir = s->o.out_dir ? sbi_strdup(s->o.out_dir) : sbi_strdup(out_rel);
	return !s->recipe_dir || !s->recipe_name || !s->cache_dir || !s->out_dir;
}

/* A recipe in an unpacked bundle (a folder with the bundle marker) runs
 * restricted unless --trust: reads inside the folder, writes into the
 * output folder only (the registry keys read by sbi__check_read/write). */
/* In an unpacked bundle: the map SBI_REG_DATA_MAP of the paths the recipe
 * gave core.read_matrix / core.file_hash to their bundled copies, from
 * SBI_BUNDLE_PATHS (written by unpack). Entries that would leave the folder
 * are ignored. */
static void
load_data_map(sbi_session *s)
{
	char *file = sbi_path_join(s->recipe_dir, SBI_BUNDLE_PATHS);
	json_t *a = file ? json_load_file(file, 0, NULL) : NULL;
	sbi_free(file);
	if (!json_is_array(a)) {
		json_decref(a);
		return;
	}
	lua_State *L = s->L;
	lua_createtable(L, 0, 2); /* [map] */
	lua_newtable(L);
	lua_newtable(L);          /* [map, rel, exact] */
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		const char *path = json_string_value(json_object_get(e, "path"));
		const char *rel = json_string_value(json_object_get(e, "rel"));
		const char *unpack = json_string_value(json_object_get(e, "unpack"));
		char name[1100];
		if (path == NULL || unpack == NULL)
			continue;
		snprintf(name, sizeof name, "data/%s", unpack);
		if (sbi_bundle_check_name(name) != NULL)
			continue;
		char *where = sbi_path_join(s->recipe_dir, unpack);
		if (where == NULL)
			continue;
		lua_pushstring(L, where);
		lua_setfield(L, rel ? -3 : -2, rel ? rel : path);
		sbi_free(where);
	}
	json_decref(a);
	lua_setfield(L, -3, "exact");
	lua_setfield(L, -2, "rel");
	lua_setfield(L, LUA_REGISTRYINDEX, SBI_REG_DATA_MAP); /* [] */
}

static int
init_restriction(sbi_session *s)
{
	char *marker = sbi_path_join(s->recipe_dir, SBI_BUNDLE_MARKER);
	int bundled = marker && sbi_fs_exists(marker);
	sbi_free(marker);
	if (bundled)
		load_data_map(s);
	if (!bundled || s->o.trust)
		return 0;
	char *real = realpath(s->recipe_dir, NULL);
	if (real == NULL) {
		fprintf(stderr, "sbirun: error: %s: %s\n", s->recipe_dir, strerror(errno));
		return 1;
	}
	s->root = sbi_strdup(real);
	free(real);
	if (s->root == NULL)
		return 1;
	lua_pushstring(s->L, s->root);
	lua_setfield(s->L, LUA_REGISTRYINDEX, SBI_REG_ALLOWED_ROOT);
	lua_pushstring(s->L, s->out_dir);
	lua_setfield(s->L, LUA_REGISTRYINDEX, SBI_REG_ALLOWED_OUT);
	if (!s->o.quiet)
		fprintf(stderr, "%s is an unpacked bundle: its recipe runs restricted (it reads only files inside "
		    "it and writes only to %s; --trust lifts this)\n", s->recipe_dir, s->out_dir);
	return 0;
}

/* Passes --set values and the recipe's location to the stdlib. */
static int
pass_settings(sbi_session *s, int *exit_code)
{
	lua_State *L = s->L;
	lua_newtable(L); /* [sets] */
	for (size_t i = 0; i < s->o.nsets; i++) {
		const char *kv = s->o.sets[i], *eq = strchr(kv, '=');
		if (eq == NULL || eq == kv) {
			fprintf(stderr, "sbirun: error: --set %s: expected name=value\n", kv);
			*exit_code = 2;
			return 1;
		}
		lua_pushlstring(L, kv, (size_t)(eq - kv));
		lua_pushstring(L, eq + 1);
		lua_rawset(L, -3);
	}
	lua_pushstring(L, s->recipe_dir);
	lua_setfield(L, LUA_REGISTRYINDEX, SBI_REG_RECIPE_DIR);
	lua_pushstring(L, s->o.recipe);
	lua_pushstring(L, s->recipe_dir);
	return call_sbi(s, "_begin", 3, 0);
}

/* Adds node i (the Lua node table at -1) to the graph. */
static void
add_node(sbi_session *s, lua_Integer i, sbi_err *err)
{
	lua_State *L = s->L;
	lua_getfield(L, -1, "kind");
	lua_getfield(L, -2, "label");
	const char *kind = luaL_checkstring(L, -2), *label = luaL_checkstring(L, -1);
	lua_getfield(L, -3, "opts"); /* [node, kind, label, opts] */
	sbi_key opts;
	sbi__hash_value(L, -1, &opts);
	size_t id;
	if (sbi_graph_add(s->g, kind, label, &opts, &id) != SBI_OK)
		luaL_error(L, "out of memory");
	SBI_ASSERT(id == (size_t)i - 1);
	lua_pop(L, 3);
	lua_getfield(L, -1, "inputs"); /* [node, inputs] */
	lua_Integer n = luaL_len(L, -1);
	for (lua_Integer k = 1; k <= n; k++) {
		lua_geti(L, -1, k);
		lua_getfield(L, -1, "_id");
		lua_Integer in = lua_tointeger(L, -1);
		if (in < 1 || in > i - 1)
			luaL_error(L, "%s: input %d is not a node declared before it", label, (int)k);
		if (sbi_graph_add_input(s->g, id, (size_t)in - 1) != SBI_OK)
			luaL_error(L, "out of memory");
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	(void)err;
}

static int
build_graph_protected(lua_State *L)
{
	sbi_session *s = lua_touserdata(L, 1);
	push_sbi(L);
	lua_getfield(L, -1, "_nodes"); /* [s, sbi, nodes] */
	lua_Integer n = luaL_len(L, -1);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, -1, i); /* [.., node] */
		add_node(s, i, NULL);
		lua_pop(L, 1);
	}
	sbi_err err = { 0 };
	if (sbi_graph_compute_keys(s->g, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	for (lua_Integer i = 1; i <= n; i++) {
		char hex[SBI_KEY_HEX];
		sbi_key_hex(&s->g->nodes[i - 1].key, hex);
		lua_geti(L, -1, i);
		lua_pushstring(L, hex);
		lua_setfield(L, -2, "_key");
		lua_pop(L, 1);
	}
	return 0;
}

sbi_session *
sbi_session_load(const sbi_session_opts *o, int *exit_code)
{
	*exit_code = 1;
	sbi_session *s = sbi_calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->o = *o;
	s->t0 = sbi_now();
	s->ctx.jobs = o->jobs;
	s->ctx.quiet = o->quiet;
	if (init_paths(s) || (s->L = sbi__state_new(&s->ctx, 1)) == NULL ||
	    (s->g = sbi_graph_alloc(SBI_VERSION)) == NULL) {
		print_error("out of memory");
		sbi_session_close(s);
		return NULL;
	}
	if (init_restriction(s)) {
		sbi_session_close(s);
		return NULL;
	}
	lua_State *L = s->L;
	lua_getglobal(L, "require");
	lua_pushstring(L, "sbi");
	if (sbi__pcall(L, 1, 0) != LUA_OK) {
		print_error(lua_tostring(L, -1));
		sbi_session_close(s);
		return NULL;
	}
	sbi__set_module_dir(L, s->recipe_dir);
	int bad = pass_settings(s, exit_code);
	if (!bad && sbi__load_recipe(L, o->recipe) != LUA_OK) {
		print_error(lua_tostring(L, -1));
		bad = 1;
	}
	if (!bad)
		bad = call_sbi(s, "_end", 0, 0);
	if (!bad) {
		lua_pushcfunction(L, build_graph_protected);
		lua_pushlightuserdata(L, s);
		if (sbi__pcall(L, 1, 0) != LUA_OK) {
			print_error(lua_tostring(L, -1));
			bad = 1;
		}
	}
	if (bad) {
		sbi_session_close(s);
		return NULL;
	}
	*exit_code = 0;
	return s;
}

void
sbi_session_close(sbi_session *s)
{
	if (s == NULL)
		return;
	/* Close Lua first: its Mats may borrow matrices owned by the graph. */
	if (s->L) {
		s->ctx.closing = 1; /* finalizers may not make userdata (sbi__refuse_closing) */
		lua_close(s->L);
	}
	sbi_graph_free(s->g);
	sbi_cache_close(s->cache);
	sbi_free(s->recipe_dir);
	sbi_free(s->recipe_name);
	sbi_free(s->cache_dir);
	sbi_free(s->out_dir);
	sbi_free(s->root);
	sbi_free(s);
}

/* Opens the cache directory, creating it. The directory is checked here
 * first so that the message names it, the reason and the way out. */
static sbi_cache *
open_cache(sbi_session *s, sbi_err *err)
{
	static const char *const sub[] = { "", "objects", "refs" };
	sbi_err e = { 0 };
	for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
		char *d = sub[i][0] ? sbi_path_join(s->cache_dir, sub[i]) : sbi_strdup(s->cache_dir);
		int rc = d ? sbi_fs_mkdirs(d, &e) : sbi_err_set(&e, SBI_ENOMEM, "out of memory");
		if (rc == SBI_OK && access(d, W_OK | X_OK) != 0)
			rc = sbi_err_set(&e, SBI_EIO, "%s is not writable: %s", d, strerror(errno));
		sbi_free(d);
		if (rc != SBI_OK) {
			sbi_err_set(err, rc, "cannot use cache directory %s (choose another with --cache DIR): %s",
			    s->cache_dir, e.msg);
			return NULL;
		}
	}
	sbi_cache *c = sbi_cache_open(s->cache_dir, &e);
	if (c == NULL)
		sbi_err_set(err, e.code, "%s", e.msg);
	return c;
}

/* ---- running ---- */

static int
run_node_protected(lua_State *L)
{
	sbi_session *s = lua_touserdata(L, 1);
	sbi_node *n = lua_touserdata(L, 2);
	sbi_artifact **out = lua_touserdata(L, 3);
	push_sbi(L);
	lua_getfield(L, -1, "_nodes");
	lua_geti(L, -1, (lua_Integer)n->id + 1); /* [.., node] */
	lua_getfield(L, -1, "run");
	lua_pushvalue(L, -2);                    /* [.., node, run, node] */
	lua_createtable(L, (int)n->ninputs, 0);
	for (size_t i = 0; i < n->ninputs; i++) {
		sbi__push_artifact(L, s->g->nodes[n->inputs[i]].art);
		lua_seti(L, -2, (lua_Integer)i + 1);
	}
	lua_call(L, 2, 1);                       /* [.., node, result] */
	*out = sbi__to_artifact(L, -1, n->label);
	return 0;
}

static int
run_node(void *ud, sbi_graph *g, sbi_node *n, sbi_artifact **out, sbi_err *err)
{
	sbi_session *s = ud;
	lua_State *L = s->L;
	if (!s->o.quiet)
		fprintf(stderr, "running %s\n", n->label);
	s->ctx.node = n;
	lua_pushcfunction(L, run_node_protected);
	lua_pushlightuserdata(L, s);
	lua_pushlightuserdata(L, n);
	lua_pushlightuserdata(L, out);
	int rc = sbi__pcall(L, 3, 0);
	s->ctx.node = NULL;
	if (rc == LUA_OK) { /* for the record of the files steps read */
		char key[SBI_KEY_HEX];
		sbi_key_hex(&n->key, key);
		if (lua_getfield(L, LUA_REGISTRYINDEX, "sbi.ran_keys") != LUA_TTABLE) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushvalue(L, -1);
			lua_setfield(L, LUA_REGISTRYINDEX, "sbi.ran_keys");
		}
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, key);
		lua_pop(L, 1);
	}
	if (rc != LUA_OK) {
		/* A position inside the stdlib means nothing to the recipe's
		 * author: replace it by the node's label (which names the
		 * recipe line), unless the message already starts with it. */
		const char *msg = lua_tostring(L, -1);
		if (msg == NULL)
			msg = "(error object is not a string)";
		if (strncmp(msg, "[stdlib]/", 9) == 0) {
			const char *colon = strchr(msg, ':');
			size_t k = colon ? strspn(colon + 1, "0123456789") : 0;
			if (colon && k > 0 && colon[1 + k] == ':')
				msg = colon + 1 + k + 1 + (colon[2 + k] == ' ');
		}
		if (strncmp(msg, n->label, strlen(n->label)) == 0)
			sbi_err_set(err, SBI_EINVAL, "%s", msg);
		else
			sbi_err_set(err, SBI_EINVAL, "%s: %s", n->label, msg);
		lua_pop(L, 1);
		return SBI_EINVAL;
	}
	return SBI_OK;
}

static void
warn_node(void *ud, sbi_node *n, const char *msg)
{
	fprintf(stderr, "sbirun: warning: %s: %s; recomputing\n", n->label, msg);
}

static const char *
state_name(const sbi_node *n)
{
	switch (n->state) {
	case SBI_NODE_CACHED: return "cached";
	case SBI_NODE_RAN: return "ran";
	case SBI_NODE_FAILED: return "failed";
	}
	return "not needed";
}

static json_t *
versions_json(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "sbirun", SBI_VERSION, "lua", LUA_RELEASE,
	    "gsl", GSL_VERSION, "openblas", openblas_get_config(), "libarchive", archive_version_string(),
	    "jansson", JANSSON_VERSION);
}

/* The integer opts.seed of node i, or -1. */
static lua_Integer
node_seed(lua_State *L, size_t i)
{
	push_sbi(L);
	lua_getfield(L, -1, "_nodes");
	lua_geti(L, -1, (lua_Integer)i + 1);
	lua_getfield(L, -1, "opts");
	lua_Integer seed = -1;
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "seed");
		if (lua_isinteger(L, -1))
			seed = lua_tointeger(L, -1);
		lua_pop(L, 1);
	}
	lua_pop(L, 4);
	return seed;
}

static json_t *
nodes_json(sbi_session *s)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < s->g->nnodes; i++) {
		sbi_node *n = &s->g->nodes[i];
		char key[SBI_KEY_HEX], art[SBI_KEY_HEX];
		sbi_key_hex(&n->key, key);
		sbi_key_hex(&n->art_hash, art);
		json_t *in = json_array();
		for (size_t k = 0; k < n->ninputs; k++)
			json_array_append_new(in, json_integer((json_int_t)n->inputs[k] + 1));
		json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:f, s:f, s:b}", "id", (json_int_t)i + 1,
		    "kind", n->kind, "label", n->label, "key", key, "state", state_name(n), "inputs", in,
		    "seconds", n->seconds, "cpu_seconds", n->cpu_seconds, "recomputed", n->recomputed);
		if (n->art)
			json_object_set_new(o, "artifact", json_string(art));
		lua_Integer seed = node_seed(s->L, i);
		if (seed >= 0)
			json_object_set_new(o, "seed", json_integer((json_int_t)seed));
		json_array_append_new(arr, o);
	}
	return arr;
}

/* Lua table at idx of string keys -> JSON object of strings/numbers. */
json_t *
sbi__table_json(lua_State *L, int idx)
{
	json_t *o = json_object();
	idx = lua_absindex(L, idx);
	if (!lua_istable(L, idx))
		return o;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) == LUA_TSTRING) {
			const char *k = lua_tostring(L, -2);
			if (lua_isinteger(L, -1))
				json_object_set_new(o, k, json_integer(lua_tointeger(L, -1)));
			else if (lua_type(L, -1) == LUA_TNUMBER)
				json_object_set_new(o, k, json_real(lua_tonumber(L, -1)));
			else if (lua_type(L, -1) == LUA_TSTRING)
				json_object_set_new(o, k, json_string(lua_tostring(L, -1)));
			else if (lua_type(L, -1) == LUA_TBOOLEAN)
				json_object_set_new(o, k, json_boolean(lua_toboolean(L, -1)));
		}
		lua_pop(L, 1);
	}
	return o;
}

/* Updates CACHE/reads.json, { "format": "sbirun-reads 1", "nodes": { key:
 * [ { path, rel, found } ] } }: for every step that ran, the files it read
 * through core.read_matrix / core.file_hash (sbirun bundle packs them). */
static void
write_reads_record(sbi_session *s)
{
	lua_State *L = s->L;
	if (lua_getfield(L, LUA_REGISTRYINDEX, "sbi.ran_keys") != LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	char *path = sbi_path_join(s->cache_dir, SBI_READS_RECORD);
	json_t *rec = path ? json_load_file(path, 0, NULL) : NULL, *nodes = json_object_get(rec, "nodes");
	if (!json_is_object(nodes)) {
		json_decref(rec);
		rec = json_pack("{s:s, s:{}}", "format", "sbirun-reads 1", "nodes");
		nodes = json_object_get(rec, "nodes");
	}
	lua_pushnil(L);
	while (nodes && lua_next(L, -2)) { /* [ran, key, true] */
		json_object_set_new(nodes, lua_tostring(L, -2), json_array());
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	if (nodes && lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_DATA_READS) == LUA_TTABLE) { /* [reads] */
		lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
		for (lua_Integer i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, i);
			lua_getfield(L, -1, "node");
			lua_getfield(L, -2, "path");
			lua_getfield(L, -3, "rel");
			lua_getfield(L, -4, "found"); /* [reads, e, node, path, rel, found] */
			json_t *list = lua_isstring(L, -4) ? json_object_get(nodes, lua_tostring(L, -4)) : NULL;
			if (json_is_array(list) && lua_isstring(L, -3) && lua_isstring(L, -1)) {
				json_t *o = json_pack("{s:s, s:s}", "path", lua_tostring(L, -3), "found", lua_tostring(L, -1));
				if (o && lua_isstring(L, -2))
					json_object_set_new(o, "rel", json_string(lua_tostring(L, -2)));
				json_array_append_new(list, o);
			}
			lua_pop(L, 5);
		}
	}
	lua_pop(L, 1);
	char *text = rec ? json_dumps(rec, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	sbi_err err = { 0 };
	if (text && path && sbi_fs_exists(s->cache_dir) &&
	    sbi_fs_write_atomic(path, text, strlen(text), &err) != SBI_OK)
		fprintf(stderr, "sbirun: warning: cannot write %s: %s\n", path, err.msg);
	free(text);
	json_decref(rec);
	sbi_free(path);
}

static int
write_run_json(sbi_session *s, const sbi_executor *x)
{
	lua_State *L = s->L;
	push_sbi(L);
	lua_getfield(L, -1, "_param_values");
	json_t *params = sbi__table_json(L, -1);
	lua_pop(L, 2);
	json_t *root = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:i, s:f}", "format", "sbirun-run 1",
	    "recipe", s->o.recipe, "cache", s->cache_dir, "versions", versions_json(), "params", params,
	    "nodes", nodes_json(s), "nodes_ran", (json_int_t)x->nran, "cache_hits", (json_int_t)x->nhits,
	    "jobs", s->o.jobs, "seconds", sbi_now() - s->t0);
	char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
	json_decref(root);
	if (text == NULL) {
		print_error("cannot build run.json");
		return 1;
	}
	char *path = sbi_path_join(s->out_dir, "run.json");
	sbi_err err = { 0 };
	int rc = path ? sbi_fs_write_atomic(path, text, strlen(text), &err) : SBI_ENOMEM;
	if (rc != SBI_OK)
		fprintf(stderr, "sbirun: error: cannot write run.json: %s\n", err.msg);
	free(text);
	sbi_free(path);
	return rc != SBI_OK;
}

/* Materializes every output and hands them to sbi._write_outputs. */
static int
produce_outputs(sbi_session *s, sbi_executor *x)
{
	lua_State *L = s->L;
	push_sbi(L);
	lua_getfield(L, -1, "_outputs");
	lua_remove(L, -2); /* [outputs] */
	lua_Integer n = luaL_len(L, -1);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, -1, i);
		lua_getfield(L, -1, "node");
		lua_getfield(L, -1, "_id");
		size_t id = (size_t)lua_tointeger(L, -1) - 1;
		lua_pop(L, 3);
		sbi_err err = { 0 };
		if (sbi_exec_materialize(x, id, &err) != SBI_OK) {
			print_error(err.msg);
			lua_pop(L, 1);
			return 1;
		}
	}
	lua_createtable(L, (int)n, 0); /* [outputs, arts] */
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, -2, i);
		lua_getfield(L, -1, "node");
		lua_getfield(L, -1, "_id");
		size_t id = (size_t)lua_tointeger(L, -1) - 1;
		lua_pop(L, 3);
		sbi__push_artifact(L, s->g->nodes[id].art);
		lua_seti(L, -2, i);
	}
	lua_remove(L, -2);
	lua_pushstring(L, s->out_dir);
	lua_pushboolean(L, s->o.quiet);
	return call_sbi(s, "_write_outputs", 3, 0);
}

/* Checks, before anything runs, that the output folder can be written: it,
 * or its nearest existing ancestor, must be a writable directory, and the
 * first missing directory must be creatable (probed with mkdir + rmdir). */
static int
check_out_dir(sbi_session *s)
{
	size_t len = strlen(s->out_dir), child = 0;
	char *p = sbi_malloc(2 * len + 4), *full = p ? p + len + 2 : NULL;
	if (p == NULL)
		return 0;
	memcpy(full, s->out_dir, len + 1);
	while (len > 1 && full[len - 1] == '/') /* trailing '/' */
		full[--len] = '\0';
	memcpy(p, full, len + 1);
	const char *why = NULL;
	int e = 0;
	struct stat st;
	for (;;) {
		if (stat(p, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				why = "is not a directory";
			else if (access(p, W_OK | X_OK) != 0) {
				e = errno;
				why = "is not writable";
			}
			break;
		}
		if ((errno != ENOENT && errno != ENOTDIR) || strcmp(p, ".") == 0) {
			e = errno;
			why = "cannot be used";
			break;
		}
		char *slash = strrchr(p, '/');
		child = strlen(p);
		if (slash == NULL || p[0] == '\0') {
			strcpy(p, ".");
			continue;
		}
		slash[slash == p] = '\0'; /* keep "/" itself */
	}
	if (why == NULL && child > 0) {
		memcpy(p, full, child);
		p[child] = '\0';
		if (mkdir(p, 0777) == 0)
			rmdir(p);
		else if (errno != EEXIST) {
			e = errno;
			why = "cannot be created";
		}
	}
	if (why)
		fprintf(stderr, "sbirun: error: cannot write the output folder %s (choose another with --out DIR): "
		    "%s %s%s%s\n", s->out_dir, p, why, e ? ": " : "", e ? strerror(e) : "");
	sbi_free(p);
	return why != NULL;
}

int
sbi_session_run(sbi_session *s)
{
	sbi_err err = { 0 };
	if ((s->cache = open_cache(s, &err)) == NULL) {
		print_error(err.msg);
		return 1;
	}
	if (check_out_dir(s))
		return 1;
	s->ctx.cache = s->cache;
	sbi_executor x = { s->g, s->cache, run_node, warn_node, s, 0, 0 };
	int rc = 0;
	for (size_t i = 0; s->o.run_all && rc == 0 && i < s->g->nnodes; i++) {
		if (sbi_exec_materialize(&x, i, &err) != SBI_OK) {
			print_error(err.msg);
			rc = 1;
		}
	}
	if (rc == 0)
		rc = produce_outputs(s, &x);
	write_reads_record(s);
	if (!s->o.quiet && rc == 0) {
		if (x.nran == 0)
			fprintf(stderr, "nothing to do: every needed node was cached (%zu cache hits)\n", x.nhits);
		else
			fprintf(stderr, "%zu nodes ran, %zu cache hits, %.2f s\n", x.nran, x.nhits, sbi_now() - s->t0);
	}
	sbi_err e2 = { 0 };
	if (sbi_fs_mkdirs(s->out_dir, &e2) == SBI_OK)
		rc |= write_run_json(s, &x);
	else if (rc == 0) {
		print_error(e2.msg);
		rc = 1;
	}
	return rc;
}

/* Marks in need[] every node an output depends on. */
static void
mark_needed(sbi_session *s, size_t id, unsigned char *need)
{
	if (need[id])
		return;
	need[id] = 1;
	for (size_t i = 0; i < s->g->nodes[id].ninputs; i++)
		mark_needed(s, s->g->nodes[id].inputs[i], need);
}

static int
may_run_when_sampling(const char *kind)
{
	size_t n = strlen(kind);
	return strcmp(kind, "observation") == 0 || (n > 7 && strcmp(kind + n - 7, ".sample") == 0);
}

int
sbi_session_sample(sbi_session *s)
{
	sbi_err err = { 0 };
	if ((s->cache = sbi_cache_open(s->cache_dir, &err)) == NULL) {
		print_error(err.msg);
		return 1;
	}
	unsigned char *need = sbi_calloc(s->g->nnodes ? s->g->nnodes : 1, 1);
	if (need == NULL)
		return 1;
	lua_State *L = s->L;
	push_sbi(L);
	lua_getfield(L, -1, "_outputs");
	for (lua_Integer i = 1; i <= luaL_len(L, -1); i++) {
		lua_geti(L, -1, i);
		lua_getfield(L, -1, "node");
		lua_getfield(L, -1, "_id");
		mark_needed(s, (size_t)lua_tointeger(L, -1) - 1, need);
		lua_pop(L, 3);
	}
	lua_pop(L, 2);
	int rc = 0;
	for (size_t i = 0; i < s->g->nnodes && rc == 0; i++) {
		sbi_node *n = &s->g->nodes[i];
		if (need[i] && !may_run_when_sampling(n->kind) && !sbi_cache_has(s->cache, &n->key)) {
			fprintf(stderr, "sbirun: error: %s is not trained or simulated yet (nothing cached for it); "
			    "`sbirun sample` only draws from trained estimators: run `sbirun %s` first\n", n->label,
			    s->o.recipe);
			rc = 1;
		}
	}
	sbi_free(need);
	sbi_cache_close(s->cache);
	s->cache = NULL;
	return rc ? rc : sbi_session_run(s);
}

/* ---- graph and clean ---- */

static void
node_states(sbi_session *s, int have_cache)
{
	for (size_t i = 0; i < s->g->nnodes; i++) {
		sbi_node *n = &s->g->nodes[i];
		n->state = have_cache && sbi_cache_has(s->cache, &n->key) ? SBI_NODE_CACHED : SBI_NODE_PENDING;
	}
}

static int
open_existing_cache(sbi_session *s)
{
	if (!sbi_fs_exists(s->cache_dir))
		return 0;
	sbi_err err = { 0 };
	s->cache = open_cache(s, &err);
	if (s->cache == NULL)
		fprintf(stderr, "sbirun: warning: %s\n", err.msg);
	return s->cache != NULL;
}

static void
print_text_graph(sbi_session *s)
{
	printf("%-4s %-18s %-12s %-8s %-10s %s\n", "id", "kind", "key", "state", "inputs", "label");
	for (size_t i = 0; i < s->g->nnodes; i++) {
		sbi_node *n = &s->g->nodes[i];
		char key[13], in[64] = "-";
		sbi_node_short_key(n, key);
		size_t k = 0;
		for (size_t j = 0; j < n->ninputs && k < sizeof in - 8; j++)
			k += (size_t)snprintf(in + k, sizeof in - k, "%s%zu", j ? "," : "", n->inputs[j] + 1);
		printf("%-4zu %-18s %-12s %-8s %-10s %s\n", i + 1, n->kind, key,
		    n->state == SBI_NODE_CACHED ? "cached" : "stale", in, n->label);
	}
}

static void
print_dot_graph(sbi_session *s)
{
	printf("digraph sbirun {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
	for (size_t i = 0; i < s->g->nnodes; i++) {
		sbi_node *n = &s->g->nodes[i];
		char key[13];
		sbi_node_short_key(n, key);
		printf("  n%zu [label=\"%s\\n%s\\n%s\", style=%s];\n", i + 1, n->kind, key,
		    n->state == SBI_NODE_CACHED ? "cached" : "stale",
		    n->state == SBI_NODE_CACHED ? "filled" : "solid");
		for (size_t j = 0; j < n->ninputs; j++)
			printf("  n%zu -> n%zu;\n", n->inputs[j] + 1, i + 1);
	}
	printf("}\n");
}

int
sbi_session_graph(sbi_session *s, const char *format)
{
	if (strcmp(format, "text") != 0 && strcmp(format, "dot") != 0) {
		fprintf(stderr, "sbirun: error: --format %s: expected text or dot\n", format);
		return 2;
	}
	node_states(s, open_existing_cache(s));
	if (strcmp(format, "dot") == 0)
		print_dot_graph(s);
	else
		print_text_graph(s);
	return 0;
}

int
sbi_session_clean(sbi_session *s)
{
	if (!open_existing_cache(s)) {
		fprintf(stderr, "nothing to clean: no cache at %s\n", s->cache_dir);
		return 0;
	}
	long refs = 0, objects = 0;
	for (size_t i = 0; i < s->g->nnodes; i++) {
		char hex[SBI_KEY_HEX];
		long r = 0;
		sbi_key_hex(&s->g->nodes[i].key, hex);
		if (sbi_cache_has(s->cache, &s->g->nodes[i].key))
			refs++;
		sbi_cache_remove(s->cache, &s->g->nodes[i].key);
		sbi_cache_remove_labelled(s->cache, hex, &r, NULL);
		refs += r;
	}
	sbi_err err = { 0 };
	if (sbi_cache_gc(s->cache, &objects, &err) != SBI_OK) {
		print_error(err.msg);
		return 1;
	}
	fprintf(stderr, "removed %ld cache entries and %ld artifacts from %s\n", refs, objects, s->cache_dir);
	return 0;
}

/* ---- access for other commands (bundle_cmd.c) ---- */

lua_State *
sbi_session_lua(sbi_session *s)
{
	return s->L;
}

sbi_graph *
sbi_session_get_graph(sbi_session *s)
{
	return s->g;
}

const sbi_session_opts *
sbi_session_get_opts(const sbi_session *s)
{
	return &s->o;
}

const char *
sbi_session_recipe_dir(const sbi_session *s)
{
	return s->recipe_dir;
}

const char *
sbi_session_cache_dir(const sbi_session *s)
{
	return s->cache_dir;
}

json_t *
sbi_session_versions_json(void)
{
	return versions_json();
}

long long
sbi_session_node_seed(sbi_session *s, size_t i)
{
	return (long long)node_seed(s->L, i);
}

const char *
sbi_session_restricted_root(const sbi_session *s)
{
	return s->root;
}
