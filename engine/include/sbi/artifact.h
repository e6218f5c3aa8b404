/* Artifacts: what a graph node produces, a list of named fields.
 *
 * On-disk format (version 2), all integers little-endian:
 *
 *   magic    8 bytes  "SBIART02"
 *   key      32 bytes the cache key the artifact was stored under
 *   nfields  u32
 *   field    repeated nfields times, sorted by name (bytewise):
 *     type     u32    1 = matrix, 2 = string, 3 = number, 4 = string list
 *     namelen  u32, then the name bytes (no NUL)
 *     matrix:  u64 nrow, u64 ncol, nrow*ncol IEEE-754 doubles, row-major
 *     string:  u64 len, bytes
 *     number:  one double
 *     strings: u64 count, then per string u64 len and bytes
 *   trailer  32 bytes BLAKE2b-256 of every preceding byte
 *
 * The trailer is the artifact's content hash and its name in the cache;
 * a reader recomputes it, so a flipped bit or a truncation is detected.
 * The key binds the artifact to the step (or chunk) that produced it, so a
 * ref naming another valid artifact is detected too. Version 1 ("SBIART01")
 * had no key; such files are treated as missing. */
#ifndef SBI_ARTIFACT_H
#define SBI_ARTIFACT_H

#include <stddef.h>

#include "sbi/err.h"
#include "sbi/hash.h"
#include "sbi/mat.h"

enum sbi_field_type {
	SBI_FIELD_MAT = 1,
	SBI_FIELD_STR = 2,
	SBI_FIELD_NUM = 3,
	SBI_FIELD_STRS = 4,
};

typedef struct sbi_field {
	char *name;     /* owned */
	int type;       /* enum sbi_field_type */
	sbi_mat *mat;   /* SBI_FIELD_MAT, owned */
	char *str;      /* SBI_FIELD_STR, owned */
	size_t len;     /* SBI_FIELD_STR length; SBI_FIELD_STRS count */
	double num;     /* SBI_FIELD_NUM */
	char **strs;    /* SBI_FIELD_STRS, owned with each string (NUL-terminated too) */
	size_t *lens;   /* SBI_FIELD_STRS, owned: each string's length (a string may hold NULs) */
} sbi_field;

typedef struct sbi_artifact {
	size_t nfields;
	sbi_field *fields; /* owned */
	size_t refs;       /* holders; sbi_artifact_free drops one */
	sbi_key key;       /* the key it was stored under, set by sbi_artifact_load */
} sbi_artifact;

/* An empty artifact with one reference; NULL when out of memory. */
sbi_artifact *sbi_artifact_alloc(void);
/* Adds a reference (e.g. a Lua view of its matrices) and returns a; every
 * reference is dropped with sbi_artifact_free. Not thread-safe. */
sbi_artifact *sbi_artifact_retain(sbi_artifact *a);
/* Drops a reference; the last one frees a. NULL is fine. */
void sbi_artifact_free(sbi_artifact *a);

/* Setters add a field or replace the one with the same name.
 * set_mat takes ownership of m, also on failure. */
int sbi_artifact_set_mat(sbi_artifact *a, const char *name, sbi_mat *m);
int sbi_artifact_set_str(sbi_artifact *a, const char *name, const char *s, size_t len);
int sbi_artifact_set_num(sbi_artifact *a, const char *name, double v);
/* set_strs copies the n strings s[i] of lens[i] bytes (binary data such as
 * models may hold NULs); lens NULL: each is NUL-terminated. */
int sbi_artifact_set_strs(sbi_artifact *a, const char *name, const char *const *s, const size_t *lens, size_t n);

/* The field with that name and type, or NULL. */
const sbi_field *sbi_artifact_get(const sbi_artifact *a, const char *name, int type);
/* Shortcuts: the matrix / number named name, or NULL / def. */
sbi_mat *sbi_artifact_mat(const sbi_artifact *a, const char *name);
double sbi_artifact_num(const sbi_artifact *a, const char *name, double def);

/* Writes a, bound to key (the cache key it is stored under), atomically
 * into directory dir under the name of its content hash (stored in *hash),
 * using dir's two-level layout xx/yyyy.... */
int sbi_artifact_store(const sbi_artifact *a, const char *dir, const sbi_key *key, sbi_key *hash, sbi_err *err);
/* The same, with sync = 0 skipping fsync (see sbi_awriter). */
int sbi_artifact_store_sync(const sbi_artifact *a, const char *dir, const sbi_key *key, int sync, sbi_key *hash,
    sbi_err *err);

/* Reads the artifact at path, with the key it was stored for in (*out)->key,
 * and checks that its content hash is valid and, when expect is not NULL,
 * equal to *expect. SBI_ECORRUPT on any mismatch or malformed data;
 * SBI_ENOTFOUND when the file is missing or in format version 1 (written
 * before artifacts held their key: a miss, never misread). */
int sbi_artifact_load(const char *path, const sbi_key *expect, sbi_artifact **out, sbi_err *err);

/* The hash of what the valid artifact at path holds, without the key it
 * was stored under (BLAKE2b-256 of the fields): equal for the same values
 * under two keys, as when a bundle is replayed by another sbirun build. */
int sbi_artifact_content_hash(const char *path, sbi_key *out, sbi_err *err);

/* The path of the object with content hash h in dir (caller frees). */
char *sbi_artifact_path(const char *dir, const sbi_key *h);

#endif
