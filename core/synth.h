/*
 * synth: writes a random-weight GGUF model of a named shape (`hearth synth`).
 *
 * The file has every tensor the real architecture has, typed by a quantization
 * mix, the metadata a loader needs and a small valid byte-level tokenizer, so
 * loaders, planners and kernels can be exercised at real sizes (up to 70B)
 * without downloading weights. Weights are random *block bytes*, not quantized
 * floats: codes are uniform random and each block's scale fields are set so
 * that the dequantized values have the requested standard deviation, which
 * keeps a forward pass finite and lets the file be written at disk speed.
 */
#ifndef HEARTH_SYNTH_H
#define HEARTH_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"
#include "model-presets.h"
#include "quant-mix.h"

#define SYNTH_DEFAULT_STD 0.02f

struct synth_opts {
    const struct model_preset *preset;
    const struct quant_mix *mix;
    uint64_t seed;    /* same seed, same bytes */
    bool header_only; /* data section left as a sparse hole: sizes only */
    uint32_t n_layer; /* 0: the preset's; else fewer (or more) blocks, for small test files */
    float std;        /* target std of matrix weights; 0: SYNTH_DEFAULT_STD */
    /*
     * > 0: norm weights 1 + uniform noise of this std (seeded per tensor), so a
     * reference comparison tells the norms apart (a swapped q/k norm, a wrong
     * head's slice); 0: all 1.0, as before.
     */
    float norm_std;
};

struct synth_stats {
    uint64_t file_size;    /* bytes of the finished file */
    uint64_t tensor_bytes; /* sum of tensor data sizes (no padding) */
    uint64_t n_tensors;
    uint64_t n_params;
    uint64_t type_count[HEARTH_DTYPE_COUNT];
    double seconds; /* wall time of the whole write */
};

/*
 * Writes the model to path (created or truncated). stats may be NULL. Errors:
 * INVALID_ARG for missing options, UNSUPPORTED when a mix has no type for a
 * tensor's shape, IO / NO_MEMORY from the writer. On failure a partial file may
 * remain at path.
 */
hearth_status synth_write(const struct synth_opts *opts, const char *path,
                          struct synth_stats *stats);

/*
 * Fills dst with n_blocks random blocks of type t whose dequantized values have
 * about std `std` and mean ~0 (F32/F16/BF16: uniform values). rng_state is a
 * struct rng (core/rng.h) advanced by the call. Types without a dequantizer
 * (to_float == NULL, e.g. IQ2_XXS) are UNSUPPORTED.
 */
struct rng;
hearth_status synth_fill(hearth_dtype t, uint64_t n_blocks, float std, struct rng *r, void *dst);

#endif
