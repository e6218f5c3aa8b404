/* sbi.Classifier for Lua, the NRE ratio classifiers:
 * core.classifier_train, core.classifier_load and the Classifier methods
 * (log_ratio, dims). */
#include <string.h>

#include "lnn.h"
#include "sbi/fit.h"

/* core.classifier_train(spec) -> model blob, report
 * [spec] -> [spec, values read, box, model, report] */
static int
l_classifier_train(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	sbi_mat *th = sbi__spec_mat(L, 1, "theta", 1), *x = sbi__spec_mat(L, 1, "x", 1);
	sbi__check_cols(L, th, "theta");
	sbi__check_cols(L, x, "x");
	if (th->nrow != x->nrow)
		return luaL_error(L, "theta has %d rows but x has %d", (int)th->nrow, (int)x->nrow);
	/* Every option is required: the stdlib fills the defaults. */
	sbi_classifier_config cfg = { .dtheta = th->ncol, .dx = x->ncol };
	cfg.hidden = (size_t)sbi__spec_int(L, 1, "hidden", 1, SBI_MAX_SHAPE);
	cfg.layers = (size_t)sbi__spec_int(L, 1, "layers", 0, SBI_MAX_SMALL);
	cfg.act = sbi__activation(L, sbi__spec_str(L, 1, "activation"));
	cfg.seed = (uint64_t)sbi__spec_int(L, 1, "seed", 0, LUA_MAXINTEGER);
	cfg.residual = sbi__spec_bool(L, 1, "residual");
	sbi__spec_embed(L, 1, &cfg.embed);
	size_t atoms = (size_t)sbi__spec_int(L, 1, "atoms", 0, SBI_MAX_SMALL);
	sbi_train_opts o;
	sbi__train_opts(L, 1, &o, cfg.seed);
	size_t init_len;
	const char *init_blob = sbi__spec_model(L, 1, "init", &init_len);
	sbi__blas_threads();
	l_trained *tr = sbi__push_trained_box(L); /* frees the results if anything below raises */
	sbi_err err = { 0 };
	/* No Lua runs from here to the error below, so init cannot leak. */
	sbi_classifier *init = init_blob ? sbi_classifier_load((const unsigned char *)init_blob, init_len, &err) : NULL, *c;
	if (init_blob && init == NULL)
		return luaL_error(L, "option 'init': %s", err.msg);
	int rc = sbi_fit_classifier_ex(&cfg, atoms, init, &o, th->data, x->data, th->nrow, &c, &tr->rep, &err);
	sbi_classifier_free(init);
	if (rc == SBI_OK)
		rc = sbi_classifier_save(c, &tr->blob, &tr->len, &err);
	sbi_classifier_free(c);
	if (rc != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	sbi__push_trained(L, tr);
	return 2;
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
	{ "classifier_train", l_classifier_train }, { "classifier_load", l_classifier_load }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_classifier(lua_State *L)
{
	sbi__new_model_type(L, &sbi__classifier_kind, classifier_methods);
	luaL_setfuncs(L, classifier_funcs, 0);
}
