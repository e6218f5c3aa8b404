/* Provenance: what a run read and loaded, which is what a bundle must
 * carry. One record per session (sbi_prov), filled by lang/ as the recipe
 * loads and its steps run:
 *
 *   modules   the Lua files the recipe loaded with require, in load order
 *   data      observation files, by the path the recipe wrote and the
 *             file opened (sbi.observation)
 *   reads     files read through core.read_matrix / core.file_hash, once
 *             per path and step: as given, relative to the recipe's folder
 *             when it was, the file opened, and the step reading (none
 *             while the recipe loads)
 *   ran       the keys of the steps that ran
 *   map       in an unpacked bundle, the paths the recipe gives mapped to
 *             their bundled copies (SBI_BUNDLE_PATHS, written by unpack)
 *
 * The cache keeps, in SBI_READS_RECORD, what each step read the last time
 * it ran ({ "format": "sbirun-reads 1", "nodes": { key: [ { path, rel,
 * found } ] } }), so that `sbirun bundle` knows it without running. */
#ifndef SBI_PROVENANCE_H
#define SBI_PROVENANCE_H

#include <jansson.h>
#include <stddef.h>

#include "sbi/err.h"
#include "sbi/hash.h"

/* The record of the files each step read while running, kept in the cache
 * folder by every run (read by sbirun bundle). */
#define SBI_READS_RECORD "reads.json"

typedef struct sbi_prov sbi_prov;

typedef struct sbi_prov_read {
	char *path;   /* as the recipe gave it (owned) */
	char *rel;    /* relative to the recipe's folder when given so, else NULL (owned) */
	char *found;  /* the file opened (owned) */
	int has_node; /* 0 when read while the recipe loaded */
	sbi_key node; /* the key of the step that read it */
} sbi_prov_read;

typedef struct sbi_prov_data {
	char *path;   /* as the recipe wrote it (owned) */
	char *found;  /* the file opened (owned) */
} sbi_prov_data;

/* A new, empty record for a recipe in recipe_dir (as sbi.recipe_dir()
 * gives it; copied). Caller frees with sbi_prov_free; NULL when out of
 * memory. */
sbi_prov *sbi_prov_alloc(const char *recipe_dir);
void sbi_prov_free(sbi_prov *p); /* NULL is fine */

/* path relative to the folder dir when it is given relative to it (dir/x
 * or, when dir is ".", any relative path), with leading "./" removed;
 * else NULL. Points into path. */
const char *sbi_prov_recipe_rel(const char *path, const char *dir);

/* Appending; SBI_ENOMEM when out of memory (nothing is added then). */
int sbi_prov_add_module(sbi_prov *p, const char *path);
int sbi_prov_add_data(sbi_prov *p, const char *path, const char *found);
/* node NULL: read while the recipe loads. A path already recorded for
 * the same step is not added again. */
int sbi_prov_add_read(sbi_prov *p, const char *path, const char *found, const sbi_key *node);
int sbi_prov_add_ran(sbi_prov *p, const sbi_key *key);

/* Reading, in the order recorded; pointers are borrowed. */
size_t sbi_prov_nmodules(const sbi_prov *p);
const char *sbi_prov_module(const sbi_prov *p, size_t i);
size_t sbi_prov_ndata(const sbi_prov *p);
const sbi_prov_data *sbi_prov_data_at(const sbi_prov *p, size_t i);
size_t sbi_prov_nreads(const sbi_prov *p);
const sbi_prov_read *sbi_prov_read_at(const sbi_prov *p, size_t i);

/* Loads the path map of the unpacked bundle in folder (its
 * SBI_BUNDLE_PATHS; missing or not JSON: no map). Entries whose bundled
 * copy would not be a valid bundle entry are ignored. */
int sbi_prov_load_map(sbi_prov *p, const char *folder);
/* The bundled copy of path, or path itself (borrowed). */
const char *sbi_prov_map(const sbi_prov *p, const char *path);

/* Updates cache_dir's SBI_READS_RECORD with what every step that ran
 * read: a step's entry is replaced by this run's list. Does nothing when
 * no step ran or cache_dir does not exist. */
int sbi_prov_write_record(const sbi_prov *p, const char *cache_dir, sbi_err *err);
/* cache_dir's record (a new reference), or NULL when it is missing or not
 * JSON; read as a regular file only (a FIFO would block). */
json_t *sbi_prov_record_load(const char *cache_dir);
/* The list of what the step key read in rec (borrowed), or NULL when the
 * record does not cover the step. */
json_t *sbi_prov_record_reads(json_t *rec, const sbi_key *key);

#endif
