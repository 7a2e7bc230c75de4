/*
 * engine: picks the CPU forward pass or the scheduler and a placement for it
 * (see engine.h), then forwards every call to the one it picked.
 *
 * Invariants: exactly one of fc / sched is set after a successful create;
 * dev[0] is a CPU device opened with the caller's thread count whenever the
 * scheduler runs (the scheduler's CPU blocks and the embedding use it); dev[]
 * entries outlive the sched, which borrows them.
 *
 * The planner (plan.h) decides, always: -ngl N is its manual mode (the first
 * N layers on the fastest GPU), no -ngl or -ngl auto its automatic one. It
 * plans with sched_layout (a layer's FFN is two units, gate/up and down, as
 * the scheduler's FFN and FFN_DOWN blocks run it; token_embd on the host)
 * and with streaming unless the caller's options say no_stream (host FFN
 * weights copied to the first GPU for batched prefill; a plan whose streamed
 * tensors give the scheduler no whole FFN block to stream is redone without,
 * rather than reserving a double buffer nothing would use), so the block
 * placement derived from it (placement_from_plan) is exactly the plan, and
 * the scheduler, whose every size comes from plan.h,
 * allocates exactly plan_device_alloc_bytes per device. Device budgets are
 * the free memory reported now; bandwidths come from the bandwidth cache
 * (`hearth devices` measures), else per-kind defaults marked assumed.
 *
 * When an allocation fails anyway (another program took memory, or the
 * driver's free figure was optimistic), the engine replans with that device's
 * budget set to what it really had: its free memory at the failure plus what
 * the load had allocated there, or only the latter when that sum would have
 * held the plan (then the free figure was the error). That is what the
 * loader may allocate, so the new budget is it plus the device's reserve
 * (plan__budget_for_usable), and budgets only shrink, so the retries end.
 * The load line says "replanned: vulkan0 had 812 MiB, not 1024 MiB" (budgets,
 * reserve included). Replaced: retrying with a quarter fewer layers, which
 * guessed where the real figure tells.
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

#define ENGINE_RETRIES 8 /* replans after an allocation failure */
#define ENGINE_DESC 768

struct engine {
    const struct model *m;
    struct forward_ctx *fc;   /* the CPU path, or NULL */
    struct sched *sched;      /* the device path, or NULL */
    int n_dev;
    struct hearth_device *dev[ENGINE_MAX_DEVICES]; /* [n_dev]; dev[0] the CPU */
    char dev_name[ENGINE_MAX_DEVICES][32];
    struct placement *pl;     /* the scheduler's placement (device path only) */
    struct plan plan;         /* what the scheduler allocated from (device path only) */
    int n_threads;
    int n_batch;              /* tokens per prefill batch, as chosen (engine.h) */
    int n_gpu_layers;
    int kv_type_k, kv_type_v; /* enum kvq_type of the cache, on whichever path */
    uint64_t vram_budget;     /* engine_params.vram_budget */
    char desc[ENGINE_DESC];
};

struct engine_params engine_params_default(void)
{
    struct engine_params p;
    memset(&p, 0, sizeof p);
    p.ngl = ENGINE_NGL_UNSET;
    return p;
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
        int a = placement_get(p, il, PLACEMENT_ATTN), f = placement_get(p, il, PLACEMENT_FFN),
            dn = placement_get(p, il, PLACEMENT_FFN_DOWN);
        uint32_t end = il + 1;
        while (end < p->n_layer && placement_get(p, end, PLACEMENT_ATTN) == a &&
               placement_get(p, end, PLACEMENT_FFN) == f &&
               placement_get(p, end, PLACEMENT_FFN_DOWN) == dn)
            end++;
        if (end - il == 1)
            desc_add(e, "%slayer %u ", il ? ", " : "", il);
        else
            desc_add(e, "%slayers %u-%u ", il ? ", " : "", il, end - 1);
        if (a == f && f == dn)
            desc_add(e, "attention+ffn on %s", e->dev_name[a]);
        else if (f == dn)
            desc_add(e, "attention on %s, ffn on %s", e->dev_name[a], e->dev_name[f]);
        else if (a == f)
            desc_add(e, "attention+ffn gate/up on %s, ffn down on %s", e->dev_name[a],
                     e->dev_name[dn]);
        else
            desc_add(e, "attention on %s, ffn gate/up on %s, ffn down on %s", e->dev_name[a],
                     e->dev_name[f], e->dev_name[dn]);
        il = end;
    }
    desc_add(e, ", output on %s;", e->dev_name[p->out_dev]);
    int n_str = placement_n_streamed_blocks(p);
    if (n_str > 0) {
        int tgt = -1;
        uint64_t bytes = 0;
        for (uint32_t l = 0; l < p->n_layer; l++)
            for (int b = PLACEMENT_FFN; b <= PLACEMENT_FFN_DOWN; b++) {
                int t = placement_get_stream(p, l, (enum placement_block)b);
                if (t < 0)
                    continue;
                tgt = t;
                const struct model_layer *ly = &e->m->layers[l];
                const struct model_weight *ws[3] = {&ly->ffn_gate, &ly->ffn_up, &ly->ffn_down};
                for (int k = b == PLACEMENT_FFN ? 0 : 2; k < (b == PLACEMENT_FFN ? 2 : 3); k++)
                    bytes += (uint64_t)ws[k]->row_bytes * (uint64_t)ws[k]->n_out;
            }
        desc_add(e, " %d ffn blocks (%.0f MiB) streamed to %s for batches of %d+ tokens;", n_str,
                 mib(bytes), e->dev_name[tgt], p->stream_min_batch);
    }
    for (int d = 1; d < e->n_dev; d++)
        desc_add(e, " %.0f MiB on %s,", mib(sched_device_bytes(e->sched, d)), e->dev_name[d]);
    desc_add(e, " %.0f MiB host (%s)", mib(sched_device_bytes(e->sched, 0)), how);
    /* the prediction of the plan that was allocated, so a run can be held against it */
    const struct plan *pl = &e->plan;
    if (!(pl->prefill_tps > 0 && pl->decode_tps > 0))
        return;
    desc_add(e, "; predicted %.0f tok/s prefill (%u-token prompt), %.2f tok/s decode",
             pl->prefill_tps, pl->opts.n_prompt, pl->decode_tps);
    int n_assumed = 0;
    for (int d = 0; d < pl->devs.n; d++) {
        const struct plan_device *pd = &pl->devs.dev[d];
        if (pl->use[d].total > 0 && (pd->mem_bw_assumed || pd->flops_assumed))
            desc_add(e, "%s%s", n_assumed++ ? ", " : " (figures assumed for ", pd->name);
    }
    if (n_assumed)
        desc_add(e, ": see `hearth devices`)");
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
        if (p->ngl == ENGINE_NGL_UNSET && reg_is_software_device(info[i].desc))
            continue;
        if (add_gpu(e, info[i].name) != HEARTH_OK)
            err_clear(); /* listed but not usable (a backend that cannot open yet) */
    }
    return HEARTH_OK;
}

/* ---- planning ---------------------------------------------------------------- */

/*
 * Measured figures from the bandwidth cache for plan device d, keyed as
 * `hearth devices` stores them: by the registry's name and description (an
 * opened device's description can carry run-time details such as threads).
 */
static void apply_cached(struct plan_devices *pd, int d, const char *name,
                         const struct reg_device_info *info, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(info[i].name, name))
            plan_devices_apply_cache(pd, d, info[i].desc);
}

/* Plan device descriptions of the opened devices: free memory, cached measured figures. */
static void describe_devices(struct engine *e, struct plan_devices *pd)
{
    plan_devices_init(pd);
    struct reg_device_info info[ENGINE_MAX_DEVICES * 2];
    int n = reg_list_devices(info, ENGINE_MAX_DEVICES * 2);
    if (n > ENGINE_MAX_DEVICES * 2)
        n = ENGINE_MAX_DEVICES * 2;
    uint64_t free_b, total_b;
    backend_device_memory(e->dev[0], &free_b, &total_b);
    if (total_b) {
        pd->dev[PLAN_HOST].budget_bytes = total_b;
        pd->dev[PLAN_HOST].budget_assumed = false;
    }
    /* the host first: a software GPU below takes its (measured) FLOP rate */
    apply_cached(pd, PLAN_HOST, e->dev_name[0], info, n);
    for (int d = 1; d < e->n_dev; d++) {
        struct hearth_device_props props;
        backend_device_props(e->dev[d], &props);
        backend_device_memory(e->dev[d], &free_b, &total_b);
        struct plan_device *g = &pd->dev[pd->n++];
        memset(g, 0, sizeof *g);
        snprintf(g->name, sizeof g->name, "%s", e->dev_name[d]);
        bool cuda = !strncmp(e->dev_name[d], "cuda", 4);
        g->kind = cuda ? PLAN_DEV_CUDA : PLAN_DEV_VULKAN;
        g->budget_bytes = free_b ? free_b : total_b;
        if (e->vram_budget && g->budget_bytes > e->vram_budget)
            g->budget_bytes = e->vram_budget; /* the user's cap, as plan --vram-budget */
        g->mem_bw = props.bw_gbps > 0 ? props.bw_gbps * 1e9
                    : cuda                ? PLAN_DEFAULT_CUDA_BW
                                          : PLAN_DEFAULT_VULKAN_BW;
        g->flops = cuda ? PLAN_DEFAULT_CUDA_FLOPS : PLAN_DEFAULT_VULKAN_FLOPS;
        /*
         * A software Vulkan driver (lavapipe) computes on the host's cores: a
         * GPU's assumed FLOP rate would make streaming host weights to it for
         * prefill look worthwhile when it only adds copies. Its own measured
         * rate, where cached, replaces this below.
         */
        if (!cuda && reg_is_software_device(props.desc))
            g->flops = pd->dev[PLAN_HOST].flops;
        g->h2d_bw = PLAN_DEFAULT_PCIE_BW;
        g->mem_bw_assumed = !(props.bw_gbps > 0);
        g->mem_bw_measured = props.bw_gbps > 0;
        g->flops_assumed = g->h2d_bw_assumed = true;
        g->maps_weights = props.host_memory;
        g->host_staging_bytes = props.host_staging_bytes;
        g->max_buffer_bytes = backend_device_max_buffer(e->dev[d]); /* what allocation enforces */
        g->software = reg_is_software_device(props.desc);
        apply_cached(pd, d, e->dev_name[d], info, n);
    }
}

static bool plan_uses_gpu(const struct placement *p)
{
    return placement_n_offloaded_layers(p) > 0 || p->out_dev != 0;
}

hearth_status engine__load_planned(const struct engine_load *in, struct sched **sched,
                                   struct placement **pl, struct plan *plan, char *how,
                                   size_t how_size)
{
    *sched = NULL;
    *pl = NULL;
    memset(plan, 0, sizeof *plan);
    if (!in || !in->m || in->n_dev < 1 || in->n_dev > PLAN_MAX_DEVICES ||
        in->devs.n != in->n_dev)
        return err_set(HEARTH_ERR_INVALID_ARG, "engine: %d devices for %d descriptions",
                       in ? in->n_dev : 0, in ? in->devs.n : 0);
    struct plan_model pm;
    hearth_status st = plan_model_from_gguf(in->m->gguf, &pm);
    if (st != HEARTH_OK)
        return st;
    struct plan_devices devs = in->devs;
    struct plan_opts po = in->opts;
    po.sched_layout = true; /* the scheduler's blocks: attention, gate/up, down */
    /* po.no_stream: the caller's (--no-stream) */
    if (po.n_parallel == 0)
        po.n_parallel = 1; /* each sequence's KV is part of the plan (slots: n_slots) */
    for (int d = 0; d < devs.n; d++) /* the loader maps weights exactly where it says */
        devs.dev[d].maps_weights = in->map_host_weights && devs.dev[d].maps_weights;
    if (how_size)
        how[0] = '\0';
    size_t how_len = 0;
    for (int attempt = 0;; attempt++) {
        if ((st = plan_make(&pm, &devs, &po, plan)) != HEARTH_OK)
            break;
        if ((st = placement_create(in->m->hp.n_layer, 0, pl)) != HEARTH_OK ||
            (st = placement_from_plan(*pl, &pm, plan, in->n_dev)) != HEARTH_OK)
            break;
        if (plan->streaming && placement_n_streamed_blocks(*pl) == 0) {
            /* nothing the scheduler can stream (e.g. only the LM head): plan without */
            po.no_stream = true;
            plan_free(plan);
            placement_free(*pl);
            *pl = NULL;
            attempt--;
            continue;
        }
        if (in->cpu_ok && !plan_uses_gpu(*pl))
            break; /* nothing on a GPU: the caller runs the CPU path */
        struct sched_oom oom;
        struct sched_params sp = sched_params_default();
        sp.n_ctx = plan->opts.n_ctx;
        sp.n_batch = (int)plan->opts.n_batch;
        sp.n_logits = (int)plan->opts.n_logits;
        sp.n_devices = in->n_dev;
        sp.devices = in->devices;
        sp.placement = *pl;
        sp.map_host_weights = in->map_host_weights;
        sp.kv_type_k = plan->opts.kv_type_k;
        sp.kv_type_v = plan->opts.kv_type_v;
        sp.n_seq = (int)plan->opts.n_parallel;
        sp.kv_window = plan->opts.kv_window;
        sp.swa_full = plan->opts.swa_full;
        sp.oom = &oom;
        st = sched_create(in->m, &sp, sched);
        if (st != HEARTH_ERR_DEVICE_OOM || oom.dev <= PLAN_HOST || oom.dev >= devs.n ||
            attempt == ENGINE_RETRIES)
            break;
        /* a buffer past the device's largest is no shortage of memory: do not shrink */
        if (devs.dev[oom.dev].max_buffer_bytes &&
            oom.request > devs.dev[oom.dev].max_buffer_bytes)
            break;
        /* the device gave less than it reported: replan with what it really had */
        struct plan_device *g = &devs.dev[oom.dev];
        uint64_t want = plan_device_alloc_bytes(plan, oom.dev);
        uint64_t had = oom.allocated + oom.free_bytes;
        if (had >= want)
            had = oom.allocated; /* its free figure was wrong too */
        uint64_t budget = plan__budget_for_usable(&pm.arch, &plan->opts, g, had);
        if (budget >= g->budget_bytes) /* always shrink, so the retries end */
            budget = g->budget_bytes - g->budget_bytes / 8;
        if (how_len < how_size)
            how_len += (size_t)snprintf(how + how_len, how_size - how_len,
                                        "%sreplanned: %s had %.0f MiB, not %.0f MiB",
                                        how_len ? "; " : "", g->name, mib(budget),
                                        mib(g->budget_bytes));
        g->budget_bytes = budget;
        g->budget_assumed = false;
        err_clear();
        plan_free(plan);
        placement_free(*pl);
        *pl = NULL;
    }
    plan_model_free(&pm);
    if (st != HEARTH_OK) {
        plan_free(plan);
        placement_free(*pl);
        *pl = NULL;
        sched_destroy(*sched);
        *sched = NULL;
    }
    return st;
}

/* ---- create ---------------------------------------------------------------- */

static hearth_status create_cpu(struct engine *e, const struct engine_params *p, const char *why)
{
    struct forward_params fp = forward_params_default();
    fp.n_ctx = p->n_ctx;
    fp.n_threads = p->n_threads;
    fp.n_batch = p->n_batch > 0 ? p->n_batch : ENGINE_CPU_BATCH;
    e->n_batch = fp.n_batch;
    fp.kv_type_k = p->kv_type_k;
    fp.kv_type_v = p->kv_type_v;
    fp.kv_window = p->kv_window;
    fp.swa_full = p->swa_full;
    hearth_status st = forward_create_multi(e->m, &fp, p->n_seq > 1 ? p->n_seq : 1, &e->fc);
    if (st != HEARTH_OK)
        return st;
    e->n_threads = forward_n_threads(e->fc);
    describe_cpu(e, why);
    return HEARTH_OK;
}

/*
 * The sched refused the exact window (an attention device lacks step 5 of
 * ATTENTION, backend.h): restate that in the CLI's terms, naming the device.
 * Other UNSUPPORTED errors are left as they are.
 */
static void window_unsupported(const struct engine *e, int kv_window)
{
    const char *msg = hearth_last_error();
    if (!msg || !strstr(msg, "does not implement the exact KV window"))
        return;
    for (int d = 0; d < e->n_dev; d++) {
        if (e->dev_name[d][0] && strstr(msg, e->dev_name[d]) &&
            !backend_device_supports_kv_window(e->dev[d], e->kv_type_k, e->kv_type_v)) {
            err_set(HEARTH_ERR_UNSUPPORTED,
                    "--kv-window %d: %s does not implement the exact window; use -ngl 0 or "
                    "drop --kv-window",
                    kv_window, e->dev_name[d]);
            return;
        }
    }
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
    e->vram_budget = p->vram_budget;
    e->kv_type_v = p->kv_type_v;
    e->n_threads = p->n_threads > 0 ? p->n_threads : threadpool_default_threads();
    const uint32_t n_ctx = p->n_ctx ? p->n_ctx : m->hp.n_ctx_train;
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
    const int n_batch = p->n_batch > 0 ? p->n_batch : ENGINE_GPU_BATCH;
    e->n_batch = n_batch;
    /* e->pl comes from engine__load_planned (it makes the placement from the plan) */
    if ((st = open_cpu(e)) != HEARTH_OK)
        goto done;
    struct engine_load in;
    memset(&in, 0, sizeof in);
    in.m = m;
    in.n_dev = e->n_dev;
    in.devices = e->dev;
    describe_devices(e, &in.devs);
    plan_opts_default(&in.opts);
    in.opts.n_ctx = n_ctx;
    in.opts.n_batch = (uint32_t)n_batch;
    in.opts.kv_type_k = e->kv_type_k;
    in.opts.kv_type_v = e->kv_type_v;
    in.opts.n_gpu_layers = p->ngl >= 0 ? p->ngl : -1;
    in.opts.every_gpu = p->n_devices > 0; /* named devices are used, however slow */
    in.opts.n_parallel = p->n_seq > 1 ? (uint32_t)p->n_seq : 1;
    in.opts.no_stream = p->no_stream;
    in.opts.n_logits = p->n_logits > 0 ? (uint32_t)p->n_logits : 0;
    in.opts.kv_window = p->kv_window > 0 ? (uint32_t)p->kv_window : 0;
    in.opts.swa_full = p->swa_full;
    in.map_host_weights = true;
    in.cpu_ok = p->ngl < 0;
    char replan[256];
    st = engine__load_planned(&in, &e->sched, &e->pl, &e->plan, replan, sizeof replan);
    if (p->ngl >= 0)
        snprintf(how, sizeof how, "-ngl %d%s%s", p->ngl, replan[0] ? "; " : "", replan);
    else
        snprintf(how, sizeof how, "planner%s%s", replan[0] ? "; " : "", replan);
    if (st == HEARTH_ERR_DEVICE_OOM && p->ngl >= 0)
        err_prefix(st, "-ngl %d does not fit (try fewer layers or -ngl auto)", p->ngl);
    if (st == HEARTH_OK && !e->sched) {
        placement_free(e->pl);
        e->pl = NULL;
        plan_free(&e->plan);
        close_devices(e);
        st = create_cpu(e, p, "planner: no layer fits on a GPU");
        goto done;
    }
    if (st == HEARTH_ERR_UNSUPPORTED && in.opts.kv_window > 0)
        window_unsupported(e, p->kv_window);
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
    e->n_gpu_layers = placement_n_offloaded_layers(e->pl);
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
    plan_free(&e->plan);
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

uint32_t engine_n_embd(const struct engine *e)
{
    return e->m->hp.n_embd;
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

int engine_n_batch(const struct engine *e)
{
    return e->n_batch;
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

/* ---- several sequences (the server's slots) ------------------------------------ */

hearth_status engine_eval_multi(struct engine *e, const int32_t *tokens, const int32_t *seq,
                                const int32_t *pos, int n_tokens, float *logits_out,
                                const bool *want_logits)
{
    const struct seq_batch_out out = {logits_out, want_logits, NULL, NULL};
    return engine_eval_multi_out(e, tokens, seq, pos, n_tokens, &out);
}

hearth_status engine_eval_multi_out(struct engine *e, const int32_t *tokens, const int32_t *seq,
                                    const int32_t *pos, int n_tokens,
                                    const struct seq_batch_out *out)
{
    if (e->fc)
        return forward_eval_multi_out(e->fc, tokens, seq, pos, n_tokens, out);
    return sched_eval_multi_out(e->sched, tokens, seq, pos, n_tokens, out);
}

uint32_t engine_seq_n_past(const struct engine *e, int seq)
{
    return e->fc ? forward_seq_n_past(e->fc, seq) : sched_seq_n_past(e->sched, seq);
}

bool engine_seq_can_resume(const struct engine *e, int seq, uint32_t pos)
{
    return e->fc ? forward_seq_can_resume(e->fc, seq, pos)
                 : sched_seq_can_resume(e->sched, seq, pos);
}

void engine_seq_clear(struct engine *e, int seq)
{
    if (e->fc)
        forward_seq_clear(e->fc, seq);
    else
        sched_seq_clear(e->sched, seq);
}

int engine_n_devices(const struct engine *e)
{
    return e->fc ? 1 : e->n_dev;
}

bool engine_device_seconds(const struct engine *e, int d, double *seconds)
{
    if (e->fc || d < 0 || d >= engine_n_devices(e))
        return false;
    *seconds = sched_device_seconds(e->sched, d);
    return true;
}

double engine_transfer_seconds(const struct engine *e)
{
    return e->fc ? 0.0 : sched_transfer_seconds(e->sched);
}

bool engine_roofline(const struct engine *e, double *tps, int *assumed)
{
    if (e->fc)
        return false;
    const struct plan *pl = &e->plan;
    double s = 0.0;
    *assumed = 0;
    for (int d = 0; d < pl->devs.n; d++) {
        const struct plan_device *pd = &pl->devs.dev[d];
        if (pl->use[d].total == 0 || !(pl->use[d].decode_mem_s > 0))
            continue;
        s += pl->use[d].decode_mem_s; /* the plan's reads there at its copy bandwidth */
        *assumed += pd->mem_bw_assumed;
    }
    *tps = s > 0 ? 1.0 / s : 0.0;
    return s > 0;
}

void engine_time_reset(struct engine *e)
{
    if (!e->fc)
        sched_time_reset(e->sched);
}

bool engine_device_memory(const struct engine *e, int d, const char **name, uint64_t *bytes,
                          uint64_t *kv_bytes)
{
    if (d < 0 || d >= engine_n_devices(e))
        return false;
    *name = e->dev_name[d];
    if (e->fc) {
        *bytes = *kv_bytes = forward_kv_bytes(e->fc);
    } else {
        *bytes = sched_device_bytes(e->sched, d);
        *kv_bytes = e->plan.use[d].kv; /* what the sched allocated (plan.h's formulas) */
    }
    return true;
}
