/* sbi.MLP for Lua, the networks fitted by mean-squared error
 * (engine/nn/mlp.c): core.mlp_train (a regressor), core.autoencoder_train,
 * core.linear_train (least squares as a one-layer network), core.mlp_load
 * and the MLP methods (apply, encode, decode, dims). They take matrices
 * and numbers only. */
#include <string.h>

#include "lnn.h"
#include "sbi/mlp.h"

#define SBI_MT_MLP "sbi.MLP"

static const l_model_kind mlp_kind;

/* The hidden widths of option 'hidden' (a list of at most max integers)
 * into w; returns their count. [..] -> [..] */
static size_t
read_hidden(lua_State *L, int spec, size_t *w, size_t max)
{
	luaL_checkstack(L, 2, "reading options");
	if (lua_getfield(L, spec, "hidden") != LUA_TTABLE)
		luaL_error(L, "option 'hidden' must be a list of layer widths (integers), got %s", luaL_typename(L, -1));
	lua_Integer n = luaL_len(L, -1);
	if (n < 0 || (size_t)n > max)
		luaL_error(L, "option 'hidden' has %I layers, at most %I are allowed", n, (lua_Integer)max);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, -1, i);
		int ok;
		lua_Integer v = lua_tointegerx(L, -1, &ok);
		if (!ok || v < 1 || v > SBI_MAX_SHAPE)
			luaL_error(L, "option 'hidden': element %I must be an integer in 1..%I", i, SBI_MAX_SHAPE);
		w[i - 1] = (size_t)v;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return (size_t)n;
}

/* The matrix option k, required, with at least 2 rows. [..] -> [.., m] */
static sbi_mat *
data_mat(lua_State *L, int spec, const char *k)
{
	sbi_mat *m = sbi__spec_mat(L, spec, k, 1);
	sbi__check_cols(L, m, k);
	if (m->nrow < 2 || m->ncol < 1)
		luaL_error(L, "option '%s' has %I rows and %I columns (needs at least 2 rows)", k, (lua_Integer)m->nrow,
		    (lua_Integer)m->ncol);
	return m;
}

/* Fits cfg to x and y (NULL: an autoencoder) and pushes the model and the
 * report. [..] -> [.., box, model, report] */
static int
fit_and_push(lua_State *L, const sbi_mlp_config *cfg, const sbi_train_opts *o, const sbi_mat *x, const sbi_mat *y)
{
	sbi__blas_threads();
	l_trained *tr = sbi__push_trained_box(L); /* frees the results if anything below raises */
	sbi_err err = { 0 };
	sbi_mlp *m;
	int rc = sbi_mlp_fit(cfg, o, x->data, y ? y->data : NULL, x->nrow, &m, &tr->rep, &err);
	if (rc == SBI_OK) {
		rc = sbi_mlp_save(m, &tr->blob, &tr->len, &err);
		sbi_mlp_free(m);
	}
	if (rc != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	sbi__push_trained(L, tr);
	return 2;
}

/* The options common to both trainers: activation, seed, training.
 * [..] -> [.., values read] */
static void
common_opts(lua_State *L, sbi_mlp_config *cfg, sbi_train_opts *o)
{
	cfg->act = sbi__activation(L, sbi__spec_str(L, 1, "activation"));
	cfg->seed = (uint64_t)sbi__spec_int(L, 1, "seed", 0, LUA_MAXINTEGER);
	sbi__train_opts(L, 1, o, cfg->seed);
}

/* core.mlp_train(spec) -> model, report
 * [spec] -> [spec, values read, box, model, report] */
static int
l_mlp_train(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	sbi_mat *x = data_mat(L, 1, "x"), *y = data_mat(L, 1, "y");
	if (x->nrow != y->nrow)
		return luaL_error(L, "x has %I rows but y has %I", (lua_Integer)x->nrow, (lua_Integer)y->nrow);
	sbi_mlp_config cfg = { 0 };
	size_t nh = read_hidden(L, 1, cfg.width + 1, SBI_MLP_MAX_LAYERS - 1);
	cfg.layers = nh + 1;
	cfg.width[0] = x->ncol;
	cfg.width[nh + 1] = y->ncol;
	sbi_train_opts o;
	common_opts(L, &cfg, &o);
	return fit_and_push(L, &cfg, &o, x, y);
}

/* core.autoencoder_train(spec) -> model, report: the encoder's layers are
 * hidden then latent, the decoder's the reverse.
 * [spec] -> [spec, values read, box, model, report] */
static int
l_autoencoder_train(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	sbi_mat *x = data_mat(L, 1, "x");
	size_t h[SBI_MLP_MAX_LAYERS];
	size_t nh = read_hidden(L, 1, h, SBI_MLP_MAX_LAYERS / 2 - 1);
	size_t k = (size_t)sbi__spec_int(L, 1, "latent", 1, SBI_MAX_SHAPE);
	sbi_mlp_config cfg = { .layers = 2 * nh + 2, .code = nh + 1 };
	cfg.width[0] = cfg.width[2 * nh + 2] = x->ncol;
	for (size_t i = 0; i < nh; i++)
		cfg.width[1 + i] = cfg.width[2 * nh + 1 - i] = h[i];
	cfg.width[nh + 1] = k;
	sbi_train_opts o;
	common_opts(L, &cfg, &o);
	return fit_and_push(L, &cfg, &o, x, NULL);
}

/* core.linear_train{ x =, y = } -> model
 * [spec] -> [spec, x, y, box, model] */
static int
l_linear_train(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	sbi_mat *x = data_mat(L, 1, "x"), *y = data_mat(L, 1, "y");
	if (x->nrow != y->nrow)
		return luaL_error(L, "x has %I rows but y has %I", (lua_Integer)x->nrow, (lua_Integer)y->nrow);
	l_trained *tr = sbi__push_trained_box(L); /* frees the model if anything below raises */
	sbi_err err = { 0 };
	sbi_mlp *m;
	int rc = sbi_mlp_fit_linear(x->data, y->data, x->nrow, x->ncol, y->ncol, &m, &err);
	if (rc == SBI_OK) {
		rc = sbi_mlp_save(m, &tr->blob, &tr->len, &err);
		sbi_mlp_free(m);
	}
	if (rc != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	lua_pushlstring(L, (const char *)tr->blob, tr->len);
	return 1;
}

/* core.mlp_load(blob) -> MLP */
static int
l_mlp_load(lua_State *L)
{
	return sbi__load_model(L, &mlp_kind);
}

typedef int (*mlp_run_fn)(sbi_mlp *m, sbi_tape *t, const double *in, size_t n, double *out, sbi_err *err);

/* net:apply(x), net:encode(x), net:decode(z): the rows of a Mat through
 * layers [from, to). [net, m] -> [net, m, out] */
static int
run(lua_State *L, const char *what, mlp_run_fn fn, int from, int to)
{
	l_model *lm = sbi__check_model(L, 1, &mlp_kind);
	const sbi_mlp_config *c = sbi_mlp_config_of(lm->m);
	if ((from < 0 || to < 0) && c->code == 0)
		return luaL_error(L, "%s: the network is not an autoencoder", what);
	size_t din = c->width[from < 0 ? c->code : 0], dout = c->width[to < 0 ? c->code : c->layers];
	sbi_mat *in = sbi__check_mat(L, 2)->m;
	if (in->ncol != din)
		return luaL_error(L, "%s: the matrix has %I columns, the network takes %I", what, (lua_Integer)in->ncol,
		    (lua_Integer)din);
	sbi_mat *out = sbi__push_new_mat(L, in->nrow, dout);
	sbi__blas_threads();
	sbi_err err = { 0 };
	if (fn(lm->m, lm->t, in->data, in->nrow, out->data, &err) != SBI_OK)
		return luaL_error(L, "%s: %s", what, err.msg);
	return 1;
}

static int
l_mlp_apply(lua_State *L)
{
	return run(L, "apply", sbi_mlp_apply, 0, 0);
}

static int
l_mlp_encode(lua_State *L)
{
	return run(L, "encode", sbi_mlp_encode, 0, -1);
}

static int
l_mlp_decode(lua_State *L)
{
	return run(L, "decode", sbi_mlp_decode, -1, 0);
}

/* net:gauss_loglik(theta, x, W): the emulated Gaussian log-likelihood
 * -|W (x - net(theta))|^2 / 2 of one theta (a table of numbers: returns a
 * number) or of the rows of a Mat (returns an n x 1 Mat); x is the data
 * row (a table or a 1-row Mat), W a d x d Mat.
 * [net, theta, x, W] -> [net, theta, x, W, .., result] */
static int
l_mlp_gauss_loglik(lua_State *L)
{
	l_model *lm = sbi__check_model(L, 1, &mlp_kind);
	const sbi_mlp_config *c = sbi_mlp_config_of(lm->m);
	size_t p = c->width[0], d = c->width[c->layers];
	int one = lua_istable(L, 2);
	const double *theta;
	size_t n = 1;
	if (one)
		theta = sbi__to_vector(L, 2, p, "theta");
	else {
		sbi_mat *th = sbi__check_mat(L, 2)->m;
		if (th->ncol != p)
			return luaL_error(L, "gauss_loglik: theta has %I columns, the network takes %I", (lua_Integer)th->ncol,
			    (lua_Integer)p);
		theta = th->data, n = th->nrow;
	}
	const double *x = sbi__to_vector(L, 3, d, "x");
	sbi_mat *W = sbi__check_mat(L, 4)->m;
	if (W->nrow != d || W->ncol != d)
		return luaL_error(L, "gauss_loglik: W is %I x %I, the network has %I outputs", (lua_Integer)W->nrow,
		    (lua_Integer)W->ncol, (lua_Integer)d);
	double v;
	double *out = one ? &v : sbi__push_new_mat(L, n, 1)->data;
	sbi__blas_threads();
	sbi_err err = { 0 };
	if (sbi_mlp_gauss_loglik(lm->m, lm->t, theta, n, x, W->data, out, &err) != SBI_OK)
		return luaL_error(L, "gauss_loglik: %s", err.msg);
	if (one)
		lua_pushnumber(L, v);
	return 1;
}

/* net:dims() -> inputs, outputs, code width (0 for a regressor).
 * [net] -> [net, din, dout, k] */
static int
l_mlp_dims(lua_State *L)
{
	const sbi_mlp_config *c = sbi_mlp_config_of(sbi__check_model(L, 1, &mlp_kind)->m);
	lua_pushinteger(L, (lua_Integer)c->width[0]);
	lua_pushinteger(L, (lua_Integer)c->width[c->layers]);
	lua_pushinteger(L, (lua_Integer)(c->code ? c->width[c->code] : 0));
	return 3;
}

/* ---- the kind ---- */

static void *
mlp_load(const unsigned char *blob, size_t len, sbi_err *err)
{
	return sbi_mlp_load(blob, len, err);
}

static void
mlp_free(void *m)
{
	sbi_mlp_free(m);
}

/* "sbi.MLP(5 -> 2)", "sbi.MLP(50 -> 3 -> 50)". [..] -> [.., s] */
static void
mlp_name(lua_State *L, const void *m)
{
	const sbi_mlp_config *c = sbi_mlp_config_of(m);
	if (c->code)
		lua_pushfstring(L, SBI_MT_MLP "(%I -> %I -> %I)", (lua_Integer)c->width[0], (lua_Integer)c->width[c->code],
		    (lua_Integer)c->width[c->layers]);
	else
		lua_pushfstring(L, SBI_MT_MLP "(%I -> %I)", (lua_Integer)c->width[0], (lua_Integer)c->width[c->layers]);
}

static const l_model_kind mlp_kind = {
	.tname = SBI_MT_MLP,
	.released = "released network",
	.load = mlp_load,
	.free = mlp_free,
	.push_name = mlp_name,
};

static const luaL_Reg mlp_methods[] = {
	{ "apply", l_mlp_apply }, { "encode", l_mlp_encode }, { "decode", l_mlp_decode }, { "dims", l_mlp_dims },
	{ "gauss_loglik", l_mlp_gauss_loglik }, { NULL, NULL },
};

static const luaL_Reg mlp_funcs[] = {
	{ "mlp_train", l_mlp_train }, { "autoencoder_train", l_autoencoder_train }, { "linear_train", l_linear_train },
	{ "mlp_load", l_mlp_load }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_mlp(lua_State *L)
{
	sbi__new_model_type(L, &mlp_kind, mlp_methods);
	luaL_setfuncs(L, mlp_funcs, 0);
}
