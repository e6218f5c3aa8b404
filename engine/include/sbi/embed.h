/* Embedding networks: an MLP e(x) that maps a (z-scored) observation to a
 * few learned features, trained jointly with the estimator that consumes
 * them (the context of a posterior flow, the x input of a ratio
 * classifier), so the loss's gradient reaches the embedding's weights.
 *
 * e(x) = h_L W_out + b_out with h_0 = x, h_l = act(h_{l-1} W_l + b_l) for
 * the `layers` hidden layers of widths hidden[0..layers); the output layer
 * is linear (the consumer's first layer follows it). Weights start at
 * PyTorch's default scale, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from
 * the stream (seed, SBI_STREAM_METHOD, "embd") so that adding an embedding
 * leaves the consumer's own initialization unchanged.
 *
 * Model-file form (inside a flow or classifier file of the version that
 * has an embedding): u64 out, u64 layers, u64 hidden[layers], u32 act; the
 * weights are part of the consumer's parameter list (after its own). */
#ifndef SBI_EMBED_H
#define SBI_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "sbi/ad.h"
#include "sbi/blob.h"
#include "sbi/err.h"

#define SBI_EMBED_MAX_LAYERS 8

typedef struct sbi_embed_config {
	size_t out;    /* features; 0 means no embedding */
	size_t layers; /* hidden layers, 0..SBI_EMBED_MAX_LAYERS */
	size_t hidden[SBI_EMBED_MAX_LAYERS];
	int act;       /* sbi_act of the hidden layers */
} sbi_embed_config;

typedef struct sbi_embed sbi_embed;

/* SBI_OK when cfg is a valid embedding of `in` inputs (errors name the
 * option: "embedding: ..."). */
int sbi_embed_check(const sbi_embed_config *cfg, size_t in, sbi_err *err);
/* 1 when a and b describe the same network. */
int sbi_embed_same(const sbi_embed_config *a, const sbi_embed_config *b);

/* The network with zero weights (caller frees with sbi_embed_free); NULL
 * with err set on a bad config or OOM. */
sbi_embed *sbi_embed_new(const sbi_embed_config *cfg, size_t in, sbi_err *err);
/* Draws the initial weights from seed's "embd" stream; -1 when out of memory. */
int sbi_embed_init(sbi_embed *e, uint64_t seed);
void sbi_embed_free(sbi_embed *e); /* NULL is fine */

/* Its parameters (owned by e), in the order of the model file. */
sbi_param **sbi_embed_params(sbi_embed *e, size_t *n);

/* e(x) for the rows of x (n x in) on the tape: n x out. */
sbi_var sbi_embed_forward(sbi_embed *e, sbi_tape *t, sbi_var x);

/* The configuration's model-file form. */
void sbi_embed_write_config(const sbi_embed_config *cfg, sbi_blobw *w);
/* Reads it; r->bad is set when it is truncated or out of range. */
void sbi_embed_read_config(sbi_embed_config *cfg, sbi_blobr *r);

#endif
