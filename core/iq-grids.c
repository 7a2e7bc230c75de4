/*
 * iq-grids: one definition of each IQ lattice table (see iq-grids.h for the
 * entry layout). The initializers are the generated core/iq-grids.inc, shared
 * with the CUDA tables; the array sizes are the .inc's own counts, so a table
 * that was regenerated with a different length fails to compile here instead
 * of silently reading past its end.
 */
#include "iq-grids.h"

#include "iq-grids.inc"

_Static_assert(IQ_GRID_IQ2XXS_N == 256, "iq2xxs grid size");
_Static_assert(IQ_GRID_IQ2XS_N == 512, "iq2xs grid size");
_Static_assert(IQ_GRID_IQ2S_N == 1024, "iq2s grid size");
_Static_assert(IQ_GRID_IQ3XXS_N == 256, "iq3xxs grid size");
_Static_assert(IQ_GRID_IQ3S_N == 512, "iq3s grid size");
_Static_assert(IQ_GRID_IQ1S_N == 2048, "iq1s grid size");

const uint64_t quant__iq2xxs_grid[256] = IQ_GRID_IQ2XXS_INIT;
const uint64_t quant__iq2xs_grid[512] = IQ_GRID_IQ2XS_INIT;
const uint64_t quant__iq2s_grid[1024] = IQ_GRID_IQ2S_INIT;
const uint32_t quant__iq3xxs_grid[256] = IQ_GRID_IQ3XXS_INIT;
const uint32_t quant__iq3s_grid[512] = IQ_GRID_IQ3S_INIT;
const uint64_t quant__iq1s_grid[2048] = IQ_GRID_IQ1S_INIT;

/* Parity of the low 7 bits of s, as a constant expression. */
#define KS_PAR(s)                                                                                  \
    ((((s) >> 0) ^ ((s) >> 1) ^ ((s) >> 2) ^ ((s) >> 3) ^ ((s) >> 4) ^ ((s) >> 5) ^ ((s) >> 6)) & 1)
#define KS(s) (uint8_t)((s) | (KS_PAR(s) << 7))
#define KS4(s) KS(s), KS((s) + 1), KS((s) + 2), KS((s) + 3)
#define KS16(s) KS4(s), KS4((s) + 4), KS4((s) + 8), KS4((s) + 12)
#define KS64(s) KS16(s), KS16((s) + 16), KS16((s) + 32), KS16((s) + 48)

const uint8_t quant__iq_ksigns[128] = {KS64(0), KS64(64)};
