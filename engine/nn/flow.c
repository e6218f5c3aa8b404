/* Conditional MAF and NSF flows (see flow.h).
 *
 * Model blob format (version 2: conditional MADEs have degree-0 hidden units; little-endian), then a BLAKE2b trailer:
 *   "SBIFLOW\0", u32 version,
 *   u32 kind, u64 dim, u64 context, u64 transforms, u64 hidden, u64 layers,
 *   u64 bins, f64 bound, u32 act, u64 seed,
 *   f64 y_mean[dim], f64 y_std[dim], f64 c_mean[context], f64 c_std[context],
 *   u32 perm[transforms][dim],
 *   u64 nparams, then per parameter: u64 rows, u64 cols, f32 values (row-major).
 * Masks are not stored: they follow from the configuration.
 * Version 3 (SBI_FLOW_FORMAT_EMBED), a flow with an embedding network: the
 * same, with the embedding's configuration (embed.h) after the seed and
 * its weights after the flow's in the parameter list. Flows without an
 * embedding are still written as version 2, so their files and cache keys
 * are unchanged; both versions load. */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/blob.h"
#include "sbi/flow.h"
#include "sbi/rng.h"
#include "sbi/stats.h"

#define FLOW_MAGIC "SBIFLOW"
#define FLOW_VERSION SBI_FLOW_FORMAT
#define LOG_2PI 1.8378770664093453

/* One MADE: its parameters in order w_in, w_ctx, b_in, (w_l, b_l) x layers, w_out, b_out. */
typedef struct made {
	sbi_param *w_in, *w_ctx, *b_in, *w_out, *b_out;
	sbi_param **w_h, **b_h;
	float *mask_in, *mask_h, *mask_out; /* owned */
} made;

/* A mixture density network: an MLP of the context, w_in, b_in, (w_l, b_l)
 * x layers, w_out, b_out, whose outputs are the mixture's parameters. */
typedef struct mdn_net {
	sbi_param *w_in, *b_in, *w_out, *b_out;
	sbi_param **w_h, **b_h;
} mdn_net;

struct sbi_flow {
	sbi_flow_config cfg;
	size_t out_per_dim; /* 2 (MAF) or 3K - 1 (NSF) */
	made *mades;        /* transforms of them (NULL for an MDN) */
	mdn_net *mdn;       /* the MDN's network (NULL for flows) */
	int *perm;          /* transforms x dim */
	int *inv_perm;
	sbi_zscore y, c; /* the standardization of y and of the context (owned) */
	double log_std_sum;
	sbi_param **params; /* flat list (not owning: freed via mades and emb) */
	size_t nparams;
	size_t nflow_params; /* the first ones, the flow's own; then emb's */
	sbi_embed *emb;      /* the context's embedding network or NULL (owned) */
};

/* Columns of the context the MADEs (or the MDN) see. */
static size_t
ctx_width(const sbi_flow_config *c)
{
	return c->embed.out ? c->embed.out : c->context;
}

/* Degrees of hidden units. nflows' MADE uses 1..D-1, which leaves the first
 * dimension of every transform connected to no hidden unit: its transform
 * ignores the context, and a 2-D posterior whose permutations keep one
 * dimension first never conditions it on x. A conditional MADE here also
 * has degree-0 units, which see the context only, so every output depends
 * on the context (the autoregressive order on y is unchanged). */
static size_t
hidden_degree(size_t k, size_t dim, size_t context)
{
	if (context > 0 || dim == 1)
		return k % dim;
	return k % (dim - 1) + 1;
}

/* Masks: inputs have degrees 1..D, an output of dimension i connects to
 * hidden units of degree < i. */
static void
make_masks(made *m, const sbi_flow *f)
{
	size_t D = f->cfg.dim, C = f->cfg.context, H = f->cfg.hidden, O = D * f->out_per_dim;
	for (size_t i = 0; i < D; i++)
		for (size_t k = 0; k < H; k++)
			m->mask_in[i * H + k] = hidden_degree(k, D, C) >= i + 1;
	for (size_t a = 0; a < H; a++)
		for (size_t b = 0; b < H; b++)
			m->mask_h[a * H + b] = hidden_degree(b, D, C) >= hidden_degree(a, D, C);
	for (size_t k = 0; k < H; k++)
		for (size_t o = 0; o < O; o++) {
			/* MAF: [scale logits | shifts]; NSF: dim-major blocks of 3K-1. */
			size_t dim_of_o = f->cfg.kind == SBI_FLOW_MAF ? o % D : o / f->out_per_dim;
			m->mask_out[k * O + o] = dim_of_o + 1 > hidden_degree(k, D, C);
		}
}

static int
add_param(sbi_flow *f, sbi_param **slot, size_t rows, size_t cols)
{
	*slot = sbi_param_alloc(rows, cols);
	if (*slot == NULL)
		return -1;
	sbi_param **np = sbi_realloc(f->params, (f->nparams + 1) * sizeof *np);
	if (np == NULL) {
		sbi_param_free(*slot);
		*slot = NULL;
		return -1;
	}
	f->params = np;
	f->params[f->nparams++] = *slot;
	return 0;
}

static int
alloc_made(sbi_flow *f, made *m)
{
	size_t D = f->cfg.dim, C = ctx_width(&f->cfg), H = f->cfg.hidden, L = f->cfg.layers, O = D * f->out_per_dim;
	m->mask_in = sbi_malloc(D * H * sizeof(float));
	m->mask_h = sbi_malloc(H * H * sizeof(float));
	m->mask_out = sbi_malloc(H * O * sizeof(float));
	m->w_h = sbi_calloc(L ? L : 1, sizeof *m->w_h);
	m->b_h = sbi_calloc(L ? L : 1, sizeof *m->b_h);
	if (!m->mask_in || !m->mask_h || !m->mask_out || !m->w_h || !m->b_h)
		return -1;
	make_masks(m, f);
	if (add_param(f, &m->w_in, D, H) || (C && add_param(f, &m->w_ctx, C, H)) || add_param(f, &m->b_in, 1, H))
		return -1;
	for (size_t l = 0; l < L; l++)
		if (add_param(f, &m->w_h[l], H, H) || add_param(f, &m->b_h[l], 1, H))
			return -1;
	if (add_param(f, &m->w_out, H, O) || add_param(f, &m->b_out, 1, O))
		return -1;
	m->w_in->mask = m->mask_in;
	m->w_out->mask = m->mask_out;
	for (size_t l = 0; l < L; l++)
		m->w_h[l]->mask = m->mask_h;
	return 0;
}

/* The hidden blocks of a MADE or an MDN network: L weights and biases. */
static void
free_blocks(sbi_param **w_h, sbi_param **b_h, size_t L)
{
	for (size_t l = 0; w_h && l < L; l++) {
		sbi_param_free(w_h[l]);
		sbi_param_free(b_h[l]);
	}
	sbi_free(w_h);
	sbi_free(b_h);
}

static void
free_made(made *m, size_t L)
{
	sbi_param_free(m->w_in);
	sbi_param_free(m->w_ctx);
	sbi_param_free(m->b_in);
	free_blocks(m->w_h, m->b_h, L);
	sbi_param_free(m->w_out);
	sbi_param_free(m->b_out);
	sbi_free(m->mask_in);
	sbi_free(m->mask_h);
	sbi_free(m->mask_out);
}

static int alloc_mdn(sbi_flow *f);
static void free_mdn(mdn_net *m, size_t L);

void
sbi_flow_free(sbi_flow *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; f->mades && i < f->cfg.transforms; i++)
		free_made(&f->mades[i], f->cfg.layers);
	sbi_free(f->mades);
	if (f->mdn)
		free_mdn(f->mdn, f->cfg.layers);
	sbi_free(f->mdn);
	sbi_free(f->perm);
	sbi_free(f->inv_perm);
	sbi_zscore_clear(&f->y);
	sbi_zscore_clear(&f->c);
	sbi_embed_free(f->emb);
	sbi_free(f->params);
	sbi_free(f);
}

/* PyTorch's default scale: weights U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
 * masked weights zero; biases use the hidden width as fan-in. */
static void
init_weights(sbi_flow *f, gsl_rng *r)
{
	for (size_t i = 0; i < f->nflow_params; i++) {
		sbi_param *p = f->params[i];
		size_t fan_in = p->rows == 1 ? f->cfg.hidden : p->rows;
		double bound = 1.0 / sqrt((double)fan_in);
		for (size_t e = 0; e < p->rows * p->cols; e++) {
			p->w[e] = (float)gsl_ran_flat(r, -bound, bound);
			if (p->mask)
				p->w[e] *= p->mask[e];
		}
	}
}

static int
check_config(const sbi_flow_config *c, sbi_err *err)
{
	if (c->kind != SBI_FLOW_MAF && c->kind != SBI_FLOW_NSF && c->kind != SBI_FLOW_MDN)
		return sbi_err_set(err, SBI_EINVAL, "flow: unknown kind %d", c->kind);
	if (c->kind == SBI_FLOW_MDN && (c->context < 1 || c->transforms != 1 || c->bins < 1 || c->bins > 64))
		return sbi_err_set(err, SBI_EINVAL, "flow: an MDN needs a context, 1 transform and 1..64 components");
	if (c->dim < 1 || c->dim > 4096 || c->context > 1 << 20)
		return sbi_err_set(err, SBI_EINVAL, "flow: dimension %zu (context %zu) out of range", c->dim, c->context);
	if (c->transforms < 1 || c->transforms > 64 || c->hidden < 1 || c->hidden > 4096 || c->layers > 16)
		return sbi_err_set(err, SBI_EINVAL, "flow: transforms 1..64, hidden 1..4096 and layers 0..16 expected");
	if (c->kind == SBI_FLOW_NSF && (c->bins < 2 || c->bins > 64 || !(c->bound > 0)))
		return sbi_err_set(err, SBI_EINVAL, "flow: NSF needs 2..64 bins and a positive bound");
	if (!sbi_act_valid(c->act))
		return sbi_err_set(err, SBI_EINVAL, "flow: unknown activation %d", c->act);
	if (c->embed.out > 0)
		return sbi_embed_check(&c->embed, c->context, err);
	return SBI_OK;
}

/* Creates f's embedding network and appends its parameters to f's list. */
static int
add_embedding(sbi_flow *f, sbi_err *err)
{
	if ((f->emb = sbi_embed_new(&f->cfg.embed, f->cfg.context, err)) == NULL)
		return -1;
	size_t ne;
	sbi_param **pe = sbi_embed_params(f->emb, &ne);
	sbi_param **np = sbi_realloc(f->params, (f->nparams + ne) * sizeof *np);
	if (np == NULL)
		return -1;
	f->params = np;
	for (size_t i = 0; i < ne; i++)
		f->params[f->nparams++] = pe[i];
	return 0;
}

/* The structure (no weights yet). */
static sbi_flow *
flow_new(const sbi_flow_config *cfg, sbi_err *err)
{
	if (check_config(cfg, err) != SBI_OK)
		return NULL;
	sbi_flow *f = sbi_calloc(1, sizeof *f);
	if (f == NULL) {
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	f->cfg = *cfg;
	f->out_per_dim = cfg->kind == SBI_FLOW_MAF ? 2 : 3 * cfg->bins - 1;
	size_t D = cfg->dim, C = cfg->context, T = cfg->transforms;
	int mdn = cfg->kind == SBI_FLOW_MDN;
	if (mdn)
		f->mdn = sbi_calloc(1, sizeof *f->mdn);
	else
		f->mades = sbi_calloc(T, sizeof *f->mades);
	f->perm = sbi_malloc(T * D * sizeof(int));
	f->inv_perm = sbi_malloc(T * D * sizeof(int));
	int bad = !(mdn ? (void *)f->mdn : (void *)f->mades) || !f->perm || !f->inv_perm ||
	    sbi_zscore_init(&f->y, D) != 0 || sbi_zscore_init(&f->c, C) != 0;
	if (!bad && mdn)
		bad = alloc_mdn(f) != 0;
	for (size_t i = 0; !bad && !mdn && i < T; i++)
		bad = alloc_made(f, &f->mades[i]) != 0;
	f->nflow_params = f->nparams;
	if (!bad && cfg->embed.out > 0)
		bad = add_embedding(f, err) != 0;
	if (bad) {
		sbi_flow_free(f);
		sbi_err_set(err, SBI_ENOMEM, "out of memory for a flow");
		return NULL;
	}
	return f;
}

static void
set_inverse_perms(sbi_flow *f)
{
	size_t D = f->cfg.dim;
	for (size_t t = 0; t < f->cfg.transforms; t++)
		for (size_t j = 0; j < D; j++)
			f->inv_perm[t * D + (size_t)f->perm[t * D + j]] = (int)j;
}

sbi_flow *
sbi_flow_alloc(const sbi_flow_config *cfg, sbi_err *err)
{
	sbi_flow *f = flow_new(cfg, err);
	if (f == NULL)
		return NULL;
	gsl_rng *r = sbi_rng_alloc();
	if (r == NULL) {
		sbi_flow_free(f);
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	sbi_rng_set_stream(r, cfg->seed, SBI_STREAM_METHOD, 0x666c6f77 /* "flow" */);
	init_weights(f, r);
	size_t D = cfg->dim;
	for (size_t t = 0; t < cfg->transforms; t++) {
		int *p = f->perm + t * D;
		for (size_t j = 0; j < D; j++)
			p[j] = (int)j;
		gsl_ran_shuffle(r, p, D, sizeof *p);
	}
	set_inverse_perms(f);
	gsl_rng_free(r);
	if (f->emb && sbi_embed_init(f->emb, cfg->seed) != 0) {
		sbi_flow_free(f);
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	return f;
}

const sbi_flow_config *
sbi_flow_config_of(const sbi_flow *f)
{
	return &f->cfg;
}

sbi_param **
sbi_flow_params(sbi_flow *f, size_t *n)
{
	*n = f->nparams;
	return f->params;
}

void
sbi_flow_set_standardization(sbi_flow *f, const double *y, const double *c, size_t n)
{
	sbi_zscore_fit(&f->y, y, n);
	if (f->cfg.context)
		sbi_zscore_fit(&f->c, c, n);
	f->log_std_sum = 0;
	for (size_t j = 0; j < f->cfg.dim; j++)
		f->log_std_sum += log(f->y.std[j]);
}

void
sbi_flow_standardize(const sbi_flow *f, const double *y, const double *c, size_t n, float *ys, float *cs)
{
	if (y)
		sbi_zscore_apply(&f->y, y, n, ys);
	if (c)
		sbi_zscore_apply(&f->c, c, n, cs);
}

/* The MADE's outputs for inputs y (n x D) and context c (n/rep x C, row i
 * the context of rows i*rep .. i*rep+rep-1 of y; or -1). With rep > 1 the
 * context's product is formed once per context row, not per y row. */
static sbi_var
made_forward(const sbi_flow *f, const made *m, sbi_tape *t, sbi_var y, sbi_var c, size_t rep)
{
	int ctx = c >= 0 && m->w_ctx;
	sbi_var h;
	if (ctx && rep > 1)
		h = sbi_ad_add_repeat(t, sbi_ad_linear(t, y, sbi_ad_param(t, m->w_in), sbi_ad_param(t, m->b_in)),
		    sbi_ad_matmul(t, c, sbi_ad_param(t, m->w_ctx)), rep);
	else
		h = sbi_ad_linear2(t, y, sbi_ad_param(t, m->w_in), ctx ? c : -1, ctx ? sbi_ad_param(t, m->w_ctx) : -1,
		    sbi_ad_param(t, m->b_in));
	for (size_t l = 0; l < f->cfg.layers; l++) {
		sbi_var w = sbi_ad_param(t, m->w_h[l]), b = sbi_ad_param(t, m->b_h[l]);
		h = f->cfg.act == SBI_ACT_TANH ? sbi_ad_linear_tanh(t, h, w, b)
		                               : sbi_act_apply(t, f->cfg.act, sbi_ad_linear(t, h, w, b));
	}
	return sbi_ad_linear(t, h, sbi_ad_param(t, m->w_out), sbi_ad_param(t, m->b_out));
}

/* One transform in the density direction: y -> z, accumulating log|det|
 * (n x 1) into *ld. */
static sbi_var
transform_forward(const sbi_flow *f, const made *m, sbi_tape *t, sbi_var y, sbi_var c, size_t rep, sbi_var *ld)
{
	size_t D = f->cfg.dim;
	sbi_var out = made_forward(f, m, t, y, c, rep), z, l;
	if (f->cfg.kind == SBI_FLOW_MAF) {
		sbi_var scale = sbi_ad_add_scalar(t, sbi_ad_softplus(t, sbi_ad_cols(t, out, 0, D)), 1e-3f);
		z = sbi_ad_add(t, sbi_ad_mul(t, y, scale), sbi_ad_cols(t, out, D, D));
		l = sbi_ad_sum_rows(t, sbi_ad_log(t, scale));
	} else {
		sbi_var lde;
		sbi_ad_rqs(t, y, out, f->cfg.bins, (float)f->cfg.bound, 0, &z, &lde);
		l = sbi_ad_sum_rows(t, lde);
	}
	*ld = *ld < 0 ? l : sbi_ad_add(t, *ld, l);
	return z;
}

static sbi_var mdn_log_prob_std(sbi_flow *f, sbi_tape *t, sbi_var ys, sbi_var cs);

/* log q(y | c) from standardized y and what the MADEs see of c: its
 * z-scores, or their embedding; rep as for made_forward (1 for an MDN). */
static sbi_var
log_prob_features(sbi_flow *f, sbi_tape *t, sbi_var ys, sbi_var cs, size_t rep)
{
	if (f->mdn)
		return mdn_log_prob_std(f, t, ys, cs);
	size_t D = f->cfg.dim;
	sbi_var z = ys, ld = -1;
	for (size_t k = 0; k < f->cfg.transforms; k++) {
		z = transform_forward(f, &f->mades[k], t, z, cs, rep, &ld);
		z = sbi_ad_permute_cols(t, z, f->perm + k * D);
	}
	/* log N(z; 0, I) + log|det| - sum log std_y */
	sbi_var base = sbi_ad_add_scalar(t, sbi_ad_scale(t, sbi_ad_sum_rows(t, sbi_ad_square(t, z)), -0.5f),
	    (float)(-0.5 * (double)D * LOG_2PI - f->log_std_sum));
	return sbi_ad_add(t, base, ld);
}

sbi_var
sbi_flow_log_prob_std(sbi_flow *f, sbi_tape *t, sbi_var ys, sbi_var cs)
{
	if (f->emb && cs >= 0)
		cs = sbi_embed_forward(f->emb, t, cs);
	return log_prob_features(f, t, ys, cs, 1);
}

sbi_var
sbi_flow_log_prob_std_rep(sbi_flow *f, sbi_tape *t, sbi_var ys, sbi_var cs, size_t rep)
{
	SBI_ASSERT(f->mdn == NULL && cs >= 0 && rep >= 1);
	if (f->emb)
		cs = sbi_embed_forward(f->emb, t, cs);
	return log_prob_features(f, t, ys, cs, rep);
}

/* Standardized rows for n points of y (which = 0) or c (which = 1),
 * broadcasting one row if single. */
static float *
std_rows(const sbi_flow *f, int which, const double *v, size_t n, int single)
{
	size_t d = which ? f->cfg.context : f->cfg.dim;
	float *out = sbi_malloc((n * d > 0 ? n * d : 1) * sizeof(float));
	if (out == NULL)
		return NULL;
	size_t rows = single ? 1 : n;
	if (which)
		sbi_flow_standardize(f, NULL, v, rows, NULL, out);
	else
		sbi_flow_standardize(f, v, NULL, rows, out, NULL);
	for (size_t i = rows; i < n; i++)
		memcpy(out + i * d, out, d * sizeof(float));
	return out;
}

/* What the MADEs (or the MDN) see of one raw context row c, repeated n
 * times (n x ctx_width): its z-scores, through the embedding if there is
 * one (computed once, on t without gradients). Caller frees; NULL when out
 * of memory. */
static float *
context_rows(sbi_flow *f, sbi_tape *t, const double *c, size_t n)
{
	float *cs = std_rows(f, 1, c, n, 1);
	if (cs == NULL || f->emb == NULL)
		return cs;
	size_t k = f->cfg.embed.out;
	float *e = sbi_malloc(n * k * sizeof(float));
	sbi_tape_reset(t);
	sbi_tape_set_grad(t, 0);
	sbi_var v = e ? sbi_embed_forward(f->emb, t, sbi_ad_const(t, cs, 1, f->cfg.context)) : -1;
	if (e && !sbi_tape_failed(t))
		for (size_t i = 0; i < n; i++)
			memcpy(e + i * k, sbi_ad_value(t, v), k * sizeof(float));
	else {
		sbi_free(e);
		e = NULL;
	}
	sbi_free(cs);
	return e;
}

int
sbi_flow_log_prob(sbi_flow *f, sbi_tape *t, const double *y, int yrow, const double *c, int crow,
    size_t n, double *out, sbi_err *err)
{
	size_t D = f->cfg.dim, C = f->cfg.context;
	int once = f->emb && crow; /* one context row: embed it once, not n times */
	float *ys = std_rows(f, 0, y, n, yrow);
	float *cs = !C ? NULL : once ? context_rows(f, t, c, n) : std_rows(f, 1, c, n, crow);
	if (ys == NULL || (C && cs == NULL)) {
		sbi_free(ys);
		sbi_free(cs);
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	}
	sbi_tape_reset(t);
	sbi_tape_set_grad(t, 0);
	size_t width = once ? ctx_width(&f->cfg) : C; /* of the rows in cs */
	sbi_var vy = sbi_ad_const(t, ys, n, D), vc = C ? sbi_ad_const(t, cs, n, width) : -1;
	sbi_var lp = once ? log_prob_features(f, t, vy, vc, 1) : sbi_flow_log_prob_std(f, t, vy, vc);
	int rc = SBI_OK;
	if (sbi_tape_failed(t))
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory evaluating a flow");
	else
		for (size_t i = 0; i < n; i++)
			out[i] = sbi_ad_value(t, lp)[i];
	sbi_free(ys);
	sbi_free(cs);
	return rc;
}

/* Inverts transform k: given z (n x D, after un-permuting), solves for y
 * one dimension at a time (dimension i only depends on y_<i). */
static int
transform_inverse(const sbi_flow *f, size_t k, sbi_tape *t, const float *z, const float *cs, size_t n, float *y)
{
	size_t D = f->cfg.dim, C = ctx_width(&f->cfg), P = f->out_per_dim;
	memset(y, 0, n * D * sizeof(float));
	float *col = sbi_malloc(n * sizeof(float)), *prm = sbi_malloc(n * P * sizeof(float));
	if (col == NULL || prm == NULL) {
		sbi_free(col);
		sbi_free(prm);
		return SBI_ENOMEM;
	}
	sbi_tape_set_grad(t, 0);
	for (size_t i = 0; i < D; i++) {
		sbi_tape_reset(t);
		sbi_var vy = sbi_ad_const(t, y, n, D), vc = C ? sbi_ad_const(t, cs, n, C) : -1;
		sbi_var out = made_forward(f, &f->mades[k], t, vy, vc, 1);
		if (sbi_tape_failed(t))
			break;
		const float *o = sbi_ad_value(t, out);
		size_t O = D * P;
		for (size_t r = 0; r < n; r++) {
			float zi = z[r * D + i];
			if (f->cfg.kind == SBI_FLOW_MAF) {
				float u = o[r * O + i], sh = o[r * O + D + i];
				float sc = (u > 20 ? u : log1pf(expf(u))) + 1e-3f;
				y[r * D + i] = (zi - sh) / sc;
			} else {
				col[r] = zi;
				memcpy(prm + r * P, o + r * O + i * P, P * sizeof(float));
			}
		}
		if (f->cfg.kind == SBI_FLOW_NSF) {
			sbi_var yi, ld;
			sbi_var vz = sbi_ad_const(t, col, n, 1), vp = sbi_ad_const(t, prm, n, P);
			sbi_ad_rqs(t, vz, vp, f->cfg.bins, (float)f->cfg.bound, 1, &yi, &ld);
			if (sbi_tape_failed(t))
				break;
			for (size_t r = 0; r < n; r++)
				y[r * D + i] = sbi_ad_value(t, yi)[r];
		}
	}
	int failed = sbi_tape_failed(t);
	sbi_free(col);
	sbi_free(prm);
	return failed ? SBI_ENOMEM : SBI_OK;
}

static int mdn_sample(sbi_flow *f, sbi_tape *t, const double *c, size_t n, gsl_rng *r, double *out, sbi_err *err);

int
sbi_flow_sample(sbi_flow *f, sbi_tape *t, const double *c, size_t n, gsl_rng *r, double *out, sbi_err *err)
{
	if (f->mdn)
		return mdn_sample(f, t, c, n, r, out, err);
	size_t D = f->cfg.dim, C = f->cfg.context;
	float *z = sbi_malloc(n * D * sizeof(float)), *y = sbi_malloc(n * D * sizeof(float));
	float *cs = C ? context_rows(f, t, c, n) : NULL;
	int rc = (z && y && (!C || cs)) ? SBI_OK : SBI_ENOMEM;
	for (size_t i = 0; rc == SBI_OK && i < n * D; i++)
		z[i] = (float)gsl_ran_gaussian_ziggurat(r, 1.0);
	for (size_t k = f->cfg.transforms; rc == SBI_OK && k-- > 0;) {
		/* Undo the permutation: before it, column perm[j] was column j after. */
		const int *p = f->perm + k * D;
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < D; j++)
				y[i * D + (size_t)p[j]] = z[i * D + j];
		memcpy(z, y, n * D * sizeof(float));
		rc = transform_inverse(f, k, t, z, cs, n, y);
		memcpy(z, y, n * D * sizeof(float));
	}
	for (size_t i = 0; rc == SBI_OK && i < n; i++)
		for (size_t j = 0; j < D; j++)
			out[i * D + j] = f->y.mean[j] + f->y.std[j] * (double)z[i * D + j];
	sbi_free(z);
	sbi_free(y);
	sbi_free(cs);
	return rc == SBI_OK ? SBI_OK : sbi_err_set(err, rc, "out of memory sampling a flow");
}

/* ---- mixture density network ----
 *
 * q(y | c) = sum_k pi_k N(y; mu_k, (U_k^T U_k)^-1) in standardized units,
 * with (logits, mu, U) = MLP(c): per row K logits, then K means of D, then
 * for each component the upper triangle of its precision factor U_k, row
 * by row (D(D+1)/2 numbers); the diagonal passes through softplus + 1e-3.
 * log N = -D/2 log 2pi + sum_i log U_ii - |U (y - mu)|^2 / 2. */

static size_t
mdn_outputs(const sbi_flow_config *c)
{
	return c->bins * (1 + c->dim + c->dim * (c->dim + 1) / 2);
}

static int
alloc_mdn(sbi_flow *f)
{
	mdn_net *m = f->mdn;
	size_t C = ctx_width(&f->cfg), H = f->cfg.hidden, L = f->cfg.layers;
	m->w_h = sbi_calloc(L ? L : 1, sizeof *m->w_h);
	m->b_h = sbi_calloc(L ? L : 1, sizeof *m->b_h);
	if (!m->w_h || !m->b_h || add_param(f, &m->w_in, C, H) || add_param(f, &m->b_in, 1, H))
		return -1;
	for (size_t l = 0; l < L; l++)
		if (add_param(f, &m->w_h[l], H, H) || add_param(f, &m->b_h[l], 1, H))
			return -1;
	return add_param(f, &m->w_out, H, mdn_outputs(&f->cfg)) || add_param(f, &m->b_out, 1, mdn_outputs(&f->cfg));
}

static void
free_mdn(mdn_net *m, size_t L)
{
	sbi_param_free(m->w_in);
	sbi_param_free(m->b_in);
	free_blocks(m->w_h, m->b_h, L);
	sbi_param_free(m->w_out);
	sbi_param_free(m->b_out);
}

static sbi_var
mdn_forward(const sbi_flow *f, sbi_tape *t, sbi_var c)
{
	const mdn_net *m = f->mdn;
	sbi_var h = sbi_act_apply(t, f->cfg.act, sbi_ad_linear(t, c, sbi_ad_param(t, m->w_in), sbi_ad_param(t, m->b_in)));
	for (size_t l = 0; l < f->cfg.layers; l++)
		h = sbi_act_apply(t, f->cfg.act, sbi_ad_linear(t, h, sbi_ad_param(t, m->w_h[l]), sbi_ad_param(t, m->b_h[l])));
	return sbi_ad_linear(t, h, sbi_ad_param(t, m->w_out), sbi_ad_param(t, m->b_out));
}

/* Column of U_k's entry (i, j), j >= i, in the MLP's output. */
static size_t
mdn_u_col(const sbi_flow_config *c, size_t k, size_t i, size_t j)
{
	size_t D = c->dim, tri = D * (D + 1) / 2;
	return c->bins * (1 + D) + k * tri + i * D - i * (i - 1) / 2 + (j - i);
}

static sbi_var
mdn_log_prob_std(sbi_flow *f, sbi_tape *t, sbi_var ys, sbi_var cs)
{
	size_t D = f->cfg.dim, K = f->cfg.bins;
	sbi_var out = mdn_forward(f, t, cs), logits = sbi_ad_cols(t, out, 0, K), joint = -1;
	for (size_t k = 0; k < K; k++) {
		sbi_var diff = sbi_ad_sub(t, ys, sbi_ad_cols(t, out, K + k * D, D)), quad = -1, logdiag = -1;
		for (size_t i = 0; i < D; i++) {
			sbi_var uii = sbi_ad_add_scalar(t, sbi_ad_softplus(t, sbi_ad_cols(t, out, mdn_u_col(&f->cfg, k, i, i), 1)),
			    1e-3f);
			sbi_var r = sbi_ad_mul(t, sbi_ad_cols(t, diff, i, 1), uii);
			for (size_t j = i + 1; j < D; j++)
				r = sbi_ad_add(t, r, sbi_ad_mul(t, sbi_ad_cols(t, diff, j, 1),
				    sbi_ad_cols(t, out, mdn_u_col(&f->cfg, k, i, j), 1)));
			quad = quad < 0 ? sbi_ad_square(t, r) : sbi_ad_add(t, quad, sbi_ad_square(t, r));
			logdiag = logdiag < 0 ? sbi_ad_log(t, uii) : sbi_ad_add(t, logdiag, sbi_ad_log(t, uii));
		}
		/* log pi_k (up to the normalizer below) + log N_k */
		sbi_var lk = sbi_ad_add(t, sbi_ad_add(t, sbi_ad_cols(t, logits, k, 1), logdiag), sbi_ad_scale(t, quad, -0.5f));
		joint = joint < 0 ? lk : sbi_ad_concat(t, joint, lk);
	}
	sbi_var lp = sbi_ad_sub(t, sbi_ad_logsumexp_rows(t, joint), sbi_ad_logsumexp_rows(t, logits));
	return sbi_ad_add_scalar(t, lp, (float)(-0.5 * (double)D * LOG_2PI - f->log_std_sum));
}

/* Draws a component from the softmax of the logits, then mu + U^-1 z by
 * back substitution (U is upper triangular), for one context row. */
static int
mdn_sample(sbi_flow *f, sbi_tape *t, const double *c, size_t n, gsl_rng *r, double *out, sbi_err *err)
{
	const sbi_flow_config *cfg = &f->cfg;
	size_t D = cfg->dim, K = cfg->bins, O = mdn_outputs(cfg);
	float *cs = context_rows(f, t, c, 1), *o = sbi_malloc(O * sizeof(float));
	double *w = sbi_malloc(K * sizeof(double)), *x = sbi_malloc(D * sizeof(double));
	int rc = cs && o && w && x ? SBI_OK : SBI_ENOMEM;
	if (rc == SBI_OK) {
		sbi_tape_reset(t);
		sbi_tape_set_grad(t, 0);
		sbi_var v = mdn_forward(f, t, sbi_ad_const(t, cs, 1, ctx_width(cfg)));
		if (sbi_tape_failed(t))
			rc = SBI_ENOMEM;
		else
			memcpy(o, sbi_ad_value(t, v), O * sizeof(float));
		sbi_tape_set_grad(t, 1);
	}
	if (rc == SBI_OK) {
		double mx = -INFINITY, sum = 0;
		for (size_t k = 0; k < K; k++)
			mx = o[k] > mx ? o[k] : mx;
		for (size_t k = 0; k < K; k++)
			sum += w[k] = exp(o[k] - mx);
		for (size_t s = 0; s < n; s++) {
			double u = gsl_rng_uniform(r) * sum;
			size_t k = 0;
			while (k + 1 < K && (u -= w[k]) > 0)
				k++;
			for (size_t i = D; i-- > 0;) {
				double zi = gsl_ran_gaussian_ziggurat(r, 1.0), acc = zi;
				for (size_t j = i + 1; j < D; j++)
					acc -= o[mdn_u_col(cfg, k, i, j)] * x[j];
				float u_ii = o[mdn_u_col(cfg, k, i, i)];
				x[i] = acc / ((u_ii > 20 ? u_ii : log1pf(expf(u_ii))) + 1e-3);
			}
			for (size_t j = 0; j < D; j++)
				out[s * D + j] = f->y.mean[j] + f->y.std[j] * (o[K + k * D + j] + x[j]);
		}
	}
	sbi_free(cs);
	sbi_free(o);
	sbi_free(w);
	sbi_free(x);
	return rc == SBI_OK ? SBI_OK : sbi_err_set(err, rc, "out of memory sampling a mixture density network");
}

/* ---- serialization ---- */

int
sbi_flow_save(const sbi_flow *f, unsigned char **buf, size_t *len, sbi_err *err)
{
	sbi_blobw w = { 0 };
	const sbi_flow_config *c = &f->cfg;
	sbi_blobw_bytes(&w, FLOW_MAGIC, 8);
	sbi_blobw_u32(&w, c->embed.out ? SBI_FLOW_FORMAT_EMBED : FLOW_VERSION);
	sbi_blobw_u32(&w, (uint32_t)c->kind);
	size_t sizes[6] = { c->dim, c->context, c->transforms, c->hidden, c->layers, c->bins };
	for (int i = 0; i < 6; i++)
		sbi_blobw_u64(&w, sizes[i]);
	sbi_blobw_f64(&w, c->bound);
	sbi_blobw_u32(&w, (uint32_t)c->act);
	sbi_blobw_u64(&w, c->seed);
	if (c->embed.out)
		sbi_embed_write_config(&c->embed, &w);
	sbi_zscore_write(&f->y, &w);
	sbi_zscore_write(&f->c, &w);
	for (size_t i = 0; i < c->transforms * c->dim; i++)
		sbi_blobw_u32(&w, (uint32_t)f->perm[i]);
	sbi_params_write(&w, f->params, f->nparams);
	if (sbi_blobw_finish(&w) != 0)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory saving a flow");
	*buf = w.p;
	*len = w.n;
	return SBI_OK;
}

static int
read_header(sbi_blobr *r, sbi_flow_config *c, sbi_err *err)
{
	char magic[8];
	sbi_blobr_bytes(r, magic, 8);
	if (memcmp(magic, FLOW_MAGIC, 8) != 0)
		return sbi_err_set(err, SBI_ECORRUPT, "not a flow model (bad magic)");
	uint32_t v = sbi_blobr_u32(r);
	if (v != FLOW_VERSION && v != SBI_FLOW_FORMAT_EMBED)
		return sbi_err_set(err, SBI_ECORRUPT, "flow model version %u, expected %u or %u", v, FLOW_VERSION,
		    SBI_FLOW_FORMAT_EMBED);
	c->kind = (int)sbi_blobr_u32(r);
	c->dim = sbi_blobr_u64(r);
	c->context = sbi_blobr_u64(r);
	c->transforms = sbi_blobr_u64(r);
	c->hidden = sbi_blobr_u64(r);
	c->layers = sbi_blobr_u64(r);
	c->bins = sbi_blobr_u64(r);
	c->bound = sbi_blobr_f64(r);
	c->act = (int)sbi_blobr_u32(r);
	c->seed = sbi_blobr_u64(r);
	c->embed = (sbi_embed_config){ 0 };
	if (v == SBI_FLOW_FORMAT_EMBED) {
		sbi_embed_read_config(&c->embed, r);
		if (!r->bad && c->embed.out == 0)
			return sbi_err_set(err, SBI_ECORRUPT, "flow model: version %u without an embedding", v);
	}
	return r->bad ? sbi_err_set(err, SBI_ECORRUPT, "flow model truncated") : SBI_OK;
}

static int
read_body(sbi_blobr *r, sbi_flow *f, sbi_err *err)
{
	const sbi_flow_config *c = &f->cfg;
	sbi_zscore_read(&f->y, r);
	sbi_zscore_read(&f->c, r);
	for (size_t i = 0; i < c->transforms * c->dim; i++) {
		uint32_t p = sbi_blobr_u32(r);
		if (p >= c->dim)
			return sbi_err_set(err, SBI_ECORRUPT, "flow model: bad permutation");
		f->perm[i] = (int)p;
	}
	size_t at;
	if (sbi_params_read(r, f->params, f->nparams, &at) != 0)
		return at == f->nparams ? sbi_err_set(err, SBI_ECORRUPT, "flow model: parameter count mismatch")
		                        : sbi_err_set(err, SBI_ECORRUPT, "flow model: parameter %zu has the wrong shape", at);
	if (r->bad || r->off != r->n)
		return sbi_err_set(err, SBI_ECORRUPT, "flow model truncated or with trailing bytes");
	f->log_std_sum = 0;
	for (size_t j = 0; j < c->dim; j++)
		f->log_std_sum += log(f->y.std[j]);
	set_inverse_perms(f);
	return SBI_OK;
}

sbi_flow *
sbi_flow_load(const unsigned char *buf, size_t len, sbi_err *err)
{
	sbi_blobr r = { buf, len, 0, 0 };
	if (sbi_blobr_verify(&r) != 0) {
		sbi_err_set(err, SBI_ECORRUPT, "flow model checksum mismatch");
		return NULL;
	}
	sbi_flow_config c;
	if (read_header(&r, &c, err) != SBI_OK)
		return NULL;
	sbi_flow *f = flow_new(&c, err);
	if (f && read_body(&r, f, err) != SBI_OK) {
		sbi_flow_free(f);
		f = NULL;
	}
	return f;
}
