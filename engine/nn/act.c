/* Activation functions (see act.h). */
#include <string.h>

#include "sbi/act.h"
#include "sbi/err.h"

static const struct {
	const char *name;
	sbi_act act;
} acts[] = {
	{ "tanh", SBI_ACT_TANH },
	{ "relu", SBI_ACT_RELU },
	{ "elu", SBI_ACT_ELU },
	{ "silu", SBI_ACT_SILU },
};

int
sbi_act_parse(const char *name)
{
	for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
		if (strcmp(acts[i].name, name) == 0)
			return (int)acts[i].act;
	return 0;
}

const char *
sbi_act_names(void)
{
	return "tanh, relu, elu or silu";
}

int
sbi_act_valid(int act)
{
	for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
		if ((int)acts[i].act == act)
			return 1;
	return 0;
}

sbi_var
sbi_act_apply(sbi_tape *t, int act, sbi_var h)
{
	switch (act) {
	case SBI_ACT_RELU: return sbi_ad_relu(t, h);
	case SBI_ACT_ELU: return sbi_ad_elu(t, h);
	case SBI_ACT_SILU: return sbi_ad_silu(t, h);
	case SBI_ACT_TANH: return sbi_ad_tanh(t, h);
	}
	/* Not an activation: networks check theirs when made or loaded. */
	SBI_ASSERT(sbi_act_valid(act));
	return -1;
}
