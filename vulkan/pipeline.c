/*
 * vulkan/pipeline: the shader table and lazily created compute pipelines.
 *
 * The table maps each enum vk_shader to its embedded SPIR-V (hearth_spv.h,
 * generated from shaders/CMakeLists.txt), its number of storage-buffer
 * bindings and its push-constant size (the shaders/params struct, so host and
 * shader cannot disagree). A pipeline is built on first use, through the
 * context's VkPipelineCache, and lives until the context dies: a model touches
 * a dozen variants, so building all ~70 up front would only cost start-up.
 * Every weight kernel (matvec, matmul, embed, all types and variants) has one
 * binding more than its tensors: the IQ grid buffer (iq-grids.c), read only by
 * the lattice types; one count per kernel keeps the table and the ops simple.
 * The *_f16_h variants declare 16-bit storage, so they may only be chosen
 * (vk__use_f16_h) on a device created with storageBuffer16BitAccess enabled.
 */
#include <string.h>

#include "hearth_spv.h"
#include "vk-internal.h"
#include "../shaders/params/attn.h"
#include "../shaders/params/eltwise.h"
#include "../shaders/params/embed.h"
#include "../shaders/params/kv.h"
#include "../shaders/params/matmul.h"
#include "../shaders/params/norm.h"
#include "../shaders/params/rope.h"

struct vk_shader_desc {
    const char *name;
    const uint32_t *code;
    const size_t *size;
    uint32_t n_bind;
    uint32_t push_size;
};

/* Weight types in the order of HEARTH_VK_WTYPES in shaders/CMakeLists.txt. */
#define VK_WTYPES(X)                                                                        \
    X(F32, f32) X(F16, f16) X(BF16, bf16) X(Q4_0, q4_0) X(Q4_1, q4_1) X(Q5_0, q5_0)         \
    X(Q5_1, q5_1) X(Q8_0, q8_0) X(Q2_K, q2_k) X(Q3_K, q3_k) X(Q4_K, q4_k) X(Q5_K, q5_k)     \
    X(Q6_K, q6_k) X(IQ4_NL, iq4_nl) X(IQ4_XS, iq4_xs) X(IQ2_XXS, iq2_xxs) X(IQ2_XS, iq2_xs) \
    X(IQ2_S, iq2_s) X(IQ3_XXS, iq3_xxs) X(IQ3_S, iq3_s) X(IQ1_S, iq1_s) X(IQ1_M, iq1_m)

int vk__wtype_index(hearth_dtype t)
{
    static const hearth_dtype order[] = {
#define X(T, t) HEARTH_DTYPE_##T,
        VK_WTYPES(X)
#undef X
    };
    _Static_assert(sizeof order / sizeof order[0] == VK_N_WTYPES, "weight type list");
    for (int i = 0; i < VK_N_WTYPES; i++)
        if (order[i] == t)
            return i;
    return -1;
}

bool vk__use_f16_h(const struct vk_ctx *ctx, hearth_dtype t, uint64_t w_off)
{
    return t == HEARTH_DTYPE_F16 && ctx->use_16bit && w_off % 8 == 0;
}

#define MM sizeof(struct vk_matmul_params)
static const struct vk_shader_desc vk_shaders[VK_SH_COUNT] = {
#define X(T, t) {"matvec_" #t, hearth_spv_matvec_##t, &hearth_spv_matvec_##t##_size, 5, MM},
    VK_WTYPES(X)
#undef X
#define X(T, t) {"matvec_" #t "_sg", hearth_spv_matvec_##t##_sg, &hearth_spv_matvec_##t##_sg_size, \
                 5, MM},
    VK_WTYPES(X)
#undef X
#define X(T, t) {"matmul_" #t, hearth_spv_matmul_##t, &hearth_spv_matmul_##t##_size, 5, MM},
    VK_WTYPES(X)
#undef X
#define X(T, t) {"embed_" #t, hearth_spv_embed_##t, &hearth_spv_embed_##t##_size, 4, \
                 sizeof(struct vk_embed_params)},
    VK_WTYPES(X)
#undef X
#define X(T, t) {"matvec1_" #t, hearth_spv_matvec1_##t, &hearth_spv_matvec1_##t##_size, 5, MM},
    VK_WTYPES(X)
#undef X
#define X(T, t) {"matvec1_" #t "_sg", hearth_spv_matvec1_##t##_sg,                            \
                 &hearth_spv_matvec1_##t##_sg_size, 5, MM},
    VK_WTYPES(X)
#undef X
    [VK_SH_RMSNORM] = {"rmsnorm", hearth_spv_rmsnorm, &hearth_spv_rmsnorm_size, 3,
                       sizeof(struct vk_rmsnorm_params)},
    [VK_SH_RMSNORM_SG] = {"rmsnorm_sg", hearth_spv_rmsnorm_sg, &hearth_spv_rmsnorm_sg_size, 3,
                          sizeof(struct vk_rmsnorm_params)},
    [VK_SH_ROPE] = {"rope", hearth_spv_rope, &hearth_spv_rope_size, 3, sizeof(struct vk_rope_params)},
    [VK_SH_KV_STORE] = {"kv_store", hearth_spv_kv_store, &hearth_spv_kv_store_size, 5,
                        sizeof(struct vk_kv_store_params)},
    [VK_SH_ATTENTION] = {"attention", hearth_spv_attention, &hearth_spv_attention_size, 5,
                         sizeof(struct vk_attn_params)},
    [VK_SH_SWIGLU] = {"swiglu", hearth_spv_swiglu, &hearth_spv_swiglu_size, 2,
                      sizeof(struct vk_eltwise_params)},
    [VK_SH_GEGLU] = {"geglu", hearth_spv_geglu, &hearth_spv_geglu_size, 2,
                     sizeof(struct vk_eltwise_params)},
    [VK_SH_ADD] = {"add", hearth_spv_add, &hearth_spv_add_size, 2, sizeof(struct vk_eltwise_params)},
    [VK_SH_SCALE] = {"scale", hearth_spv_scale, &hearth_spv_scale_size, 2,
                     sizeof(struct vk_eltwise_params)},
    [VK_SH_MATVEC_F16_H] = {"matvec_f16_h", hearth_spv_matvec_f16_h, &hearth_spv_matvec_f16_h_size,
                            5, MM},
    [VK_SH_MATVEC_F16_H_SG] = {"matvec_f16_h_sg", hearth_spv_matvec_f16_h_sg,
                               &hearth_spv_matvec_f16_h_sg_size, 5, MM},
    [VK_SH_MATMUL_F16_H] = {"matmul_f16_h", hearth_spv_matmul_f16_h, &hearth_spv_matmul_f16_h_size,
                            5, MM},
    [VK_SH_EMBED_F16_H] = {"embed_f16_h", hearth_spv_embed_f16_h, &hearth_spv_embed_f16_h_size, 4,
                           sizeof(struct vk_embed_params)},
    [VK_SH_MATVEC1_F16_H] = {"matvec1_f16_h", hearth_spv_matvec1_f16_h,
                             &hearth_spv_matvec1_f16_h_size, 5, MM},
    [VK_SH_MATVEC1_F16_H_SG] = {"matvec1_f16_h_sg", hearth_spv_matvec1_f16_h_sg,
                                &hearth_spv_matvec1_f16_h_sg_size, 5, MM},
    [VK_SH_KV_STORE_Q] = {"kv_store_q", hearth_spv_kv_store_q, &hearth_spv_kv_store_q_size, 3,
                          sizeof(struct vk_kvq_store_params)},
    [VK_SH_ATTENTION_KVQ] = {"attention_kvq", hearth_spv_attention_kvq,
                             &hearth_spv_attention_kvq_size, 10, sizeof(struct vk_attn_kvq_params)},
    [VK_SH_KV_CENTER] = {"kv_center", hearth_spv_kv_center, &hearth_spv_kv_center_size, 3,
                         sizeof(struct vk_kv_center_params)},
    [VK_SH_KV_EXACT] = {"kv_exact", hearth_spv_kv_exact, &hearth_spv_kv_exact_size, 2,
                        sizeof(struct vk_kv_exact_params)},
    [VK_SH_KV_RING] = {"kv_ring", hearth_spv_kv_ring, &hearth_spv_kv_ring_size, 5,
                       sizeof(struct vk_kv_ring_params)},
    [VK_SH_ATTENTION_COMBINE] = {"attention_combine", hearth_spv_attention_combine,
                                 &hearth_spv_attention_combine_size, 2,
                                 sizeof(struct vk_attn_combine_params)},
};
#undef MM

static void pipeline_free(struct vk_ctx *ctx, struct vk_pipeline *p)
{
    if (p->pipe)
        vkDestroyPipeline(ctx->dev, p->pipe, NULL);
    if (p->layout)
        vkDestroyPipelineLayout(ctx->dev, p->layout, NULL);
    if (p->dsl)
        vkDestroyDescriptorSetLayout(ctx->dev, p->dsl, NULL);
    memset(p, 0, sizeof *p);
}

hearth_status vk__pipeline_get(struct vk_ctx *ctx, enum vk_shader id, struct vk_pipeline **out)
{
    hearth_status st = HEARTH_OK;
    struct vk_pipeline *p = &ctx->pipes[id];
    *out = p;
    if (p->pipe)
        return HEARTH_OK;
    const struct vk_shader_desc *d = &vk_shaders[id];
    VkShaderModule mod = VK_NULL_HANDLE;
    VkDescriptorSetLayoutBinding b[VK_MAX_BIND];
    for (uint32_t i = 0; i < d->n_bind; i++)
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VkDescriptorSetLayoutCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = d->n_bind,
        .pBindings = b,
    };
    VK_TRY(vkCreateDescriptorSetLayout(ctx->dev, &dci, NULL, &p->dsl), fail);
    VkPushConstantRange pr = {
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        .offset = 0,
        .size = d->push_size,
    };
    VkPipelineLayoutCreateInfo lci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &p->dsl,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &pr,
    };
    VK_TRY(vkCreatePipelineLayout(ctx->dev, &lci, NULL, &p->layout), fail);
    VkShaderModuleCreateInfo mci = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = *d->size,
        .pCode = d->code,
    };
    VK_TRY(vkCreateShaderModule(ctx->dev, &mci, NULL, &mod), fail);
    VkComputePipelineCreateInfo cci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
            .stage = VK_SHADER_STAGE_COMPUTE_BIT,
            .module = mod,
            .pName = "main",
        },
        .layout = p->layout,
    };
    VK_TRY(vkCreateComputePipelines(ctx->dev, ctx->pcache, 1, &cci, NULL, &p->pipe), fail);
    vkDestroyShaderModule(ctx->dev, mod, NULL);
    p->n_bind = d->n_bind;
    p->push_size = d->push_size;
    return HEARTH_OK;
fail:
    if (mod)
        vkDestroyShaderModule(ctx->dev, mod, NULL);
    pipeline_free(ctx, p);
    return err_prefix(st, "vulkan: pipeline %s", d->name);
}

void vk__pipelines_destroy(struct vk_ctx *ctx)
{
    for (int i = 0; i < VK_SH_COUNT; i++)
        pipeline_free(ctx, &ctx->pipes[i]);
    vk__iq_grids_destroy(ctx); /* the one buffer the pipelines own (vk_ctx_destroy calls this) */
}
