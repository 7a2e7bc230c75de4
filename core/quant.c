/*
 * quant: the traits table of every ggml type id, and lookups on it.
 *
 * One static array indexed by type id; retired ids (4, 5, 31-33, 36-38) have
 * blck == 0 and read as "no type". Block sizes and byte sizes are the facts
 * sheet's §2 table. Types hearth cannot compute with (ternary, FP4,
 * Q1_0/Q2_0, integer tensors) still carry their sizes so the GGUF reader can
 * bound their tensors and `inspect` can list them; their to_float/from_float
 * are NULL. The grid IQ quants (IQ1_S/M, IQ2_*, IQ3_*) have to_float but no
 * from_float: hearth reads them and never writes them (synth makes random
 * blocks). The routines live in quant-float.c, quant-legacy.c, quant-k.c,
 * quant-iq.c and quant-iq2.c.
 *
 * vec_dot_type is the activation format the CPU dot product quantizes x to;
 * float weights use F32 activations (the dot product converts weights on the
 * fly), which is why F16/BF16 map to F32 rather than to themselves as in ggml.
 */
#include "quant.h"

#include <ctype.h>
#include <stddef.h>

#include "quant-internal.h"

#define T(id) HEARTH_DTYPE_##id
#define ROW(id, nm, bl, by, q, tf, ff, vd) \
    [T(id)] = {T(id), nm, bl, by, q, tf, ff, T(vd)}

static const struct quant_traits quant_table[HEARTH_DTYPE_COUNT] = {
    ROW(F32, "F32", 1, 4, false, quant__f32_to_float, quant__f32_from_float, F32),
    ROW(F16, "F16", 1, 2, false, quant__f16_to_float, quant__f16_from_float, F32),
    ROW(Q4_0, "Q4_0", 32, 18, true, quant__q4_0_to_float, quant__q4_0_from_float, Q8_0),
    ROW(Q4_1, "Q4_1", 32, 20, true, quant__q4_1_to_float, quant__q4_1_from_float, Q8_1),
    ROW(Q5_0, "Q5_0", 32, 22, true, quant__q5_0_to_float, quant__q5_0_from_float, Q8_0),
    ROW(Q5_1, "Q5_1", 32, 24, true, quant__q5_1_to_float, quant__q5_1_from_float, Q8_1),
    ROW(Q8_0, "Q8_0", 32, 34, true, quant__q8_0_to_float, quant__q8_0_from_float, Q8_0),
    ROW(Q8_1, "Q8_1", 32, 36, true, quant__q8_1_to_float, quant__q8_1_from_float, Q8_1),
    ROW(Q2_K, "Q2_K", 256, 84, true, quant__q2_k_to_float, quant__q2_k_from_float, Q8_K),
    ROW(Q3_K, "Q3_K", 256, 110, true, quant__q3_k_to_float, quant__q3_k_from_float, Q8_K),
    ROW(Q4_K, "Q4_K", 256, 144, true, quant__q4_k_to_float, quant__q4_k_from_float, Q8_K),
    ROW(Q5_K, "Q5_K", 256, 176, true, quant__q5_k_to_float, quant__q5_k_from_float, Q8_K),
    ROW(Q6_K, "Q6_K", 256, 210, true, quant__q6_k_to_float, quant__q6_k_from_float, Q8_K),
    ROW(Q8_K, "Q8_K", 256, 292, true, quant__q8_k_to_float, quant__q8_k_from_float, Q8_K),
    ROW(IQ2_XXS, "IQ2_XXS", 256, 66, true, quant__iq2_xxs_to_float, NULL, Q8_K),
    ROW(IQ2_XS, "IQ2_XS", 256, 74, true, quant__iq2_xs_to_float, NULL, Q8_K),
    ROW(IQ3_XXS, "IQ3_XXS", 256, 98, true, quant__iq3_xxs_to_float, NULL, Q8_K),
    ROW(IQ1_S, "IQ1_S", 256, 50, true, quant__iq1_s_to_float, NULL, Q8_K),
    ROW(IQ4_NL, "IQ4_NL", 32, 18, true, quant__iq4_nl_to_float, quant__iq4_nl_from_float, Q8_0),
    ROW(IQ3_S, "IQ3_S", 256, 110, true, quant__iq3_s_to_float, NULL, Q8_K),
    ROW(IQ2_S, "IQ2_S", 256, 82, true, quant__iq2_s_to_float, NULL, Q8_K),
    ROW(IQ4_XS, "IQ4_XS", 256, 136, true, quant__iq4_xs_to_float, quant__iq4_xs_from_float,
        Q8_K),
    ROW(I8, "I8", 1, 1, false, NULL, NULL, I8),
    ROW(I16, "I16", 1, 2, false, NULL, NULL, I16),
    ROW(I32, "I32", 1, 4, false, NULL, NULL, I32),
    ROW(I64, "I64", 1, 8, false, NULL, NULL, I64),
    ROW(F64, "F64", 1, 8, false, NULL, NULL, F64),
    ROW(IQ1_M, "IQ1_M", 256, 56, true, quant__iq1_m_to_float, NULL, Q8_K),
    ROW(BF16, "BF16", 1, 2, false, quant__bf16_to_float, quant__bf16_from_float, F32),
    ROW(TQ1_0, "TQ1_0", 256, 54, true, NULL, NULL, Q8_K),
    ROW(TQ2_0, "TQ2_0", 256, 66, true, NULL, NULL, Q8_K),
    ROW(MXFP4, "MXFP4", 32, 17, true, NULL, NULL, Q8_0),
    ROW(NVFP4, "NVFP4", 64, 36, true, NULL, NULL, Q8_0),
    ROW(Q1_0, "Q1_0", 128, 18, true, NULL, NULL, Q8_0),
    ROW(Q2_0, "Q2_0", 64, 18, true, NULL, NULL, Q8_0),
};

const struct quant_traits *quant_get(hearth_dtype t)
{
    if ((int)t < 0 || (int)t >= HEARTH_DTYPE_COUNT)
        return NULL;
    const struct quant_traits *q = &quant_table[t];
    return q->blck > 0 ? q : NULL;
}

bool quant_row_bytes(hearth_dtype t, uint64_t n, uint64_t *bytes)
{
    const struct quant_traits *q = quant_get(t);
    if (!q || n % (uint64_t)q->blck != 0)
        return false;
    uint64_t nb = n / (uint64_t)q->blck;
    if (nb > UINT64_MAX / q->block_bytes)
        return false;
    *bytes = nb * q->block_bytes;
    return true;
}

static bool quant_name_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return false;
    return *a == *b;
}

bool quant_from_name(const char *name, hearth_dtype *out)
{
    if (!name)
        return false;
    for (int i = 0; i < HEARTH_DTYPE_COUNT; i++) {
        const struct quant_traits *q = &quant_table[i];
        if (q->blck > 0 && quant_name_eq(name, q->name)) {
            *out = q->type;
            return true;
        }
    }
    return false;
}

const char *hearth_dtype_name(hearth_dtype t)
{
    const struct quant_traits *q = quant_get(t);
    return q ? q->name : NULL;
}
