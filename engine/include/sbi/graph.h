/* The step graph: nodes, their inputs, their keys, and the executor that
 * materializes a node's artifact from the cache or by running it.
 *
 * A node's key is BLAKE2b-256 over: the engine version, the node's kind,
 * the hash of its canonicalized options (computed by the caller, see
 * lang/l_hash.c), and the keys of its inputs in order. Two nodes with the
 * same key produce the same artifact, which is what makes caching sound. */
#ifndef SBI_GRAPH_H
#define SBI_GRAPH_H

#include <stddef.h>

#include "sbi/artifact.h"
#include "sbi/cache.h"
#include "sbi/err.h"
#include "sbi/hash.h"

enum sbi_node_state {
	SBI_NODE_PENDING = 0, /* not looked at yet */
	SBI_NODE_CACHED,      /* loaded from the cache */
	SBI_NODE_RAN,         /* computed in this run */
	SBI_NODE_FAILED,
};

typedef struct sbi_node {
	size_t id;
	char *kind;      /* "simulate", "abc.rejection", ... (owned) */
	char *label;     /* short human name, e.g. "simulate#2 (recipe.lua:12)" (owned) */
	sbi_key opts;    /* hash of the canonical options */
	size_t ninputs;
	size_t *inputs;  /* ids of input nodes, in order (owned) */
	sbi_key key;     /* valid after sbi_graph_compute_keys */
	int state;       /* enum sbi_node_state */
	int recomputed;  /* 1 when a corrupt cache entry forced a re-run */
	sbi_artifact *art; /* loaded or computed artifact (owned), or NULL */
	sbi_key art_hash;
	double seconds;  /* wall time spent running it */
	double cpu_seconds; /* CPU time of this process and its threads (not of workers) */
	long long seed;  /* the integer seed in the node's options, or -1 (for run.json and bundles) */
} sbi_node;

/* An output of the recipe: a name and the node whose artifact it writes. */
typedef struct sbi_output {
	char *name;  /* owned */
	size_t node;
} sbi_output;

/* The graph is the one list of a recipe's steps: lang/ adds a node as the
 * recipe declares it and keeps only the Lua parts (options table, run
 * function) beside it, indexed by the node's id (lang/l_graph.c). */
typedef struct sbi_graph {
	size_t nnodes, cap;
	sbi_node *nodes; /* owned */
	char *engine_version; /* owned; part of every key */
	size_t noutputs, outcap;
	sbi_output *outputs; /* owned, in declaration order */
} sbi_graph;

sbi_graph *sbi_graph_alloc(const char *engine_version); /* NULL when out of memory */
void sbi_graph_free(sbi_graph *g);                         /* NULL is fine */

/* Adds a node and returns its id in *id. opts may be NULL when the hash of
 * the options is set (node->opts) before sbi_graph_compute_keys. */
int sbi_graph_add(sbi_graph *g, const char *kind, const char *label, const sbi_key *opts, size_t *id);
/* Appends an output (name is copied). */
int sbi_graph_add_output(sbi_graph *g, const char *name, size_t node);
/* Appends input to node's inputs. */
int sbi_graph_add_input(sbi_graph *g, size_t node, size_t input);

/* Computes every key in dependency order; SBI_EINVAL naming a node on a
 * cycle or on an input id that does not exist. */
int sbi_graph_compute_keys(sbi_graph *g, sbi_err *err);

/* Runs one node: fills *out with a new artifact from the node's inputs
 * (g->nodes[node->inputs[i]].art are loaded). Returns SBI_OK or an error
 * with err set. */
typedef int (*sbi_node_run_fn)(void *ud, sbi_graph *g, sbi_node *node, sbi_artifact **out, sbi_err *err);

/* Called when a cached artifact is found damaged: the message says what
 * was wrong; the node will be recomputed. */
typedef void (*sbi_node_warn_fn)(void *ud, sbi_node *node, const char *msg);

/* Asked before a node that is not in the cache (or whose entry was damaged)
 * is computed: SBI_OK to go ahead, else an error (err set) that fails it
 * before any of its inputs is touched. */
typedef int (*sbi_node_may_run_fn)(void *ud, sbi_node *node, sbi_err *err);

typedef struct sbi_executor {
	sbi_graph *g;
	sbi_cache *cache;
	sbi_node_run_fn run;
	sbi_node_warn_fn warn;
	void *ud;
	size_t nran, nhits; /* counts for this run */
	sbi_node_may_run_fn may_run; /* NULL: every node may run */
} sbi_executor;

/* Makes node's artifact available in node->art: from the cache when a
 * valid entry exists, else by materializing its inputs and running it,
 * then storing the result. Only the nodes node needs are touched. */
int sbi_exec_materialize(sbi_executor *x, size_t node, sbi_err *err);

/* Short key: the first 12 hex digits. */
void sbi_node_short_key(const sbi_node *n, char out[13]);

#endif
