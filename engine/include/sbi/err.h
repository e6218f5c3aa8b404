/* Error codes and the error record every engine handle carries. */
#ifndef SBI_ERR_H
#define SBI_ERR_H

#include <stddef.h>

/* Return codes of engine functions; 0 is success, negatives are failures. */
enum sbi_rc {
	SBI_OK = 0,
	SBI_ENOMEM = -1,   /* allocation failed */
	SBI_EINVAL = -2,   /* bad argument or bad input data */
	SBI_ECORRUPT = -3, /* stored data failed a checksum or format check */
	SBI_EIO = -4,      /* the operating system refused a file operation */
	SBI_ENOTFOUND = -5,/* no such entry (a cache miss, a missing file) */
	SBI_ESIM = -6,     /* a simulation failed under on_failure = "fail" */
	SBI_ECHILD = -7,   /* a worker process died */
	SBI_EINTR = -8,    /* interrupted by a signal or a callback */
};

#define SBI_ERR_MSG_MAX 1024

/* An error record: a code and a human-readable message. */
typedef struct sbi_err {
	int code;
	char msg[SBI_ERR_MSG_MAX];
} sbi_err;

/* Records code and a printf-style message in err (NULL is allowed) and
 * returns code. Every engine error passes through here, so a breakpoint on
 * this function sees all of them. */
int sbi_err_set(sbi_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resets err to SBI_OK with an empty message. */
void sbi_err_clear(sbi_err *err);

/* A short name for a return code ("ENOMEM", ...). */
const char *sbi_rc_name(int code);

/* Aborts with file and line when cond is false, also in release builds. */
#define SBI_ASSERT(cond) \
	((cond) ? (void)0 : sbi__assert_fail(#cond, __FILE__, __LINE__))
_Noreturn void sbi__assert_fail(const char *cond, const char *file, int line);

#endif
