/* luaopen_sbi_core: the sbi.core module, assembled from the binding
 * files, each of which adds its functions and userdata types. */
#include "sbi_config.h"

#include "lsbi.h"

/* [] -> [core] */
int
luaopen_sbi_core(lua_State *L)
{
	lua_newtable(L); /* [core] */
	sbi__open_core(L);
	sbi__open_stats(L);
	sbi__open_files(L);
	sbi__open_mat(L);
	sbi__open_rng(L);
	sbi__open_prior(L);
	sbi__open_hash(L);
	sbi__open_flow(L);
	sbi__open_mcmc(L);
	sbi__open_diagnose(L);
	sbi__open_classifier(L);
	sbi__open_summary(L);
	sbi__open_mlp(L);
	sbi__open_c2st(L);
	sbi__open_ode(L);
	sbi__open_plot(L);
	sbi__open_console(L);
	lua_pushstring(L, SBI_VERSION);
	lua_setfield(L, -2, "version");
	return 1;
}
