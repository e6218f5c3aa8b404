/* sbirun bundle / show / verify / unpack (see bundle_cmd.h). The engine
 * (engine/store/bundle.c) writes and reads archives; this file decides what goes
 * in: it reads the recipe's modules, observation files, parameters and
 * graph from the loaded session. replay unpacks into a temporary folder and
 * runs the recipe there as a session with an empty cache. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bundle_cmd.h"
#include "lstate.h"
#include "sbi/alloc.h"
#include "sbi/bundle.h"
#include "sbi/fsutil.h"
#include "sbi/provenance.h"
#include "sbi_config.h"

static int
errorf(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "sbirun: error: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\n");
	return 1;
}

/* s escaped for the terminal (sbi_bundle_escape): every string from a
 * bundle goes through it before it is printed. The result lives until
 * eight more calls. */
static const char *
E(const char *s)
{
	static char ring[8][2048];
	static unsigned next;
	return sbi_bundle_escape(s, ring[next++ % 8], sizeof ring[0]);
}

/* Appends " " and word, shell-quoted (sbi_bundle_shell_quote), to the
 * command *cmd (owned, grown); 1 when out of memory. */
static int
cmd_append(char **cmd, const char *word)
{
	char *q = sbi_bundle_shell_quote(word);
	size_t n = *cmd ? strlen(*cmd) : 0, m = q ? strlen(q) : 0;
	char *c = q ? sbi_realloc(*cmd, n + m + 2) : NULL;
	if (c == NULL) {
		sbi_free(q);
		return 1;
	}
	c[n] = n ? ' ' : '\0';
	memcpy(c + n + (n > 0), q, m + 1);
	sbi_free(q);
	*cmd = c;
	return 0;
}

/* Adds name <- src; prints the error and returns 1 on failure. */
static int
add_file(sbi_bundle_files *f, const char *name, const char *src)
{
	sbi_err err = { 0 };
	if (sbi_bundle_files_add(f, name, src, &err) != SBI_OK)
		return errorf("cannot bundle %s: %s", src, err.msg);
	return 0;
}

/* The recipe's module files -> recipe/<path relative to the recipe>. */
static int
add_modules(sbi_session *s, sbi_bundle_files *f, json_t *list)
{
	const sbi_prov *p = sbi_session_prov(s);
	const char *dir = sbi_session_recipe_dir(s);
	int bad = 0;
	for (size_t i = 0; i < sbi_prov_nmodules(p) && !bad; i++) {
		const char *path = sbi_prov_module(p, i), *rel = sbi_prov_recipe_rel(path, dir);
		char name[1100];
		snprintf(name, sizeof name, "recipe/%s", rel ? rel : "");
		if (rel == NULL || sbi_bundle_check_name(name) != NULL)
			fprintf(stderr, "sbirun: warning: module %s is not inside the recipe's folder; "
			    "it is not bundled\n", E(path));
		else if (!sbi_bundle_files_has(f, name)) {
			bad = add_file(f, name, path);
			json_array_append_new(list, json_pack("{s:s, s:s}", "path", path, "file", name));
		}
	}
	return bad;
}

/* The name under data/ of a file the recipe read as found: data/<rel>
 * when rel (a plain relative path) makes a valid entry name, else
 * data/external/<file name>, numbered when that is taken. */
static void
data_name(const sbi_bundle_files *f, const char *rel, const char *found, char name[1100])
{
	snprintf(name, 1100, "data/%s", rel ? rel : "");
	if (rel != NULL && sbi_bundle_check_name(name) == NULL)
		return;
	char *copy = sbi_strdup(found);
	const char *base = copy ? basename(copy) : "file";
	snprintf(name, 1100, "data/external/%s", base);
	for (int k = 2; sbi_bundle_files_has(f, name) && k < 1000; k++)
		snprintf(name, 1100, "data/external/%d-%s", k, base);
	sbi_free(copy);
}

/* Observation files -> data/<path as the recipe wrote it> when that is a
 * plain relative path, else data/external/<file name>. */
static int
add_data(sbi_session *s, sbi_bundle_files *f, json_t *byfound, json_t *list)
{
	const sbi_prov *p = sbi_session_prov(s);
	int bad = 0;
	for (size_t i = 0; i < sbi_prov_ndata(p) && !bad; i++) {
		const sbi_prov_data *d = sbi_prov_data_at(p, i);
		char name[1100];
		data_name(f, d->path, d->found, name);
		json_object_set_new(byfound, d->found, json_string(name));
		if (!sbi_bundle_files_has(f, name)) {
			bad = add_file(f, name, d->found);
			json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "path", d->path, "file", name,
			    "unpack", name + 5));
		}
	}
	return bad;
}

/* Adds one file read through core.read_matrix / core.file_hash: at
 * data/<rel> when the path was relative to the recipe's folder without
 * "..", else at data/external/<file name>; appends its map entry. */
static int
add_read(sbi_bundle_files *f, json_t *list, json_t *seen, json_t *byfound, const char *path, const char *rel,
    const char *found)
{
	char id[2200];
	snprintf(id, sizeof id, "%s\n%s", rel ? "rel" : "path", rel ? rel : path);
	if (json_object_get(seen, id))
		return 0;
	if (!sbi_fs_exists(found)) {
		fprintf(stderr, "sbirun: warning: %s (read by the recipe as %s) no longer exists; not bundled\n",
		    E(found), E(path));
		return 0;
	}
	char name[1100];
	const char *same = json_string_value(json_object_get(byfound, found));
	if (same) /* the same file, already bundled (an observation file, or another path to it) */
		snprintf(name, sizeof name, "%s", same);
	else
		data_name(f, rel, found, name);
	if (!sbi_bundle_files_has(f, name) && add_file(f, name, found))
		return 1;
	json_object_set_new(seen, id, json_true());
	json_object_set_new(byfound, found, json_string(name));
	json_t *o = json_pack("{s:s, s:s, s:s}", "path", path, "file", name, "unpack", name + 5);
	if (o && rel)
		json_object_set_new(o, "rel", json_string(rel));
	json_array_append_new(list, o);
	return 0;
}

/* A file the cache's record says a step read may be bundled only when its
 * real path is inside tree (the recipe's folder, or the unpacked bundle
 * it is in) or inside an --include: the record is a file anyone who
 * wrote to the cache could have forged. Prints why not and returns 1. */
static int
check_recorded(const char *found, const char *label, const char *tree, const sbi_bundle_cmd_opts *o,
    const char *record)
{
	char *real = realpath(found, NULL);
	int ok = real && tree && sbi_fs_within(real, tree);
	for (size_t i = 0; real && !ok && i < o->nincludes; i++) {
		char *inc = realpath(o->includes[i], NULL);
		ok = inc && sbi_fs_within(real, inc);
		free(inc);
	}
	if (!ok)
		fprintf(stderr, "sbirun: error: %s records that the step %s read %s, which is outside the recipe's "
		    "folder %s: not bundled; if it is meant to be shared, give it with --include PATH\n", E(record),
		    E(label), E(real ? real : found), E(tree ? tree : "?"));
	free(real);
	return !ok;
}

/* The data files the recipe read through core.read_matrix / core.file_hash:
 * while loading (this session's record) and while its steps ran (the
 * cache's record, SBI_READS_RECORD, checked by check_recorded). Steps the
 * record does not cover are named: what they read could not be known. */
static int
add_reads(sbi_session *s, const sbi_bundle_cmd_opts *o, sbi_bundle_files *f, json_t *byfound, json_t *list)
{
	const sbi_prov *p = sbi_session_prov(s);
	json_t *seen = json_object();
	int bad = 0;
	for (size_t i = 0; i < sbi_prov_nreads(p) && !bad; i++) {
		const sbi_prov_read *r = sbi_prov_read_at(p, i);
		bad = add_read(f, list, seen, byfound, r->path, r->rel, r->found);
	}
	sbi_graph *g = sbi_session_get_graph(s);
	char *rpath = sbi_path_join(sbi_session_cache_dir(s), SBI_READS_RECORD);
	json_t *rec = sbi_prov_record_load(sbi_session_cache_dir(s));
	const char *root = sbi_session_restricted_root(s);
	char *tree = root ? sbi_strdup(root) : realpath(sbi_session_recipe_dir(s), NULL); /* owned */
	size_t nunknown = 0;
	for (size_t i = 0; i < g->nnodes && !bad; i++) {
		json_t *reads = sbi_prov_record_reads(rec, &g->nodes[i].key), *e;
		size_t k;
		if (reads == NULL) {
			if (nunknown++ == 0)
				fprintf(stderr, "sbirun: note: these steps never ran with the cache %s, so the files they "
				    "read while running (through sbi.core.read_matrix or sbi.core.file_hash) could not be "
				    "known and are not bundled; run the recipe with this cache (or clean it and run) to "
				    "record them:\n", sbi_session_cache_dir(s));
			fprintf(stderr, "  %s\n", E(g->nodes[i].label));
			continue;
		}
		json_array_foreach(reads, k, e) {
			const char *path = json_string_value(json_object_get(e, "path"));
			const char *rel = json_string_value(json_object_get(e, "rel"));
			const char *found = json_string_value(json_object_get(e, "found"));
			/* A file this session saw (an observation file, a read while
			 * loading) is known; one only the record names is checked. */
			if (path && found && sbi_fs_exists(found) && json_object_get(byfound, found) == NULL &&
			    (bad = check_recorded(found, g->nodes[i].label, tree, o, rpath)))
				break;
			if (path && found && (bad = add_read(f, list, seen, byfound, path, rel, found)))
				break;
		}
	}
	if (root)
		sbi_free(tree);
	else
		free(tree);
	json_decref(rec);
	sbi_free(rpath);
	json_decref(seen);
	return bad;
}

/* sbi._param_values as a JSON object. */
static json_t *
params_json(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_getfield(L, -1, "sbi");
	json_t *o = lua_istable(L, -1) && lua_getfield(L, -1, "_param_values") == LUA_TTABLE
			? sbi__table_json(L, -1) : json_object();
	lua_settop(L, 0);
	return o;
}

/* The plugins and programs the recipe's simulators run (stdlib/sbi/
 * simulate.lua's natives), a new array: per file its kind, its path as the
 * recipe wrote it, its blake2b (the binary itself is never bundled) and the
 * sources the bundle carries for it. */
static json_t *
natives_json(lua_State *L)
{
	json_t *arr = json_array();
	int top = lua_gettop(L);
	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_getfield(L, -1, "sbi.simulate"); /* [.., loaded, simulate] */
	lua_Integer n = lua_istable(L, -1) && lua_getfield(L, -1, "natives") == LUA_TTABLE
				? (lua_Integer)lua_rawlen(L, -1) : 0;
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);                      /* [.., natives, e] */
		json_t *o = sbi__table_json(L, -1), *src = json_array();
		lua_getfield(L, -1, "sources");             /* [.., natives, e, sources] */
		for (lua_Integer k = 1; lua_istable(L, -1) && k <= (lua_Integer)lua_rawlen(L, -1); k++) {
			lua_rawgeti(L, -1, k);
			if (lua_type(L, -1) == LUA_TSTRING)
				json_array_append_new(src, sbi__json_str(lua_tostring(L, -1)));
			lua_pop(L, 1);
		}
		json_object_set_new(o, "sources", src);
		json_array_append_new(arr, o);
		lua_pop(L, 2);
	}
	lua_settop(L, top);
	return arr;
}

/* Adds the cached artifacts of the graph's nodes (and the chunks of
 * simulate nodes); fills the manifest's nodes. */
static int
add_cache(sbi_session *s, sbi_bundle_files *f, json_t *nodes, int without_sims, size_t *ncached)
{
	sbi_graph *g = sbi_session_get_graph(s);
	const char *cdir = sbi_session_cache_dir(s);
	sbi_cache *lock = NULL;
	sbi_err err = { 0 };
	if (sbi_fs_exists(cdir) && (lock = sbi_cache_open(cdir, &err)) == NULL)
		return errorf("%s%s", err.msg, "");
	for (size_t i = 0; i < g->nnodes; i++) {
		sbi_node *n = &g->nodes[i];
		char key[SBI_KEY_HEX], art[SBI_KEY_HEX];
		sbi_key_hex(&n->key, key);
		json_t *in = json_array();
		for (size_t k = 0; k < n->ninputs; k++)
			json_array_append_new(in, json_integer((json_int_t)n->inputs[k] + 1));
		json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:o}", "id", (json_int_t)i + 1, "kind", n->kind,
		    "label", n->label, "key", key, "inputs", in);
		if (n->seed >= 0)
			json_object_set_new(o, "seed", json_integer((json_int_t)n->seed));
		int sim = strcmp(n->kind, "simulate") == 0;
		if (lock && !(sim && without_sims)) {
			sbi_key obj;
			err = (sbi_err){ 0 };
			int rc = sbi_bundle_add_cached(f, cdir, &n->key, &obj, &err);
			if (rc == SBI_OK) {
				sbi_key_hex(&obj, art);
				json_object_set_new(o, "artifact", json_string(art));
				(*ncached)++;
			} else if (rc == SBI_ECORRUPT)
				fprintf(stderr, "sbirun: warning: %s: %s; not bundled (run the recipe to repair it)\n",
				    E(n->label), E(err.msg));
			else if (rc != SBI_ENOTFOUND) {
				json_decref(o);
				sbi_cache_close(lock);
				return errorf("%s%s", err.msg, "");
			}
			long nchunks = 0;
			if (sim && sbi_bundle_add_chunks(f, cdir, &n->key, &nchunks, &err) != SBI_OK) {
				json_decref(o);
				sbi_cache_close(lock);
				return errorf("%s%s", err.msg, "");
			}
			if (sim)
				json_object_set_new(o, "chunks", json_integer(nchunks));
		}
		json_array_append_new(nodes, o);
	}
	sbi_cache_close(lock);
	return 0;
}

/* Every --include must exist. */
static int
check_includes(const sbi_bundle_cmd_opts *o)
{
	for (size_t i = 0; i < o->nincludes; i++)
		if (!sbi_fs_exists(o->includes[i]))
			return errorf("--include %s: %s", o->includes[i], "no such file or folder");
	return 0;
}

int
sbi_bundle_cmd_create(sbi_session *s, const sbi_bundle_cmd_opts *o)
{
	int comp;
	if (sbi_bundle_compression(o->compression ? o->compression : "zstd", &comp) != SBI_OK) {
		fprintf(stderr, "sbirun: --compression %s: expected zstd, gzip, xz or none\n", o->compression);
		return 2;
	}
	const sbi_session_opts *so = sbi_session_get_opts(s);
	sbi_bundle_files f = { 0 };
	char *rcopy = sbi_strdup(so->recipe), rname[1100];
	if (rcopy == NULL)
		return errorf("%s%s", "out of memory", "");
	snprintf(rname, sizeof rname, "recipe/%s", basename(rcopy));
	sbi_free(rcopy);

	time_t now = time(NULL);
	char created[32];
	strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	struct utsname u;
	if (uname(&u) != 0)
		memset(&u, 0, sizeof u);
	json_t *sets = json_array(), *modules = json_array(), *data = json_array(), *nodes = json_array();
	json_t *reads = json_array(), *byfound = json_object();
	int bad = 0;
	for (size_t i = 0; i < so->nsets; i++) {
		json_t *v = json_string(so->sets[i]); /* NULL when not UTF-8: replay would run without it */
		if (v == NULL && !bad)
			bad = errorf("--set %s: %s", E(so->sets[i]), "not valid UTF-8, which a bundle's manifest (JSON) "
			    "cannot hold; not bundled");
		json_array_append_new(sets, v);
	}
	json_t *without = json_array();
	if (o->without_simulations)
		json_array_append_new(without, json_string("simulations"));
	size_t ncached = 0;
	bad = bad || add_file(&f, rname, so->recipe) || add_modules(s, &f, modules) || add_data(s, &f, byfound, data) ||
	    check_includes(o) || add_reads(s, o, &f, byfound, reads) ||
	    add_cache(s, &f, nodes, o->without_simulations, &ncached);
	json_t *m = json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s}, s:o, s:o, s:o, s:o, "
	    "s:o, s:o, s:o, s:s}",
	    "format", SBI_BUNDLE_FORMAT, "sbirun", SBI_VERSION, "created", created,
	    "versions", sbi_session_versions_json(),
	    "platform", "sysname", u.sysname, "release", u.release, "version", u.version, "machine", u.machine,
	    "recipe", "path", so->recipe, "file", rname,
	    "sets", sets, "params", params_json(sbi_session_lua(s)), "modules", modules, "data", data,
	    "reads", reads, "without", without, "nodes", nodes, "compression", o->compression ? o->compression : "zstd");
	json_t *natives = natives_json(sbi_session_lua(s));
	if (m && json_array_size(natives) > 0) /* only then: other manifests stay as they were */
		json_object_set(m, "native", natives);
	json_decref(natives);
	sbi_err err = { 0 };
	if (!bad && m == NULL)
		bad = errorf("%s%s", "cannot build the manifest", "");
	if (!bad && sbi_bundle_write(o->output, comp, m, &f, &err) != SBI_OK)
		bad = errorf("%s%s", err.msg, "");
	if (!bad) {
		unsigned long long total = 0;
		for (size_t i = 0; i < f.n; i++)
			total += f.v[i].size;
		fprintf(stderr, "wrote %s: %zu files, %llu bytes before compression; %zu of %zu steps cached\n",
		    o->output, f.n, total, ncached, sbi_session_get_graph(s)->nnodes);
	}
	json_decref(m);
	json_decref(byfound);
	sbi_bundle_files_clear(&f);
	return bad;
}

static const char *
str_of(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "?";
}

int
sbi_bundle_cmd_show(const char *path, const sbi_bundle_limits *lim)
{
	json_t *m = NULL;
	sbi_err err = { 0 };
	if (sbi_bundle_read_manifest(path, lim, &m, &err) != SBI_OK)
		return errorf("%s%s", err.msg, "");
	json_t *plat = json_object_get(m, "platform"), *recipe = json_object_get(m, "recipe"), *v;
	size_t i;
	printf("bundle    %s (%s)\n", E(path), E(str_of(m, "format")));
	printf("created   %s with sbirun %s on %s %s %s\n", E(str_of(m, "created")), E(str_of(m, "sbirun")),
	    E(str_of(plat, "sysname")), E(str_of(plat, "release")), E(str_of(plat, "machine")));
	printf("recipe    %s (from %s)\n", E(str_of(recipe, "file")), E(str_of(recipe, "path")));
	printf("--set    ");
	json_array_foreach(json_object_get(m, "sets"), i, v)
		printf(" %s", E(json_string_value(v) ? json_string_value(v) : "?"));
	printf("%s\n", json_array_size(json_object_get(m, "sets")) ? "" : " (none)");
	json_array_foreach(json_object_get(m, "without"), i, v)
		printf("without   %s\n", E(json_string_value(v) ? json_string_value(v) : "?"));
	size_t counts[4] = { 0 };
	json_int_t bytes = 0;
	json_array_foreach(json_object_get(m, "files"), i, v) {
		const char *n = str_of(v, "name");
		counts[strncmp(n, "recipe/", 7) == 0 ? 0 : strncmp(n, "data/", 5) == 0 ? 1 :
		    strncmp(n, "cache/objects/", 14) == 0 ? 2 : 3]++;
		bytes += json_integer_value(json_object_get(v, "size"));
	}
	printf("files     %zu: %zu recipe and modules, %zu data, %zu artifacts, %zu refs; %lld bytes\n",
	    json_array_size(json_object_get(m, "files")), counts[0], counts[1], counts[2], counts[3],
	    (long long)bytes);
	printf("restrict  once unpacked, the recipe runs restricted: it reads only files inside its folder "
	    "and writes only to the output folder (--trust lifts this)\n");
	json_array_foreach(json_object_get(m, "native"), i, v) {
		printf("native    %s %s, blake2b %.12s: not in the bundle (build it from:", E(str_of(v, "kind")),
		    E(str_of(v, "path")), E(str_of(v, "blake2b")));
		size_t k;
		json_t *src;
		json_array_foreach(json_object_get(v, "sources"), k, src)
			printf(" %s", E(json_string_value(src) ? json_string_value(src) : "?"));
		printf("%s); it runs only with --allow-native\n", json_array_size(json_object_get(v, "sources")) ? ""
		    : " no source given");
	}
	printf("\n%-4s %-18s %-12s %-12s %s\n", "id", "kind", "key", "artifact", "label");
	json_array_foreach(json_object_get(m, "nodes"), i, v) {
		const char *art = json_string_value(json_object_get(v, "artifact"));
		printf("%-4lld %-18s %-12.12s %-12.12s %s\n", (long long)json_integer_value(json_object_get(v, "id")),
		    E(str_of(v, "kind")), E(str_of(v, "key")), E(art ? art : "-"), E(str_of(v, "label")));
	}
	json_decref(m);
	return 0;
}

int
sbi_bundle_cmd_verify(const char *path, const sbi_bundle_limits *lim)
{
	sbi_bundle_problems p = { 0 };
	sbi_err err = { 0 };
	int rc = sbi_bundle_verify(path, lim, &p, &err);
	if (rc == SBI_OK)
		printf("%s: ok\n", E(path));
	else if (p.n == 0)
		errorf("%s%s", err.msg, "");
	else {
		for (size_t i = 0; i < p.n; i++)
			printf("%s: %s\n", E(path), p.msg[i]); /* already escaped by the engine */
		fprintf(stderr, "sbirun: error: %s failed verification: %zu problem%s\n", E(path), p.n,
		    p.n == 1 ? "" : "s");
	}
	sbi_bundle_problems_clear(&p);
	return rc == SBI_OK ? 0 : 1;
}

/* The command that re-runs an unpacked bundle from its cache, as one
 * string to print: the recipe with the bundle's --set values, an
 * observation file given with --set re-pointed at dir/<its unpack>; every
 * word shell-quoted. Owned; NULL when out of memory. */
static char *
rerun_command(json_t *m, const char *dir)
{
	const char *file = str_of(json_object_get(m, "recipe"), "file");
	char *cmd = NULL, *word = NULL;
	size_t i, j, n = strlen(dir) + strlen(file) + 2;
	int bad = cmd_append(&cmd, "sbirun") || (word = sbi_malloc(n)) == NULL;
	if (!bad) {
		snprintf(word, n, "%s/%s", dir, file + 7); /* recipe.file is recipe/... (engine checks) */
		bad = cmd_append(&cmd, word);
		sbi_free(word);
	}
	json_t *v, *d;
	json_array_foreach(json_object_get(m, "sets"), i, v) {
		const char *kv = json_string_value(v), *eq = kv ? strchr(kv, '=') : NULL;
		if (kv == NULL || bad)
			continue;
		word = NULL;
		json_array_foreach(json_object_get(m, "data"), j, d)
			if (eq && word == NULL && strcmp(eq + 1, str_of(d, "path")) == 0) {
				n = strlen(kv) + strlen(str_of(d, "unpack")) + 2;
				if ((word = sbi_malloc(n)) != NULL)
					snprintf(word, n, "%.*s=%s", (int)(eq - kv), kv, str_of(d, "unpack"));
			}
		bad = cmd_append(&cmd, "--set") || cmd_append(&cmd, word ? word : kv);
		sbi_free(word);
	}
	if (bad) {
		sbi_free(cmd);
		return NULL;
	}
	return cmd;
}

int
sbi_bundle_cmd_unpack(const char *path, const char *dir, const sbi_bundle_limits *lim)
{
	json_t *m = NULL;
	sbi_err err = { 0 };
	if (sbi_bundle_unpack(path, dir, lim, &m, &err) != SBI_OK)
		return errorf("%s%s", err.msg, "");
	char *cmd = rerun_command(m, dir), *shown = cmd ? sbi_malloc(4 * strlen(cmd) + 8) : NULL;
	fprintf(stderr, "unpacked %s into %s; to re-run it from the cache:\n  %s\n", E(path), E(dir),
	    shown ? sbi_bundle_escape(cmd, shown, 4 * strlen(cmd) + 8) : "(out of memory)");
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(m, "native"), i, v) /* docs/simulators.md#bundles */
		fprintf(stderr, "  (its simulator %s %s is not in the bundle: build it from its sources, check them, "
		    "and add --allow-native)\n", E(str_of(v, "kind")), E(str_of(v, "path")));
	sbi_free(shown);
	sbi_free(cmd);
	json_decref(m);
	return 0;
}

/* The bundle's --set values, an observation file's value re-pointed at
 * dir/<where unpack wrote it>; each string is owned (free with sbi_free). */
static char **
replay_sets(json_t *m, const char *dir, size_t *n)
{
	json_t *sets = json_object_get(m, "sets"), *v, *d;
	size_t i, j;
	char **out = sbi_calloc(json_array_size(sets) + 1, sizeof *out);
	*n = 0;
	if (out == NULL)
		return NULL;
	json_array_foreach(sets, i, v) {
		const char *kv = json_string_value(v), *eq = kv ? strchr(kv, '=') : NULL;
		if (kv == NULL)
			continue;
		char *buf = NULL;
		json_array_foreach(json_object_get(m, "data"), j, d)
			if (buf == NULL && eq && strcmp(eq + 1, str_of(d, "path")) == 0) {
				size_t len = strlen(kv) + strlen(dir) + strlen(str_of(d, "unpack")) + 3;
				if ((buf = sbi_malloc(len)) != NULL)
					snprintf(buf, len, "%.*s=%s/%s", (int)(eq - kv), kv, dir, str_of(d, "unpack"));
			}
		if (buf == NULL)
			buf = sbi_strdup(kv);
		if ((out[*n] = buf) != NULL)
			(*n)++;
	}
	return out;
}

/* 1 when the bundled artifact want (in the unpacked cache of dir) and the
 * replayed one got (in cache) hold the same values: they differ only by
 * the key, as under another sbirun build or stdlib. */
static int
same_contents(const char *dir, const char *cache, const char *want, const sbi_key *got)
{
	sbi_key wk, a, b;
	if (sbi_key_from_hex(want, &wk) != SBI_OK)
		return 0;
	char *bundled_dir = sbi_path_join(dir, ".sbirun/objects"), *replay_dir = sbi_path_join(cache, "objects");
	char *pa = bundled_dir ? sbi_artifact_path(bundled_dir, &wk) : NULL; /* owned */
	char *pb = replay_dir ? sbi_artifact_path(replay_dir, got) : NULL;   /* owned */
	int same = pa && pb && sbi_artifact_content_hash(pa, &a, NULL) == SBI_OK &&
	    sbi_artifact_content_hash(pb, &b, NULL) == SBI_OK && sbi_key_equal(&a, &b);
	sbi_free(pa);
	sbi_free(pb);
	sbi_free(bundled_dir);
	sbi_free(replay_dir);
	return same;
}

/* Prints the table of replay and returns the number of bundled artifacts
 * that were not reproduced; *nrekeyed counts those reproduced under another
 * key. dir is the unpacked bundle, cache the replay's cache. */
static size_t
replay_table(sbi_graph *g, json_t *m, const char *dir, const char *cache, size_t *nbundled, size_t *nrekeyed)
{
	json_t *nodes = json_object_get(m, "nodes");
	size_t bad = 0;
	*nbundled = 0;
	*nrekeyed = 0;
	printf("\n%-4s %-18s %-14s %-12s %-12s %s\n", "id", "kind", "result", "bundled", "replayed", "label");
	for (size_t i = 0; i < json_array_size(nodes); i++) {
		json_t *mn = json_array_get(nodes, i);
		const char *want = json_string_value(json_object_get(mn, "artifact")), *result;
		sbi_node *n = g && i < g->nnodes ? &g->nodes[i] : NULL;
		int made = n && n->art != NULL;
		char got[SBI_KEY_HEX] = "-", key[SBI_KEY_HEX] = "";
		if (made)
			sbi_key_hex(&n->art_hash, got);
		if (n)
			sbi_key_hex(&n->key, key);
		int rekeyed = made && want && n && strcmp(want, got) != 0 && strcmp(key, str_of(mn, "key")) != 0 &&
		    same_contents(dir, cache, want, &n->art_hash);
		if (want == NULL)
			result = "not in bundle";
		else if (!made)
			result = "not replayed";
		else if (strcmp(want, got) == 0 || rekeyed)
			result = "identical";
		else
			result = "differs";
		if (want) {
			(*nbundled)++;
			*nrekeyed += (size_t)rekeyed;
			bad += !made || (strcmp(want, got) != 0 && !rekeyed);
		}
		printf("%-4zu %-18s %-14s %-12.12s %-12.12s %s%s\n", i + 1, E(str_of(mn, "kind")), result,
		    E(want ? want : "-"), got, E(str_of(mn, "label")),
		    n && strcmp(key, str_of(mn, "key")) != 0 ? " (its key differs from the bundle's)" : "");
	}
	if (g && g->nnodes != json_array_size(nodes)) {
		printf("the recipe has %zu steps, the bundle %zu\n", g->nnodes, json_array_size(nodes));
		bad++;
	}
	return bad;
}

/* Runs the replay in root (the child process of sbi_bundle_cmd_replay);
 * returns the exit code. */
static int
replay_in(const char *root, const char *path, const sbi_session_opts *uo, const sbi_bundle_limits *lim)
{
	char dir[4200], cache[4200], out[4200], recipe[8400];
	snprintf(dir, sizeof dir, "%s/bundle", root);
	snprintf(cache, sizeof cache, "%s/cache", root);
	snprintf(out, sizeof out, "%s/out", root);
	json_t *m = NULL, *v;
	sbi_err err = { 0 };
	int code = 1;
	if (sbi_bundle_unpack(path, dir, lim, &m, &err) != SBI_OK)
		return errorf("%s%s", err.msg, "");
	size_t i, nart = 0;
	json_array_foreach(json_object_get(m, "nodes"), i, v)
		nart += json_string_value(json_object_get(v, "artifact")) != NULL;
	if (nart == 0) {
		fprintf(stderr, "sbirun: error: replay of %s: the bundle holds no artifacts, so there is nothing to "
		    "compare (bundle the recipe after running it)\n", E(path));
		json_decref(m);
		return 1;
	}
	const char *file = str_of(json_object_get(m, "recipe"), "file");
	snprintf(recipe, sizeof recipe, "%s/%s", dir, file + 7); /* recipe/... (the engine checked) */
	size_t nsets = 0;
	char **sets = replay_sets(m, dir, &nsets);
	sbi_session_opts o = *uo;
	o.recipe = recipe;
	o.sets = (const char **)sets;
	o.nsets = nsets;
	o.cache_dir = cache;
	o.out_dir = uo->out_dir ? uo->out_dir : out;
	o.run_all = 1;
	o.fresh_cache = 1;
	if (!o.quiet)
		fprintf(stderr, "replaying %s in %s with an empty cache\n", E(path), root);
	sbi_session *s = sets ? sbi_session_load(&o, &code) : NULL;
	int ran = s ? sbi_session_run(s) : 1;
	size_t nbundled = 0, nrekeyed = 0;
	size_t bad = replay_table(s ? sbi_session_get_graph(s) : NULL, m, dir, cache, &nbundled, &nrekeyed);
	if (ran != 0)
		fprintf(stderr, "sbirun: error: replay of %s failed: the recipe did not run to the end\n", E(path));
	else if (bad)
		fprintf(stderr, "sbirun: error: replay of %s: %zu of %zu bundled artifacts were not reproduced\n",
		    E(path), bad, nbundled);
	else if (nrekeyed)
		fprintf(stderr, "replay of %s: all %zu bundled artifacts reproduced bit for bit (%zu of them under "
		    "another key: this sbirun's code or stdlib differs from the one that made the bundle)\n", E(path),
		    nbundled, nrekeyed);
	else
		fprintf(stderr, "replay of %s: all %zu bundled artifacts reproduced bit for bit\n", E(path), nbundled);
	code = ran != 0 || bad ? 1 : 0;
	sbi_session_close(s);
	for (size_t k = 0; sets && k < nsets; k++)
		sbi_free(sets[k]);
	sbi_free(sets);
	json_decref(m);
	return code;
}

#define REPLAY_PREFIX "sbirun-replay-"

/* Removes the replay folders in tmp (REPLAY_PREFIX<pid>-XXXXXX) of this
 * user whose process is gone (killed with SIGKILL, or the machine
 * stopped). */
static void
remove_stale(const char *tmp, int quiet)
{
	DIR *d = opendir(tmp);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		char *end;
		if (strncmp(e->d_name, REPLAY_PREFIX, strlen(REPLAY_PREFIX)) != 0)
			continue;
		long pid = strtol(e->d_name + strlen(REPLAY_PREFIX), &end, 10);
		if (pid <= 0 || *end != '-' || strlen(end) != 7 || pid == (long)getpid() ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char *p = sbi_path_join(tmp, e->d_name);
		struct stat st;
		if (p && lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid()) {
			sbi_fs_remove_tree(p);
			if (!quiet)
				fprintf(stderr, "removed %s, left by an interrupted replay (process %ld)\n", p, pid);
		}
		sbi_free(p);
	}
	if (d)
		closedir(d);
}

static volatile sig_atomic_t replay_signal;
static volatile pid_t replay_child;

static void
forward_signal(int sig)
{
	replay_signal = sig;
	if (replay_child > 0)
		kill(replay_child, sig);
}

int
sbi_bundle_cmd_replay(const char *path, const sbi_session_opts *uo, const sbi_bundle_limits *lim)
{
	const char *tmpdir = getenv("TMPDIR");
	char root[4096];
	tmpdir = tmpdir && *tmpdir ? tmpdir : "/tmp";
	remove_stale(tmpdir, uo->quiet);
	snprintf(root, sizeof root, "%s/" REPLAY_PREFIX "%ld-XXXXXX", tmpdir, (long)getpid());
	if (mkdtemp(root) == NULL)
		return errorf("replay: cannot create a temporary folder %s: %s", root, strerror(errno));
	/* The work runs in a child, so that the folder is removed however it
	 * ends: a signal to this process is passed on, and it cleans up. */
	struct sigaction sa = { 0 }, old[3];
	const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	sa.sa_handler = forward_signal;
	sigemptyset(&sa.sa_mask);
	replay_signal = 0;
	replay_child = 0;
	for (int k = 0; k < 3; k++) { /* a signal ignored (as SIGINT in a background job) stays ignored */
		sigaction(sigs[k], NULL, &old[k]);
		if (old[k].sa_handler != SIG_IGN)
			sigaction(sigs[k], &sa, NULL);
	}
	fflush(stdout);
	fflush(stderr);
	/* The child's --jobs workers, orphaned when it dies, come back to this
	 * process, which reaps them before removing the folder they write in. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	pid_t parent = getpid(), pid = fork();
	if (pid == 0) {
		prctl(PR_SET_CHILD_SUBREAPER, 0);
		for (int k = 0; k < 3; k++)
			sigaction(sigs[k], &old[k], NULL);
		/* Killed with SIGKILL, the parent cannot pass it on: die with it
		 * (the next replay removes the folder). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		int code = replay_signal ? 1 : replay_in(root, path, uo, lim);
		fflush(stdout);
		exit(code);
	}
	replay_child = pid;
	if (pid > 0 && replay_signal) /* arrived before replay_child was set */
		kill(pid, replay_signal);
	int status = 0, code = 1;
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (pid < 0)
		errorf("replay: cannot start: %s%s", strerror(errno), "");
	else if (WIFEXITED(status))
		code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status) && !replay_signal)
		fprintf(stderr, "sbirun: error: replay of %s: killed by signal %d (%s)\n", E(path), WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	while (pid > 0 && (waitpid(-1, NULL, 0) > 0 || errno == EINTR)) /* orphaned workers (they die with */
		;                                                           /* the child: PR_SET_PDEATHSIG) */
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	sbi_fs_remove_tree(root);
	for (int k = 0; k < 3; k++)
		sigaction(sigs[k], &old[k], NULL);
	if (replay_signal) { /* die of it, as without the handler */
		signal(replay_signal, SIG_DFL);
		raise(replay_signal);
	}
	return code;
}
