/* The activation functions of the networks (flows, classifiers): one
 * table maps each name to its sbi_act value explicitly, and one function
 * applies them. */
#ifndef SBI_ACT_H
#define SBI_ACT_H

#include "sbi/ad.h"

/* The values are stored in model files: never renumber. */
typedef enum sbi_act { SBI_ACT_TANH = 1, SBI_ACT_RELU = 2, SBI_ACT_ELU = 3, SBI_ACT_SILU = 4 } sbi_act;

/* The sbi_act named name ("tanh", "relu", "elu", "silu"); 0 when unknown. */
int sbi_act_parse(const char *name);

/* The accepted names for messages: "tanh, relu, elu or silu". */
const char *sbi_act_names(void);

/* 1 when act is an sbi_act value. */
int sbi_act_valid(int act);

/* act(h), elementwise on the tape; act must be valid (configurations are
 * checked when a network is made or loaded). */
sbi_var sbi_act_apply(sbi_tape *t, int act, sbi_var h);

#endif
