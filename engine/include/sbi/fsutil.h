/* File-system helpers: directories, whole-file reads and atomic writes. */
#ifndef SBI_FSUTIL_H
#define SBI_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "sbi/err.h"

/* Creates path and its missing parents (like mkdir -p). */
int sbi_fs_mkdirs(const char *path, sbi_err *err);

/* Opens path for reading ("rb") if it is a regular file. Anything else is
 * refused without blocking (a FIFO would hang, /dev/zero never ends):
 * SBI_EINVAL "... is not a regular file"; SBI_ENOTFOUND when missing. */
int sbi_fs_open_regular(const char *path, FILE **f, sbi_err *err);

/* Reads a whole regular file (sbi_fs_open_regular) into a NUL-terminated buffer the caller frees with
 * sbi_free; *n excludes the NUL. SBI_ENOTFOUND when it does not exist. */
int sbi_fs_read_all(const char *path, char **data, size_t *n, sbi_err *err);

/* Removes path and everything below it, not following links (rm -rf);
 * best effort: what cannot be removed stays. */
void sbi_fs_remove_tree(const char *path);

/* 1 when path exists (any type). */
int sbi_fs_exists(const char *path);

/* 1 when path is dir or below it, by the strings (give real paths to ask
 * about folders on disk): "/a/b" is within "/a" and "/", not within "/ab". */
int sbi_fs_within(const char *path, const char *dir);

/* An atomic writer: data goes to a temporary file in the destination's
 * directory and appears under its final name only at commit, after fsync,
 * so readers never see a partial file, even after a SIGKILL or power loss. */
typedef struct sbi_awriter {
	FILE *f;
	char *tmp; /* owned */
	int sync;  /* 1 (the default): fsync the file and its directory at commit */
} sbi_awriter;

/* Opens a temporary file in directory dir. Set w->sync = 0 before commit for
 * data that is verified on read and cheap to recompute: rename alone already
 * keeps readers from seeing a partial file after a process crash; fsync adds
 * durability across power loss. */
int sbi_awriter_open(sbi_awriter *w, const char *dir, sbi_err *err);
int sbi_awriter_write(sbi_awriter *w, const void *p, size_t n, sbi_err *err);
/* Flushes, syncs and renames the file to path; the writer is closed either way. */
int sbi_awriter_commit(sbi_awriter *w, const char *path, sbi_err *err);
/* Discards the temporary file. Safe after commit and on a zeroed writer. */
void sbi_awriter_abort(sbi_awriter *w);

/* Writes a whole buffer atomically to path. */
int sbi_fs_write_atomic(const char *path, const void *p, size_t n, sbi_err *err);

/* A newly allocated "a/b" (caller frees with sbi_free); NULL when out of memory. */
char *sbi_path_join(const char *a, const char *b);

#endif
