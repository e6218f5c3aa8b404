/* sbi.Mat: dense matrices visible from Lua (1-based indices). */
#include <string.h>

#include "lsbi.h"
#include "sbi/alloc.h"

l_mat *
sbi__check_mat(lua_State *L, int idx)
{
	l_mat *lm = luaL_checkudata(L, idx, SBI_MT_MAT);
	if (lm->m == NULL || lm->released)
		sbi__argerror(L, idx, "matrix has been released");
	return lm;
}

/* Pushes an empty Mat userdata with its one user value (gc-safe). */
static l_mat *
new_mat_ud(lua_State *L)
{
	l_mat *lm = lua_newuserdatauv(L, sizeof *lm, 0); /* [ud] */
	lm->m = NULL;
	lm->owner = NULL;
	lm->borrowed = lm->readonly = lm->released = 0;
	luaL_setmetatable(L, SBI_MT_MAT);
	return lm;
}

void
sbi__push_mat(lua_State *L, sbi_mat *m)
{
	sbi_runctx *ctx = sbi__runctx(L);
	if (ctx && ctx->closing) {
		sbi_mat_free(m);
		sbi__refuse_closing(L);
	}
	new_mat_ud(L)->m = m; /* [ud] */
}

sbi_mat *
sbi__push_new_mat(lua_State *L, size_t nrow, size_t ncol)
{
	sbi_mat *m = sbi_mat_alloc(nrow, ncol);
	sbi__push_mat(L, m); /* owns m, also if it raises */
	if (m == NULL)
		luaL_error(L, "out of memory");
	return m;
}

void
sbi__push_mat_borrowed(lua_State *L, sbi_mat *m)
{
	sbi__refuse_closing(L); /* m is not ours to free */
	l_mat *lm = new_mat_ud(L); /* [ud] */
	lm->m = m;
	lm->borrowed = 1;
}

void
sbi__mat_make_view(lua_State *L, int idx, int owner)
{
	l_mat *lm = luaL_checkudata(L, idx, SBI_MT_MAT);
	sbi_artifact **box = lua_touserdata(L, owner);
	if (lm->owner == NULL)
		lm->owner = sbi_artifact_retain(*box);
	lm->borrowed = lm->readonly = 1;
}

void
sbi__push_mat_view(lua_State *L, sbi_mat *m, int owner)
{
	owner = lua_absindex(L, owner);
	sbi__push_mat_borrowed(L, m);     /* [.., ud]: m is the owner's */
	sbi__mat_make_view(L, -1, owner);
}

/* m, checked writable: a view of an artifact is shared with the cache and
 * with other steps, so writing it would change a result under its key. */
static sbi_mat *
check_writable(lua_State *L, int idx, const char *method)
{
	l_mat *lm = sbi__check_mat(L, idx);
	if (lm->readonly)
		luaL_error(L, "Mat:%s: this matrix is a read-only view of a cached artifact; copy it first with "
		    "m:copy()", method);
	return lm->m;
}

/* The dimension argument idx, in 0..2^40. [..] -> [..] */
static size_t
check_dim(lua_State *L, int idx)
{
	lua_Integer n = luaL_checkinteger(L, idx);
	luaL_argcheck(L, n >= 0 && n <= (1LL << 40), idx, "dimension out of range");
	return (size_t)n;
}

/* core.mat(nrow, ncol [, fill]) or core.mat(table) */
static int
l_mat_new(lua_State *L)
{
	if (lua_istable(L, 1)) {
		sbi__push_mat(L, sbi__to_mat(L, 1, "matrix"));
		return 1;
	}
	size_t r = check_dim(L, 1), c = check_dim(L, 2);
	double fill = luaL_optnumber(L, 3, 0.0);
	sbi__refuse_closing(L);
	l_mat *lm = new_mat_ud(L); /* [ud] */
	if ((lm->m = sbi_mat_alloc(r, c)) == NULL)
		return luaL_error(L, "out of memory for a %dx%d matrix", (int)r, (int)c);
	if (fill != 0)
		for (size_t i = 0; i < r * c; i++)
			lm->m->data[i] = fill;
	return 1;
}

/* The length of the table at idx as a matrix dimension; raises when it is
 * negative or beyond check_dim's range (a lying __len). */
static size_t
table_dim(lua_State *L, int idx, const char *what)
{
	lua_Integer n = luaL_len(L, idx);
	if (n < 0 || n > (1LL << 40))
		luaL_error(L, "%s: a table of length %I is not a matrix", what, n);
	return (size_t)n;
}

/* The rows of the table at idx; *ncol: the length of its first row when
 * that is a table, else 0 (a flat list). [..] -> [..] */
static size_t
row_count(lua_State *L, int idx, size_t *ncol, const char *what)
{
	size_t n = table_dim(L, idx, what);
	*ncol = 0;
	if (n == 0)
		return 0;
	lua_geti(L, idx, 1); /* [.., first] */
	if (lua_istable(L, -1))
		*ncol = table_dim(L, -1, what);
	lua_pop(L, 1); /* [..] */
	return n;
}

sbi_mat *
sbi__to_mat(lua_State *L, int idx, const char *what)
{
	idx = lua_absindex(L, idx);
	if (luaL_testudata(L, idx, SBI_MT_MAT)) {
		sbi_mat *d = sbi_mat_dup(sbi__check_mat(L, idx)->m);
		if (d == NULL)
			luaL_error(L, "out of memory");
		return d;
	}
	if (!lua_istable(L, idx))
		luaL_error(L, "%s: expected a table of numbers or of rows, got %s", what, luaL_typename(L, idx));
	size_t ncol, nrow = row_count(L, idx, &ncol, what);
	int flat = ncol == 0;
	if (flat) {
		ncol = nrow;
		nrow = 1;
	}
	if (ncol != 0 && nrow > (size_t)-1 / sizeof(double) / ncol)
		luaL_error(L, "%s: %I x %I values are too many", what, (lua_Integer)nrow, (lua_Integer)ncol);
	/* Read once into a buffer the collector owns: reading the table runs
	 * its metamethods, which may raise, so nothing malloc'ed is held. */
	double *v = lua_newuserdatauv(L, (nrow * ncol > 0 ? nrow * ncol : 1) * sizeof *v, 0); /* [.., buf] */
	for (size_t i = 0; i < nrow; i++) {
		if (!flat) {
			lua_geti(L, idx, (lua_Integer)i + 1); /* [.., buf, row] */
			if (!lua_istable(L, -1) || (size_t)luaL_len(L, -1) != ncol)
				luaL_error(L, "%s: row %d must be a table of %d numbers", what, (int)i + 1, (int)ncol);
		} else
			lua_pushvalue(L, idx); /* [.., buf, row] */
		for (size_t j = 0; j < ncol; j++) {
			int t = lua_geti(L, -1, (lua_Integer)j + 1); /* [.., buf, row, v] */
			if (t != LUA_TNUMBER)
				luaL_error(L, "%s: element [%d][%d] must be a number, got %s", what, (int)i + 1,
				    (int)j + 1, lua_typename(L, t));
			v[i * ncol + j] = lua_tonumber(L, -1);
			lua_pop(L, 1); /* [.., buf, row] */
		}
		lua_pop(L, 1); /* [.., buf] */
	}
	sbi_mat *m = sbi_mat_alloc(nrow, ncol);
	if (m == NULL)
		luaL_error(L, "out of memory");
	memcpy(m->data, v, nrow * ncol * sizeof *v);
	lua_pop(L, 1); /* [..] */
	return m;
}

/* The number at -1, element i of the table argument arg. */
static double
elem_number(lua_State *L, int arg, lua_Integer i)
{
	if (lua_type(L, -1) != LUA_TNUMBER)
		luaL_argerror(L, arg, lua_pushfstring(L, "element %I must be a number, got %s", i, luaL_typename(L, -1)));
	return lua_tonumber(L, -1);
}

/* The Mat at -1, element i of the table argument arg. */
static sbi_mat *
elem_mat(lua_State *L, int arg, lua_Integer i)
{
	l_mat *lm = luaL_testudata(L, -1, SBI_MT_MAT);
	if (lm == NULL) {
		const char *got = luaL_getmetafield(L, -1, "__name") == LUA_TSTRING ? lua_tostring(L, -1)
										    : luaL_typename(L, -1);
		luaL_argerror(L, arg, lua_pushfstring(L, "element %I must be a sbi.Mat, got %s", i, got));
	}
	if (lm->m == NULL || lm->released)
		luaL_argerror(L, arg, lua_pushfstring(L, "element %I: matrix has been released", i));
	return lm->m;
}

/* The 1-based index argument idx as a 0-based index below n. [..] -> [..] */
static size_t
check_index(lua_State *L, int idx, size_t n, const char *what)
{
	lua_Integer i = luaL_checkinteger(L, idx);
	if (i < 1 || (size_t)i > n)
		luaL_error(L, "%s index %d out of range 1..%d", what, (int)i, (int)n);
	return (size_t)i - 1;
}

/* m:get(i, j) -> number. [m, i, j] -> [m, i, j, v] */
static int
l_mat_get(lua_State *L)
{
	sbi_mat *m = sbi__check_mat(L, 1)->m;
	size_t i = check_index(L, 2, m->nrow, "row"), j = check_index(L, 3, m->ncol, "column");
	lua_pushnumber(L, m->data[i * m->ncol + j]);
	return 1;
}

/* m:set(i, j, v). [m, i, j, v] -> [m, i, j, v] */
static int
l_mat_set(lua_State *L)
{
	sbi_mat *m = check_writable(L, 1, "set");
	size_t i = check_index(L, 2, m->nrow, "row"), j = check_index(L, 3, m->ncol, "column");
	m->data[i * m->ncol + j] = luaL_checknumber(L, 4);
	return 0;
}

/* m:rows() -> integer. [m] -> [m, n] */
static int
l_mat_rows(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)sbi__check_mat(L, 1)->m->nrow);
	return 1;
}

/* m:cols() -> integer. [m] -> [m, n] */
static int
l_mat_cols(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)sbi__check_mat(L, 1)->m->ncol);
	return 1;
}

/* m:row(i [, t]) -> a table of row i (filled into t when given) */
static int
l_mat_row(lua_State *L)
{
	sbi_mat *m = sbi__check_mat(L, 1)->m;
	size_t i = check_index(L, 2, m->nrow, "row");
	if (lua_istable(L, 3))
		lua_settop(L, 3);
	else
		lua_createtable(L, (int)m->ncol, 0); /* [.., t] */
	for (size_t j = 0; j < m->ncol; j++) {
		lua_pushnumber(L, m->data[i * m->ncol + j]);
		lua_seti(L, -2, (lua_Integer)j + 1);
	}
	return 1;
}

/* m:set_row(i, t) */
static int
l_mat_set_row(lua_State *L)
{
	sbi_mat *m = check_writable(L, 1, "set_row");
	size_t i = check_index(L, 2, m->nrow, "row");
	luaL_checktype(L, 3, LUA_TTABLE);
	if ((size_t)luaL_len(L, 3) != m->ncol)
		return luaL_error(L, "set_row: expected %d values, got %d", (int)m->ncol, (int)luaL_len(L, 3));
	for (size_t j = 0; j < m->ncol; j++) {
		lua_geti(L, 3, (lua_Integer)j + 1);
		m->data[i * m->ncol + j] = elem_number(L, 3, (lua_Integer)j + 1);
		lua_pop(L, 1);
	}
	return 0;
}

/* m:totable() -> { {row 1}, {row 2}, ... } */
static int
l_mat_totable(lua_State *L)
{
	sbi_mat *m = sbi__check_mat(L, 1)->m;
	lua_createtable(L, (int)m->nrow, 0); /* [t] */
	for (size_t i = 0; i < m->nrow; i++) {
		lua_createtable(L, (int)m->ncol, 0); /* [t, r] */
		for (size_t j = 0; j < m->ncol; j++) {
			lua_pushnumber(L, m->data[i * m->ncol + j]);
			lua_seti(L, -2, (lua_Integer)j + 1);
		}
		lua_seti(L, -2, (lua_Integer)i + 1); /* [t] */
	}
	return 1;
}

/* m:select_rows(idx) -> new Mat of the rows listed (1-based) in the table idx */
static int
l_mat_select_rows(lua_State *L)
{
	sbi_mat *m = sbi__check_mat(L, 1)->m;
	luaL_checktype(L, 2, LUA_TTABLE);
	size_t n = table_dim(L, 2, "select_rows");
	/* The indices are read once, into userdata: reading the table runs
	 * its metamethods, which may raise or answer differently each time. */
	size_t *ix = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ix, 0); /* [m, t, ix] */
	for (size_t k = 0; k < n; k++) {
		lua_geti(L, 2, (lua_Integer)k + 1);
		if (!lua_isinteger(L, -1))
			luaL_argerror(L, 2, lua_pushfstring(L, "element %I must be an integer row index, got %s",
			    (lua_Integer)k + 1, luaL_typename(L, -1)));
		ix[k] = check_index(L, -1, m->nrow, "row");
		lua_pop(L, 1);
	}
	sbi_mat *out = sbi__push_new_mat(L, n, m->ncol); /* [m, t, ix, out] */
	for (size_t k = 0; k < n; k++)
		memcpy(sbi_mat_row(out, k), sbi_mat_row(m, ix[k]), m->ncol * sizeof(double));
	return 1;
}

/* core.vstack({m1, m2, ...} [, max_rows]) -> the rows of m1, then m2, ...,
 * at most max_rows of them */
static int
l_mat_vstack(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 1);
	size_t rows = 0, cols = 0;
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, 1, i);
		sbi_mat *m = elem_mat(L, 1, i);
		if (i > 1 && m->ncol != cols)
			return luaL_error(L, "vstack: matrix %d has %d columns, expected %d", (int)i, (int)m->ncol, (int)cols);
		cols = m->ncol;
		rows += m->nrow;
		lua_pop(L, 1);
	}
	lua_Integer cap = luaL_optinteger(L, 2, (lua_Integer)rows);
	if (cap >= 0 && (size_t)cap < rows)
		rows = (size_t)cap;
	sbi_mat *out = sbi__push_new_mat(L, rows, cols);
	size_t at = 0;
	for (lua_Integer i = 1; i <= n && at < rows; i++) {
		lua_geti(L, 1, i);
		sbi_mat *m = elem_mat(L, 1, i);
		/* Read again: an __index may return another matrix this time. */
		if (m->ncol != cols)
			return luaL_error(L, "vstack: matrix %d has %d columns, expected %d", (int)i, (int)m->ncol, (int)cols);
		size_t take = m->nrow < rows - at ? m->nrow : rows - at;
		memcpy(sbi_mat_row(out, at), m->data, take * cols * sizeof(double));
		at += take;
		lua_pop(L, 1);
	}
	return 1;
}

/* m:copy() -> a new, writable Mat with m's contents */
static int
l_mat_copy(lua_State *L)
{
	sbi_mat *m = sbi__check_mat(L, 1)->m;
	sbi__refuse_closing(L);
	l_mat *lm = new_mat_ud(L); /* [m, copy] */
	if ((lm->m = sbi_mat_dup(m)) == NULL)
		return luaL_error(L, "out of memory");
	return 1;
}

/* __tostring: "sbi.Mat(R x C)" or "sbi.Mat (released)". [m] -> [m, s] */
static int
l_mat_tostring(lua_State *L)
{
	l_mat *lm = luaL_checkudata(L, 1, SBI_MT_MAT);
	if (lm->m == NULL || lm->released)
		lua_pushstring(L, "sbi.Mat (released)");
	else
		lua_pushfstring(L, "sbi.Mat(%d x %d)", (int)lm->m->nrow, (int)lm->m->ncol);
	return 1;
}

/* __gc: frees the matrix unless borrowed; a view drops its reference.
 * [m] -> [m] */
static int
l_mat_gc(lua_State *L)
{
	l_mat *lm = luaL_checkudata(L, 1, SBI_MT_MAT);
	if (!lm->borrowed)
		sbi_mat_free(lm->m);
	sbi_artifact_free(lm->owner); /* a view's reference */
	lm->owner = NULL;
	lm->m = NULL;
	return 0;
}

/* __close: releases the Mat; __gc frees it (see l_mat in lsbi.h). */
static int
l_mat_close(lua_State *L)
{
	luaL_checkudata(L, 1, SBI_MT_MAT);
	((l_mat *)lua_touserdata(L, 1))->released = 1;
	return 0;
}

static const luaL_Reg mat_methods[] = {
	{ "get", l_mat_get }, { "set", l_mat_set }, { "rows", l_mat_rows }, { "cols", l_mat_cols },
	{ "row", l_mat_row }, { "set_row", l_mat_set_row }, { "totable", l_mat_totable },
	{ "select_rows", l_mat_select_rows }, { "copy", l_mat_copy }, { NULL, NULL },
};

static const luaL_Reg mat_meta[] = {
	{ "__gc", l_mat_gc }, { "__close", l_mat_close }, { "__tostring", l_mat_tostring }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_mat(lua_State *L)
{
	sbi__newmetatable(L, SBI_MT_MAT); /* [mt] */
	luaL_setfuncs(L, mat_meta, 0);
	luaL_newlib(L, mat_methods);      /* [mt, methods] */
	lua_setfield(L, -2, "__index");   /* [mt] */
	lua_pop(L, 1);                    /* [] */
	lua_pushcfunction(L, l_mat_new);
	lua_setfield(L, -2, "mat");
	lua_pushcfunction(L, l_mat_vstack);
	lua_setfield(L, -2, "vstack");
}
