/* Embedding networks (see embed.h). */
#include <gsl/gsl_randist.h>
#include <math.h>

#include "sbi/act.h"
#include "sbi/alloc.h"
#include "sbi/embed.h"
#include "sbi/rng.h"

#define EMBED_MAX_WIDTH 4096

struct sbi_embed {
	sbi_embed_config cfg;
	size_t in;
	sbi_param **params; /* (W_l, b_l) x layers, W_out, b_out (owned) */
	size_t nparams;
};

int
sbi_embed_check(const sbi_embed_config *c, size_t in, sbi_err *err)
{
	if (in < 1)
		return sbi_err_set(err, SBI_EINVAL, "embedding: needs an input (x) to embed");
	if (c->out < 1 || c->out > EMBED_MAX_WIDTH)
		return sbi_err_set(err, SBI_EINVAL, "embedding: out must be in 1..%d, got %zu", EMBED_MAX_WIDTH, c->out);
	if (c->layers > SBI_EMBED_MAX_LAYERS)
		return sbi_err_set(err, SBI_EINVAL, "embedding: at most %d hidden layers, got %zu", SBI_EMBED_MAX_LAYERS,
		    c->layers);
	for (size_t l = 0; l < c->layers; l++)
		if (c->hidden[l] < 1 || c->hidden[l] > EMBED_MAX_WIDTH)
			return sbi_err_set(err, SBI_EINVAL, "embedding: hidden layer %zu has %zu units (1..%d expected)", l + 1,
			    c->hidden[l], EMBED_MAX_WIDTH);
	if (!sbi_act_valid(c->act))
		return sbi_err_set(err, SBI_EINVAL, "embedding: unknown activation %d", c->act);
	return SBI_OK;
}

int
sbi_embed_same(const sbi_embed_config *a, const sbi_embed_config *b)
{
	if (a->out != b->out || (a->out && (a->layers != b->layers || a->act != b->act)))
		return 0;
	for (size_t l = 0; a->out && l < a->layers; l++)
		if (a->hidden[l] != b->hidden[l])
			return 0;
	return 1;
}

void
sbi_embed_free(sbi_embed *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->nparams; i++)
		sbi_param_free(e->params[i]);
	sbi_free(e->params);
	sbi_free(e);
}

sbi_embed *
sbi_embed_new(const sbi_embed_config *cfg, size_t in, sbi_err *err)
{
	if (sbi_embed_check(cfg, in, err) != SBI_OK)
		return NULL;
	sbi_embed *e = sbi_calloc(1, sizeof *e);
	size_t n = 2 * cfg->layers + 2;
	if (e == NULL || (e->params = sbi_calloc(n, sizeof *e->params)) == NULL) {
		sbi_free(e);
		sbi_err_set(err, SBI_ENOMEM, "out of memory for an embedding");
		return NULL;
	}
	e->cfg = *cfg;
	e->in = in;
	size_t prev = in;
	for (size_t l = 0; l <= cfg->layers; l++) {
		size_t width = l < cfg->layers ? cfg->hidden[l] : cfg->out;
		e->params[e->nparams] = sbi_param_alloc(prev, width);
		if (e->params[e->nparams] != NULL)
			e->params[++e->nparams] = sbi_param_alloc(1, width);
		if (e->params[e->nparams] == NULL) {
			sbi_embed_free(e);
			sbi_err_set(err, SBI_ENOMEM, "out of memory for an embedding");
			return NULL;
		}
		e->nparams++;
		prev = width;
	}
	return e;
}

int
sbi_embed_init(sbi_embed *e, uint64_t seed)
{
	gsl_rng *r = sbi_rng_alloc();
	if (r == NULL)
		return -1;
	sbi_rng_set_stream(r, seed, SBI_STREAM_METHOD, 0x656d6264 /* "embd" */);
	for (size_t i = 0; i < e->nparams; i++) {
		sbi_param *p = e->params[i];
		/* A bias (1 x m) has its layer's weight (k x m) before it. */
		size_t fan_in = i % 2 ? e->params[i - 1]->rows : p->rows;
		double b = 1.0 / sqrt((double)fan_in);
		for (size_t k = 0; k < p->rows * p->cols; k++)
			p->w[k] = (float)gsl_ran_flat(r, -b, b);
	}
	gsl_rng_free(r);
	return 0;
}

sbi_param **
sbi_embed_params(sbi_embed *e, size_t *n)
{
	*n = e->nparams;
	return e->params;
}

sbi_var
sbi_embed_forward(sbi_embed *e, sbi_tape *t, sbi_var x)
{
	sbi_var h = x;
	for (size_t l = 0; l < e->cfg.layers; l++) {
		sbi_var w = sbi_ad_param(t, e->params[2 * l]), b = sbi_ad_param(t, e->params[2 * l + 1]);
		h = e->cfg.act == SBI_ACT_TANH ? sbi_ad_linear_tanh(t, h, w, b)
		                               : sbi_act_apply(t, e->cfg.act, sbi_ad_linear(t, h, w, b));
	}
	size_t L = e->cfg.layers;
	return sbi_ad_linear(t, h, sbi_ad_param(t, e->params[2 * L]), sbi_ad_param(t, e->params[2 * L + 1]));
}

void
sbi_embed_write_config(const sbi_embed_config *c, sbi_blobw *w)
{
	sbi_blobw_u64(w, c->out);
	sbi_blobw_u64(w, c->layers);
	for (size_t l = 0; l < c->layers; l++)
		sbi_blobw_u64(w, c->hidden[l]);
	sbi_blobw_u32(w, (uint32_t)c->act);
}

void
sbi_embed_read_config(sbi_embed_config *c, sbi_blobr *r)
{
	*c = (sbi_embed_config){ 0 };
	c->out = sbi_blobr_u64(r);
	uint64_t layers = sbi_blobr_u64(r);
	if (layers > SBI_EMBED_MAX_LAYERS) {
		r->bad = 1;
		return;
	}
	c->layers = (size_t)layers;
	for (size_t l = 0; l < c->layers; l++)
		c->hidden[l] = sbi_blobr_u64(r);
	c->act = (int)sbi_blobr_u32(r);
}
