/* Flows and training: fitted densities reach the true log-likelihood,
 * samples have the right moments, conditioning works, models survive a
 * save/load round trip bit for bit, and training is deterministic. */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/fit.h"
#include "sbi/flow.h"
#include "sbi/rng.h"
#include "sbi/train.h"

#define LOG_2PI 1.8378770664093453

static sbi_flow *
train_flow(int kind, const double *y, const double *c, size_t n, size_t dy, size_t dc, uint64_t seed,
    sbi_train_report *rep)
{
	sbi_flow_config cfg = { .kind = kind, .dim = dy, .context = dc, .transforms = kind == SBI_FLOW_MDN ? 1 : 3, .hidden = 32,
		.layers = 2, .bins = 8, .bound = 3.0, .act = SBI_ACT_TANH,
		.seed = seed };
	sbi_train_opts o = { .batch = 128, .max_epochs = 300, .patience = 15, .lr = 2e-3, .val_fraction = 0.1,
		.clip = 5.0, .seed = seed, .quiet = 1, .label = "train" };
	sbi_err err = { 0 };
	sbi_flow *f;
	CHECK(sbi_fit_flow(&cfg, &o, y, c, n, &f, rep, &err) == SBI_OK);
	return f;
}

/* Banana: y1 ~ N(0, 1), y2 | y1 ~ N(y1^2 / 2, 0.5^2). */
static void
banana(gsl_rng *r, size_t n, double *y)
{
	for (size_t i = 0; i < n; i++) {
		double a = gsl_ran_gaussian(r, 1.0);
		y[2 * i] = a;
		y[2 * i + 1] = 0.5 * a * a + gsl_ran_gaussian(r, 0.5);
	}
}

static double
banana_logp(const double *y)
{
	double d = y[1] - 0.5 * y[0] * y[0];
	return -0.5 * y[0] * y[0] - 0.5 * LOG_2PI - 0.5 * d * d / 0.25 - 0.5 * LOG_2PI - log(0.5);
}

/* Bimodal: y1 ~ (N(-1.5, 0.3^2) + N(1.5, 0.3^2)) / 2, y2 | y1 ~ N(sin(2 y1), 0.3^2). */
static void
bimodal(gsl_rng *r, size_t n, double *y)
{
	for (size_t i = 0; i < n; i++) {
		double a = (gsl_rng_uniform(r) < 0.5 ? -1.5 : 1.5) + gsl_ran_gaussian(r, 0.3);
		y[2 * i] = a;
		y[2 * i + 1] = sin(2 * a) + gsl_ran_gaussian(r, 0.3);
	}
}

static double
bimodal_logp(const double *y)
{
	double p1 = 0.5 * (gsl_ran_gaussian_pdf(y[0] + 1.5, 0.3) + gsl_ran_gaussian_pdf(y[0] - 1.5, 0.3));
	return log(p1) + log(gsl_ran_gaussian_pdf(y[1] - sin(2 * y[0]), 0.3));
}

typedef void (*gen_fn)(gsl_rng *r, size_t n, double *y);
typedef double (*logp_fn)(const double *y);

/* tol: on the held-out mean log density; mtol: on sample means (for the
 * bimodal target the mean of y1 moves by 3 x the error in the modes'
 * weights, which the log-likelihood check already bounds). */
static void
check_fit(int kind, gen_fn gen, logp_fn logp, double tol, double mtol, double m1_true, double m2_true,
    double v1_true)
{
	enum { N = 6000, M = 4000 };
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, 3, 9, 0);
	double *y = malloc(N * 2 * sizeof *y), *yt = malloc(M * 2 * sizeof *yt), *lp = malloc(M * sizeof *lp);
	gen(r, N, y);
	gen(r, M, yt);
	sbi_train_report rep;
	sbi_flow *f = train_flow(kind, y, NULL, N, 2, 0, 5, &rep);
	sbi_tape *t = sbi_tape_alloc();
	sbi_err err = { 0 };
	CHECK(sbi_flow_log_prob(f, t, yt, 0, NULL, 0, M, lp, &err) == SBI_OK);
	double model = 0, truth = 0;
	for (size_t i = 0; i < M; i++) {
		model += lp[i] / M;
		truth += logp(yt + 2 * i) / M;
	}
	fprintf(stderr, "  %s: held-out mean log q = %.4f, truth %.4f (%zu epochs)\n",
	    kind == SBI_FLOW_MAF ? "MAF" : "NSF", model, truth, rep.epochs);
	CHECK_NEAR(model, truth, tol);
	double *s = malloc(20000 * 2 * sizeof *s), m1 = 0, m2 = 0, v1 = 0;
	CHECK(sbi_flow_sample(f, t, NULL, 20000, r, s, &err) == SBI_OK);
	for (size_t i = 0; i < 20000; i++)
		m1 += s[2 * i] / 20000, m2 += s[2 * i + 1] / 20000;
	for (size_t i = 0; i < 20000; i++)
		v1 += (s[2 * i] - m1) * (s[2 * i] - m1) / 20000;
	CHECK_NEAR(m1, m1_true, mtol);
	CHECK_NEAR(m2, m2_true, 0.06);
	CHECK_NEAR(v1, v1_true, 0.1);
	sbi_train_report_free(&rep);
	sbi_tape_free(t);
	sbi_flow_free(f);
	gsl_rng_free(r);
	free(y), free(yt), free(lp), free(s);
}

/* Banana: the true mean log density is about -2.145; mean of y2 is
 * E[y1^2]/2 = 0.5, var(y1) = 1. */
TEST(flow_maf_fits_banana_log_likelihood)
{
	check_fit(SBI_FLOW_MAF, banana, banana_logp, 0.05, 0.06, 0.0, 0.5, 1.0);
}

/* Bimodal: E[y1] = 0, var(y1) = 1.5^2 + 0.3^2 = 2.34, E[y2] = E[sin(2 y1)] = 0. */
TEST(flow_nsf_fits_bimodal_log_likelihood)
{
	check_fit(SBI_FLOW_NSF, bimodal, bimodal_logp, 0.05, 0.12, 0.0, 0.0, 2.34);
}

TEST(flow_conditional_gaussian)
{
	/* y | c ~ N(2c - 1, (0.3 + 0.2 c)^2), c ~ U(0, 1): the conditional mean
	 * and spread of samples at c = 0.25 and c = 0.9. */
	enum { N = 6000 };
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, 4, 9, 0);
	double *y = malloc(N * sizeof *y), *c = malloc(N * sizeof *c);
	for (size_t i = 0; i < N; i++) {
		c[i] = gsl_rng_uniform(r);
		y[i] = 2 * c[i] - 1 + (0.3 + 0.2 * c[i]) * gsl_ran_gaussian(r, 1.0);
	}
	sbi_train_report rep;
	sbi_flow *f = train_flow(SBI_FLOW_MAF, y, c, N, 1, 1, 6, &rep);
	sbi_tape *t = sbi_tape_alloc();
	sbi_err err = { 0 };
	double cs[2] = { 0.25, 0.9 }, *s = malloc(20000 * sizeof *s);
	for (int k = 0; k < 2; k++) {
		CHECK(sbi_flow_sample(f, t, &cs[k], 20000, r, s, &err) == SBI_OK);
		double m = 0, v = 0;
		for (size_t i = 0; i < 20000; i++)
			m += s[i] / 20000;
		for (size_t i = 0; i < 20000; i++)
			v += (s[i] - m) * (s[i] - m) / 20000;
		CHECK_NEAR(m, 2 * cs[k] - 1, 0.05);
		CHECK_NEAR(sqrt(v), 0.3 + 0.2 * cs[k], 0.04);
	}
	/* log q at the conditional mean against the true density. */
	double ym = 2 * 0.9 - 1, lp;
	CHECK(sbi_flow_log_prob(f, t, &ym, 1, &cs[1], 1, 1, &lp, &err) == SBI_OK);
	CHECK_NEAR(lp, -0.5 * LOG_2PI - log(0.48), 0.1);
	sbi_train_report_free(&rep);
	sbi_tape_free(t);
	sbi_flow_free(f);
	gsl_rng_free(r);
	free(y), free(c), free(s);
}

/* Every dimension's transform sees the context, the first one too (it
 * gets context-only hidden units): with one transform, so no permutation
 * can move another dimension first, draws with the same noise at two
 * contexts differ in every column. nflows-style masks leave column 1 equal. */
TEST(flow_first_dimension_depends_on_context)
{
	for (int kind = SBI_FLOW_MAF; kind <= SBI_FLOW_NSF; kind++) {
		sbi_flow_config cfg = { .kind = kind, .dim = 2, .context = 3, .transforms = 1, .hidden = 16,
			.layers = 1, .bins = 6, .bound = 3.0, .act = SBI_ACT_TANH, .seed = 11 };
		sbi_err err = { 0 };
		sbi_flow *f = sbi_flow_alloc(&cfg, &err);
		CHECK(f != NULL);
		sbi_tape *t = sbi_tape_alloc();
		gsl_rng *r = sbi_rng_alloc();
		double c1[3] = { 0.5, -1.0, 2.0 }, c2[3] = { -1.5, 0.3, 0.0 }, s1[8], s2[8];
		sbi_rng_set_stream(r, 1, 9, 0);
		CHECK(sbi_flow_sample(f, t, c1, 4, r, s1, &err) == SBI_OK);
		sbi_rng_set_stream(r, 1, 9, 0);
		CHECK(sbi_flow_sample(f, t, c2, 4, r, s2, &err) == SBI_OK);
		for (int j = 0; j < 2; j++) {
			double diff = 0;
			for (int i = 0; i < 4; i++)
				diff += fabs(s1[2 * i + j] - s2[2 * i + j]);
			CHECK(diff > 1e-3);
		}
		gsl_rng_free(r);
		sbi_tape_free(t);
		sbi_flow_free(f);
	}
}

/* A mixture density network on a conditional two-component mixture with
 * correlated components: c ~ U(-1, 1), y | c ~ N((c, 2c), S1) or N((-c, 1), S2)
 * with probability 1/2 each, S1 = [[0.2^2, 0.8 * 0.2 * 0.3], [., 0.3^2]],
 * S2 = 0.25^2 I. The held-out mean log density reaches the truth's. */
static void
mixture(gsl_rng *r, double c, double *y)
{
	if (gsl_rng_uniform(r) < 0.5) {
		double a = gsl_ran_gaussian(r, 1.0), b = gsl_ran_gaussian(r, 1.0);
		y[0] = c + 0.2 * a;
		y[1] = 2 * c + 0.3 * (0.8 * a + 0.6 * b);
	} else {
		y[0] = -c + gsl_ran_gaussian(r, 0.25);
		y[1] = 1 + gsl_ran_gaussian(r, 0.25);
	}
}

static double
mixture_logp(double c, const double *y)
{
	double p1 = gsl_ran_bivariate_gaussian_pdf(y[0] - c, y[1] - 2 * c, 0.2, 0.3, 0.8);
	double p2 = gsl_ran_gaussian_pdf(y[0] + c, 0.25) * gsl_ran_gaussian_pdf(y[1] - 1, 0.25);
	return log(0.5 * p1 + 0.5 * p2);
}

TEST(flow_mdn_fits_conditional_mixture)
{
	enum { N = 6000, M = 3000 };
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, 5, 9, 0);
	double *y = malloc(N * 2 * sizeof *y), *c = malloc(N * sizeof *c);
	double *yt = malloc(M * 2 * sizeof *yt), *ct = malloc(M * sizeof *ct), *lp = malloc(M * sizeof *lp);
	for (size_t i = 0; i < N; i++)
		mixture(r, c[i] = gsl_ran_flat(r, -1, 1), y + 2 * i);
	for (size_t i = 0; i < M; i++)
		mixture(r, ct[i] = gsl_ran_flat(r, -1, 1), yt + 2 * i);
	sbi_train_report rep;
	sbi_flow *f = train_flow(SBI_FLOW_MDN, y, c, N, 2, 1, 8, &rep);
	sbi_tape *t = sbi_tape_alloc();
	sbi_err err = { 0 };
	CHECK(sbi_flow_log_prob(f, t, yt, 0, ct, 0, M, lp, &err) == SBI_OK);
	double model = 0, truth = 0;
	for (size_t i = 0; i < M; i++) {
		model += lp[i] / M;
		truth += mixture_logp(ct[i], yt + 2 * i) / M;
	}
	fprintf(stderr, "  MDN: held-out mean log q = %.4f, truth %.4f (%zu epochs)\n", model, truth, rep.epochs);
	CHECK_NEAR(model, truth, 0.06);
	/* Samples at c = 0.5: the mean of y2 is (1 + 1) / 2 = 1, of y1 (0.5 - 0.5) / 2 = 0. */
	double c0 = 0.5, *s = malloc(20000 * 2 * sizeof *s), m1 = 0, m2 = 0;
	CHECK(sbi_flow_sample(f, t, &c0, 20000, r, s, &err) == SBI_OK);
	for (size_t i = 0; i < 20000; i++)
		m1 += s[2 * i] / 20000, m2 += s[2 * i + 1] / 20000;
	CHECK_NEAR(m1, 0.0, 0.05);
	CHECK_NEAR(m2, 1.0, 0.05);
	/* Spreads: var y1 = (0.2^2 + 0.25^2) / 2 + 0.5^2 = 0.301, var y2 = (0.3^2 + 0.25^2) / 2 = 0.076:
	 * sampling through a wrong precision factor misses these. */
	double v1 = 0, v2 = 0;
	for (size_t i = 0; i < 20000; i++)
		v1 += (s[2 * i] - m1) * (s[2 * i] - m1) / 20000, v2 += (s[2 * i + 1] - m2) * (s[2 * i + 1] - m2) / 20000;
	CHECK_NEAR(v1, 0.301, 0.02);
	CHECK_NEAR(v2, 0.076, 0.01);
	/* A save/load round trip gives the same densities. */
	unsigned char *blob;
	size_t len;
	CHECK(sbi_flow_save(f, &blob, &len, &err) == SBI_OK);
	sbi_flow *g = sbi_flow_load(blob, len, &err);
	CHECK(g != NULL);
	double lp1[4], lp2[4]; /* same batch size: GEMM blocking depends on it */
	CHECK(sbi_flow_log_prob(f, t, yt, 0, ct, 0, 4, lp1, &err) == SBI_OK);
	CHECK(sbi_flow_log_prob(g, t, yt, 0, ct, 0, 4, lp2, &err) == SBI_OK);
	for (int i = 0; i < 4; i++)
		CHECK(lp2[i] == lp1[i]);
	sbi_flow_free(g);
	sbi_free(blob);
	sbi_train_report_free(&rep);
	sbi_tape_free(t);
	sbi_flow_free(f);
	gsl_rng_free(r);
	free(y), free(c), free(yt), free(ct), free(lp), free(s);
}

TEST(flow_save_load_round_trip_and_determinism)
{
	enum { N = 1500 };
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, 5, 9, 0);
	double *y = malloc(N * 2 * sizeof *y), c1[1] = { 0.3 };
	double *c = malloc(N * sizeof *c);
	banana(r, N, y);
	for (size_t i = 0; i < N; i++)
		c[i] = y[2 * i] + 0.1 * gsl_ran_gaussian(r, 1.0);
	sbi_train_report rep, rep2;
	sbi_flow *f = train_flow(SBI_FLOW_NSF, y, c, N, 2, 1, 7, &rep);
	sbi_flow *f2 = train_flow(SBI_FLOW_NSF, y, c, N, 2, 1, 7, &rep2);
	unsigned char *b1, *b2, *b3;
	size_t n1, n2, n3;
	sbi_err err = { 0 };
	CHECK(sbi_flow_save(f, &b1, &n1, &err) == SBI_OK);
	CHECK(sbi_flow_save(f2, &b2, &n2, &err) == SBI_OK);
	CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0); /* same seed: same weights */
	sbi_flow *g = sbi_flow_load(b1, n1, &err);
	CHECK(g != NULL);
	CHECK(sbi_flow_save(g, &b3, &n3, &err) == SBI_OK);
	CHECK(n3 == n1 && memcmp(b1, b3, n1) == 0);
	/* Same densities and the same samples for the same noise. */
	sbi_tape *t = sbi_tape_alloc();
	double lf[10], lg[10], sf[20], sg[20];
	sbi_flow_log_prob(f, t, y, 0, c, 0, 10, lf, &err);
	sbi_flow_log_prob(g, t, y, 0, c, 0, 10, lg, &err);
	CHECK(memcmp(lf, lg, sizeof lf) == 0);
	sbi_rng_set_stream(r, 1, 1, 1);
	sbi_flow_sample(f, t, c1, 10, r, sf, &err);
	sbi_rng_set_stream(r, 1, 1, 1);
	sbi_flow_sample(g, t, c1, 10, r, sg, &err);
	CHECK(memcmp(sf, sg, sizeof sf) == 0);
	/* A flipped byte is detected. */
	b1[n1 / 2] ^= 1;
	CHECK(sbi_flow_load(b1, n1, &err) == NULL);
	CHECK_CONTAINS(err.msg, "checksum");
	sbi_free(b1), sbi_free(b2), sbi_free(b3);
	sbi_flow_free(f), sbi_flow_free(f2), sbi_flow_free(g);
	sbi_train_report_free(&rep), sbi_train_report_free(&rep2);
	sbi_tape_free(t);
	gsl_rng_free(r);
	free(y), free(c);
}

/* sbi_fit_classifier, the contrastive loss: x = theta + noise, so the fitted
 * log-ratio at x = 0.5 is higher for theta near 0.5 than far from it; the
 * same seed gives the same model. */
TEST(classifier_fit_ranks_the_true_theta_and_is_deterministic)
{
	enum { N = 2000 };
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, 6, 9, 0);
	double *th = malloc(N * sizeof *th), *x = malloc(N * sizeof *x);
	for (size_t i = 0; i < N; i++) {
		th[i] = gsl_ran_flat(r, -1, 1);
		x[i] = th[i] + 0.1 * gsl_ran_gaussian(r, 1.0);
	}
	sbi_classifier_config cfg = { .dtheta = 1, .dx = 1, .hidden = 16, .layers = 1, .residual = 1,
		.act = SBI_ACT_RELU, .seed = 3 };
	sbi_train_opts o = { .batch = 100, .max_epochs = 30, .patience = 5, .lr = 2e-3, .val_fraction = 0.1,
		.clip = 5.0, .seed = 3, .quiet = 1, .label = "train" };
	sbi_train_report rep, rep2;
	sbi_err err = { 0 };
	sbi_classifier *c, *c2;
	CHECK(sbi_fit_classifier(&cfg, 5, &o, th, x, N, &c, &rep, &err) == SBI_OK);
	CHECK(sbi_fit_classifier(&cfg, 5, &o, th, x, N, &c2, &rep2, &err) == SBI_OK);
	unsigned char *b1, *b2;
	size_t n1, n2;
	CHECK(sbi_classifier_save(c, &b1, &n1, &err) == SBI_OK);
	CHECK(sbi_classifier_save(c2, &b2, &n2, &err) == SBI_OK);
	CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
	sbi_tape *t = sbi_tape_alloc();
	double cand[2] = { 0.5, -0.7 }, xo = 0.5, lr[2];
	CHECK(sbi_classifier_log_ratio(c, t, cand, &xo, 2, lr, &err) == SBI_OK);
	CHECK(lr[0] > lr[1] + 1.0);
	/* A failure leaves nothing to free: too few rows for a validation split. */
	sbi_classifier *c3 = (sbi_classifier *)1;
	sbi_train_report rep3;
	CHECK(sbi_fit_classifier(&cfg, 5, &o, th, x, 1, &c3, &rep3, &err) != SBI_OK);
	CHECK(c3 == NULL && rep3.train_loss == NULL);
	sbi_free(b1), sbi_free(b2);
	sbi_tape_free(t);
	sbi_classifier_free(c), sbi_classifier_free(c2);
	sbi_train_report_free(&rep), sbi_train_report_free(&rep2);
	gsl_rng_free(r);
	free(th), free(x);
}

/* The shared-context log density (the atomic loss's wide contexts): the
 * same values and weight gradients as the context repeated on every row,
 * up to float rounding, for a MAF and an NSF. */
TEST(shared_context_log_prob_matches_repeated_context)
{
	enum { R = 4, K = 3, D = 2, C = 9 };
	for (int kind = SBI_FLOW_MAF; kind <= SBI_FLOW_NSF; kind++) {
		sbi_flow_config cfg = { .kind = kind, .dim = D, .context = C, .transforms = 2, .hidden = 8, .layers = 2,
			.bins = 4, .bound = 3.0, .act = SBI_ACT_TANH, .seed = 5 };
		sbi_err err = { 0 };
		sbi_flow *f = sbi_flow_alloc(&cfg, &err);
		CHECK(f != NULL);
		float y[R * K * D], c[R * C], crep[R * K * C];
		for (size_t i = 0; i < R * K * D; i++)
			y[i] = (float)sin(0.7 * (double)i);
		for (size_t i = 0; i < R * C; i++)
			c[i] = (float)cos(1.3 * (double)i);
		for (size_t i = 0; i < R * K; i++)
			memcpy(crep + i * C, c + (i / K) * C, C * sizeof(float));
		size_t np;
		sbi_param **ps = sbi_flow_params(f, &np);
		float lp[2][R * K], g[2][64];
		for (int way = 0; way < 2; way++) {
			sbi_tape *t = sbi_tape_alloc();
			for (size_t p = 0; p < np; p++)
				memset(ps[p]->g, 0, ps[p]->rows * ps[p]->cols * sizeof(float));
			sbi_var vy = sbi_ad_const(t, y, R * K, D);
			sbi_var l = way ? sbi_flow_log_prob_std_rep(f, t, vy, sbi_ad_const(t, c, R, C), K)
			                : sbi_flow_log_prob_std(f, t, vy, sbi_ad_const(t, crep, R * K, C));
			memcpy(lp[way], sbi_ad_value(t, l), sizeof lp[way]);
			sbi_ad_backward(t, sbi_ad_mean(t, l));
			for (size_t p = 0; p < np && p < 64; p++) /* the last weight of each parameter */
				g[way][p] = ps[p]->g[ps[p]->rows * ps[p]->cols - 1];
			sbi_tape_free(t);
		}
		for (size_t i = 0; i < R * K; i++)
			CHECK_NEAR(lp[1][i], lp[0][i], 1e-5);
		for (size_t p = 0; p < np && p < 64; p++)
			CHECK_NEAR(g[1][p], g[0][p], 1e-5);
		sbi_flow_free(f);
	}
}
