/*
 * engine: picks the CPU forward pass or the scheduler and a placement for it
 * (see engine.h), then forwards every call to the one it picked.
 *
 * Invariants: exactly one of fc / sched is set after a successful create;
 * dev[0] is a CPU device opened with the caller's thread count whenever the
 * scheduler runs (the scheduler's CPU blocks and the embedding use it); dev[]
 * entries outlive the sched, which borrows them.
 *
 * The planner (plan.h) decides per tensor; the scheduler takes one device per
 * block (attention, FFN, output head). Until the scheduler accepts per-tensor
 * placement, the engine derives a block placement from the plan: each layer's
 * attention goes where the plan computes attention (it must sit with its KV
 * cache), its FFN where the plan computes most of the layer's FFN bytes, the
 * output head where the plan computes the LM head; the embedding lookup stays
 * on the CPU (a row gather from the file mapping). So a plan that splits one
 * layer's FFN matrices across devices is rounded to the majority device, and
 * host weights the plan would stream to a GPU for prefill are computed by the
 * CPU. Sizes come from the plan's own accounting, which differs a little from
 * what the scheduler allocates, and the driver's free figure can be
 * optimistic; when the scheduler then runs out of device memory, the engine
 * retries with a quarter fewer GPU layers (the last ones move to the CPU, and
 * the output head with them), up to ENGINE_RETRIES times, and says so in the
 * description. Replanning with a smaller budget was rejected: the plan was
 * made from the free memory reported a moment ago, so what is wrong is its
 * accounting, and only the scheduler's allocation tells what really fits.
 *
 * Alternatives rejected: teaching generate.c / perplexity.c / api.c about two
 * kinds of context (four copies of the same dispatch); always using the
 * scheduler with every block on the CPU (bit-identical, but forward.c is the
 * tuned single-device path and the multi-sequence work lives there).
 */
#include "engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "cpu/forward.h"
#include "err.h"
#include "kv-quant.h"
#include "placement.h"
#include "plan.h"
#include "scheduler.h"
#include "threadpool.h"

#define ENGINE_RETRIES 8
#define ENGINE_DESC 768

struct engine {
    const struct model *m;
    struct forward_ctx *fc;   /* the CPU path, or NULL */
    struct sched *sched;      /* the device path, or NULL */
    int n_dev;
    struct hearth_device *dev[ENGINE_MAX_DEVICES]; /* [n_dev]; dev[0] the CPU */
    char dev_name[ENGINE_MAX_DEVICES][32];
    struct placement *pl;     /* the scheduler's placement (device path only) */
    int n_threads;
    int n_gpu_layers;
    int kv_type_k, kv_type_v; /* enum kvq_type of the cache, on whichever path */
    char desc[ENGINE_DESC];
};

struct engine_params engine_params_default(void)
{
    struct engine_params p;
    memset(&p, 0, sizeof p);
    p.ngl = ENGINE_NGL_UNSET;
    return p;
}

bool engine__is_software_device(const char *desc)
{
    static const char *const soft[] = {"llvmpipe", "lavapipe", "SwiftShader", "softpipe"};
    for (size_t i = 0; desc && i < sizeof soft / sizeof soft[0]; i++)
        if (strstr(desc, soft[i]))
            return true;
    return false;
}

/* ---- description ------------------------------------------------------------ */

/* Appends printf-style to e->desc, truncating silently (it is a display line). */
static void desc_add(struct engine *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void desc_add(struct engine *e, const char *fmt, ...)
{
    size_t len = strlen(e->desc);
    if (len + 1 >= sizeof e->desc)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->desc + len, sizeof e->desc - len, fmt, ap);
    va_end(ap);
}

static double mib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0);
}

/* "layers 0-11 attention+ffn on vulkan0, layers 12-29 attention+ffn on cpu, output on ..." */
static void describe_placement(struct engine *e, const char *how)
{
    const struct placement *p = e->pl;
    desc_add(e, "plan: ");
    uint32_t il = 0;
    while (il < p->n_layer) {
        int a = placement_get(p, il, PLACEMENT_ATTN), f = placement_get(p, il, PLACEMENT_FFN);
        uint32_t end = il + 1;
        while (end < p->n_layer && placement_get(p, end, PLACEMENT_ATTN) == a &&
               placement_get(p, end, PLACEMENT_FFN) == f)
            end++;
        if (end - il == 1)
            desc_add(e, "%slayer %u ", il ? ", " : "", il);
        else
            desc_add(e, "%slayers %u-%u ", il ? ", " : "", il, end - 1);
        if (a == f)
            desc_add(e, "attention+ffn on %s", e->dev_name[a]);
        else
            desc_add(e, "attention on %s, ffn on %s", e->dev_name[a], e->dev_name[f]);
        il = end;
    }
    desc_add(e, ", output on %s;", e->dev_name[p->out_dev]);
    for (int d = 1; d < e->n_dev; d++)
        desc_add(e, " %.0f MiB on %s,", mib(sched_device_bytes(e->sched, d)), e->dev_name[d]);
    desc_add(e, " %.0f MiB host (%s)", mib(sched_device_bytes(e->sched, 0)), how);
}

static void describe_cpu(struct engine *e, const char *why)
{
    char kvt[32];
    kvq_pair_name(e->kv_type_k, e->kv_type_v, kvt, sizeof kvt);
    desc_add(e, "plan: all %u layers and output on cpu; %.0f MiB host KV cache, %s (%s)",
             e->m->hp.n_layer, mib(forward_kv_bytes(e->fc)), kvt, why);
}

/* ---- devices ------------------------------------------------------------------ */

/* Index 0 is kept for the CPU device, opened only once a GPU takes part. */
static hearth_status open_cpu(struct engine *e)
{
    struct cpu_backend_params cp = {e->n_threads, -1, "cpu"};
    return cpu_backend_device_create(&cp, &e->dev[0]);
}

static void close_devices(struct engine *e)
{
    for (int i = e->n_dev - 1; i >= 0; i--)
        backend_device_destroy(e->dev[i]);
    memset(e->dev, 0, sizeof e->dev);
    e->n_dev = 0;
}

static hearth_status add_gpu(struct engine *e, const char *name)
{
    for (int i = 0; i < e->n_dev; i++)
        if (!strcmp(e->dev_name[i], name))
            return err_set(HEARTH_ERR_INVALID_ARG, "device %s named twice", name);
    if (e->n_dev >= ENGINE_MAX_DEVICES)
        return err_set(HEARTH_ERR_INVALID_ARG, "at most %d GPU devices (device %s)",
                       ENGINE_MAX_DEVICES - 1, name);
    hearth_status st = reg_device_open(name, &e->dev[e->n_dev]);
    if (st != HEARTH_OK)
        return st;
    snprintf(e->dev_name[e->n_dev], sizeof e->dev_name[0], "%s", name);
    e->n_dev++;
    return HEARTH_OK;
}

/*
 * Opens the GPUs to use. Named devices: exactly those ("cpu" is implied and
 * skipped). None named: every listed non-CPU device that opens, skipping
 * software rasterizers unless the user asked for offload with -ngl.
 */
static hearth_status open_gpus(struct engine *e, const struct engine_params *p)
{
    hearth_status st;
    if (p->n_devices > 0) {
        for (int i = 0; i < p->n_devices; i++) {
            if (!p->devices[i])
                return err_set(HEARTH_ERR_INVALID_ARG, "device %d: no name", i);
            if (!strcmp(p->devices[i], "cpu"))
                continue;
            if ((st = add_gpu(e, p->devices[i])) != HEARTH_OK)
                return st;
        }
        return HEARTH_OK;
    }
    struct reg_device_info info[ENGINE_MAX_DEVICES * 2];
    int n = reg_list_devices(info, ENGINE_MAX_DEVICES * 2);
    if (n > ENGINE_MAX_DEVICES * 2)
        n = ENGINE_MAX_DEVICES * 2;
    for (int i = 0; i < n && e->n_dev < ENGINE_MAX_DEVICES; i++) {
        if (!strcmp(info[i].name, "cpu"))
            continue;
        if (p->ngl == ENGINE_NGL_UNSET && engine__is_software_device(info[i].desc))
            continue;
        if (add_gpu(e, info[i].name) != HEARTH_OK)
            err_clear(); /* listed but not usable (a backend that cannot open yet) */
    }
    return HEARTH_OK;
}

/* ---- placements ------------------------------------------------------------ */

/*
 * -ngl N: layers [0, min(N, n_layer)) on the GPUs, contiguous ranges in order,
 * each GPU's share proportional to its free memory now; the output head on
 * the last GPU when N > n_layer.
 */
static hearth_status place_ngl(struct engine *e, int ngl)
{
    struct placement *p = e->pl;
    hearth_status st = placement_from_ngl(p, ngl, 1, 0);
    if (st != HEARTH_OK || e->n_dev <= 2)
        return st;
    uint32_t n_gpu = (uint32_t)ngl < p->n_layer ? (uint32_t)ngl : p->n_layer;
    uint64_t free_b[ENGINE_MAX_DEVICES], total = 0;
    for (int d = 1; d < e->n_dev; d++) {
        uint64_t tot;
        backend_device_memory(e->dev[d], &free_b[d], &tot);
        free_b[d] = free_b[d] ? free_b[d] : 1;
        total += free_b[d];
    }
    uint32_t il = 0;
    uint64_t acc = 0;
    for (int d = 1; d < e->n_dev; d++) {
        acc += free_b[d];
        uint32_t end = d == e->n_dev - 1 ? n_gpu : (uint32_t)(acc * n_gpu / total);
        for (; il < end; il++) {
            placement_set(p, il, PLACEMENT_ATTN, d);
            placement_set(p, il, PLACEMENT_FFN, d);
        }
    }
    if (p->out_dev != 0)
        p->out_dev = e->n_dev - 1;
    return HEARTH_OK;
}

/* The device computing most of layer il's FFN bytes in plan pn (see the file comment). */
static int plan_ffn_dev(const struct plan_model *pm, const struct plan *pn, uint32_t il)
{
    if (pn->layers[il].ffn_dev >= 0)
        return pn->layers[il].ffn_dev;
    uint64_t bytes[PLAN_MAX_DEVICES] = {0};
    for (size_t i = 0; i < pm->n_tensors; i++) {
        const struct plan_model_tensor *t = &pm->tensors[i];
        if (t->layer != (int32_t)il ||
            (t->role != PLAN_ROLE_FFN && t->role != PLAN_ROLE_FFN_NORM &&
             t->role != PLAN_ROLE_EXPERT))
            continue;
        int c = pn->tensors[i].compute;
        if (c >= 0 && c < PLAN_MAX_DEVICES)
            bytes[c] += t->nbytes;
    }
    int best = PLAN_HOST;
    for (int d = 0; d < PLAN_MAX_DEVICES; d++)
        if (bytes[d] > bytes[best])
            best = d;
    return best;
}

/*
 * -ngl auto: plans against the opened GPUs' free memory now, each scaled by
 * share, and derives the block placement.
 * Plan device i is engine device i (the host is 0 in both).
 */
static hearth_status place_plan(struct engine *e, uint32_t n_ctx, int n_batch, double share)
{
    struct plan_model pm;
    struct plan pn;
    memset(&pm, 0, sizeof pm);
    memset(&pn, 0, sizeof pn);
    hearth_status st = plan_model_from_gguf(e->m->gguf, &pm);
    if (st != HEARTH_OK)
        return st;
    struct plan_devices pd;
    plan_devices_init(&pd);
    uint64_t free_b, total_b;
    backend_device_memory(e->dev[0], &free_b, &total_b);
    if (total_b) {
        pd.dev[PLAN_HOST].budget_bytes = total_b;
        pd.dev[PLAN_HOST].budget_assumed = false;
    }
    for (int d = 1; d < e->n_dev; d++) {
        struct hearth_device_props props;
        backend_device_props(e->dev[d], &props);
        backend_device_memory(e->dev[d], &free_b, &total_b);
        struct plan_device *g = &pd.dev[pd.n++];
        memset(g, 0, sizeof *g);
        snprintf(g->name, sizeof g->name, "%s", e->dev_name[d]);
        bool cuda = !strncmp(e->dev_name[d], "cuda", 4);
        g->kind = cuda ? PLAN_DEV_CUDA : PLAN_DEV_VULKAN;
        g->budget_bytes = (uint64_t)((double)(free_b ? free_b : total_b) * share);
        g->mem_bw = props.bw_gbps > 0 ? props.bw_gbps * 1e9
                    : cuda                ? PLAN_DEFAULT_CUDA_BW
                                          : PLAN_DEFAULT_VULKAN_BW;
        g->flops = cuda ? PLAN_DEFAULT_CUDA_FLOPS : PLAN_DEFAULT_VULKAN_FLOPS;
        g->h2d_bw = PLAN_DEFAULT_PCIE_BW;
        g->mem_bw_assumed = !(props.bw_gbps > 0);
        g->flops_assumed = g->h2d_bw_assumed = true;
    }
    struct plan_opts po;
    plan_opts_default(&po);
    po.n_ctx = n_ctx;
    po.n_parallel = 1;
    po.n_batch = (uint32_t)n_batch;
    po.n_gpu_layers = -1;
    po.kv_type_k = e->kv_type_k;
    po.kv_type_v = e->kv_type_v;
    if ((st = plan_make(&pm, &pd, &po, &pn)) != HEARTH_OK) {
        plan_model_free(&pm);
        return st;
    }
    struct placement *p = e->pl;
    for (uint32_t il = 0; il < p->n_layer && il < pn.n_layer; il++) {
        int a = pn.layers[il].attn_dev, f = plan_ffn_dev(&pm, &pn, il);
        placement_set(p, il, PLACEMENT_ATTN, a >= 0 && a < e->n_dev ? a : 0);
        placement_set(p, il, PLACEMENT_FFN, f >= 0 && f < e->n_dev ? f : 0);
    }
    p->embd_dev = 0;
    p->out_dev = 0;
    for (size_t i = 0; i < pm.n_tensors; i++)
        if (pm.tensors[i].role == PLAN_ROLE_OUTPUT && pn.tensors[i].compute < e->n_dev)
            p->out_dev = pn.tensors[i].compute;
    plan_free(&pn);
    plan_model_free(&pm);
    return HEARTH_OK;
}

static int count_gpu_layers(const struct placement *p)
{
    int n = 0;
    for (uint32_t il = 0; il < p->n_layer; il++)
        n += placement_get(p, il, PLACEMENT_ATTN) != 0 || placement_get(p, il, PLACEMENT_FFN) != 0;
    return n;
}

/* Keeps the first n_keep layers that use a GPU where they are; the rest and the output: CPU. */
static void keep_gpu_layers(struct placement *p, int n_keep)
{
    int seen = 0;
    for (uint32_t il = 0; il < p->n_layer; il++) {
        if (placement_get(p, il, PLACEMENT_ATTN) == 0 && placement_get(p, il, PLACEMENT_FFN) == 0)
            continue;
        if (++seen > n_keep) {
            placement_set(p, il, PLACEMENT_ATTN, 0);
            placement_set(p, il, PLACEMENT_FFN, 0);
        }
    }
    p->out_dev = 0;
}

/* ---- create ---------------------------------------------------------------- */

static hearth_status create_cpu(struct engine *e, const struct engine_params *p, const char *why)
{
    struct forward_params fp = forward_params_default();
    fp.n_ctx = p->n_ctx;
    fp.n_threads = p->n_threads;
    fp.n_batch = p->n_batch;
    fp.kv_type_k = p->kv_type_k;
    fp.kv_type_v = p->kv_type_v;
    hearth_status st = forward_create(e->m, &fp, &e->fc);
    if (st != HEARTH_OK)
        return st;
    e->n_threads = forward_n_threads(e->fc);
    describe_cpu(e, why);
    return HEARTH_OK;
}

static hearth_status sched_build(struct engine *e, uint32_t n_ctx, int n_batch)
{
    struct sched_params sp = sched_params_default();
    sp.n_ctx = n_ctx;
    sp.n_batch = n_batch;
    sp.n_devices = e->n_dev;
    sp.devices = e->dev;
    sp.placement = e->pl;
    sp.map_host_weights = true;
    sp.kv_type_k = e->kv_type_k;
    sp.kv_type_v = e->kv_type_v;
    return sched_create(e->m, &sp, &e->sched);
}

hearth_status engine_create(const struct model *m, const struct engine_params *p,
                            struct engine **out)
{
    *out = NULL;
    if (!m || !p)
        return err_set(HEARTH_ERR_INVALID_ARG, "engine_create: NULL argument");
    if (p->ngl < ENGINE_NGL_UNSET)
        return err_set(HEARTH_ERR_INVALID_ARG, "engine: -ngl %d", p->ngl);
    if (p->n_devices < 0 || (p->n_devices > 0 && !p->devices))
        return err_set(HEARTH_ERR_INVALID_ARG, "engine: %d devices", p->n_devices);
    struct engine *e = calloc(1, sizeof *e);
    if (!e)
        return err_set(HEARTH_ERR_NO_MEMORY, "engine: out of memory");
    e->m = m;
    e->kv_type_k = p->kv_type_k;
    e->kv_type_v = p->kv_type_v;
    e->n_threads = p->n_threads > 0 ? p->n_threads : threadpool_default_threads();
    const uint32_t n_ctx = p->n_ctx ? p->n_ctx : m->hp.n_ctx_train;
    const int n_batch = p->n_batch > 0 ? p->n_batch : 64;
    char how[160];
    hearth_status st;

    e->n_dev = 1; /* dev[0]: the CPU, opened below when a GPU takes part */
    snprintf(e->dev_name[0], sizeof e->dev_name[0], "cpu");
    /* named devices are opened even for -ngl 0, so that a misspelt name is an error */
    if ((p->ngl != 0 || p->n_devices > 0) && (st = open_gpus(e, p)) != HEARTH_OK)
        goto done;
    if (p->ngl == 0) {
        close_devices(e);
        st = create_cpu(e, p, "-ngl 0");
        goto done;
    }
    if (e->n_dev == 1) {
        close_devices(e);
        st = create_cpu(e, p,
                        p->n_devices > 0            ? "--device cpu"
                        : p->ngl != ENGINE_NGL_UNSET ? "no GPU device found; -ngl ignored"
                                                     : "no GPU device found");
        goto done;
    }
    if ((st = open_cpu(e)) != HEARTH_OK ||
        (st = placement_create(m->hp.n_layer, 0, &e->pl)) != HEARTH_OK)
        goto done;
    if (p->ngl >= 0) {
        if ((st = place_ngl(e, p->ngl)) != HEARTH_OK)
            goto done;
        snprintf(how, sizeof how, "-ngl %d", p->ngl);
        st = sched_build(e, n_ctx, n_batch);
        if (st == HEARTH_ERR_DEVICE_OOM)
            err_prefix(st, "-ngl %d does not fit (try fewer layers or -ngl auto)", p->ngl);
    } else {
        int attempt = 0, planned = 0;
        snprintf(how, sizeof how, "planner");
        st = place_plan(e, n_ctx, n_batch, 1.0);
        planned = st == HEARTH_OK ? count_gpu_layers(e->pl) : 0;
        while (st == HEARTH_OK) {
            int n_gpu = count_gpu_layers(e->pl);
            if (n_gpu == 0 && e->pl->out_dev == 0)
                break; /* nothing (left) on a GPU: the CPU path below */
            st = sched_build(e, n_ctx, n_batch);
            if (st != HEARTH_ERR_DEVICE_OOM || attempt == ENGINE_RETRIES)
                break;
            /* the plan's sizes were optimistic: a quarter fewer layers on the GPUs */
            attempt++;
            int keep = e->pl->out_dev != 0 ? n_gpu : n_gpu - (n_gpu + 3) / 4;
            keep_gpu_layers(e->pl, keep);
            snprintf(how, sizeof how, "planner placed %d layers; out of device memory, retried "
                     "with %d", planned, keep);
            err_clear();
            st = HEARTH_OK;
        }
        if (st == HEARTH_OK && !e->sched) {
            placement_free(e->pl);
            e->pl = NULL;
            close_devices(e);
            st = create_cpu(e, p, attempt ? "planner: out of device memory even for 1 layer"
                                          : "planner: no layer fits on a GPU");
            goto done;
        }
        if (st == HEARTH_ERR_DEVICE_OOM && attempt)
            err_prefix(st, "after %d retries with fewer GPU layers", attempt);
    }
    if (st != HEARTH_OK && p->n_devices == 0 && p->ngl == ENGINE_NGL_UNSET &&
        (st == HEARTH_ERR_UNSUPPORTED || st == HEARTH_ERR_DEVICE_OOM)) {
        /* nobody asked for this GPU: run where the model runs for sure, and say why */
        char why[200];
        snprintf(why, sizeof why, "%s unusable: %.150s", e->dev_name[1], hearth_last_error());
        err_clear();
        placement_free(e->pl);
        e->pl = NULL;
        close_devices(e);
        st = create_cpu(e, p, why);
        goto done;
    }
    if (st != HEARTH_OK)
        goto done;
    e->n_gpu_layers = count_gpu_layers(e->pl);
    describe_placement(e, how);
done:
    if (st != HEARTH_OK) {
        engine_destroy(e);
        return st;
    }
    *out = e;
    return HEARTH_OK;
}

void engine_destroy(struct engine *e)
{
    if (!e)
        return;
    sched_destroy(e->sched);
    forward_destroy(e->fc);
    placement_free(e->pl);
    close_devices(e);
    free(e);
}

hearth_status engine_eval(struct engine *e, const int32_t *tokens, int n_tokens, int pos0,
                          float *logits_out, bool all_logits)
{
    if (e->fc)
        return forward_eval(e->fc, tokens, n_tokens, pos0, logits_out, all_logits);
    return sched_eval(e->sched, tokens, n_tokens, pos0, logits_out, all_logits);
}

uint32_t engine_n_ctx(const struct engine *e)
{
    return e->fc ? forward_n_ctx(e->fc) : sched_n_ctx(e->sched);
}

uint32_t engine_n_past(const struct engine *e)
{
    return e->fc ? forward_n_past(e->fc) : sched_n_past(e->sched);
}

int engine_n_threads(const struct engine *e)
{
    return e->n_threads;
}

bool engine_uses_devices(const struct engine *e)
{
    return e->sched != NULL;
}

int engine_n_gpu_layers(const struct engine *e)
{
    return e->n_gpu_layers;
}

const char *engine_describe(const struct engine *e)
{
    return e->desc;
}
