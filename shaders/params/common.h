/*
 * params/common: lets one header declare a push-constant block for both GLSL
 * and C. glslc predefines VULKAN (GL_KHR_vulkan_glsl), so there the block is a
 * `layout(push_constant) uniform` named pc; in C it is a plain struct. Only
 * 32-bit scalars (uint32_t / float) appear in these structs, so std430 push
 * constant layout and the C layout agree without padding rules to remember.
 */
#ifndef HEARTH_VK_PARAMS_COMMON_H
#define HEARTH_VK_PARAMS_COMMON_H

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
