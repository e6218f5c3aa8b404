/* Artifacts to and from Lua tables: a step's result table becomes an
 * artifact to store (sbi__to_artifact), a stored artifact a table whose
 * matrices are read-only views holding a reference to it
 * (sbi__push_artifact). */

#include "lsbi.h"

/* __gc of an artifact box: drops its reference. [box] -> [box] */
static int
box_gc(lua_State *L)
{
	sbi_artifact **box = lua_touserdata(L, 1);
	sbi_artifact_free(*box);
	*box = NULL;
	return 0;
}

/* __close of an artifact box: nothing. The reference is dropped by __gc
 * only, since C code that made views from the box may still use it. */
static int
box_close(lua_State *L)
{
	(void)L;
	return 0;
}

/* __tostring of an artifact box. [box] -> [box, s] */
static int
box_tostring(lua_State *L)
{
	lua_pushliteral(L, "sbi.ArtifactBox");
	return 1;
}

/* Pushes a box owning one reference to the artifact it holds (NULL for
 * now); the views of the artifact's matrices hold the box. [..] -> [.., box] */
static sbi_artifact **
push_box(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__gc", box_gc }, { "__close", box_close }, { "__tostring", box_tostring }, { NULL, NULL },
	};
	sbi_artifact **box = sbi__push_udata(L, sizeof *box, "sbi.ArtifactBox", meta); /* [box] */
	*box = NULL;
	return box;
}

void
sbi__push_artifact_ref(lua_State *L, sbi_artifact *a)
{
	*push_box(L) = sbi_artifact_retain(a); /* [box] */
}

void
sbi__push_artifact(lua_State *L, sbi_artifact *a)
{
	sbi__push_artifact_ref(L, a);           /* [box] */
	int owner = lua_gettop(L);
	lua_createtable(L, 0, (int)a->nfields); /* [box, t] */
	for (size_t i = 0; i < a->nfields; i++) {
		sbi_field *f = &a->fields[i];
		switch (f->type) {
		case SBI_FIELD_MAT:
			sbi__push_mat_view(L, f->mat, owner);
			break;
		case SBI_FIELD_STR:
			lua_pushlstring(L, f->str, f->len);
			break;
		case SBI_FIELD_NUM:
			lua_pushnumber(L, f->num);
			break;
		default:
			lua_createtable(L, (int)f->len, 0);
			for (size_t k = 0; k < f->len; k++) {
				lua_pushlstring(L, f->strs[k], f->lens[k]);
				lua_seti(L, -2, (lua_Integer)k + 1);
			}
		}
		lua_setfield(L, -2, f->name); /* [box, t] */
	}
	lua_remove(L, owner);                 /* [t] */
}

/* Raises unless every key of the table at -1 is an integer in 1..n: other
 * keys would be dropped silently by storing the list part. */
static void
check_list(lua_State *L, size_t n, const char *what, const char *name)
{
	lua_pushnil(L);
	while (lua_next(L, -2)) { /* [.., t, k, v] */
		lua_Integer k = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
		if (k < 1 || (size_t)k > n)
			luaL_error(L, "%s: field '%s' is a table with keys other than 1..%d; artifacts hold lists of "
			    "strings (numbers belong in a matrix)", what, name, (int)n);
		lua_pop(L, 1);
	}
}

/* Moves the value at -1 (field name at -2) into a, held by the box at
 * owner; raises on bad values. */
static void
to_field(lua_State *L, sbi_artifact *a, int owner, const char *what)
{
	const char *name = lua_tostring(L, -2);
	int rc = SBI_OK;
	if (luaL_testudata(L, -1, SBI_MT_MAT)) {
		l_mat *lm = sbi__check_mat(L, -1);
		sbi_mat *m = lm->borrowed ? sbi_mat_dup(lm->m) : lm->m;
		if (m == NULL)
			luaL_error(L, "out of memory");
		if (!lm->borrowed) /* moved: the Lua object becomes a view */
			sbi__mat_make_view(L, -1, owner);
		rc = sbi_artifact_set_mat(a, name, m);
	} else if (lua_type(L, -1) == LUA_TSTRING) {
		size_t len;
		const char *s = lua_tolstring(L, -1, &len);
		rc = sbi_artifact_set_str(a, name, s, len);
	} else if (lua_type(L, -1) == LUA_TNUMBER)
		rc = sbi_artifact_set_num(a, name, lua_tonumber(L, -1));
	else if (lua_istable(L, -1)) {
		lua_Integer len = luaL_len(L, -1);
		if (len < 0 || len > (1 << 24)) /* a lying __len would overflow the buffer below */
			luaL_error(L, "%s: field '%s' is a list of %I strings, more than %d", what, name, len, 1 << 24);
		size_t n = (size_t)len;
		check_list(L, n, what, name);
		const char **v = lua_newuserdatauv(L, (n ? n : 1) * sizeof *v, 0);          /* [.., k, t, v] */
		size_t *lens = lua_newuserdatauv(L, (n ? n : 1) * sizeof *lens, 0);       /* [.., k, t, v, lens] */
		lua_createtable(L, (int)n, 0); /* [.., k, t, v, lens, anchor]: an __index may make fresh strings */
		for (size_t i = 0; i < n; i++) {
			lua_geti(L, -4, (lua_Integer)i + 1);
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "%s: field '%s' must be a list of strings", what, name);
			v[i] = lua_tolstring(L, -1, &lens[i]); /* binary strings (models) may hold NULs */
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		rc = sbi_artifact_set_strs(a, name, v, lens, n);
		lua_pop(L, 3);
	} else
		luaL_error(L, "%s: field '%s' has type %s; artifacts hold matrices, strings, numbers and "
		    "lists of strings", what, name, luaL_typename(L, -1));
	if (rc != SBI_OK)
		luaL_error(L, "out of memory");
}

sbi_artifact *
sbi__to_artifact(lua_State *L, int idx, const char *what)
{
	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	sbi__refuse_closing(L);
	/* The artifact is anchored in a userdata box so an error cannot leak
	 * it; the box also keeps it alive for the Mats moved into it (a view
	 * made before a later field raises stays valid). */
	sbi_artifact **box = push_box(L); /* [box] */
	int owner = lua_gettop(L);
	*box = sbi_artifact_alloc();
	if (*box == NULL)
		luaL_error(L, "out of memory");
	lua_pushnil(L);
	while (lua_next(L, idx)) { /* [box, k, v] */
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "%s: artifact field names must be strings", what);
		to_field(L, *box, owner, what);
		lua_pop(L, 1);
	}
	sbi_artifact *a = sbi_artifact_retain(*box); /* the caller's reference */
	lua_pop(L, 1);                                /* [] */
	return a;
}

