/*
 * params/common: lets one header declare a push-constant block for both GLSL
 * and C. glslc predefines VULKAN (GL_KHR_vulkan_glsl), so there the block is a
 * `layout(push_constant) uniform` named pc; in C it is a plain struct. Only
 * 32-bit scalars (uint32_t / float) appear in these structs, so std430 push
 * constant layout and the C layout agree without padding rules to remember.
 */
#ifndef HEARTH_VK_PARAMS_COMMON_H
#define HEARTH_VK_PARAMS_COMMON_H

/*
 * Command-buffer replay (vulkan/replay.c): a recorded decode step is
 * resubmitted for later tokens, so values that change per token cannot be
 * push constants. A shader that takes a position has a pos_slot push
 * constant: 0 means "use pos0", k > 0 means "read uint word k - 1 of the
 * step buffer", a small buffer the host rewrites (vkCmdUpdateBuffer) before
 * each replay.
 */
#define VK_STEP_SLOTS 8

#ifdef VULKAN
#define uint32_t uint
#define VK_PARAMS_BEGIN(name) layout(push_constant) uniform name {
#define VK_PARAMS_END(name) } pc;
#else
#include <stddef.h>
#include <stdint.h>
#define VK_PARAMS_BEGIN(name) struct name {
#define VK_PARAMS_END(name) };                                              \
    _Static_assert(sizeof(struct name) <= 128, #name " exceeds 128 bytes"); \
    _Static_assert(sizeof(struct name) % 4 == 0, #name " is not 32-bit scalars");
#endif

#endif
