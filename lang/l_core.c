/* Part of the sbi.core module (assembled in l_open.c): the C primitives
 * the Lua stdlib is written over. */
#include <errno.h>
#include <time.h>

#include <string.h>

#include "lsbi.h"
#include "sbi/abc.h"
#include "sbi/alloc.h"
#include "sbi/fsutil.h"
#include "sbi/io.h"
#include "sbi/progress.h"
#include "sbi/stats.h"

sbi_runctx *
sbi__runctx(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, SBI_RUNCTX);
	sbi_runctx *ctx = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return ctx;
}

void
sbi__refuse_closing(lua_State *L)
{
	sbi_runctx *ctx = sbi__runctx(L);
	if (ctx && ctx->closing)
		luaL_error(L, "sbi.core: cannot make matrices, streams, priors or models in a finalizer run when "
		    "sbirun exits");
}

/* ---- argument checks shared by the bindings ---- */

void *
sbi__check_field_udata(lua_State *L, int idx, const char *tname, const char *what)
{
	void *p = luaL_testudata(L, idx, tname);
	if (p == NULL) {
		const char *got = luaL_getmetafield(L, idx, "__name") == LUA_TSTRING ? lua_tostring(L, -1)
										    : luaL_typename(L, idx);
		luaL_error(L, "%s must be a %s, got %s", what, tname, got);
	}
	return p;
}

int
sbi__argerror(lua_State *L, int idx, const char *msg)
{
	if (idx > 0)
		return luaL_argerror(L, idx, msg);
	return luaL_error(L, "%s", msg);
}

/* ---- artifacts <-> tables ---- */

/* __gc of an artifact box: drops its reference. [box] -> [box] */
static int
box_gc(lua_State *L)
{
	sbi_artifact **box = lua_touserdata(L, 1);
	sbi_artifact_free(*box);
	*box = NULL;
	return 0;
}

/* __close of an artifact box: nothing. The reference is dropped by __gc
 * only, since C code that made views from the box may still use it. */
static int
box_close(lua_State *L)
{
	(void)L;
	return 0;
}

/* __tostring of an artifact box. [box] -> [box, s] */
static int
box_tostring(lua_State *L)
{
	lua_pushliteral(L, "sbi.ArtifactBox");
	return 1;
}

/* Pushes a box owning one reference to the artifact it holds (NULL for
 * now); the views of the artifact's matrices hold the box. [..] -> [.., box] */
static sbi_artifact **
push_box(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__gc", box_gc }, { "__close", box_close }, { "__tostring", box_tostring }, { NULL, NULL },
	};
	sbi_artifact **box = sbi__push_udata(L, sizeof *box, "sbi.ArtifactBox", meta); /* [box] */
	*box = NULL;
	return box;
}

void
sbi__push_artifact_ref(lua_State *L, sbi_artifact *a)
{
	*push_box(L) = sbi_artifact_retain(a); /* [box] */
}

void
sbi__push_artifact(lua_State *L, sbi_artifact *a)
{
	sbi__push_artifact_ref(L, a);           /* [box] */
	int owner = lua_gettop(L);
	lua_createtable(L, 0, (int)a->nfields); /* [box, t] */
	for (size_t i = 0; i < a->nfields; i++) {
		sbi_field *f = &a->fields[i];
		switch (f->type) {
		case SBI_FIELD_MAT:
			sbi__push_mat_view(L, f->mat, owner);
			break;
		case SBI_FIELD_STR:
			lua_pushlstring(L, f->str, f->len);
			break;
		case SBI_FIELD_NUM:
			lua_pushnumber(L, f->num);
			break;
		default:
			lua_createtable(L, (int)f->len, 0);
			for (size_t k = 0; k < f->len; k++) {
				lua_pushstring(L, f->strs[k]);
				lua_seti(L, -2, (lua_Integer)k + 1);
			}
		}
		lua_setfield(L, -2, f->name); /* [box, t] */
	}
	lua_remove(L, owner);                 /* [t] */
}

/* Raises unless every key of the table at -1 is an integer in 1..n: other
 * keys would be dropped silently by storing the list part. */
static void
check_list(lua_State *L, size_t n, const char *what, const char *name)
{
	lua_pushnil(L);
	while (lua_next(L, -2)) { /* [.., t, k, v] */
		lua_Integer k = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
		if (k < 1 || (size_t)k > n)
			luaL_error(L, "%s: field '%s' is a table with keys other than 1..%d; artifacts hold lists of "
			    "strings (numbers belong in a matrix)", what, name, (int)n);
		lua_pop(L, 1);
	}
}

/* Moves the value at -1 (field name at -2) into a, held by the box at
 * owner; raises on bad values. */
static void
to_field(lua_State *L, sbi_artifact *a, int owner, const char *what)
{
	const char *name = lua_tostring(L, -2);
	int rc = SBI_OK;
	if (luaL_testudata(L, -1, SBI_MT_MAT)) {
		l_mat *lm = sbi__check_mat(L, -1);
		sbi_mat *m = lm->borrowed ? sbi_mat_dup(lm->m) : lm->m;
		if (m == NULL)
			luaL_error(L, "out of memory");
		if (!lm->borrowed) /* moved: the Lua object becomes a view */
			sbi__mat_make_view(L, -1, owner);
		rc = sbi_artifact_set_mat(a, name, m);
	} else if (lua_type(L, -1) == LUA_TSTRING) {
		size_t len;
		const char *s = lua_tolstring(L, -1, &len);
		rc = sbi_artifact_set_str(a, name, s, len);
	} else if (lua_type(L, -1) == LUA_TNUMBER)
		rc = sbi_artifact_set_num(a, name, lua_tonumber(L, -1));
	else if (lua_istable(L, -1)) {
		lua_Integer len = luaL_len(L, -1);
		if (len < 0 || len > (1 << 24)) /* a lying __len would overflow the buffer below */
			luaL_error(L, "%s: field '%s' is a list of %I strings, more than %d", what, name, len, 1 << 24);
		size_t n = (size_t)len;
		check_list(L, n, what, name);
		const char **v = lua_newuserdatauv(L, (n ? n : 1) * sizeof *v, 0); /* [.., k, t, v] */
		lua_createtable(L, (int)n, 0); /* [.., k, t, v, anchor]: an __index may make fresh strings */
		for (size_t i = 0; i < n; i++) {
			lua_geti(L, -3, (lua_Integer)i + 1);
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "%s: field '%s' must be a list of strings", what, name);
			v[i] = lua_tostring(L, -1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		rc = sbi_artifact_set_strs(a, name, v, n);
		lua_pop(L, 2);
	} else
		luaL_error(L, "%s: field '%s' has type %s; artifacts hold matrices, strings, numbers and "
		    "lists of strings", what, name, luaL_typename(L, -1));
	if (rc != SBI_OK)
		luaL_error(L, "out of memory");
}

sbi_artifact *
sbi__to_artifact(lua_State *L, int idx, const char *what)
{
	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	sbi__refuse_closing(L);
	/* The artifact is anchored in a userdata box so an error cannot leak
	 * it; the box also keeps it alive for the Mats moved into it (a view
	 * made before a later field raises stays valid). */
	sbi_artifact **box = push_box(L); /* [box] */
	int owner = lua_gettop(L);
	*box = sbi_artifact_alloc();
	if (*box == NULL)
		luaL_error(L, "out of memory");
	lua_pushnil(L);
	while (lua_next(L, idx)) { /* [box, k, v] */
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "%s: artifact field names must be strings", what);
		to_field(L, *box, owner, what);
		lua_pop(L, 1);
	}
	sbi_artifact *a = sbi_artifact_retain(*box); /* the caller's reference */
	lua_pop(L, 1);                                /* [] */
	return a;
}

/* ---- primitives ---- */

double *
sbi__scratch(lua_State *L, size_t n)
{
	return lua_newuserdatauv(L, (n ? n : 1) * sizeof(double), 0);
}

void
sbi__push_numbers(lua_State *L, const double *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t j = 0; j < n; j++) {
		lua_pushnumber(L, v[j]);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
}

double *
sbi__to_vector(lua_State *L, int idx, size_t n, const char *what)
{
	double *v = sbi__scratch(L, n);
	if (luaL_testudata(L, idx, SBI_MT_MAT)) {
		sbi_mat *m = sbi__check_mat(L, idx)->m;
		if (m->nrow * m->ncol != n)
			luaL_error(L, "%s has %d values, expected %d", what, (int)(m->nrow * m->ncol), (int)n);
		memcpy(v, m->data, n * sizeof *v);
		return v;
	}
	luaL_checktype(L, idx, LUA_TTABLE);
	if ((size_t)luaL_len(L, idx) != n)
		luaL_error(L, "%s has %d values, expected %d", what, (int)luaL_len(L, idx), (int)n);
	for (size_t j = 0; j < n; j++) {
		if (lua_geti(L, idx, (lua_Integer)j + 1) != LUA_TNUMBER)
			luaL_error(L, "%s: value %d must be a number, got %s", what, (int)j + 1, luaL_typename(L, -1));
		v[j] = lua_tonumber(L, -1);
		lua_pop(L, 1);
	}
	return v;
}

/* core.scales(x Mat, "std"|"mad") -> table */
static int
l_scales(lua_State *L)
{
	sbi_mat *x = sbi__check_mat(L, 1)->m;
	const char *method = luaL_optstring(L, 2, "std");
	double *s = sbi__scratch(L, x->ncol);
	sbi_err err = { 0 };
	if (sbi_stats_scales(x, method, s, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	sbi__push_numbers(L, s, x->ncol);
	return 1;
}

/* core.log_candidates(x Mat) -> positive, skewed: two lists of booleans,
 * one per column (sbi_stats_log_candidates). */
static int
l_log_candidates(lua_State *L)
{
	sbi_mat *x = sbi__check_mat(L, 1)->m;
	size_t n = x->ncol ? x->ncol : 1;
	int *flags = lua_newuserdatauv(L, 2 * n * sizeof *flags, 0); /* freed by Lua */
	sbi_err err = { 0 };
	if (sbi_stats_log_candidates(x, flags, flags + n, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	for (size_t k = 0; k < 2; k++) {
		lua_createtable(L, (int)x->ncol, 0);
		for (size_t j = 0; j < x->ncol; j++) {
			lua_pushboolean(L, flags[k * n + j]);
			lua_seti(L, -2, (lua_Integer)j + 1);
		}
	}
	return 2;
}

/* core.abc_distances(x Mat, obs, scale) -> Mat (n x 1) */
static int
l_abc_distances(lua_State *L)
{
	sbi_mat *x = sbi__check_mat(L, 1)->m;
	double *obs = sbi__to_vector(L, 2, x->ncol, "the observation");
	double *scale = sbi__to_vector(L, 3, x->ncol, "the scale");
	sbi_mat *d = sbi_mat_alloc(x->nrow, 1);
	if (d == NULL)
		return luaL_error(L, "out of memory");
	sbi_abc_distances(x, obs, scale, d->data);
	sbi__push_mat(L, d);
	return 1;
}

/* __gc of a block box: frees the block, once. */
static int
block_gc(lua_State *L)
{
	void **box = lua_touserdata(L, 1);
	sbi_free(*box);
	*box = NULL;
	return 0;
}

/* Pushes a box for one sbi_malloc'ed block (NULL for now), freed by its
 * __gc: C memory that a call holds while it may raise, so a Lua error
 * cannot leak it.  [..] -> [.., box] */
static void **
push_block_box(lua_State *L)
{
	sbi__refuse_closing(L); /* a box made at lua_close would never be finalized */
	void **box = lua_newuserdatauv(L, sizeof *box, 0); /* [.., box] */
	*box = NULL;
	if (sbi__newmetatable(L, "sbi.BlockBox")) {         /* [.., box, mt] */
		lua_pushcfunction(L, block_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2); /* [.., box] */
	return box;
}

/* core.abc_select(dist Mat, quantile, epsilon) -> indices (1-based), eps
 * [dist, quantile?, epsilon?] -> [.., box, indices, eps]: the accepted
 * indices live in the box until the table is filled (lua_createtable may
 * raise a memory error). */
static int
l_abc_select(lua_State *L)
{
	sbi_mat *d = sbi__check_mat(L, 1)->m;
	double q = luaL_optnumber(L, 2, 0), e = luaL_optnumber(L, 3, 0);
	void **box = push_block_box(L); /* [.., box] */
	size_t *idx = NULL, n;
	double eps;
	sbi_err err = { 0 };
	if (sbi_abc_select(d->data, d->nrow * d->ncol, q, e, &idx, &n, &eps, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	*box = idx; /* nothing raised since the allocation */
	lua_createtable(L, (int)n, 0); /* [.., box, indices] */
	for (size_t i = 0; i < n; i++) {
		lua_pushinteger(L, (lua_Integer)idx[i] + 1);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	*box = NULL;
	sbi_free(idx);
	lua_pushnumber(L, eps);
	return 2;
}

/* core.kde_bandwidth_cv(samples Mat, std [, label]) -> factor, logliks:
 * the KDE bandwidth factor chosen by leave-one-out cross-validation over
 * the grid of sbi_abc_kde_cv, and the LOO log likelihood at each grid
 * value. With a label, a run that is not --quiet shows progress, and a
 * final line when it took a second or more (short runs print nothing).
 * [samples, std, label?] -> [samples, std, label, v, factor, logliks] */
static int
l_kde_bandwidth_cv(lua_State *L)
{
	size_t ncol = sbi__check_mat(L, 1)->m->ncol;
	const char *label = luaL_optstring(L, 3, NULL);
	lua_settop(L, 3);
	double *std = sbi__to_vector(L, 2, ncol, "the std"); /* [.., v] */
	sbi_mat *x = sbi__check_mat(L, 1)->m; /* again: the std's metamethods ran */
	if (x->ncol != ncol)
		return luaL_error(L, "the samples changed while reading the std");
	sbi_runctx *ctx = sbi__runctx(L);
	sbi_progress p;
	char what[96];
	snprintf(what, sizeof what, "%s: bandwidth", label ? label : "");
	sbi_progress_start(&p, what, x->nrow, label == NULL || (ctx && ctx->quiet));
	double h, ll[SBI_ABC_KDE_GRID];
	sbi_err err = { 0 };
	if (sbi_abc_kde_cv(x, std, &h, ll, &p, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	if (p.drawn || sbi_now() - p.t0 >= 1.0) /* a bar on screen is replaced by the final line */
		sbi_progress_finish(&p, "samples cross-validated");
	lua_pushnumber(L, h);                    /* [.., v, factor] */
	sbi__push_numbers(L, ll, SBI_ABC_KDE_GRID); /* [.., v, factor, logliks] */
	return 2;
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- data files (bundles: lang/l_prov.c records them) ---- */

/* The failure result of the file functions. [..] -> [.., nil, msg] */
static int
push_failure(lua_State *L, const char *msg)
{
	lua_pushnil(L);
	lua_pushstring(L, msg);
	return 2;
}

/* The file argument 1 names, after a bundle's path map, at stack index 2;
 * NULL with nil and a message pushed when reading it is not allowed. */
static const char *
readable_path(lua_State *L)
{
	const char *given = luaL_checkstring(L, 1), *path = sbi__prov_map(L, given);
	lua_settop(L, 1);
	lua_pushstring(L, path); /* [given, path] */
	path = lua_tostring(L, 2);
	if (!sbi__check_read(L, path)) { /* [.., msg] */
		lua_pushnil(L);
		lua_insert(L, -2);       /* [.., nil, msg] */
		return NULL;
	}
	return path;
}

/* The header of a CSV file while it is turned into a table. */
typedef struct names_box {
	char **names; /* owned, as each name */
	size_t n;
} names_box;

/* __gc and __close of a names box. [box] -> [box] */
static int
names_box_free(lua_State *L)
{
	names_box *b = lua_touserdata(L, 1);
	for (size_t i = 0; i < b->n; i++)
		sbi_free(b->names[i]);
	sbi_free(b->names);
	b->names = NULL;
	b->n = 0;
	return 0;
}

/* core.read_matrix(path) -> Mat, names | nil, message
 * [path] -> [path, found, box, Mat, names] | [path, found, box, nil, msg] */
static int
l_read_matrix(lua_State *L)
{
	const char *path = readable_path(L);
	if (path == NULL)
		return 2; /* [.., nil, msg] */
	/* What the file gives goes into userdata before anything can raise. */
	names_box *nb = sbi__push_box(L, sizeof *nb, "sbi.NamesBox", names_box_free);
	sbi_mat *m = NULL;
	sbi_err err = { 0 };
	int rc = ends_with(path, ".npy") ? sbi_npy_read(path, &m, &err)
					 : sbi_csv_read(path, &m, &nb->names, &nb->n, &err);
	if (rc != SBI_OK)
		return push_failure(L, err.msg);
	sbi__push_mat(L, m); /* owns m, also if it raises */
	sbi__prov_read(L, lua_tostring(L, 1), path);
	lua_createtable(L, (int)nb->n, 0);
	for (size_t i = 0; i < nb->n; i++) {
		lua_pushstring(L, nb->names[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 2;
}

/* The content hash of the file at path (core.file_hash; write_samples
 * reads its files back for run.json). */
static int
hash_file(const char *path, char *hex, sbi_err *err)
{
	char *data;
	size_t n;
	int rc = sbi_fs_read_all(path, &data, &n, err);
	if (rc != SBI_OK)
		return rc;
	sbi_key k;
	sbi_hash_buffer(data, n, &k);
	sbi_free(data);
	sbi_key_hex(&k, hex);
	return SBI_OK;
}

/* core.write_samples(dir, name, Mat, names) writes name.csv and name.npy;
 * returns the content hashes of the two files as written. */
static int
l_write_samples(lua_State *L)
{
	const char *dir = luaL_checkstring(L, 1), *name = luaL_checkstring(L, 2);
	sbi_mat *m = sbi__check_mat(L, 3)->m;
	luaL_checktype(L, 4, LUA_TTABLE);
	if (!sbi__check_write(L, dir))
		return luaL_error(L, "cannot write output '%s': %s", name, lua_tostring(L, -1));
	if (lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_ALLOWED_OUT) == LUA_TSTRING && strchr(name, '/'))
		return luaL_error(L, "cannot write output '%s': a recipe from a bundle runs restricted and writes only "
		    "into its output folder, not into subfolders (run it with --trust to lift this)", name);
	lua_pop(L, 1);
	const char **names = lua_newuserdatauv(L, (m->ncol ? m->ncol : 1) * sizeof *names, 0);
	lua_createtable(L, (int)m->ncol, 0); /* [.., names, anchor]: an __index may make fresh strings */
	for (size_t j = 0; j < m->ncol; j++) {
		if (lua_geti(L, 4, (lua_Integer)j + 1) != LUA_TSTRING)
			luaL_argerror(L, 4, lua_pushfstring(L, "element %I must be a string, got %s", (lua_Integer)j + 1,
			    luaL_typename(L, -1)));
		names[j] = lua_tostring(L, -1);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
	sbi_err err = { 0 };
	int rc = sbi_fs_mkdirs(dir, &err);
	const char *csv = lua_pushfstring(L, "%s/%s.csv", dir, name);
	const char *npy = lua_pushfstring(L, "%s/%s.npy", dir, name);
	if (rc == SBI_OK)
		rc = sbi_csv_write(csv, m, names, &err);
	if (rc == SBI_OK)
		rc = sbi_npy_write(npy, m, &err);
	char hex[2][SBI_KEY_HEX];
	for (int i = 0; i < 2 && rc == SBI_OK; i++)
		rc = hash_file(i ? npy : csv, hex[i], &err);
	if (rc != SBI_OK) {
		/* No position: the caller is the stdlib, not the recipe. */
		lua_pushfstring(L, "cannot write output '%s' to the output folder %s (choose another with --out DIR): %s",
		    name, dir, err.msg);
		return lua_error(L);
	}
	lua_pushstring(L, hex[0]);
	lua_pushstring(L, hex[1]); /* [.., csv hash, npy hash] */
	return 2;
}

/* core.file_hash(path) -> hex | nil, message */
static int
l_file_hash(lua_State *L)
{
	const char *path = readable_path(L);
	if (path == NULL)
		return 2; /* [.., nil, msg] */
	char hex[SBI_KEY_HEX];
	sbi_err err = { 0 };
	if (hash_file(path, hex, &err) != SBI_OK)
		return push_failure(L, err.msg);
	sbi__prov_read(L, lua_tostring(L, 1), path);
	lua_pushstring(L, hex);
	return 1;
}

/* core.summary(Mat) -> { {mean=, std=, q05=, q50=, q95=}, ... } */
static int
l_summary(lua_State *L)
{
	sbi_mat *m = sbi__check_mat(L, 1)->m;
	lua_createtable(L, (int)m->ncol, 0);
	for (size_t j = 0; j < m->ncol; j++) {
		sbi_col_summary s;
		sbi_err err = { 0 };
		if (sbi_stats_column(m, j, &s, &err) != SBI_OK)
			return luaL_error(L, "%s", err.msg);
		lua_createtable(L, 0, 5);
		lua_pushnumber(L, s.mean);
		lua_setfield(L, -2, "mean");
		lua_pushnumber(L, s.std);
		lua_setfield(L, -2, "std");
		lua_pushnumber(L, s.q05);
		lua_setfield(L, -2, "q05");
		lua_pushnumber(L, s.q50);
		lua_setfield(L, -2, "q50");
		lua_pushnumber(L, s.q95);
		lua_setfield(L, -2, "q95");
		lua_seti(L, -2, (lua_Integer)j + 1);
	}
	return 1;
}

/* core.file_exists(path) -> boolean | false, message when the file
 * exists but a restricted recipe may not read it */
static int
l_file_exists(lua_State *L)
{
	const char *path = sbi__prov_map(L, luaL_checkstring(L, 1));
	lua_settop(L, 1);
	lua_pushstring(L, path);
	path = lua_tostring(L, 2);
	int exists = sbi_fs_exists(path);
	if (exists && !sbi__check_read(L, path)) { /* [.., msg] */
		lua_pushboolean(L, 0);
		lua_insert(L, -2);                 /* [.., false, msg] */
		return 2;
	}
	lua_pushboolean(L, exists);
	return 1;
}

/* core.clock() -> monotonic seconds */
static int
l_clock(lua_State *L)
{
	sbi__refuse_in_step(L, "sbi.core.clock", 0);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
	return 1;
}

static const luaL_Reg core_funcs[] = {
	{ "simulate", sbi__l_simulate }, { "scales", l_scales }, { "log_candidates", l_log_candidates },
	{ "abc_distances", l_abc_distances },
	{ "abc_select", l_abc_select }, { "read_matrix", l_read_matrix }, { "write_samples", l_write_samples },
	{ "kde_bandwidth_cv", l_kde_bandwidth_cv },
	{ "file_hash", l_file_hash }, { "file_exists", l_file_exists }, { "summary", l_summary },
	{ "clock", l_clock }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_core(lua_State *L)
{
	luaL_setfuncs(L, core_funcs, 0);
}
