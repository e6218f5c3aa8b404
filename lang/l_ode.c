/* core.ode: initial value problems for simulators, over GSL's gsl_odeiv2.
 *
 *   rows = core.ode{ rhs = f | "sir" | "lotka_volterra", y0 = {...},
 *                    times = {...}, t0 =, params =, rtol =, atol =,
 *                    method =, max_steps =, h0 = }
 *
 * rows[k] is the state at times[k]; on an expected failure (too many steps,
 * a non-finite state, a step that cannot be made) the result is nil and a
 * message, so a simulator can return NaNs and leave the rest to the engine's
 * on_failure policy. docs/ode.md describes the options.
 *
 * The solve runs with GSL's error handler off and never raises: a Lua rhs
 * runs in a protected call and its error is re-raised after the solve, when
 * the GSL objects are freed (or owned by a userdata box whose __gc frees
 * them, if building the result runs out of memory). */
#include <float.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lsbi.h"
#include "sbi/alloc.h"
#include "sbi/err.h"

#define SBI_MT_ODEWORK "sbi.OdeWork"

enum { RHS_LUA, RHS_SIR, RHS_LV };
enum { FAIL_NONE, FAIL_LUA, FAIL_TYPE };

typedef struct ode_work ode_work;

/* What the right-hand sides see (the gsl_odeiv2_system's params). */
typedef struct ode_ctx {
	lua_State *L;
	int kind;
	size_t n;
	int fn, ytab, dtab, params, errslot; /* stack indices (Lua rhs) */
	double p[4];                         /* built-in parameters */
	double *jy, *jf0, *jf1;              /* finite-difference Jacobian scratch */
	int fail;                            /* FAIL_*: why the Lua rhs stopped the solve */
	int bad_index;                       /* FAIL_TYPE: the dydt entry that was not a number */
	int bad_type;                        /* its Lua type (LUA_TNIL when not set) */
	double fail_t;
	int nonfinite;                       /* a derivative was non-finite (at nonfinite_t) */
	double nonfinite_t;
} ode_ctx;

/* The userdata box: owns everything allocated for one solve. */
struct ode_work {
	gsl_odeiv2_driver *d;
	double *buf;
	gsl_odeiv2_system sys; /* the driver keeps a pointer to it */
	ode_ctx ctx;
};

static void
work_free(ode_work *w)
{
	if (w->d)
		gsl_odeiv2_driver_free(w->d);
	sbi_free(w->buf);
	w->d = NULL;
	w->buf = NULL;
}

/* __gc and __close of the workspace box. [w] -> [w] */
static int
work_gc(lua_State *L)
{
	work_free(luaL_checkudata(L, 1, SBI_MT_ODEWORK));
	return 0;
}

/* ---- right-hand sides ---- */

static int
finite_all(const double *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

/* A non-finite derivative is GSL_FAILURE: the stepper retries with half
 * the step, and gives up (returning the failure) when h cannot shrink. */
static int
deriv_status(ode_ctx *c, double t, const double *dydt)
{
	if (finite_all(dydt, c->n))
		return GSL_SUCCESS;
	c->nonfinite = 1;
	c->nonfinite_t = t;
	return GSL_FAILURE;
}

static int
rhs_sir(double t, const double y[], double dydt[], void *params)
{
	ode_ctx *c = params;
	double beta = c->p[0], gamma = c->p[1], N = c->p[2];
	double infection = beta * y[0] * y[1] / N, recovery = gamma * y[1];
	dydt[0] = -infection;
	dydt[1] = infection - recovery;
	dydt[2] = recovery;
	return deriv_status(c, t, dydt);
}

static int
rhs_lv(double t, const double y[], double dydt[], void *params)
{
	ode_ctx *c = params;
	double alpha = c->p[0], beta = c->p[1], gamma = c->p[2], delta = c->p[3];
	dydt[0] = alpha * y[0] - beta * y[0] * y[1];
	dydt[1] = -gamma * y[1] + delta * y[0] * y[1];
	return deriv_status(c, t, dydt);
}

/* Calls rhs(t, y, dydt [, params]) with the two reused tables. Nothing here
 * may raise: the error handler is off and GSL frames are on the C stack.
 * Writing numbers into existing array slots does not allocate, and
 * lua_pcall catches everything, memory errors included. */
static int
rhs_lua(double t, const double y[], double dydt[], void *params)
{
	ode_ctx *c = params;
	lua_State *L = c->L;
	int top = lua_gettop(L);
	for (size_t i = 0; i < c->n; i++) {
		lua_pushnumber(L, y[i]);
		lua_rawseti(L, c->ytab, (lua_Integer)i + 1);
		lua_pushboolean(L, 0); /* "not set": false keeps the slot in the array part */
		lua_rawseti(L, c->dtab, (lua_Integer)i + 1);
	}
	lua_pushvalue(L, c->fn);                 /* [.., fn] */
	lua_pushnumber(L, t);
	lua_pushvalue(L, c->ytab);
	lua_pushvalue(L, c->dtab);               /* [.., fn, t, y, dydt] */
	int nargs = 3;
	if (c->params) {
		lua_pushvalue(L, c->params);     /* [.., fn, t, y, dydt, params] */
		nargs = 4;
	}
	if (lua_pcall(L, nargs, 0, 0) != LUA_OK) { /* [.., err] */
		lua_replace(L, c->errslot);        /* [..] */
		c->fail = FAIL_LUA;
		c->fail_t = t;
		return GSL_EBADFUNC;
	}
	for (size_t i = 0; i < c->n; i++) {
		int isnum, type = lua_rawgeti(L, c->dtab, (lua_Integer)i + 1); /* [.., v] */
		double v = lua_tonumberx(L, -1, &isnum);
		if (type != LUA_TNUMBER || !isnum) {
			c->fail = FAIL_TYPE;
			c->bad_index = (int)i + 1;
			c->bad_type = type == LUA_TBOOLEAN && !lua_toboolean(L, -1) ? LUA_TNIL : type;
			c->fail_t = t;
			lua_pop(L, 1);                                        /* [..] */
			return GSL_EBADFUNC;
		}
		lua_pop(L, 1);                                                /* [..] */
		dydt[i] = v;
	}
	SBI_ASSERT(lua_gettop(L) == top);
	return deriv_status(c, t, dydt);
}

static int
rhs_eval(ode_ctx *c, double t, const double y[], double dydt[])
{
	switch (c->kind) {
	case RHS_SIR:
		return rhs_sir(t, y, dydt, c);
	case RHS_LV:
		return rhs_lv(t, y, dydt, c);
	default:
		return rhs_lua(t, y, dydt, c);
	}
}

/* The Jacobian for the implicit methods, by forward differences:
 * df_i/dy_j ~ (f_i(y + h e_j) - f_i(y)) / h with h = sqrt(eps) max(|y_j|, 1)
 * (h re-read after rounding y_j + h, so the quotient uses the step taken),
 * and df/dt likewise. It only steers the Newton iteration; the solution's
 * accuracy comes from the error control. */
static int
jac_fd(double t, const double y[], double *dfdy, double dfdt[], void *params)
{
	ode_ctx *c = params;
	size_t n = c->n;
	const double sqeps = sqrt(DBL_EPSILON);
	int s = rhs_eval(c, t, y, c->jf0);
	if (s != GSL_SUCCESS)
		return s;
	memcpy(c->jy, y, n * sizeof *y);
	for (size_t j = 0; j < n; j++) {
		double yj = y[j];
		c->jy[j] = yj + sqeps * fmax(fabs(yj), 1.0);
		double h = c->jy[j] - yj;
		if ((s = rhs_eval(c, t, c->jy, c->jf1)) != GSL_SUCCESS)
			return s;
		for (size_t i = 0; i < n; i++)
			dfdy[i * n + j] = (c->jf1[i] - c->jf0[i]) / h;
		c->jy[j] = yj;
	}
	volatile double t1 = t + sqeps * fmax(fabs(t), 1.0);
	double ht = t1 - t;
	if ((s = rhs_eval(c, t1, y, c->jf1)) != GSL_SUCCESS)
		return s;
	for (size_t i = 0; i < n; i++)
		dfdt[i] = (c->jf1[i] - c->jf0[i]) / ht;
	return GSL_SUCCESS;
}

/* ---- options ---- */

static const struct {
	const char *name;
	const gsl_odeiv2_step_type **type;
} methods[] = {
	{ "rk8pd", &gsl_odeiv2_step_rk8pd }, { "rkf45", &gsl_odeiv2_step_rkf45 },
	{ "rkck", &gsl_odeiv2_step_rkck }, { "rk4", &gsl_odeiv2_step_rk4 }, { "rk2", &gsl_odeiv2_step_rk2 },
	{ "rk1imp", &gsl_odeiv2_step_rk1imp }, { "rk2imp", &gsl_odeiv2_step_rk2imp },
	{ "rk4imp", &gsl_odeiv2_step_rk4imp }, { "bsimp", &gsl_odeiv2_step_bsimp },
	{ "msadams", &gsl_odeiv2_step_msadams }, { "msbdf", &gsl_odeiv2_step_msbdf },
};
#define NMETHODS (sizeof methods / sizeof methods[0])

static const char *const option_names[] = {
	"rhs", "y0", "times", "t0", "params", "rtol", "atol", "method", "max_steps", "h0", NULL,
};
#define OPTIONS_ACCEPTED "atol, h0, max_steps, method, params, rhs, rtol, t0, times, y0"

static void
check_option_names(lua_State *L, int spec)
{
	lua_pushnil(L);
	while (lua_next(L, spec)) { /* [.., k, v] */
		lua_pop(L, 1);       /* [.., k] */
		const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		int known = 0;
		for (int i = 0; k && option_names[i]; i++)
			known |= strcmp(k, option_names[i]) == 0;
		if (!known)
			luaL_error(L, "core.ode: unknown option '%s' (accepted: " OPTIONS_ACCEPTED ")",
			    k ? k : luaL_typename(L, -1));
	}
}

static double
opt_number(lua_State *L, int spec, const char *k, double def)
{
	int t = lua_getfield(L, spec, k); /* [.., v] */
	double v = def;
	if (t != LUA_TNIL) {
		if (t != LUA_TNUMBER)
			luaL_error(L, "core.ode: option '%s' must be a number, got %s", k, lua_typename(L, t));
		v = lua_tonumber(L, -1);
	}
	lua_pop(L, 1);                    /* [..] */
	return v;
}

/* The length of the list of finite numbers at option k (required). */
static size_t
list_len(lua_State *L, int spec, const char *k)
{
	int t = lua_getfield(L, spec, k); /* [.., v] */
	if (t != LUA_TTABLE)
		luaL_error(L, "core.ode: option '%s' must be a non-empty list of numbers, got %s", k,
		    lua_typename(L, t));
	size_t n = (size_t)lua_rawlen(L, -1);
	if (n == 0)
		luaL_error(L, "core.ode: option '%s' must be a non-empty list of numbers, got an empty table", k);
	for (size_t i = 0; i < n; i++) {
		int vt = lua_rawgeti(L, -1, (lua_Integer)i + 1); /* [.., v, x] */
		if (vt != LUA_TNUMBER || !isfinite(lua_tonumber(L, -1)))
			luaL_error(L, "core.ode: %s[%d] must be a finite number, got %s", k, (int)i + 1,
			    vt == LUA_TNUMBER ? "a non-finite number" : lua_typename(L, vt));
		lua_pop(L, 1);                                   /* [.., v] */
	}
	lua_pop(L, 1);                    /* [..] */
	return n;
}

static void
read_list(lua_State *L, int spec, const char *k, double *out, size_t n)
{
	lua_getfield(L, spec, k); /* [.., v] */
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		out[i] = lua_tonumber(L, -1);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);            /* [..] */
}

/* Reads rhs and params into c; for a Lua rhs leaves the function and the
 * params value (or nothing) in the stack slots recorded in c. */
static void
read_rhs(lua_State *L, int spec, ode_ctx *c, size_t n)
{
	static const struct {
		const char *name;
		int kind;
		size_t dim, nparams;
		const char *params;
	} builtins[] = {
		{ "sir", RHS_SIR, 3, 3, "{beta, gamma, N}" },
		{ "lotka_volterra", RHS_LV, 2, 4, "{alpha, beta, gamma, delta}" },
	};
	int t = lua_getfield(L, spec, "rhs"); /* [.., rhs] */
	if (t == LUA_TFUNCTION) {
		c->kind = RHS_LUA;
		c->fn = lua_gettop(L);
		if (lua_getfield(L, spec, "params") != LUA_TNIL) /* [.., rhs, params] */
			c->params = lua_gettop(L);
		else
			lua_pop(L, 1);                            /* [.., rhs] */
		return;
	}
	if (t != LUA_TSTRING)
		luaL_error(L, "core.ode: option 'rhs' must be a function(t, y, dydt) or the name of a built-in "
		    "(\"sir\", \"lotka_volterra\"), got %s", lua_typename(L, t));
	const char *name = lua_tostring(L, -1);
	for (size_t b = 0; b < sizeof builtins / sizeof builtins[0]; b++) {
		if (strcmp(name, builtins[b].name) != 0)
			continue;
		c->kind = builtins[b].kind;
		if (n != builtins[b].dim)
			luaL_error(L, "core.ode: rhs \"%s\" has %d state variables, but y0 has %d", name,
			    (int)builtins[b].dim, (int)n);
		if (lua_getfield(L, spec, "params") == LUA_TNIL) /* [.., rhs, params] */
			luaL_error(L, "core.ode: rhs \"%s\" needs params = %s", name, builtins[b].params);
		lua_pop(L, 1);                                    /* [.., rhs] */
		size_t np = list_len(L, spec, "params");
		if (np != builtins[b].nparams)
			luaL_error(L, "core.ode: rhs \"%s\" needs params = %s (%d numbers), got %d", name,
			    builtins[b].params, (int)builtins[b].nparams, (int)np);
		read_list(L, spec, "params", c->p, np);
		if (c->kind == RHS_SIR && c->p[2] == 0)
			luaL_error(L, "core.ode: rhs \"sir\": the population N (params[3]) must not be 0");
		lua_pop(L, 1);                                    /* [..] */
		return;
	}
	luaL_error(L, "core.ode: unknown rhs \"%s\" (built-ins: \"sir\", \"lotka_volterra\"; or give a "
	    "function(t, y, dydt))", name);
}

static const gsl_odeiv2_step_type *
read_method(lua_State *L, int spec)
{
	int t = lua_getfield(L, spec, "method"); /* [.., m] */
	const char *name = "rk8pd";
	if (t != LUA_TNIL) {
		if (t != LUA_TSTRING)
			luaL_error(L, "core.ode: option 'method' must be a string, got %s", lua_typename(L, t));
		name = lua_tostring(L, -1);
	}
	for (size_t i = 0; i < NMETHODS; i++)
		if (strcmp(name, methods[i].name) == 0) {
			lua_pop(L, 1);            /* [..] */
			return *methods[i].type;
		}
	luaL_error(L, "core.ode: unknown method \"%s\" (available: rk8pd, rkf45, rkck, rk4, rk2, rk1imp, rk2imp, "
	    "rk4imp, bsimp, msadams, msbdf)", name);
	return NULL;
}

/* A number for messages, as %g would print it (lua_pushfstring has no %g).
 * The array lives until the end of the full expression that calls num. */
typedef struct numstr {
	char s[32];
} numstr;

static numstr
num(double v)
{
	numstr r;
	snprintf(r.s, sizeof r.s, "%.10g", v);
	return r;
}

/* ---- the solve ---- */

enum { SOLVE_OK, SOLVE_LUA, SOLVE_MAXSTEPS, SOLVE_NONFINITE, SOLVE_STEP, SOLVE_NOMEM };

typedef struct solve_result {
	int rc;
	int gsl_status;
	double t;
	long steps;
} solve_result;

/* Integrates from t0 through the nt times, writing rows into out. Raises
 * nothing; the handler is restored before returning. */
static solve_result
solve(ode_work *w, const gsl_odeiv2_step_type *T, double t0, const double *times, size_t nt, double *y,
    double *out, double h0, double rtol, double atol, long max_steps)
{
	size_t n = w->ctx.n;
	solve_result r = { SOLVE_OK, GSL_SUCCESS, t0, 0 };
	gsl_error_handler_t *old = gsl_set_error_handler_off();
	w->d = gsl_odeiv2_driver_alloc_y_new(&w->sys, T, h0, atol, rtol);
	if (w->d == NULL) {
		r.rc = SOLVE_NOMEM;
		goto done;
	}
	double t = t0, h = h0;
	size_t k = 0;
	for (; k < nt && times[k] == t0; k++)
		memcpy(out + k * n, y, n * sizeof *y);
	while (k < nt) {
		if (r.steps >= max_steps) {
			r.rc = SOLVE_MAXSTEPS;
			break;
		}
		w->ctx.nonfinite = 0;
		int s = gsl_odeiv2_evolve_apply(w->d->e, w->d->c, w->d->s, &w->sys, &t, times[k], &h, y);
		r.t = t;
		if (s != GSL_SUCCESS) {
			r.rc = w->ctx.fail != FAIL_NONE ? SOLVE_LUA : SOLVE_STEP;
			r.gsl_status = s;
			break;
		}
		r.steps++;
		if (!finite_all(y, n)) {
			r.rc = SOLVE_NONFINITE;
			break;
		}
		if (t == times[k]) {
			memcpy(out + k * n, y, n * sizeof *y);
			k++;
		}
	}
done:
	gsl_set_error_handler(old);
	return r;
}

/* Raises the Lua rhs's error (the stack slot c->errslot) with context. */
static int
raise_rhs_error(lua_State *L, const ode_ctx *c)
{
	if (c->fail == FAIL_TYPE && c->bad_type == LUA_TNIL)
		return luaL_error(L, "core.ode: rhs (at t = %s) did not set dydt[%d]; it must set dydt[1..%d] to "
		    "numbers", num(c->fail_t).s, c->bad_index, (int)c->n);
	if (c->fail == FAIL_TYPE)
		return luaL_error(L, "core.ode: rhs (at t = %s) set dydt[%d] to a %s; it must set dydt[1..%d] to "
		    "numbers", num(c->fail_t).s, c->bad_index, lua_typename(L, c->bad_type), (int)c->n);
	const char *msg = lua_isstring(L, c->errslot) || luaL_getmetafield(L, c->errslot, "__tostring") != LUA_TNIL
	    ? luaL_tolstring(L, c->errslot, NULL)
	    : lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, c->errslot));
	return luaL_error(L, "core.ode: error in rhs (at t = %s): %s", num(c->fail_t).s, msg);
}

/* core.ode(spec) -> rows | nil, message */
static int
l_ode(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	check_option_names(L, 1);
	size_t n = list_len(L, 1, "y0"), nt = list_len(L, 1, "times");
	double rtol = opt_number(L, 1, "rtol", 1e-8), atol = opt_number(L, 1, "atol", 1e-8);
	if (!(rtol >= 0 && atol >= 0 && rtol + atol > 0 && isfinite(rtol + atol)))
		return luaL_error(L, "core.ode: rtol and atol must be >= 0 and not both 0, got rtol = %s, atol = %s",
		    num(rtol).s, num(atol).s);
	double max_steps_d = opt_number(L, 1, "max_steps", 1e6);
	if (!(max_steps_d >= 1 && max_steps_d <= 1e15 && max_steps_d == floor(max_steps_d)))
		return luaL_error(L, "core.ode: max_steps must be a positive integer, got %s", num(max_steps_d).s);
	const gsl_odeiv2_step_type *T = read_method(L, 1);
	sbi__refuse_closing(L);

	ode_work *w = lua_newuserdatauv(L, sizeof *w, 0); /* [spec, w] */
	memset(w, 0, sizeof *w);
	luaL_setmetatable(L, SBI_MT_ODEWORK);
	ode_ctx *c = &w->ctx;
	c->L = L;
	c->n = n;
	lua_pushnil(L);                                   /* [spec, w, err] */
	c->errslot = lua_gettop(L);
	read_rhs(L, 1, c, n);                             /* [spec, w, err, (fn, (params))] */
	if (c->kind == RHS_LUA) {
		lua_createtable(L, (int)n, 0);            /* [.., y] */
		c->ytab = lua_gettop(L);
		lua_createtable(L, (int)n, 0);            /* [.., y, dydt] */
		c->dtab = lua_gettop(L);
		/* Fill both so their array parts hold n slots: the rhs wrapper
		 * then only overwrites existing slots and never allocates. */
		for (size_t i = 0; i < n; i++) {
			lua_pushnumber(L, 0);
			lua_rawseti(L, c->ytab, (lua_Integer)i + 1);
			lua_pushnumber(L, 0);
			lua_rawseti(L, c->dtab, (lua_Integer)i + 1);
		}
		luaL_checkstack(L, 8, "core.ode");
	}

	/* buf: y (n), times (nt), rows (nt * n), Jacobian scratch (3n). */
	size_t nbuf = n + nt + nt * n + 3 * n;
	if (nt > ((size_t)-1 / sizeof(double) - 4 * n) / (n + 1))
		nbuf = 0; /* would overflow */
	if (nbuf == 0 || (w->buf = sbi_malloc(nbuf * sizeof(double))) == NULL)
		return luaL_error(L, "core.ode: out of memory for %d times of %d values", (int)nt, (int)n);
	double *y = w->buf, *times = y + n, *out = times + nt;
	c->jy = out + nt * n;
	c->jf0 = c->jy + n;
	c->jf1 = c->jf0 + n;
	read_list(L, 1, "y0", y, n);
	read_list(L, 1, "times", times, nt);
	for (size_t k = 1; k < nt; k++)
		if (!(times[k] > times[k - 1]))
			return luaL_error(L, "core.ode: times must be strictly increasing, but times[%d] = %s follows "
			    "times[%d] = %s", (int)k + 1, num(times[k]).s, (int)k, num(times[k - 1]).s);
	double t0 = opt_number(L, 1, "t0", times[0]);
	if (!isfinite(t0) || t0 > times[0])
		return luaL_error(L, "core.ode: t0 = %s must be finite and <= times[1] = %s", num(t0).s,
		    num(times[0]).s);
	double span = times[nt - 1] - t0;
	double h0 = opt_number(L, 1, "h0", 1e-6 * fmax(span, 1.0));
	if (!(h0 > 0 && isfinite(h0)))
		return luaL_error(L, "core.ode: h0 must be a positive number, got %s", num(h0).s);

	w->sys.function = c->kind == RHS_SIR ? rhs_sir : c->kind == RHS_LV ? rhs_lv : rhs_lua;
	w->sys.jacobian = jac_fd;
	w->sys.dimension = n;
	w->sys.params = c;
	solve_result r = solve(w, T, t0, times, nt, y, out, h0, rtol, atol, (long)max_steps_d);

	switch (r.rc) {
	case SOLVE_OK:
		break;
	case SOLVE_LUA:
		work_free(w); /* free, then raise */
		return raise_rhs_error(L, c);
	case SOLVE_NOMEM:
		return luaL_error(L, "core.ode: out of memory for the solver");
	default:
		lua_pushnil(L);
		if (r.rc == SOLVE_MAXSTEPS)
			lua_pushfstring(L, "core.ode: max_steps = %I steps reached at t = %s before the last time %s",
			    (lua_Integer)max_steps_d, num(r.t).s, num(times[nt - 1]).s);
		else if (r.rc == SOLVE_NONFINITE)
			lua_pushfstring(L, "core.ode: the state became non-finite at t = %s", num(r.t).s);
		else if (c->nonfinite)
			lua_pushfstring(L, "core.ode: the derivative became non-finite at t = %s; the solver "
			    "stopped at t = %s", num(c->nonfinite_t).s, num(r.t).s);
		else
			lua_pushfstring(L, "core.ode: the solver could not step past t = %s (GSL: %s; a "
			    "singularity?)", num(r.t).s, gsl_strerror(r.gsl_status));
		work_free(w);
		return 2;
	}
	lua_createtable(L, (int)nt, 0); /* [.., rows] */
	for (size_t k = 0; k < nt; k++) {
		lua_createtable(L, (int)n, 0); /* [.., rows, row] */
		for (size_t i = 0; i < n; i++) {
			lua_pushnumber(L, out[k * n + i]);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		lua_rawseti(L, -2, (lua_Integer)k + 1); /* [.., rows] */
	}
	work_free(w); /* now rather than at the next collection */
	return 1;
}

/* __tostring of the workspace box. [w] -> [w, s] */
static int
work_tostring(lua_State *L)
{
	lua_pushliteral(L, SBI_MT_ODEWORK);
	return 1;
}

/* [core] -> [core] */
void
sbi__open_ode(lua_State *L)
{
	static const luaL_Reg work_meta[] = {
		{ "__gc", work_gc }, { "__close", work_gc }, { "__tostring", work_tostring }, { NULL, NULL },
	};
	sbi__new_type(L, SBI_MT_ODEWORK, work_meta, NULL);
	lua_pushcfunction(L, l_ode);
	lua_setfield(L, -2, "ode");
}
