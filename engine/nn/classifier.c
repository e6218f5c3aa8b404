/* Ratio classifiers (see classifier.h).
 *
 * Model blob format (version 1, little-endian), then a BLAKE2b trailer:
 *   "SBICLSF\0", u32 version, u64 dtheta, u64 dx, u64 hidden, u64 layers,
 *   u32 residual, u32 act, u64 seed,
 *   f64 theta_mean[dtheta], f64 theta_std[dtheta], f64 x_mean[dx], f64 x_std[dx],
 *   u64 nparams, then per parameter: u64 rows, u64 cols, f32 values.
 * Version 2, a classifier with an embedding network: the same with the
 * embedding's configuration (embed.h) after the seed and its weights after
 * the MLP's. Classifiers without one are still written as version 1. */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/blob.h"
#include "sbi/classifier.h"
#include "sbi/flow.h"
#include "sbi/rng.h"
#include "sbi/stats.h"

#define CLSF_MAGIC "SBICLSF"
#define CLSF_VERSION 1
#define CLSF_VERSION_EMBED 2

struct sbi_classifier {
	sbi_classifier_config cfg;
	sbi_param **params; /* w_in, b_in, (w, b) x layers, w_out, b_out (owned), then emb's (borrowed) */
	size_t nparams;
	size_t nown;        /* the MLP's own parameters, the first in params */
	sbi_embed *emb;     /* x's embedding network or NULL (owned) */
	sbi_zscore t, x; /* the inputs' standardization (owned) */
};

void
sbi_classifier_free(sbi_classifier *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nown; i++)
		sbi_param_free(c->params[i]);
	sbi_embed_free(c->emb);
	sbi_free(c->params);
	sbi_zscore_clear(&c->t);
	sbi_zscore_clear(&c->x);
	sbi_free(c);
}

static sbi_classifier *
classifier_new(const sbi_classifier_config *cfg, sbi_err *err)
{
	if (cfg->dtheta < 1 || cfg->dx < 1 || cfg->hidden < 1 || cfg->hidden > 4096 || cfg->layers > 16 ||
	    !sbi_act_valid(cfg->act)) {
		sbi_err_set(err, SBI_EINVAL, "classifier: bad configuration");
		return NULL;
	}
	if (cfg->embed.out && sbi_embed_check(&cfg->embed, cfg->dx, err) != SBI_OK)
		return NULL;
	sbi_classifier *c = sbi_calloc(1, sizeof *c);
	if (c == NULL) {
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	c->cfg = *cfg;
	size_t H = cfg->hidden, L = cfg->layers, n = 2 * L + 4, ne = 0;
	sbi_param **pe = NULL;
	if (cfg->embed.out) {
		sbi_err e2 = { 0 };
		if ((c->emb = sbi_embed_new(&cfg->embed, cfg->dx, &e2)) != NULL)
			pe = sbi_embed_params(c->emb, &ne);
	}
	c->params = sbi_calloc(n + ne, sizeof *c->params);
	int bad = !c->params || (cfg->embed.out && !c->emb) || sbi_zscore_init(&c->t, cfg->dtheta) != 0 ||
	    sbi_zscore_init(&c->x, cfg->dx) != 0;
	size_t shapes[64][2];
	size_t k = 0;
	shapes[k][0] = cfg->dtheta + (cfg->embed.out ? cfg->embed.out : cfg->dx), shapes[k++][1] = H;
	shapes[k][0] = 1, shapes[k++][1] = H;
	for (size_t l = 0; l < L; l++) {
		shapes[k][0] = H, shapes[k++][1] = H;
		shapes[k][0] = 1, shapes[k++][1] = H;
	}
	shapes[k][0] = H, shapes[k++][1] = 1;
	shapes[k][0] = 1, shapes[k++][1] = 1;
	for (size_t i = 0; !bad && i < n; i++) {
		c->params[i] = sbi_param_alloc(shapes[i][0], shapes[i][1]);
		bad = c->params[i] == NULL;
		c->nparams = c->nown = i + 1;
	}
	for (size_t i = 0; !bad && i < ne; i++)
		c->params[c->nparams++] = pe[i];
	if (bad) {
		sbi_classifier_free(c);
		sbi_err_set(err, SBI_ENOMEM, "out of memory for a classifier");
		return NULL;
	}
	return c;
}

sbi_classifier *
sbi_classifier_alloc(const sbi_classifier_config *cfg, sbi_err *err)
{
	sbi_classifier *c = classifier_new(cfg, err);
	if (c == NULL)
		return NULL;
	gsl_rng *r = sbi_rng_alloc();
	if (r == NULL) {
		sbi_classifier_free(c);
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	sbi_rng_set_stream(r, cfg->seed, SBI_STREAM_METHOD, 0x636c7366 /* "clsf" */);
	/* PyTorch's default initialization: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
	for (size_t i = 0; i < c->nown; i++) {
		sbi_param *p = c->params[i];
		size_t fan_in = p->rows == 1 ? c->params[i - 1]->rows : p->rows;
		double b = 1.0 / sqrt((double)fan_in);
		for (size_t e = 0; e < p->rows * p->cols; e++)
			p->w[e] = (float)gsl_ran_flat(r, -b, b);
	}
	gsl_rng_free(r);
	if (c->emb && sbi_embed_init(c->emb, cfg->seed) != 0) {
		sbi_classifier_free(c);
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	return c;
}

const sbi_classifier_config *
sbi_classifier_config_of(const sbi_classifier *c)
{
	return &c->cfg;
}

sbi_param **
sbi_classifier_params(sbi_classifier *c, size_t *n)
{
	*n = c->nparams;
	return c->params;
}

void
sbi_classifier_set_standardization(sbi_classifier *c, const double *theta, const double *x, size_t n)
{
	sbi_zscore_fit(&c->t, theta, n);
	sbi_zscore_fit(&c->x, x, n);
}

void
sbi_classifier_standardize(const sbi_classifier *c, const double *theta, const double *x, size_t n,
    float *ts, float *xs)
{
	if (theta)
		sbi_zscore_apply(&c->t, theta, n, ts);
	if (x)
		sbi_zscore_apply(&c->x, x, n, xs);
}

/* The logits of standardized theta rows and x features (xs itself, or e(xs)). */
static sbi_var
logits_of_features(sbi_classifier *c, sbi_tape *t, sbi_var ts, sbi_var xs)
{
	sbi_param **p = c->params;
	sbi_var in = sbi_ad_concat(t, ts, xs);
	sbi_var h = sbi_act_apply(t, c->cfg.act, sbi_ad_linear(t, in, sbi_ad_param(t, p[0]), sbi_ad_param(t, p[1])));
	for (size_t l = 0; l < c->cfg.layers; l++) {
		sbi_var u = sbi_act_apply(t, c->cfg.act, sbi_ad_linear(t, h, sbi_ad_param(t, p[2 + 2 * l]),
		    sbi_ad_param(t, p[3 + 2 * l])));
		h = c->cfg.residual ? sbi_ad_add(t, h, u) : u;
	}
	size_t L = c->cfg.layers;
	return sbi_ad_linear(t, h, sbi_ad_param(t, p[2 + 2 * L]), sbi_ad_param(t, p[3 + 2 * L]));
}

/* The features of standardized x rows. */
static sbi_var
features(sbi_classifier *c, sbi_tape *t, sbi_var xs)
{
	return c->emb ? sbi_embed_forward(c->emb, t, xs) : xs;
}

sbi_var
sbi_classifier_logits_std(sbi_classifier *c, sbi_tape *t, sbi_var ts, sbi_var xs)
{
	return logits_of_features(c, t, ts, features(c, t, xs));
}

sbi_var
sbi_classifier_loss(sbi_classifier *c, sbi_tape *t, const float *ts, const float *xs, size_t n,
    size_t atoms, float *scratch)
{
	size_t dt = c->cfg.dtheta, dx = c->cfg.dx;
	if (atoms <= 1) {
		/* Joint pairs and shifted (independent) pairs. */
		for (size_t i = 0; i < n; i++)
			memcpy(scratch + i * dt, ts + ((i + 1) % n) * dt, dt * sizeof(float));
		/* x's features once for both kinds of pairs. */
		sbi_var x = features(c, t, sbi_ad_const(t, xs, n, dx));
		sbi_var lj = logits_of_features(c, t, sbi_ad_const(t, ts, n, dt), x);
		sbi_var lm = logits_of_features(c, t, sbi_ad_const(t, scratch, n, dt), x);
		sbi_var s = sbi_ad_add(t, sbi_ad_mean(t, sbi_ad_log_sigmoid(t, lj)),
		    sbi_ad_mean(t, sbi_ad_log_sigmoid(t, sbi_ad_scale(t, lm, -1.0f))));
		return sbi_ad_scale(t, s, -1.0f);
	}
	/* Contrastive: row (i, k) pairs x_i with theta_{(i + k) mod n}; k = 0 is true. */
	size_t K = atoms < n ? atoms : n;
	float *tk = scratch, *xk = scratch + n * K * dt;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < K; k++) {
			memcpy(tk + (i * K + k) * dt, ts + ((i + k) % n) * dt, dt * sizeof(float));
			memcpy(xk + (i * K + k) * dx, xs + i * dx, dx * sizeof(float));
		}
	sbi_var l = sbi_classifier_logits_std(c, t, sbi_ad_const(t, tk, n * K, dt), sbi_ad_const(t, xk, n * K, dx));
	sbi_var lk = sbi_ad_reshape(t, l, n, K);
	sbi_var diff = sbi_ad_sub(t, sbi_ad_logsumexp_rows(t, lk), sbi_ad_cols(t, lk, 0, 1));
	return sbi_ad_mean(t, diff);
}

/* e(x) of one standardized row xs, as a constant of n equal rows on t
 * (the embedding runs once, not once per theta). -1 when out of memory. */
static sbi_var
embedded_row(sbi_classifier *c, sbi_tape *t, const float *xs, size_t n)
{
	size_t k = c->cfg.embed.out;
	sbi_var e = sbi_embed_forward(c->emb, t, sbi_ad_const(t, xs, 1, c->cfg.dx));
	float *rows = sbi_malloc((n ? n : 1) * k * sizeof(float));
	if (rows == NULL || sbi_tape_failed(t)) {
		sbi_free(rows);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		memcpy(rows + i * k, sbi_ad_value(t, e), k * sizeof(float));
	sbi_var v = sbi_ad_const(t, rows, n, k);
	sbi_free(rows);
	return v;
}

int
sbi_classifier_log_ratio(sbi_classifier *c, sbi_tape *t, const double *theta, const double *x, size_t n,
    double *out, sbi_err *err)
{
	size_t dt = c->cfg.dtheta, dx = c->cfg.dx;
	float *ts = sbi_malloc((n ? n : 1) * dt * sizeof(float)), *xs = sbi_malloc((n ? n : 1) * dx * sizeof(float));
	if (ts == NULL || xs == NULL) {
		sbi_free(ts);
		sbi_free(xs);
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	}
	sbi_classifier_standardize(c, theta, x, n ? 1 : 0, ts, xs);
	sbi_classifier_standardize(c, theta, NULL, n, ts, NULL);
	for (size_t i = 1; i < n; i++)
		memcpy(xs + i * dx, xs, dx * sizeof(float));
	sbi_tape_reset(t);
	sbi_tape_set_grad(t, 0);
	sbi_var xv = c->emb ? embedded_row(c, t, xs, n) : sbi_ad_const(t, xs, n, dx);
	sbi_var l = xv < 0 ? -1 : logits_of_features(c, t, sbi_ad_const(t, ts, n, dt), xv);
	int rc = SBI_OK;
	if (l < 0 || sbi_tape_failed(t))
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory evaluating a classifier");
	else
		for (size_t i = 0; i < n; i++)
			out[i] = sbi_ad_value(t, l)[i];
	sbi_free(ts);
	sbi_free(xs);
	return rc;
}

int
sbi_classifier_save(const sbi_classifier *c, unsigned char **buf, size_t *len, sbi_err *err)
{
	sbi_blobw w = { 0 };
	const sbi_classifier_config *g = &c->cfg;
	sbi_blobw_bytes(&w, CLSF_MAGIC, 8);
	sbi_blobw_u32(&w, g->embed.out ? CLSF_VERSION_EMBED : CLSF_VERSION);
	sbi_blobw_u64(&w, g->dtheta);
	sbi_blobw_u64(&w, g->dx);
	sbi_blobw_u64(&w, g->hidden);
	sbi_blobw_u64(&w, g->layers);
	sbi_blobw_u32(&w, (uint32_t)g->residual);
	sbi_blobw_u32(&w, (uint32_t)g->act);
	sbi_blobw_u64(&w, g->seed);
	if (g->embed.out)
		sbi_embed_write_config(&g->embed, &w);
	sbi_zscore_write(&c->t, &w);
	sbi_zscore_write(&c->x, &w);
	sbi_params_write(&w, c->params, c->nparams);
	if (sbi_blobw_finish(&w) != 0)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory saving a classifier");
	*buf = w.p;
	*len = w.n;
	return SBI_OK;
}

sbi_classifier *
sbi_classifier_load(const unsigned char *buf, size_t len, sbi_err *err)
{
	sbi_blobr r = { buf, len, 0, 0 };
	if (sbi_blobr_verify(&r) != 0) {
		sbi_err_set(err, SBI_ECORRUPT, "classifier model checksum mismatch");
		return NULL;
	}
	char magic[8];
	sbi_blobr_bytes(&r, magic, 8);
	uint32_t v = memcmp(magic, CLSF_MAGIC, 8) == 0 ? sbi_blobr_u32(&r) : 0;
	if (v != CLSF_VERSION && v != CLSF_VERSION_EMBED) {
		sbi_err_set(err, SBI_ECORRUPT, "not a version %d classifier model (nor a version %d, with an embedding)",
		    CLSF_VERSION, CLSF_VERSION_EMBED);
		return NULL;
	}
	sbi_classifier_config g = { 0 };
	g.dtheta = sbi_blobr_u64(&r);
	g.dx = sbi_blobr_u64(&r);
	g.hidden = sbi_blobr_u64(&r);
	g.layers = sbi_blobr_u64(&r);
	g.residual = (int)sbi_blobr_u32(&r);
	g.act = (int)sbi_blobr_u32(&r);
	g.seed = sbi_blobr_u64(&r);
	if (v == CLSF_VERSION_EMBED)
		sbi_embed_read_config(&g.embed, &r);
	if (r.bad || g.dtheta > 4096 || g.dx > (1u << 20) || (v == CLSF_VERSION_EMBED && g.embed.out == 0)) {
		sbi_err_set(err, SBI_ECORRUPT, "classifier model: bad header");
		return NULL;
	}
	sbi_classifier *c = classifier_new(&g, err);
	if (c == NULL)
		return NULL;
	sbi_zscore_read(&c->t, &r);
	sbi_zscore_read(&c->x, &r);
	size_t at;
	if (sbi_params_read(&r, c->params, c->nparams, &at) != 0 || r.bad || r.off != r.n) {
		sbi_classifier_free(c);
		sbi_err_set(err, SBI_ECORRUPT, "classifier model truncated or malformed");
		return NULL;
	}
	return c;
}
