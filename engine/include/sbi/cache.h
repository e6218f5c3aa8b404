/* The artifact cache: a content-addressed store plus a map from node keys
 * to artifacts.
 *
 * Layout of a cache directory (default .sbirun/ beside the recipe):
 *
 *   objects/xx/yyyy...  artifacts, named by the BLAKE2b-256 of their bytes
 *                       (format in artifact.h)
 *   refs/xx/yyyy...     one file per node key: "sbirun-ref 1\n<object hash>\n<label>\n";
 *                       a chunk's label is "chunk <index> of <owner key>"
 *   lock                flock()ed by a run, so two runs never interleave
 *
 * Temporary files (.tmp-*) live beside their destination until renamed.
 *
 * An object is written before the ref that names it, both atomically, so
 * a crash leaves at worst an unreferenced object. A read verifies the
 * object's checksum; a corrupt entry is reported, removed and treated as
 * a miss, so the node is recomputed. */
#ifndef SBI_CACHE_H
#define SBI_CACHE_H

#include "sbi/artifact.h"
#include "sbi/err.h"
#include "sbi/hash.h"

typedef struct sbi_cache sbi_cache;

/* Opens (creating) the cache at dir and takes its lock, waiting for another
 * run that holds it. NULL with err set when dir cannot be created or written. */
sbi_cache *sbi_cache_open(const char *dir, sbi_err *err);
/* Opens an existing cache for reading only (sbirun graph): no lock, no
 * writes, so it works on a read-only cache and never waits. NULL with err
 * set when dir or its refs/objects cannot be read. */
sbi_cache *sbi_cache_open_readonly(const char *dir, sbi_err *err);
void sbi_cache_close(sbi_cache *c); /* NULL is fine */

/* Stores a under key; *hash (may be NULL) receives its content hash. */
int sbi_cache_put(sbi_cache *c, const sbi_key *key, const sbi_artifact *a, const char *label,
    sbi_key *hash, sbi_err *err);

/* Stores a chunk: an intermediate artifact of the step owner (the
 * simulations of a simulate step, chunk by chunk), without fsync (it is
 * verified on read and recomputed when a power loss tore it). Its ref
 * names owner (sbi_cache_each_chunk, sbi_cache_remove_chunks). */
int sbi_cache_put_chunk(sbi_cache *c, const sbi_key *key, const sbi_artifact *a, const sbi_key *owner,
    size_t index, sbi_err *err);

/* Loads the artifact of key. SBI_ENOTFOUND on a miss; SBI_ECORRUPT when the
 * entry was damaged (it is removed, err says what was wrong). */
int sbi_cache_get(sbi_cache *c, const sbi_key *key, sbi_artifact **out, sbi_key *hash, sbi_err *err);

/* 1 when key has a ref whose object file exists (contents not verified). */
int sbi_cache_has(sbi_cache *c, const sbi_key *key);

/* Removes the ref of key (not the object). */
int sbi_cache_remove(sbi_cache *c, const sbi_key *key);

/* Removes the refs of every chunk of owner; *removed (may be NULL)
 * receives how many. */
int sbi_cache_remove_chunks(sbi_cache *c, const sbi_key *owner, long *removed, sbi_err *err);

/* Paths in the cache folder dir (the cache need not be open): the ref of
 * key, the object with content hash obj. Caller frees; NULL when out of
 * memory. */
char *sbi_cache_ref_path(const char *dir, const sbi_key *key);
char *sbi_cache_object_path(const char *dir, const sbi_key *obj);

/* Reads the ref file at path: *obj receives the object it names.
 * SBI_ECORRUPT when it is not a ref; errors of reading it as they are. */
int sbi_cache_read_ref(const char *path, sbi_key *obj, sbi_err *err);

/* Calls fn(ud, ref_path, key) for the ref of every chunk of owner in the
 * cache folder dir, stopping at the first result other than SBI_OK, which
 * is returned. A missing folder has no chunks. */
typedef int (*sbi_cache_ref_fn)(void *ud, const char *ref_path, const sbi_key *key);
int sbi_cache_each_chunk(const char *dir, const sbi_key *owner, sbi_cache_ref_fn fn, void *ud);

/* Drops the entry of key (its ref and its object) as soon as the artifact
 * of owner has been stored through this handle with sync (sbi_cache_put),
 * i.e. durably and atomically: for intermediate results that owner's
 * artifact supersedes (the chunks of a simulate node). Until then the entry
 * stays, so a run that dies first can still use it. SBI_ENOMEM when the
 * request cannot be recorded (then the entry just stays). */
int sbi_cache_drop_when_stored(sbi_cache *c, const sbi_key *owner, const sbi_key *key);

/* Deletes objects that no ref names and stale temporary files; *freed
 * receives the number of objects removed. */
int sbi_cache_gc(sbi_cache *c, long *freed, sbi_err *err);

#endif
