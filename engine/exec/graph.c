/* Step graph and executor (see graph.h). */
#include <string.h>
#include <time.h>

#include "sbi/alloc.h"
#include "sbi/graph.h"

sbi_graph *
sbi_graph_alloc(const char *engine_version)
{
	sbi_graph *g = sbi_calloc(1, sizeof *g);
	if (g && (g->engine_version = sbi_strdup(engine_version)) == NULL) {
		sbi_free(g);
		return NULL;
	}
	return g;
}

void
sbi_graph_free(sbi_graph *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->nnodes; i++) {
		sbi_node *n = &g->nodes[i];
		sbi_free(n->kind);
		sbi_free(n->label);
		sbi_free(n->inputs);
		sbi_artifact_free(n->art);
	}
	for (size_t i = 0; i < g->noutputs; i++)
		sbi_free(g->outputs[i].name);
	sbi_free(g->outputs);
	sbi_free(g->nodes);
	sbi_free(g->engine_version);
	sbi_free(g);
}

/* v (n elements of size bytes, capacity *cap) with room for one more: v
 * itself or a larger block (*cap updated, capacity doubled from first);
 * NULL when out of memory (v stays valid). */
static void *
room_for_one(void *v, size_t *cap, size_t n, size_t size, size_t first)
{
	if (n < *cap)
		return v;
	size_t c = *cap ? 2 * *cap : first;
	void *nv = sbi_realloc(v, c * size);
	if (nv != NULL)
		*cap = c;
	return nv;
}

int
sbi_graph_add(sbi_graph *g, const char *kind, const char *label, const sbi_key *opts, size_t *id)
{
	sbi_node *nodes = room_for_one(g->nodes, &g->cap, g->nnodes, sizeof *nodes, 16);
	if (nodes == NULL)
		return SBI_ENOMEM;
	g->nodes = nodes;
	sbi_node *n = &g->nodes[g->nnodes];
	memset(n, 0, sizeof *n);
	n->id = g->nnodes;
	n->kind = sbi_strdup(kind);
	n->label = sbi_strdup(label);
	if (n->kind == NULL || n->label == NULL) {
		sbi_free(n->kind);
		sbi_free(n->label);
		return SBI_ENOMEM;
	}
	if (opts)
		n->opts = *opts;
	n->seed = -1;
	*id = g->nnodes++;
	return SBI_OK;
}

int
sbi_graph_add_output(sbi_graph *g, const char *name, size_t node)
{
	sbi_output *outs = room_for_one(g->outputs, &g->outcap, g->noutputs, sizeof *outs, 4);
	if (outs == NULL)
		return SBI_ENOMEM;
	g->outputs = outs;
	char *copy = sbi_strdup(name);
	if (copy == NULL)
		return SBI_ENOMEM;
	g->outputs[g->noutputs++] = (sbi_output){ copy, node };
	return SBI_OK;
}

int
sbi_graph_add_input(sbi_graph *g, size_t node, size_t input)
{
	sbi_node *n = &g->nodes[node];
	size_t *in = sbi_realloc(n->inputs, (n->ninputs + 1) * sizeof *in);
	if (in == NULL)
		return SBI_ENOMEM;
	n->inputs = in;
	n->inputs[n->ninputs++] = input;
	return SBI_OK;
}

/* Depth-first key computation; mark: 0 new, 1 on the stack, 2 done. */
static int
key_dfs(sbi_graph *g, size_t id, unsigned char *mark, sbi_err *err)
{
	sbi_node *n = &g->nodes[id];
	if (mark[id] == 2)
		return SBI_OK;
	if (mark[id] == 1)
		return sbi_err_set(err, SBI_EINVAL, "the graph has a cycle through %s", n->label);
	mark[id] = 1;
	for (size_t i = 0; i < n->ninputs; i++) {
		if (n->inputs[i] >= g->nnodes)
			return sbi_err_set(err, SBI_EINVAL, "%s: input %zu does not exist", n->label, n->inputs[i]);
		int rc = key_dfs(g, n->inputs[i], mark, err);
		if (rc != SBI_OK)
			return rc;
	}
	sbi_hasher h;
	sbi_hash_init(&h);
	sbi_hash_str(&h, "sbirun-node", 11);
	sbi_hash_str(&h, g->engine_version, strlen(g->engine_version));
	sbi_hash_str(&h, n->kind, strlen(n->kind));
	sbi_hash_key(&h, &n->opts);
	sbi_hash_u64(&h, n->ninputs);
	for (size_t i = 0; i < n->ninputs; i++)
		sbi_hash_key(&h, &g->nodes[n->inputs[i]].key);
	sbi_hash_final(&h, &n->key);
	mark[id] = 2;
	return SBI_OK;
}

int
sbi_graph_compute_keys(sbi_graph *g, sbi_err *err)
{
	unsigned char *mark = sbi_calloc(g->nnodes ? g->nnodes : 1, 1);
	if (mark == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	int rc = SBI_OK;
	for (size_t i = 0; i < g->nnodes && rc == SBI_OK; i++)
		rc = key_dfs(g, i, mark, err);
	sbi_free(mark);
	return rc;
}

static double
now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double
cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int
try_cache(sbi_executor *x, sbi_node *n, sbi_err *err)
{
	sbi_err e = { 0 };
	int rc = sbi_cache_get(x->cache, &n->key, &n->art, &n->art_hash, &e);
	if (rc == SBI_OK) {
		n->state = SBI_NODE_CACHED;
		x->nhits++;
		return SBI_OK;
	}
	if (rc == SBI_ECORRUPT) {
		n->recomputed = 1;
		if (x->warn)
			x->warn(x->ud, n, e.msg);
		return SBI_ENOTFOUND;
	}
	if (rc != SBI_ENOTFOUND)
		return sbi_err_set(err, rc, "%s", e.msg);
	return rc;
}

int
sbi_exec_materialize(sbi_executor *x, size_t id, sbi_err *err)
{
	sbi_node *n = &x->g->nodes[id];
	if (n->art != NULL)
		return SBI_OK;
	if (n->state == SBI_NODE_FAILED)
		return sbi_err_set(err, SBI_EINVAL, "%s failed earlier", n->label);
	int rc = try_cache(x, n, err);
	if (rc != SBI_ENOTFOUND)
		return rc;
	if (x->may_run && (rc = x->may_run(x->ud, n, err)) != SBI_OK) {
		n->state = SBI_NODE_FAILED;
		return rc;
	}
	for (size_t i = 0; i < n->ninputs; i++)
		if ((rc = sbi_exec_materialize(x, n->inputs[i], err)) != SBI_OK)
			return rc;
	double t0 = now_seconds(), c0 = cpu_seconds();
	sbi_artifact *out = NULL;
	rc = x->run(x->ud, x->g, n, &out, err);
	n->seconds = now_seconds() - t0;
	n->cpu_seconds = cpu_seconds() - c0;
	if (rc == SBI_OK)
		rc = sbi_cache_put(x->cache, &n->key, out, n->label, &n->art_hash, err);
	if (rc != SBI_OK) {
		sbi_artifact_free(out);
		n->state = SBI_NODE_FAILED;
		return rc;
	}
	n->art = out;
	n->state = SBI_NODE_RAN;
	x->nran++;
	return SBI_OK;
}

void
sbi_node_short_key(const sbi_node *n, char out[13])
{
	char hex[SBI_KEY_HEX];
	sbi_key_hex(&n->key, hex);
	memcpy(out, hex, 12);
	out[12] = '\0';
}
