/* The commands of a session over its graph: run and sample (the
 * executor's callbacks into Lua, the outputs, the output folder's checks
 * and lock), graph (states from the cache) and clean. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsession.h"
#include "report.h"
#include "sbi/alloc.h"
#include "sbi/fsutil.h"
#include "sbi/progress.h"

/* Opens the cache directory, creating it. The directory is checked here
 * first so that the message names it, the reason and the way out. */
static sbi_cache *
open_cache(sbi_session *s, sbi_err *err)
{
	static const char *const sub[] = { "", "objects", "refs" };
	sbi_err e = { 0 };
	for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
		char *d = sub[i][0] ? sbi_path_join(s->cache_dir, sub[i]) : sbi_strdup(s->cache_dir);
		int rc = d ? sbi_fs_mkdirs(d, &e) : sbi_err_set(&e, SBI_ENOMEM, "out of memory");
		if (rc == SBI_OK && access(d, W_OK | X_OK) != 0)
			rc = sbi_err_set(&e, SBI_EIO, "%s is not writable: %s", d, strerror(errno));
		sbi_free(d);
		if (rc != SBI_OK) {
			sbi_err_set(err, rc, "cannot use cache directory %s (choose another with --cache DIR): %s",
			    s->cache_dir, e.msg);
			return NULL;
		}
	}
	sbi_cache *c = sbi_cache_open(s->cache_dir, &e);
	if (c == NULL)
		sbi_err_set(err, e.code, "%s", e.msg);
	return c;
}

static int
run_node_protected(lua_State *L)
{
	sbi_session *s = lua_touserdata(L, 1);
	sbi_node *n = lua_touserdata(L, 2);
	sbi_artifact **out = lua_touserdata(L, 3);
	sbi__push_node(L, n->id);                /* [.., node] */
	lua_getfield(L, -1, "run");
	lua_pushvalue(L, -2);                    /* [.., node, run, node] */
	lua_createtable(L, (int)n->ninputs, 0);
	for (size_t i = 0; i < n->ninputs; i++) {
		sbi__push_artifact(L, s->g->nodes[n->inputs[i]].art);
		lua_seti(L, -2, (lua_Integer)i + 1);
	}
	lua_call(L, 2, 1);                       /* [.., node, result] */
	*out = sbi__to_artifact(L, -1, n->label);
	return 0;
}

static int
run_node(void *ud, sbi_graph *g, sbi_node *n, sbi_artifact **out, sbi_err *err)
{
	sbi_session *s = ud;
	lua_State *L = s->L;
	if (!s->o.quiet)
		fprintf(stderr, "running %s\n", n->label);
	s->ctx.node = n;
	lua_pushcfunction(L, run_node_protected);
	lua_pushlightuserdata(L, s);
	lua_pushlightuserdata(L, n);
	lua_pushlightuserdata(L, out);
	int rc = sbi__pcall(L, 3, 0);
	s->ctx.node = NULL;
	if (rc == LUA_OK && sbi_prov_add_ran(s->prov, &n->key) != SBI_OK) /* for the record of reads */
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	if (rc != LUA_OK) {
		/* A position inside the stdlib means nothing to the recipe's
		 * author: replace it by the node's label (which names the
		 * recipe line), unless the message already starts with it. */
		const char *msg = lua_tostring(L, -1);
		if (msg == NULL)
			msg = "(error object is not a string)";
		if (strncmp(msg, "[stdlib]/", 9) == 0) {
			const char *colon = strchr(msg, ':');
			size_t k = colon ? strspn(colon + 1, "0123456789") : 0;
			if (colon && k > 0 && colon[1 + k] == ':')
				msg = colon + 1 + k + 1 + (colon[2 + k] == ' ');
		}
		if (strncmp(msg, n->label, strlen(n->label)) == 0)
			sbi_err_set(err, SBI_EINVAL, "%s", msg);
		else
			sbi_err_set(err, SBI_EINVAL, "%s: %s", n->label, msg);
		lua_pop(L, 1);
		return SBI_EINVAL;
	}
	return SBI_OK;
}

/* Observations, their summaries (a fitted compressor applied to a new
 * observation: stdlib/sbi/summary.lua) and the sampling steps. */
static int
may_run_when_sampling(const char *kind)
{
	size_t n = strlen(kind);
	return strcmp(kind, "observation") == 0 || strcmp(kind, "summary.obs") == 0
	    || (n > 7 && strcmp(kind + n - 7, ".sample") == 0);
}

static void
warn_node(void *ud, sbi_node *n, const char *msg)
{
	sbi_session *s = ud;
	int refused = s->sampling && !may_run_when_sampling(n->kind);
	fprintf(stderr, "sbirun: warning: %s: %s%s\n", n->label, msg, refused ? "" : "; recomputing");
}

/* `sample` promises that nothing is trained or simulated: a needed step
 * whose cached result is missing or was found damaged fails the run. */
static int
may_run(void *ud, sbi_node *n, sbi_err *err)
{
	sbi_session *s = ud;
	if (!s->sampling || may_run_when_sampling(n->kind))
		return SBI_OK;
	return sbi_err_set(err, SBI_ENOTFOUND, "%s has no usable cached result%s; `sbirun sample` only draws from "
	    "trained estimators and never trains or simulates: run `sbirun %s` first to recompute it", n->label,
	    n->recomputed ? " (it was damaged, see the warning above)" : "", s->o.recipe);
}

/* Updates the cache's record of the files each step read (for bundles). */
static void
write_reads_record(sbi_session *s)
{
	sbi_err err = { 0 };
	if (sbi_prov_write_record(s->prov, s->cache_dir, &err) != SBI_OK)
		fprintf(stderr, "sbirun: warning: cannot write %s/%s: %s\n", s->cache_dir, SBI_READS_RECORD, err.msg);
}

/* Materializes every output (this may run steps). */
static int
materialize_outputs(sbi_session *s, sbi_executor *x)
{
	for (size_t i = 0; i < s->g->noutputs; i++) {
		sbi_err err = { 0 };
		if (sbi_exec_materialize(x, s->g->outputs[i].node, &err) != SBI_OK) {
			sbi__print_error(err.msg);
			return 1;
		}
	}
	return 0;
}

/* Pushes a list of the artifacts of output node id's training inputs
 * (kinds *.train), for their loss curves: loaded, or read from the cache
 * without the executor (no step runs and the run's counts stay as they
 * are); a training step that is not cached is left out. [] -> [list] */
static void
push_train_inputs(sbi_session *s, size_t id)
{
	lua_State *L = s->L;
	const sbi_node *n = &s->g->nodes[id];
	lua_createtable(L, 0, 0);
	for (size_t k = 0, j = 0; k < n->ninputs; k++) {
		sbi_node *in = &s->g->nodes[n->inputs[k]];
		size_t len = strlen(in->kind);
		if (len < 6 || strcmp(in->kind + len - 6, ".train") != 0)
			continue;
		sbi_artifact *a = in->art;
		if (a == NULL && (s->cache == NULL || sbi_cache_get(s->cache, &in->key, &a, NULL, NULL) != SBI_OK))
			continue;
		sbi__push_artifact(L, a); /* takes its own reference */
		if (a != in->art)
			sbi_artifact_free(a);
		lua_rawseti(L, -2, (lua_Integer)++j);
	}
}

/* Hands the materialized outputs to sbi._write_outputs. */
static int
write_outputs(sbi_session *s)
{
	lua_State *L = s->L;
	sbi__push_outputs(L);
	lua_createtable(L, (int)s->g->noutputs, 0); /* [outputs, arts] */
	for (size_t i = 0; i < s->g->noutputs; i++) {
		sbi__push_artifact(L, s->g->nodes[s->g->outputs[i].node].art);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_pushstring(L, s->out_dir);
	lua_pushboolean(L, s->o.quiet);
	lua_createtable(L, (int)s->g->noutputs, 0); /* [outputs, arts, dir, quiet, train] */
	for (size_t i = 0; i < s->g->noutputs; i++) {
		push_train_inputs(s, s->g->outputs[i].node);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return sbi__call_sbi(s, "_write_outputs", 5, 0);
}

/* Writes report.html from the output folder (after run.json); a report
 * that cannot be written is a warning: the analysis itself succeeded. */
static void
write_report(sbi_session *s)
{
	sbi_err err = { 0 };
	if (sbi_report_write(s->out_dir, &err) != SBI_OK)
		fprintf(stderr, "sbirun: warning: cannot write the report: %s\n", err.msg);
	else if (!s->o.quiet)
		fprintf(stderr, "wrote %s/report.html\n", s->out_dir);
}

/* Locks the output folder (an flock on the folder itself) while this run
 * writes its outputs and run.json, so that two runs into one folder write
 * one after the other and the folder holds one run's set. Returns the
 * descriptor to close, or -1 (then the run goes on unlocked). */
static int
lock_out_dir(sbi_session *s)
{
	for (int tries = 0; tries < 100; tries++) {
		int fd = open(s->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			if (tries == 0)
				fprintf(stderr, "sbirun: waiting for another run to finish writing the output folder %s\n",
				    s->out_dir);
			while (flock(fd, LOCK_EX) != 0)
				if (errno != EINTR) {
					close(fd);
					return -1;
				}
		}
		/* The lock counts only if the path still names the folder we
		 * locked (it may have been removed and made again meanwhile). */
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(s->out_dir, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return fd;
		close(fd);
		sbi_fs_mkdirs(s->out_dir, NULL);
	}
	return -1;
}

/* Checks, before anything runs, that the output folder can be written: it,
 * or its nearest existing ancestor, must be a writable directory, and the
 * first missing directory must be creatable (probed with mkdir). */
static int
check_out_dir(sbi_session *s)
{
	size_t len = strlen(s->out_dir), child = 0;
	char *p = sbi_malloc(2 * len + 4), *full = p ? p + len + 2 : NULL;
	if (p == NULL)
		return 0;
	memcpy(full, s->out_dir, len + 1);
	while (len > 1 && full[len - 1] == '/') /* trailing '/' */
		full[--len] = '\0';
	memcpy(p, full, len + 1);
	const char *why = NULL;
	int e = 0;
	struct stat st;
	for (;;) {
		if (stat(p, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				why = "is not a directory";
			else if (access(p, W_OK | X_OK) != 0) {
				e = errno;
				why = "is not writable";
			}
			break;
		}
		if ((errno != ENOENT && errno != ENOTDIR) || strcmp(p, ".") == 0) {
			e = errno;
			why = "cannot be used";
			break;
		}
		char *slash = strrchr(p, '/');
		child = strlen(p);
		if (slash == NULL || p[0] == '\0') {
			strcpy(p, ".");
			continue;
		}
		slash[slash == p] = '\0'; /* keep "/" itself */
	}
	/* The folder made by the probe stays: the run makes it anyway to write
	 * run.json, and removing it could remove the folder another run into
	 * the same place has just made and locked. */
	if (why == NULL && child > 0) {
		memcpy(p, full, child);
		p[child] = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST) {
			e = errno;
			why = "cannot be created";
		}
	}
	if (why)
		fprintf(stderr, "sbirun: error: cannot write the output folder %s (choose another with --out DIR): "
		    "%s %s%s%s\n", s->out_dir, p, why, e ? ": " : "", e ? strerror(e) : "");
	sbi_free(p);
	return why != NULL;
}

int
sbi_session_run(sbi_session *s)
{
	sbi_err err = { 0 };
	if ((s->cache = open_cache(s, &err)) == NULL) {
		sbi__print_error(err.msg);
		return 1;
	}
	if (check_out_dir(s))
		return 1;
	s->ctx.cache = s->cache;
	sbi_executor x = { .g = s->g, .cache = s->cache, .run = run_node, .warn = warn_node, .ud = s,
		.may_run = may_run };
	int rc = 0;
	for (size_t i = 0; s->o.run_all && rc == 0 && i < s->g->nnodes; i++) {
		if (sbi_exec_materialize(&x, i, &err) != SBI_OK) {
			sbi__print_error(err.msg);
			rc = 1;
		}
	}
	if (rc == 0)
		rc = materialize_outputs(s, &x);
	sbi_err e2 = { 0 };
	int made = sbi_fs_mkdirs(s->out_dir, &e2) == SBI_OK, lockfd = made ? lock_out_dir(s) : -1;
	if (rc == 0)
		rc = write_outputs(s);
	write_reads_record(s);
	if (!s->o.quiet && rc == 0) {
		if (x.nran == 0)
			fprintf(stderr, "nothing to do: every needed node was cached (%zu cache hits)\n", x.nhits);
		else
			fprintf(stderr, "%zu nodes ran, %zu cache hits, %.2f s\n", x.nran, x.nhits, sbi_now() - s->t0);
	}
	if (made) {
		rc |= sbi__write_run_json(s, &x, rc == 0);
		write_report(s);
	} else if (rc == 0) {
		sbi__print_error(e2.msg);
		rc = 1;
	}
	if (lockfd >= 0)
		close(lockfd);
	/* A failed gate (sbi.gate) ends the run with exit code 3, after every
	 * output and run.json were written. */
	const char *gate = rc == 0 ? sbi__gate_message(s->L) : NULL;
	if (gate) {
		for (const char *p = gate, *nl; *p; p = *nl ? nl + 1 : nl) { /* one line per failed gate */
			nl = strchr(p, '\n');
			nl = nl ? nl : p + strlen(p);
			fprintf(stderr, "sbirun: error: %.*s\n", (int)(nl - p), p);
		}
		rc = SBI_EXIT_GATE;
	}
	return rc;
}

/* Marks in need[] every node an output depends on. */
static void
mark_needed(sbi_session *s, size_t id, unsigned char *need)
{
	if (need[id])
		return;
	need[id] = 1;
	for (size_t i = 0; i < s->g->nodes[id].ninputs; i++)
		mark_needed(s, s->g->nodes[id].inputs[i], need);
}

int
sbi_session_sample(sbi_session *s)
{
	sbi_err err = { 0 };
	if ((s->cache = sbi_cache_open(s->cache_dir, &err)) == NULL) {
		sbi__print_error(err.msg);
		return 1;
	}
	unsigned char *need = sbi_calloc(s->g->nnodes ? s->g->nnodes : 1, 1);
	if (need == NULL)
		return 1;
	for (size_t i = 0; i < s->g->noutputs; i++)
		mark_needed(s, s->g->outputs[i].node, need);
	int rc = 0;
	for (size_t i = 0; i < s->g->nnodes && rc == 0; i++) {
		sbi_node *n = &s->g->nodes[i];
		if (need[i] && !may_run_when_sampling(n->kind) && !sbi_cache_has(s->cache, &n->key)) {
			fprintf(stderr, "sbirun: error: %s is not trained or simulated yet (nothing cached for it); "
			    "`sbirun sample` only draws from trained estimators: run `sbirun %s` first\n", n->label,
			    s->o.recipe);
			rc = 1;
		}
	}
	sbi_free(need);
	sbi_cache_close(s->cache);
	s->cache = NULL;
	s->sampling = 1;
	return rc ? rc : sbi_session_run(s);
}

static void
node_states(sbi_session *s, int have_cache)
{
	for (size_t i = 0; i < s->g->nnodes; i++) {
		sbi_node *n = &s->g->nodes[i];
		n->state = have_cache && sbi_cache_has(s->cache, &n->key) ? SBI_NODE_CACHED : SBI_NODE_PENDING;
	}
}

/* Opens the cache if it exists: for reading only (graph), or to write
 * (clean). Returns 1 when open, 0 when there is no cache, -1 after
 * printing why it cannot be used (e.g. a read-only cache for clean). */
static int
open_existing_cache(sbi_session *s, int readonly)
{
	if (!sbi_fs_exists(s->cache_dir))
		return 0;
	sbi_err err = { 0 };
	s->cache = readonly ? sbi_cache_open_readonly(s->cache_dir, &err) : open_cache(s, &err);
	if (s->cache == NULL)
		sbi__print_error(err.msg);
	return s->cache != NULL ? 1 : -1;
}

int
sbi_session_graph(sbi_session *s, const char *format)
{
	if (strcmp(format, "text") != 0 && strcmp(format, "dot") != 0) {
		fprintf(stderr, "sbirun: error: --format %s: expected text or dot\n", format);
		return 2;
	}
	int open = open_existing_cache(s, 1);
	if (open < 0)
		return 1;
	node_states(s, open);
	sbi__print_graph(s->g, strcmp(format, "dot") == 0);
	return 0;
}

int
sbi_session_clean(sbi_session *s)
{
	int open = open_existing_cache(s, 0);
	if (open < 0)
		return 1;
	if (open == 0) {
		fprintf(stderr, "nothing to clean: no cache at %s\n", s->cache_dir);
		return 0;
	}
	long refs = 0, objects = 0;
	for (size_t i = 0; i < s->g->nnodes; i++) {
		long r = 0;
		if (sbi_cache_has(s->cache, &s->g->nodes[i].key))
			refs++;
		sbi_cache_remove(s->cache, &s->g->nodes[i].key);
		sbi_cache_remove_chunks(s->cache, &s->g->nodes[i].key, &r, NULL);
		refs += r;
	}
	sbi_err err = { 0 };
	if (sbi_cache_gc(s->cache, &objects, &err) != SBI_OK) {
		sbi__print_error(err.msg);
		return 1;
	}
	fprintf(stderr, "removed %ld cache entries and %ld artifacts from %s\n", refs, objects, s->cache_dir);
	return 0;
}
