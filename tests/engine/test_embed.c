/* Embedding networks trained jointly with their estimator: the loss's
 * gradient with respect to the embedding's weights (and the consumer's)
 * matches central finite differences, through a flow's maximum-likelihood
 * and atomic (APT) losses and a classifier's binary and contrastive ones;
 * model files with an embedding survive a round trip bit for bit, are
 * deterministic, carry their own version, and sampling applies the
 * embedding to the observation. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/classifier.h"
#include "sbi/fit.h"
#include "sbi/flow.h"
#include "sbi/rng.h"

#define N 6  /* rows of a test batch */
#define DY 2 /* dimension of y (theta) */
#define DC 5 /* dimension of the raw context (x) */
#define K 3  /* atoms */

/* Pseudo-random value in [lo, hi) from a counter (no global RNG state). */
static double
rnd(unsigned *state, double lo, double hi)
{
	*state = *state * 1664525u + 1013904223u;
	return lo + (hi - lo) * (double)(*state >> 8) / (double)(1u << 24);
}

static const sbi_embed_config EMB = { .out = 3, .layers = 2, .hidden = { 7, 4 }, .act = SBI_ACT_TANH };

static sbi_flow_config
flow_cfg(int kind)
{
	return (sbi_flow_config){ .kind = kind, .dim = DY, .context = DC, .transforms = kind == SBI_FLOW_MDN ? 1 : 2,
		.hidden = 8, .layers = 1, .bins = kind == SBI_FLOW_MDN ? 2 : 4, .bound = 3.0, .act = SBI_ACT_TANH,
		.seed = 11, .embed = EMB };
}

/* Data: y, and a context whose first columns depend on y. */
static void
make_data(double *y, double *c, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < DY; j++)
			y[i * DY + j] = rnd(&seed, -1.5, 1.5);
		for (size_t j = 0; j < DC; j++)
			c[i * DC + j] = (j < DY ? y[i * DY + j] : 0.0) + rnd(&seed, -0.7, 0.9);
	}
}

typedef double (*loss_fn)(void *model, int grad);

/* The worst relative error of the gradient of loss with respect to the
 * parameters [from, to) of ps, against central differences; *mass gets the
 * sum of |gradient| (a zero gradient would pass trivially). The losses are
 * float32: with eps = 1e-2 the differences carry about 1e-4 of rounding, so
 * the error is relative to |fd| + |ad| + 1e-2; correct gradients stay below
 * 6e-3 here, a missing or wrong path gives errors near 1. */
static double
grad_check(loss_fn loss, void *model, sbi_param **ps, size_t from, size_t to, double *mass)
{
	for (size_t i = 0; i < to; i++)
		memset(ps[i]->g, 0, ps[i]->rows * ps[i]->cols * sizeof(float));
	loss(model, 1);
	const float eps = 1e-2f;
	double worst = 0;
	*mass = 0;
	for (size_t i = from; i < to; i++)
		for (size_t e = 0; e < ps[i]->rows * ps[i]->cols; e++) {
			if (ps[i]->mask && ps[i]->mask[e] == 0)
				continue;
			float keep = ps[i]->w[e];
			ps[i]->w[e] = keep + eps;
			double up = loss(model, 0);
			ps[i]->w[e] = keep - eps;
			double dn = loss(model, 0);
			ps[i]->w[e] = keep;
			double fd = (up - dn) / (2 * (double)eps), ad = ps[i]->g[e];
			double err = fabs(fd - ad) / (fabs(fd) + fabs(ad) + 1e-2);
			worst = err > worst ? err : worst;
			*mass += fabs(ad);
		}
	return worst;
}

static float ys[N * K * DY], cs[N * K * DC], lp[N * K];

/* -mean log q(y | e(c)) over the N test rows. */
static double
flow_ml_loss(void *model, int grad)
{
	sbi_tape *t = sbi_tape_alloc();
	sbi_var l = sbi_ad_scale(t, sbi_ad_mean(t, sbi_flow_log_prob_std(model, t, sbi_ad_const(t, ys, N, DY),
	    sbi_ad_const(t, cs, N, DC))), -1.0f);
	double v = sbi_ad_value(t, l)[0];
	if (grad)
		sbi_ad_backward(t, l);
	CHECK(!sbi_tape_failed(t));
	sbi_tape_free(t);
	return v;
}

/* The atomic loss as fit.c builds it: row (i, k) pairs context i (repeated
 * K times, so e(c_i) is computed K times and its gradient sums over them)
 * with y_{(i+k) mod N}. ys/cs hold the N * K rows, lp fixed log priors. */
static double
flow_atomic_loss(void *model, int grad)
{
	sbi_tape *t = sbi_tape_alloc();
	sbi_var l = sbi_ad_sub(t, sbi_flow_log_prob_std(model, t, sbi_ad_const(t, ys, N * K, DY),
	    sbi_ad_const(t, cs, N * K, DC)), sbi_ad_const(t, lp, N * K, 1));
	sbi_var lk = sbi_ad_reshape(t, l, N, K);
	sbi_var loss = sbi_ad_mean(t, sbi_ad_sub(t, sbi_ad_logsumexp_rows(t, lk), sbi_ad_cols(t, lk, 0, 1)));
	double v = sbi_ad_value(t, loss)[0];
	if (grad)
		sbi_ad_backward(t, loss);
	CHECK(!sbi_tape_failed(t));
	sbi_tape_free(t);
	return v;
}

/* A flow of kind with an embedding, standardized on test data; ys and cs
 * hold N rows (atomic = 0) or the N * K atom rows. */
static sbi_flow *
flow_with_data(int kind, int atomic)
{
	sbi_err err = { 0 };
	sbi_flow_config cfg = flow_cfg(kind);
	sbi_flow *f = sbi_flow_alloc(&cfg, &err);
	CHECK(f != NULL);
	double y[N * DY], c[N * DC];
	make_data(y, c, N, 5);
	sbi_flow_set_standardization(f, y, c, N);
	float y1[N * DY], c1[N * DC];
	sbi_flow_standardize(f, y, c, N, y1, c1);
	unsigned st = 9;
	for (size_t i = 0; i < N; i++)
		for (size_t k = 0; k < (atomic ? K : 1); k++) {
			size_t r = atomic ? i * K + k : i, a = atomic ? (i + k) % N : i;
			memcpy(ys + r * DY, y1 + a * DY, DY * sizeof(float));
			memcpy(cs + r * DC, c1 + i * DC, DC * sizeof(float));
			lp[r] = (float)rnd(&st, -2.0, -1.0);
		}
	return f;
}

static void
check_flow_grads(int kind, int atomic)
{
	sbi_flow *f = flow_with_data(kind, atomic);
	size_t np;
	sbi_param **ps = sbi_flow_params(f, &np);
	size_t ne = 2 * (EMB.layers + 1); /* the embedding's, after the flow's */
	double mass, all_mass;
	double worst = grad_check(atomic ? flow_atomic_loss : flow_ml_loss, f, ps, np - ne, np, &mass);
	fprintf(stderr, "  flow kind %d %s: embedding gradient worst relative error %.2e (sum |g| %.3g)\n", kind,
	    atomic ? "atomic" : "ml", worst, mass);
	CHECK(worst < 2e-2);
	CHECK(mass > 1e-2);
	/* The flow's own weights still get theirs (the context layer reads e(c)). */
	worst = grad_check(atomic ? flow_atomic_loss : flow_ml_loss, f, ps, 0, np - ne, &all_mass);
	CHECK(worst < 2e-2);
	sbi_flow_free(f);
}

TEST(flow_embedding_gradients)
{
	check_flow_grads(SBI_FLOW_MAF, 0);
	check_flow_grads(SBI_FLOW_NSF, 0);
	check_flow_grads(SBI_FLOW_MDN, 0);
	check_flow_grads(SBI_FLOW_MAF, 1);
}

/* ---- classifiers ---- */

static float ts[N * DY], xs[N * DC], scratch[N * K * (DY + DC)];
static size_t clsf_atoms;

static double
clsf_loss(void *model, int grad)
{
	sbi_tape *t = sbi_tape_alloc();
	sbi_var l = sbi_classifier_loss(model, t, ts, xs, N, clsf_atoms, scratch);
	double v = sbi_ad_value(t, l)[0];
	if (grad)
		sbi_ad_backward(t, l);
	CHECK(!sbi_tape_failed(t));
	sbi_tape_free(t);
	return v;
}

TEST(classifier_embedding_gradients)
{
	sbi_classifier_config cfg = { .dtheta = DY, .dx = DC, .hidden = 9, .layers = 1, .residual = 1,
		.act = SBI_ACT_TANH, .seed = 4, .embed = EMB };
	sbi_err err = { 0 };
	sbi_classifier *c = sbi_classifier_alloc(&cfg, &err);
	CHECK(c != NULL);
	double y[N * DY], x[N * DC];
	make_data(y, x, N, 21);
	sbi_classifier_set_standardization(c, y, x, N);
	sbi_classifier_standardize(c, y, x, N, ts, xs);
	size_t np;
	sbi_param **ps = sbi_classifier_params(c, &np);
	size_t ne = 2 * (EMB.layers + 1);
	/* The MLP's first layer reads [theta, e(x)]: dtheta + out rows. */
	CHECK(ps[0]->rows == DY + EMB.out);
	for (size_t atoms = 0; atoms <= K; atoms += K) {
		clsf_atoms = atoms;
		double mass, worst = grad_check(clsf_loss, c, ps, np - ne, np, &mass);
		fprintf(stderr, "  classifier atoms %zu: embedding gradient worst relative error %.2e (sum |g| %.3g)\n",
		    atoms, worst, mass);
		CHECK(worst < 2e-2);
		CHECK(mass > 1e-2);
	}
	/* log_ratio (the embedding of the one x row, broadcast) equals the logits of the loss's path. */
	double th[3 * DY] = { 0.1, -0.2, 0.5, 0.4, -1.0, 0.3 }, out[3];
	sbi_tape *t = sbi_tape_alloc();
	CHECK(sbi_classifier_log_ratio(c, t, th, x, 3, out, &err) == SBI_OK);
	float tsd[3 * DY], xsd[3 * DC];
	sbi_classifier_standardize(c, th, NULL, 3, tsd, NULL);
	for (size_t i = 0; i < 3; i++)
		memcpy(xsd + i * DC, xs, DC * sizeof(float));
	sbi_tape_reset(t);
	sbi_var l = sbi_classifier_logits_std(c, t, sbi_ad_const(t, tsd, 3, DY), sbi_ad_const(t, xsd, 3, DC));
	for (size_t i = 0; i < 3; i++)
		CHECK_NEAR(out[i], sbi_ad_value(t, l)[i], 1e-5);
	sbi_tape_free(t);
	/* Round trip: version 2, the same bytes again, the same ratios. */
	unsigned char *b1, *b2;
	size_t n1, n2;
	CHECK(sbi_classifier_save(c, &b1, &n1, &err) == SBI_OK);
	CHECK(b1[8] == 2);
	sbi_classifier *d = sbi_classifier_load(b1, n1, &err);
	CHECK(d != NULL);
	CHECK(sbi_classifier_save(d, &b2, &n2, &err) == SBI_OK);
	CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
	CHECK(sbi_classifier_config_of(d)->embed.out == EMB.out);
	sbi_free(b1), sbi_free(b2);
	sbi_classifier_free(d);
	sbi_classifier_free(c);
	/* Without an embedding: still version 1. */
	cfg.embed = (sbi_embed_config){ 0 };
	c = sbi_classifier_alloc(&cfg, &err);
	CHECK(sbi_classifier_save(c, &b1, &n1, &err) == SBI_OK);
	CHECK(b1[8] == 1);
	sbi_free(b1);
	sbi_classifier_free(c);
}

/* ---- model files, determinism, sampling ---- */

static unsigned char *
saved(const sbi_flow *f, size_t *len)
{
	unsigned char *b = NULL;
	sbi_err err = { 0 };
	CHECK(sbi_flow_save(f, &b, len, &err) == SBI_OK);
	return b;
}

TEST(flow_embedding_file_and_sampling)
{
	sbi_flow *f = flow_with_data(SBI_FLOW_MAF, 0), *g = flow_with_data(SBI_FLOW_MAF, 0);
	size_t n1, n2;
	unsigned char *b1 = saved(f, &n1), *b2 = saved(g, &n2);
	CHECK(b1[8] == SBI_FLOW_FORMAT_EMBED); /* u32 version after the 8-byte magic */
	CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0); /* same seed, same file */
	sbi_err err = { 0 };
	sbi_flow *h = sbi_flow_load(b1, n1, &err);
	CHECK(h != NULL);
	unsigned char *b3 = saved(h, &n2);
	CHECK(n1 == n2 && memcmp(b1, b3, n1) == 0);
	/* Samples of the loaded flow equal the original's. */
	double c[DC] = { 0.3, -0.2, 0.1, 0.5, -0.4 }, s1[20 * DY], s2[20 * DY], s3[20 * DY];
	sbi_tape *t = sbi_tape_alloc();
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, 1, SBI_STREAM_METHOD, 0);
	CHECK(sbi_flow_sample(f, t, c, 20, r, s1, &err) == SBI_OK);
	sbi_rng_set_stream(r, 1, SBI_STREAM_METHOD, 0);
	CHECK(sbi_flow_sample(h, t, c, 20, r, s2, &err) == SBI_OK);
	CHECK(memcmp(s1, s2, sizeof s1) == 0);
	/* Sampling goes through the embedding: changing its output layer's
	 * bias changes the samples, and the samples invert log_prob's
	 * direction (their log q from log_prob is finite and matches a
	 * second evaluation with the context broadcast). */
	size_t np;
	sbi_param **ps = sbi_flow_params(h, &np);
	ps[np - 1]->w[0] += 0.5f;
	sbi_rng_set_stream(r, 1, SBI_STREAM_METHOD, 0);
	CHECK(sbi_flow_sample(h, t, c, 20, r, s3, &err) == SBI_OK);
	CHECK(memcmp(s1, s3, sizeof s1) != 0);
	/* Round trip of a sample: base noise -> y -> z recovers log q. */
	double lq[20], lq1[20];
	CHECK(sbi_flow_log_prob(f, t, s1, 0, c, 1, 20, lq, &err) == SBI_OK);
	double cc[20 * DC];
	for (size_t i = 0; i < 20; i++)
		memcpy(cc + i * DC, c, sizeof c);
	CHECK(sbi_flow_log_prob(f, t, s1, 0, cc, 0, 20, lq1, &err) == SBI_OK);
	for (size_t i = 0; i < 20; i++) {
		CHECK(isfinite(lq[i]));
		CHECK_NEAR(lq[i], lq1[i], 1e-5);
	}
	sbi_tape_free(t);
	gsl_rng_free(r);
	sbi_free(b1), sbi_free(b2), sbi_free(b3);
	sbi_flow_free(f), sbi_flow_free(g), sbi_flow_free(h);
}

/* Sampling and log_prob see the same embedded context: for a 1-D NSF, the
 * fraction of samples below y0 matches the integral of exp(log q) up to
 * y0 for the same observation. */
TEST(flow_embedding_inverse_is_consistent)
{
	sbi_flow_config cfg = flow_cfg(SBI_FLOW_NSF);
	cfg.dim = 1;
	sbi_err err = { 0 };
	sbi_flow *f = sbi_flow_alloc(&cfg, &err);
	CHECK(f != NULL);
	double y[N], c[N * DC];
	unsigned st = 3;
	for (size_t i = 0; i < N; i++) {
		y[i] = rnd(&st, -1, 1);
		for (size_t j = 0; j < DC; j++)
			c[i * DC + j] = rnd(&st, -1, 1);
	}
	sbi_flow_set_standardization(f, y, c, N);
	double cx[DC] = { 0.2, -0.5, 0.7, 0.0, 0.3 };
	enum { S = 20000, G = 4001 };
	double *s = sbi_malloc(S * sizeof(double)), *grid = sbi_malloc(G * sizeof(double)),
	       *lq = sbi_malloc(G * sizeof(double));
	sbi_tape *t = sbi_tape_alloc();
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, 2, SBI_STREAM_METHOD, 0);
	CHECK(sbi_flow_sample(f, t, cx, S, r, s, &err) == SBI_OK);
	double lo = -8, hi = 8;
	for (size_t i = 0; i < G; i++)
		grid[i] = lo + (hi - lo) * (double)i / (G - 1);
	CHECK(sbi_flow_log_prob(f, t, grid, 0, cx, 1, G, lq, &err) == SBI_OK);
	double y0 = 0.1, mass = 0, below = 0;
	for (size_t i = 1; i < G && grid[i] <= y0; i++)
		mass += 0.5 * (exp(lq[i]) + exp(lq[i - 1])) * (grid[i] - grid[i - 1]);
	for (size_t i = 0; i < S; i++)
		below += s[i] <= y0;
	/* Binomial sd of the fraction: at most 0.5 / sqrt(S) = 0.0035; 5 sd. */
	CHECK_NEAR(below / S, mass, 0.018);
	sbi_tape_free(t);
	gsl_rng_free(r);
	sbi_free(s), sbi_free(grid), sbi_free(lq);
	sbi_flow_free(f);
}

TEST(embedding_errors)
{
	sbi_err err = { 0 };
	sbi_flow_config cfg = flow_cfg(SBI_FLOW_MAF);
	cfg.context = 0;
	CHECK(sbi_flow_alloc(&cfg, &err) == NULL);
	CHECK_CONTAINS(err.msg, "embedding");
	cfg = flow_cfg(SBI_FLOW_MAF);
	cfg.embed.layers = SBI_EMBED_MAX_LAYERS + 1;
	CHECK(sbi_flow_alloc(&cfg, &err) == NULL);
	CHECK_CONTAINS(err.msg, "embedding: at most");
	/* A warm start must have the same embedding. */
	cfg = flow_cfg(SBI_FLOW_MAF);
	sbi_flow *init = sbi_flow_alloc(&cfg, &err);
	cfg.embed.out = 4;
	double y[N * DY], c[N * DC];
	make_data(y, c, N, 8);
	sbi_flow_fit_opts fo = { .init = init };
	sbi_train_opts o = { .batch = 4, .max_epochs = 2, .patience = 2, .lr = 1e-3, .val_fraction = 0.3, .clip = 5,
		.seed = 1, .quiet = 1, .label = "t" };
	sbi_flow *out;
	sbi_train_report rep;
	CHECK(sbi_fit_flow_ex(&cfg, &fo, &o, y, c, N, &out, &rep, &err) != SBI_OK);
	CHECK_CONTAINS(err.msg, "embedding differs");
	sbi_flow_free(init);
	/* Without an embedding a flow is still written as version 2. */
	cfg = flow_cfg(SBI_FLOW_MAF);
	cfg.embed = (sbi_embed_config){ 0 };
	sbi_flow *f = sbi_flow_alloc(&cfg, &err);
	size_t n;
	unsigned char *b = saved(f, &n);
	CHECK(b[8] == SBI_FLOW_FORMAT);
	sbi_free(b);
	sbi_flow_free(f);
}
