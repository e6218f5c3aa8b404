/* Every AD operation's gradient against central finite differences. The
 * loss is mean(op(inputs) * R) with a fixed random R, so every output
 * element's gradient path is exercised; inputs avoid round numbers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sbi/ad.h"
#include "sbi/alloc.h"

typedef sbi_var (*build_fn)(sbi_tape *t, sbi_var *in);

/* Pseudo-random value in [lo, hi) from a counter (no global RNG state). */
static float
rnd(unsigned *state, float lo, float hi)
{
	*state = *state * 1664525u + 1013904223u;
	return lo + (hi - lo) * (float)(*state >> 8) / (float)(1u << 24);
}

/* Evaluates the loss with parameters ps; with grad = 1 also back-propagates. */
static double
loss_of(build_fn build, sbi_param **ps, int np, const float *R, int grad, size_t *rows_out)
{
	sbi_tape *t = sbi_tape_alloc();
	sbi_var in[5];
	for (int i = 0; i < np; i++)
		in[i] = sbi_ad_param(t, ps[i]);
	sbi_var y = build(t, in);
	size_t n = sbi_ad_rows(t, y) * sbi_ad_cols_of(t, y);
	sbi_var r = sbi_ad_const(t, R, sbi_ad_rows(t, y), sbi_ad_cols_of(t, y));
	sbi_var loss = sbi_ad_mean(t, sbi_ad_mul(t, y, r));
	double v = sbi_ad_value(t, loss)[0];
	if (grad)
		sbi_ad_backward(t, loss);
	CHECK(!sbi_tape_failed(t));
	if (rows_out)
		*rows_out = n;
	sbi_tape_free(t);
	return v;
}

/* Checks d loss / d every input element; returns the worst relative error. */
static double
grad_check(build_fn build, sbi_param **ps, int np, float eps)
{
	float R[4096];
	unsigned st = 7;
	for (int i = 0; i < 4096; i++)
		R[i] = rnd(&st, -1.3f, 1.7f);
	for (int i = 0; i < np; i++)
		memset(ps[i]->g, 0, ps[i]->rows * ps[i]->cols * sizeof(float));
	size_t nout;
	loss_of(build, ps, np, R, 1, &nout);
	CHECK(nout <= 4096);
	double worst = 0;
	for (int i = 0; i < np; i++)
		for (size_t e = 0; e < ps[i]->rows * ps[i]->cols; e++) {
			if (ps[i]->mask && ps[i]->mask[e] == 0)
				continue;
			float keep = ps[i]->w[e];
			ps[i]->w[e] = keep + eps;
			double up = loss_of(build, ps, np, R, 0, NULL);
			ps[i]->w[e] = keep - eps;
			double dn = loss_of(build, ps, np, R, 0, NULL);
			ps[i]->w[e] = keep;
			double fd = (up - dn) / (2 * eps), ad = ps[i]->g[e];
			double err = fabs(fd - ad) / (fabs(fd) + fabs(ad) + 1e-3);
			if (err > worst)
				worst = err;
		}
	return worst;
}

static sbi_param *
rand_param(size_t r, size_t c, unsigned seed, float lo, float hi)
{
	sbi_param *p = sbi_param_alloc(r, c);
	for (size_t i = 0; i < r * c; i++)
		p->w[i] = rnd(&seed, lo, hi);
	return p;
}

#define GRAD_OK(build, ps, np, tol)                                     \
	do { double e_ = grad_check(build, ps, np, 1e-2f);              \
		if (!(e_ < (tol))) { check_failures++;                  \
		fprintf(stderr, "  %s: relative gradient error %.3g\n", #build, e_); } } while (0)

static void
free_params(sbi_param **ps, int n)
{
	for (int i = 0; i < n; i++)
		sbi_param_free(ps[i]);
}

/* ---- one builder per operation ---- */
static sbi_var b_linear(sbi_tape *t, sbi_var *in) { return sbi_ad_linear(t, in[0], in[1], in[2]); }
static sbi_var b_linear2(sbi_tape *t, sbi_var *in) { return sbi_ad_linear2(t, in[0], in[1], in[2], in[3], in[4]); }
/* One node as both operands: its gradient gets both contributions. */
static sbi_var b_add_self(sbi_tape *t, sbi_var *in) { return sbi_ad_add(t, in[0], in[0]); }
static sbi_var b_mul_self(sbi_tape *t, sbi_var *in) { return sbi_ad_mul(t, in[0], in[0]); }
/* A branch the loss does not use (its gradient is zero) next to one it does. */
static sbi_var b_unused(sbi_tape *t, sbi_var *in)
{
	sbi_ad_tanh(t, sbi_ad_linear(t, in[0], in[1], -1));
	return sbi_ad_tanh(t, sbi_ad_scale(t, in[0], 0.7f));
}
static sbi_var b_linear_tanh(sbi_tape *t, sbi_var *in) { return sbi_ad_linear_tanh(t, in[0], in[1], in[2]); }
static sbi_var b_matmul(sbi_tape *t, sbi_var *in) { return sbi_ad_matmul(t, in[0], in[1]); }
static sbi_var b_add(sbi_tape *t, sbi_var *in) { return sbi_ad_add(t, in[0], in[1]); }
static sbi_var b_sub(sbi_tape *t, sbi_var *in) { return sbi_ad_sub(t, in[0], in[1]); }
static sbi_var b_mul(sbi_tape *t, sbi_var *in) { return sbi_ad_mul(t, in[0], in[1]); }
static sbi_var b_scale(sbi_tape *t, sbi_var *in) { return sbi_ad_add_scalar(t, sbi_ad_scale(t, in[0], -2.385f), 0.5f); }
static sbi_var b_relu(sbi_tape *t, sbi_var *in) { return sbi_ad_relu(t, in[0]); }
static sbi_var b_tanh(sbi_tape *t, sbi_var *in) { return sbi_ad_tanh(t, in[0]); }
static sbi_var b_elu(sbi_tape *t, sbi_var *in) { return sbi_ad_elu(t, in[0]); }
static sbi_var b_silu(sbi_tape *t, sbi_var *in) { return sbi_ad_silu(t, in[0]); }
static sbi_var b_softplus(sbi_tape *t, sbi_var *in) { return sbi_ad_softplus(t, in[0]); }
static sbi_var b_logsig(sbi_tape *t, sbi_var *in) { return sbi_ad_log_sigmoid(t, in[0]); }
static sbi_var b_exp(sbi_tape *t, sbi_var *in) { return sbi_ad_exp(t, in[0]); }
static sbi_var b_log(sbi_tape *t, sbi_var *in) { return sbi_ad_log(t, in[0]); }
static sbi_var b_square(sbi_tape *t, sbi_var *in) { return sbi_ad_square(t, in[0]); }
static sbi_var b_cols(sbi_tape *t, sbi_var *in) { return sbi_ad_cols(t, in[0], 1, 2); }
static sbi_var b_concat(sbi_tape *t, sbi_var *in) { return sbi_ad_concat(t, in[0], in[1]); }
static const int perm3[3] = { 2, 0, 1 };
static sbi_var b_permute(sbi_tape *t, sbi_var *in) { return sbi_ad_permute_cols(t, in[0], perm3); }
static sbi_var b_reshape(sbi_tape *t, sbi_var *in) { return sbi_ad_logsumexp_rows(t, sbi_ad_reshape(t, in[0], 6, 2)); }
static sbi_var b_sumrows(sbi_tape *t, sbi_var *in) { return sbi_ad_sum_rows(t, in[0]); }
static sbi_var b_lse(sbi_tape *t, sbi_var *in) { return sbi_ad_logsumexp_rows(t, in[0]); }
static sbi_var b_rqs_y(sbi_tape *t, sbi_var *in)
{
	sbi_var y, ld;
	sbi_ad_rqs(t, in[0], in[1], 4, 2.0f, 0, &y, &ld);
	return y;
}
static sbi_var b_rqs_ld(sbi_tape *t, sbi_var *in)
{
	sbi_var y, ld;
	sbi_ad_rqs(t, in[0], in[1], 4, 2.0f, 0, &y, &ld);
	return ld;
}
static sbi_var b_rqs_both(sbi_tape *t, sbi_var *in)
{
	sbi_var y, ld;
	sbi_ad_rqs(t, in[0], in[1], 5, 3.0f, 0, &y, &ld);
	return sbi_ad_add(t, sbi_ad_square(t, y), ld);
}

TEST(ad_grad_linear_and_matmul)
{
	sbi_param *p[3] = { rand_param(5, 4, 1, -1.2f, 1.4f), rand_param(4, 3, 2, -0.9f, 1.1f),
		rand_param(1, 3, 3, -0.5f, 0.6f) };
	GRAD_OK(b_linear, p, 3, 2e-2);
	GRAD_OK(b_matmul, p, 2, 2e-2);
	GRAD_OK(b_unused, p, 2, 2e-2);
	GRAD_OK(b_add_self, p, 1, 2e-2);
	GRAD_OK(b_mul_self, p, 1, 2e-2);
	/* A mask: masked weights get no gradient and do not matter. */
	float mask[12] = { 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1 };
	p[1]->mask = mask;
	for (int i = 0; i < 12; i++)
		p[1]->w[i] *= mask[i];
	GRAD_OK(b_linear, p, 3, 2e-2);
	memset(p[1]->g, 0, sizeof(float) * 12);
	loss_of(b_linear, p, 3, (float[15]){ 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 4, 5, 6 }, 1, NULL);
	for (int i = 0; i < 12; i++)
		if (mask[i] == 0)
			CHECK(p[1]->g[i] == 0);
	free_params(p, 3);
}

/* x W + x2 W2 + b: its gradients, and its value is the two linears' sum;
 * tanh(x W + b) in one node: its gradients and values. */
TEST(ad_grad_linear2)
{
	sbi_param *p[5] = { rand_param(5, 4, 11, -1.2f, 1.4f), rand_param(4, 3, 12, -0.9f, 1.1f),
		rand_param(5, 2, 13, -1.0f, 1.0f), rand_param(2, 3, 14, -0.8f, 0.9f), rand_param(1, 3, 15, -0.5f, 0.6f) };
	GRAD_OK(b_linear2, p, 5, 2e-2);
	sbi_param *q[3] = { p[0], p[1], p[4] };
	GRAD_OK(b_linear_tanh, q, 3, 2e-2);
	sbi_tape *t = sbi_tape_alloc();
	sbi_var in[5];
	for (int i = 0; i < 5; i++)
		in[i] = sbi_ad_param(t, p[i]);
	sbi_var y = sbi_ad_linear2(t, in[0], in[1], in[2], in[3], in[4]);
	sbi_var z = sbi_ad_add(t, sbi_ad_linear(t, in[0], in[1], in[4]), sbi_ad_linear(t, in[2], in[3], -1));
	sbi_var u = sbi_ad_linear_tanh(t, in[0], in[1], in[4]), v = sbi_ad_tanh(t, sbi_ad_linear(t, in[0], in[1], in[4]));
	for (int i = 0; i < 15; i++) {
		CHECK(fabsf(sbi_ad_value(t, y)[i] - sbi_ad_value(t, z)[i]) < 1e-5f);
		CHECK(fabsf(sbi_ad_value(t, u)[i] - sbi_ad_value(t, v)[i]) < 1e-6f);
	}
	sbi_tape_free(t);
	free_params(p, 5);
}

TEST(ad_grad_elementwise_binary_with_broadcast)
{
	sbi_param *p[2] = { rand_param(4, 3, 4, -1.5f, 1.5f), rand_param(4, 3, 5, -1.5f, 1.5f) };
	GRAD_OK(b_add, p, 2, 2e-2);
	GRAD_OK(b_sub, p, 2, 2e-2);
	GRAD_OK(b_mul, p, 2, 2e-2);
	sbi_param *q[2] = { p[0], rand_param(1, 3, 6, -1.5f, 1.5f) };
	GRAD_OK(b_add, q, 2, 2e-2);
	GRAD_OK(b_mul, q, 2, 2e-2);
	sbi_param_free(q[1]);
	free_params(p, 2);
}

TEST(ad_grad_unary)
{
	sbi_param *p[1] = { rand_param(4, 5, 8, -2.1f, 2.3f) };
	/* Keep inputs away from relu/elu kinks at 0. */
	for (int i = 0; i < 20; i++)
		if (fabsf(p[0]->w[i]) < 0.05f)
			p[0]->w[i] += 0.2f;
	GRAD_OK(b_scale, p, 1, 2e-2);
	GRAD_OK(b_relu, p, 1, 2e-2);
	GRAD_OK(b_tanh, p, 1, 2e-2);
	GRAD_OK(b_elu, p, 1, 2e-2);
	GRAD_OK(b_silu, p, 1, 2e-2);
	GRAD_OK(b_softplus, p, 1, 2e-2);
	GRAD_OK(b_logsig, p, 1, 2e-2);
	GRAD_OK(b_exp, p, 1, 2e-2);
	GRAD_OK(b_square, p, 1, 2e-2);
	sbi_param *q[1] = { rand_param(4, 5, 9, 0.3f, 2.9f) };
	GRAD_OK(b_log, q, 1, 2e-2);
	free_params(p, 1);
	free_params(q, 1);
}

TEST(ad_grad_shape_and_reductions)
{
	sbi_param *p[2] = { rand_param(4, 3, 10, -1.5f, 1.5f), rand_param(4, 2, 11, -1.5f, 1.5f) };
	GRAD_OK(b_cols, p, 1, 2e-2);
	GRAD_OK(b_concat, p, 2, 2e-2);
	GRAD_OK(b_permute, p, 1, 2e-2);
	GRAD_OK(b_reshape, p, 1, 2e-2);
	GRAD_OK(b_sumrows, p, 1, 2e-2);
	GRAD_OK(b_lse, p, 1, 2e-2);
	free_params(p, 2);
}

TEST(ad_grad_rational_quadratic_spline)
{
	/* x: 6 x 2 inside and outside the bound; params 6 x 2*(3K-1). */
	sbi_param *p[2] = { rand_param(6, 2, 12, -2.6f, 2.6f), rand_param(6, 2 * 11, 13, -1.1f, 1.3f) };
	GRAD_OK(b_rqs_y, p, 2, 3e-2);
	GRAD_OK(b_rqs_ld, p, 2, 3e-2);
	sbi_param *q[2] = { rand_param(5, 3, 14, -2.9f, 2.9f), rand_param(5, 3 * 14, 15, -1.5f, 1.5f) };
	GRAD_OK(b_rqs_both, q, 2, 3e-2);
	free_params(p, 2);
	free_params(q, 2);
}

TEST(ad_rqs_is_monotone_invertible_and_logdet_matches)
{
	enum { NPTS = 200, K = 6 };
	float x[NPTS], prm[NPTS * (3 * K - 1)];
	unsigned st = 21;
	for (int i = 0; i < NPTS; i++)
		x[i] = -3.5f + 7.0f * (float)i / (NPTS - 1);
	for (int i = 0; i < NPTS * (3 * K - 1); i++)
		prm[i] = (i % (3 * K - 1) < 3 * K - 1) ? rnd(&st, -2, 2) : 0;
	/* The same spline for every row: copy row 0's parameters. */
	for (int i = 1; i < NPTS; i++)
		memcpy(prm + i * (3 * K - 1), prm, (3 * K - 1) * sizeof(float));
	sbi_tape *t = sbi_tape_alloc();
	sbi_var vx = sbi_ad_const(t, x, NPTS, 1), vp = sbi_ad_const(t, prm, NPTS, 3 * K - 1), y, ld, xb, ldb;
	sbi_ad_rqs(t, vx, vp, K, 3.0f, 0, &y, &ld);
	sbi_ad_rqs(t, y, vp, K, 3.0f, 1, &xb, &ldb);
	const float *yv = sbi_ad_value(t, y), *lv = sbi_ad_value(t, ld), *xv = sbi_ad_value(t, xb),
		    *lbv = sbi_ad_value(t, ldb);
	for (int i = 1; i < NPTS; i++)
		CHECK(yv[i] > yv[i - 1]);
	for (int i = 0; i < NPTS; i++) {
		CHECK_NEAR(xv[i], x[i], 2e-4);
		CHECK_NEAR(lbv[i], -lv[i], 2e-3);
	}
	/* log dy/dx against a central difference of y with step h. */
	const float h = 2e-3f;
	float xp[NPTS], xm[NPTS];
	for (int i = 0; i < NPTS; i++)
		xp[i] = x[i] + h, xm[i] = x[i] - h;
	sbi_var yp, ym, dummy;
	sbi_ad_rqs(t, sbi_ad_const(t, xp, NPTS, 1), vp, K, 3.0f, 0, &yp, &dummy);
	sbi_ad_rqs(t, sbi_ad_const(t, xm, NPTS, 1), vp, K, 3.0f, 0, &ym, &dummy);
	yv = sbi_ad_value(t, y), lv = sbi_ad_value(t, ld);
	for (int i = 0; i < NPTS; i++) {
		if (fabsf(x[i]) > 2.99f)
			continue;
		double fd = (sbi_ad_value(t, yp)[i] - sbi_ad_value(t, ym)[i]) / (2.0 * h);
		CHECK_NEAR(lv[i], log(fd), 0.01);
	}
	/* Identity tails. */
	CHECK(yv[0] == x[0] && lv[0] == 0);
	sbi_tape_free(t);
}

float sbi__ad_tanh_scalar(float x);

TEST(ad_fast_tanh_matches_libm)
{
	double worst = 0;
	for (int i = -200000; i <= 200000; i++) {
		float x = (float)i * 1e-4f;
		double e = fabs((double)sbi__ad_tanh_scalar(x) - tanh((double)x));
		worst = e > worst ? e : worst;
	}
	CHECK(worst < 1e-6);
	CHECK(sbi__ad_tanh_scalar(50.0f) == 1.0f || fabsf(sbi__ad_tanh_scalar(50.0f) - 1.0f) < 1e-6f);
	CHECK(sbi__ad_tanh_scalar(-1e-30f) <= 0);
}

float sbi__ad_vec_scalar(int which, float x);

/* |a - b| in units of b's float ulp (b from double-precision libm). */
static double
ulps(float a, double b)
{
	int ex;
	frexp(b, &ex);
	return fabs((double)a - b) / ldexp(1.0, ex - 24);
}

/* The fast tape's exp, log, softplus and sigmoid (ad.c) against libm in
 * double: exp and log within 2 ulp, softplus and sigmoid within 1e-6
 * relative, over every range they are used on. */
TEST(ad_fast_exp_log_match_libm)
{
	double we = 0, wl = 0, ws = 0, wg = 0;
	for (int i = -870000; i <= 880000; i++) {
		float x = (float)i * 1e-4f;
		we = fmax(we, ulps(sbi__ad_vec_scalar(0, x), exp((double)x)));
	}
	for (float x = 1e-37f; x < 1e37f; x *= 1.0001f)
		wl = fmax(wl, ulps(sbi__ad_vec_scalar(1, x), log((double)x)));
	for (int i = -400000; i <= 400000; i++) {
		float x = (float)i * 1e-4f;
		double sp = x > 20 ? x : log1p(exp((double)x)), sg = 1 / (1 + exp(-(double)x));
		ws = fmax(ws, fabs(sbi__ad_vec_scalar(2, x) - sp) / sp);
		wg = fmax(wg, fabs(sbi__ad_vec_scalar(3, x) - sg) / sg);
	}
	CHECK(we <= 2);
	CHECK(wl <= 2);
	CHECK(ws <= 1e-6);
	CHECK(wg <= 1e-6);
	CHECK(sbi__ad_vec_scalar(1, 1.0f) == 0.0f);
	CHECK(sbi__ad_vec_scalar(0, 0.0f) == 1.0f);
	CHECK(isnan(sbi__ad_vec_scalar(0, NAN)) && isnan(sbi__ad_vec_scalar(2, NAN)));
	if (getenv("SBI_TEST_VERBOSE"))
		fprintf(stderr, "exp %.2f ulp, log %.2f ulp, softplus %.2g, sigmoid %.2g\n", we, wl, ws, wg);
}

/* A fast tape (transposed input gradients, grouped bias gradients,
 * vectorized softplus and log) computes the same loss and gradients as a
 * default one up to float rounding: a MADE-shaped network, 40 rows of 50
 * hidden units (dX has 2,000 elements, so the transposed path runs),
 * evaluated twice in one pass (the cached transpose) and with softplus and
 * log on its output; loss within 1e-5 and every gradient within 1e-4 of
 * the largest. */
TEST(ad_fast_tape_matches_default)
{
	sbi_param *w0 = rand_param(3, 50, 41, -0.5f, 0.5f), *b0 = rand_param(1, 50, 42, -0.2f, 0.2f);
	sbi_param *w1 = rand_param(50, 50, 43, -0.2f, 0.2f), *b1 = rand_param(1, 50, 44, -0.2f, 0.2f);
	sbi_param *w2 = rand_param(50, 4, 45, -0.3f, 0.3f), *b2 = rand_param(1, 4, 46, -0.2f, 0.2f);
	sbi_param *ps[] = { w0, b0, w1, b1, w2, b2 };
	float x[40 * 3], loss[2], *g[2][6];
	unsigned seed = 47;
	for (size_t i = 0; i < 40 * 3; i++)
		x[i] = rnd(&seed, -2, 2);
	for (int fast = 0; fast < 2; fast++) {
		sbi_tape *t = sbi_tape_alloc();
		sbi_tape_set_fast(t, fast);
		for (size_t i = 0; i < 6; i++)
			memset(ps[i]->g, 0, ps[i]->rows * ps[i]->cols * sizeof(float));
		sbi_var total = -1;
		sbi_var h = sbi_ad_linear_tanh(t, sbi_ad_const(t, x, 40, 3), sbi_ad_param(t, w0), sbi_ad_param(t, b0));
		for (int rep = 0; rep < 2; rep++) {
			sbi_var h1 = sbi_ad_linear_tanh(t, h, sbi_ad_param(t, w1), sbi_ad_param(t, b1));
			sbi_var o = sbi_ad_linear(t, h1, sbi_ad_param(t, w2), sbi_ad_param(t, b2));
			sbi_var l = sbi_ad_mean(t, sbi_ad_log(t, sbi_ad_add_scalar(t, sbi_ad_softplus(t, o), 1e-3f)));
			total = total < 0 ? l : sbi_ad_add(t, total, l);
		}
		sbi_ad_backward(t, total);
		CHECK(!sbi_tape_failed(t));
		loss[fast] = sbi_ad_value(t, total)[0];
		for (size_t i = 0; i < 6; i++) {
			size_t n = ps[i]->rows * ps[i]->cols;
			g[fast][i] = malloc(n * sizeof(float));
			memcpy(g[fast][i], ps[i]->g, n * sizeof(float));
		}
		sbi_tape_free(t);
	}
	CHECK(fabsf(loss[0] - loss[1]) <= 1e-5f * fabsf(loss[0]));
	for (size_t i = 0; i < 6; i++) {
		size_t n = ps[i]->rows * ps[i]->cols;
		float big = 0, diff = 0;
		for (size_t e = 0; e < n; e++) {
			big = fmaxf(big, fabsf(g[0][i][e]));
			diff = fmaxf(diff, fabsf(g[0][i][e] - g[1][i][e]));
		}
		CHECK(big > 0 && diff <= 1e-4f * big);
		free(g[0][i]), free(g[1][i]);
		sbi_param_free(ps[i]);
	}
}

TEST(ad_tape_reuse_allocates_nothing_after_first_pass)
{
	sbi_param *w = rand_param(8, 8, 30, -1, 1);
	sbi_tape *t = sbi_tape_alloc();
	long before = 0;
	for (int pass = 0; pass < 5; pass++) {
		if (pass == 2)
			before = sbi_test_live_blocks();
		sbi_tape_reset(t);
		float x[64] = { 0.5f };
		sbi_var h = sbi_ad_tanh(t, sbi_ad_linear(t, sbi_ad_const(t, x, 8, 8), sbi_ad_param(t, w), -1));
		sbi_ad_backward(t, sbi_ad_mean(t, h));
	}
	CHECK(sbi_test_live_blocks() == before);
	sbi_tape_free(t);
	sbi_param_free(w);
}
