/* Training jobs: what core.flow_train[_each] and core.classifier_train[_each]
 * share. Each kind (l_flow.c, l_classifier.c) reads a job from a Lua spec
 * and trains it without touching Lua; this file boxes the jobs, runs them
 * on --jobs threads or over the MPI ranks, and pushes the results. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "lmpi.h"
#include "lnn.h"
#include "sbi/alloc.h"

#define MAX_THREADS 64
#define MAX_JOBS 64

/* The jobs in a box, which frees their results when collected or closed,
 * so an error at any point leaks nothing. */
typedef struct job_box {
	const l_train_kind *k;
	size_t n;
	_Alignas(max_align_t) unsigned char job[]; /* n jobs of k->size bytes */
} job_box;

static l_train_job *
job_at(job_box *b, size_t i)
{
	return (l_train_job *)(void *)(b->job + i * b->k->size);
}

/* __gc and __close of the box. [box] -> [box] */
static int
box_free(lua_State *L)
{
	job_box *b = lua_touserdata(L, 1);
	for (size_t i = 0; i < b->n; i++)
		sbi__trained_free(&job_at(b, i)->out);
	return 0;
}

/* n zeroed jobs of kind k. [..] -> [.., box] */
static job_box *
push_box(lua_State *L, const l_train_kind *k, size_t n)
{
	job_box *b = sbi__push_box(L, sizeof *b + n * k->size, "sbi.TrainJobs", box_free);
	b->k = k, b->n = n;
	return b;
}

/* ---- on this process's threads ---- */

typedef struct job_queue {
	job_box *b;
	atomic_size_t next;
} job_queue;

static void *
queue_worker(void *arg)
{
	job_queue *q = arg;
	for (size_t i; (i = atomic_fetch_add(&q->next, 1)) < q->b->n;)
		q->b->k->run(job_at(q->b, i));
	return NULL;
}

/* Runs the jobs on up to `threads` threads (this one included); a thread
 * that cannot be started leaves its share to the others. */
static void
run_here(void *ud, size_t threads)
{
	job_queue q = { .b = ud };
	atomic_init(&q.next, 0);
	pthread_t tid[MAX_THREADS];
	size_t started = 0;
	threads = threads < q.b->n ? threads : q.b->n;
	threads = threads < MAX_THREADS ? threads : MAX_THREADS;
	for (size_t i = 1; i < threads; i++)
		if (pthread_create(&tid[started], NULL, queue_worker, &q) == 0)
			started++;
	queue_worker(&q);
	for (size_t i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
}

/* ---- over the MPI ranks (lang/l_mpi.c): one job a task ---- */

/* The packed form of a result: the report's sizes and numbers, the
 * model's length, the per-epoch losses, then the model (host order: MPI
 * ranks run one binary). */
typedef struct packed_head {
	uint64_t epochs, best_epoch, steps, ntrain, nval, len;
	double best_val_loss, seconds;
} packed_head;

/* tr packed into a new buffer (caller frees with sbi_free) of *bytes, or
 * NULL when out of memory. */
static unsigned char *
trained_pack(const l_trained *tr, size_t *bytes)
{
	packed_head h = { tr->rep.epochs, tr->rep.best_epoch, tr->rep.steps, tr->rep.ntrain, tr->rep.nval, tr->len,
		tr->rep.best_val_loss, tr->rep.seconds };
	size_t losses = tr->rep.epochs * sizeof(double);
	*bytes = sizeof h + 2 * losses + tr->len;
	unsigned char *p = sbi_malloc(*bytes);
	if (p == NULL)
		return NULL;
	memcpy(p, &h, sizeof h);
	if (losses) {
		memcpy(p + sizeof h, tr->rep.train_loss, losses);
		memcpy(p + sizeof h + losses, tr->rep.val_loss, losses);
	}
	memcpy(p + sizeof h + 2 * losses, tr->blob, tr->len);
	return p;
}

/* The packed p back into an empty tr; SBI_EINVAL when malformed. */
static int
trained_unpack(const unsigned char *p, size_t bytes, l_trained *tr)
{
	packed_head h;
	if (bytes < sizeof h)
		return SBI_EINVAL;
	memcpy(&h, p, sizeof h);
	if (h.epochs > bytes / sizeof(double) || h.len > bytes ||
	    bytes != sizeof h + 2 * h.epochs * sizeof(double) + h.len)
		return SBI_EINVAL;
	size_t losses = (size_t)h.epochs * sizeof(double);
	memset(tr, 0, sizeof *tr);
	tr->rep = (sbi_train_report){ .epochs = (size_t)h.epochs, .best_epoch = (size_t)h.best_epoch,
		.steps = (size_t)h.steps, .ntrain = (size_t)h.ntrain, .nval = (size_t)h.nval,
		.best_val_loss = h.best_val_loss, .seconds = h.seconds };
	tr->rep.train_loss = sbi_malloc(losses + sizeof(double));
	tr->rep.val_loss = sbi_malloc(losses + sizeof(double));
	tr->blob = sbi_malloc(h.len ? (size_t)h.len : 1);
	if (tr->rep.train_loss == NULL || tr->rep.val_loss == NULL || tr->blob == NULL) {
		sbi__trained_free(tr);
		return SBI_ENOMEM;
	}
	memcpy(tr->rep.train_loss, p + sizeof h, losses);
	memcpy(tr->rep.val_loss, p + sizeof h + losses, losses);
	memcpy(tr->blob, p + sizeof h + 2 * losses, (size_t)h.len);
	tr->len = (size_t)h.len;
	return SBI_OK;
}

/* Another rank: trains job lo and packs its result. */
static int
task_compute(void *ud, size_t lo, size_t hi, unsigned char **out, size_t *bytes, size_t *failed, sbi_err *err)
{
	job_box *b = ud;
	l_train_job *j = job_at(b, lo);
	(void)hi; /* blocks of one */
	*failed = lo;
	b->k->run(j);
	if (j->rc != SBI_OK) {
		*err = j->err;
		return j->rc;
	}
	*out = trained_pack(&j->out, bytes);
	sbi__trained_free(&j->out);
	return *out ? SBI_OK : sbi_err_set(err, SBI_ENOMEM, "out of memory");
}

/* Rank 0: job lo's result from another rank. */
static int
task_take(void *ud, size_t lo, size_t hi, const unsigned char *buf, size_t bytes, sbi_err *err)
{
	job_box *b = ud;
	l_train_job *j = job_at(b, lo);
	(void)hi;
	sbi__trained_free(&j->out);
	int rc = trained_unpack(buf, bytes, &j->out);
	return rc == SBI_OK ? SBI_OK : sbi_err_set(err, rc, "%s %zu: a malformed result from an MPI rank",
	    b->k->name, lo + 1);
}

/* ---- the Lua functions ---- */

int
sbi__train_one(lua_State *L, const l_train_kind *k)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	l_train_job *j = job_at(push_box(L, k, 1), 0);
	k->read(L, 1, j);
	sbi__blas_threads();
	k->run(j);
	if (j->rc != SBI_OK)
		return luaL_error(L, "%s", j->err.msg);
	sbi__push_trained(L, &j->out);
	return 2;
}

/* Reads the specs at index 1 into a new box. [specs] -> [specs, box, values read] */
static job_box *
read_specs(lua_State *L, const l_train_kind *k)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 1);
	luaL_argcheck(L, n >= 1 && n <= MAX_JOBS, 1,
	    lua_pushfstring(L, "expected 1 to %d %s specifications", MAX_JOBS, k->name));
	job_box *b = push_box(L, k, (size_t)n);
	for (lua_Integer i = 0; i < n; i++) {
		luaL_checkstack(L, 2, "reading specifications");
		if (lua_geti(L, 1, i + 1) != LUA_TTABLE)
			luaL_argerror(L, 1, lua_pushfstring(L, "element %I must be a table, got %s", i + 1,
			    luaL_typename(L, -1)));
		k->read(L, lua_gettop(L), job_at(b, (size_t)i)); /* leaves the values it keeps on the stack */
	}
	return b;
}

int
sbi__train_each(lua_State *L, const l_train_kind *k)
{
	job_box *b = read_specs(L, k);
	sbi__blas_threads();
	sbi_mpi_tasks t = { .ud = b, .what = SBI_MPI_TRAIN, .ntasks = b->n, .block = 1, .prefetch = 1,
		.compute = task_compute, .take = task_take };
	sbi__train_tasks(L, &t, run_here);
	for (size_t i = 0; i < b->n; i++) /* the first failure; the box frees every result */
		if (job_at(b, i)->rc != SBI_OK)
			return luaL_error(L, "%s", job_at(b, i)->err.msg);
	lua_createtable(L, (int)b->n, 0);                 /* [.., list] */
	for (size_t i = 0; i < b->n; i++) {
		lua_createtable(L, 0, 2);                 /* [.., list, e] */
		sbi__push_trained(L, &job_at(b, i)->out); /* [.., list, e, model, report] */
		lua_setfield(L, -3, "report");
		lua_setfield(L, -2, "model");             /* [.., list, e] */
		lua_rawseti(L, -2, (lua_Integer)i + 1);   /* [.., list] */
	}
	return 1;
}
