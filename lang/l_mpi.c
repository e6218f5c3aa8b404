/* The MPI backend (lmpi.h, docs/cluster.md).
 *
 * Rank 0 runs the graph as a single process would. When one of its steps
 * calls core.simulate, it sends every other rank a job (the node's id and
 * key, the data dimension, the chunk size and, for simulations at given
 * parameters, the theta matrix), then hands out chunk indices, three at a
 * time per rank so a rank never waits for its next chunk, one more each
 * time a rank returns a result (dynamic load balancing); rank 0 runs chunks
 * itself while no result waits. A rank runs a job by calling the node's
 * own run function (so it builds the same spec with the same simulator
 * closure as rank 0), whose core.simulate call serves the chunks instead
 * of simulating them all. Results depend only on (seed, round, index), so
 * who ran a chunk does not change a byte; rank 0 stores every chunk in the
 * cache as it arrives, so a run that dies resumes from them.
 *
 * core.diagnose_ranks (test points) and core.flow_train_each and
 * core.classifier_train_each (the networks of a training step: ensemble
 * members, auto's candidates) hand out tasks
 * the same way, in blocks of task indices: rank 0 sends the job with the
 * node's input artifacts, so a rank's run of the node's function builds
 * the same call, which then computes the blocks rank 0 sends; rank 0's
 * --jobs threads take blocks from the same counter while its main thread
 * serves the ranks (MPI calls stay on the main thread).
 *
 * Waiting uses MPI_Iprobe and short sleeps, not a blocking receive (which
 * spins in OpenMPI): idle ranks leave the CPU to rank 0's training and to
 * oversubscribed ranks. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lmpi.h"
#include "lsession.h"
#include "sbi/alloc.h"
#include "sbi/fsutil.h"
#include "sbi/progress.h"

#ifdef SBI_HAVE_MPI
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>

#include "sbi/artifact.h"

enum { TAG_JOB = 1, TAG_THETAS, TAG_CHUNK, TAG_RESULT, TAG_STOP, TAG_INPUTS, TAG_TASK_RESULT };
#define PREFETCH 3      /* chunks outstanding per rank (per --jobs worker) */
#define LOCAL_RANKS 16  /* rank 0 runs chunks itself up to this many ranks */
#define PIECE (1 << 26) /* doubles per message of a large matrix */
#define BYTE_PIECE (1 << 29) /* bytes per message of the input artifacts */
#define MAX_TASK_THREADS 64

typedef struct job_msg {
	uint64_t node_id, n, chunk, dtheta, dx, thetas_rows;
	uint64_t what;                  /* SBI_MPI_SIM, SBI_MPI_DIAG, SBI_MPI_TRAIN */
	uint64_t ntasks, block, inputs; /* tasks: their count, block size, input artifacts' bytes */
	unsigned char key[32];
} job_msg;

/* The fixed part of a block's result (tasks); its bytes follow. */
typedef struct task_msg {
	int64_t block;
	int32_t rc, pad;
	uint64_t failed; /* the task that failed when rc != SBI_OK */
	double seconds;  /* computing the block */
	char msg[1024];  /* the error when rc != SBI_OK */
} task_msg;

/* The fixed part of a result; the theta and x rows follow it. */
typedef struct result_msg {
	int64_t task;
	int32_t rc, has_current;
	uint64_t nrows, current;
	double counts[4];
	double seconds; /* computing the chunk */
	char first[1024];
	char msg[1024]; /* the error when rc != SBI_OK */
} result_msg;

typedef struct rank_stats {
	uint64_t chunks, sims;
	double seconds;
	uint64_t test_points, models; /* tasks of core.diagnose_ranks, core.*_train_each */
	double test_point_seconds, training_seconds;
} rank_stats;

static struct {
	int on, rank, size;
	rank_stats *stats;  /* rank 0: per rank (owned) */
	double serve_seconds; /* rank 0: receiving, storing and answering results */
	double message_seconds; /* rank 0: the MPI calls alone of that */
	uint64_t received;
	const void *last_node; /* the node whose first simulate call was distributed */
	/* Other ranks, during a job. */
	int in_job, job_done;
	job_msg job;
} g_mpi;

/* Rank 0's message when the job is stopped, kept ready as plain bytes for
 * a signal handler. Two ways end rank 0 when another rank dies: mpirun's
 * SIGTERM to the ranks left (on_term), and Open MPI itself, which exits the
 * process when it cannot read a message from a rank that died while sending
 * it ("Read -1, expected N, errno = 3"; an exit, so atexit handlers run).
 * The message is said once, by rank 0 only: forked --jobs workers inherit
 * the handlers but stay silent (g_pid), and sbirun's own MPI errors
 * (abort_job) say what failed instead. */
static char g_stop_msg[512];
static pid_t g_pid;
static volatile sig_atomic_t g_stop_said;
static volatile sig_atomic_t g_handing_out; /* rank 0 is handing out chunks */

static void
say_stop(void)
{
	if (getpid() == g_pid && !g_stop_said) {
		g_stop_said = 1;
		ssize_t w = write(2, g_stop_msg, strlen(g_stop_msg));
		(void)w;
	}
}

static void
on_term(int sig)
{
	(void)sig;
	say_stop();
	_exit(1);
}

/* Exits other than sbirun's own end only happen inside Open MPI. */
static void
stop_at_exit(void)
{
	if (g_handing_out)
		say_stop();
}

/* Ends the whole job after sbirun printed why. */
static _Noreturn void
abort_job(void)
{
	g_stop_said = 1;
	MPI_Abort(MPI_COMM_WORLD, 1);
	_exit(1);
}

/* label NULL: no simulation is being handed out. */
static void
set_stop_msg(const char *label, uint64_t stored, uint64_t total)
{
	static const char head[] = "sbirun: error: the MPI job was stopped (a rank died or was killed, or the job "
	    "was cancelled)";
	if (label == NULL)
		snprintf(g_stop_msg, sizeof g_stop_msg, "%s; the steps and chunks already done are kept in the cache: "
		    "run again (with any number of ranks) to resume\n", head);
	else
		snprintf(g_stop_msg, sizeof g_stop_msg, "%s while %s ran on %d ranks; %llu of the %llu chunks it had "
		    "to simulate are stored in the cache: run again (with any number of ranks) to resume\n", head,
		    label, g_mpi.size, (unsigned long long)stored, (unsigned long long)total);
}

static void
nap(int *k)
{
	struct timespec ts = { 0, (long)(*k < 10 ? 20000 : 1000000) }; /* 20 us, then 1 ms */
	(*k)++;
	nanosleep(&ts, NULL);
}

/* Prints what failed and ends the whole job: an MPI error means a rank is
 * gone, and the others cannot go on without it. */
static void
fatal(int rc, const char *what, int peer)
{
	char s[MPI_MAX_ERROR_STRING];
	int len = 0;
	MPI_Error_string(rc, s, &len);
	fprintf(stderr, "sbirun: error: MPI: %s rank %d failed (%s): the rank died or was killed; completed "
	    "chunks are kept in the cache: run again (with any number of ranks) to resume\n", what, peer, s);
	abort_job();
}

static void
check(int rc, const char *what, int peer)
{
	if (rc != MPI_SUCCESS)
		fatal(rc, what, peer);
}

/* Waits for a message from src (or any) with tag (or any); fills st. */
static void
wait_msg(int src, int tag, MPI_Status *st)
{
	int flag = 0, k = 0;
	for (;;) {
		check(MPI_Iprobe(src, tag, MPI_COMM_WORLD, &flag, st), "waiting for", src);
		if (flag)
			return;
		nap(&k);
	}
}

static void
send_doubles(const double *p, size_t n, int dest, int tag)
{
	for (size_t k = 0; k < n; k += PIECE) {
		int m = (int)(n - k < PIECE ? n - k : PIECE);
		check(MPI_Send(p + k, m, MPI_DOUBLE, dest, tag, MPI_COMM_WORLD), "sending to", dest);
	}
}

static void
recv_doubles(double *p, size_t n, int src, int tag)
{
	for (size_t k = 0; k < n; k += PIECE) {
		int m = (int)(n - k < PIECE ? n - k : PIECE);
		MPI_Status st;
		wait_msg(src, tag, &st);
		check(MPI_Recv(p + k, m, MPI_DOUBLE, src, tag, MPI_COMM_WORLD, &st), "receiving from", src);
	}
}

static int
launched_by_mpi(void)
{
	static const char *vars[] = { "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE" };
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
		if (getenv(vars[i]) != NULL)
			return 1;
	return 0;
}

int
sbi__mpi_init(int *argc, char ***argv)
{
	if (!launched_by_mpi())
		return 0;
	int provided;
	if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
		fprintf(stderr, "sbirun: error: MPI could not start\n");
		return 1;
	}
	/* Errors come back as codes, so a lost rank gets our message. */
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	MPI_Comm_rank(MPI_COMM_WORLD, &g_mpi.rank);
	MPI_Comm_size(MPI_COMM_WORLD, &g_mpi.size);
	g_mpi.on = 1;
	if (g_mpi.rank == 0) {
		g_mpi.stats = calloc((size_t)g_mpi.size, sizeof *g_mpi.stats); /* freed by sbi__mpi_finish */
		if (g_mpi.stats == NULL) {
			fprintf(stderr, "sbirun: error: out of memory\n");
			return 1;
		}
		g_pid = getpid();
		set_stop_msg(NULL, 0, 0);
		signal(SIGTERM, on_term);
		atexit(stop_at_exit);
	}
	return 0;
}

int
sbi__mpi_rank(void)
{
	return g_mpi.on ? g_mpi.rank : 0;
}

int
sbi__mpi_size(void)
{
	return g_mpi.on ? g_mpi.size : 1;
}

void
sbi__mpi_finish(void)
{
	if (!g_mpi.on)
		return;
	if (g_mpi.rank == 0)
		for (int r = 1; r < g_mpi.size; r++)
			check(MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, MPI_COMM_WORLD), "stopping", r);
	MPI_Finalize();
	free(g_mpi.stats);
	g_mpi.stats = NULL;
	g_mpi.on = 0;
}

/* ---- rank 0 ---- */

int
sbi__mpi_distributes(const sbi_runctx *ctx)
{
	if (!g_mpi.on || g_mpi.rank != 0 || ctx->in_simulator || ctx->node == NULL ||
	    ctx->node == g_mpi.last_node)
		return 0;
	g_mpi.last_node = ctx->node; /* the node's later calls run here: the ranks serve its first only */
	return 1;
}

static void
send_job(const sbi_mpi_sim *sim)
{
	job_msg m = { .node_id = sim->node_id, .n = sim->n, .chunk = sim->chunk, .dtheta = sim->dtheta,
		.dx = sim->dx, .thetas_rows = sim->thetas ? sim->thetas->nrow : 0, .what = SBI_MPI_SIM };
	memcpy(m.key, sim->node_key, sizeof m.key);
	for (int r = 1; r < g_mpi.size; r++) {
		check(MPI_Send(&m, (int)sizeof m, MPI_BYTE, r, TAG_JOB, MPI_COMM_WORLD), "sending a job to", r);
		if (sim->thetas)
			send_doubles(sim->thetas->data, sim->thetas->nrow * sim->thetas->ncol, r, TAG_THETAS);
	}
}

static void
send_task(int r, int64_t task)
{
	check(MPI_Send(&task, 1, MPI_INT64_T, r, TAG_CHUNK, MPI_COMM_WORLD), "sending a chunk to", r);
}

/* Receives one result (already probed in st) into a new buffer (caller
 * frees); NULL when out of memory. */
static unsigned char *
recv_result(MPI_Status *st, size_t *nbytes)
{
	int bytes;
	MPI_Get_count(st, MPI_BYTE, &bytes);
	unsigned char *buf = sbi_malloc(bytes > 0 ? (size_t)bytes : 1);
	if (buf == NULL)
		return NULL;
	check(MPI_Recv(buf, bytes, MPI_BYTE, st->MPI_SOURCE, TAG_RESULT, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
	    "receiving a result from", st->MPI_SOURCE);
	if ((size_t)bytes < sizeof(result_msg)) {
		fprintf(stderr, "sbirun: error: MPI: a malformed result from rank %d\n", st->MPI_SOURCE);
		abort_job();
	}
	*nbytes = (size_t)bytes;
	return buf;
}

/* Stores the result in buf from rank r; the first failure sets rc. */
static int
take_result(const sbi_mpi_sim *sim, int r, unsigned char *buf, size_t bytes, int rc, sbi_pool_failure *fail,
    sbi_err *err)
{
	result_msg h;
	memcpy(&h, buf, sizeof h);
	if (h.rc == SBI_OK && (h.nrows > sim->chunk || bytes != sizeof h + h.nrows * (sim->dtheta + sim->dx) *
	    sizeof(double))) {
		fprintf(stderr, "sbirun: error: MPI: a result of the wrong size from rank %d\n", r);
		abort_job();
	}
	if (h.rc != SBI_OK) {
		if (rc == SBI_OK) {
			*fail = (sbi_pool_failure){ (size_t)h.task, h.current, h.has_current, 0 };
			rc = sbi_err_set(err, h.rc, "%s", h.msg);
		}
		return rc;
	}
	sbi_mpi_chunk c = { 0 };
	c.theta = sbi_mat_alloc(h.nrows, sim->dtheta);
	c.x = sbi_mat_alloc(h.nrows, sim->dx);
	int src = SBI_OK;
	if (c.theta == NULL || c.x == NULL)
		src = sbi_err_set(err, SBI_ENOMEM, "out of memory");
	if (src == SBI_OK) {
		const unsigned char *p = buf + sizeof h;
		memcpy(c.theta->data, p, h.nrows * sim->dtheta * sizeof(double));
		memcpy(c.x->data, p + h.nrows * sim->dtheta * sizeof(double), h.nrows * sim->dx * sizeof(double));
		memcpy(c.counts, h.counts, sizeof c.counts);
		memcpy(c.first, h.first, sizeof c.first);
		c.first[sizeof c.first - 1] = '\0';
		src = sim->store(sim->ud, (size_t)h.task, &c, err);
	}
	sbi_mat_free(c.theta);
	sbi_mat_free(c.x);
	g_mpi.stats[r].chunks++;
	g_mpi.stats[r].sims += (uint64_t)(h.counts[0] + h.counts[1] + h.counts[2] + h.counts[3]);
	g_mpi.stats[r].seconds += h.seconds;
	return rc == SBI_OK ? src : rc;
}

static uint64_t
chunk_len(const sbi_mpi_sim *sim, size_t task)
{
	uint64_t first = (uint64_t)task * sim->chunk;
	return sim->n - first < sim->chunk ? sim->n - first : sim->chunk;
}

/* Rank 0 runs up to --jobs chunks itself; returns the simulations done. */
static uint64_t
run_here(const sbi_mpi_sim *sim, const size_t *tasks, size_t k, int *rc, sbi_pool_failure *fail, sbi_err *err)
{
	double t = sbi_now();
	int lrc = sim->run_local(sim->ud, tasks, k, fail, err);
	g_mpi.stats[0].seconds += sbi_now() - t;
	if (lrc != SBI_OK) {
		*rc = lrc;
		return 0; /* (the chunks it finished are stored; the count only feeds progress) */
	}
	uint64_t sims = 0;
	for (size_t i = 0; i < k; i++)
		sims += chunk_len(sim, tasks[i]);
	g_mpi.stats[0].chunks += k;
	g_mpi.stats[0].sims += sims;
	return sims;
}

int
sbi__mpi_run_chunks(const sbi_mpi_sim *sim, const size_t *tasks, size_t ntasks, sbi_pool_failure *fail,
    sbi_err *err)
{
	memset(fail, 0, sizeof *fail);
	send_job(sim);
	int size = g_mpi.size, rc = SBI_OK, jobs = sim->jobs > 1 ? sim->jobs : 1;
	size_t next = 0, outstanding = 0;
	uint64_t done = 0, stored = 0, total = ntasks;
	/* Every rank runs the same command, so has the same --jobs. */
	for (int k = 0; k < PREFETCH * jobs; k++)
		for (int r = 1; r < size && next < ntasks; r++, outstanding++)
			send_task(r, (int64_t)tasks[next++]);
	int local = size <= LOCAL_RANKS;
	set_stop_msg(sim->label, 0, total);
	g_handing_out = 1;
	while (outstanding > 0 || (rc == SBI_OK && next < ntasks)) {
		MPI_Status st;
		int flag = 0, naps = 0;
		check(MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &flag, &st), "waiting for", -1);
		if (!flag && local && rc == SBI_OK && next < ntasks) {
			size_t k = ntasks - next < (size_t)jobs ? ntasks - next : (size_t)jobs;
			uint64_t sims = run_here(sim, tasks + next, k, &rc, fail, err);
			next += k;
			done += sims;
			stored += rc == SBI_OK ? k : 0;
			set_stop_msg(sim->label, stored, total);
			if (sim->tick)
				sim->tick(sim->ud, done);
			continue;
		}
		while (!flag) {
			nap(&naps);
			check(MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &flag, &st), "waiting for", -1);
		}
		double t = sbi_now();
		int r = st.MPI_SOURCE;
		size_t bytes = 0;
		unsigned char *buf = recv_result(&st, &bytes);
		g_mpi.message_seconds += sbi_now() - t;
		if (buf == NULL && rc == SBI_OK)
			rc = sbi_err_set(err, SBI_ENOMEM, "out of memory");
		outstanding--;
		if (buf != NULL) {
			result_msg h;
			memcpy(&h, buf, sizeof h);
			int before = rc;
			rc = take_result(sim, r, buf, bytes, rc, fail, err);
			if (rc == SBI_OK || (before != SBI_OK && h.rc == SBI_OK)) {
				done += chunk_len(sim, (size_t)h.task);
				stored++;
			}
			sbi_free(buf);
		}
		if (rc == SBI_OK && next < ntasks) {
			double ts = sbi_now();
			send_task(r, (int64_t)tasks[next++]);
			outstanding++;
			g_mpi.message_seconds += sbi_now() - ts;
		}
		g_mpi.serve_seconds += sbi_now() - t;
		g_mpi.received++;
		set_stop_msg(sim->label, stored, total);
		if (sim->tick)
			sim->tick(sim->ud, done);
	}
	for (int r = 1; r < size; r++)
		send_task(r, -1);
	g_handing_out = 0;
	set_stop_msg(NULL, 0, 0);
	return rc;
}

/* ---- the input artifacts of a task job ----
 *
 * Packed in host order (every rank runs the same binary): a count, then
 * per artifact its fields in order, each as type, name and value. */

typedef struct pbuf {
	unsigned char *p; /* owned */
	size_t n, cap;
	int oom;
} pbuf;

static void
pb_put(pbuf *b, const void *src, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n)
			cap *= 2;
		unsigned char *p = sbi_realloc(b->p, cap);
		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p, b->cap = cap;
	}
	memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void
pb_u64(pbuf *b, uint64_t v)
{
	pb_put(b, &v, sizeof v);
}

static void
pack_field(pbuf *b, const sbi_field *f)
{
	pb_u64(b, (uint64_t)f->type);
	pb_u64(b, strlen(f->name));
	pb_put(b, f->name, strlen(f->name));
	switch (f->type) {
	case SBI_FIELD_MAT:
		pb_u64(b, f->mat->nrow);
		pb_u64(b, f->mat->ncol);
		pb_put(b, f->mat->data, f->mat->nrow * f->mat->ncol * sizeof(double));
		break;
	case SBI_FIELD_STR:
		pb_u64(b, f->len);
		pb_put(b, f->str, f->len);
		break;
	case SBI_FIELD_NUM:
		pb_put(b, &f->num, sizeof f->num);
		break;
	default: /* SBI_FIELD_STRS */
		pb_u64(b, f->len);
		for (size_t i = 0; i < f->len; i++) {
			pb_u64(b, f->lens[i]);
			pb_put(b, f->strs[i], f->lens[i]);
		}
	}
}

/* The artifacts of node's inputs, packed into b (b->oom when out of memory). */
static void
pack_inputs(const sbi_graph *g, const sbi_node *node, pbuf *b)
{
	pb_u64(b, node->ninputs);
	for (size_t i = 0; i < node->ninputs; i++) {
		const sbi_artifact *a = g->nodes[node->inputs[i]].art;
		pb_u64(b, a ? a->nfields : 0);
		for (size_t k = 0; a && k < a->nfields; k++)
			pack_field(b, &a->fields[k]);
	}
}

typedef struct preader {
	const unsigned char *p;
	size_t left;
	int bad;
} preader;

/* The next n bytes, or NULL (and r->bad) past the end. */
static const unsigned char *
pr_get(preader *r, size_t n)
{
	if (r->bad || n > r->left) {
		r->bad = 1;
		return NULL;
	}
	const unsigned char *p = r->p;
	r->p += n, r->left -= n;
	return p;
}

static uint64_t
pr_u64(preader *r)
{
	uint64_t v = 0;
	const unsigned char *p = pr_get(r, sizeof v);
	if (p)
		memcpy(&v, p, sizeof v);
	return v;
}

/* Reads one field into a; 0, or -1 when malformed or out of memory. */
static int
unpack_field(preader *r, sbi_artifact *a)
{
	uint64_t type = pr_u64(r), len = pr_u64(r);
	const unsigned char *np = pr_get(r, len);
	char name[256];
	if (np == NULL || len >= sizeof name)
		return -1;
	memcpy(name, np, len);
	name[len] = '\0';
	if (type == SBI_FIELD_MAT) {
		uint64_t nrow = pr_u64(r), ncol = pr_u64(r);
		const unsigned char *d = ncol && nrow > r->left / sizeof(double) / ncol ? NULL :
		    pr_get(r, nrow * ncol * sizeof(double));
		sbi_mat *m = d ? sbi_mat_alloc(nrow, ncol) : NULL;
		if (m == NULL)
			return -1;
		memcpy(m->data, d, nrow * ncol * sizeof(double));
		return sbi_artifact_set_mat(a, name, m) == SBI_OK ? 0 : -1;
	}
	if (type == SBI_FIELD_STR) {
		uint64_t n = pr_u64(r);
		const unsigned char *d = pr_get(r, n);
		return d && sbi_artifact_set_str(a, name, (const char *)d, n) == SBI_OK ? 0 : -1;
	}
	if (type == SBI_FIELD_NUM) {
		double v;
		const unsigned char *d = pr_get(r, sizeof v);
		if (d == NULL)
			return -1;
		memcpy(&v, d, sizeof v);
		return sbi_artifact_set_num(a, name, v) == SBI_OK ? 0 : -1;
	}
	if (type != SBI_FIELD_STRS)
		return -1;
	uint64_t n = pr_u64(r);
	if (n > r->left / sizeof(uint64_t))
		return -1;
	const char **v = sbi_calloc(n ? n : 1, sizeof *v);
	size_t *lens = sbi_calloc(n ? n : 1, sizeof *lens);
	int rc = v && lens ? 0 : -1;
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		lens[i] = pr_u64(r);
		v[i] = (const char *)pr_get(r, lens[i]);
		rc = v[i] ? 0 : -1;
	}
	if (rc == 0 && sbi_artifact_set_strs(a, name, v, lens, n) != SBI_OK)
		rc = -1;
	sbi_free(v);
	sbi_free(lens);
	return rc;
}

/* The artifacts packed in p (a new array of *n, caller frees each and the
 * array), or NULL when malformed or out of memory. */
static sbi_artifact **
unpack_inputs(const unsigned char *p, size_t bytes, size_t *n)
{
	preader r = { .p = p, .left = bytes };
	uint64_t count = pr_u64(&r);
	if (r.bad || count > 1024)
		return NULL;
	sbi_artifact **arts = sbi_calloc(count ? count : 1, sizeof *arts);
	int bad = arts == NULL;
	for (uint64_t i = 0; i < count && !bad; i++) {
		uint64_t nfields = pr_u64(&r);
		arts[i] = r.bad || nfields > 1u << 20 ? NULL : sbi_artifact_alloc();
		bad = arts[i] == NULL;
		for (uint64_t k = 0; k < nfields && !bad; k++)
			bad = unpack_field(&r, arts[i]) != 0;
	}
	if (bad || r.left != 0) {
		for (uint64_t i = 0; arts && i < count; i++)
			sbi_artifact_free(arts[i]);
		sbi_free(arts);
		return NULL;
	}
	*n = (size_t)count;
	return arts;
}

static void
send_bytes(const unsigned char *p, size_t n, int dest, int tag)
{
	for (size_t k = 0; k < n; k += BYTE_PIECE) {
		int m = (int)(n - k < BYTE_PIECE ? n - k : BYTE_PIECE);
		check(MPI_Send(p + k, m, MPI_BYTE, dest, tag, MPI_COMM_WORLD), "sending to", dest);
	}
}

static void
recv_bytes(unsigned char *p, size_t n, int src, int tag)
{
	for (size_t k = 0; k < n; k += BYTE_PIECE) {
		int m = (int)(n - k < BYTE_PIECE ? n - k : BYTE_PIECE);
		MPI_Status st;
		wait_msg(src, tag, &st);
		check(MPI_Recv(p + k, m, MPI_BYTE, src, tag, MPI_COMM_WORLD, &st), "receiving from", src);
	}
}

/* ---- rank 0: tasks ---- */

typedef struct task_run {
	const sbi_mpi_tasks *t;
	size_t block, nblocks;
	atomic_size_t next;
	atomic_int stop;
	pthread_mutex_t mu; /* the failure and rank 0's stats */
	int rc;
	size_t fail_at;
	sbi_err err;
} task_run;

/* The next block to run, or nblocks when none is left (or a task failed). */
static size_t
claim(task_run *r)
{
	if (atomic_load(&r->stop))
		return r->nblocks;
	size_t b = atomic_fetch_add(&r->next, 1);
	return b < r->nblocks ? b : r->nblocks;
}

static void
block_range(size_t block, size_t size, size_t ntasks, size_t *lo, size_t *hi)
{
	*lo = block * size;
	*hi = ntasks - *lo < size ? ntasks : *lo + size;
}

/* Keeps the failure of the lowest failing task (its message does not
 * depend on who ran what) and stops handing out blocks. */
static void
record_failure(task_run *r, int rc, size_t at, const char *msg)
{
	pthread_mutex_lock(&r->mu);
	if (r->rc == SBI_OK || at < r->fail_at) {
		r->rc = rc;
		r->fail_at = at;
		sbi_err_set(&r->err, rc, "%s", msg);
	}
	atomic_store(&r->stop, 1);
	pthread_mutex_unlock(&r->mu);
}

/* Counts a block of rank r (callers on rank 0's threads hold run->mu). */
static void
count_block(int r, int what, size_t tasks, double seconds)
{
	rank_stats *st = &g_mpi.stats[r];
	if (what == SBI_MPI_DIAG) {
		st->test_points += tasks;
		st->test_point_seconds += seconds;
	} else {
		st->models += tasks;
		st->training_seconds += seconds;
	}
}

/* A thread of rank 0: runs blocks until none is left. */
static void *
local_tasks(void *arg)
{
	task_run *r = arg;
	const sbi_mpi_tasks *t = r->t;
	for (size_t b; (b = claim(r)) < r->nblocks;) {
		size_t lo, hi, bytes = 0, failed = 0;
		block_range(b, r->block, t->ntasks, &lo, &hi);
		unsigned char *buf = NULL;
		sbi_err e = { 0 };
		double t0 = sbi_now();
		int rc = t->compute(t->ud, lo, hi, &buf, &bytes, &failed, &e);
		if (rc == SBI_OK && (rc = t->take(t->ud, lo, hi, buf, bytes, &e)) != SBI_OK)
			failed = lo;
		sbi_free(buf);
		if (rc != SBI_OK) {
			record_failure(r, rc, failed, e.msg);
			break;
		}
		pthread_mutex_lock(&r->mu);
		count_block(0, t->what, hi - lo, sbi_now() - t0);
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

static void
send_task_job(const sbi_runctx *ctx, const sbi_mpi_tasks *t, size_t block)
{
	pbuf in = { 0 };
	pack_inputs(ctx->g, ctx->node, &in);
	if (in.oom) {
		fprintf(stderr, "sbirun: error: out of memory packing the inputs of %s for the MPI ranks\n",
		    ctx->node->label);
		abort_job();
	}
	job_msg m = { .node_id = ctx->node->id, .what = (uint64_t)t->what, .ntasks = t->ntasks, .block = block,
		.inputs = in.n };
	memcpy(m.key, ctx->node->key.b, sizeof m.key);
	for (int r = 1; r < g_mpi.size; r++) {
		check(MPI_Send(&m, (int)sizeof m, MPI_BYTE, r, TAG_JOB, MPI_COMM_WORLD), "sending a job to", r);
		send_bytes(in.p, in.n, r, TAG_INPUTS);
	}
	sbi_free(in.p);
}

/* Receives one block's result (probed in st) and takes it. */
static void
take_task_result(task_run *r, MPI_Status *st)
{
	int bytes, src = st->MPI_SOURCE;
	MPI_Get_count(st, MPI_BYTE, &bytes);
	unsigned char *buf = sbi_malloc(bytes > 0 ? (size_t)bytes : 1);
	if (buf == NULL) {
		fprintf(stderr, "sbirun: error: out of memory\n");
		abort_job();
	}
	check(MPI_Recv(buf, bytes, MPI_BYTE, src, TAG_TASK_RESULT, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
	    "receiving a result from", src);
	task_msg h;
	if ((size_t)bytes < sizeof h) {
		fprintf(stderr, "sbirun: error: MPI: a malformed result from rank %d\n", src);
		abort_job();
	}
	memcpy(&h, buf, sizeof h);
	h.msg[sizeof h.msg - 1] = '\0';
	size_t lo, hi;
	if (h.block < 0 || (size_t)h.block >= r->nblocks) {
		fprintf(stderr, "sbirun: error: MPI: a result for an unknown block from rank %d\n", src);
		abort_job();
	}
	block_range((size_t)h.block, r->block, r->t->ntasks, &lo, &hi);
	int rc = h.rc;
	sbi_err e = { 0 };
	if (rc == SBI_OK && (rc = r->t->take(r->t->ud, lo, hi, buf + sizeof h, (size_t)bytes - sizeof h, &e)) != SBI_OK)
		record_failure(r, rc, lo, e.msg);
	else if (rc != SBI_OK)
		record_failure(r, rc, (size_t)h.failed, h.msg);
	else
		count_block(src, r->t->what, hi - lo, h.seconds);
	sbi_free(buf);
}

int
sbi__mpi_run_tasks(const sbi_runctx *ctx, const sbi_mpi_tasks *t, sbi_err *err)
{
	int threads = t->threads < 1 ? 1 : t->threads > MAX_TASK_THREADS ? MAX_TASK_THREADS : t->threads;
	task_run r = { .t = t, .block = t->block ? t->block : 1, .rc = SBI_OK };
	r.nblocks = (t->ntasks + r.block - 1) / r.block;
	atomic_init(&r.next, 0);
	atomic_init(&r.stop, 0);
	pthread_mutex_init(&r.mu, NULL);
	send_task_job(ctx, t, r.block);
	int size = g_mpi.size;
	size_t outstanding = 0;
	for (int k = 0; k < (t->prefetch > 0 ? t->prefetch : 1) * threads; k++)
		for (int rk = 1; rk < size; rk++) {
			size_t b = claim(&r);
			if (b >= r.nblocks)
				break;
			send_task(rk, (int64_t)b);
			outstanding++;
		}
	/* Rank 0's threads take the rest as they go (up to LOCAL_RANKS ranks). */
	pthread_t tid[MAX_TASK_THREADS];
	int started = 0;
	if (size <= LOCAL_RANKS || size == 1)
		for (; started < threads; started++)
			if (pthread_create(&tid[started], NULL, local_tasks, &r) != 0)
				break;
	if (started == 0 && size == 1)
		local_tasks(&r); /* no thread could start */
	while (outstanding > 0) {
		MPI_Status st;
		int flag = 0, naps = 0;
		while (!flag) {
			check(MPI_Iprobe(MPI_ANY_SOURCE, TAG_TASK_RESULT, MPI_COMM_WORLD, &flag, &st), "waiting for", -1);
			if (!flag)
				nap(&naps);
		}
		double t0 = sbi_now();
		take_task_result(&r, &st);
		outstanding--;
		size_t b = claim(&r);
		if (b < r.nblocks) {
			send_task(st.MPI_SOURCE, (int64_t)b);
			outstanding++;
		}
		g_mpi.serve_seconds += sbi_now() - t0;
		g_mpi.received++;
	}
	for (int rk = 1; rk < size; rk++)
		send_task(rk, -1);
	for (int i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&r.mu);
	if (r.rc != SBI_OK)
		return sbi_err_set(err, r.rc, "%s", r.err.msg);
	return SBI_OK;
}

/* ---- other ranks ---- */

int
sbi__mpi_job(size_t *dx, uint64_t *chunk)
{
	if (!g_mpi.on || !g_mpi.in_job || g_mpi.job.what != SBI_MPI_SIM)
		return 0;
	*dx = (size_t)g_mpi.job.dx;
	*chunk = g_mpi.job.chunk;
	return 1;
}

/* The result as one buffer: the header, then the theta and x rows (none
 * when c is NULL). A new buffer (caller frees) of *bytes, or NULL. */
static unsigned char *
pack_result(const result_msg *h, const sbi_mpi_chunk *c, size_t dtheta, size_t dx, size_t *bytes)
{
	size_t nt = c ? h->nrows * dtheta : 0, nx = c ? h->nrows * dx : 0;
	*bytes = sizeof *h + (nt + nx) * sizeof(double);
	unsigned char *buf = sbi_malloc(*bytes);
	if (buf == NULL)
		return NULL;
	memcpy(buf, h, sizeof *h);
	if (nt)
		memcpy(buf + sizeof *h, c->theta->data, nt * sizeof(double));
	if (nx)
		memcpy(buf + sizeof *h + nt * sizeof(double), c->x->data, nx * sizeof(double));
	return buf;
}

static void
send_result(const result_msg *h, const sbi_mpi_chunk *c, size_t dtheta, size_t dx)
{
	size_t bytes;
	unsigned char *buf = pack_result(h, c, dtheta, dx, &bytes);
	if (buf == NULL || bytes > (size_t)INT32_MAX) {
		fprintf(stderr, "sbirun: error: rank %d: a chunk's result is too large to send (lower chunk_size)\n",
		    g_mpi.rank);
		abort_job();
	}
	check(MPI_Send(buf, (int)bytes, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD), "sending a result to", 0);
	sbi_free(buf);
}

/* Receives the next chunk index from rank 0 (-1: the job ends). */
static int64_t
recv_task(void)
{
	int64_t task;
	MPI_Status st;
	wait_msg(0, TAG_CHUNK, &st);
	check(MPI_Recv(&task, 1, MPI_INT64_T, 0, TAG_CHUNK, MPI_COMM_WORLD, &st), "receiving from", 0);
	return task;
}

/* ---- other ranks: tasks ---- */

int
sbi__mpi_in_job(int what)
{
	return g_mpi.on && g_mpi.in_job && g_mpi.job.what == (uint64_t)what;
}

static void
send_task_result(const task_msg *h, const unsigned char *payload, size_t n)
{
	unsigned char *buf = sbi_malloc(sizeof *h + n);
	if (buf == NULL || sizeof *h + n > (size_t)INT32_MAX) {
		fprintf(stderr, "sbirun: error: rank %d: a result is too large to send\n", g_mpi.rank);
		abort_job();
	}
	memcpy(buf, h, sizeof *h);
	if (n)
		memcpy(buf + sizeof *h, payload, n);
	check(MPI_Send(buf, (int)(sizeof *h + n), MPI_BYTE, 0, TAG_TASK_RESULT, MPI_COMM_WORLD),
	    "sending a result to", 0);
	sbi_free(buf);
}

/* One block on this rank: run on a thread of its own. */
typedef struct task_block {
	const sbi_mpi_tasks *t;
	int64_t block;
	size_t lo, hi, bytes, failed;
	unsigned char *out; /* owned */
	int rc;
	double seconds;
	sbi_err err;
} task_block;

static void *
run_block(void *arg)
{
	task_block *b = arg;
	double t0 = sbi_now();
	b->rc = b->t->compute(b->t->ud, b->lo, b->hi, &b->out, &b->bytes, &b->failed, &b->err);
	b->seconds = sbi_now() - t0;
	return NULL;
}

/* Runs the k blocks at once (one thread each) and sends their results. */
static void
work_blocks(task_block *bs, size_t k)
{
	pthread_t tid[MAX_TASK_THREADS];
	size_t started = 0;
	for (size_t i = 1; i < k; i++)
		if (pthread_create(&tid[started], NULL, run_block, &bs[i]) == 0)
			started++;
		else
			run_block(&bs[i]);
	run_block(&bs[0]);
	for (size_t i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	for (size_t i = 0; i < k; i++) {
		task_msg h = { .block = bs[i].block, .rc = bs[i].rc, .failed = bs[i].failed, .seconds = bs[i].seconds };
		if (bs[i].rc != SBI_OK)
			snprintf(h.msg, sizeof h.msg, "%s", bs[i].err.msg);
		send_task_result(&h, bs[i].rc == SBI_OK ? bs[i].out : NULL, bs[i].rc == SBI_OK ? bs[i].bytes : 0);
		sbi_free(bs[i].out);
	}
}

int
sbi__mpi_serve_tasks(const sbi_mpi_tasks *t, sbi_err *err)
{
	const job_msg *m = &g_mpi.job;
	if (t->ntasks != m->ntasks)
		return sbi_err_set(err, SBI_EINVAL, "this rank has %zu tasks where rank 0 has %llu", t->ntasks,
		    (unsigned long long)m->ntasks);
	size_t threads = t->threads < 1 ? 1 : t->threads > MAX_TASK_THREADS ? MAX_TASK_THREADS : (size_t)t->threads;
	size_t block = m->block ? (size_t)m->block : 1, nblocks = (t->ntasks + block - 1) / block;
	task_block bs[MAX_TASK_THREADS];
	int end = 0;
	while (!end) {
		size_t k = 0;
		int64_t b = recv_task();
		if (b < 0)
			break;
		/* More blocks already queued join, up to --jobs. */
		for (int flag = 1;;) {
			if (b >= 0 && (size_t)b >= nblocks) {
				fprintf(stderr, "sbirun: error: rank %d: an unknown block from rank 0\n", g_mpi.rank);
				abort_job();
			}
			bs[k] = (task_block){ .t = t, .block = b };
			block_range((size_t)b, block, t->ntasks, &bs[k].lo, &bs[k].hi);
			k++;
			if (k == threads)
				break;
			MPI_Status st;
			check(MPI_Iprobe(0, TAG_CHUNK, MPI_COMM_WORLD, &flag, &st), "waiting for", 0);
			if (!flag)
				break;
			if ((b = recv_task()) < 0) {
				end = 1;
				break;
			}
		}
		work_blocks(bs, k);
	}
	g_mpi.job_done = 1;
	return SBI_OK;
}

/* Answers the job's chunks (or blocks) with an error: this rank cannot run it. */
static void
refuse_job(const char *why)
{
	for (;;) {
		int64_t task = recv_task();
		if (task < 0)
			return;
		if (g_mpi.job.what != SBI_MPI_SIM) {
			size_t lo, hi, block = g_mpi.job.block ? (size_t)g_mpi.job.block : 1;
			block_range((size_t)task, block, (size_t)g_mpi.job.ntasks, &lo, &hi);
			task_msg h = { .block = task, .rc = SBI_EINVAL, .failed = lo };
			snprintf(h.msg, sizeof h.msg, "rank %d cannot run this step: %s", g_mpi.rank, why);
			send_task_result(&h, NULL, 0);
			continue;
		}
		result_msg h = { .task = task, .rc = SBI_EINVAL };
		snprintf(h.msg, sizeof h.msg, "rank %d cannot run this step: %s", g_mpi.rank, why);
		send_result(&h, NULL, 0, 0);
	}
}

/* Computes one chunk in this process and sends its result. */
static void
work_one(const sbi_mpi_sim *sim, int64_t task)
{
	sbi_mpi_chunk c = { 0 };
	sbi_pool_slot slot = { 0 };
	double t = sbi_now();
	int rc = sim->compute(sim->ud, (size_t)task, &c, &slot);
	result_msg h = { .task = task, .rc = rc, .seconds = sbi_now() - t };
	if (rc == SBI_OK) {
		h.nrows = c.theta->nrow;
		memcpy(h.counts, c.counts, sizeof h.counts);
		memcpy(h.first, c.first, sizeof h.first);
	} else {
		h.current = slot.current;
		h.has_current = slot.busy;
		snprintf(h.msg, sizeof h.msg, "%s", slot.err.msg);
	}
	send_result(&h, rc == SBI_OK ? &c : NULL, sim->dtheta, sim->dx);
	sbi_mat_free(c.theta);
	sbi_mat_free(c.x);
}

/* --jobs on a rank: a batch of chunks runs on forked workers (sbi_pool_run),
 * each writing its packed result to a file of a private folder, which
 * this process then sends in order. */
typedef struct batch {
	const sbi_mpi_sim *sim;
	char dir[256];
} batch;

static void
batch_file(const batch *b, size_t task, char *path, size_t n)
{
	snprintf(path, n, "%s/%zu", b->dir, task);
}

static int
batch_task(void *ud, size_t task, sbi_pool_slot *slot)
{
	batch *b = ud;
	sbi_mpi_chunk c = { 0 };
	double t = sbi_now();
	int rc = b->sim->compute(b->sim->ud, task, &c, slot);
	if (rc == SBI_OK) {
		result_msg h = { .task = (int64_t)task, .rc = SBI_OK, .seconds = sbi_now() - t, .nrows = c.theta->nrow };
		memcpy(h.counts, c.counts, sizeof h.counts);
		memcpy(h.first, c.first, sizeof h.first);
		size_t bytes;
		unsigned char *buf = pack_result(&h, &c, b->sim->dtheta, b->sim->dx, &bytes);
		char path[300];
		batch_file(b, task, path, sizeof path);
		rc = buf ? sbi_fs_write_atomic(path, buf, bytes, &slot->err) : sbi_err_set(&slot->err, SBI_ENOMEM,
		    "out of memory");
		sbi_free(buf);
	}
	sbi_mat_free(c.theta);
	sbi_mat_free(c.x);
	return rc;
}

/* Sends the result of task, from its file, or the batch's error. */
static void
send_batch_result(const batch *b, size_t task, int rc, const sbi_pool_failure *fail, const sbi_err *err)
{
	char path[300];
	batch_file(b, task, path, sizeof path);
	char *data = NULL;
	size_t n = 0;
	sbi_err e = { 0 };
	if (sbi_fs_read_all(path, &data, &n, &e) == SBI_OK && n >= sizeof(result_msg) && n <= (size_t)INT32_MAX) {
		check(MPI_Send(data, (int)n, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD), "sending a result to", 0);
	} else {
		int failed = rc != SBI_OK && fail->task == task;
		result_msg h = { .task = (int64_t)task, .rc = failed ? rc : SBI_EINVAL,
			.current = failed ? fail->current : 0, .has_current = failed && fail->has_current };
		snprintf(h.msg, sizeof h.msg, "%s", rc != SBI_OK ? err->msg : e.msg);
		send_result(&h, NULL, 0, 0);
	}
	sbi_free(data);
	unlink(path);
}

static void
work_batch(const sbi_mpi_sim *sim, const int64_t *tasks, size_t k)
{
	batch b = { .sim = sim };
	const char *tmp = getenv("TMPDIR");
	snprintf(b.dir, sizeof b.dir, "%s/sbirun-rank.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	size_t *t = sbi_malloc(k * sizeof *t);
	if (t == NULL || mkdtemp(b.dir) == NULL) {
		sbi_free(t);
		for (size_t i = 0; i < k; i++)
			work_one(sim, tasks[i]); /* one at a time, then */
		return;
	}
	for (size_t i = 0; i < k; i++)
		t[i] = (size_t)tasks[i];
	sbi_pool_failure fail;
	sbi_err err = { 0 };
	int rc = sbi_pool_run(t, k, sim->jobs, batch_task, NULL, &b, &fail, &err);
	/* The failing chunk's result goes first: rank 0 reports the first error it gets. */
	for (size_t pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < k; i++)
			if ((rc != SBI_OK && fail.task == t[i]) == (pass == 0))
				send_batch_result(&b, t[i], rc, &fail, &err);
	rmdir(b.dir);
	sbi_free(t);
}

int
sbi__mpi_work(const sbi_mpi_sim *sim, sbi_err *err)
{
	int jobs = sim->jobs > 1 ? sim->jobs : 1, end = 0;
	int64_t *tasks = sbi_malloc((size_t)jobs * sizeof *tasks);
	if (tasks == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	while (!end) {
		size_t k = 0;
		int64_t task = recv_task();
		if (task < 0)
			break;
		tasks[k++] = task;
		/* More chunks already queued join the batch, up to --jobs. */
		for (int flag = 1; flag && k < (size_t)jobs;) {
			MPI_Status st;
			check(MPI_Iprobe(0, TAG_CHUNK, MPI_COMM_WORLD, &flag, &st), "waiting for", 0);
			if (flag && (task = recv_task()) < 0)
				end = 1, flag = 0;
			else if (flag)
				tasks[k++] = task;
		}
		if (k == 1)
			work_one(sim, tasks[0]);
		else
			work_batch(sim, tasks, k);
	}
	sbi_free(tasks);
	g_mpi.job_done = 1;
	return SBI_OK;
}

/* What a job's node runs with: simulations get empty inputs (and the
 * theta matrix rank 0 sent), tasks the input artifacts rank 0 sent. */
typedef struct job_inputs {
	sbi_mat *thetas;     /* handed to a Mat */
	sbi_artifact **arts; /* borrowed */
	size_t narts;
} job_inputs;

/* Calls node.run(node, inputs) for the job; its core.simulate serves the
 * chunks (core.diagnose_ranks or core.*_train_each the tasks). The
 * inputs of a simulation job are empty tables, except that the first is
 * { theta = the job's matrix } when rank 0 sent one.
 * [] -> [] */
static int
job_protected(lua_State *L)
{
	sbi_session *s = lua_touserdata(L, 1);
	job_inputs *in = lua_touserdata(L, 2);
	sbi_node *n = &s->g->nodes[g_mpi.job.node_id];
	sbi__push_node(L, n->id);                /* [.., node] */
	lua_getfield(L, -1, "run");
	lua_pushvalue(L, -2);                    /* [.., node, run, node] */
	lua_createtable(L, (int)n->ninputs, 0);  /* [.., node, run, node, inputs] */
	for (size_t i = 0; i < n->ninputs; i++) {
		if (i < in->narts) {
			sbi__push_artifact(L, in->arts[i]); /* takes its own reference */
			lua_seti(L, -2, (lua_Integer)i + 1);
			continue;
		}
		lua_newtable(L);
		if (i == 0 && in->thetas != NULL) {
			sbi_mat *thetas = in->thetas;
			in->thetas = NULL;
			sbi__push_mat(L, thetas); /* the Mat owns it now */
			lua_setfield(L, -2, "theta");
		}
		lua_seti(L, -2, (lua_Integer)i + 1);
	}
	lua_call(L, 2, 0);
	return 0;
}

/* Receives a task job's input artifacts (a new array of *n, caller frees
 * each and the array); NULL when they cannot be read. */
static sbi_artifact **
recv_inputs(size_t *n)
{
	unsigned char *buf = sbi_malloc(g_mpi.job.inputs ? (size_t)g_mpi.job.inputs : 1);
	if (buf == NULL) {
		fprintf(stderr, "sbirun: error: rank %d: out of memory\n", g_mpi.rank);
		abort_job();
	}
	recv_bytes(buf, (size_t)g_mpi.job.inputs, 0, TAG_INPUTS);
	sbi_artifact **arts = unpack_inputs(buf, (size_t)g_mpi.job.inputs, n);
	sbi_free(buf);
	return arts;
}

static void
free_inputs(sbi_artifact **arts, size_t n)
{
	for (size_t i = 0; arts && i < n; i++)
		sbi_artifact_free(arts[i]);
	sbi_free(arts);
}

static void
run_job(sbi_session *s)
{
	job_msg *m = &g_mpi.job;
	sbi_mat *thetas = NULL;
	job_inputs in = { 0 };
	int task_job = m->what != SBI_MPI_SIM;
	if (task_job)
		in.arts = recv_inputs(&in.narts);
	if (m->thetas_rows) {
		thetas = sbi_mat_alloc(m->thetas_rows, m->dtheta);
		if (thetas == NULL) {
			fprintf(stderr, "sbirun: error: rank %d: out of memory\n", g_mpi.rank);
			abort_job();
		}
		recv_doubles(thetas->data, m->thetas_rows * m->dtheta, 0, TAG_THETAS);
	}
	const char *why = NULL;
	if (s == NULL)
		why = "the recipe did not load on this rank (its error is printed above)";
	else if (m->node_id >= s->g->nnodes || memcmp(s->g->nodes[m->node_id].key.b, m->key, 32) != 0)
		why = "the recipe loaded differently on this rank (another file, --set value or sbirun binary)";
	else if (task_job && (in.arts == NULL || in.narts != s->g->nodes[m->node_id].ninputs))
		why = "the step's inputs from rank 0 could not be read";
	if (why) {
		sbi_mat_free(thetas);
		free_inputs(in.arts, in.narts);
		refuse_job(why);
		return;
	}
	in.thetas = thetas;
	lua_State *L = s->L;
	g_mpi.in_job = 1;
	g_mpi.job_done = 0;
	s->ctx.node = &s->g->nodes[m->node_id];
	lua_pushcfunction(L, job_protected);
	lua_pushlightuserdata(L, s);
	lua_pushlightuserdata(L, &in);
	int rc = sbi__pcall(L, 2, 0);
	sbi_mat_free(in.thetas); /* when the call failed before taking it */
	free_inputs(in.arts, in.narts);
	s->ctx.node = NULL;
	g_mpi.in_job = 0;
	if (rc != LUA_OK && !g_mpi.job_done) {
		char msg[800];
		snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "an error");
		refuse_job(msg);
	}
	if (rc != LUA_OK)
		lua_pop(L, 1);
	lua_gc(L, LUA_GCCOLLECT);
}

int
sbi__mpi_serve(sbi_session *s)
{
	for (;;) {
		MPI_Status st;
		wait_msg(0, MPI_ANY_TAG, &st);
		if (st.MPI_TAG == TAG_STOP) {
			check(MPI_Recv(NULL, 0, MPI_BYTE, 0, TAG_STOP, MPI_COMM_WORLD, &st), "receiving from", 0);
			return 0;
		}
		if (st.MPI_TAG != TAG_JOB) {
			fprintf(stderr, "sbirun: error: rank %d: unexpected message (tag %d) from rank 0\n", g_mpi.rank,
			    st.MPI_TAG);
			abort_job();
		}
		check(MPI_Recv(&g_mpi.job, (int)sizeof g_mpi.job, MPI_BYTE, 0, TAG_JOB, MPI_COMM_WORLD, &st),
		    "receiving a job from", 0);
		run_job(s);
	}
}

json_t *
sbi__mpi_json(void)
{
	if (!g_mpi.on || g_mpi.rank != 0)
		return NULL;
	json_t *per = json_array();
	for (int r = 0; r < g_mpi.size; r++)
		json_array_append_new(per, json_pack("{s:i, s:I, s:I, s:f, s:I, s:f, s:I, s:f}", "rank", r, "chunks",
		    (json_int_t)g_mpi.stats[r].chunks, "simulations", (json_int_t)g_mpi.stats[r].sims,
		    "seconds", g_mpi.stats[r].seconds, "test_points", (json_int_t)g_mpi.stats[r].test_points,
		    "test_point_seconds", g_mpi.stats[r].test_point_seconds, "models_trained",
		    (json_int_t)g_mpi.stats[r].models, "training_seconds", g_mpi.stats[r].training_seconds));
	return json_pack("{s:i, s:o, s:I, s:f, s:f}", "ranks", g_mpi.size, "per_rank", per, "results_received",
	    (json_int_t)g_mpi.received, "serve_seconds", g_mpi.serve_seconds, "message_seconds",
	    g_mpi.message_seconds);
}

#else /* no MPI: a single process */

int
sbi__mpi_init(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int
sbi__mpi_rank(void)
{
	return 0;
}

int
sbi__mpi_size(void)
{
	return 1;
}

void
sbi__mpi_finish(void)
{
}

int
sbi__mpi_serve(sbi_session *s)
{
	(void)s;
	return 0;
}

int
sbi__mpi_distributes(const sbi_runctx *ctx)
{
	(void)ctx;
	return 0;
}

int
sbi__mpi_run_chunks(const sbi_mpi_sim *sim, const size_t *tasks, size_t ntasks, sbi_pool_failure *fail,
    sbi_err *err)
{
	(void)sim;
	(void)tasks;
	(void)ntasks;
	(void)fail;
	return sbi_err_set(err, SBI_EINVAL, "this sbirun was built without MPI");
}

int
sbi__mpi_job(size_t *dx, uint64_t *chunk)
{
	(void)dx;
	(void)chunk;
	return 0;
}

int
sbi__mpi_work(const sbi_mpi_sim *sim, sbi_err *err)
{
	(void)sim;
	return sbi_err_set(err, SBI_EINVAL, "this sbirun was built without MPI");
}

int
sbi__mpi_run_tasks(const sbi_runctx *ctx, const sbi_mpi_tasks *t, sbi_err *err)
{
	(void)ctx;
	(void)t;
	return sbi_err_set(err, SBI_EINVAL, "this sbirun was built without MPI");
}

int
sbi__mpi_in_job(int what)
{
	(void)what;
	return 0;
}

int
sbi__mpi_serve_tasks(const sbi_mpi_tasks *t, sbi_err *err)
{
	(void)t;
	return sbi_err_set(err, SBI_EINVAL, "this sbirun was built without MPI");
}

json_t *
sbi__mpi_json(void)
{
	return NULL;
}

#endif

void
sbi__train_tasks(lua_State *L, sbi_mpi_tasks *t, void (*train_here)(void *ud, size_t threads))
{
	sbi_runctx *ctx = sbi__runctx(L);
	int jobs = ctx && ctx->jobs > 1 ? ctx->jobs : 1;
	sbi_err err = { 0 };
	t->threads = jobs;
	if (ctx && ctx->node && !ctx->in_simulator && sbi__mpi_in_job(t->what)) {
		if (sbi__mpi_serve_tasks(t, &err) != SBI_OK)
			luaL_error(L, "%s", err.msg);
		luaL_error(L, "(the MPI job ended)");
	}
	if (ctx && sbi__mpi_distributes(ctx)) {
		if (sbi__mpi_run_tasks(ctx, t, &err) != SBI_OK)
			luaL_error(L, "%s", err.msg);
		return;
	}
	train_here(t->ud, (size_t)jobs);
}
