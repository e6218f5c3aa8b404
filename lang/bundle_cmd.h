/* The bundle commands of sbirun: bundle, show, verify, unpack
 * (bundle_cmd.c over engine/bundle.c; docs/bundles.md). */
#ifndef SBI_BUNDLE_CMD_H
#define SBI_BUNDLE_CMD_H

#include "session.h"

/* Options of `sbirun bundle`. */
typedef struct sbi_bundle_cmd_opts {
	const char *output;      /* -o FILE (required) */
	const char *compression; /* "zstd" (NULL), "gzip", "xz" or "none" */
	int without_simulations; /* --without simulations */
} sbi_bundle_cmd_opts;

/* Each returns a process exit code (0, 1 on failure, 2 on bad usage). */
int sbi_bundle_cmd_create(sbi_session *s, const sbi_bundle_cmd_opts *o);
int sbi_bundle_cmd_show(const char *path);
int sbi_bundle_cmd_verify(const char *path);
int sbi_bundle_cmd_unpack(const char *path, const char *dir);
/* sbirun replay: unpacks path into a temporary folder, runs every step of
 * its recipe with the bundle's --set values and an empty cache (restricted
 * unless o->trust; o->jobs, o->quiet and o->out_dir are used), prints per
 * step whether the artifact is identical to the bundled one, and removes
 * the folder. 0 only when every bundled artifact was reproduced. */
int sbi_bundle_cmd_replay(const char *path, const sbi_session_opts *o);

#endif
