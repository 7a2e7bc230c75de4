/*
 * params/iq-grids: the layout of the IQ lattice-grid buffer (vulkan/iq-grids.c
 * uploads it once per context; common/dequant.glsl reads it as `uint iqg[]`).
 *
 * The six tables of core/iq-grids.h back to back as 32-bit words, at the word
 * offsets below. A 64-bit entry (8-wide grids) is two words, low word first:
 * elements 0..3 of entry i are word OFF + 2i, elements 4..7 word OFF + 2i + 1,
 * element e in byte e % 4 (the little-endian split of the uint64_t). A 32-bit
 * entry (4-wide grids: IQ3_XXS, IQ3_S) is one word, OFF + i. IQ1_M reads the
 * IQ1_S table. Every offset is even, so a 64-bit entry never straddles
 * anything but its own two words.
 */
#ifndef HEARTH_VK_PARAMS_IQ_GRIDS_H
#define HEARTH_VK_PARAMS_IQ_GRIDS_H

/* entries per table */
#define VK_IQ_N_IQ2XXS 256u  /* uint64 */
#define VK_IQ_N_IQ2XS 512u   /* uint64 */
#define VK_IQ_N_IQ2S 1024u   /* uint64 */
#define VK_IQ_N_IQ3XXS 256u  /* uint32 */
#define VK_IQ_N_IQ3S 512u    /* uint32 */
#define VK_IQ_N_IQ1S 2048u   /* uint64 */

/* word offsets (unsigned in both languages: GLSL indexes with uint) */
#define IQ_OFF_IQ2XXS 0u
#define IQ_OFF_IQ2XS (IQ_OFF_IQ2XXS + 2u * VK_IQ_N_IQ2XXS)  /* 512 */
#define IQ_OFF_IQ2S (IQ_OFF_IQ2XS + 2u * VK_IQ_N_IQ2XS)     /* 1536 */
#define IQ_OFF_IQ3XXS (IQ_OFF_IQ2S + 2u * VK_IQ_N_IQ2S)     /* 3584 */
#define IQ_OFF_IQ3S (IQ_OFF_IQ3XXS + VK_IQ_N_IQ3XXS)       /* 3840 */
#define IQ_OFF_IQ1S (IQ_OFF_IQ3S + VK_IQ_N_IQ3S)           /* 4352 */
#define VK_IQ_GRID_WORDS (IQ_OFF_IQ1S + 2u * VK_IQ_N_IQ1S)  /* 8448 words, 33 KiB */

#endif
