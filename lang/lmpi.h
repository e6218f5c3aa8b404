/* The MPI backend (lang/l_mpi.c; docs/cluster.md): under `mpirun -n N
 * sbirun run RECIPE` rank 0 runs the graph and owns the cache, the other
 * ranks load the same recipe and run chunks of core.simulate that rank 0
 * hands out. Built when meson finds MPI (option `mpi`); otherwise every
 * function here is a stub that reports a single process, so callers need
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

/* run.json's "mpi" object (new reference), or NULL without MPI. */
json_t *sbi__mpi_json(void);

#endif
