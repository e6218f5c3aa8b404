/* Analysis bundles: a recipe, its modules and data, and the cached
 * artifacts of its steps in one tar archive (libarchive), so that the
 * analysis can be checked and re-run elsewhere from the cache.
 *
 * Archive layout (format "sbirun-bundle 1", docs/bundles.md):
 *
 *   manifest.json        first entry: JSON, at most max_manifest bytes (sbi_bundle_limits)
 *   manifest.blake2b     second entry: the BLAKE2b-256 of manifest.json, 64 hex + "\n"
 *   recipe/PATH          the recipe and the Lua modules it required
 *   data/PATH            data files the recipe read through sbi.observation
 *   cache/objects/xx/y.. cached artifacts (artifact.h)
 *   cache/refs/xx/y..    cache refs (cache.h)
 *
 * Every entry is a regular file. The manifest's "files" array lists every
 * entry after the first two with its "size" and "blake2b" (of its bytes).
 * The writer streams: files are hashed once to build the manifest, then
 * copied into the archive block by block and hashed again; a file that
 * changed in between is an error. The reader also streams, and refuses
 * unsafe names, links, devices, duplicates, undeclared entries and entries
 * whose size or hash differ from the manifest. */
#ifndef SBI_BUNDLE_H
#define SBI_BUNDLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sbi/err.h"
#include "sbi/hash.h"

#define SBI_BUNDLE_FORMAT "sbirun-bundle 1"
/* Default limits on what reading a bundle may cost (sbi_bundle_limits;
 * docs/bundles.md): a small archive can declare huge entries or a
 * manifest that takes ~25 times its size in memory once parsed. */
#define SBI_BUNDLE_MAX_MANIFEST ((uint64_t)8 << 20)   /* 8 MiB: manifest.json */
#define SBI_BUNDLE_MAX_UNPACKED ((uint64_t)8 << 30)   /* 8 GiB: all entries together */
/* The file sbi_bundle_unpack writes at the top of every folder it unpacks
 * (before any entry, so no entry can supply it); sbirun runs a recipe in
 * a folder holding it restricted (docs/bundles.md). */
#define SBI_BUNDLE_MARKER ".sbirun-bundle"
/* Written by sbi_bundle_unpack after the entries (with O_EXCL, so an entry
 * of that name makes unpack fail): the manifest's "reads" list, a JSON
 * array of { path, rel, unpack } mapping the paths a recipe gave
 * core.read_matrix / core.file_hash to their bundled copies. */
#define SBI_BUNDLE_PATHS ".sbirun-bundle-paths"
#define SBI_BUNDLE_MAX_ENTRY ((uint64_t)4 << 30)      /* 4 GiB: default per-entry limit */

/* Limits of the readers; a field 0 (or a NULL pointer to the struct)
 * means its default. Checked on the manifest's declarations before any
 * entry is read or written, and again on the data. */
typedef struct sbi_bundle_limits {
	uint64_t max_entry;    /* bytes of one entry (SBI_BUNDLE_MAX_ENTRY) */
	uint64_t max_manifest; /* bytes of manifest.json (SBI_BUNDLE_MAX_MANIFEST) */
	uint64_t max_unpacked; /* bytes of all entries together (SBI_BUNDLE_MAX_UNPACKED) */
} sbi_bundle_limits;

/* One file to put into a bundle. */
typedef struct sbi_bundle_file {
	char *name;     /* path inside the archive (owned) */
	char *src;      /* path on disk (owned) */
	uint64_t size;
	sbi_key hash;   /* BLAKE2b-256 of the file's bytes */
} sbi_bundle_file;

/* The files of a bundle, in archive order. Zero-initialize; free the
 * contents with sbi_bundle_files_clear. */
typedef struct sbi_bundle_files {
	size_t n, cap;
	sbi_bundle_file *v; /* owned */
} sbi_bundle_files;

void sbi_bundle_files_clear(sbi_bundle_files *f);

/* Hashes the file src and appends it as name. A name already in the list
 * is skipped (SBI_OK). SBI_EINVAL when name is not a valid entry name,
 * SBI_ENOTFOUND when src does not exist. */
int sbi_bundle_files_add(sbi_bundle_files *f, const char *name, const char *src, sbi_err *err);

/* 1 when name is in the list. */
int sbi_bundle_files_has(const sbi_bundle_files *f, const char *name);

/* Adds the ref of key from cache directory cache_dir and the object it
 * names, as cache/refs/... and cache/objects/...; *obj receives the
 * object's hash. SBI_ENOTFOUND when the key has no ref or its object is
 * missing; SBI_ECORRUPT when the ref or the object is damaged (err says
 * which); nothing is added then. */
int sbi_bundle_add_cached(sbi_bundle_files *f, const char *cache_dir, const sbi_key *key, sbi_key *obj,
    sbi_err *err);

/* Adds every ref of cache_dir whose label is "chunk C of <owner hex>", with
 * its object; damaged ones are skipped. *count receives how many. */
int sbi_bundle_add_chunks(sbi_bundle_files *f, const char *cache_dir, const sbi_key *owner, long *count,
    sbi_err *err);

/* Compression by name: "zstd", "gzip", "xz" or "none"; SBI_EINVAL otherwise. */
int sbi_bundle_compression(const char *name, int *out);

/* Writes the bundle to path (atomically: a temporary file beside it,
 * renamed when complete). manifest gets a "files" array listing f and is
 * written first. compression is from sbi_bundle_compression. */
int sbi_bundle_write(const char *path, int compression, json_t *manifest, const sbi_bundle_files *f,
    sbi_err *err);

/* Reads only the manifest (the first entry) of the bundle at path and
 * checks it (format, file names, recipe.file); *out receives a new
 * reference. */
int sbi_bundle_read_manifest(const char *path, const sbi_bundle_limits *lim, json_t **out, sbi_err *err);

/* Problems found by sbi_bundle_verify, one message each. */
typedef struct sbi_bundle_problems {
	size_t n, cap;
	char **msg; /* owned, with each message */
} sbi_bundle_problems;

void sbi_bundle_problems_clear(sbi_bundle_problems *p);

/* Reads the whole bundle and checks the manifest (its recipe.file must be
 * an entry recipe/... of the bundle; the sizes it declares within lim)
 * and every entry against it: names, types, sizes, hashes, duplicates,
 * missing and undeclared entries, and that the archive and its
 * compression are intact. SBI_OK when every check passed, SBI_ECORRUPT
 * with p listing the problems, another code with err set when the file
 * cannot be read at all. Unpack makes exactly these checks. */
int sbi_bundle_verify(const char *path, const sbi_bundle_limits *lim, sbi_bundle_problems *p, sbi_err *err);

/* Extracts the bundle into the new directory dir (which must not exist,
 * or be empty): recipe/P and data/P to dir/P, cache/P to dir/.sbirun/P,
 * and the marker dir/SBI_BUNDLE_MARKER.
 * Everything is written into a temporary directory beside dir, which is
 * renamed to dir only when every check of sbi_bundle_verify passed; on
 * any problem it is removed and the first problem is the error (SBI_EINVAL
 * for refused entries, SBI_ECORRUPT for damaged data). *manifest (may be
 * NULL) receives the manifest on success. */
int sbi_bundle_unpack(const char *path, const char *dir, const sbi_bundle_limits *lim, json_t **manifest,
    sbi_err *err);

/* NULL when name is a valid entry name of a bundle (other than the
 * manifest), else why not: absolute, "..", ".", empty components,
 * control characters or backslashes, an unknown top-level folder, a cache
 * path not of the form xx/<62 hex digits>, a component ".sbirun" under
 * recipe/ or data/ (cache metadata comes only from cache/) or a name
 * that would unpack to the marker or the map (".sbirun-bundle*"). */
const char *sbi_bundle_check_name(const char *name);

/* Bundle text for display: copies s into out (n >= 8 bytes) with control
 * characters (C0, DEL, C1), bidirectional overrides and invalid UTF-8
 * written as \xHH; cut with "..." when it does not fit. Returns out.
 * Backslashes stay (a shell-quoted command stays pasteable). Every
 * message that quotes a bundle uses it. */
char *sbi_bundle_escape(const char *s, char *out, size_t n);

/* The length of the valid UTF-8 sequence at p (1 for ASCII, NUL included),
 * or 0 for an invalid, overlong or surrogate one. */
size_t sbi_utf8_len(const unsigned char *p);

/* s as one word of a POSIX shell command: as is when it is not empty and
 * made only of A-Z a-z 0-9 and _ . / = : , + @ % -, else in single quotes
 * with each ' written '\''. Owned (sbi_free); NULL when out of memory. */
char *sbi_bundle_shell_quote(const char *s);

#endif
