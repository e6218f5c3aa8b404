/* The MPI backend (lang/l_mpi.c; docs/cluster.md): under `mpirun -n N
 * sbirun run RECIPE` rank 0 runs the graph and owns the cache, the other
 * ranks load the same recipe and run what rank 0 hands out: chunks of
 * core.simulate, test points of core.diagnose_ranks and the networks of
 * core.flow_train_each and core.classifier_train_each (ensemble members).
 * Built when meson finds MPI (option `mpi`); otherwise every function
 * here is a stub that reports a single process, so callers need
 * no #ifdef. */
#ifndef SBI_LMPI_H
#define SBI_LMPI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sbi/err.h"
#include "sbi/mat.h"
#include "sbi/pool.h"

struct sbi_session;
struct sbi_runctx;

/* One chunk's results, as core.simulate stores them (l_sim.c) and as a
 * rank sends them to rank 0. */
typedef struct sbi_mpi_chunk {
	sbi_mat *theta, *x; /* owned until stored or sent */
	double counts[4];   /* kept, errors, NaN, wrong length */
	char first[1024];   /* first failure message */
} sbi_mpi_chunk;

/* What core.simulate gives the backend for one distributed call. */
typedef struct sbi_mpi_sim {
	void *ud;
	const char *label; /* the step's (borrowed) */
	size_t node_id;
	const unsigned char *node_key; /* 32 bytes (borrowed) */
	uint64_t n, chunk;
	size_t dtheta, dx;
	const sbi_mat *thetas; /* spec.thetas or NULL (borrowed) */
	int jobs;              /* --jobs: chunks a rank runs at once (forked workers) */
	/* Rank 0: runs chunks itself (on its --jobs workers) and stores them; like sbi_pool_run. */
	int (*run_local)(void *ud, const size_t *tasks, size_t ntasks, sbi_pool_failure *fail, sbi_err *err);
	/* Rank 0: stores a chunk another rank computed (takes c's matrices). */
	int (*store)(void *ud, size_t task, sbi_mpi_chunk *c, sbi_err *err);
	/* Other ranks: computes chunk `task` into c (caller frees c's matrices). */
	int (*compute)(void *ud, size_t task, sbi_mpi_chunk *c, sbi_pool_slot *slot);
	void (*tick)(void *ud, uint64_t done); /* rank 0: simulations finished in this call */
} sbi_mpi_sim;

/* What one distributed call hands out (the job's kind). */
enum { SBI_MPI_SIM, SBI_MPI_DIAG, SBI_MPI_TRAIN };

/* What core.diagnose_ranks and core.*_train_each give the backend to
 * spread tasks 0..ntasks-1 (test points, networks) over the ranks, `block`
 * at a time. Each task's result depends only on the call's inputs and the
 * task's index, so who ran it does not change a byte. */
typedef struct sbi_mpi_tasks {
	void *ud;
	int what;             /* SBI_MPI_DIAG or SBI_MPI_TRAIN */
	size_t ntasks, block;
	int prefetch;         /* blocks outstanding per rank and thread */
	int threads;          /* --jobs: blocks a rank runs at once (threads) */
	/* Any rank, any thread: runs tasks [lo, hi) into a new buffer *out
	 * (caller frees with sbi_free) of *bytes; on failure the task that
	 * failed in *failed and its message in err. */
	int (*compute)(void *ud, size_t lo, size_t hi, unsigned char **out, size_t *bytes, size_t *failed,
	    sbi_err *err);
	/* Rank 0, any thread, never twice for one block: takes the result of [lo, hi). */
	int (*take)(void *ud, size_t lo, size_t hi, const unsigned char *buf, size_t bytes, sbi_err *err);
} sbi_mpi_tasks;

/* Process level (main.c). Starts MPI when the process was launched by an
 * MPI launcher (mpirun, srun; found from its environment), else does
 * nothing. 0, or 1 after printing why MPI could not start. */
int sbi__mpi_init(int *argc, char ***argv);
int sbi__mpi_rank(void); /* 0 without MPI */
int sbi__mpi_size(void); /* 1 without MPI */
/* Rank 0: tells the other ranks to stop; every rank: MPI_Finalize. */
void sbi__mpi_finish(void);
/* Ranks other than 0: serve rank 0's chunks for session s (NULL when the
 * recipe failed to load: every job is then refused) until told to stop.
 * Returns the process exit code. */
int sbi__mpi_serve(struct sbi_session *s);

/* core.simulate on rank 0: 1 when this call's chunks go to the ranks (under
 * MPI, even with one rank, so run.json counts its work; the node's first
 * simulate call; not inside a simulator). */
int sbi__mpi_distributes(const struct sbi_runctx *ctx); /* marks the node when 1 */
/* Rank 0: runs tasks[0..ntasks-1] over all ranks; like sbi_pool_run. */
int sbi__mpi_run_chunks(const sbi_mpi_sim *sim, const size_t *tasks, size_t ntasks, sbi_pool_failure *fail,
    sbi_err *err);
/* Other ranks, inside a job: the job's data dimension and chunk size
 * (core.simulate takes them from rank 0), or 0 when no job runs. */
int sbi__mpi_job(size_t *dx, uint64_t *chunk);
/* Other ranks, inside a job: computes the chunks rank 0 sends until the
 * job ends (SBI_OK; core.simulate then unwinds the node's run function
 * with an error that sbi__mpi_serve expects), or an MPI error. */
int sbi__mpi_work(const sbi_mpi_sim *sim, sbi_err *err);

/* Rank 0: runs the tasks over all ranks (the others get the job with the
 * node's input artifacts, so its run function builds the same call) and
 * this rank's --jobs threads. SBI_OK, or the failure of the lowest failing
 * task (in err). */
int sbi__mpi_run_tasks(const struct sbi_runctx *ctx, const sbi_mpi_tasks *t, sbi_err *err);
/* Other ranks: 1 inside a job of kind `what` (core.diagnose_ranks,
 * core.*_train_each then serve it with sbi__mpi_serve_tasks), else 0. */
int sbi__mpi_in_job(int what);
/* Other ranks, inside a job: computes the blocks rank 0 sends until the
 * job ends (SBI_OK; the caller then unwinds the node's run function with an
 * error, as core.simulate does), or an error. */
int sbi__mpi_serve_tasks(const sbi_mpi_tasks *t, sbi_err *err);

/* The one dispatch of core.flow_train_each and core.classifier_train_each:
 * sets t->threads to --jobs; a rank other than 0 inside an MPI job serves
 * rank 0's tasks and then unwinds the step (raises); rank 0 of a
 * distributing run hands them out over the ranks; otherwise
 * train_here(t->ud, threads) trains them on this process's threads. Raises
 * the first error. (l_mpi.c) */
struct lua_State;
void sbi__train_tasks(struct lua_State *L, sbi_mpi_tasks *t, void (*train_here)(void *ud, size_t threads));

/* run.json's "mpi" object (new reference), or NULL without MPI. */
json_t *sbi__mpi_json(void);

#endif
