/* The bundle commands of sbirun: bundle, show, verify, unpack
 * (bundle_cmd.c over engine/store/bundle.c; docs/bundles.md). */
#ifndef SBI_BUNDLE_CMD_H
#define SBI_BUNDLE_CMD_H

#include "sbi/bundle.h"
#include "session.h"

/* Options of `sbirun bundle`. */
typedef struct sbi_bundle_cmd_opts {
	const char *output;      /* -o FILE (required) */
	const char *compression; /* "zstd" (NULL), "gzip", "xz" or "none" */
	int without_simulations; /* --without simulations */
	const char **includes;   /* --include PATH: files outside the recipe's folder that may be bundled */
	size_t nincludes;
	sbi_bundle_limits lim;   /* --max-manifest-size, --max-unpacked-size (replay) */
} sbi_bundle_cmd_opts;

/* Each returns a process exit code (0, 1 on failure, 2 on bad usage).
 * lim may be NULL (the defaults). */
int sbi_bundle_cmd_create(sbi_session *s, const sbi_bundle_cmd_opts *o);
int sbi_bundle_cmd_show(const char *path, const sbi_bundle_limits *lim);
int sbi_bundle_cmd_verify(const char *path, const sbi_bundle_limits *lim);
int sbi_bundle_cmd_unpack(const char *path, const char *dir, const sbi_bundle_limits *lim);
/* sbirun replay: unpacks path into a temporary folder, runs every step of
 * its recipe with the bundle's --set values and an empty cache (restricted
 * unless o->trust; o->jobs, o->quiet and o->out_dir are used), prints per
 * step whether the artifact is identical to the bundled one, and removes
 * the folder, also when interrupted (the work runs in a child process).
 * 0 only when the bundle has artifacts and every one was reproduced. */
int sbi_bundle_cmd_replay(const char *path, const sbi_session_opts *o, const sbi_bundle_limits *lim);

#endif
