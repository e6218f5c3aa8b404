/* core.simulate: draws (theta, x) pairs by calling a Lua simulator.
 *
 * Simulation i of round r draws theta from stream (seed, PRIOR of r, i),
 * or takes row i of a given matrix (spec.thetas), and gives the simulator
 * an Rng on stream (seed, SIM of r, i) (sbi_rng_round_purpose), so every
 * pair depends only on (seed, r, i). Simulations are grouped in chunks; each finished chunk is
 * stored in the cache under H(node key, chunk size, chunk index), so an
 * interrupted run resumes from its last completed chunk and --jobs N
 * (chunks spread over forked workers) gives bit-identical results. The
 * chunks are dropped once the node's artifact is stored. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lmpi.h"
#include "lnative.h"
#include "lsbi.h"
#include "lstate.h"
#include "sbi/alloc.h"
#include "sbi/handoff.h"
#include "sbi/pool.h"
#include "sbi/progress.h"
#include "sbi/rng.h"

enum { FAIL_NONE, FAIL_ERROR, FAIL_NAN, FAIL_LENGTH };

/* Larger n is refused at once (a typo such as 1e12 would otherwise spend
 * seconds probing the cache before failing for memory). */
#define SIM_MAX_N 1000000000

typedef struct sim_job {
	lua_State *L;
	sbi_runctx *ctx;    /* L's: read once, not per simulation */
	int spec;           /* stack index of the spec table */
	sbi_prior *prior;
	sbi_native *native; /* a plugin or program (l_native.c), or NULL: a Lua function */
	const sbi_mat *thetas; /* row i is simulation i's theta; NULL: draw from the prior (borrowed) */
	uint64_t p_prior, p_sim; /* stream purposes of this round */
	int batched, drop;
	size_t dtheta, dx;  /* dx == 0 until known */
	size_t expect_dx;   /* the observation's length, or 0 when unknown */
	const char *expect_label;
	uint64_t n, seed, chunk;
	sbi_cache *cache;
	sbi_key node_key;
	const char *label;
	int quiet, inline_run;
	sbi_progress progress;
	uint64_t done_before; /* simulations in chunks finished earlier */
	sbi_handoff *handoff; /* chunks finished in this call, for gather; NULL: read them from the cache (borrowed) */
	/* Set while a chunk runs (in the protected call). */
	size_t task;
	sbi_pool_slot *slot;
	int rc;
	struct sbi_mpi_chunk *mpi_out; /* set: run_chunk hands the chunk over instead of storing it */
} sim_job;

/* ---- one simulation ---- */

/* Formats theta as "(name=v, ...)" for messages. */
static void
format_theta(lua_State *L, int spec, const double *t, size_t d, char *buf, size_t n)
{
	size_t k = (size_t)snprintf(buf, n, "(");
	lua_getfield(L, spec, "names"); /* [.., names] */
	for (size_t j = 0; j < d && k < n; j++) {
		const char *name = NULL;
		if (lua_istable(L, -1)) {
			lua_geti(L, -1, (lua_Integer)j + 1);
			name = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
		k += (size_t)snprintf(buf + k, n - k, "%s%s%s%.17g", j ? ", " : "", name ? name : "",
		    name ? " = " : "", t[j]);
	}
	if (k < n)
		snprintf(buf + k, n - k, ")");
	lua_pop(L, 1);
}

/* Calls a simulator, marked as one for the sandbox's refusals. Through
 * sbi__pcall: its handler turns error({...}) into the place it was raised
 * and the value's type. */
static int
call_simulator(sim_job *j, int nargs, int nres)
{
	int outer = j->ctx->in_simulator; /* a simulator may run core.simulate */
	j->ctx->in_simulator = 1;
	j->ctx->refused = 0; /* whether this call was refused, not an earlier one */
	int status = sbi__pcall(j->L, nargs, nres);
	j->ctx->in_simulator = outer;
	return status;
}

/* 1 when the last failure was the sandbox refusing a function: an error of
 * the recipe, fatal whatever on_failure says. */
static int
refused(const sim_job *j)
{
	return j->ctx->refused;
}

/* Calls the simulator once for theta; writes x (dx values) on success.
 * On failure returns FAIL_* and leaves a message on the stack top. The
 * simulator function is at stack index fn, the theta metatable at meta
 * (or 0), the Rng at rng. */
static int
simulate_one(sim_job *j, int fn, int meta, int rng, const double *theta, double *x, size_t *len)
{
	lua_State *L = j->L;
	lua_pushvalue(L, fn);
	sbi__push_numbers(L, theta, j->dtheta); /* [.., fn, theta] */
	if (meta) {
		lua_pushvalue(L, meta);
		lua_setmetatable(L, -2);
	}
	lua_pushvalue(L, rng);                  /* [.., fn, theta, rng] */
	if (call_simulator(j, 2, 1) != LUA_OK) /* [.., result or msg]: sbi__pcall's handler makes it a string */
		return FAIL_ERROR;
	if (!lua_istable(L, -1)) {
		lua_pushfstring(L, "the simulator returned a %s, expected a table of numbers", luaL_typename(L, -1));
		lua_remove(L, -2);
		return FAIL_ERROR;
	}
	size_t n = (size_t)lua_rawlen(L, -1);
	*len = n;
	if (j->dx != 0 && n != j->dx) {
		lua_pop(L, 1);
		lua_pushfstring(L, "the simulator returned %d values, expected %d", (int)n, (int)j->dx);
		return FAIL_LENGTH;
	}
	int nan = 0;
	for (size_t k = 0; k < n; k++) {
		/* Numbers only: a string such as "1" is not converted. */
		int type = lua_rawgeti(L, -1, (lua_Integer)k + 1);
		double v = lua_tonumber(L, -1);
		lua_pop(L, 1);
		if (type != LUA_TNUMBER) {
			lua_pop(L, 1);
			lua_pushfstring(L, "the simulator returned a non-number at position %d (a %s)", (int)k + 1,
			    lua_typename(L, type));
			return FAIL_ERROR;
		}
		if (!isfinite(v))
			nan = 1;
		if (x)
			x[k] = v;
	}
	lua_pop(L, 1);
	if (nan) {
		lua_pushstring(L, "the simulator returned NaN or infinite values");
		return FAIL_NAN;
	}
	return FAIL_NONE;
}

/* ---- one chunk ---- */

/* theta, x (owned until stored), counts (kept, errors, NaN, wrong
 * length) and the first failure message: the form MPI ranks send too. */
typedef sbi_mpi_chunk chunk_out;

static void
chunk_key(const sim_job *j, size_t c, sbi_key *out)
{
	sbi_hasher h;
	sbi_hash_init(&h);
	sbi_hash_str(&h, "chunk", 5);
	sbi_hash_key(&h, &j->node_key);
	sbi_hash_u64(&h, j->chunk);
	sbi_hash_u64(&h, c);
	sbi_hash_final(&h, out);
}

static void
record_failure(sim_job *j, chunk_out *o, int kind, uint64_t idx, const double *theta)
{
	lua_State *L = j->L;
	o->counts[kind]++;
	if (o->first[0] == '\0' || !j->drop) {
		char t[512];
		format_theta(L, j->spec, theta, j->dtheta, t, sizeof t);
		snprintf(o->first, sizeof o->first, "simulation %llu at theta = %s: %s",
		    (unsigned long long)idx, t, lua_tostring(L, -1));
	}
	lua_pop(L, 1);
}

static void
tick_inline(sim_job *j, uint64_t done)
{
	if (j->inline_run && (done & 255) == 0)
		sbi_progress_update(&j->progress, j->done_before + done);
}

/* Theta of simulation idx: row idx of the given matrix, or a draw from
 * stream (seed, prior purpose, idx) with pr. */
static inline void
theta_at(const sim_job *j, gsl_rng *pr, uint64_t idx, double *t)
{
	if (j->thetas != NULL) {
		memcpy(t, sbi_mat_row(j->thetas, (size_t)idx), j->dtheta * sizeof *t);
		return;
	}
	sbi_rng_set_stream(pr, j->seed, j->p_prior, idx);
	sbi_prior_sample(j->prior, pr, t);
}

static void
run_rows(sim_job *j, chunk_out *o, uint64_t first, uint64_t m, gsl_rng *prior_rng, int fn, int meta, int rng)
{
	gsl_rng *sim_rng = sbi__check_rng(j->L, rng);
	size_t kept = 0;
	for (uint64_t i = 0; i < m; i++) {
		uint64_t idx = first + i;
		j->slot->current = idx;
		j->slot->busy = 1;
		double *t = sbi_mat_row(o->theta, kept);
		theta_at(j, prior_rng, idx, t);
		sbi_rng_set_stream(sim_rng, j->seed, j->p_sim, idx);
		size_t len;
		int f = simulate_one(j, fn, meta, rng, t, sbi_mat_row(o->x, kept), &len);
		if (f == FAIL_NONE)
			kept++;
		else {
			record_failure(j, o, f, idx, t);
			if (!j->drop || refused(j)) {
				j->rc = sbi_err_set(&j->slot->err, SBI_ESIM, "%s: %s", j->label, o->first);
				return;
			}
		}
		j->slot->done = i + 1;
		tick_inline(j, i + 1);
	}
	j->slot->busy = 0;
	o->counts[0] = (double)kept;
	sbi_mat_truncate(o->theta, kept);
	sbi_mat_truncate(o->x, kept);
}

/* Progress of a native chunk run in this process (forked workers report
 * through their slot). */
static void
tick_native(void *ud, uint64_t done)
{
	sim_job *j = ud;
	if (j->inline_run)
		sbi_progress_update(&j->progress, j->done_before + done);
}

/* A plugin or a program (l_native.c) fills x; failed rows are dropped or
 * stop the run, as for a Lua simulator. */
static void
run_native(sim_job *j, chunk_out *o, uint64_t first, uint64_t m, gsl_rng *prior_rng)
{
	lua_State *L = j->L;
	for (uint64_t i = 0; i < m; i++)
		theta_at(j, prior_rng, first + i, sbi_mat_row(o->theta, i));
	sbi_native_row *rows = lua_newuserdatauv(L, (m ? m : 1) * sizeof *rows, 0); /* collected with the frame */
	j->slot->busy = 0;
	const uint64_t stream[3] = { j->seed, j->p_sim, first };
	j->rc = sbi__native_run(j->native, o->theta, o->x, stream, rows, j->slot, !j->drop, tick_native, j,
	    &j->slot->err);
	if (j->rc != SBI_OK) {
		char msg[sizeof j->slot->err.msg];
		memcpy(msg, j->slot->err.msg, sizeof msg);
		sbi_err_set(&j->slot->err, j->rc, "%s: %s", j->label, msg);
		return;
	}
	size_t kept = 0;
	for (uint64_t i = 0; i < m && rows[i].kind >= 0; i++) {
		if (rows[i].kind != FAIL_NONE) {
			lua_pushstring(L, rows[i].msg);
			record_failure(j, o, rows[i].kind, first + i, sbi_mat_row(o->theta, i));
			if (!j->drop) {
				j->rc = sbi_err_set(&j->slot->err, SBI_ESIM, "%s: %s", j->label, o->first);
				return;
			}
			continue;
		}
		memmove(sbi_mat_row(o->theta, kept), sbi_mat_row(o->theta, i), j->dtheta * sizeof(double));
		memmove(sbi_mat_row(o->x, kept), sbi_mat_row(o->x, i), j->dx * sizeof(double));
		kept++;
	}
	o->counts[0] = (double)kept;
	sbi_mat_truncate(o->theta, kept);
	sbi_mat_truncate(o->x, kept);
}

/* Batched form: fn(theta Mat, x Mat, rng) fills x; rows left with NaN fail. */
static void
run_batched(sim_job *j, chunk_out *o, uint64_t first, uint64_t m, gsl_rng *prior_rng, int fn, int rng)
{
	lua_State *L = j->L;
	for (uint64_t i = 0; i < m; i++)
		theta_at(j, prior_rng, first + i, sbi_mat_row(o->theta, i));
	for (size_t k = 0; k < m * j->dx; k++)
		o->x->data[k] = NAN;
	sbi_rng_set_stream(sbi__check_rng(L, rng), j->seed, j->p_sim, first);
	j->slot->current = first;
	j->slot->busy = 1;
	/* The two Mats borrow the chunk's buffers; they are released after the
	 * call, so a simulator that keeps them gets an error, not freed memory. */
	sbi__push_mat_borrowed(L, o->theta);
	int views = lua_gettop(L);
	sbi__push_mat_borrowed(L, o->x);
	lua_pushvalue(L, fn);
	lua_pushvalue(L, views);
	lua_pushvalue(L, views + 1);
	lua_pushvalue(L, rng);
	int status = call_simulator(j, 3, 0);
	if (status != LUA_OK)
		lua_insert(L, views); /* keep the message on top after the views go */
	((l_mat *)lua_touserdata(L, status != LUA_OK ? views + 1 : views))->m = NULL;
	((l_mat *)lua_touserdata(L, status != LUA_OK ? views + 2 : views + 1))->m = NULL;
	lua_remove(L, status != LUA_OK ? views + 1 : views);
	lua_remove(L, status != LUA_OK ? views + 1 : views);
	if (status != LUA_OK) {
		record_failure(j, o, FAIL_ERROR, first, sbi_mat_row(o->theta, 0));
		j->rc = sbi_err_set(&j->slot->err, SBI_ESIM, "%s: batched %s", j->label, o->first);
		return;
	}
	size_t kept = 0;
	for (uint64_t i = 0; i < m; i++) {
		const double *xr = sbi_mat_row(o->x, i);
		int ok = 1;
		for (size_t k = 0; k < j->dx; k++)
			ok &= isfinite(xr[k]) != 0;
		if (!ok) {
			lua_pushstring(L, "the batched simulator left NaN or infinite values in its row");
			record_failure(j, o, FAIL_NAN, first + i, sbi_mat_row(o->theta, i));
			if (!j->drop) {
				j->rc = sbi_err_set(&j->slot->err, SBI_ESIM, "%s: %s", j->label, o->first);
				return;
			}
			continue;
		}
		memmove(sbi_mat_row(o->theta, kept), sbi_mat_row(o->theta, i), j->dtheta * sizeof(double));
		memmove(sbi_mat_row(o->x, kept), xr, j->dx * sizeof(double));
		kept++;
	}
	j->slot->busy = 0;
	j->slot->done = m;
	o->counts[0] = (double)kept;
	sbi_mat_truncate(o->theta, kept);
	sbi_mat_truncate(o->x, kept);
}

static int
store_chunk(sim_job *j, chunk_out *o)
{
	sbi_artifact *a = sbi_artifact_alloc();
	int rc = a ? SBI_OK : SBI_ENOMEM;
	if (rc == SBI_OK)
		rc = sbi_artifact_set_mat(a, "theta", o->theta);
	o->theta = NULL;
	if (rc == SBI_OK)
		rc = sbi_artifact_set_mat(a, "x", o->x);
	o->x = NULL;
	static const char *names[4] = { "n_kept", "n_error", "n_nan", "n_length" };
	for (int k = 0; k < 4 && rc == SBI_OK; k++)
		rc = sbi_artifact_set_num(a, names[k], o->counts[k]);
	if (rc == SBI_OK)
		rc = sbi_artifact_set_str(a, "first_failure", o->first, strlen(o->first));
	if (rc != SBI_OK)
		rc = sbi_err_set(&j->slot->err, rc, "out of memory");
	sbi_key key;
	chunk_key(j, j->task, &key);
	if (rc == SBI_OK)
		rc = sbi_cache_put_chunk(j->cache, &key, a, &j->node_key, j->task, &j->slot->err);
	sbi_artifact_free(a);
	return rc;
}

/* Gives a chunk without failures to gather through shared memory as well
 * (the cache's copy serves resume). One with failures is read back from
 * the cache, with its counts and first message. */
static void
hand_off(sim_job *j, const chunk_out *o)
{
	if (j->handoff != NULL && o->counts[1] + o->counts[2] + o->counts[3] == 0)
		sbi_handoff_put(j->handoff, j->task, o->theta, o->x);
}

/* The chunk body, run under lua_pcall so no Lua error escapes (which in a
 * forked worker would unwind into the parent's code). */
static int
chunk_protected(lua_State *L)
{
	sim_job *j = lua_touserdata(L, 1);
	chunk_out *o = lua_touserdata(L, 2);
	int outer_spec = j->spec;
	j->spec = 3; /* this frame's copy of the spec table */
	uint64_t first = j->task * j->chunk, m = j->n - first < j->chunk ? j->n - first : j->chunk;
	lua_getfield(L, j->spec, "simulator");  /* [.., fn] */
	int fn = lua_gettop(L);
	lua_getfield(L, j->spec, "theta_meta"); /* [.., fn, meta] */
	int meta = lua_istable(L, -1) ? lua_gettop(L) : 0;
	sbi__push_rng(L, j->seed, j->p_sim, first); /* [.., fn, meta, rng] */
	int rng = lua_gettop(L);
	gsl_rng *prior_rng = sbi__push_rng(L, j->seed, j->p_prior, first);
	o->theta = sbi_mat_alloc(m, j->dtheta);
	o->x = sbi_mat_alloc(m, j->dx);
	if (o->theta == NULL || o->x == NULL)
		return luaL_error(L, "out of memory for a chunk of %d simulations", (int)m);
	if (j->native)
		run_native(j, o, first, m, prior_rng);
	else if (j->batched)
		run_batched(j, o, first, m, prior_rng, fn, rng);
	else
		run_rows(j, o, first, m, prior_rng, fn, meta, rng);
	j->spec = outer_spec;
	return 0;
}

static int
run_chunk(void *ud, size_t task, sbi_pool_slot *slot)
{
	sim_job *j = ud;
	lua_State *L = j->L;
	chunk_out o = { 0 };
	j->task = task;
	j->slot = slot;
	j->rc = SBI_OK;
	int top = lua_gettop(L);
	lua_pushcfunction(L, chunk_protected);
	lua_pushlightuserdata(L, j);
	lua_pushlightuserdata(L, &o);
	lua_pushvalue(L, j->spec);
	int outer_spec = j->spec;
	if (lua_pcall(L, 3, 0, 0) != LUA_OK)
		j->rc = sbi_err_set(&slot->err, SBI_ESIM, "%s: %s", j->label,
		    lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "an error object that is not a string");
	lua_settop(L, top);
	j->spec = outer_spec;
	if (j->rc == SBI_OK && j->mpi_out != NULL) {
		*j->mpi_out = o; /* the MPI backend sends it to rank 0 */
		return SBI_OK;
	}
	if (j->rc == SBI_OK)
		hand_off(j, &o);
	if (j->rc == SBI_OK)
		j->rc = store_chunk(j, &o);
	if (j->rc == SBI_OK && j->inline_run)
		j->done_before += slot->done;
	sbi_mat_free(o.theta);
	sbi_mat_free(o.x);
	return j->rc;
}

static void
tick_forked(void *ud, uint64_t done)
{
	sim_job *j = ud;
	sbi_progress_update(&j->progress, j->progress.base + done);
}

/* ---- the whole node ---- */

/* Reads spec.thetas, when given, into a copy (so nothing the simulator
 * does can free it) that j borrows: n is its row count, and every row
 * must lie in the prior's support.
 * [..] -> [.., thetas Mat or nil] */
static void
read_thetas(lua_State *L, sim_job *j, lua_Integer n)
{
	lua_getfield(L, j->spec, "thetas");
	if (lua_isnil(L, -1))
		return;
	if (!luaL_testudata(L, -1, SBI_MT_MAT))
		luaL_error(L, "%s: spec.thetas must be a Mat, got %s", j->label, luaL_typename(L, -1));
	sbi_mat *m = sbi__to_mat(L, -1, "spec.thetas");
	lua_pop(L, 1);
	sbi__push_mat(L, m); /* owns m */
	j->thetas = m;
	if (m->ncol != j->dtheta)
		luaL_error(L, "%s: thetas has %d columns but the prior has %d parameters", j->label, (int)m->ncol,
		    (int)j->dtheta);
	if (m->nrow < 1 || m->nrow > SIM_MAX_N)
		luaL_error(L, "%s: thetas has %d rows; it needs 1 to %d", j->label, (int)m->nrow, SIM_MAX_N);
	if (n != 0 && (uint64_t)n != m->nrow)
		luaL_error(L, "%s: n = %d but thetas has %d rows (n may be left out: it is the number of rows)",
		    j->label, (int)n, (int)m->nrow);
	for (size_t i = 0; i < m->nrow; i++) {
		if (!sbi_prior_in_support(j->prior, sbi_mat_row(m, i))) {
			char buf[512];
			format_theta(L, j->spec, sbi_mat_row(m, i), j->dtheta, buf, sizeof buf);
			luaL_error(L, "%s: thetas row %d = %s lies outside the prior's support", j->label, (int)i + 1, buf);
		}
	}
}

/* The stream purposes of round spec.round (0 when absent). */
static void
read_round(lua_State *L, sim_job *j)
{
	lua_getfield(L, j->spec, "round");
	lua_Integer r = lua_isnil(L, -1) ? 0 : luaL_checkinteger(L, -1);
	lua_pop(L, 1);
	if (r < 0 || r > SBI_RNG_MAX_ROUND)
		luaL_error(L, "%s: round must be from 0 to %d", j->label, SBI_RNG_MAX_ROUND);
	j->p_prior = sbi_rng_round_purpose(SBI_STREAM_PRIOR, (uint64_t)r);
	j->p_sim = sbi_rng_round_purpose(SBI_STREAM_SIM, (uint64_t)r);
}

/* Reads spec fields into j (errors raise). Leaves the prior, the two
 * labels and the thetas on the stack: the simulator may clear them in the
 * spec (or an __index make them fresh), and j keeps pointers into all.
 * [..] -> [.., prior, expect_label, label, thetas or nil] */
static void
read_spec(lua_State *L, sim_job *j)
{
	lua_getfield(L, j->spec, "prior");
	sbi__check_field_udata(L, -1, SBI_MT_PRIOR, "simulate: spec.prior");
	j->prior = sbi__check_prior(L, -1);
	j->dtheta = sbi_prior_dim(j->prior);
	lua_getfield(L, j->spec, "simulator");
	lua_getfield(L, j->spec, "native");
	luaL_argcheck(L, lua_isfunction(L, -2) || lua_istable(L, -1), 1,
	    "spec.simulator must be a function (or spec.native a table)");
	lua_pop(L, 2);
	static const char *ints[] = { "n", "seed", "chunk_size", "dim" };
	lua_Integer v[4];
	for (int k = 0; k < 4; k++) {
		lua_getfield(L, j->spec, ints[k]);
		v[k] = lua_isnil(L, -1) ? 0 : luaL_checkinteger(L, -1);
		lua_pop(L, 1);
	}
	lua_getfield(L, j->spec, "thetas");
	int given = !lua_isnil(L, -1); /* then n may be absent (0) */
	lua_pop(L, 1);
	if (v[0] < (given ? 0 : 1) || v[0] > SIM_MAX_N || v[1] < 0 || v[2] < 0 || v[3] < 0)
		luaL_error(L, "simulate: n must be from 1 to %d and seed, chunk_size, dim >= 0", SIM_MAX_N);
	j->n = (uint64_t)v[0];
	j->seed = (uint64_t)v[1];
	j->chunk = v[2] ? (uint64_t)v[2] : 10000;
	j->dx = (size_t)v[3];
	lua_getfield(L, j->spec, "expect_dim");
	j->expect_dx = lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0 ? (size_t)lua_tointeger(L, -1) : 0;
	lua_getfield(L, j->spec, "expect_label");
	j->expect_label = lua_isstring(L, -1) ? lua_tostring(L, -1) : "the observation";
	lua_remove(L, -2); /* [.., prior, expect_label]: kept, like the label below */
	lua_getfield(L, j->spec, "batched");
	j->batched = lua_toboolean(L, -1);
	lua_getfield(L, j->spec, "on_failure");
	const char *pol = luaL_optstring(L, -1, "fail");
	if (strcmp(pol, "fail") != 0 && strcmp(pol, "drop") != 0)
		luaL_error(L, "simulate: on_failure must be \"fail\" or \"drop\", got \"%s\"", pol);
	j->drop = strcmp(pol, "drop") == 0;
	lua_pop(L, 2);
	lua_getfield(L, j->spec, "label");
	j->label = luaL_optstring(L, -1, "simulate"); /* [.., prior, expect_label, label] */
	if (j->batched && j->dx == 0)
		luaL_error(L, "%s: a batched simulator needs its data dimension: sbi.simulator{ ..., dim = K }", j->label);
	read_round(L, j);
	read_thetas(L, j, v[0]);
	if (j->thetas != NULL)
		j->n = j->thetas->nrow;
}

/* Learns the data dimension from simulation 0 (or the first that works). */
static void
infer_dim(lua_State *L, sim_job *j)
{
	lua_getfield(L, j->spec, "simulator");
	int fn = lua_gettop(L);
	lua_getfield(L, j->spec, "theta_meta");
	int meta = lua_istable(L, -1) ? lua_gettop(L) : 0;
	gsl_rng *pr = sbi__push_rng(L, j->seed, j->p_prior, 0);
	sbi__push_rng(L, j->seed, j->p_sim, 0);
	int rng = lua_gettop(L);
	double *t = lua_newuserdatauv(L, j->dtheta * sizeof *t + 1, 0);
	for (uint64_t idx = 0; idx < j->n && idx < 100; idx++) {
		theta_at(j, pr, idx, t);
		sbi_rng_set_stream(sbi__check_rng(L, rng), j->seed, j->p_sim, idx);
		size_t len = 0;
		int f = simulate_one(j, fn, meta, rng, t, NULL, &len);
		if (f == FAIL_NONE || (f == FAIL_NAN && len > 0)) {
			if (f == FAIL_NAN)
				lua_pop(L, 1);
			j->dx = len;
			break;
		}
		if (!j->drop || refused(j) || idx + 1 == j->n || idx == 99) {
			char buf[512];
			format_theta(L, j->spec, t, j->dtheta, buf, sizeof buf);
			luaL_error(L, "%s: simulation %d at theta = %s failed, so the data dimension cannot be "
			    "inferred: %s", j->label, (int)idx, buf, lua_tostring(L, -1));
		}
		lua_pop(L, 1);
	}
	if (j->dx == 0)
		luaL_error(L, "%s: the simulator returned an empty table", j->label);
	lua_settop(L, fn - 1);
}

/* Checks, before the expensive part, what the first simulation (or the
 * declared dim) tells: its length against the observation's, and the
 * memory all n simulations will take. */
static void
check_size(lua_State *L, sim_job *j, int declared)
{
	if (j->expect_dx && j->dx != j->expect_dx) {
		if (declared)
			luaL_error(L, "%s: the simulator is declared with dim = %d but %s has %d values; nothing was "
			    "simulated", j->label, (int)j->dx, j->expect_label, (int)j->expect_dx);
		luaL_error(L, "%s: the first simulation returned %d values but %s has %d values; stopped before "
		    "simulating the rest (the two must have the same length)", j->label, (int)j->dx,
		    j->expect_label, (int)j->expect_dx);
	}
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
	double need = (double)j->n * (double)(j->dtheta + j->dx) * sizeof(double);
	double have = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
	if (have > 0 && need > have) {
		char msg[512]; /* (lua_pushfstring has no %.3g) */
		snprintf(msg, sizeof msg, "%s: %llu simulations of %zu parameters and %zu values need %.3g GB of "
		    "memory, more than this machine has (%.3g GB); lower n or shorten the simulator's output",
		    j->label, (unsigned long long)j->n, j->dtheta, j->dx, need / 1e9, have / 1e9);
		luaL_error(L, "%s", msg);
	}
}

/* Chunks not yet in the cache, into a new array (caller frees). */
static size_t *
missing_chunks(sim_job *j, size_t nchunks, size_t *nmissing)
{
	/* n = 2^62 in chunks of 1 would overflow the size. */
	size_t *t = nchunks > (size_t)-1 / sizeof *t ? NULL : sbi_malloc((nchunks ? nchunks : 1) * sizeof *t), n = 0;
	if (t == NULL)
		return NULL;
	for (size_t c = 0; c < nchunks; c++) {
		sbi_key k;
		chunk_key(j, c, &k);
		if (sbi_cache_has(j->cache, &k))
			j->done_before += j->n - c * j->chunk < j->chunk ? j->n - c * j->chunk : j->chunk;
		else
			t[n++] = c;
	}
	*nmissing = n;
	return t;
}

/* Raises the pool failure with the parameters the worker was running. */
static void
raise_failure(lua_State *L, sim_job *j, const sbi_pool_failure *f, const sbi_err *err)
{
	if (err->code != SBI_ECHILD || !f->has_current)
		luaL_error(L, "%s", err->msg);
	double *t = lua_newuserdatauv(L, j->dtheta * sizeof *t + 1, 0);
	theta_at(j, sbi__push_rng(L, j->seed, j->p_prior, f->current), f->current, t);
	char buf[512];
	format_theta(L, j->spec, t, j->dtheta, buf, sizeof buf);
	luaL_error(L, "%s: %s while running simulation %d at theta = %s; finished chunks are kept, "
	    "run again to resume", j->label, err->msg, (int)f->current, buf);
}

/* Loads chunk c and appends its rows at *row of theta/x. */
static int
append_chunk(sim_job *j, size_t c, sbi_mat *theta, sbi_mat *x, size_t *row, double counts[4], char *first,
    size_t nfirst, sbi_err *err)
{
	sbi_key k;
	sbi_artifact *a = NULL;
	chunk_key(j, c, &k);
	int rc = sbi_cache_get(j->cache, &k, &a, NULL, err);
	if (rc != SBI_OK)
		return rc;
	sbi_mat *ct = sbi_artifact_mat(a, "theta"), *cx = sbi_artifact_mat(a, "x");
	if (ct == NULL || cx == NULL || ct->ncol != j->dtheta || cx->ncol != j->dx || ct->nrow != cx->nrow ||
	    *row + ct->nrow > theta->nrow) {
		sbi_artifact_free(a);
		sbi_cache_remove(j->cache, &k);
		return sbi_err_set(err, SBI_ECORRUPT, "chunk %zu has unexpected contents", c);
	}
	memcpy(sbi_mat_row(theta, *row), ct->data, ct->nrow * j->dtheta * sizeof(double));
	memcpy(sbi_mat_row(x, *row), cx->data, cx->nrow * j->dx * sizeof(double));
	*row += ct->nrow;
	static const char *names[4] = { "n_kept", "n_error", "n_nan", "n_length" };
	for (int i = 0; i < 4; i++)
		counts[i] += sbi_artifact_num(a, names[i], 0);
	const sbi_field *f = sbi_artifact_get(a, "first_failure", SBI_FIELD_STR);
	if (f && first[0] == '\0')
		snprintf(first, nfirst, "%s", f->str);
	sbi_artifact_free(a);
	return SBI_OK;
}

static void
push_result(lua_State *L, sbi_mat *theta, sbi_mat *x, const double counts[4], const char *first)
{
	lua_createtable(L, 0, 8); /* [.., t] */
	sbi__push_mat(L, theta);
	lua_setfield(L, -2, "theta");
	sbi__push_mat(L, x);
	lua_setfield(L, -2, "x");
	static const char *names[4] = { "n_kept", "n_error", "n_nan", "n_length" };
	for (int i = 0; i < 4; i++) {
		lua_pushnumber(L, counts[i]);
		lua_setfield(L, -2, names[i]);
	}
	lua_pushstring(L, first);
	lua_setfield(L, -2, "first_failure");
}

/* The chunks only serve resume: once the executor has stored the node's
 * artifact (synced, after this node returns), the cache drops them, so the
 * simulations are kept once. A run that dies before keeps them. */
static void
drop_chunks_when_stored(sim_job *j, size_t nchunks)
{
	for (size_t c = 0; c < nchunks; c++) {
		sbi_key k;
		chunk_key(j, c, &k);
		if (sbi_cache_drop_when_stored(j->cache, &j->node_key, &k) != SBI_OK)
			return; /* out of memory: the rest stay, garbage that clean removes */
	}
}

/* __gc and __close of the hand-off's box. [box] -> [box] */
static int
handoff_free(lua_State *L)
{
	sbi_handoff **h = lua_touserdata(L, 1);
	sbi_handoff_free(*h);
	*h = NULL;
	return 0;
}

/* A hand-off for the chunks this call runs, in a box that frees it
 * whatever raises; j borrows it (NULL when it cannot be mapped: gather
 * then reads every chunk from the cache). Returns the box's slot, which
 * the caller may empty early. [..] -> [.., box] */
static sbi_handoff **
push_handoff(lua_State *L, sim_job *j, size_t nchunks)
{
	sbi_handoff **h = sbi__push_box(L, sizeof *h, "sbi.SimHandoff", handoff_free);
	*h = sbi_handoff_alloc(nchunks, (size_t)j->chunk, j->dtheta, j->dx);
	j->handoff = *h;
	return h;
}

/* Concatenates all chunks; a chunk found corrupt is recomputed inline. */
static void
gather(lua_State *L, sim_job *j, size_t nchunks)
{
	sbi_mat *theta = sbi_mat_alloc(j->n, j->dtheta), *x = sbi_mat_alloc(j->n, j->dx);
	sbi__push_mat(L, theta); /* anchored for the GC while we may raise */
	sbi__push_mat(L, x);
	if (theta == NULL || x == NULL)
		luaL_error(L, "out of memory for %d simulations", (int)j->n);
	double counts[4] = { 0 };
	char first[1024] = "";
	size_t row = 0;
	for (size_t c = 0; c < nchunks; c++) {
		size_t m;
		if (j->handoff != NULL && sbi_handoff_take(j->handoff, c, theta, x, row, &m)) {
			row += m; /* a chunk without failures: m kept */
			counts[0] += (double)m;
			continue;
		}
		sbi_err err = { 0 };
		int rc = append_chunk(j, c, theta, x, &row, counts, first, sizeof first, &err);
		if (rc == SBI_ECORRUPT || rc == SBI_ENOTFOUND) {
			fprintf(stderr, "sbirun: warning: %s: %s; recomputing chunk %zu\n", j->label, err.msg, c);
			sbi_pool_slot slot = { 0 };
			j->inline_run = 0;
			if (run_chunk(j, c, &slot) != SBI_OK)
				luaL_error(L, "%s", slot.err.msg);
			rc = append_chunk(j, c, theta, x, &row, counts, first, sizeof first, &err);
		}
		if (rc != SBI_OK)
			luaL_error(L, "%s: %s", j->label, err.msg);
	}
	sbi_mat_truncate(theta, row);
	sbi_mat_truncate(x, row);
	drop_chunks_when_stored(j, nchunks);
	/* Hand the matrices to the result table. */
	((l_mat *)lua_touserdata(L, -2))->m = NULL;
	((l_mat *)lua_touserdata(L, -1))->m = NULL;
	lua_pop(L, 2);
	push_result(L, theta, x, counts, first);
}

/* ---- MPI (lang/l_mpi.c): the chunk distribution point ---- */

/* Rank 0 stores a chunk another rank simulated. */
static int
mpi_store(void *ud, size_t task, sbi_mpi_chunk *c, sbi_err *err)
{
	sim_job *j = ud;
	sbi_pool_slot slot = { 0 };
	j->task = task;
	j->slot = &slot;
	int rc = store_chunk(j, c);
	if (rc != SBI_OK)
		*err = slot.err;
	return rc;
}

/* Another rank simulates a chunk for rank 0. */
static int
mpi_compute(void *ud, size_t task, sbi_mpi_chunk *c, sbi_pool_slot *slot)
{
	sim_job *j = ud;
	j->mpi_out = c;
	int rc = run_chunk(j, task, slot);
	j->mpi_out = NULL;
	return rc;
}

/* Rank 0 runs its share of the chunks on its own --jobs workers. */
static int
mpi_run_local(void *ud, const size_t *tasks, size_t ntasks, sbi_pool_failure *fail, sbi_err *err)
{
	sim_job *j = ud;
	return sbi_pool_run(tasks, ntasks, j->ctx->jobs, run_chunk, NULL, j, fail, err);
}

static sbi_mpi_sim
mpi_sim(sim_job *j)
{
	return (sbi_mpi_sim){ .ud = j, .label = j->label, .node_id = j->ctx->node->id,
		.node_key = j->ctx->node->key.b, .n = j->n, .chunk = j->chunk, .dtheta = j->dtheta, .dx = j->dx,
		.thetas = j->thetas, .jobs = j->ctx->jobs, .run_local = mpi_run_local, .store = mpi_store,
		.compute = mpi_compute, .tick = tick_forked };
}

/* A rank other than 0 inside a job: serves rank 0's chunks, then unwinds
 * the node's run function (sbi__mpi_serve expects the error). */
static int
mpi_serve_chunks(lua_State *L, sim_job *j)
{
	sbi_mpi_sim sim = mpi_sim(j);
	sbi_err err = { 0 };
	if (sbi__mpi_work(&sim, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return luaL_error(L, "(the MPI job ended)");
}

int
sbi__l_simulate(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	sbi_runctx *ctx = sbi__runctx(L);
	size_t mpi_dx = 0;
	uint64_t mpi_chunk = 0;
	int mpi_worker = ctx != NULL && !ctx->in_simulator && ctx->node != NULL && sbi__mpi_job(&mpi_dx, &mpi_chunk);
	if (ctx != NULL && ctx->cache == NULL && ctx->in_simulator && sbi__mpi_rank() != 0)
		return luaL_error(L, "simulate: a simulator that runs core.simulate cannot run on MPI ranks other "
		    "than 0 (they have no cache); run without mpirun");
	if (ctx == NULL || (ctx->cache == NULL && !mpi_worker) || ctx->node == NULL)
		return luaL_error(L, "simulate can only run inside a graph node");
	sim_job j = { .L = L, .ctx = ctx, .spec = 1, .cache = ctx->cache, .node_key = ctx->node->key, .quiet = ctx->quiet };
	read_spec(L, &j);
	j.native = sbi__native_open(L, j.spec, j.label, j.dtheta, j.dx); /* [.., box] when native */
	if (mpi_worker) {
		j.dx = mpi_dx; /* rank 0 inferred it */
		j.chunk = mpi_chunk;
		return mpi_serve_chunks(L, &j);
	}
	int declared = j.dx != 0;
	if (!declared)
		infer_dim(L, &j);
	check_size(L, &j, declared);
	size_t nchunks = (size_t)((j.n + j.chunk - 1) / j.chunk), nmissing;
	size_t *tasks = missing_chunks(&j, nchunks, &nmissing);
	if (tasks == NULL)
		return luaL_error(L, "out of memory");
	if (j.done_before > 0 && nmissing > 0 && !j.quiet)
		fprintf(stderr, "%s: resuming: %zu of %zu chunks already done\n", j.label, nchunks - nmissing, nchunks);
	sbi_handoff **box = nmissing > 0 ? push_handoff(L, &j, nchunks) : NULL; /* [.., box] */
	sbi_progress_start(&j.progress, j.label, j.n, j.quiet || nmissing == 0);
	sbi_progress_resume(&j.progress, j.done_before);
	j.inline_run = ctx->jobs <= 1 || nmissing <= 1;
	sbi_pool_failure fail;
	sbi_err err = { 0 };
	int rc;
	if (nmissing > 0 && sbi__mpi_distributes(ctx)) {
		j.inline_run = 0; /* progress from the ticks */
		sbi_mpi_sim sim = mpi_sim(&j);
		rc = sbi__mpi_run_chunks(&sim, tasks, nmissing, &fail, &err);
	} else
		rc = sbi_pool_run(tasks, nmissing, ctx->jobs, run_chunk, tick_forked, &j, &fail, &err);
	sbi_free(tasks);
	if (rc != SBI_OK)
		raise_failure(L, &j, &fail, &err);
	j.progress.done = j.n;
	sbi_progress_finish(&j.progress, "simulations");
	gather(L, &j, nchunks);
	if (box != NULL) { /* unmapped now rather than when collected */
		sbi_handoff_free(*box);
		*box = j.handoff = NULL;
	}
	return 1;
}
