/* A pool of worker processes for independent tasks (chunks of simulations).
 *
 * With njobs > 1 (and more than one task) min(njobs, ntasks) workers are
 * forked, once per call: they inherit the parent's memory (including its
 * Lua state) copy-on-write, so they need no setup and cannot corrupt each
 * other or the parent. Each is then fed task numbers over its own socket
 * and answers each with the task's return code; the parent blocks in
 * poll(), so a worker gets its next task as soon as it has answered. A
 * task publishes its results itself (into the cache) before returning. A
 * worker that dies (segfault, OOM kill) is reported with the task and item
 * it was working on; the tasks already finished stay finished. With
 * njobs == 1 tasks run in-process, in order. */
#ifndef SBI_POOL_H
#define SBI_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "sbi/err.h"

/* Shared between a worker and the parent (mmap'ed when forked). */
typedef struct sbi_pool_slot {
	volatile uint64_t done;    /* items finished in the current task */
	volatile uint64_t current; /* item being worked on */
	volatile int busy;         /* 1 while current is meaningful */
	sbi_err err;               /* set by a failing task */
} sbi_pool_slot;

/* Runs task number `task`, updating slot->done/current as it goes. */
typedef int (*sbi_pool_task_fn)(void *ud, size_t task, sbi_pool_slot *slot);
/* Reports progress in forked mode: items finished so far in this call, in
 * finished and running tasks (may be NULL; in-process tasks report their own). */
typedef void (*sbi_pool_tick_fn)(void *ud, uint64_t running_done);

/* What went wrong when sbi_pool_run fails. */
typedef struct sbi_pool_failure {
	size_t task;      /* the failing task */
	uint64_t current; /* the item it was on (valid when has_current) */
	int has_current;
	int signal;       /* the signal that killed the worker, or 0 */
} sbi_pool_failure;

/* Runs tasks[0..ntasks-1] (task numbers, in order of dispatch) on njobs
 * workers. Stops at the first failure, lets running workers finish their
 * current task, and returns its code with err and *fail set. */
int sbi_pool_run(const size_t *tasks, size_t ntasks, int njobs, sbi_pool_task_fn fn,
    sbi_pool_tick_fn tick, void *ud, sbi_pool_failure *fail, sbi_err *err);

#endif
