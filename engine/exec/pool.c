/* Forked worker pool (see pool.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <time.h>
#include <unistd.h>

#include "sbi/pool.h"

#define TICK_NS 100000000L

static int
run_inline(const size_t *tasks, size_t ntasks, sbi_pool_task_fn fn, void *ud,
    sbi_pool_failure *fail, sbi_err *err)
{
	sbi_pool_slot slot;
	for (size_t i = 0; i < ntasks; i++) {
		memset(&slot, 0, sizeof slot);
		int rc = fn(ud, tasks[i], &slot);
		if (rc != SBI_OK) {
			*fail = (sbi_pool_failure){ tasks[i], slot.current, slot.busy, 0 };
			return sbi_err_set(err, rc, "%s", slot.err.msg);
		}
	}
	return SBI_OK;
}

typedef struct worker {
	pid_t pid; /* 0 when idle */
	size_t task;
} worker;

/* In a new worker: dies with the parent, so a worker stuck in a simulator
 * does not outlive a killed run. The getppid() check closes the race of a
 * parent that died before prctl took effect. */
static void
die_with_parent(pid_t parent)
{
#ifdef __linux__
	prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
	if (getppid() != parent)
		_exit(1);
}

static pid_t
spawn(sbi_pool_slot *slot, size_t task, sbi_pool_task_fn fn, void *ud)
{
	memset(slot, 0, sizeof *slot);
	fflush(NULL); /* so the child does not flush the parent's buffers again */
	pid_t parent = getpid(), pid = fork();
	if (pid == 0) {
		die_with_parent(parent);
		int rc = fn(ud, task, slot);
		_exit(rc == SBI_OK ? 0 : 1);
	}
	return pid;
}

/* Reaps one child; returns its index in w or -1 when none exited. */
static int
reap(worker *w, int njobs, int block, int *status)
{
	pid_t pid = waitpid(-1, status, block ? 0 : WNOHANG);
	if (pid <= 0)
		return -1;
	for (int i = 0; i < njobs; i++)
		if (w[i].pid == pid)
			return i;
	return -1;
}

static void
sleep_tick(void)
{
	struct timespec ts = { 0, TICK_NS };
	nanosleep(&ts, NULL);
}

static int
record_exit(sbi_pool_slot *s, const worker *w, int status, sbi_pool_failure *fail, sbi_err *err)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return SBI_OK;
	*fail = (sbi_pool_failure){ w->task, s->current, s->busy, 0 };
	if (WIFSIGNALED(status)) {
		fail->signal = WTERMSIG(status);
		return sbi_err_set(err, SBI_ECHILD, "worker process for task %zu was killed by signal %d (%s)",
		    w->task, fail->signal, strsignal(fail->signal));
	}
	if (s->err.code == SBI_OK)
		return sbi_err_set(err, SBI_ECHILD, "worker process for task %zu exited with status %d",
		    w->task, WEXITSTATUS(status));
	return sbi_err_set(err, s->err.code, "%s", s->err.msg);
}

static int
run_forked(const size_t *tasks, size_t ntasks, int njobs, sbi_pool_task_fn fn, sbi_pool_tick_fn tick,
    void *ud, sbi_pool_slot *slots, sbi_pool_failure *fail, sbi_err *err)
{
	worker w[256] = { 0 };
	size_t next = 0;
	uint64_t finished = 0; /* items of tasks that completed */
	int running = 0, rc = SBI_OK;
	while ((rc == SBI_OK && next < ntasks) || running > 0) {
		for (int i = 0; rc == SBI_OK && next < ntasks && i < njobs; i++) {
			if (w[i].pid != 0)
				continue;
			w[i].task = tasks[next];
			if ((w[i].pid = spawn(&slots[i], tasks[next], fn, ud)) < 0) {
				w[i].pid = 0;
				rc = sbi_err_set(err, SBI_ECHILD, "cannot start a worker: %s", strerror(errno));
				break;
			}
			next++;
			running++;
		}
		int status, i = reap(w, njobs, 0, &status);
		if (i < 0) {
			if (tick) {
				uint64_t done = finished;
				for (int j = 0; j < njobs; j++)
					done += w[j].pid ? slots[j].done : 0;
				tick(ud, done);
			}
			sleep_tick();
			continue;
		}
		if (rc == SBI_OK)
			rc = record_exit(&slots[i], &w[i], status, fail, err);
		finished += slots[i].done;
		w[i].pid = 0;
		running--;
	}
	return rc;
}

int
sbi_pool_run(const size_t *tasks, size_t ntasks, int njobs, sbi_pool_task_fn fn,
    sbi_pool_tick_fn tick, void *ud, sbi_pool_failure *fail, sbi_err *err)
{
	memset(fail, 0, sizeof *fail);
	if (njobs <= 1 || ntasks <= 1)
		return run_inline(tasks, ntasks, fn, ud, fail, err);
	if (njobs > 256)
		njobs = 256;
	size_t bytes = (size_t)njobs * sizeof(sbi_pool_slot);
	sbi_pool_slot *slots = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED)
		return sbi_err_set(err, SBI_ENOMEM, "cannot map worker slots: %s", strerror(errno));
	int rc = run_forked(tasks, ntasks, njobs, fn, tick, ud, slots, fail, err);
	munmap(slots, bytes);
	return rc;
}
