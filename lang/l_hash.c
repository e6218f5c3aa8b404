/* The canonical hash of a Lua value, for node keys.
 *
 * What goes in, by type:
 *   nil, boolean, string   their value
 *   number                 integers and integral floats as integers (so
 *                          100000 and 1e5 agree), other floats by bit pattern
 *   table                  its raw entries sorted by the hash of their key
 *                          (metatables are ignored: a recipe's _ENV hashes
 *                          as the globals the recipe defined, not the whole
 *                          standard library behind its __index)
 *   Lua function           its stripped bytecode (so comments and line moves
 *                          do not count) and the name and value of every
 *                          upvalue, recursively
 *   C function             its registered name ("math.cos"); unknown C
 *                          functions are an error, since nothing stable
 *                          identifies them
 *   userdata               a Prior by its exact description, a Mat by its
 *                          contents, an Rng by its type only
 * A value met again (a cycle) hashes as a back-reference to its first visit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lsbi.h"
#include "sbi/alloc.h"

#define CFNAMES "sbi.cfnames" /* C function or opaque table -> stable name */

enum { T_NIL = 10, T_BOOL, T_INT, T_FLOAT, T_STR, T_TABLE, T_FUNC, T_CFUNC, T_PRIOR, T_MAT, T_RNG, T_REF };

typedef struct hctx {
	lua_State *L;
	int seen;   /* stack index of the table: value -> visit number */
	long nseen;
	int depth;
} hctx;

static void hash_value(hctx *c, sbi_hasher *h, int idx);

static void
tag(sbi_hasher *h, int t)
{
	unsigned char b = (unsigned char)t;
	sbi_hash_bytes(h, &b, 1);
}

/* Returns 1 (and hashes a back-reference) when the value was seen before. */
static int
seen_before(hctx *c, sbi_hasher *h, int idx)
{
	lua_State *L = c->L;
	lua_pushvalue(L, idx);
	if (lua_rawget(L, c->seen) != LUA_TNIL) { /* [.., n] */
		tag(h, T_REF);
		sbi_hash_u64(h, (uint64_t)lua_tointeger(L, -1));
		lua_pop(L, 1);
		return 1;
	}
	lua_pop(L, 1);
	lua_pushvalue(L, idx);
	lua_pushinteger(L, ++c->nseen);
	lua_rawset(L, c->seen);
	return 0;
}

/* Library tables (the sbi module, math, ...) hash by their name: their
 * contents belong to the engine version, which is part of every key. */
static int
opaque(hctx *c, sbi_hasher *h, int idx)
{
	lua_State *L = c->L;
	lua_getfield(L, LUA_REGISTRYINDEX, CFNAMES);
	lua_pushvalue(L, idx);
	int found = lua_rawget(L, -2) == LUA_TSTRING; /* [.., names, name] */
	if (found) {
		size_t len;
		const char *name = lua_tolstring(L, -1, &len);
		tag(h, T_CFUNC);
		sbi_hash_str(h, name, len);
	}
	lua_pop(L, 2);
	return found;
}

static void
hash_number(sbi_hasher *h, lua_State *L, int idx)
{
	if (lua_isinteger(L, idx)) {
		tag(h, T_INT);
		sbi_hash_u64(h, (uint64_t)lua_tointeger(L, idx));
		return;
	}
	double v = lua_tonumber(L, idx);
	if (v == floor(v) && fabs(v) < 9.2e18) {
		tag(h, T_INT);
		sbi_hash_u64(h, (uint64_t)(int64_t)v);
		return;
	}
	tag(h, T_FLOAT);
	sbi_hash_f64(h, v);
}

typedef struct entry {
	sbi_key k;   /* hash of the key */
	sbi_key v;   /* hash of the value */
	lua_Integer slot; /* where the key waits in the keys table */
} entry;

static int
cmp_entry(const void *a, const void *b)
{
	return memcmp(((const entry *)a)->k.b, ((const entry *)b)->k.b, SBI_KEY_BYTES);
}

/* Hashes one value on its own (fresh hasher) into out. */
static void
hash_sub(hctx *c, int idx, sbi_key *out)
{
	sbi_hasher h;
	sbi_hash_init(&h);
	hash_value(c, &h, idx);
	sbi_hash_final(&h, out);
}

static void
hash_table(hctx *c, sbi_hasher *h, int idx)
{
	lua_State *L = c->L;
	size_t n = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		n++;
		lua_pop(L, 1);
	}
	entry *e = lua_newuserdatauv(L, (n ? n : 1) * sizeof *e, 0); /* [.., buf] */
	lua_createtable(L, (int)n, 0);                               /* [.., buf, keys] */
	int keys = lua_gettop(L);
	/* Keys first, then sort, then values in sorted order, so that visit
	 * numbers of shared sub-tables do not depend on traversal order. */
	size_t i = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) { /* [.., k, v] */
		/* A finalizer run by an allocation below may add keys. */
		if (i == n)
			luaL_error(L, "a table changed while it was hashed for the cache key");
		lua_pop(L, 1);
		hash_sub(c, lua_gettop(L), &e[i].k);
		e[i].slot = (lua_Integer)i + 1;
		lua_pushvalue(L, -1);
		lua_rawseti(L, keys, e[i].slot); /* [.., k] */
		i++;
	}
	n = i; /* or it lost keys */
	qsort(e, n, sizeof *e, cmp_entry);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, keys, e[i].slot); /* [.., k] */
		lua_rawget(L, idx);              /* [.., v] */
		hash_sub(c, lua_gettop(L), &e[i].v);
		lua_pop(L, 1);
	}
	tag(h, T_TABLE);
	sbi_hash_u64(h, n);
	for (i = 0; i < n; i++) {
		sbi_hash_key(h, &e[i].k);
		sbi_hash_key(h, &e[i].v);
	}
	lua_pop(L, 2); /* [..] */
}

/* ---- bytecode without line numbers ----
 *
 * Stripped dumps (lua_dump with strip = 1) still record each function's
 * linedefined and lastlinedefined, so adding a comment above a simulator
 * would change its key. We parse the Lua 5.4 dump format (lundump.c) and
 * hash everything except those two numbers and the (empty) debug sections. */

typedef struct rd {
	const unsigned char *p, *end;
	int bad;
} rd;

static size_t
rd_size(rd *r)
{
	size_t x = 0;
	unsigned b;
	do {
		if (r->p >= r->end || x > ((size_t)-1 >> 7)) {
			r->bad = 1;
			return 0;
		}
		b = *r->p++;
		x = (x << 7) | (b & 0x7f);
	} while ((b & 0x80) == 0);
	return x;
}

/* Hashes (when h) and skips n bytes. */
static void
rd_take(rd *r, sbi_hasher *h, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = 1;
		return;
	}
	if (h)
		sbi_hash_bytes(h, r->p, n);
	r->p += n;
}

static size_t
rd_count(rd *r, sbi_hasher *h)
{
	size_t n = rd_size(r);
	if (h && !r->bad)
		sbi_hash_u64(h, n);
	return n;
}

static void
rd_string(rd *r, sbi_hasher *h)
{
	size_t n = rd_count(r, h);
	if (n > 0)
		rd_take(r, h, n - 1);
}

static void
rd_function(rd *r, sbi_hasher *h, int depth)
{
	if (depth > 200) {
		r->bad = 1;
		return;
	}
	rd_string(r, NULL);   /* source: empty when stripped */
	rd_size(r);           /* linedefined */
	rd_size(r);           /* lastlinedefined */
	rd_take(r, h, 3);     /* numparams, is_vararg, maxstacksize */
	rd_take(r, h, 4 * rd_count(r, h)); /* code */
	for (size_t i = 0, n = rd_count(r, h); i < n && !r->bad; i++) {
		unsigned tag = r->p < r->end ? *r->p : 0;
		rd_take(r, h, 1);
		if (tag == 3 || tag == 19)       /* integer, float */
			rd_take(r, h, 8);
		else if (tag == 4 || tag == 20)  /* short, long string */
			rd_string(r, h);
		else if (tag != 0 && tag != 1 && tag != 17) /* nil, false, true */
			r->bad = 1;
	}
	rd_take(r, h, 3 * rd_count(r, h)); /* upvalue descriptors */
	for (size_t i = 0, n = rd_count(r, h); i < n && !r->bad; i++)
		rd_function(r, h, depth + 1);
	/* Debug sections, not hashed. */
	rd_take(r, NULL, rd_size(r));
	for (size_t i = 0, n = rd_size(r); i < n && !r->bad; i++)
		rd_size(r), rd_size(r);
	for (size_t i = 0, n = rd_size(r); i < n && !r->bad; i++)
		rd_string(r, NULL), rd_size(r), rd_size(r);
	for (size_t i = 0, n = rd_size(r); i < n && !r->bad; i++)
		rd_string(r, NULL);
}

enum { DUMP_HEADER = 4 + 1 + 1 + 6 + 3 + 8 + 8 + 1 }; /* ... + sizeupvalues byte */

static void
hash_bytecode(sbi_hasher *h, const unsigned char *p, size_t n)
{
	sbi_hasher tmp;
	sbi_hash_init(&tmp);
	rd r = { p, p + n, 0 };
	rd_take(&r, &tmp, DUMP_HEADER);
	rd_function(&r, &tmp, 0);
	if (r.bad || r.p != r.end) {
		/* An unexpected format: hash the raw dump (more re-runs, never wrong). */
		sbi_hash_bytes(h, p, n);
		return;
	}
	sbi_key k;
	sbi_hash_final(&tmp, &k);
	sbi_hash_key(h, &k);
}

typedef struct dump_state {
	luaL_Buffer b;
	int init;
} dump_state;

static int
dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
	dump_state *d = ud;
	if (!d->init) {
		d->init = 1;
		luaL_buffinit(L, &d->b);
	}
	luaL_addlstring(&d->b, p, sz);
	return 0;
}

static void
hash_function(hctx *c, sbi_hasher *h, int idx)
{
	lua_State *L = c->L;
	if (lua_iscfunction(L, idx)) {
		lua_getfield(L, LUA_REGISTRYINDEX, CFNAMES);
		lua_pushvalue(L, idx);
		if (lua_rawget(L, -2) != LUA_TSTRING)
			luaL_error(L, "cannot identify a C function for the cache key (only the standard "
			    "library's and sbi's are known); wrap it in a Lua function");
		size_t len;
		const char *name = lua_tolstring(L, -1, &len);
		tag(h, T_CFUNC);
		sbi_hash_str(h, name, len);
		lua_pop(L, 2);
		return;
	}
	tag(h, T_FUNC);
	lua_pushvalue(L, idx);                 /* [.., f] */
	dump_state d = { .init = 0 };
	lua_dump(L, dump_writer, &d, 1);
	luaL_pushresult(&d.b);                 /* [.., f, dump] */
	size_t n;
	const char *code = lua_tolstring(L, -1, &n);
	hash_bytecode(h, (const unsigned char *)code, n);
	lua_pop(L, 2);                         /* [..] */
	for (int i = 1;; i++) {
		const char *name = lua_getupvalue(L, idx, i); /* [.., v] */
		if (name == NULL)
			break;
		sbi_hash_str(h, name, strlen(name));
		hash_value(c, h, lua_gettop(L));
		lua_pop(L, 1);
	}
}

static void
hash_userdata(hctx *c, sbi_hasher *h, int idx)
{
	lua_State *L = c->L;
	if (luaL_testudata(L, idx, SBI_MT_PRIOR)) {
		sbi_prior *p = sbi__check_prior(L, idx);
		size_t n = sbi_prior_describe(p, NULL, 0);
		char *buf = lua_newuserdatauv(L, n + 1, 0);
		sbi_prior_describe(p, buf, n + 1);
		tag(h, T_PRIOR);
		sbi_hash_str(h, buf, n);
		lua_pop(L, 1);
	} else if (luaL_testudata(L, idx, SBI_MT_MAT)) {
		sbi_mat *m = sbi__check_mat(L, idx)->m;
		tag(h, T_MAT);
		sbi_hash_u64(h, m->nrow);
		sbi_hash_u64(h, m->ncol);
		sbi_hash_bytes(h, m->data, m->nrow * m->ncol * sizeof(double));
	} else if (luaL_testudata(L, idx, SBI_MT_RNG)) {
		tag(h, T_RNG);
	} else
		luaL_error(L, "cannot hash a %s value for the cache key", luaL_typename(L, idx));
}

static void
hash_value(hctx *c, sbi_hasher *h, int idx)
{
	lua_State *L = c->L;
	idx = lua_absindex(L, idx);
	if (++c->depth > 200)
		luaL_error(L, "value nested too deeply to hash for the cache key");
	luaL_checkstack(L, 8, "hashing a value");
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		tag(h, T_NIL);
		break;
	case LUA_TBOOLEAN:
		tag(h, T_BOOL);
		sbi_hash_u64(h, (uint64_t)lua_toboolean(L, idx));
		break;
	case LUA_TNUMBER:
		hash_number(h, L, idx);
		break;
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		tag(h, T_STR);
		sbi_hash_str(h, s, len);
		break;
	}
	case LUA_TTABLE:
		if (!opaque(c, h, idx) && !seen_before(c, h, idx))
			hash_table(c, h, idx);
		break;
	case LUA_TFUNCTION:
		if (!seen_before(c, h, idx))
			hash_function(c, h, idx);
		break;
	case LUA_TUSERDATA:
		hash_userdata(c, h, idx);
		break;
	default:
		luaL_error(L, "cannot hash a %s value for the cache key", luaL_typename(L, idx));
	}
	c->depth--;
}

int
sbi__hash_value(lua_State *L, int idx, sbi_key *out)
{
	idx = lua_absindex(L, idx);
	lua_newtable(L); /* [.., seen] */
	hctx c = { L, lua_gettop(L), 0, 0 };
	hash_sub(&c, idx, out);
	lua_pop(L, 1);
	return SBI_OK;
}

/* core.hash(v) -> 64 hex digits */
static int
l_hash(lua_State *L)
{
	luaL_checkany(L, 1);
	sbi_key k;
	char hex[SBI_KEY_HEX];
	sbi__hash_value(L, 1, &k);
	sbi_key_hex(&k, hex);
	lua_pushstring(L, hex);
	return 1;
}

/* Records the C functions of table t (at -1) under prefix in CFNAMES. */
static void
register_cfuncs(lua_State *L, const char *prefix)
{
	lua_getfield(L, LUA_REGISTRYINDEX, CFNAMES); /* [.., t, names] */
	lua_pushnil(L);
	while (lua_next(L, -3)) { /* [.., t, names, k, v] */
		if (lua_iscfunction(L, -1) && lua_type(L, -2) == LUA_TSTRING) {
			lua_pushvalue(L, -1);
			lua_pushfstring(L, "%s%s", prefix, lua_tostring(L, -3));
			lua_rawset(L, -5);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1); /* [.., t] */
}

/* core.register_library(t, name): t and its C functions hash by name. */
static int
l_register_library(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	const char *name = luaL_checkstring(L, 2);
	lua_getfield(L, LUA_REGISTRYINDEX, CFNAMES); /* [t, name, names] */
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_rawset(L, -3);
	lua_settop(L, 1);
	lua_pushfstring(L, "%s.", name);
	const char *prefix = lua_tostring(L, -1);
	lua_pushvalue(L, 1); /* [t, prefix, t] */
	register_cfuncs(L, prefix);
	return 0;
}

/* [core] -> [core] */
void
sbi__open_hash(lua_State *L)
{
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, CFNAMES);
	static const char *libs[] = { "_G", "math", "string", "table", "utf8", "os", "io", "coroutine",
		"package", "debug", NULL };
	for (int i = 0; libs[i]; i++) {
		lua_getglobal(L, libs[i]); /* [core, t] */
		if (lua_istable(L, -1)) {
			char prefix[32];
			snprintf(prefix, sizeof prefix, "%s.", libs[i]);
			register_cfuncs(L, strcmp(libs[i], "_G") == 0 ? "" : prefix);
			/* Library tables hash by name. _G itself hashes by content
			 * like any table: its libraries are named, the rest is the
			 * user's globals. */
			if (strcmp(libs[i], "_G") == 0)
				goto next;
			lua_getfield(L, LUA_REGISTRYINDEX, CFNAMES);
			lua_pushvalue(L, -2);
			lua_pushstring(L, libs[i]);
			lua_rawset(L, -3);
			lua_pop(L, 1);
		}
	next:
		lua_pop(L, 1);
	}
	lua_pushcfunction(L, l_hash);
	lua_setfield(L, -2, "hash");
	lua_pushcfunction(L, l_register_library);
	lua_setfield(L, -2, "register_library");
}
