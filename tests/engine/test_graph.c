/* Graph keys change exactly when they should; the executor caches. */
#include <stdlib.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/graph.h"

static sbi_key
opts_key(const char *s)
{
	sbi_key k;
	sbi_hash_buffer(s, strlen(s), &k);
	return k;
}

/* Builds a -> b -> c (c also reads a) and returns the three keys. */
static void
chain_keys(const char *version, const char *oa, const char *ob, const char *kind_c, sbi_key out[3])
{
	sbi_graph *g = sbi_graph_alloc(version);
	sbi_key ka = opts_key(oa), kb = opts_key(ob), kc = opts_key("c");
	size_t a, b, c;
	sbi_graph_add(g, "simulate", "a", &ka, &a);
	sbi_graph_add(g, "abc", "b", &kb, &b);
	sbi_graph_add(g, kind_c, "c", &kc, &c);
	sbi_graph_add_input(g, b, a);
	sbi_graph_add_input(g, c, b);
	sbi_graph_add_input(g, c, a);
	sbi_err err = { 0 };
	CHECK(sbi_graph_compute_keys(g, &err) == SBI_OK);
	for (int i = 0; i < 3; i++)
		out[i] = g->nodes[i].key;
	sbi_graph_free(g);
}

TEST(graph_keys_change_exactly_when_they_should)
{
	sbi_key base[3], k[3];
	chain_keys("1", "A", "B", "out", base);
	chain_keys("1", "A", "B", "out", k);
	for (int i = 0; i < 3; i++)
		CHECK(sbi_key_equal(&base[i], &k[i])); /* deterministic */
	chain_keys("1", "A", "B2", "out", k);      /* ABC options only */
	CHECK(sbi_key_equal(&base[0], &k[0]));
	CHECK(!sbi_key_equal(&base[1], &k[1]));
	CHECK(!sbi_key_equal(&base[2], &k[2]));
	chain_keys("1", "A2", "B", "out", k);      /* simulation options: all below change */
	for (int i = 0; i < 3; i++)
		CHECK(!sbi_key_equal(&base[i], &k[i]));
	chain_keys("1", "A", "B", "out2", k);      /* kind of the last node */
	CHECK(sbi_key_equal(&base[0], &k[0]) && sbi_key_equal(&base[1], &k[1]));
	CHECK(!sbi_key_equal(&base[2], &k[2]));
	chain_keys("2", "A", "B", "out", k);       /* engine version: everything */
	for (int i = 0; i < 3; i++)
		CHECK(!sbi_key_equal(&base[i], &k[i]));
}

TEST(graph_input_order_matters)
{
	sbi_graph *g = sbi_graph_alloc("1");
	sbi_key o = opts_key("x");
	size_t a, b, c, d;
	sbi_key ka = opts_key("a"), kb = opts_key("b");
	sbi_graph_add(g, "k", "a", &ka, &a);
	sbi_graph_add(g, "k", "b", &kb, &b);
	sbi_graph_add(g, "k", "c", &o, &c);
	sbi_graph_add(g, "k", "d", &o, &d);
	sbi_graph_add_input(g, c, a);
	sbi_graph_add_input(g, c, b);
	sbi_graph_add_input(g, d, b);
	sbi_graph_add_input(g, d, a);
	sbi_err err = { 0 };
	CHECK(sbi_graph_compute_keys(g, &err) == SBI_OK);
	CHECK(!sbi_key_equal(&g->nodes[c].key, &g->nodes[d].key));
	sbi_graph_free(g);
}

TEST(graph_cycle_is_an_error_naming_a_node)
{
	sbi_graph *g = sbi_graph_alloc("1");
	sbi_key o = opts_key("x");
	size_t a, b;
	sbi_graph_add(g, "k", "first (r.lua:1)", &o, &a);
	sbi_graph_add(g, "k", "second (r.lua:2)", &o, &b);
	sbi_graph_add_input(g, a, b);
	sbi_graph_add_input(g, b, a);
	sbi_err err = { 0 };
	CHECK(sbi_graph_compute_keys(g, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "cycle");
	CHECK_CONTAINS(err.msg, "(r.lua:");
	sbi_graph_free(g);
}

/* Executor: a run function that counts calls and sums inputs. */
static int runs;

static int
run_sum(void *ud, sbi_graph *g, sbi_node *n, sbi_artifact **out, sbi_err *err)
{
	runs++;
	double v = 1;
	for (size_t i = 0; i < n->ninputs; i++)
		v += sbi_artifact_num(g->nodes[n->inputs[i]].art, "v", 0);
	*out = sbi_artifact_alloc();
	sbi_artifact_set_num(*out, "v", v);
	return SBI_OK;
}

static double
run_chain(sbi_cache *c, size_t *nran)
{
	sbi_graph *g = sbi_graph_alloc("1");
	sbi_key ka = opts_key("a"), kb = opts_key("b"), kc = opts_key("c");
	size_t a, b, cc;
	sbi_graph_add(g, "k", "a", &ka, &a);
	sbi_graph_add(g, "k", "b", &kb, &b);
	sbi_graph_add(g, "k", "c", &kc, &cc);
	sbi_graph_add_input(g, b, a);
	sbi_graph_add_input(g, cc, b);
	sbi_graph_add_input(g, cc, a);
	sbi_err err = { 0 };
	sbi_graph_compute_keys(g, &err);
	sbi_executor x = { .g = g, .cache = c, .run = run_sum };
	CHECK(sbi_exec_materialize(&x, cc, &err) == SBI_OK);
	double v = sbi_artifact_num(g->nodes[cc].art, "v", -1);
	*nran = x.nran;
	/* Only what c needed was loaded: on a cache hit, a and b stay unloaded. */
	if (x.nran == 0)
		CHECK(g->nodes[a].art == NULL && g->nodes[b].art == NULL);
	sbi_graph_free(g);
	return v;
}

TEST(executor_runs_once_then_hits)
{
	char dir[] = "/tmp/sbi-test-graph.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	sbi_err err = { 0 };
	sbi_cache *c = sbi_cache_open(dir, &err);
	size_t nran;
	runs = 0;
	CHECK(run_chain(c, &nran) == 4.0); /* a=1, b=2, c=1+2+1 */
	CHECK(nran == 3 && runs == 3);
	CHECK(run_chain(c, &nran) == 4.0);
	CHECK(nran == 0 && runs == 3);
	sbi_cache_close(c);
}
