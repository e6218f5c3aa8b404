/* Part of sbi.core: the summary compressors' primitives
 * (engine/infer/compress.c), used by stdlib/sbi/summary.lua:
 * core.linear_map, core.covariance, core.pca, core.moped_weights. */
#include "lsbi.h"
#include "sbi/compress.h"

/* core.linear_map(x Mat, w Mat [, offset]) -> Mat: (x - offset) w, one
 * BLAS product (sbi_compress_linear).
 * [x, w, offset?] -> [x, w, offset?, v?, out] */
static int
l_linear_map(lua_State *L)
{
	size_t d = sbi__check_mat(L, 2)->m->nrow;
	lua_settop(L, 3);
	double *off = lua_isnil(L, 3) ? NULL : sbi__to_vector(L, 3, d, "the offset"); /* [.., v?] */
	sbi_mat *x = sbi__check_mat(L, 1)->m, *w = sbi__check_mat(L, 2)->m; /* again: metamethods ran */
	if (w->nrow != d)
		return luaL_error(L, "the map changed while reading the offset");
	if (x->ncol != d)
		return luaL_error(L, "the data have %d columns but the map expects %d", (int)x->ncol, (int)d);
	sbi_mat *out = sbi__push_new_mat(L, x->nrow, w->ncol); /* [.., out] */
	sbi_err err = { 0 };
	if (sbi_compress_linear(x, off, w, out, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

/* core.covariance(x Mat) -> means, cov: the column means (a list) and
 * the covariance (a d x d Mat, divisor n - 1).
 * [x] -> [x, means-buffer, cov, means] */
static int
l_covariance(lua_State *L)
{
	sbi_mat *x = sbi__check_mat(L, 1)->m;
	double *mean = sbi__scratch(L, x->ncol);              /* [.., buf] */
	sbi_mat *cov = sbi__push_new_mat(L, x->ncol, x->ncol); /* [.., buf, cov] */
	sbi_err err = { 0 };
	if (sbi_compress_covariance(x, mean, cov, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	sbi__push_numbers(L, mean, x->ncol); /* [.., buf, cov, means] */
	lua_insert(L, -2);                   /* [.., buf, means, cov] */
	return 2;
}

/* core.pca(x Mat, k, standardize, whiten) -> w, offset, variances, total
 * (sbi_compress_pca): the d x k map, the column means, the k largest
 * eigenvalues and the sum of all.
 * [x, k, s, wh] -> [.., buf, w, offset, variances, total] */
static int
l_pca(lua_State *L)
{
	sbi_mat *x = sbi__check_mat(L, 1)->m;
	lua_Integer k = luaL_checkinteger(L, 2);
	int standardize = lua_toboolean(L, 3), whiten = lua_toboolean(L, 4);
	size_t d = x->ncol;
	if (k < 1 || (size_t)k > d)
		return luaL_error(L, "components must be from 1 to %d (the data's columns), got %d", (int)d, (int)k);
	double *buf = sbi__scratch(L, d + (size_t)k);               /* [.., buf] */
	sbi_mat *w = sbi__push_new_mat(L, d, (size_t)k);            /* [.., buf, w] */
	double total = 0;
	sbi_err err = { 0 };
	if (sbi_compress_pca(x, (size_t)k, standardize, whiten, w, buf, buf + d, &total, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	sbi__push_numbers(L, buf, d);              /* [.., buf, w, offset] */
	sbi__push_numbers(L, buf + d, (size_t)k);  /* [.., buf, w, offset, variances] */
	lua_pushnumber(L, total);                  /* [.., buf, w, offset, variances, total] */
	return 4;
}

/* core.moped_weights(cov Mat, dmu Mat [, gram_schmidt = true]) -> w
 * (sbi_compress_moped): the d x p map whose columns are the MOPED vectors
 * (or C^-1 mu_,i without Gram-Schmidt).  [cov, dmu, gs?] -> [.., w] */
static int
l_moped_weights(lua_State *L)
{
	sbi_mat *cov = sbi__check_mat(L, 1)->m, *dmu = sbi__check_mat(L, 2)->m;
	int gs = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
	sbi_mat *w = sbi__push_new_mat(L, cov->nrow, dmu->nrow); /* [.., w] */
	sbi_err err = { 0 };
	if (sbi_compress_moped(cov, dmu, gs, w, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

static const luaL_Reg summary_funcs[] = {
	{ "linear_map", l_linear_map }, { "covariance", l_covariance }, { "pca", l_pca },
	{ "moped_weights", l_moped_weights }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_summary(lua_State *L)
{
	luaL_setfuncs(L, summary_funcs, 0);
}
