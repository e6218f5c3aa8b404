/* Content-addressed artifact cache (see cache.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sbi/alloc.h"
#include "sbi/cache.h"
#include "sbi/fsutil.h"

#define REF_MAGIC "sbirun-ref 1\n"

/* A key to drop once the artifact of owner is stored (sbi_cache_drop_when_stored). */
typedef struct pending_drop {
	sbi_key owner, key;
} pending_drop;

struct sbi_cache {
	char *dir, *objects, *refs; /* owned */
	int lockfd;
	pending_drop *drops; /* owned */
	size_t ndrops, capdrops;
};

/* A handle on the cache at dir, not yet opened: its paths, no lock.
 * Owned (sbi_cache_close); NULL with err set when out of memory. */
static sbi_cache *
cache_alloc(const char *dir, sbi_err *err)
{
	sbi_cache *c = sbi_calloc(1, sizeof *c);
	if (c != NULL) {
		c->lockfd = -1;
		c->dir = sbi_strdup(dir);
		c->objects = sbi_path_join(dir, "objects");
		c->refs = sbi_path_join(dir, "refs");
	}
	if (c == NULL || c->dir == NULL || c->objects == NULL || c->refs == NULL) {
		sbi_cache_close(c);
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	return c;
}

static int
make_dirs(sbi_cache *c, sbi_err *err)
{
	int rc = sbi_fs_mkdirs(c->objects, err);
	if (rc == SBI_OK)
		rc = sbi_fs_mkdirs(c->refs, err);
	return rc;
}

/* A POSIX record lock on DIR/lock: it belongs to this process only (a
 * forked worker does not inherit it, so a worker that outlives a killed
 * parent cannot keep the cache locked) and the kernel drops it when the
 * process dies, so a lock is never stale. */
static int
take_lock(sbi_cache *c, sbi_err *err)
{
	char *path = sbi_path_join(c->dir, "lock");
	if (path == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	c->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0666);
	int e = errno;
	sbi_free(path);
	if (c->lockfd < 0)
		return sbi_err_set(err, SBI_EIO, "cache %s is not writable: %s", c->dir, strerror(e));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(c->lockfd, F_SETLK, &fl) != 0) {
		struct flock who = fl;
		if (fcntl(c->lockfd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK)
			fprintf(stderr, "sbirun: waiting for another run (process %ld) to release the cache %s\n",
			    (long)who.l_pid, c->dir);
		else
			fprintf(stderr, "sbirun: waiting for another run to release the cache %s\n", c->dir);
		while (fcntl(c->lockfd, F_SETLKW, &fl) != 0)
			if (errno != EINTR)
				return sbi_err_set(err, SBI_EIO, "cannot lock cache %s: %s", c->dir, strerror(errno));
	}
	return SBI_OK;
}

/* Proves the cache is writable now rather than after hours of simulation. */
static int
probe_write(sbi_cache *c, sbi_err *err)
{
	sbi_awriter w;
	sbi_err why = { 0 };
	if (sbi_awriter_open(&w, c->objects, &why) != SBI_OK)
		return sbi_err_set(err, SBI_EIO, "cache %s is not writable (%s)", c->dir, why.msg);
	sbi_awriter_abort(&w);
	return SBI_OK;
}

static int walk(const char *root, int (*fn)(const char *, const char *, void *), void *ud);

static int
drop_temporary(const char *path, const char *name, void *ud)
{
	const char *base = strrchr(path, '/');
	if (base && strncmp(base + 1, ".tmp-", 5) == 0)
		unlink(path);
	return SBI_OK;
}

/* Temporaries left by a killed run; safe to delete now that we hold the
 * lock, since no other run can be writing them. */
static void
remove_stale_temporaries(sbi_cache *c)
{
	const char *roots[2] = { c->objects, c->refs };
	for (int i = 0; i < 2; i++) {
		DIR *d = opendir(roots[i]);
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL)
			if (strncmp(e->d_name, ".tmp-", 5) == 0) {
				char *p = sbi_path_join(roots[i], e->d_name);
				if (p)
					unlink(p);
				sbi_free(p);
			}
		if (d)
			closedir(d);
		walk(roots[i], drop_temporary, NULL);
	}
}

sbi_cache *
sbi_cache_open(const char *dir, sbi_err *err)
{
	sbi_cache *c = cache_alloc(dir, err);
	if (c == NULL)
		return NULL;
	sbi_err why = { 0 };
	int rc = sbi_fs_mkdirs(dir, &why);
	if (rc != SBI_OK)
		sbi_err_set(err, rc, "cannot use cache directory %s: %s", dir, why.msg);
	if (rc == SBI_OK)
		rc = make_dirs(c, err);
	if (rc == SBI_OK)
		rc = take_lock(c, err);
	if (rc == SBI_OK)
		rc = probe_write(c, err);
	if (rc == SBI_OK)
		remove_stale_temporaries(c);
	if (rc != SBI_OK) {
		sbi_cache_close(c);
		return NULL;
	}
	return c;
}

sbi_cache *
sbi_cache_open_readonly(const char *dir, sbi_err *err)
{
	sbi_cache *c = cache_alloc(dir, err);
	if (c == NULL)
		return NULL;
	int rc = SBI_OK;
	const char *check[3] = { c->dir, c->refs, c->objects };
	for (int i = 0; i < 3 && rc == SBI_OK; i++)
		if (access(check[i], R_OK | X_OK) != 0 && (i == 0 || errno != ENOENT))
			rc = sbi_err_set(err, SBI_EIO, "cannot read cache %s: %s: %s", dir, check[i], strerror(errno));
	if (rc != SBI_OK) {
		sbi_cache_close(c);
		return NULL;
	}
	return c;
}

void
sbi_cache_close(sbi_cache *c)
{
	if (c == NULL)
		return;
	if (c->lockfd >= 0)
		close(c->lockfd);
	sbi_free(c->dir);
	sbi_free(c->objects);
	sbi_free(c->refs);
	sbi_free(c->drops);
	sbi_free(c);
}

static char *
ref_path(sbi_cache *c, const sbi_key *key)
{
	return sbi_artifact_path(c->refs, key);
}

/* A path below the cache folder dir: sub/xx/yyyy... (caller frees). */
static char *
hashed_path(const char *dir, const char *sub, const sbi_key *k)
{
	char *root = sbi_path_join(dir, sub), *p = root ? sbi_artifact_path(root, k) : NULL;
	sbi_free(root);
	return p;
}

char *
sbi_cache_ref_path(const char *dir, const sbi_key *key)
{
	return hashed_path(dir, "refs", key);
}

char *
sbi_cache_object_path(const char *dir, const sbi_key *obj)
{
	return hashed_path(dir, "objects", obj);
}

/* The object hash a ref's text names; SBI_ECORRUPT when it is not a ref. */
static int
parse_ref(const char *text, size_t n, sbi_key *obj)
{
	size_t m = strlen(REF_MAGIC);
	if (n < m + 64 || memcmp(text, REF_MAGIC, m) != 0 || sbi_key_from_hex(text + m, obj) != SBI_OK)
		return SBI_ECORRUPT;
	return SBI_OK;
}

/* 1 when the ref text (NUL-terminated) is a chunk's whose label names
 * owner: "chunk <index> of <owner hex>\n" after the object hash. */
static int
chunk_of(const char *text, size_t n, const sbi_key *owner)
{
	size_t m = strlen(REF_MAGIC) + 65;
	char hex[SBI_KEY_HEX], want[SBI_KEY_HEX + 8];
	if (n <= m || strncmp(text + m, "chunk ", 6) != 0)
		return 0;
	sbi_key_hex(owner, hex);
	snprintf(want, sizeof want, " of %s\n", hex);
	size_t len = strlen(text + m), wl = strlen(want);
	return len >= wl && strcmp(text + m + len - wl, want) == 0;
}

int
sbi_cache_read_ref(const char *path, sbi_key *obj, sbi_err *err)
{
	char *text = NULL;
	size_t n;
	int rc = sbi_fs_read_all(path, &text, &n, err);
	if (rc == SBI_OK && parse_ref(text, n, obj) != SBI_OK)
		rc = sbi_err_set(err, SBI_ECORRUPT, "cache ref %s is corrupt", path);
	sbi_free(text);
	return rc;
}

static int
write_ref(const char *path, const char *text, size_t n, int sync, sbi_err *err)
{
	if (sync)
		return sbi_fs_write_atomic(path, text, n, err);
	char *dir = sbi_strdup(path);
	if (dir == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	*strrchr(dir, '/') = '\0';
	sbi_awriter w;
	int rc = sbi_awriter_open(&w, dir, err);
	sbi_free(dir);
	if (rc != SBI_OK)
		return rc;
	w.sync = 0;
	if ((rc = sbi_awriter_write(&w, text, n, err)) != SBI_OK) {
		sbi_awriter_abort(&w);
		return rc;
	}
	return sbi_awriter_commit(&w, path, err);
}

static int read_ref(sbi_cache *c, const sbi_key *key, sbi_key *obj, sbi_err *err);

/* Removes the ref of key and the object it names. Only key's ref can name
 * that object (an artifact holds the key it was stored under), so no other
 * entry loses its data. The ref goes first: a crash in between leaves an
 * unreferenced object for gc, never a ref to a missing object. */
static void
drop_entry(sbi_cache *c, const sbi_key *key)
{
	sbi_key obj;
	int named = read_ref(c, key, &obj, NULL) == SBI_OK;
	sbi_cache_remove(c, key);
	char *path = named ? sbi_artifact_path(c->objects, &obj) : NULL;
	if (path)
		unlink(path);
	sbi_free(path);
}

/* Drops the entries waiting for owner's artifact, now stored and synced. */
static void
drop_superseded(sbi_cache *c, const sbi_key *owner)
{
	size_t kept = 0;
	for (size_t i = 0; i < c->ndrops; i++)
		if (sbi_key_equal(&c->drops[i].owner, owner))
			drop_entry(c, &c->drops[i].key);
		else
			c->drops[kept++] = c->drops[i];
	c->ndrops = kept;
}

int
sbi_cache_drop_when_stored(sbi_cache *c, const sbi_key *owner, const sbi_key *key)
{
	if (c->ndrops == c->capdrops) {
		size_t cap = c->capdrops ? 2 * c->capdrops : 64;
		pending_drop *d = sbi_realloc(c->drops, cap * sizeof *d);
		if (d == NULL)
			return SBI_ENOMEM;
		c->drops = d;
		c->capdrops = cap;
	}
	c->drops[c->ndrops++] = (pending_drop){ *owner, *key };
	return SBI_OK;
}

/* Stores a under key with label; without fsync unless sync (chunks are
 * verified on read and recomputed when a power loss tore them). */
static int
put(sbi_cache *c, const sbi_key *key, const sbi_artifact *a, const char *label, int sync, sbi_key *hash,
    sbi_err *err)
{
	sbi_key h;
	int rc = sbi_artifact_store_sync(a, c->objects, key, sync, &h, err);
	if (rc != SBI_OK)
		return rc;
	if (hash)
		*hash = h;
	char hex[SBI_KEY_HEX], buf[256];
	sbi_key_hex(&h, hex);
	int n = snprintf(buf, sizeof buf, REF_MAGIC "%s\n%.150s\n", hex, label ? label : "");
	char *path = ref_path(c, key), *sub = path ? sbi_strdup(path) : NULL;
	if (sub == NULL) {
		sbi_free(path);
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	}
	*strrchr(sub, '/') = '\0';
	rc = sbi_fs_mkdirs(sub, err);
	if (rc == SBI_OK)
		rc = write_ref(path, buf, (size_t)n, sync, err);
	sbi_free(sub);
	sbi_free(path);
	if (rc == SBI_OK && sync)
		drop_superseded(c, key);
	return rc;
}

int
sbi_cache_put(sbi_cache *c, const sbi_key *key, const sbi_artifact *a, const char *label,
    sbi_key *hash, sbi_err *err)
{
	return put(c, key, a, label, 1, hash, err);
}

int
sbi_cache_put_chunk(sbi_cache *c, const sbi_key *key, const sbi_artifact *a, const sbi_key *owner,
    size_t index, sbi_err *err)
{
	char label[128], hex[SBI_KEY_HEX];
	sbi_key_hex(owner, hex);
	snprintf(label, sizeof label, "chunk %zu of %s", index, hex);
	return put(c, key, a, label, 0, NULL, err);
}

/* Reads the object hash a ref names. */
static int
read_ref(sbi_cache *c, const sbi_key *key, sbi_key *obj, sbi_err *err)
{
	char *path = ref_path(c, key);
	if (path == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	int rc = sbi_cache_read_ref(path, obj, err);
	if (rc == SBI_EINVAL) /* not a regular file */
		rc = SBI_ECORRUPT;
	sbi_free(path);
	return rc;
}

/* A valid artifact under another key's ref (refs swapped or edited): the
 * ref is wrong, not the object, which stays for the key it belongs to. */
static int
wrong_key(sbi_artifact **out, const char *path, const sbi_key *key, sbi_err *err)
{
	char has[SBI_KEY_HEX], want[SBI_KEY_HEX];
	sbi_key_hex(&(*out)->key, has);
	sbi_key_hex(key, want);
	sbi_artifact_free(*out);
	*out = NULL;
	return sbi_err_set(err, SBI_ECORRUPT, "the cache ref of key %.12s names artifact %s, which is the result "
	    "of key %.12s", want, path, has);
}

int
sbi_cache_get(sbi_cache *c, const sbi_key *key, sbi_artifact **out, sbi_key *hash, sbi_err *err)
{
	sbi_key obj;
	int rc = read_ref(c, key, &obj, err);
	if (rc == SBI_OK) {
		char *path = sbi_artifact_path(c->objects, &obj);
		if (path == NULL)
			return sbi_err_set(err, SBI_ENOMEM, "out of memory");
		rc = sbi_artifact_load(path, &obj, out, err);
		if (rc == SBI_ECORRUPT)
			unlink(path);
		if (rc == SBI_OK && !sbi_key_equal(&(*out)->key, key))
			rc = wrong_key(out, path, key, err);
		int stale = rc == SBI_ENOTFOUND && sbi_fs_exists(path); /* an older format: a miss */
		if (rc == SBI_ENOTFOUND && !stale)
			rc = sbi_err_set(err, SBI_ECORRUPT, "cache object %s is missing", path);
		if (stale)
			sbi_cache_remove(c, key);
		sbi_free(path);
	}
	if (rc == SBI_ECORRUPT)
		sbi_cache_remove(c, key);
	if (rc == SBI_OK && hash)
		*hash = obj;
	return rc;
}

int
sbi_cache_has(sbi_cache *c, const sbi_key *key)
{
	sbi_key obj;
	if (read_ref(c, key, &obj, NULL) != SBI_OK)
		return 0;
	char *path = sbi_artifact_path(c->objects, &obj);
	int ok = path && sbi_fs_exists(path);
	sbi_free(path);
	return ok;
}

int
sbi_cache_remove(sbi_cache *c, const sbi_key *key)
{
	char *path = ref_path(c, key);
	if (path == NULL)
		return SBI_ENOMEM;
	int rc = unlink(path) == 0 || errno == ENOENT ? SBI_OK : SBI_EIO;
	sbi_free(path);
	return rc;
}

/* Calls fn(path, name, ud) for every file in the two-level tree at root. */
static int
walk(const char *root, int (*fn)(const char *path, const char *name, void *ud), void *ud)
{
	DIR *d = opendir(root);
	if (d == NULL)
		return SBI_EIO;
	struct dirent *e;
	int rc = SBI_OK;
	while (rc == SBI_OK && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || e->d_name[1] == '.'))
			continue;
		char *sub = sbi_path_join(root, e->d_name);
		DIR *d2 = sub ? opendir(sub) : NULL;
		struct dirent *f;
		while (d2 && rc == SBI_OK && (f = readdir(d2)) != NULL) {
			if (f->d_name[0] == '.' && (f->d_name[1] == '\0' || f->d_name[1] == '.'))
				continue;
			char *p = sbi_path_join(sub, f->d_name), name[2 * 256 + 2];
			snprintf(name, sizeof name, "%s%s", e->d_name, f->d_name);
			rc = p ? fn(p, name, ud) : SBI_ENOMEM;
			sbi_free(p);
		}
		if (d2)
			closedir(d2);
		sbi_free(sub);
	}
	closedir(d);
	return rc;
}

typedef struct chunk_walk {
	const sbi_key *owner;
	sbi_cache_ref_fn fn; /* NULL: remove the ref */
	void *ud;
	long removed;
} chunk_walk;

static int
visit_chunk(const char *path, const char *name, void *ud)
{
	chunk_walk *w = ud;
	sbi_key k;
	char *text = NULL;
	size_t n;
	if (strlen(name) != 2 * SBI_KEY_BYTES || sbi_key_from_hex(name, &k) != SBI_OK ||
	    sbi_fs_read_all(path, &text, &n, NULL) != SBI_OK)
		return SBI_OK;
	int rc = SBI_OK;
	if (chunk_of(text, n, w->owner)) {
		if (w->fn)
			rc = w->fn(w->ud, path, &k);
		else if (unlink(path) == 0)
			w->removed++;
	}
	sbi_free(text);
	return rc;
}

int
sbi_cache_each_chunk(const char *dir, const sbi_key *owner, sbi_cache_ref_fn fn, void *ud)
{
	chunk_walk w = { owner, fn, ud, 0 };
	char *refs = sbi_path_join(dir, "refs");
	if (refs == NULL)
		return SBI_ENOMEM;
	int rc = sbi_fs_exists(refs) ? walk(refs, visit_chunk, &w) : SBI_OK;
	sbi_free(refs);
	return rc == SBI_EIO ? SBI_OK : rc; /* an unreadable folder: no chunks, as before */
}

int
sbi_cache_remove_chunks(sbi_cache *c, const sbi_key *owner, long *removed, sbi_err *err)
{
	chunk_walk w = { owner, NULL, NULL, 0 };
	int rc = walk(c->refs, visit_chunk, &w);
	if (removed)
		*removed = w.removed;
	if (rc != SBI_OK)
		return sbi_err_set(err, rc, "cannot scan cache %s", c->dir);
	return SBI_OK;
}

typedef struct live_set {
	sbi_key *keys;
	size_t n, cap;
	long freed;
} live_set;

static int
collect_ref(const char *path, const char *name, void *ud)
{
	live_set *s = ud;
	char *text = NULL;
	size_t n;
	size_t m = strlen(REF_MAGIC);
	if (sbi_fs_read_all(path, &text, &n, NULL) != SBI_OK)
		return SBI_OK;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		sbi_key *k = sbi_realloc(s->keys, cap * sizeof *k);
		if (k == NULL) {
			sbi_free(text);
			return SBI_ENOMEM;
		}
		s->keys = k;
		s->cap = cap;
	}
	if (n >= m + 64 && sbi_key_from_hex(text + m, &s->keys[s->n]) == SBI_OK)
		s->n++;
	sbi_free(text);
	return SBI_OK;
}

static int
drop_unreferenced(const char *path, const char *name, void *ud)
{
	live_set *s = ud;
	sbi_key k;
	if (name[0] == '.' || strncmp(name, ".tmp", 4) == 0 || strstr(name, ".tmp-") != NULL) {
		unlink(path); /* a temporary left by a killed run */
		return SBI_OK;
	}
	if (sbi_key_from_hex(name, &k) != SBI_OK)
		return SBI_OK;
	for (size_t i = 0; i < s->n; i++)
		if (sbi_key_equal(&k, &s->keys[i]))
			return SBI_OK;
	if (unlink(path) == 0)
		s->freed++;
	return SBI_OK;
}

int
sbi_cache_gc(sbi_cache *c, long *freed, sbi_err *err)
{
	live_set s = { 0 };
	int rc = walk(c->refs, collect_ref, &s);
	if (rc == SBI_OK)
		rc = walk(c->objects, drop_unreferenced, &s);
	sbi_free(s.keys);
	if (freed)
		*freed = s.freed;
	if (rc != SBI_OK)
		return sbi_err_set(err, rc, "cannot clean cache %s", c->dir);
	return SBI_OK;
}
