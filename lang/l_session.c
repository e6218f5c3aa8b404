/* Sessions: load a recipe into a sandboxed Lua state (its paths, the
 * restriction of a recipe from an unpacked bundle, --set values), with
 * the graph it declares keyed; the commands are in l_run.c, run.json and
 * the printed graph in l_runjson.c (see session.h). */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lnative.h"
#include "lsession.h"
#include "sbi/alloc.h"
#include "sbi/bundle.h"
#include "sbi/fsutil.h"
#include "sbi/progress.h"

/* Messages quote recipes, which may come from a bundle: control
 * characters other than newline and tab are escaped (sbi_bundle_escape,
 * on pieces cut between UTF-8 characters). */
void
sbi__print_error(const char *msg)
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
void
sbi__push_sbi(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_getfield(L, -1, "sbi");
	lua_remove(L, -2);
}

/* Calls sbi[fname](args...) protected; prints the error and returns 1 on
 * failure. nargs values are on the stack; nres results are left. */
int
sbi__call_sbi(sbi_session *s, const char *fname, int nargs, int nres)
{
	lua_State *L = s->L;
	sbi__push_sbi(L);
	lua_getfield(L, -1, fname);
	lua_remove(L, -2);
	lua_insert(L, -nargs - 1);
	if (sbi__pcall(L, nargs, nres) != LUA_OK) {
		sbi__print_error(lua_tostring(L, -1));
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
	int in = real && sbi_fs_within(real, folder);
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
	if (!s->o.allow_native) { /* even with --trust: native code leaves the sandbox (docs/security.md) */
		lua_pushstring(s->L, folder);
		lua_setfield(s->L, LUA_REGISTRYINDEX, SBI_REG_NATIVE_REFUSED);
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
	return sbi__call_sbi(s, "_begin", 3, 0);
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
	if (init_paths(s) || (s->g = sbi__graph_new()) == NULL || (s->prov = sbi_prov_alloc(s->recipe_dir)) == NULL ||
	    (s->ctx.g = s->g, s->ctx.prov = s->prov, (s->L = sbi__state_new(&s->ctx, 1)) == NULL)) {
		sbi__print_error("out of memory");
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
		sbi__print_error(lua_tostring(L, -1));
		sbi_session_close(s);
		return NULL;
	}
	sbi__set_module_dir(L, s->recipe_dir);
	int bad = pass_settings(s, exit_code);
	if (!bad && sbi__load_recipe(L, o->recipe) != LUA_OK) {
		sbi__print_error(lua_tostring(L, -1));
		bad = 1;
	}
	if (!bad)
		bad = sbi__call_sbi(s, "_end", 0, 0);
	if (!bad) {
		lua_pushcfunction(L, sbi__graph_key);
		if (sbi__pcall(L, 0, 0) != LUA_OK) {
			sbi__print_error(lua_tostring(L, -1));
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
	/* Lua's views of artifacts hold their own references (l_artifact.c). */
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

const char *
sbi_session_restricted_root(const sbi_session *s)
{
	return s->root;
}
