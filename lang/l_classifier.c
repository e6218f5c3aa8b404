/* sbi.Classifier for Lua, the NRE ratio classifiers:
 * core.classifier_train, core.classifier_train_each, core.classifier_load
 * and the Classifier methods (log_ratio, dims). */
#include <string.h>

#include "lnn.h"
#include "sbi/fit.h"

/* One classifier to train: read from a Lua spec, then trained without
 * touching Lua (so several can train in threads at once). */
typedef struct clsf_job {
	l_train_job t; /* first: the result (l_train_jobs.c) */
	sbi_classifier_config cfg;
	size_t atoms;
	sbi_train_opts o;
	const sbi_mat *th, *x; /* borrowed from the spec, whose values stay on the stack */
	const char *init;      /* the warm start's model file (on the stack) or NULL */
	size_t init_len;
} clsf_job;

/* Reads j from the spec at index spec; every option is required (the
 * stdlib fills the defaults). [..] -> [.., values kept alive while j is used] */
static void
read_job(lua_State *L, int spec, void *job)
{
	clsf_job *j = job;
	sbi_mat *th = sbi__spec_mat(L, spec, "theta", 1), *x = sbi__spec_mat(L, spec, "x", 1);
	sbi__check_cols(L, th, "theta");
	sbi__check_cols(L, x, "x");
	if (th->nrow != x->nrow)
		luaL_error(L, "theta has %d rows but x has %d", (int)th->nrow, (int)x->nrow);
	sbi_classifier_config *cfg = &j->cfg;
	*cfg = (sbi_classifier_config){ .dtheta = th->ncol, .dx = x->ncol };
	cfg->hidden = (size_t)sbi__spec_int(L, spec, "hidden", 1, SBI_MAX_SHAPE);
	cfg->layers = (size_t)sbi__spec_int(L, spec, "layers", 0, SBI_MAX_SMALL);
	cfg->act = sbi__activation(L, sbi__spec_str(L, spec, "activation"));
	cfg->seed = (uint64_t)sbi__spec_int(L, spec, "seed", 0, LUA_MAXINTEGER);
	cfg->residual = sbi__spec_bool(L, spec, "residual");
	sbi__spec_embed(L, spec, &cfg->embed);
	j->atoms = (size_t)sbi__spec_int(L, spec, "atoms", 0, SBI_MAX_SMALL);
	sbi__train_opts(L, spec, &j->o, cfg->seed);
	j->init = sbi__spec_model(L, spec, "init", &j->init_len);
	j->th = th, j->x = x;
}

/* Trains j into j->t: no Lua calls, no shared state, so jobs may run in
 * parallel threads. */
static void
run_job(void *job)
{
	clsf_job *j = job;
	l_train_job *t = &j->t;
	sbi_err e = { 0 };
	sbi_classifier *init = j->init ? sbi_classifier_load((const unsigned char *)j->init, j->init_len, &e) : NULL,
		       *c = NULL;
	if (j->init && init == NULL) {
		t->rc = sbi_err_set(&t->err, e.code, "option 'init': %s", e.msg);
		return;
	}
	t->rc = sbi_fit_classifier_ex(&j->cfg, j->atoms, init, &j->o, j->th->data, j->x->data, j->th->nrow, &c,
	    &t->out.rep, &t->err);
	sbi_classifier_free(init);
	if (t->rc == SBI_OK)
		t->rc = sbi_classifier_save(c, &t->out.blob, &t->out.len, &t->err);
	sbi_classifier_free(c);
}

static const l_train_kind clsf_kind = { "classifier", sizeof(clsf_job), read_job, run_job };

/* core.classifier_train(spec) -> model blob, report */
static int
l_classifier_train(lua_State *L)
{
	return sbi__train_one(L, &clsf_kind);
}

/* core.classifier_train_each({ spec, ... }) -> { { model =, report = }, ... }:
 * several classifiers in threads or over the MPI ranks (l_train_jobs.c). */
static int
l_classifier_train_each(lua_State *L)
{
	return sbi__train_each(L, &clsf_kind);
}

/* core.classifier_load(blob) -> Classifier */
static int
l_classifier_load(lua_State *L)
{
	return sbi__load_model(L, &sbi__classifier_kind);
}

/* classifier:log_ratio(theta Mat, x row) -> Mat (n x 1) */
static int
l_classifier_log_ratio(lua_State *L)
{
	l_model *lc = sbi__check_model(L, 1, &sbi__classifier_kind);
	const sbi_classifier_config *cfg = sbi_classifier_config_of(lc->m);
	sbi_mat *th = sbi__check_mat(L, 2)->m;
	double *x = sbi__to_vector(L, 3, cfg->dx, "x");
	if (th->ncol != cfg->dtheta)
		return luaL_error(L, "log_ratio: theta needs %d columns", (int)cfg->dtheta);
	sbi_mat *out = sbi__push_new_mat(L, th->nrow, 1);
	sbi_err err = { 0 };
	if (sbi_classifier_log_ratio(lc->m, lc->t, th->data, x, th->nrow, out->data, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

/* c:dims() -> dtheta, dx. [c] -> [c, dtheta, dx] */
static int
l_classifier_dims(lua_State *L)
{
	const sbi_classifier_config *cfg = sbi_classifier_config_of(sbi__check_model(L, 1, &sbi__classifier_kind)->m);
	lua_pushinteger(L, (lua_Integer)cfg->dtheta);
	lua_pushinteger(L, (lua_Integer)cfg->dx);
	return 2;
}

/* ---- the kind ---- */

static void *
classifier_load(const unsigned char *blob, size_t len, sbi_err *err)
{
	return sbi_classifier_load(blob, len, err);
}

static void
classifier_free(void *m)
{
	sbi_classifier_free(m);
}

/* "sbi.Classifier(theta 2, x 3)". [..] -> [.., s] */
static void
classifier_name(lua_State *L, const void *m)
{
	const sbi_classifier_config *cfg = sbi_classifier_config_of(m);
	lua_pushfstring(L, SBI_MT_CLASSIFIER "(theta %I, x %I)", (lua_Integer)cfg->dtheta, (lua_Integer)cfg->dx);
}

const l_model_kind sbi__classifier_kind = {
	.tname = SBI_MT_CLASSIFIER,
	.released = "released classifier",
	.load = classifier_load,
	.free = classifier_free,
	.push_name = classifier_name,
};

static const luaL_Reg classifier_methods[] = {
	{ "log_ratio", l_classifier_log_ratio }, { "dims", l_classifier_dims }, { NULL, NULL },
};

static const luaL_Reg classifier_funcs[] = {
	{ "classifier_train", l_classifier_train }, { "classifier_train_each", l_classifier_train_each },
	{ "classifier_load", l_classifier_load }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_classifier(lua_State *L)
{
	sbi__new_model_type(L, &sbi__classifier_kind, classifier_methods);
	luaL_setfuncs(L, classifier_funcs, 0);
}
