/* What a session writes about itself: run.json (the record of a run:
 * versions, parameters, steps with their keys, states and times, outputs
 * and their hashes) and the graph as `sbirun graph` prints it. */
#include <archive.h>
#include <cblas.h>
#include <gsl/gsl_version.h>
#include <jansson.h>
#include <string.h>

#include "lmpi.h"
#include "lsession.h"
#include "sbi/alloc.h"
#include "sbi/bundle.h"
#include "sbi/fsutil.h"
#include "sbi/progress.h"
#include "sbi_config.h"

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

/* sbi._written (filled by report.write_outputs) as a JSON array: per
 * output its name and files { name: content hash }, or the write error. */
static json_t *
outputs_json(lua_State *L)
{
	json_t *arr = json_array();
	sbi__push_sbi(L);
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

/* sbi._diagnostics (filled by sbi.diagnose.write and finish) as a JSON
 * array: per diagnostic its name, kind, value, threshold (null without a
 * gate), pass and summary. */
static json_t *
diagnostics_json(lua_State *L)
{
	json_t *arr = json_array();
	sbi__push_sbi(L);
	lua_getfield(L, -1, "_diagnostics"); /* [sbi, diagnostics?] */
	lua_Integer n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i); /* [sbi, diagnostics, e] */
		json_t *o = sbi__table_json(L, -1);
		if (json_object_get(o, "threshold") == NULL)
			json_object_set_new(o, "threshold", json_null());
		lua_pop(L, 1);
		json_array_append_new(arr, o);
	}
	lua_pop(L, 2);
	return arr;
}

/* sbi._warnings (MCMC health, sbi.health) as a JSON array of strings. */
static json_t *
warnings_json(lua_State *L)
{
	json_t *arr = json_array();
	sbi__push_sbi(L);
	lua_getfield(L, -1, "_warnings"); /* [sbi, warnings?] */
	lua_Integer n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
	for (lua_Integer i = 1; i <= n; i++) {
		if (lua_rawgeti(L, -1, i) == LUA_TSTRING)
			json_array_append_new(arr, sbi__json_str(lua_tostring(L, -1)));
		lua_pop(L, 1);
	}
	lua_pop(L, 2);
	return arr;
}

const char *
sbi__gate_message(lua_State *L)
{
	sbi__push_sbi(L);
	lua_getfield(L, -1, "_gate_message"); /* [sbi, msg?] */
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 2); /* sbi keeps the string alive */
	return msg;
}

int
sbi__write_run_json(sbi_session *s, const sbi_executor *x, int ok)
{
	lua_State *L = s->L;
	sbi__push_sbi(L);
	lua_getfield(L, -1, "_param_values");
	json_t *params = sbi__table_json(L, -1);
	lua_pop(L, 2);
	json_t *root = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:I, s:I, s:i, s:f}", "format",
	    "sbirun-run 1", "recipe", sbi__json_str(s->o.recipe), "cache", sbi__json_str(s->cache_dir),
	    "versions", versions_json(), "params", params, "nodes", nodes_json(s), "outputs", outputs_json(L),
	    "ok", ok, "nodes_ran", (json_int_t)x->nran, "cache_hits", (json_int_t)x->nhits, "jobs", s->o.jobs,
	    "seconds", sbi_now() - s->t0);
	/* Only runs that declare diagnostics or see warnings get the new keys:
	 * the run.json of every other run stays as it was. */
	json_t *diags = diagnostics_json(L), *warns = warnings_json(L);
	if (root && (json_array_size(diags) > 0 || json_array_size(warns) > 0)) {
		json_object_set_new(root, "diagnostics", diags);
		json_object_set_new(root, "warnings", warns);
		json_object_set_new(root, "gates_passed", json_boolean(sbi__gate_message(L) == NULL));
	} else {
		json_decref(diags);
		json_decref(warns);
	}
	/* Only MPI runs get "mpi": the ranks and what each did. */
	json_t *mpi = sbi__mpi_json();
	if (root && mpi)
		json_object_set_new(root, "mpi", mpi);
	else
		json_decref(mpi);
	char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
	json_decref(root);
	if (text == NULL) {
		sbi__print_error("cannot build run.json");
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

static void
print_text_graph(const sbi_graph *g)
{
	printf("%-4s %-18s %-12s %-8s %-10s %s\n", "id", "kind", "key", "state", "inputs", "label");
	for (size_t i = 0; i < g->nnodes; i++) {
		const sbi_node *n = &g->nodes[i];
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
print_dot_graph(const sbi_graph *g)
{
	printf("digraph sbirun {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
	for (size_t i = 0; i < g->nnodes; i++) {
		const sbi_node *n = &g->nodes[i];
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

void
sbi__print_graph(const sbi_graph *g, int dot)
{
	if (dot)
		print_dot_graph(g);
	else
		print_text_graph(g);
}

json_t *
sbi_session_versions_json(void)
{
	return versions_json();
}
