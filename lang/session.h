/* A session: one recipe loaded into a Lua state, its graph, and the
 * commands that act on it (run, graph, clean). */
#ifndef SBI_SESSION_H
#define SBI_SESSION_H

#include <stddef.h>

typedef struct sbi_session_opts {
	const char *recipe;
	const char **sets;     /* "name=value" strings from --set */
	size_t nsets;
	const char *cache_dir; /* NULL: .sbirun/ beside the recipe */
	const char *out_dir;   /* NULL: sbirun-out/<recipe name>/ */
	int jobs;              /* worker processes for simulations */
	int quiet;             /* no progress output */
	int trust;             /* --trust: no restriction for recipes from bundles */
	int allow_native;      /* --allow-native: a recipe from a bundle may load plugins and run programs */
	int run_all;           /* run every step, not only those the outputs need (replay) */
	int fresh_cache;       /* cache_dir is a new, private one (replay): a restricted recipe may use it */
} sbi_session_opts;

typedef struct sbi_session sbi_session;

/* Loads the recipe and builds its graph. Prints errors; NULL on failure
 * with *exit_code set (1 for recipe errors, 2 for bad --set syntax). */
sbi_session *sbi_session_load(const sbi_session_opts *o, int *exit_code);
void sbi_session_close(sbi_session *s); /* NULL is fine */

/* The commands; each returns a process exit code. */
int sbi_session_run(sbi_session *s);
/* Like run, but only observation and sampling steps may run: everything
 * else they need (the trained estimator) must already be cached. */
int sbi_session_sample(sbi_session *s);
int sbi_session_graph(sbi_session *s, const char *format);
int sbi_session_clean(sbi_session *s);

/* Access for other commands (bundle_cmd.c). */
struct lua_State;
struct sbi_graph;
struct json_t;
struct lua_State *sbi_session_lua(sbi_session *s);
struct sbi_graph *sbi_session_get_graph(sbi_session *s);
/* What the recipe read and loaded so far (provenance.h). */
struct sbi_prov;
const struct sbi_prov *sbi_session_prov(const sbi_session *s);
const sbi_session_opts *sbi_session_get_opts(const sbi_session *s);
const char *sbi_session_recipe_dir(const sbi_session *s);
const char *sbi_session_cache_dir(const sbi_session *s);
/* The versions object of run.json (new reference). */
struct json_t *sbi_session_versions_json(void);
/* The real path of the folder the recipe is restricted to (an unpacked
 * bundle, detected by its marker file, without --trust), or NULL. */
const char *sbi_session_restricted_root(const sbi_session *s);

/* A Lua table's string keys with number, string or boolean values, as a
 * new JSON object (other entries are skipped); used for parameters in
 * run.json and in bundle manifests. */
#include <jansson.h>
struct lua_State;
json_t *sbi__table_json(struct lua_State *L, int idx);
/* A JSON string of s; bytes that are not UTF-8 (a path may hold any) are
 * written as the four characters \xNN, so the record is always valid JSON. */
json_t *sbi__json_str(const char *s);

#endif
