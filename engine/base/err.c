/* One function records every engine error (see err.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sbi/err.h"

int
sbi_err_set(sbi_err *err, int code, const char *fmt, ...)
{
	if (err == NULL)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

void
sbi_err_clear(sbi_err *err)
{
	if (err == NULL)
		return;
	err->code = SBI_OK;
	err->msg[0] = '\0';
}

const char *
sbi_rc_name(int code)
{
	switch (code) {
	case SBI_OK: return "OK";
	case SBI_ENOMEM: return "ENOMEM";
	case SBI_EINVAL: return "EINVAL";
	case SBI_ECORRUPT: return "ECORRUPT";
	case SBI_EIO: return "EIO";
	case SBI_ENOTFOUND: return "ENOTFOUND";
	case SBI_ESIM: return "ESIM";
	case SBI_ECHILD: return "ECHILD";
	case SBI_EINTR: return "EINTR";
	}
	return "E?";
}

void
sbi__assert_fail(const char *cond, const char *file, int line)
{
	fprintf(stderr, "sbirun: internal error: assertion '%s' failed at %s:%d\n", cond, file, line);
	abort();
}
