/*
 * api: the public model / session / generation API of include/hearth.h, a thin
 * layer over model.h, tokenizer.h, engine.h and generate.h.
 *
 * The public structs mirror internal ones field by field (hearth_sampling_params
 * vs sampler_params, the stats and stop reasons) instead of exposing them, so
 * the internal headers can change without breaking the ABI; the conversions
 * are here and nowhere else. A session runs on the engine's implicit device
 * choice (engine.h: the CPU unless a hardware GPU is present, then the
 * planner's placement); hearth_session_params will grow device and layer
 * fields (appended) to choose explicitly. Its KV types are the engine's enum
 * kvq_type under a public name: the values are the same (asserted below), so
 * they pass through unconverted once checked for range.
 *
 * Every entry point checks its pointers and reports HEARTH_ERR_INVALID_ARG
 * through err_set rather than crashing, since callers are outside the library.
 */
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "engine.h"
#include "embed.h"
#include "err.h"
#include "generate.h"
#include "hearth.h"
#include "kv-quant.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

#define API_DEFAULT_CTX 4096

_Static_assert(HEARTH_KV_F16 == (int)KVQ_F16 && HEARTH_KV_Q8_0 == (int)KVQ_Q8_0 &&
                   HEARTH_KV_Q4_0 == (int)KVQ_Q4_0 && HEARTH_KV_ROT4 == (int)KVQ_ROT4 &&
                   HEARTH_KV_ROT3 == (int)KVQ_ROT3 &&
                   HEARTH_KV_TYPE_COUNT == (int)KVQ_TYPE_COUNT,
               "hearth_kv_type must number the types as enum kvq_type does");

struct hearth_model {
    struct model *m;
    struct tokenizer *tok;
    struct gen_chat chat;
};

struct hearth_session {
    hearth_model *model;
    struct engine *fc;
    struct gen_session *gs;
};

void hearth_free(void *ptr)
{
    free(ptr);
}

hearth_status hearth_model_load(const char *path, hearth_model **out)
{
    if (!out)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_model_load: path is NULL");
    hearth_model *hm = calloc(1, sizeof *hm);
    if (!hm)
        return err_set(HEARTH_ERR_NO_MEMORY, "hearth_model_load: model handle");
    hearth_status st = model_load(path, &hm->m);
    if (st == HEARTH_OK && (st = tok_load(hm->m->gguf, &hm->tok)) != HEARTH_OK)
        err_prefix(st, "%s: tokenizer", path);
    if (st != HEARTH_OK) {
        hearth_model_free(hm);
        return st;
    }
    gen_chat_init(hm->m, hm->tok, -1, &hm->chat);
    *out = hm;
    return HEARTH_OK;
}

void hearth_model_free(hearth_model *model)
{
    if (!model)
        return;
    tok_free(model->tok);
    model_free(model->m);
    free(model);
}

const char *hearth_model_arch(const hearth_model *model)
{
    return model ? model_arch_name(model->m->hp.arch) : "";
}

int32_t hearth_model_n_vocab(const hearth_model *model)
{
    return model ? (int32_t)model->m->hp.n_vocab : 0;
}

int32_t hearth_model_n_ctx_train(const hearth_model *model)
{
    return model ? (int32_t)model->m->hp.n_ctx_train : 0;
}

int32_t hearth_model_n_layer(const hearth_model *model)
{
    return model ? (int32_t)model->m->hp.n_layer : 0;
}

int32_t hearth_model_n_embd(const hearth_model *model)
{
    return model ? (int32_t)model->m->hp.n_embd : 0;
}

int32_t hearth_model_n_head(const hearth_model *model)
{
    return model ? (int32_t)model->m->hp.n_head : 0;
}

int32_t hearth_model_n_head_kv(const hearth_model *model)
{
    return model ? (int32_t)model->m->hp.n_head_kv : 0;
}

int32_t hearth_model_head_dim(const hearth_model *model)
{
    return model ? (int32_t)model->m->hp.head_dim : 0;
}

int32_t hearth_model_token_bos(const hearth_model *model)
{
    return model ? tok_bos(model->tok) : -1;
}

int32_t hearth_model_token_eos(const hearth_model *model)
{
    return model ? tok_eos(model->tok) : -1;
}

bool hearth_model_token_is_eog(const hearth_model *model, int32_t token)
{
    return model && tok_is_eog(model->tok, token);
}

const char *hearth_model_chat_format(const hearth_model *model)
{
    return model ? chat_format_name(model->chat.fmt) : "";
}

hearth_status hearth_tokenize(const hearth_model *model, const char *text, size_t len,
                              bool add_special, bool parse_special, int32_t **ids,
                              size_t *n_ids)
{
    if (!model || (!text && len > 0) || !ids || !n_ids)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_tokenize: NULL argument");
    return tok_encode(model->tok, text ? text : "", len, add_special, parse_special, ids, n_ids);
}

hearth_status hearth_detokenize(const hearth_model *model, const int32_t *ids, size_t n,
                                bool render_special, char **text, size_t *len)
{
    size_t local_len;
    if (!model || (!ids && n > 0) || !text)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_detokenize: NULL argument");
    *text = NULL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= tok_n_vocab(model->tok))
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "hearth_detokenize: ids[%zu] = %d is outside [0, %zu)", i,
                           (int)ids[i], tok_n_vocab(model->tok));
    static const int32_t none[1] = {0};
    return tok_decode(model->tok, n ? ids : none, n, render_special, text,
                      len ? len : &local_len);
}

void hearth_sampling_params_default(hearth_sampling_params *p)
{
    struct sampler_params sp;
    sampler_params_default(&sp);
    *p = (hearth_sampling_params){
        .temp = sp.temp,
        .top_k = sp.top_k,
        .top_p = sp.top_p,
        .min_p = sp.min_p,
        .repeat_penalty = sp.repeat_penalty,
        .repeat_last_n = sp.repeat_last_n,
        .presence_penalty = sp.presence_penalty,
        .frequency_penalty = sp.frequency_penalty,
        .seed = sp.seed,
        .seed_set = sp.seed_set,
    };
}

void hearth_session_params_default(hearth_session_params *p)
{
    memset(p, 0, sizeof *p);
    hearth_sampling_params_default(&p->sampling);
    p->n_gpu_layers = HEARTH_GPU_LAYERS_PLAN;
}

static struct sampler_params to_sampler(const hearth_sampling_params *p)
{
    struct sampler_params sp;
    sampler_params_default(&sp);
    sp.temp = p->temp;
    sp.top_k = p->top_k;
    sp.top_p = p->top_p;
    sp.min_p = p->min_p;
    sp.repeat_penalty = p->repeat_penalty;
    sp.repeat_last_n = p->repeat_last_n;
    sp.presence_penalty = p->presence_penalty;
    sp.frequency_penalty = p->frequency_penalty;
    sp.seed = p->seed;
    sp.seed_set = p->seed_set;
    return sp;
}

hearth_status hearth_session_create(hearth_model *model, const hearth_session_params *p,
                                    hearth_session **out)
{
    if (!out)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_session_create: out is NULL");
    *out = NULL;
    if (!model)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_session_create: model is NULL");
    hearth_session_params defaults;
    if (!p) {
        hearth_session_params_default(&defaults);
        p = &defaults;
    }
    struct sampler_params sp = to_sampler(&p->sampling);
    hearth_status st = sampler_params_validate(&sp);
    if (st != HEARTH_OK)
        return st;
    /* read as int: an out-of-range enum value is the caller's bug to report, not UB to trust */
    const int kt = (int)p->kv_type_k, vt = (int)p->kv_type_v;
    if (kt < 0 || kt >= HEARTH_KV_TYPE_COUNT || vt < 0 || vt >= HEARTH_KV_TYPE_COUNT)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "hearth_session_create: kv_type_%s is %d, expected a hearth_kv_type "
                       "(0 f16, 1 q8_0, 2 q4_0, 3 rot4, 4 rot3)",
                       kt < 0 || kt >= HEARTH_KV_TYPE_COUNT ? "k" : "v",
                       kt < 0 || kt >= HEARTH_KV_TYPE_COUNT ? kt : vt);
    if (p->n_devices < 0 || p->n_devices > ENGINE_MAX_DEVICES || (p->n_devices > 0 && !p->devices))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "hearth_session_create: n_devices is %d, expected 0..%d names",
                       (int)p->n_devices, ENGINE_MAX_DEVICES);
    if (p->n_gpu_layers < HEARTH_GPU_LAYERS_PLAN)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "hearth_session_create: n_gpu_layers is %d, expected >= 0 or "
                       "HEARTH_GPU_LAYERS_PLAN (-1)",
                       (int)p->n_gpu_layers);
    if (p->kv_window > (1u << 24))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "hearth_session_create: kv_window is %u, expected at most 2^24",
                       (unsigned)p->kv_window);
    hearth_session *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(HEARTH_ERR_NO_MEMORY, "hearth_session_create: session handle");
    s->model = model;
    struct engine_params fp = engine_params_default();
    uint32_t train = model->m->hp.n_ctx_train;
    fp.n_ctx = p->n_ctx ? p->n_ctx : (train > 0 && train < API_DEFAULT_CTX ? train
                                                                            : API_DEFAULT_CTX);
    fp.n_threads = p->n_threads;
    fp.kv_type_k = kt;
    fp.kv_type_v = vt;
    fp.kv_window = (int)p->kv_window;
    fp.swa_full = p->swa_full;
    fp.devices = p->devices;
    fp.n_devices = p->n_devices;
    fp.ngl = p->n_gpu_layers >= 0 ? p->n_gpu_layers : ENGINE_NGL_UNSET;
    if ((st = engine_create(model->m, &fp, &s->fc)) != HEARTH_OK ||
        (st = gen_session_create(model->m, model->tok, s->fc, &sp, &s->gs)) != HEARTH_OK) {
        hearth_session_free(s);
        return st;
    }
    *out = s;
    return HEARTH_OK;
}

void hearth_session_free(hearth_session *session)
{
    if (!session)
        return;
    gen_session_free(session->gs);
    engine_destroy(session->fc);
    free(session);
}

void hearth_session_reset(hearth_session *session)
{
    if (session)
        gen_session_reset(session->gs);
}

hearth_status hearth_session_set_sampling(hearth_session *session,
                                          const hearth_sampling_params *p)
{
    if (!session || !p)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_session_set_sampling: NULL argument");
    struct sampler_params sp = to_sampler(p);
    return gen_session_set_sampler(session->gs, &sp);
}

hearth_status hearth_session_set_logit_bias(hearth_session *session, const int32_t *ids,
                                            const float *bias, size_t n)
{
    if (!session || (n > 0 && (!ids || !bias)))
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_session_set_logit_bias: NULL argument");
    if (n > (1u << 20))
        return err_set(HEARTH_ERR_INVALID_ARG, "logit_bias: %zu entries, at most 2^20", n);
    return gen_session_set_bias(session->gs, ids, bias, (int)n);
}

uint64_t hearth_session_seed(const hearth_session *session)
{
    return session ? gen_session_seed(session->gs) : 0;
}

uint32_t hearth_session_n_ctx(const hearth_session *session)
{
    return session ? gen_session_n_ctx(session->gs) : 0;
}

void hearth_generate_params_default(hearth_generate_params *p)
{
    memset(p, 0, sizeof *p);
    p->n_predict = 128;
}

/* Public generate params -> internal (the chat's stops when chat is non-NULL). */
static void to_gen(const hearth_generate_params *p, const struct gen_chat *chat,
                   struct gen_params *gp)
{
    gen_params_default(gp);
    if (p) {
        gp->n_predict = p->n_predict;
        gp->stop = p->stop;
        gp->n_stop = p->n_stop;
        gp->on_token = p->on_token;
        gp->user = p->user;
    }
    gp->chat = chat;
}

static void to_stats(const struct gen_stats *g, hearth_generate_stats *out)
{
    if (!out)
        return;
    static const hearth_stop_reason map[] = {
        [GEN_STOP_NONE] = HEARTH_STOP_NONE,         [GEN_STOP_EOG] = HEARTH_STOP_EOG,
        [GEN_STOP_STRING] = HEARTH_STOP_STRING,     [GEN_STOP_LIMIT] = HEARTH_STOP_LIMIT,
        [GEN_STOP_CTX_FULL] = HEARTH_STOP_CTX_FULL, [GEN_STOP_CANCELLED] = HEARTH_STOP_CANCELLED,
    };
    out->n_prompt = g->n_prompt;
    out->n_prompt_eval = g->n_prompt_eval;
    out->prompt_ms = g->prompt_ms;
    out->n_gen = g->n_gen;
    out->gen_ms = g->gen_ms;
    out->stop = map[g->stop];
}

static hearth_status check_gen(const hearth_session *s, const hearth_generate_params *p,
                               const char *fn)
{
    if (!s)
        return err_set(HEARTH_ERR_INVALID_ARG, "%s: session is NULL", fn);
    if (p && p->n_predict < -1)
        return err_set(HEARTH_ERR_INVALID_ARG, "%s: n_predict %d (expected -1 or >= 0)", fn,
                       (int)p->n_predict);
    if (p && p->n_stop > 0 && !p->stop)
        return err_set(HEARTH_ERR_INVALID_ARG, "%s: n_stop %zu but stop is NULL", fn, p->n_stop);
    return HEARTH_OK;
}

hearth_status hearth_generate_tokens(hearth_session *session, const int32_t *ids, size_t n,
                                     const hearth_generate_params *p,
                                     hearth_generate_stats *stats)
{
    hearth_status st = check_gen(session, p, "hearth_generate_tokens");
    if (st != HEARTH_OK)
        return st;
    if (!ids && n > 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_generate_tokens: ids is NULL");
    struct gen_params gp;
    struct gen_stats gs = {0};
    to_gen(p, NULL, &gp);
    st = gen_run(session->gs, ids, n, &gp, &gs);
    to_stats(&gs, stats);
    return st;
}

hearth_status hearth_generate(hearth_session *session, const char *prompt,
                              const hearth_generate_params *p, hearth_generate_stats *stats)
{
    hearth_status st = check_gen(session, p, "hearth_generate");
    if (st != HEARTH_OK)
        return st;
    if (!prompt)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_generate: prompt is NULL");
    struct gen_params gp;
    struct gen_stats gs = {0};
    to_gen(p, NULL, &gp);
    st = gen_run_text(session->gs, prompt, strlen(prompt), true, &gp, &gs);
    to_stats(&gs, stats);
    return st;
}

hearth_status hearth_generate_chat(hearth_session *session, const hearth_chat_message *msgs,
                                   size_t n, const hearth_generate_params *p,
                                   hearth_generate_stats *stats)
{
    hearth_status st = check_gen(session, p, "hearth_generate_chat");
    if (st != HEARTH_OK)
        return st;
    if (!msgs && n > 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_generate_chat: msgs is NULL");
    struct chat_msg *cm = malloc((n ? n : 1) * sizeof *cm);
    if (!cm)
        return err_set(HEARTH_ERR_NO_MEMORY, "hearth_generate_chat: %zu messages", n);
    for (size_t i = 0; i < n; i++)
        cm[i] = (struct chat_msg){msgs[i].role, msgs[i].content};
    int32_t *ids = NULL;
    size_t n_ids = 0;
    const struct gen_chat *chat = &session->model->chat;
    st = gen_chat_tokenize(chat, session->model->tok, cm, n, true, &ids, &n_ids);
    free(cm);
    if (st != HEARTH_OK)
        return st;
    struct gen_params gp;
    struct gen_stats gs = {0};
    to_gen(p, chat, &gp);
    st = gen_run(session->gs, ids, n_ids, &gp, &gs);
    to_stats(&gs, stats);
    free(ids);
    return st;
}

hearth_status hearth_embed(hearth_session *session, const char *text, hearth_pooling pooling,
                           float *out, size_t n_out)
{
    if (!session || !text || !out)
        return err_set(HEARTH_ERR_INVALID_ARG, "hearth_embed: session, text or out is NULL");
    const struct model *m = session->model->m;
    if (n_out < m->hp.n_embd)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "hearth_embed: out holds %zu floats, the model's vectors have %u", n_out,
                       m->hp.n_embd);
    const int pl = (int)pooling;
    if (pl < HEARTH_POOLING_MODEL || pl > HEARTH_POOLING_LAST)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "hearth_embed: pooling %d, expected a hearth_pooling (0..3)", pl);
    int32_t *ids = NULL;
    size_t n = 0;
    hearth_status st = gen_tokenize_prompt(session->model->tok, text, strlen(text), false, &ids, &n);
    if (st == HEARTH_OK) {
        /* the cache is overwritten: the session must not think it still holds its tokens */
        gen_session_reset(session->gs);
        st = embd_text(session->fc, ids, n,
                       embd_pool_of_gguf(pl == HEARTH_POOLING_MODEL ? m->hp.pooling_type
                                                                    : (uint32_t)pl),
                       out);
    }
    if (st == HEARTH_OK)
        embd_normalize(out, m->hp.n_embd);
    free(ids);
    return st;
}
