/* Multilayer perceptrons fitted by mean-squared error (see mlp.h).
 *
 * Model blob format (version 1, little-endian), then a BLAKE2b trailer:
 *   "SBIMLP\0\0", u32 version, u64 layers, u64 width[0..layers], u64 code,
 *   u32 act, u64 seed,
 *   f64 in_mean[width[0]], f64 in_std[width[0]],
 *   f64 out_mean[width[layers]], f64 out_std[width[layers]],
 *   u64 nparams, then per parameter: u64 rows, u64 cols, f32 values
 *   (W then b of each layer in order). */
#include <gsl/gsl_cblas.h> /* cblas_dgemm: the binary's BLAS (OpenBLAS), as ad.c's cblas_sgemm */
#include <gsl/gsl_multifit.h>
#include <gsl/gsl_randist.h>
#include <math.h>
#include <string.h>

#include "sbi/act.h"
#include "sbi/alloc.h"
#include "sbi/blob.h"
#include "sbi/mlp.h"
#include "sbi/rng.h"
#include "sbi/stats.h"

#define MLP_MAGIC "SBIMLP\0"
#define MLP_VERSION 1
#define MLP_MAX_WIDTH ((size_t)1 << 20)
/* Rows per block when applying: the tape's buffers stay a few MB. */
#define MLP_BLOCK 1024

struct sbi_mlp {
	sbi_mlp_config cfg;
	sbi_param **params; /* W_0, b_0, W_1, b_1, ... (owned) */
	size_t nparams;
	sbi_zscore in, out; /* the inputs' and outputs' standardization (owned) */
};

void
sbi_mlp_free(sbi_mlp *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nparams; i++)
		sbi_param_free(m->params[i]);
	sbi_free(m->params);
	sbi_zscore_clear(&m->in);
	sbi_zscore_clear(&m->out);
	sbi_free(m);
}

static int
config_check(const sbi_mlp_config *cfg, sbi_err *err)
{
	if (cfg->layers < 1 || cfg->layers > SBI_MLP_MAX_LAYERS)
		return sbi_err_set(err, SBI_EINVAL, "mlp: %zu layers (expected 1..%d)", cfg->layers, SBI_MLP_MAX_LAYERS);
	for (size_t l = 0; l <= cfg->layers; l++)
		if (cfg->width[l] < 1 || cfg->width[l] > MLP_MAX_WIDTH)
			return sbi_err_set(err, SBI_EINVAL, "mlp: layer %zu has %zu units (expected 1..%zu)", l,
			    cfg->width[l], MLP_MAX_WIDTH);
	if (cfg->code >= cfg->layers || (cfg->code && cfg->width[0] != cfg->width[cfg->layers]))
		return sbi_err_set(err, SBI_EINVAL, "mlp: bad autoencoder layout (code layer %zu of %zu)", cfg->code,
		    cfg->layers);
	if (!sbi_act_valid(cfg->act))
		return sbi_err_set(err, SBI_EINVAL, "mlp: unknown activation %d", cfg->act);
	return SBI_OK;
}

/* A network of cfg with zero weights (caller frees). */
static sbi_mlp *
mlp_new(const sbi_mlp_config *cfg, sbi_err *err)
{
	if (config_check(cfg, err) != SBI_OK)
		return NULL;
	sbi_mlp *m = sbi_calloc(1, sizeof *m);
	if (m == NULL) {
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	m->cfg = *cfg;
	size_t n = 2 * cfg->layers;
	m->params = sbi_calloc(n, sizeof *m->params);
	int bad = !m->params || sbi_zscore_init(&m->in, cfg->width[0]) != 0 ||
	    sbi_zscore_init(&m->out, cfg->width[cfg->layers]) != 0;
	for (size_t i = 0; !bad && i < n; i++) {
		size_t l = i / 2;
		m->params[i] = sbi_param_alloc(i % 2 ? 1 : cfg->width[l], cfg->width[l + 1]);
		bad = m->params[i] == NULL;
		m->nparams = i + 1;
	}
	if (bad) {
		sbi_mlp_free(m);
		sbi_err_set(err, SBI_ENOMEM, "out of memory for a network");
		return NULL;
	}
	return m;
}

sbi_mlp *
sbi_mlp_alloc(const sbi_mlp_config *cfg, sbi_err *err)
{
	sbi_mlp *m = mlp_new(cfg, err);
	if (m == NULL)
		return NULL;
	gsl_rng *r = sbi_rng_alloc();
	if (r == NULL) {
		sbi_mlp_free(m);
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	sbi_rng_set_stream(r, cfg->seed, SBI_STREAM_METHOD, 0x6d6c70 /* "mlp" */);
	/* PyTorch's default initialization: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
	 * for weights and biases alike. */
	for (size_t i = 0; i < m->nparams; i++) {
		sbi_param *p = m->params[i];
		double b = 1.0 / sqrt((double)cfg->width[i / 2]);
		for (size_t e = 0; e < p->rows * p->cols; e++)
			p->w[e] = (float)gsl_ran_flat(r, -b, b);
	}
	gsl_rng_free(r);
	return m;
}

const sbi_mlp_config *
sbi_mlp_config_of(const sbi_mlp *m)
{
	return &m->cfg;
}

sbi_param **
sbi_mlp_params(sbi_mlp *m, size_t *n)
{
	*n = m->nparams;
	return m->params;
}

void
sbi_mlp_set_standardization(sbi_mlp *m, const double *x, const double *y, size_t n)
{
	sbi_zscore_fit(&m->in, x, n);
	sbi_zscore_fit(&m->out, y ? y : x, n);
}

void
sbi_mlp_standardize(const sbi_mlp *m, const double *x, const double *y, size_t n, float *xs, float *ys)
{
	if (x)
		sbi_zscore_apply(&m->in, x, n, xs);
	if (y)
		sbi_zscore_apply(&m->out, y, n, ys);
}

sbi_var
sbi_mlp_forward_std(sbi_mlp *m, sbi_tape *t, sbi_var h, size_t from, size_t to)
{
	for (size_t l = from; l < to; l++) {
		sbi_var w = sbi_ad_param(t, m->params[2 * l]), b = sbi_ad_param(t, m->params[2 * l + 1]);
		int linear = l + 1 == m->cfg.layers || l + 1 == m->cfg.code;
		if (linear)
			h = sbi_ad_linear(t, h, w, b);
		else if (m->cfg.act == SBI_ACT_TANH)
			h = sbi_ad_linear_tanh(t, h, w, b);
		else
			h = sbi_act_apply(t, m->cfg.act, sbi_ad_linear(t, h, w, b));
	}
	return h;
}

sbi_var
sbi_mlp_loss(sbi_mlp *m, sbi_tape *t, const float *xs, const float *ys, size_t n)
{
	const sbi_mlp_config *c = &m->cfg;
	sbi_var pred = sbi_mlp_forward_std(m, t, sbi_ad_const(t, xs, n, c->width[0]), 0, c->layers);
	sbi_var diff = sbi_ad_sub(t, pred, sbi_ad_const(t, ys, n, c->width[c->layers]));
	return sbi_ad_mean(t, sbi_ad_square(t, diff));
}

/* ---- fitting ---- */

/* SBI_OK when the n x d values of a are finite, else the error names the
 * option and the first bad row. */
static int
check_finite(const double *a, size_t n, size_t d, const char *name, sbi_err *err)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			if (!isfinite(a[i * d + j]))
				return sbi_err_set(err, SBI_EINVAL, "%s: row %zu, column %zu is %g (every value must be finite)",
				    name, i + 1, j + 1, a[i * d + j]);
	return SBI_OK;
}

typedef struct mlp_fit {
	sbi_mlp *m;
	float *xs, *ys, *xb, *yb; /* standardized data and one batch (owned; ys may alias xs) */
	size_t dx, dy;
} mlp_fit;

static void
gather_rows(float *restrict dst, const float *restrict src, size_t d, const size_t *idx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			dst[i * d + j] = src[idx[i] * d + j];
}

static sbi_var
mlp_fit_loss(void *ud, sbi_tape *t, const size_t *idx, size_t n)
{
	mlp_fit *F = ud;
	gather_rows(F->xb, F->xs, F->dx, idx, n);
	gather_rows(F->yb, F->ys, F->dy, idx, n);
	return sbi_mlp_loss(F->m, t, F->xb, F->yb, n);
}

int
sbi_mlp_fit(const sbi_mlp_config *cfg, const sbi_train_opts *o, const double *x, const double *y, size_t n,
    sbi_mlp **out, sbi_train_report *rep, sbi_err *err)
{
	memset(rep, 0, sizeof *rep);
	*out = NULL;
	size_t dx = cfg->width[0], dy = cfg->width[cfg->layers < SBI_MLP_MAX_LAYERS ? cfg->layers : 0];
	if (config_check(cfg, err) != SBI_OK || check_finite(x, n, dx, "x", err) != SBI_OK ||
	    (y && check_finite(y, n, dy, "y", err) != SBI_OK))
		return err->code;
	if (y == NULL && cfg->code == 0)
		return sbi_err_set(err, SBI_EINVAL, "mlp: a regressor needs y");
	sbi_mlp *m = sbi_mlp_alloc(cfg, err);
	if (m == NULL)
		return err->code;
	mlp_fit F = { .m = m, .dx = dx, .dy = dy };
	F.xs = sbi_malloc(n * dx * sizeof(float));
	F.ys = y ? sbi_malloc(n * dy * sizeof(float)) : F.xs;
	F.xb = sbi_malloc(o->batch * dx * sizeof(float));
	F.yb = sbi_malloc(o->batch * dy * sizeof(float));
	int rc = SBI_OK;
	if (!F.xs || !F.ys || !F.xb || !F.yb)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for training data");
	else {
		sbi_mlp_set_standardization(m, x, y, n);
		sbi_mlp_standardize(m, x, y, n, F.xs, y ? F.ys : NULL);
		sbi_trainable tr = { m->params, m->nparams, mlp_fit_loss, &F };
		rc = sbi_train(&tr, n, o, rep, err);
	}
	if (F.ys != F.xs)
		sbi_free(F.ys);
	sbi_free(F.xs), sbi_free(F.xb), sbi_free(F.yb);
	if (rc == SBI_OK)
		*out = m;
	else
		sbi_mlp_free(m);
	return rc;
}

/* Least squares of the standardized column j of y on the standardized x
 * (both n rows; X is the n x dx matrix of x): the weights into column j of
 * W. Truncated SVD: singular values below 1e-10 of the largest are
 * dropped, so collinear columns get the minimum-norm weights. */
static int
linear_column(const gsl_matrix *X, const float *ys, size_t dy, size_t j, gsl_multifit_linear_workspace *ws,
    float *W, sbi_err *err)
{
	size_t n = X->size1, dx = X->size2;
	gsl_vector *yv = gsl_vector_alloc(n), *c = gsl_vector_alloc(dx);
	gsl_matrix *cov = gsl_matrix_alloc(dx, dx);
	int rc = SBI_OK;
	if (!yv || !c || !cov)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for least squares");
	else {
		for (size_t i = 0; i < n; i++)
			gsl_vector_set(yv, i, ys[i * dy + j]);
		double chisq;
		size_t rank;
		if (gsl_multifit_linear_tsvd(X, yv, 1e-10, c, cov, &chisq, &rank, ws) != 0)
			rc = sbi_err_set(err, SBI_EINVAL, "least squares failed for column %zu of y", j + 1);
		for (size_t k = 0; rc == SBI_OK && k < dx; k++)
			W[k * dy + j] = (float)gsl_vector_get(c, k);
	}
	gsl_vector_free(yv), gsl_vector_free(c), gsl_matrix_free(cov);
	return rc;
}

int
sbi_mlp_fit_linear(const double *x, const double *y, size_t n, size_t dx, size_t dy, sbi_mlp **out,
    sbi_err *err)
{
	*out = NULL;
	if (n < 2 || n <= dx)
		return sbi_err_set(err, SBI_EINVAL, "linear regression: %zu rows for %zu columns of x (needs more rows "
		    "than columns)", n, dx);
	if (check_finite(x, n, dx, "x", err) != SBI_OK || check_finite(y, n, dy, "y", err) != SBI_OK)
		return err->code;
	sbi_mlp_config cfg = { .layers = 1, .width = { dx, dy }, .act = SBI_ACT_TANH };
	sbi_mlp *m = mlp_new(&cfg, err);
	if (m == NULL)
		return err->code;
	float *xs = sbi_malloc(n * dx * sizeof(float)), *ys = sbi_malloc(n * dy * sizeof(float));
	gsl_matrix *X = gsl_matrix_alloc(n, dx);
	gsl_multifit_linear_workspace *ws = gsl_multifit_linear_alloc(n, dx);
	int rc = SBI_OK;
	if (!xs || !ys || !X || !ws)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for least squares");
	else {
		sbi_mlp_set_standardization(m, x, y, n);
		sbi_mlp_standardize(m, x, y, n, xs, ys);
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; k < dx; k++)
				gsl_matrix_set(X, i, k, xs[i * dx + k]);
		for (size_t j = 0; rc == SBI_OK && j < dy; j++)
			rc = linear_column(X, ys, dy, j, ws, m->params[0]->w, err);
	}
	sbi_free(xs), sbi_free(ys);
	gsl_matrix_free(X);
	if (ws)
		gsl_multifit_linear_free(ws);
	if (rc == SBI_OK)
		*out = m;
	else
		sbi_mlp_free(m);
	return rc;
}

/* ---- application ---- */

/* Layers [from, to) on n rows of in (n x width[from]) into out
 * (n x width[to]): inputs standardized when from is 0, outputs returned
 * to the data's scale when to is the last layer. */
static int
run_layers(sbi_mlp *m, sbi_tape *t, const double *in, size_t n, size_t from, size_t to, double *out, sbi_err *err)
{
	size_t din = m->cfg.width[from], dout = m->cfg.width[to];
	float *buf = sbi_malloc((n < MLP_BLOCK ? (n ? n : 1) : MLP_BLOCK) * din * sizeof(float));
	if (buf == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory applying a network");
	int rc = SBI_OK;
	for (size_t s = 0; rc == SBI_OK && s < n; s += MLP_BLOCK) {
		size_t b = n - s < MLP_BLOCK ? n - s : MLP_BLOCK;
		const double *src = in + s * din;
		if (from == 0)
			sbi_zscore_apply(&m->in, src, b, buf);
		else
			for (size_t e = 0; e < b * din; e++)
				buf[e] = (float)src[e];
		sbi_tape_reset(t);
		sbi_tape_set_grad(t, 0);
		sbi_var h = sbi_mlp_forward_std(m, t, sbi_ad_const(t, buf, b, din), from, to);
		if (sbi_tape_failed(t)) {
			rc = sbi_err_set(err, SBI_ENOMEM, "out of memory applying a network");
			break;
		}
		const float *v = sbi_ad_value(t, h);
		double *dst = out + s * dout;
		int last = to == m->cfg.layers;
		for (size_t i = 0; i < b; i++)
			for (size_t j = 0; j < dout; j++)
				dst[i * dout + j] = last ? (double)v[i * dout + j] * m->out.std[j] + m->out.mean[j]
				                         : (double)v[i * dout + j];
	}
	sbi_free(buf);
	return rc;
}

int
sbi_mlp_apply(sbi_mlp *m, sbi_tape *t, const double *x, size_t n, double *out, sbi_err *err)
{
	return run_layers(m, t, x, n, 0, m->cfg.layers, out, err);
}

int
sbi_mlp_encode(sbi_mlp *m, sbi_tape *t, const double *x, size_t n, double *out, sbi_err *err)
{
	if (m->cfg.code == 0)
		return sbi_err_set(err, SBI_EINVAL, "encode: the network is not an autoencoder");
	return run_layers(m, t, x, n, 0, m->cfg.code, out, err);
}

int
sbi_mlp_decode(sbi_mlp *m, sbi_tape *t, const double *z, size_t n, double *out, sbi_err *err)
{
	if (m->cfg.code == 0)
		return sbi_err_set(err, SBI_EINVAL, "decode: the network is not an autoencoder");
	return run_layers(m, t, z, n, m->cfg.code, m->cfg.layers, out, err);
}

int
sbi_mlp_gauss_loglik(sbi_mlp *m, sbi_tape *t, const double *theta, size_t n, const double *x, const double *W,
    double *out, sbi_err *err)
{
	size_t d = m->cfg.width[m->cfg.layers];
	double *r = sbi_malloc((n ? n : 1) * d * sizeof(double)), *z = sbi_malloc((n ? n : 1) * d * sizeof(double));
	int rc = r && z ? sbi_mlp_apply(m, t, theta, n, r, err) : sbi_err_set(err, SBI_ENOMEM, "out of memory");
	if (rc == SBI_OK && n > 0) {
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < d; j++)
				r[i * d + j] = x[j] - r[i * d + j];
		/* z = r W^T: row i of z is W (x - f(theta_i)). */
		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)d, (int)d, 1.0, r,
		    (int)d, W, (int)d, 0.0, z, (int)d);
		for (size_t i = 0; i < n; i++) {
			double q = 0;
			for (size_t j = 0; j < d; j++)
				q += z[i * d + j] * z[i * d + j];
			out[i] = -0.5 * q;
		}
	}
	sbi_free(r);
	sbi_free(z);
	return rc;
}

/* ---- model files ---- */

int
sbi_mlp_save(const sbi_mlp *m, unsigned char **buf, size_t *len, sbi_err *err)
{
	sbi_blobw w = { 0 };
	const sbi_mlp_config *c = &m->cfg;
	sbi_blobw_bytes(&w, MLP_MAGIC, 8);
	sbi_blobw_u32(&w, MLP_VERSION);
	sbi_blobw_u64(&w, c->layers);
	for (size_t l = 0; l <= c->layers; l++)
		sbi_blobw_u64(&w, c->width[l]);
	sbi_blobw_u64(&w, c->code);
	sbi_blobw_u32(&w, (uint32_t)c->act);
	sbi_blobw_u64(&w, c->seed);
	sbi_zscore_write(&m->in, &w);
	sbi_zscore_write(&m->out, &w);
	sbi_params_write(&w, m->params, m->nparams);
	if (sbi_blobw_finish(&w) != 0)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory saving a network");
	*buf = w.p;
	*len = w.n;
	return SBI_OK;
}

sbi_mlp *
sbi_mlp_load(const unsigned char *buf, size_t len, sbi_err *err)
{
	sbi_blobr r = { buf, len, 0, 0 };
	if (sbi_blobr_verify(&r) != 0) {
		sbi_err_set(err, SBI_ECORRUPT, "network model checksum mismatch");
		return NULL;
	}
	char magic[8];
	sbi_blobr_bytes(&r, magic, 8);
	if (memcmp(magic, MLP_MAGIC, 8) != 0 || sbi_blobr_u32(&r) != MLP_VERSION) {
		sbi_err_set(err, SBI_ECORRUPT, "not a version %d network model", MLP_VERSION);
		return NULL;
	}
	sbi_mlp_config c = { 0 };
	c.layers = sbi_blobr_u64(&r);
	if (r.bad || c.layers < 1 || c.layers > SBI_MLP_MAX_LAYERS) {
		sbi_err_set(err, SBI_ECORRUPT, "network model: bad header");
		return NULL;
	}
	for (size_t l = 0; l <= c.layers; l++)
		c.width[l] = sbi_blobr_u64(&r);
	c.code = sbi_blobr_u64(&r);
	c.act = (int)sbi_blobr_u32(&r);
	c.seed = sbi_blobr_u64(&r);
	sbi_err e2 = { 0 };
	int bad = r.bad || config_check(&c, &e2) != SBI_OK;
	/* The weights must fit in the blob: no huge allocation from a bad header. */
	size_t nw = 0;
	for (size_t l = 0; !bad && l < c.layers; l++)
		nw += (c.width[l] + 1) * c.width[l + 1];
	if (bad || nw > len / sizeof(float)) {
		sbi_err_set(err, SBI_ECORRUPT, "network model: bad header");
		return NULL;
	}
	sbi_mlp *m = mlp_new(&c, err);
	if (m == NULL)
		return NULL;
	sbi_zscore_read(&m->in, &r);
	sbi_zscore_read(&m->out, &r);
	size_t at;
	if (sbi_params_read(&r, m->params, m->nparams, &at) != 0 || r.bad || r.off != r.n) {
		sbi_mlp_free(m);
		sbi_err_set(err, SBI_ECORRUPT, "network model truncated or malformed");
		return NULL;
	}
	return m;
}
