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
#include <fcntl.h>
#include <sys/file.h>
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
	sbi_graph *g;     /* owned; the Lua state borrows it (ctx.g) */
	sbi_prov *prov;   /* owned; what the run read and loaded (ctx.prov) */
	sbi_cache *cache;
	char *recipe_dir, *recipe_name, *cache_dir, *out_dir; /* owned */
	char *root; /* owned: the real path a restricted recipe may read in, or NULL */
	double t0;
	int sampling; /* `sbirun sample`: only observations and *.sample steps may run */
};

/* Messages quote recipes, which may come from a bundle: control
 * characters other than newline and tab are escaped (sbi_bundle_escape,
 * on pieces cut between UTF-8 characters). */
static void
print_error(const char *msg)
{
	char piece[1024], shown[4 * sizeof piece + 8];
	fputs("sbirun: error: ", stderr);
	while (*msg) {
		size_t n = strcspn(msg, "\n\t"), k = n < sizeof piece - 1 ? n : sizeof piece - 1;
		size_t cut = k;
		while (k < n && k > 0 && ((unsigned char)msg[k] & 0xc0) == 0x80)
			k--;
		if (k == 0) /* no character starts in the piece (invalid UTF-8): cut anywhere */
			k = cut;
		memcpy(piece, msg, k);
		piece[k] = '\0';
		fputs(sbi_bundle_escape(piece, shown, sizeof shown), stderr);
		if (k == n && msg[n])
			fputc(msg[k++], stderr);
		msg += k;
	}
	fputc('\n', stderr);
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
 * output folder only (the registry keys read by sbi__check_read/write).
 * The paths it reads map to the bundled copies (sbi_prov_load_map). */

/* The unpacked bundle the folder real is in: the nearest of real and its
 * parents holding the marker (a recipe in a subfolder of an unpacked
 * bundle belongs to it too); owned, or NULL. The walk stops at a parent
 * owned by someone other than real's owner: a marker planted in a shared
 * folder (/tmp) must not adopt another user's project (and its cache). */
static char *
bundle_folder(const char *real)
{
	struct stat st0, st;
	char *d = stat(real, &st0) == 0 ? sbi_strdup(real) : NULL;
	while (d) {
		if (stat(d, &st) != 0 || st.st_uid != st0.st_uid)
			break;
		char *marker = sbi_path_join(d, SBI_BUNDLE_MARKER), *slash = strrchr(d, '/');
		int found = marker && sbi_fs_exists(marker);
		sbi_free(marker);
		if (found)
			return d;
		if (slash == NULL || (slash == d && d[1] == '\0'))
			break;
		slash[slash == d] = '\0'; /* "/a/b" -> "/a", "/a" -> "/" */
	}
	sbi_free(d);
	return NULL;
}

/* 1 when path (existing or not) is folder or inside it, by real paths. */
static int
inside(const char *path, const char *folder)
{
	char *real = realpath(path, NULL); /* a missing cache: judge by its parent */
	if (real == NULL) {
		char *copy = sbi_strdup(path);
		real = copy ? realpath(dirname(copy), NULL) : NULL;
		sbi_free(copy);
	}
	size_t n = strlen(folder);
	int in = real && strncmp(real, folder, n) == 0 && (real[n] == '/' || real[n] == '\0');
	free(real);
	return in;
}

static int
init_restriction(sbi_session *s)
{
	char *real = realpath(s->recipe_dir, NULL); /* NULL: no such folder, so no recipe to load */
	if (real == NULL)
		return 0;
	char *folder = bundle_folder(real);
	int nested = folder && strcmp(folder, real) != 0;
	free(real);
	char *file = folder ? NULL : realpath(s->o.recipe, NULL);
	if (file) { /* a link to a recipe in an unpacked bundle runs it restricted too */
		folder = bundle_folder(dirname(file));
		nested = folder != NULL;
		free(file);
	}
	if (folder == NULL)
		return 0;
	if (sbi_prov_load_map(s->prov, nested ? folder : s->recipe_dir) != SBI_OK) {
		sbi_free(folder);
		return 1;
	}
	if (nested && s->o.cache_dir == NULL) { /* the bundle's cache, not one beside the recipe */
		sbi_free(s->cache_dir);
		if ((s->cache_dir = sbi_path_join(folder, ".sbirun")) == NULL) {
			sbi_free(folder);
			return 1;
		}
	}
	if (s->o.trust) {
		sbi_free(folder);
		return 0;
	}
	if (s->o.cache_dir && !s->o.fresh_cache && !inside(s->o.cache_dir, folder)) {
		/* Hostile code must not write into a cache that trusted runs read. */
		fprintf(stderr, "sbirun: error: --cache %s: a recipe from a bundle runs restricted and uses only the "
		    "bundle's own cache (%s/.sbirun); drop --cache, or run it with --trust to lift this\n",
		    s->o.cache_dir, folder);
		sbi_free(folder);
		return 1;
	}
	s->root = folder;
	lua_pushstring(s->L, s->root);
	lua_setfield(s->L, LUA_REGISTRYINDEX, SBI_REG_ALLOWED_ROOT);
	lua_pushstring(s->L, s->out_dir);
	lua_setfield(s->L, LUA_REGISTRYINDEX, SBI_REG_ALLOWED_OUT);
	if (!s->o.quiet)
		fprintf(stderr, "%s is an unpacked bundle: its recipe runs restricted (it reads only files inside "
		    "it and writes only to %s; --trust lifts this)\n", nested ? s->root : s->recipe_dir, s->out_dir);
	return 0;
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
static sbi_graph *
alloc_graph(void)
{
	sbi_key k;
	char hex[SBI_KEY_HEX], id[256];
	stdlib_hash(&k);
	sbi_key_hex(&k, hex);
	snprintf(id, sizeof id, "%s stdlib %s code %s", SBI_VERSION, hex, sbi_code_hash);
	return sbi_graph_alloc(id);
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
	lua_pushstring(L, s->o.recipe);
	lua_pushstring(L, s->recipe_dir);
	return call_sbi(s, "_begin", 3, 0);
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
	if (init_paths(s) || (s->g = alloc_graph()) == NULL || (s->prov = sbi_prov_alloc(s->recipe_dir)) == NULL ||
	    (s->ctx.g = s->g, s->ctx.prov = s->prov, (s->L = sbi__state_new(&s->ctx, 1)) == NULL)) {
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
		lua_pushcfunction(L, sbi__graph_key);
		if (sbi__pcall(L, 0, 0) != LUA_OK) {
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
	/* Lua's views of artifacts hold their own references (l_core.c). */
	if (s->L) {
		s->ctx.closing = 1; /* finalizers may not make userdata (sbi__refuse_closing) */
		lua_close(s->L);
	}
	sbi_graph_free(s->g);
	sbi_prov_free(s->prov);
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
	sbi__push_node(L, n->id);                /* [.., node] */
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
	if (rc == LUA_OK && sbi_prov_add_ran(s->prov, &n->key) != SBI_OK) /* for the record of reads */
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
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

static int
may_run_when_sampling(const char *kind)
{
	size_t n = strlen(kind);
	return strcmp(kind, "observation") == 0 || (n > 7 && strcmp(kind + n - 7, ".sample") == 0);
}

static void
warn_node(void *ud, sbi_node *n, const char *msg)
{
	sbi_session *s = ud;
	int refused = s->sampling && !may_run_when_sampling(n->kind);
	fprintf(stderr, "sbirun: warning: %s: %s%s\n", n->label, msg, refused ? "" : "; recomputing");
}

/* `sample` promises that nothing is trained or simulated: a needed step
 * whose cached result is missing or was found damaged fails the run. */
static int
may_run(void *ud, sbi_node *n, sbi_err *err)
{
	sbi_session *s = ud;
	if (!s->sampling || may_run_when_sampling(n->kind))
		return SBI_OK;
	return sbi_err_set(err, SBI_ENOTFOUND, "%s has no usable cached result%s; `sbirun sample` only draws from "
	    "trained estimators and never trains or simulates: run `sbirun %s` first to recompute it", n->label,
	    n->recomputed ? " (it was damaged, see the warning above)" : "", s->o.recipe);
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
		json_t *o = json_pack("{s:I, s:o, s:o, s:s, s:s, s:o, s:f, s:f, s:b}", "id", (json_int_t)i + 1,
		    "kind", sbi__json_str(n->kind), "label", sbi__json_str(n->label), "key", key, "state",
		    state_name(n), "inputs", in, "seconds", n->seconds, "cpu_seconds", n->cpu_seconds, "recomputed",
		    n->recomputed);
		if (n->art)
			json_object_set_new(o, "artifact", json_string(art));
		if (n->seed >= 0)
			json_object_set_new(o, "seed", json_integer((json_int_t)n->seed));
		json_array_append_new(arr, o);
	}
	return arr;
}

json_t *
sbi__json_str(const char *s)
{
	json_t *j = json_string(s);
	if (j != NULL || s == NULL)
		return j;
	size_t len = strlen(s), k = 0;
	char *e = sbi_malloc(4 * len + 1);
	if (e == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = sbi_utf8_len(p);
		if (n == 0) {
			k += (size_t)snprintf(e + k, 5, "\\x%02x", *p++);
			continue;
		}
		memcpy(e + k, p, n);
		k += n;
		p += n;
	}
	e[k] = '\0';
	j = json_string(e);
	sbi_free(e);
	return j;
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
				json_object_set_new(o, k, sbi__json_str(lua_tostring(L, -1)));
			else if (lua_type(L, -1) == LUA_TBOOLEAN)
				json_object_set_new(o, k, json_boolean(lua_toboolean(L, -1)));
		}
		lua_pop(L, 1);
	}
	return o;
}

/* Updates the cache's record of the files each step read (for bundles). */
static void
write_reads_record(sbi_session *s)
{
	sbi_err err = { 0 };
	if (sbi_prov_write_record(s->prov, s->cache_dir, &err) != SBI_OK)
		fprintf(stderr, "sbirun: warning: cannot write %s/%s: %s\n", s->cache_dir, SBI_READS_RECORD, err.msg);
}

/* sbi._written (filled by report.write_outputs) as a JSON array: per
 * output its name and files { name: content hash }, or the write error. */
static json_t *
outputs_json(lua_State *L)
{
	json_t *arr = json_array();
	push_sbi(L);
	lua_getfield(L, -1, "_written"); /* [sbi, written?] */
	lua_Integer n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i); /* [sbi, written, e] */
		json_t *o = sbi__table_json(L, -1); /* name, error */
		if (lua_getfield(L, -1, "files") == LUA_TTABLE)
			json_object_set_new(o, "files", sbi__table_json(L, -1));
		lua_pop(L, 2);
		json_array_append_new(arr, o);
	}
	lua_pop(L, 2);
	return arr;
}

static int
write_run_json(sbi_session *s, const sbi_executor *x, int ok)
{
	lua_State *L = s->L;
	push_sbi(L);
	lua_getfield(L, -1, "_param_values");
	json_t *params = sbi__table_json(L, -1);
	lua_pop(L, 2);
	json_t *root = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:I, s:I, s:i, s:f}", "format",
	    "sbirun-run 1", "recipe", sbi__json_str(s->o.recipe), "cache", sbi__json_str(s->cache_dir),
	    "versions", versions_json(), "params", params, "nodes", nodes_json(s), "outputs", outputs_json(L),
	    "ok", ok, "nodes_ran", (json_int_t)x->nran, "cache_hits", (json_int_t)x->nhits, "jobs", s->o.jobs,
	    "seconds", sbi_now() - s->t0);
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

/* Materializes every output (this may run steps). */
static int
materialize_outputs(sbi_session *s, sbi_executor *x)
{
	for (size_t i = 0; i < s->g->noutputs; i++) {
		sbi_err err = { 0 };
		if (sbi_exec_materialize(x, s->g->outputs[i].node, &err) != SBI_OK) {
			print_error(err.msg);
			return 1;
		}
	}
	return 0;
}

/* Hands the materialized outputs to sbi._write_outputs. */
static int
write_outputs(sbi_session *s)
{
	lua_State *L = s->L;
	sbi__push_outputs(L);
	lua_createtable(L, (int)s->g->noutputs, 0); /* [outputs, arts] */
	for (size_t i = 0; i < s->g->noutputs; i++) {
		sbi__push_artifact(L, s->g->nodes[s->g->outputs[i].node].art);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_pushstring(L, s->out_dir);
	lua_pushboolean(L, s->o.quiet);
	return call_sbi(s, "_write_outputs", 4, 0);
}

/* Locks the output folder (an flock on the folder itself) while this run
 * writes its outputs and run.json, so that two runs into one folder write
 * one after the other and the folder holds one run's set. Returns the
 * descriptor to close, or -1 (then the run goes on unlocked). */
static int
lock_out_dir(sbi_session *s)
{
	for (int tries = 0; tries < 100; tries++) {
		int fd = open(s->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			if (tries == 0)
				fprintf(stderr, "sbirun: waiting for another run to finish writing the output folder %s\n",
				    s->out_dir);
			while (flock(fd, LOCK_EX) != 0)
				if (errno != EINTR) {
					close(fd);
					return -1;
				}
		}
		/* The lock counts only if the path still names the folder we
		 * locked (it may have been removed and made again meanwhile). */
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(s->out_dir, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return fd;
		close(fd);
		sbi_fs_mkdirs(s->out_dir, NULL);
	}
	return -1;
}

/* Checks, before anything runs, that the output folder can be written: it,
 * or its nearest existing ancestor, must be a writable directory, and the
 * first missing directory must be creatable (probed with mkdir). */
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
	/* The folder made by the probe stays: the run makes it anyway to write
	 * run.json, and removing it could remove the folder another run into
	 * the same place has just made and locked. */
	if (why == NULL && child > 0) {
		memcpy(p, full, child);
		p[child] = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST) {
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
	sbi_executor x = { .g = s->g, .cache = s->cache, .run = run_node, .warn = warn_node, .ud = s,
		.may_run = may_run };
	int rc = 0;
	for (size_t i = 0; s->o.run_all && rc == 0 && i < s->g->nnodes; i++) {
		if (sbi_exec_materialize(&x, i, &err) != SBI_OK) {
			print_error(err.msg);
			rc = 1;
		}
	}
	if (rc == 0)
		rc = materialize_outputs(s, &x);
	sbi_err e2 = { 0 };
	int made = sbi_fs_mkdirs(s->out_dir, &e2) == SBI_OK, lockfd = made ? lock_out_dir(s) : -1;
	if (rc == 0)
		rc = write_outputs(s);
	write_reads_record(s);
	if (!s->o.quiet && rc == 0) {
		if (x.nran == 0)
			fprintf(stderr, "nothing to do: every needed node was cached (%zu cache hits)\n", x.nhits);
		else
			fprintf(stderr, "%zu nodes ran, %zu cache hits, %.2f s\n", x.nran, x.nhits, sbi_now() - s->t0);
	}
	if (made)
		rc |= write_run_json(s, &x, rc == 0);
	else if (rc == 0) {
		print_error(e2.msg);
		rc = 1;
	}
	if (lockfd >= 0)
		close(lockfd);
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
	for (size_t i = 0; i < s->g->noutputs; i++)
		mark_needed(s, s->g->outputs[i].node, need);
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
	s->sampling = 1;
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

/* Opens the cache if it exists: for reading only (graph), or to write
 * (clean). Returns 1 when open, 0 when there is no cache, -1 after
 * printing why it cannot be used (e.g. a read-only cache for clean). */
static int
open_existing_cache(sbi_session *s, int readonly)
{
	if (!sbi_fs_exists(s->cache_dir))
		return 0;
	sbi_err err = { 0 };
	s->cache = readonly ? sbi_cache_open_readonly(s->cache_dir, &err) : open_cache(s, &err);
	if (s->cache == NULL)
		print_error(err.msg);
	return s->cache != NULL ? 1 : -1;
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
	int open = open_existing_cache(s, 1);
	if (open < 0)
		return 1;
	node_states(s, open);
	if (strcmp(format, "dot") == 0)
		print_dot_graph(s);
	else
		print_text_graph(s);
	return 0;
}

int
sbi_session_clean(sbi_session *s)
{
	int open = open_existing_cache(s, 0);
	if (open < 0)
		return 1;
	if (open == 0) {
		fprintf(stderr, "nothing to clean: no cache at %s\n", s->cache_dir);
		return 0;
	}
	long refs = 0, objects = 0;
	for (size_t i = 0; i < s->g->nnodes; i++) {
		long r = 0;
		if (sbi_cache_has(s->cache, &s->g->nodes[i].key))
			refs++;
		sbi_cache_remove(s->cache, &s->g->nodes[i].key);
		sbi_cache_remove_chunks(s->cache, &s->g->nodes[i].key, &r, NULL);
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

const sbi_prov *
sbi_session_prov(const sbi_session *s)
{
	return s->prov;
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

const char *
sbi_session_restricted_root(const sbi_session *s)
{
	return s->root;
}
