/* Fitting the neural estimators (see fit.h). */
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/fit.h"

/* Copies rows idx[0..n) of src (rows of d floats) to the batch dst. */
static void
gather_rows(float *dst, const float *src, size_t d, const size_t *idx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		memcpy(dst + i * d, src + idx[i] * d, d * sizeof(float));
}

/* ---- flows ---- */

typedef struct flow_fit {
	sbi_flow *f;
	float *ys, *cs, *yb, *cb; /* standardized data and one batch (owned) */
	size_t dy, dc;
} flow_fit;

/* -mean log q(y | c) over the rows idx of the batch. */
static sbi_var
flow_loss(void *ud, sbi_tape *t, const size_t *idx, size_t n)
{
	flow_fit *F = ud;
	gather_rows(F->yb, F->ys, F->dy, idx, n);
	if (F->dc)
		gather_rows(F->cb, F->cs, F->dc, idx, n);
	sbi_var y = sbi_ad_const(t, F->yb, n, F->dy), c = F->dc ? sbi_ad_const(t, F->cb, n, F->dc) : -1;
	return sbi_ad_scale(t, sbi_ad_mean(t, sbi_flow_log_prob_std(F->f, t, y, c)), -1.0f);
}

int
sbi_fit_flow(const sbi_flow_config *cfg, const sbi_train_opts *o, const double *y, const double *c,
    size_t n, sbi_flow **out, sbi_train_report *rep, sbi_err *err)
{
	memset(rep, 0, sizeof *rep);
	*out = NULL;
	sbi_flow *f = sbi_flow_alloc(cfg, err);
	size_t dy = cfg->dim, dc = cfg->context;
	flow_fit F = { f, sbi_malloc(n * dy * sizeof(float)), dc ? sbi_malloc(n * dc * sizeof(float)) : NULL,
		sbi_malloc(o->batch * dy * sizeof(float)), dc ? sbi_malloc(o->batch * dc * sizeof(float)) : NULL, dy, dc };
	int rc = f ? SBI_OK : err->code;
	if (rc == SBI_OK && (!F.ys || !F.yb || (dc && (!F.cs || !F.cb))))
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for training data");
	if (rc == SBI_OK) {
		sbi_flow_set_standardization(f, y, c, n);
		sbi_flow_standardize(f, y, c, n, F.ys, F.cs);
		size_t np;
		sbi_param **ps = sbi_flow_params(f, &np);
		sbi_trainable m = { ps, np, flow_loss, &F };
		rc = sbi_train(&m, n, o, rep, err);
	}
	sbi_free(F.ys), sbi_free(F.cs), sbi_free(F.yb), sbi_free(F.cb);
	if (rc == SBI_OK)
		*out = f;
	else
		sbi_flow_free(f);
	return rc;
}

/* ---- ratio classifiers ---- */

typedef struct clsf_fit {
	sbi_classifier *c;
	float *ts, *xs, *tb, *xb, *scratch; /* standardized data, one batch, the loss's scratch (owned) */
	size_t dt, dx, atoms;
} clsf_fit;

static sbi_var
clsf_loss(void *ud, sbi_tape *t, const size_t *idx, size_t n)
{
	clsf_fit *F = ud;
	gather_rows(F->tb, F->ts, F->dt, idx, n);
	gather_rows(F->xb, F->xs, F->dx, idx, n);
	return sbi_classifier_loss(F->c, t, F->tb, F->xb, n, F->atoms, F->scratch);
}

int
sbi_fit_classifier(const sbi_classifier_config *cfg, size_t atoms, const sbi_train_opts *o,
    const double *theta, const double *x, size_t n, sbi_classifier **out, sbi_train_report *rep, sbi_err *err)
{
	memset(rep, 0, sizeof *rep);
	*out = NULL;
	sbi_classifier *c = sbi_classifier_alloc(cfg, err);
	size_t B = o->batch, K = atoms > 1 ? atoms : 1;
	clsf_fit F = { c, sbi_malloc(n * cfg->dtheta * sizeof(float)), sbi_malloc(n * cfg->dx * sizeof(float)),
		sbi_malloc(B * cfg->dtheta * sizeof(float)), sbi_malloc(B * cfg->dx * sizeof(float)),
		sbi_malloc(B * K * (cfg->dtheta + cfg->dx) * sizeof(float)), cfg->dtheta, cfg->dx, atoms };
	int rc = c ? SBI_OK : err->code;
	if (rc == SBI_OK && (!F.ts || !F.xs || !F.tb || !F.xb || !F.scratch))
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for training data");
	if (rc == SBI_OK) {
		sbi_classifier_set_standardization(c, theta, x, n);
		sbi_classifier_standardize(c, theta, x, n, F.ts, F.xs);
		size_t np;
		sbi_param **ps = sbi_classifier_params(c, &np);
		sbi_trainable m = { ps, np, clsf_loss, &F };
		rc = sbi_train(&m, n, o, rep, err);
	}
	sbi_free(F.ts), sbi_free(F.xs), sbi_free(F.tb), sbi_free(F.xb), sbi_free(F.scratch);
	if (rc == SBI_OK)
		*out = c;
	else
		sbi_classifier_free(c);
	return rc;
}
