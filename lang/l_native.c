/* Simulators that are not Lua functions (docs/simulators.md): C plugins
 * (sbirun/plugin.h, loaded with dlopen) and external programs speaking the
 * line protocol over their stdin and stdout.
 *
 * Both run in the process that runs a chunk (the parent with --jobs 1, a
 * forked worker otherwise): a plugin's init and free_state, and a
 * program's start and end, bracket each chunk, so nothing native crosses a
 * fork. Both are code from outside the recipe sandbox: they are refused
 * to a recipe from an unpacked bundle unless --allow-native
 * (docs/security.md), and a program is executed directly, never through a
 * shell, and dies with the process that started it. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gsl/gsl_randist.h>

#include "lnative.h"
#include "sbi/alloc.h"
#include "sbi/fsutil.h"
#include "sbi/rng.h"
#include "sbirun/plugin.h"

enum { NATIVE_PLUGIN = 1, NATIVE_COMMAND = 2 };
enum { ROW_OK = 0, ROW_ERROR = 1, ROW_NAN = 2, ROW_LENGTH = 3, ROW_NOT_RUN = -1 };

#define NATIVE_MAX_BATCH 100000
#define NATIVE_MAX_LINE (16u << 20) /* a longer answer line is malformed */

struct sbi_native {
	int kind;
	size_t dtheta, dx, batch;
	char path[4096]; /* the real path of the plugin or program */
	/* plugin */
	void *handle;
	const sbirun_plugin *plugin;
	/* command */
	char **argv; /* owned, as each string; argv[0] is path */
	char *cwd;   /* owned: the folder the program runs in */
	double timeout; /* seconds without an answer before the program is killed; 0: none */
	pid_t pid;      /* 0: not running */
	int to_fd, from_fd;
	char *line;     /* owned: the answer bytes not yet consumed */
	size_t nline, capline;
};

/* ---- files and the policy ---- */

/* Raises when native code is refused to this recipe. [..] -> [..] */
static void
check_policy(lua_State *L, const char *what, const char *path)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_NATIVE_REFUSED) == LUA_TSTRING)
		luaL_error(L, "%s %s: a recipe from a bundle (%s) may not run native code (a plugin or a program "
		    "runs outside the recipe sandbox); build it from the source the bundle carries, check it, and run "
		    "with --allow-native (docs/security.md)", what, path, lua_tostring(L, -1));
	lua_pop(L, 1);
}

/* The file path found on PATH, into buf; 0 when none. */
static int
search_path(const char *name, char *buf, size_t n)
{
	const char *p = getenv("PATH");
	if (p == NULL || *p == '\0')
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p) {
		size_t len = strcspn(p, ":");
		snprintf(buf, n, "%.*s/%s", (int)len, len ? p : ".", name);
		if (access(buf, X_OK) == 0)
			return 1;
		p += len + (p[len] == ':');
	}
	return 0;
}

/* internal.native_file(path, recipe_dir, what) -> real path, content hash.
 * what is "plugin" or "command": a relative path is taken from the
 * recipe's folder; a command's bare name (no '/') is looked up on PATH.
 * [path, dir, what] -> [.., real, hash] */
static int
l_native_file(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1), *dir = luaL_optstring(L, 2, "."),
		   *what = luaL_checkstring(L, 3);
	int command = strcmp(what, "command") == 0;
	check_policy(L, command ? "sbi.simulator: command" : "sbi.simulator: plugin", path);
	char buf[4096];
	if (command && strchr(path, '/') == NULL) {
		if (!search_path(path, buf, sizeof buf))
			return luaL_error(L, "sbi.simulator: command '%s' is not on PATH (give a path, e.g. ./%s, "
			    "for a program beside the recipe)", path, path);
	} else if (path[0] == '/')
		snprintf(buf, sizeof buf, "%s", path);
	else
		snprintf(buf, sizeof buf, "%s/%s", dir, path);
	char *real = realpath(buf, NULL); /* free()d */
	struct stat st;
	if (real == NULL || stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
		free(real);
		return luaL_error(L, "sbi.simulator: %s file '%s' not found (looked for %s; relative paths are "
		    "taken from the recipe's folder)", what, path, buf);
	}
	lua_pushstring(L, real);
	free(real);
	if (!sbi__check_read(L, lua_tostring(L, -1)))
		return luaL_error(L, "sbi.simulator: %s '%s': %s", what, path, lua_tostring(L, -1));
	if (command && access(lua_tostring(L, -1), X_OK) != 0)
		return luaL_error(L, "sbi.simulator: command '%s' (%s) is not executable", path, lua_tostring(L, -1));
	char hex[SBI_KEY_HEX];
	sbi_err err = { 0 };
	if (sbi_hash_file_hex(lua_tostring(L, -1), hex, &err) != SBI_OK)
		return luaL_error(L, "sbi.simulator: %s '%s': %s", what, path, err.msg);
	lua_pushstring(L, hex);
	return 2;
}

void
sbi__open_native(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, SBI_REG_INTERNAL);
	lua_pushcfunction(L, l_native_file);
	lua_setfield(L, -2, "native_file");
	lua_pop(L, 1);
}

/* ---- the host functions of plugins (as l_rng.c's methods draw) ---- */

static gsl_rng *
grng(sbirun_rng *r)
{
	return (gsl_rng *)(void *)r;
}

static double
host_uniform(sbirun_rng *r)
{
	return gsl_rng_uniform(grng(r));
}

static double
host_normal(sbirun_rng *r, double mean, double sd)
{
	return mean + gsl_ran_gaussian_ziggurat(grng(r), sd);
}

static double
host_lognormal(sbirun_rng *r, double mu, double sigma)
{
	return gsl_ran_lognormal(grng(r), mu, sigma);
}

static double
host_exponential(sbirun_rng *r, double rate)
{
	return gsl_ran_exponential(grng(r), 1.0 / rate);
}

static double
host_gamma(sbirun_rng *r, double shape, double scale)
{
	return gsl_ran_gamma(grng(r), shape, scale);
}

static double
host_beta(sbirun_rng *r, double a, double b)
{
	return gsl_ran_beta(grng(r), a, b);
}

static unsigned
host_poisson(sbirun_rng *r, double mean)
{
	return gsl_ran_poisson(grng(r), mean);
}

static unsigned
host_binomial(sbirun_rng *r, unsigned n, double p)
{
	return gsl_ran_binomial(grng(r), p, n);
}

static uint64_t
host_bits(sbirun_rng *r)
{
	return sbi_rng_next64(grng(r));
}

static const sbirun_host host = {
	SBIRUN_PLUGIN_ABI, host_uniform, host_normal, host_lognormal, host_exponential, host_gamma, host_beta,
	host_poisson, host_binomial, host_bits,
};

/* ---- opening ---- */

/* __gc and __close of the box: unloads the plugin, ends a program left
 * running (a chunk that raised). [box] -> [box] */
static void command_stop(sbi_native *nv);

static int
native_free(lua_State *L)
{
	sbi_native *nv = lua_touserdata(L, 1);
	if (nv->kind == NATIVE_COMMAND)
		command_stop(nv);
	if (nv->handle)
		dlclose(nv->handle);
	nv->handle = NULL;
	for (size_t i = 0; nv->argv && nv->argv[i]; i++)
		sbi_free(nv->argv[i]);
	sbi_free(nv->argv);
	nv->argv = NULL;
	sbi_free(nv->cwd);
	nv->cwd = NULL;
	sbi_free(nv->line);
	nv->line = NULL;
	return 0;
}

/* Checks that the file at nv->path still has the hash the key was made
 * with (the table at -1 holds it as hash). [.., native] -> [.., native] */
static void
check_hash(lua_State *L, sbi_native *nv, const char *label)
{
	lua_getfield(L, -1, "hash");
	const char *want = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	char hex[SBI_KEY_HEX];
	sbi_err err = { 0 };
	if (want == NULL)
		luaL_error(L, "%s: spec.native.hash is missing", label);
	if (sbi_hash_file_hex(nv->path, hex, &err) != SBI_OK)
		luaL_error(L, "%s: %s", label, err.msg);
	if (strcmp(hex, want) != 0)
		luaL_error(L, "%s: %s does not have the content hash of the step's key (it changed since the recipe "
		    "was loaded); run again", label, nv->path);
	lua_pop(L, 1);
}

static void
open_plugin(lua_State *L, sbi_native *nv, const char *label)
{
	lua_getfield(L, -1, "symbol");
	if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "%s: spec.native.symbol must be a string", label);
	const char *sym = lua_isnil(L, -1) ? "simulate" : lua_tostring(L, -1);
	nv->handle = dlopen(nv->path, RTLD_NOW | RTLD_LOCAL);
	if (nv->handle == NULL)
		luaL_error(L, "%s: cannot load plugin %s: %s", label, nv->path, dlerror());
	nv->plugin = dlsym(nv->handle, sym);
	if (nv->plugin == NULL)
		luaL_error(L, "%s: plugin %s has no symbol '%s' (it must export a const sbirun_plugin of that name: "
		    "SBIRUN_PLUGIN(%s, init, simulate, free) of sbirun/plugin.h)", label, nv->path, sym, sym);
	if (nv->plugin->abi != SBIRUN_PLUGIN_ABI || nv->plugin->size < sizeof(sbirun_plugin))
		luaL_error(L, "%s: plugin %s was built for ABI version %d (size %d); this sbirun supports version %d: "
		    "rebuild it against this sbirun's sbirun/plugin.h", label, nv->path, (int)nv->plugin->abi,
		    (int)nv->plugin->size, SBIRUN_PLUGIN_ABI);
	if (nv->plugin->simulate == NULL)
		luaL_error(L, "%s: plugin %s: its simulate function is NULL", label, nv->path);
	lua_pop(L, 1);
}

/* Reads the argv list and the folder of a program. [.., native] -> [.., native] */
static void
open_command(lua_State *L, sbi_native *nv, const char *label)
{
	lua_getfield(L, -1, "argv");
	size_t argc = lua_istable(L, -1) ? (size_t)lua_rawlen(L, -1) : 0;
	if (argc < 1 || argc > 4096)
		luaL_error(L, "%s: spec.native.argv must list 1 to 4096 strings", label);
	if ((nv->argv = sbi_calloc(argc + 1, sizeof *nv->argv)) == NULL)
		luaL_error(L, "out of memory");
	for (size_t i = 0; i < argc; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		const char *a = i == 0 ? nv->path : lua_tostring(L, -1);
		if (a == NULL)
			luaL_error(L, "%s: command argument %d is not a string", label, (int)i + 1);
		if ((nv->argv[i] = sbi_strdup(a)) == NULL)
			luaL_error(L, "out of memory");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_getfield(L, -1, "cwd");
	if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "%s: spec.native.cwd must be a string", label);
	if ((nv->cwd = sbi_strdup(lua_isnil(L, -1) ? "." : lua_tostring(L, -1))) == NULL)
		luaL_error(L, "out of memory");
	lua_getfield(L, -2, "timeout");
	nv->timeout = lua_isnil(L, -1) ? 0 : lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
	if (!(nv->timeout >= 0 && nv->timeout <= 1e6))
		luaL_error(L, "%s: timeout must be from 0 (none) to 1e6 seconds", label);
	lua_pop(L, 2);
}

sbi_native *
sbi__native_open(lua_State *L, int spec, const char *label, size_t dtheta, size_t dx)
{
	if (lua_getfield(L, spec, "native") == LUA_TNIL) {
		lua_pop(L, 1);
		return NULL;
	}
	if (!lua_istable(L, -1))                            /* [.., native] */
		luaL_error(L, "%s: spec.native must be a table (as sbi.simulator makes it)", label);
	sbi_native *nv = sbi__push_box(L, sizeof *nv, "sbi.Native", native_free);
	lua_insert(L, -2);                                  /* [.., box, native] */
	lua_getfield(L, -1, "kind");
	const char *kind = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
	nv->kind = strcmp(kind, "plugin") == 0 ? NATIVE_PLUGIN : strcmp(kind, "command") == 0 ? NATIVE_COMMAND : 0;
	if (nv->kind == 0)
		luaL_error(L, "%s: spec.native.kind must be \"plugin\" or \"command\"", label);
	lua_getfield(L, -2, "path");
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "%s: spec.native.path must be a string", label);
	const char *path = lua_tostring(L, -1);
	check_policy(L, kind, path);
	if (!sbi__check_read(L, path))
		luaL_error(L, "%s: %s", label, lua_tostring(L, -1));
	snprintf(nv->path, sizeof nv->path, "%s", path);
	lua_getfield(L, -3, "batch");
	lua_Integer b = lua_isnil(L, -1) ? (nv->kind == NATIVE_PLUGIN ? 256 : 1) : lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
	if (b < 1 || b > NATIVE_MAX_BATCH)
		luaL_error(L, "%s: batch must be from 1 to %d", label, NATIVE_MAX_BATCH);
	nv->batch = (size_t)b;
	lua_pop(L, 3);                                      /* [.., box, native] */
	if (dx == 0)
		luaL_error(L, "%s: a %s simulator needs its data dimension: sbi.simulator{ ..., dim = K }", label, kind);
	nv->dtheta = dtheta;
	nv->dx = dx;
	check_hash(L, nv, label);
	if (nv->kind == NATIVE_PLUGIN)
		open_plugin(L, nv, label);
	else
		open_command(L, nv, label);
	lua_pop(L, 1);                                      /* [.., box] */
	return nv;
}

/* ---- running: shared ---- */

static void
row_fail(sbi_native_row *r, int kind, const char *msg)
{
	if (r->kind != ROW_OK)
		return; /* the first reason stays */
	r->kind = kind;
	snprintf(r->msg, sizeof r->msg, "%s", msg);
}

/* Rows whose x is not finite (and not failed otherwise) fail as NaN. */
static void
check_finite(const sbi_mat *x, size_t a, size_t b, sbi_native_row *rows, const char *who)
{
	for (size_t i = a; i < b; i++) {
		const double *xr = sbi_mat_row(x, i);
		int ok = 1;
		for (size_t k = 0; k < x->ncol; k++)
			ok &= isfinite(xr[k]) != 0;
		if (!ok && rows[i].kind == ROW_OK) {
			char msg[128];
			snprintf(msg, sizeof msg, "the %s returned NaN or infinite values", who);
			row_fail(&rows[i], ROW_NAN, msg);
		}
	}
}

static int
any_failed(const sbi_native_row *rows, size_t a, size_t b)
{
	for (size_t i = a; i < b; i++)
		if (rows[i].kind != ROW_OK)
			return 1;
	return 0;
}

/* One chunk's run (sbi__native_run's arguments). */
typedef struct native_call {
	const sbi_mat *theta;
	sbi_mat *x;
	uint64_t stream[3]; /* seed, purpose, index of row 0 */
	sbi_native_row *rows;
	sbi_pool_slot *slot;
	int stop;
	sbi_native_tick tick;
	void *ud;
	sbi_err *err;
} native_call;

/* Rows a..end-1 are done: progress, and whether to stop there (a failure
 * with stop set; the rows after are marked not run). */
static int
batch_done(const native_call *c, size_t a, size_t end)
{
	c->slot->done = end;
	if (c->tick)
		c->tick(c->ud, end);
	if (!c->stop || !any_failed(c->rows, a, end))
		return 0;
	for (size_t i = end; i < c->theta->nrow; i++)
		c->rows[i].kind = ROW_NOT_RUN;
	return 1;
}

/* ---- running: plugins ---- */

typedef struct plugin_call {
	sbi_native_row *rows; /* this batch's (borrowed) */
} plugin_call;

static void
plugin_fail(sbirun_batch *b, size_t i, const char *message)
{
	plugin_call *c = b->engine;
	if (i < b->n)
		row_fail(&c->rows[i], ROW_ERROR, message && *message ? message : "the plugin reported a failure");
}

/* Frees the streams of a chunk. */
static void
free_rngs(gsl_rng **r, size_t n)
{
	for (size_t i = 0; r && i < n; i++)
		if (r[i])
			gsl_rng_free(r[i]);
	sbi_free(r);
}

static int
plugin_run(sbi_native *nv, const native_call *c)
{
	const sbi_mat *theta = c->theta;
	sbi_native_row *rows = c->rows;
	size_t m = theta->nrow, nb = nv->batch < m ? nv->batch : m;
	gsl_rng **r = sbi_calloc(nb ? nb : 1, sizeof *r); /* freed below */
	for (size_t i = 0; r && i < nb; i++)
		if ((r[i] = sbi_rng_alloc()) == NULL) {
			free_rngs(r, nb);
			r = NULL;
		}
	if (r == NULL)
		return sbi_err_set(c->err, SBI_ENOMEM, "out of memory");
	void *state = NULL;
	char msg[512] = "";
	if (nv->plugin->init && nv->plugin->init(&state, nv->dtheta, nv->dx, msg, sizeof msg) != 0) {
		free_rngs(r, nb);
		msg[sizeof msg - 1] = '\0';
		return sbi_err_set(c->err, SBI_ESIM, "plugin %s: init failed: %s", nv->path, msg[0] ? msg : "(no message)");
	}
	for (size_t a = 0; a < m; a += nb) {
		size_t n = m - a < nb ? m - a : nb;
		for (size_t i = 0; i < n; i++)
			sbi_rng_set_stream(r[i], c->stream[0], c->stream[1], c->stream[2] + a + i);
		plugin_call pc = { rows + a };
		sbirun_batch b = { .n = n, .dtheta = nv->dtheta, .dx = nv->dx, .theta = sbi_mat_row(theta, a),
			.x = sbi_mat_row(c->x, a), .rng = (sbirun_rng *const *)(void *)r, .host = &host,
			.fail = plugin_fail, .engine = &pc };
		c->slot->current = c->stream[2] + a;
		c->slot->busy = 1;
		int rc = nv->plugin->simulate(state, &b);
		if (rc != 0) {
			snprintf(msg, sizeof msg, "the plugin's simulate returned %d for the batch of this row", rc);
			for (size_t i = 0; i < n; i++)
				row_fail(&rows[a + i], ROW_ERROR, msg);
		}
		check_finite(c->x, a, a + n, rows, "plugin");
		if (batch_done(c, a, a + n))
			break;
	}
	c->slot->busy = 0;
	if (nv->plugin->free_state)
		nv->plugin->free_state(state);
	free_rngs(r, nb);
	return SBI_OK;
}

/* ---- running: programs ---- */

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Describes how the program ended (waited for), into buf. */
static void
describe_exit(int status, char *buf, size_t n)
{
	if (WIFSIGNALED(status))
		snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (WIFEXITED(status))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(buf, n, "ended");
}

/* Ends the program: EOF on its stdin, then SIGKILL if it has not exited
 * within a second. status gets its wait status (may be NULL). */
static void
command_end(sbi_native *nv, int kill_now, int *status)
{
	if (nv->pid <= 0)
		return;
	close(nv->to_fd);
	close(nv->from_fd);
	int st = 0;
	pid_t w = 0;
	for (int i = 0; !kill_now && i < 100 && (w = waitpid(nv->pid, &st, WNOHANG)) == 0; i++)
		usleep(10000);
	if (w != nv->pid) {
		kill(nv->pid, SIGKILL);
		while (waitpid(nv->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	if (status)
		*status = st;
	nv->pid = 0;
	nv->nline = 0;
}

static void
command_stop(sbi_native *nv)
{
	command_end(nv, 0, NULL);
}

/* In the forked child: becomes the program, or writes errno to efd and
 * exits. Only async-signal-safe calls: the parent may have threads. */
static void
child_exec(const sbi_native *nv, pid_t parent, int in, int out, int efd)
{
	/* Killed with the process that runs it (a worker SIGKILLed while the
	 * program hangs must not leave the program behind). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(127);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	static const int reset[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD };
	for (size_t i = 0; i < sizeof reset / sizeof *reset; i++)
		signal(reset[i], SIG_DFL);
	int e = 0;
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0)
		e = errno;
	/* Nothing else inherited (the pool's pipes, the cache's lock), but efd. */
	if (e == 0 && efd > 3)
		close_range(3, (unsigned)efd - 1, 0);
	if (e == 0)
		close_range((unsigned)efd + 1, ~0u, 0);
	if (e == 0 && chdir(nv->cwd) != 0)
		e = errno;
	if (e == 0) {
		execv(nv->path, nv->argv);
		e = errno;
	}
	ssize_t w = write(efd, &e, sizeof e);
	(void)w;
	_exit(127);
}

/* Starts the program with its stdin on a socket (so writing to a program
 * that died gives EPIPE, not SIGPIPE) and its stdout on a pipe; argv is
 * executed directly, never through a shell. */
static int
command_start(sbi_native *nv, sbi_err *err)
{
	int sv[2], p[2] = { -1, -1 }, e[2] = { -1, -1 };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return sbi_err_set(err, SBI_EIO, "cannot start %s: %s", nv->path, strerror(errno));
	if (pipe2(p, O_CLOEXEC) != 0 || pipe2(e, O_CLOEXEC) != 0) {
		int en = errno;
		int fds[6] = { sv[0], sv[1], p[0], p[1], e[0], e[1] };
		for (int i = 0; i < 6; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return sbi_err_set(err, SBI_EIO, "cannot start %s: %s", nv->path, strerror(en));
	}
	pid_t parent = getpid(), pid = fork();
	if (pid == 0)
		child_exec(nv, parent, sv[1], p[1], e[1]);
	int en = pid < 0 ? errno : 0;
	close(sv[1]);
	close(p[1]);
	close(e[1]);
	ssize_t r;
	while (pid > 0 && (r = read(e[0], &en, sizeof en)) < 0 && errno == EINTR)
		;
	close(e[0]);
	if (en != 0) { /* fork failed, or the child could not exec: it has exited */
		close(sv[0]);
		close(p[0]);
		if (pid > 0)
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		nv->pid = 0;
		return sbi_err_set(err, SBI_ESIM, "cannot start the program %s: %s", nv->path, strerror(en));
	}
	nv->pid = pid;
	nv->to_fd = sv[0];
	nv->from_fd = p[0];
	fcntl(nv->to_fd, F_SETFL, fcntl(nv->to_fd, F_GETFL) | O_NONBLOCK);
	fcntl(nv->from_fd, F_SETFL, fcntl(nv->from_fd, F_GETFL) | O_NONBLOCK);
	nv->nline = 0;
	return SBI_OK;
}

/* Makes room for more bytes at the end of the answer buffer. */
static int
line_reserve(sbi_native *nv, size_t more)
{
	if (nv->nline + more <= nv->capline)
		return 0;
	size_t cap = nv->capline ? nv->capline : 65536;
	while (cap < nv->nline + more)
		cap *= 2;
	char *d = sbi_realloc(nv->line, cap);
	if (d == NULL)
		return -1;
	nv->line = d;
	nv->capline = cap;
	return 0;
}

/* The request lines of rows a..b-1 into req (owned by the caller, grown
 * with sbi_realloc): "SEED THETA1 ... THETAd\n", SEED the first 64 bits
 * of the simulation's stream (seed, purpose, first + row). */
static int
format_requests(const sbi_native *nv, const sbi_mat *theta, size_t a, size_t b, const uint64_t stream[3],
    gsl_rng *r, char **req, size_t *cap, size_t *len)
{
	size_t need = (b - a) * (21 + 25 * nv->dtheta) + 1;
	if (need > *cap) {
		char *d = sbi_realloc(*req, need);
		if (d == NULL)
			return SBI_ENOMEM;
		*req = d;
		*cap = need;
	}
	size_t k = 0;
	for (size_t i = a; i < b; i++) {
		sbi_rng_set_stream(r, stream[0], stream[1], stream[2] + i);
		k += (size_t)snprintf(*req + k, need - k, "%llu", (unsigned long long)sbi_rng_next64(r));
		const double *t = sbi_mat_row(theta, i);
		for (size_t j = 0; j < nv->dtheta; j++)
			k += (size_t)snprintf(*req + k, need - k, " %.17g", t[j]);
		(*req)[k++] = '\n';
	}
	*len = k;
	return SBI_OK;
}

/* Reads one answer line into x (dx values) or the row's failure. */
static void
parse_answer(const sbi_native *nv, char *line, double *x, sbi_native_row *row)
{
	size_t len = strlen(line);
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	char msg[256];
	if (strncmp(line, "error", 5) == 0 && (line[5] == '\0' || line[5] == ' ' || line[5] == '\t')) {
		const char *m = line + 5 + strspn(line + 5, " \t");
		snprintf(msg, sizeof msg, "the program answered: error %s", *m ? m : "(no message)");
		row_fail(row, ROW_ERROR, msg);
		return;
	}
	size_t k = 0;
	for (char *p = line;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		char *end;
		double v = strtod(p, &end);
		if (end == p || (*end != '\0' && *end != ' ' && *end != '\t')) {
			snprintf(msg, sizeof msg, "the program's answer is not a line of numbers: \"%.80s\"", line);
			row_fail(row, ROW_ERROR, msg);
			return;
		}
		if (k < nv->dx)
			x[k] = v;
		k++;
		p = end;
	}
	if (k != nv->dx) {
		snprintf(msg, sizeof msg, "the program answered %zu values, expected %zu", k, nv->dx);
		row_fail(row, ROW_LENGTH, msg);
	}
}

/* Kills the program after it failed row; the message says why. */
static void
program_failed(sbi_native *nv, sbi_native_row *row, const char *why)
{
	char msg[256];
	snprintf(msg, sizeof msg, "the program %s", why);
	row_fail(row, ROW_ERROR, msg);
}

/* Consumes the complete lines in the answer buffer as answers of rows
 * *k, *k + 1, ... (below n). Returns how many it took. */
static size_t
take_lines(sbi_native *nv, sbi_mat *x, size_t a, size_t n, size_t *k, sbi_native_row *rows)
{
	char *s = nv->line, *nl;
	size_t left = nv->nline, took = 0;
	while (*k < n && (nl = memchr(s, '\n', left)) != NULL) {
		*nl = '\0';
		parse_answer(nv, s, sbi_mat_row(x, a + *k), &rows[a + *k]);
		(*k)++;
		took++;
		left -= (size_t)(nl + 1 - s);
		s = nl + 1;
	}
	memmove(nv->line, s, left);
	nv->nline = left;
	return took;
}

/* Sends the requests of rows a..a+n-1 and reads their answers, writing
 * and reading together (a large batch would otherwise fill both pipes).
 * Returns the rows answered: n, or fewer when the program died or hung on
 * the next row, whose failure is recorded and the program ended. */
static size_t
exchange(sbi_native *nv, const char *req, size_t nreq, sbi_mat *x, size_t a, size_t n, sbi_native_row *rows)
{
	size_t sent = 0, k = 0;
	int writing = 1;
	double deadline = nv->timeout > 0 ? now_s() + nv->timeout : 0;
	char why[200];
	while (k < n) {
		struct pollfd pf[2] = { { nv->from_fd, POLLIN, 0 }, { nv->to_fd, POLLOUT, 0 } };
		nfds_t npf = writing && sent < nreq ? 2 : 1;
		int ms = -1;
		if (deadline > 0) {
			double left = deadline - now_s();
			ms = left <= 0 ? 0 : (int)(left * 1000) + 1;
		}
		int pr = poll(pf, npf, ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			command_end(nv, 1, NULL);
			snprintf(why, sizeof why, pr == 0 ? "gave no answer within timeout = %g s and was killed"
			    : "could not be waited for (poll failed)", nv->timeout);
			program_failed(nv, &rows[a + k], why);
			return k;
		}
		if (npf == 2 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = send(nv->to_fd, req + sent, nreq - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0)
				sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR)
				writing = 0; /* it closed its stdin or died: its output tells which */
		}
		if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (line_reserve(nv, 65536) != 0) {
			command_end(nv, 1, NULL);
			program_failed(nv, &rows[a + k], "answered more than memory holds");
			return k;
		}
		ssize_t r = read(nv->from_fd, nv->line + nv->nline, nv->capline - nv->nline);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			int st = 0;
			command_end(nv, 0, &st);
			char how[128];
			describe_exit(st, how, sizeof how);
			snprintf(why, sizeof why, "%s without answering", how);
			program_failed(nv, &rows[a + k], why);
			return k;
		}
		nv->nline += (size_t)r;
		if (take_lines(nv, x, a, n, &k, rows) > 0 && nv->timeout > 0)
			deadline = now_s() + nv->timeout;
		if (nv->nline > NATIVE_MAX_LINE) {
			command_end(nv, 1, NULL);
			program_failed(nv, &rows[a + k], "wrote an answer line longer than 16 MB and was killed");
			return k;
		}
	}
	return k;
}

static int
command_run(sbi_native *nv, const native_call *c)
{
	size_t m = c->theta->nrow, cap = 0, len = 0;
	char *req = NULL; /* freed below */
	gsl_rng *r = sbi_rng_alloc();
	int rc = r ? SBI_OK : sbi_err_set(c->err, SBI_ENOMEM, "out of memory");
	for (size_t a = 0; rc == SBI_OK && a < m;) {
		size_t n = m - a < nv->batch ? m - a : nv->batch;
		if (nv->pid == 0 && (rc = command_start(nv, c->err)) != SBI_OK)
			break;
		if (format_requests(nv, c->theta, a, a + n, c->stream, r, &req, &cap, &len) != SBI_OK) {
			rc = sbi_err_set(c->err, SBI_ENOMEM, "out of memory");
			break;
		}
		c->slot->current = c->stream[2] + a;
		c->slot->busy = 1;
		size_t k = exchange(nv, req, len, c->x, a, n, c->rows);
		check_finite(c->x, a, a + k, c->rows, "program");
		size_t end = a + (k < n ? k + 1 : n);
		if (batch_done(c, a, end))
			break;
		a = end;
	}
	c->slot->busy = 0;
	command_end(nv, 0, NULL);
	sbi_free(req);
	if (r)
		gsl_rng_free(r);
	return rc;
}

int
sbi__native_run(sbi_native *nv, const sbi_mat *theta, sbi_mat *x, const uint64_t stream[3],
    sbi_native_row *rows, sbi_pool_slot *slot, int stop, sbi_native_tick tick, void *ud, sbi_err *err)
{
	for (size_t i = 0; i < theta->nrow; i++)
		rows[i].kind = ROW_OK;
	for (size_t k = 0; k < theta->nrow * nv->dx; k++)
		x->data[k] = NAN;
	native_call c = { .theta = theta, .x = x, .stream = { stream[0], stream[1], stream[2] }, .rows = rows,
		.slot = slot, .stop = stop, .tick = tick, .ud = ud, .err = err };
	return nv->kind == NATIVE_PLUGIN ? plugin_run(nv, &c) : command_run(nv, &c);
}
