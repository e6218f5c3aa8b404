/* Provenance of a run: modules, data files, reads, steps run, and a
 * bundle's path map (see provenance.h). */
#include <stdlib.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/bundle.h"
#include "sbi/fsutil.h"
#include "sbi/provenance.h"

/* A growable array of n elements of size bytes each. */
typedef struct vec {
	void *v; /* owned */
	size_t n, cap;
} vec;

/* A free slot at the end of the array (the caller fills it, then counts
 * it with ++n), or NULL when out of memory. */
static void *
vec_slot(vec *a, size_t size)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 8;
		void *v = sbi_realloc(a->v, cap * size);
		if (v == NULL)
			return NULL;
		a->v = v;
		a->cap = cap;
	}
	return (char *)a->v + a->n * size;
}

typedef struct map_entry {
	char *from; /* a relative path (rel) or a path as given (exact) (owned) */
	char *to;   /* the bundled copy (owned) */
	int rel;
} map_entry;

struct sbi_prov {
	char *recipe_dir;        /* owned */
	vec modules;             /* char * */
	vec data;                /* sbi_prov_data */
	vec reads;               /* sbi_prov_read */
	vec ran;                 /* sbi_key */
	vec map;                 /* map_entry */
};

sbi_prov *
sbi_prov_alloc(const char *recipe_dir)
{
	sbi_prov *p = sbi_calloc(1, sizeof *p);
	if (p && (p->recipe_dir = sbi_strdup(recipe_dir ? recipe_dir : ".")) == NULL) {
		sbi_free(p);
		return NULL;
	}
	return p;
}

void
sbi_prov_free(sbi_prov *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->modules.n; i++)
		sbi_free(((char **)p->modules.v)[i]);
	for (size_t i = 0; i < p->data.n; i++) {
		sbi_prov_data *d = (sbi_prov_data *)p->data.v + i;
		sbi_free(d->path);
		sbi_free(d->found);
	}
	for (size_t i = 0; i < p->reads.n; i++) {
		sbi_prov_read *r = (sbi_prov_read *)p->reads.v + i;
		sbi_free(r->path);
		sbi_free(r->rel);
		sbi_free(r->found);
	}
	for (size_t i = 0; i < p->map.n; i++) {
		map_entry *e = (map_entry *)p->map.v + i;
		sbi_free(e->from);
		sbi_free(e->to);
	}
	sbi_free(p->modules.v);
	sbi_free(p->data.v);
	sbi_free(p->reads.v);
	sbi_free(p->ran.v);
	sbi_free(p->map.v);
	sbi_free(p->recipe_dir);
	sbi_free(p);
}

const char *
sbi_prov_recipe_rel(const char *path, const char *dir)
{
	if (dir == NULL)
		return NULL;
	if (strcmp(dir, ".") == 0) {
		if (*path == '/')
			return NULL;
	} else {
		size_t n = strlen(dir);
		if (strncmp(path, dir, n) != 0 || path[n] != '/')
			return NULL;
		path += n + 1;
	}
	while (strncmp(path, "./", 2) == 0)
		path += 2;
	return *path ? path : NULL;
}

int
sbi_prov_add_module(sbi_prov *p, const char *path)
{
	char **slot = vec_slot(&p->modules, sizeof *slot);
	if (slot == NULL || (*slot = sbi_strdup(path)) == NULL)
		return SBI_ENOMEM;
	p->modules.n++;
	return SBI_OK;
}

/* Copies x to *a and y to *b, both or neither. */
static int
dup_pair(char **a, const char *x, char **b, const char *y)
{
	*a = sbi_strdup(x);
	*b = sbi_strdup(y);
	if (*a == NULL || *b == NULL) {
		sbi_free(*a);
		sbi_free(*b);
		return SBI_ENOMEM;
	}
	return SBI_OK;
}

int
sbi_prov_add_data(sbi_prov *p, const char *path, const char *found)
{
	sbi_prov_data *d = vec_slot(&p->data, sizeof *d);
	if (d == NULL || dup_pair(&d->path, path, &d->found, found) != SBI_OK)
		return SBI_ENOMEM;
	p->data.n++;
	return SBI_OK;
}

int
sbi_prov_add_read(sbi_prov *p, const char *path, const char *found, const sbi_key *node)
{
	for (size_t i = 0; i < p->reads.n; i++) {
		const sbi_prov_read *r = (sbi_prov_read *)p->reads.v + i;
		if (strcmp(r->path, path) == 0 && r->has_node == (node != NULL) &&
		    (node == NULL || sbi_key_equal(&r->node, node)))
			return SBI_OK;
	}
	sbi_prov_read *r = vec_slot(&p->reads, sizeof *r);
	if (r == NULL)
		return SBI_ENOMEM;
	const char *rel = sbi_prov_recipe_rel(path, p->recipe_dir);
	*r = (sbi_prov_read){ .path = sbi_strdup(path), .found = sbi_strdup(found),
		.rel = rel ? sbi_strdup(rel) : NULL, .has_node = node != NULL };
	if (node)
		r->node = *node;
	if (r->path == NULL || r->found == NULL || (rel && r->rel == NULL)) {
		sbi_free(r->path);
		sbi_free(r->found);
		sbi_free(r->rel);
		return SBI_ENOMEM;
	}
	p->reads.n++;
	return SBI_OK;
}

int
sbi_prov_add_ran(sbi_prov *p, const sbi_key *key)
{
	sbi_key *k = vec_slot(&p->ran, sizeof *k);
	if (k == NULL)
		return SBI_ENOMEM;
	*k = *key;
	p->ran.n++;
	return SBI_OK;
}

size_t
sbi_prov_nmodules(const sbi_prov *p)
{
	return p ? p->modules.n : 0;
}

const char *
sbi_prov_module(const sbi_prov *p, size_t i)
{
	return ((char **)p->modules.v)[i];
}

size_t
sbi_prov_ndata(const sbi_prov *p)
{
	return p ? p->data.n : 0;
}

const sbi_prov_data *
sbi_prov_data_at(const sbi_prov *p, size_t i)
{
	return (const sbi_prov_data *)p->data.v + i;
}

size_t
sbi_prov_nreads(const sbi_prov *p)
{
	return p ? p->reads.n : 0;
}

const sbi_prov_read *
sbi_prov_read_at(const sbi_prov *p, size_t i)
{
	return (const sbi_prov_read *)p->reads.v + i;
}

/* ---- an unpacked bundle's path map ---- */

/* Parses the JSON file at path; NULL when it is missing, not a regular
 * file (a FIFO would block) or not JSON. */
static json_t *
load_json(const char *path)
{
	char *text;
	size_t n;
	if (path == NULL || sbi_fs_read_all(path, &text, &n, NULL) != SBI_OK)
		return NULL;
	json_t *j = json_loadb(text, n, 0, NULL);
	sbi_free(text);
	return j;
}

static int
map_add(sbi_prov *p, const char *from, const char *to, int rel)
{
	map_entry *e = vec_slot(&p->map, sizeof *e);
	if (e == NULL || dup_pair(&e->from, from, &e->to, to) != SBI_OK)
		return SBI_ENOMEM;
	e->rel = rel;
	p->map.n++;
	return SBI_OK;
}

int
sbi_prov_load_map(sbi_prov *p, const char *folder)
{
	char *file = sbi_path_join(folder, SBI_BUNDLE_PATHS);
	json_t *a = load_json(file);
	sbi_free(file);
	size_t i;
	json_t *e;
	int rc = SBI_OK;
	json_array_foreach(a, i, e) {
		const char *path = json_string_value(json_object_get(e, "path"));
		const char *rel = json_string_value(json_object_get(e, "rel"));
		const char *unpack = json_string_value(json_object_get(e, "unpack"));
		char name[1100];
		if (path == NULL || unpack == NULL)
			continue;
		snprintf(name, sizeof name, "data/%s", unpack);
		if (sbi_bundle_check_name(name) != NULL) /* it would leave the folder */
			continue;
		char *where = sbi_path_join(folder, unpack);
		if (where && rc == SBI_OK)
			rc = map_add(p, rel ? rel : path, where, rel != NULL);
		sbi_free(where);
	}
	json_decref(a);
	return rc;
}

/* The last entry mapping from (a later entry replaces an earlier one). */
static const char *
map_find(const sbi_prov *p, const char *from, int rel)
{
	for (size_t i = p->map.n; i-- > 0;) {
		const map_entry *e = (const map_entry *)p->map.v + i;
		if (e->rel == rel && strcmp(e->from, from) == 0)
			return e->to;
	}
	return NULL;
}

const char *
sbi_prov_map(const sbi_prov *p, const char *path)
{
	if (p == NULL || p->map.n == 0)
		return path;
	const char *rel = sbi_prov_recipe_rel(path, p->recipe_dir), *to = rel ? map_find(p, rel, 1) : NULL;
	if (to == NULL)
		to = map_find(p, path, 0);
	return to ? to : path;
}

/* ---- the cache's record of reads ---- */

json_t *
sbi_prov_record_load(const char *cache_dir)
{
	char *path = sbi_path_join(cache_dir, SBI_READS_RECORD);
	json_t *rec = load_json(path);
	sbi_free(path);
	return rec;
}

json_t *
sbi_prov_record_reads(json_t *rec, const sbi_key *key)
{
	char hex[SBI_KEY_HEX];
	sbi_key_hex(key, hex);
	json_t *reads = json_object_get(json_object_get(rec, "nodes"), hex);
	return json_is_array(reads) ? reads : NULL;
}

int
sbi_prov_write_record(const sbi_prov *p, const char *cache_dir, sbi_err *err)
{
	if (p == NULL || p->ran.n == 0)
		return SBI_OK;
	json_t *rec = sbi_prov_record_load(cache_dir), *nodes = json_object_get(rec, "nodes");
	if (!json_is_object(nodes)) {
		json_decref(rec);
		rec = json_pack("{s:s, s:{}}", "format", "sbirun-reads 1", "nodes");
		nodes = json_object_get(rec, "nodes");
	}
	char hex[SBI_KEY_HEX];
	for (size_t i = 0; nodes && i < p->ran.n; i++) {
		sbi_key_hex((const sbi_key *)p->ran.v + i, hex);
		json_object_set_new(nodes, hex, json_array());
	}
	for (size_t i = 0; nodes && i < p->reads.n; i++) {
		const sbi_prov_read *r = (const sbi_prov_read *)p->reads.v + i;
		if (!r->has_node)
			continue;
		sbi_key_hex(&r->node, hex);
		json_t *list = json_object_get(nodes, hex);
		if (!json_is_array(list))
			continue;
		json_t *o = json_pack("{s:s, s:s}", "path", r->path, "found", r->found);
		if (o && r->rel)
			json_object_set_new(o, "rel", json_string(r->rel));
		json_array_append_new(list, o);
	}
	char *text = rec ? json_dumps(rec, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	char *path = sbi_path_join(cache_dir, SBI_READS_RECORD);
	int rc = SBI_OK;
	if (text && path && sbi_fs_exists(cache_dir))
		rc = sbi_fs_write_atomic(path, text, strlen(text), err);
	free(text);
	json_decref(rec);
	sbi_free(path);
	return rc;
}
