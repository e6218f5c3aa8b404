/* Fitting the neural estimators (see fit.h). */
#include <math.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/fit.h"

/* Copies rows idx[0..n) of src (rows of d floats) to the batch dst (a
 * loop: rows are a few floats, too short for a memcpy call each). */
static void
gather_rows(float *restrict dst, const float *restrict src, size_t d, const size_t *idx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			dst[i * d + j] = src[idx[i] * d + j];
}

/* ---- warm starts: a copy of the initial model, whose configuration must be the fit's ---- */

/* A copy of f through its model file (caller frees); NULL with err set. */
static sbi_flow *
flow_copy(const sbi_flow *f, sbi_err *err)
{
	unsigned char *buf;
	size_t len;
	if (sbi_flow_save(f, &buf, &len, err) != SBI_OK)
		return NULL;
	sbi_flow *g = sbi_flow_load(buf, len, err);
	sbi_free(buf);
	return g;
}

/* SBI_OK when the initial model's configuration a equals the fit's b,
 * seeds aside (a warm start keeps init's weights and permutations). */
static int
flow_config_match(const sbi_flow_config *a, const sbi_flow_config *b, sbi_err *err)
{
	static const char *const kinds[] = { "?", "maf", "nsf", "mdn" };
	if (a->kind != b->kind)
		return sbi_err_set(err, SBI_EINVAL, "init: the initial model is a %s, the fit's kind is %s",
		    kinds[a->kind >= 1 && a->kind <= 3 ? a->kind : 0], kinds[b->kind >= 1 && b->kind <= 3 ? b->kind : 0]);
	const struct { const char *name; size_t a, b; } f[] = {
		{ "dim (columns of y)", a->dim, b->dim }, { "context (columns)", a->context, b->context },
		{ "transforms", a->transforms, b->transforms }, { "hidden", a->hidden, b->hidden },
		{ "layers", a->layers, b->layers }, { a->kind == SBI_FLOW_MDN ? "components" : "bins", a->bins, b->bins },
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (f[i].a != f[i].b)
			return sbi_err_set(err, SBI_EINVAL, "init: the initial model's %s is %zu, the fit's %zu", f[i].name,
			    f[i].a, f[i].b);
	if (a->bound != b->bound)
		return sbi_err_set(err, SBI_EINVAL, "init: the initial model's bound is %g, the fit's %g", a->bound, b->bound);
	if (a->act != b->act)
		return sbi_err_set(err, SBI_EINVAL, "init: the initial model's activation differs from the fit's");
	if (!sbi_embed_same(&a->embed, &b->embed))
		return sbi_err_set(err, SBI_EINVAL, "init: the initial model's embedding differs from the fit's");
	return SBI_OK;
}

/* The flow to train (caller frees): a fresh one of cfg, or a copy of init. */
static sbi_flow *
flow_start(const sbi_flow_config *cfg, const sbi_flow *init, sbi_err *err)
{
	if (init == NULL)
		return sbi_flow_alloc(cfg, err);
	return flow_config_match(sbi_flow_config_of(init), cfg, err) == SBI_OK ? flow_copy(init, err) : NULL;
}

static sbi_classifier *
clsf_copy(const sbi_classifier *c, sbi_err *err)
{
	unsigned char *buf;
	size_t len;
	if (sbi_classifier_save(c, &buf, &len, err) != SBI_OK)
		return NULL;
	sbi_classifier *g = sbi_classifier_load(buf, len, err);
	sbi_free(buf);
	return g;
}

static int
clsf_config_match(const sbi_classifier_config *a, const sbi_classifier_config *b, sbi_err *err)
{
	const struct { const char *name; size_t a, b; } f[] = {
		{ "dim of theta", a->dtheta, b->dtheta }, { "dim of x", a->dx, b->dx }, { "hidden", a->hidden, b->hidden },
		{ "layers", a->layers, b->layers }, { "residual", (size_t)a->residual, (size_t)b->residual },
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (f[i].a != f[i].b)
			return sbi_err_set(err, SBI_EINVAL, "init: the initial model's %s is %zu, the fit's %zu", f[i].name,
			    f[i].a, f[i].b);
	if (a->act != b->act)
		return sbi_err_set(err, SBI_EINVAL, "init: the initial model's activation differs from the fit's");
	if (!sbi_embed_same(&a->embed, &b->embed))
		return sbi_err_set(err, SBI_EINVAL, "init: the initial model's embedding differs from the fit's");
	return SBI_OK;
}

static sbi_classifier *
clsf_start(const sbi_classifier_config *cfg, const sbi_classifier *init, sbi_err *err)
{
	if (init == NULL)
		return sbi_classifier_alloc(cfg, err);
	return clsf_config_match(sbi_classifier_config_of(init), cfg, err) == SBI_OK ? clsf_copy(init, err) : NULL;
}

/* ---- flows ---- */

typedef struct flow_fit {
	sbi_flow *f;
	float *ys, *cs, *yb, *cb; /* standardized data and one batch (owned) */
	size_t dy, dc;
	size_t atoms;             /* >= 2: the atomic loss */
	const double *log_prior;  /* with atoms: log p of each data row (borrowed) */
	float *lpb;               /* with atoms: log p of each atom of a batch (owned) */
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

/* The atomic loss's flow evaluations per tape chunk: at most this many
 * (row, atom) pairs. A batch of 50 rows with 10 atoms is 500 pairs, whose
 * 50 x 50 hidden products (M N K = 1.25e6) take OpenBLAS's packed GEMM
 * path; chunks of 250 take its unpacked small-matrix kernels (M N K <=
 * 1e6) and halve the working set of the tape (docs/benchmarks-sequential.md:
 * about 10% less training time). The chunks' losses are summed, and their
 * weight gradients accumulate, so the loss is the same function; only the
 * floating-point summation order differs from one 500-row pass. */
#define ATOMIC_CHUNK_PAIRS 250

/* From this many context columns on, the atomic loss forms each batch
 * row's context product once for its K atoms (sbi_flow_log_prob_std_rep):
 * with 50 columns (the tutorial) that product is as large as a hidden
 * layer's; with 2 (two_moons) repeating it in the GEMM is cheaper than the
 * extra pass. */
#define ATOMIC_SHARED_CONTEXT 8

/* The atomic loss (fit.h) over the rows idx: batch row (i, k) pairs the
 * context of row i with the y of row (i + k) mod n, as
 * sbi_classifier_loss's contrastive loss pairs its atoms. */
static sbi_var
flow_atomic_loss(void *ud, sbi_tape *t, const size_t *idx, size_t n)
{
	flow_fit *F = ud;
	size_t K = F->atoms < n ? F->atoms : n, dy = F->dy, dc = F->dc;
	/* The faster kernels (ad.h): 10 atoms make this loss ten times a
	 * plain NPE step, which is what SNPE's speed is. */
	sbi_tape_set_fast(t, 1);
	/* A wide context (or an embedding) is evaluated once per batch row, not
	 * once per atom; a narrow one is cheaper repeated in the product. */
	int shared = sbi_flow_config_of(F->f)->kind != SBI_FLOW_MDN && dc >= ATOMIC_SHARED_CONTEXT;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < K; k++) {
			size_t a = idx[(i + k) % n], r = i * K + k, rc = shared ? i : r;
			for (size_t j = 0; j < dy; j++)
				F->yb[r * dy + j] = F->ys[a * dy + j];
			for (size_t j = 0; j < dc; j++)
				F->cb[rc * dc + j] = F->cs[idx[i] * dc + j];
			F->lpb[r] = (float)F->log_prior[a];
		}
	size_t per = ATOMIC_CHUNK_PAIRS / K ? ATOMIC_CHUNK_PAIRS / K : 1;
	sbi_var loss = -1;
	for (size_t s = 0; s < n; s += per) {
		size_t m = n - s < per ? n - s : per, r0 = s * K;
		sbi_var y = sbi_ad_const(t, F->yb + r0 * dy, m * K, dy), lp;
		if (shared)
			lp = sbi_flow_log_prob_std_rep(F->f, t, y, sbi_ad_const(t, F->cb + s * dc, m, dc), K);
		else
			lp = sbi_flow_log_prob_std(F->f, t, y, sbi_ad_const(t, F->cb + r0 * dc, m * K, dc));
		sbi_var l = sbi_ad_sub(t, lp, sbi_ad_const(t, F->lpb + r0, m * K, 1));
		sbi_var lk = sbi_ad_reshape(t, l, m, K);
		sbi_var part = sbi_ad_mean(t, sbi_ad_sub(t, sbi_ad_logsumexp_rows(t, lk), sbi_ad_cols(t, lk, 0, 1)));
		if (m < n)
			part = sbi_ad_scale(t, part, (float)m / (float)n);
		loss = loss < 0 ? part : sbi_ad_add(t, loss, part);
	}
	return loss;
}

/* The atoms' requirements: a context and a finite log prior per row. */
static int
check_atoms(const sbi_flow_config *cfg, const sbi_flow_fit_opts *fo, size_t n, sbi_err *err)
{
	if (fo->atoms == 0)
		return SBI_OK;
	if (fo->atoms < 2)
		return sbi_err_set(err, SBI_EINVAL, "atoms = %zu: expected at least 2 (or 0 for maximum "
		    "likelihood)", fo->atoms);
	if (cfg->context == 0)
		return sbi_err_set(err, SBI_EINVAL, "atoms: the atomic loss needs a context (it fits q(y | context))");
	if (fo->log_prior == NULL)
		return sbi_err_set(err, SBI_EINVAL, "atoms: the prior's log densities of the rows are missing");
	for (size_t i = 0; i < n; i++)
		if (!isfinite(fo->log_prior[i]))
			return sbi_err_set(err, SBI_EINVAL, "atoms: row %zu of y has log prior density %g (outside the "
			    "prior's support?)", i + 1, fo->log_prior[i]);
	return SBI_OK;
}

/* The data and batch buffers of F for n rows, batches of B; SBI_ENOMEM
 * leaves what was allocated for flow_fit_free. */
static int
flow_fit_alloc(flow_fit *F, size_t n, size_t B)
{
	size_t K = F->atoms > 1 ? (F->atoms < B ? F->atoms : B) : 1, dy = F->dy, dc = F->dc;
	F->ys = sbi_malloc(n * dy * sizeof(float));
	F->cs = dc ? sbi_malloc(n * dc * sizeof(float)) : NULL;
	F->yb = sbi_malloc(B * K * dy * sizeof(float));
	F->cb = dc ? sbi_malloc(B * K * dc * sizeof(float)) : NULL;
	F->lpb = F->atoms ? sbi_malloc(B * K * sizeof(float)) : NULL;
	return !F->ys || !F->yb || (dc && (!F->cs || !F->cb)) || (F->atoms && !F->lpb) ? SBI_ENOMEM : SBI_OK;
}

static void
flow_fit_free(flow_fit *F)
{
	sbi_free(F->ys), sbi_free(F->cs), sbi_free(F->yb), sbi_free(F->cb), sbi_free(F->lpb);
}

int
sbi_fit_flow_ex(const sbi_flow_config *cfg, const sbi_flow_fit_opts *fo, const sbi_train_opts *o,
    const double *y, const double *c, size_t n, sbi_flow **out, sbi_train_report *rep, sbi_err *err)
{
	static const sbi_flow_fit_opts none = { 0 };
	fo = fo ? fo : &none;
	memset(rep, 0, sizeof *rep);
	*out = NULL;
	if (check_atoms(cfg, fo, n, err) != SBI_OK)
		return err->code;
	sbi_flow *f = flow_start(cfg, fo->init, err);
	if (f == NULL)
		return err->code;
	flow_fit F = { .f = f, .dy = cfg->dim, .dc = cfg->context, .atoms = fo->atoms, .log_prior = fo->log_prior };
	int rc = flow_fit_alloc(&F, n, o->batch);
	if (rc != SBI_OK)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for training data");
	else {
		if (fo->init == NULL) /* a warm start keeps init's standardization */
			sbi_flow_set_standardization(f, y, c, n);
		sbi_flow_standardize(f, y, c, n, F.ys, F.cs);
		size_t np;
		sbi_param **ps = sbi_flow_params(f, &np);
		sbi_trainable m = { ps, np, fo->atoms ? flow_atomic_loss : flow_loss, &F };
		rc = sbi_train(&m, n, o, rep, err);
	}
	flow_fit_free(&F);
	if (rc == SBI_OK)
		*out = f;
	else
		sbi_flow_free(f);
	return rc;
}

int
sbi_fit_flow(const sbi_flow_config *cfg, const sbi_train_opts *o, const double *y, const double *c,
    size_t n, sbi_flow **out, sbi_train_report *rep, sbi_err *err)
{
	return sbi_fit_flow_ex(cfg, NULL, o, y, c, n, out, rep, err);
}

void
sbi_fit_log_prior(const sbi_prior *p, const double *theta, size_t n, double *out)
{
	size_t d = sbi_prior_dim(p);
	for (size_t i = 0; i < n; i++)
		out[i] = sbi_prior_log_density(p, theta + i * d);
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
sbi_fit_classifier_ex(const sbi_classifier_config *cfg, size_t atoms, const sbi_classifier *init,
    const sbi_train_opts *o, const double *theta, const double *x, size_t n, sbi_classifier **out,
    sbi_train_report *rep, sbi_err *err)
{
	memset(rep, 0, sizeof *rep);
	*out = NULL;
	sbi_classifier *c = clsf_start(cfg, init, err);
	if (c == NULL)
		return err->code;
	size_t B = o->batch, K = atoms > 1 ? atoms : 1;
	clsf_fit F = { c, sbi_malloc(n * cfg->dtheta * sizeof(float)), sbi_malloc(n * cfg->dx * sizeof(float)),
		sbi_malloc(B * cfg->dtheta * sizeof(float)), sbi_malloc(B * cfg->dx * sizeof(float)),
		sbi_malloc(B * K * (cfg->dtheta + cfg->dx) * sizeof(float)), cfg->dtheta, cfg->dx, atoms };
	int rc = SBI_OK;
	if (!F.ts || !F.xs || !F.tb || !F.xb || !F.scratch)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for training data");
	if (rc == SBI_OK) {
		if (init == NULL) /* a warm start keeps init's standardization */
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

int
sbi_fit_classifier(const sbi_classifier_config *cfg, size_t atoms, const sbi_train_opts *o,
    const double *theta, const double *x, size_t n, sbi_classifier **out, sbi_train_report *rep, sbi_err *err)
{
	return sbi_fit_classifier_ex(cfg, atoms, NULL, o, theta, x, n, out, rep, err);
}
