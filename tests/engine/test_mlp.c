/* MLP regressors and autoencoders (engine/nn/mlp.c): gradients against
 * finite differences, a known smooth function fitted to a tolerance,
 * least squares, the autoencoder against PCA on a curved 2-D manifold,
 * model files, determinism and bad inputs. */
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "sbi/act.h"
#include "sbi/alloc.h"
#include "sbi/mlp.h"

/* Pseudo-random value in [lo, hi) from a counter (no global RNG state). */
static double
rnd(unsigned *state, double lo, double hi)
{
	*state = *state * 1664525u + 1013904223u;
	return lo + (hi - lo) * (double)(*state >> 8) / (double)(1u << 24);
}

static sbi_train_opts
opts(size_t max_epochs, double lr)
{
	sbi_train_opts o = { .batch = 64, .max_epochs = max_epochs, .patience = 30, .lr = lr,
		.val_fraction = 0.1, .clip = 5, .seed = 3, .quiet = 1, .label = "test" };
	return o;
}

/* The loss of m on fixed standardized rows, with or without gradients. */
static double
loss_of(sbi_mlp *m, const float *xs, const float *ys, size_t n, int grad)
{
	sbi_tape *t = sbi_tape_alloc();
	sbi_var l = sbi_mlp_loss(m, t, xs, ys, n);
	double v = sbi_ad_value(t, l)[0];
	if (grad)
		sbi_ad_backward(t, l);
	CHECK(!sbi_tape_failed(t));
	sbi_tape_free(t);
	return v;
}

/* d loss / d every weight against central differences, for each activation
 * and for an autoencoder's linear code layer. */
TEST(test_mlp_gradients)
{
	int acts[] = { SBI_ACT_TANH, SBI_ACT_RELU, SBI_ACT_ELU, SBI_ACT_SILU };
	for (size_t a = 0; a < 5; a++) {
		sbi_mlp_config cfg = { .layers = 3, .width = { 3, 5, 4, 2 }, .act = acts[a % 4], .seed = 11 + a };
		if (a == 4) /* an autoencoder 3 -> 5 -> 2 -> 3 */
			cfg = (sbi_mlp_config){ .layers = 3, .width = { 3, 5, 2, 3 }, .code = 2, .act = SBI_ACT_TANH, .seed = 5 };
		sbi_err err = { 0 };
		sbi_mlp *m = sbi_mlp_alloc(&cfg, &err);
		CHECK(m != NULL);
		float xs[7 * 3], ys[7 * 3];
		unsigned st = 17;
		for (size_t i = 0; i < 21; i++)
			xs[i] = (float)rnd(&st, -1.7, 1.9), ys[i] = (float)rnd(&st, -1.1, 1.3);
		size_t np;
		sbi_param **ps = sbi_mlp_params(m, &np);
		CHECK(np == 6);
		for (size_t i = 0; i < np; i++)
			memset(ps[i]->g, 0, ps[i]->rows * ps[i]->cols * sizeof(float));
		loss_of(m, xs, ys, 7, 1);
		double worst = 0;
		const float eps = 1e-2f;
		for (size_t i = 0; i < np; i++)
			for (size_t e = 0; e < ps[i]->rows * ps[i]->cols; e++) {
				float keep = ps[i]->w[e];
				ps[i]->w[e] = keep + eps;
				double up = loss_of(m, xs, ys, 7, 0);
				ps[i]->w[e] = keep - eps;
				double dn = loss_of(m, xs, ys, 7, 0);
				ps[i]->w[e] = keep;
				double fd = (up - dn) / (2 * eps), ad = ps[i]->g[e];
				double rel = fabs(fd - ad) / (fabs(fd) + fabs(ad) + 1e-3);
				worst = rel > worst ? rel : worst;
			}
		/* float32 central differences with eps 1e-2: truncation error
		 * O(eps^2) ~ 1e-4 relative; relu's kinks are rarely within eps. */
		if (!(worst < 2e-2))
			fprintf(stderr, "  activation case %zu: worst relative error %g\n", a, worst);
		CHECK(worst < 2e-2);
		sbi_mlp_free(m);
	}
}

/* y = sin(2 x1) + x2^2 / 2 + x1 x2 on [-1.5, 1.5]^2, noise-free: a 2x32
 * tanh network reaches an RMSE far below the function's sd (about 0.8). */
TEST(test_mlp_fits_smooth_function)
{
	size_t n = 4000, nt = 1000;
	double *x = malloc((n + nt) * 2 * sizeof(double)), *y = malloc((n + nt) * sizeof(double));
	unsigned st = 99;
	for (size_t i = 0; i < n + nt; i++) {
		double a = rnd(&st, -1.5, 1.5), b = rnd(&st, -1.5, 1.5);
		x[2 * i] = a, x[2 * i + 1] = b;
		y[i] = sin(2 * a) + 0.5 * b * b + a * b;
	}
	sbi_mlp_config cfg = { .layers = 3, .width = { 2, 32, 32, 1 }, .act = SBI_ACT_TANH, .seed = 1 };
	sbi_train_opts o = opts(400, 3e-3);
	sbi_mlp *m;
	sbi_train_report rep;
	sbi_err err = { 0 };
	CHECK(sbi_mlp_fit(&cfg, &o, x, y, n, &m, &rep, &err) == SBI_OK);
	double *pred = malloc(nt * sizeof(double));
	sbi_tape *t = sbi_tape_alloc();
	CHECK(sbi_mlp_apply(m, t, x + 2 * n, nt, pred, &err) == SBI_OK);
	double ss = 0;
	for (size_t i = 0; i < nt; i++)
		ss += (pred[i] - y[n + i]) * (pred[i] - y[n + i]);
	double rmse = sqrt(ss / (double)nt);
	fprintf(stderr, "  smooth function: held-out RMSE %.4f after %zu epochs\n", rmse, rep.epochs);
	CHECK(rmse < 0.05);
	CHECK(rep.best_val_loss < 0.01);

	/* The model file round trip gives the same predictions, bit for bit. */
	unsigned char *buf;
	size_t len;
	CHECK(sbi_mlp_save(m, &buf, &len, &err) == SBI_OK);
	sbi_mlp *m2 = sbi_mlp_load(buf, len, &err);
	CHECK(m2 != NULL);
	double *pred2 = malloc(nt * sizeof(double));
	CHECK(sbi_mlp_apply(m2, t, x + 2 * n, nt, pred2, &err) == SBI_OK);
	CHECK(memcmp(pred, pred2, nt * sizeof(double)) == 0);
	/* Damaged files are refused. */
	buf[len / 2] ^= 1;
	CHECK(sbi_mlp_load(buf, len, &err) == NULL);
	CHECK_CONTAINS(err.msg, "checksum");
	CHECK(sbi_mlp_load(buf, 10, &err) == NULL);

	/* The same seed gives the same model file. */
	sbi_mlp *m3;
	sbi_train_report rep3;
	o.max_epochs = 5;
	CHECK(sbi_mlp_fit(&cfg, &o, x, y, 500, &m3, &rep3, &err) == SBI_OK);
	unsigned char *b3, *b4;
	size_t l3, l4;
	sbi_mlp_save(m3, &b3, &l3, &err);
	sbi_mlp_free(m3);
	sbi_train_report_free(&rep3);
	CHECK(sbi_mlp_fit(&cfg, &o, x, y, 500, &m3, &rep3, &err) == SBI_OK);
	sbi_mlp_save(m3, &b4, &l4, &err);
	CHECK(l3 == l4 && memcmp(b3, b4, l3) == 0);
	sbi_free(b3), sbi_free(b4), sbi_free(buf);
	sbi_mlp_free(m3);
	sbi_train_report_free(&rep3);
	sbi_mlp_free(m), sbi_mlp_free(m2);
	sbi_train_report_free(&rep);
	sbi_tape_free(t);
	free(x), free(y), free(pred), free(pred2);
}

/* Least squares recovers an exact affine map (float32 weights: 1e-5 of
 * the outputs' scale), and a collinear column does not break it. */
TEST(test_mlp_linear)
{
	size_t n = 200;
	double x[200 * 3], y[200 * 2];
	unsigned st = 5;
	for (size_t i = 0; i < n; i++) {
		double a = rnd(&st, -2, 3), b = rnd(&st, 0, 10);
		x[3 * i] = a, x[3 * i + 1] = b, x[3 * i + 2] = 2 * a; /* collinear with column 1 */
		y[2 * i] = 2 * a - b + 3, y[2 * i + 1] = 0.5 * b - 7;
	}
	sbi_mlp *m;
	sbi_err err = { 0 };
	CHECK(sbi_mlp_fit_linear(x, y, n, 3, 2, &m, &err) == SBI_OK);
	double q[2 * 3] = { 1, 1, 2, -1.5, 4, -3 }, out[4];
	sbi_tape *t = sbi_tape_alloc();
	CHECK(sbi_mlp_apply(m, t, q, 2, out, &err) == SBI_OK);
	CHECK_NEAR(out[0], 2 - 1 + 3, 1e-4);
	CHECK_NEAR(out[1], 0.5 - 7, 1e-4);
	CHECK_NEAR(out[2], -3 - 4 + 3, 1e-4);
	CHECK_NEAR(out[3], 2 - 7, 1e-4);
	CHECK(sbi_mlp_encode(m, t, q, 1, out, &err) == SBI_EINVAL);
	sbi_mlp_free(m);
	CHECK(sbi_mlp_fit_linear(x, y, 3, 3, 2, &m, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "more rows than columns");
	sbi_tape_free(t);
}

/* PCA's reconstruction error with k components: the mean squared
 * residual of the centred data after projecting on the top k right
 * singular vectors (GSL's SVD), i.e. sum of the other singular values
 * squared over n d. */
static double
pca_mse(const double *x, size_t n, size_t d, size_t k)
{
	gsl_matrix *A = gsl_matrix_alloc(n, d), *V = gsl_matrix_alloc(d, d);
	gsl_vector *S = gsl_vector_alloc(d), *w = gsl_vector_alloc(d);
	for (size_t j = 0; j < d; j++) {
		double mean = 0;
		for (size_t i = 0; i < n; i++)
			mean += x[i * d + j] / (double)n;
		for (size_t i = 0; i < n; i++)
			gsl_matrix_set(A, i, j, x[i * d + j] - mean);
	}
	gsl_linalg_SV_decomp(A, V, S, w);
	double rest = 0;
	for (size_t j = k; j < d; j++)
		rest += gsl_vector_get(S, j) * gsl_vector_get(S, j);
	gsl_matrix_free(A), gsl_matrix_free(V), gsl_vector_free(S), gsl_vector_free(w);
	return rest / (double)(n * d);
}

/* A 2-D latent (u, v) embedded nonlinearly in 10-D: x_j = sin(a_j u + b_j v
 * + c_j). A 2-unit bottleneck autoencoder reconstructs it with less than
 * half the error of PCA with 2 components (the manifold is curved, so no
 * plane holds it). */
TEST(test_autoencoder_beats_pca)
{
	size_t n = 3000, d = 10, k = 2;
	double *x = malloc(n * d * sizeof(double)), *z = malloc(n * k * sizeof(double)), *r = malloc(n * d * sizeof(double));
	double a[10], b[10], c[10];
	unsigned st = 31;
	for (size_t j = 0; j < d; j++)
		a[j] = rnd(&st, -2, 2), b[j] = rnd(&st, -2, 2), c[j] = rnd(&st, 0, 3);
	for (size_t i = 0; i < n; i++) {
		double u = rnd(&st, -1, 1), v = rnd(&st, -1, 1);
		for (size_t j = 0; j < d; j++)
			x[i * d + j] = sin(a[j] * u + b[j] * v + c[j]);
	}
	sbi_mlp_config cfg = { .layers = 4, .width = { 10, 32, 2, 32, 10 }, .code = 2, .act = SBI_ACT_TANH, .seed = 2 };
	sbi_train_opts o = opts(400, 3e-3);
	sbi_mlp *m;
	sbi_train_report rep;
	sbi_err err = { 0 };
	CHECK(sbi_mlp_fit(&cfg, &o, x, NULL, n, &m, &rep, &err) == SBI_OK);
	sbi_tape *t = sbi_tape_alloc();
	CHECK(sbi_mlp_encode(m, t, x, n, z, &err) == SBI_OK);
	CHECK(sbi_mlp_decode(m, t, z, n, r, &err) == SBI_OK);
	double ae = 0;
	for (size_t e = 0; e < n * d; e++)
		ae += (r[e] - x[e]) * (r[e] - x[e]) / (double)(n * d);
	double pca = pca_mse(x, n, d, k);
	fprintf(stderr, "  manifold: autoencoder MSE %.5f, PCA(2) MSE %.5f, %zu epochs\n", ae, pca, rep.epochs);
	CHECK(ae < 0.5 * pca);
	/* apply on an autoencoder is the reconstruction. */
	double *r2 = malloc(n * d * sizeof(double));
	CHECK(sbi_mlp_apply(m, t, x, n, r2, &err) == SBI_OK);
	double diff = 0;
	for (size_t e = 0; e < n * d; e++)
		diff = fmax(diff, fabs(r2[e] - r[e]));
	CHECK(diff < 1e-5);
	sbi_mlp_free(m);
	sbi_train_report_free(&rep);
	sbi_tape_free(t);
	free(x), free(z), free(r), free(r2);
}

TEST(test_mlp_bad_inputs)
{
	double x[20], y[10];
	for (size_t i = 0; i < 20; i++)
		x[i] = (double)i;
	for (size_t i = 0; i < 10; i++)
		y[i] = (double)i;
	x[7] = NAN;
	sbi_mlp_config cfg = { .layers = 2, .width = { 2, 4, 1 }, .act = SBI_ACT_TANH, .seed = 1 };
	sbi_train_opts o = opts(2, 1e-3);
	sbi_mlp *m;
	sbi_train_report rep;
	sbi_err err = { 0 };
	CHECK(sbi_mlp_fit(&cfg, &o, x, y, 10, &m, &rep, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "x: row 4, column 2");
	x[7] = 1;
	y[9] = INFINITY;
	CHECK(sbi_mlp_fit(&cfg, &o, x, y, 10, &m, &rep, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "y: row 10");
	cfg.layers = 0;
	CHECK(sbi_mlp_fit(&cfg, &o, x, y, 10, &m, &rep, &err) == SBI_EINVAL);
	cfg = (sbi_mlp_config){ .layers = 2, .width = { 2, 4, 3 }, .code = 1, .act = SBI_ACT_TANH };
	CHECK(sbi_mlp_alloc(&cfg, &err) == NULL);
	CHECK_CONTAINS(err.msg, "autoencoder");
	cfg = (sbi_mlp_config){ .layers = 2, .width = { 2, 4, 1 }, .act = 99 };
	CHECK(sbi_mlp_alloc(&cfg, &err) == NULL);
}
