/*
 * generate: the prefill + decode loop described in generate.h.
 *
 * State kept across runs: the sampler (its random stream continues from turn
 * to turn) and `cached`, the ids whose K/V are in the forward context, in
 * position order. Invariant: n_cached == engine_n_past(fc) after every
 * successful run; an error empties the mirror so that no later run trusts a
 * cache it cannot vouch for.
 *
 * Penalty history: at each run the last repeat_last_n prompt tokens are
 * accepted into the sampler, which replaces its whole window, so the window
 * always equals the last repeat_last_n tokens of the context (what a
 * from-scratch run would see) however much was reused.
 *
 * Per-run buffers (decoder output, stop matcher) are allocated per run: a run
 * costs at least one forward pass, against which a few small mallocs are noise.
 */
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "err.h"

struct gen_session {
    const struct model *m;
    const struct tokenizer *tok;
    struct engine *fc;
    struct sampler *smp;
    struct sampler_params sp;
    float *logits;     /* [n_vocab] of the last evaluated position */
    int32_t *cached;   /* [n_ctx] ids in the cache, position order */
    size_t n_cached;
    uint32_t n_ctx;
    int32_t n_vocab;
    uint64_t n_evaluated;
};

double gen_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void gen_params_default(struct gen_params *p)
{
    memset(p, 0, sizeof *p);
    p->n_predict = 128;
}

hearth_status gen_session_create(const struct model *m, const struct tokenizer *t,
                                 struct engine *fc, const struct sampler_params *sp,
                                 struct gen_session **out)
{
    *out = NULL;
    if (!m || !t || !fc || !sp)
        return err_set(HEARTH_ERR_INVALID_ARG, "gen_session_create: NULL argument");
    if (tok_n_vocab(t) > m->hp.n_vocab)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "gen_session_create: the tokenizer has %zu tokens but the model's "
                       "output has only %u rows",
                       tok_n_vocab(t), m->hp.n_vocab);
    hearth_status st = sampler_params_validate(sp);
    if (st != HEARTH_OK)
        return st;
    struct gen_session *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(HEARTH_ERR_NO_MEMORY, "gen_session_create: session");
    s->m = m;
    s->tok = t;
    s->fc = fc;
    s->sp = *sp;
    s->n_ctx = engine_n_ctx(fc);
    s->n_vocab = (int32_t)m->hp.n_vocab;
    s->logits = malloc((size_t)s->n_vocab * sizeof *s->logits);
    s->cached = malloc((size_t)s->n_ctx * sizeof *s->cached);
    if (!s->logits || !s->cached) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "gen_session_create: %u-token mirror and logits",
                     s->n_ctx);
        goto fail;
    }
    st = sampler_create(sp, s->n_vocab, &s->smp);
    if (st != HEARTH_OK)
        goto fail;
    *out = s;
    return HEARTH_OK;
fail:
    gen_session_free(s);
    return st;
}

void gen_session_free(struct gen_session *s)
{
    if (!s)
        return;
    sampler_free(s->smp);
    free(s->logits);
    free(s->cached);
    free(s);
}

hearth_status gen_session_set_bias(struct gen_session *s, const int32_t *ids, const float *bias,
                                   int n)
{
    return sampler_set_bias(s->smp, ids, bias, n);
}

hearth_status gen_session_set_sampler(struct gen_session *s, const struct sampler_params *sp)
{
    struct sampler *smp;
    hearth_status st = sampler_create(sp, s->n_vocab, &smp);
    if (st != HEARTH_OK)
        return st;
    if ((st = sampler_copy_bias(smp, s->smp)) != HEARTH_OK) {
        sampler_free(smp);
        return st;
    }
    sampler_free(s->smp);
    s->smp = smp;
    s->sp = *sp;
    return HEARTH_OK;
}

void gen_session_reset(struct gen_session *s)
{
    s->n_cached = 0;
}

size_t gen_session_n_cached(const struct gen_session *s)
{
    return s->n_cached;
}

const int32_t *gen_session_cached(const struct gen_session *s)
{
    return s->cached;
}

uint64_t gen_session_n_evaluated(const struct gen_session *s)
{
    return s->n_evaluated;
}

uint32_t gen_session_n_ctx(const struct gen_session *s)
{
    return s->n_ctx;
}

uint64_t gen_session_seed(const struct gen_session *s)
{
    return sampler_seed(s->smp);
}

const struct tokenizer *gen_session_tokenizer(const struct gen_session *s)
{
    return s->tok;
}

/* Evaluates ids[0..n) at the end of the cache; logits of the last one when want_logits. */
static hearth_status eval(struct gen_session *s, const int32_t *ids, size_t n, bool want_logits)
{
    hearth_status st = engine_eval(s->fc, ids, (int)n, (int)s->n_cached,
                                   want_logits ? s->logits : NULL, false);
    if (st != HEARTH_OK)
        return st;
    memcpy(s->cached + s->n_cached, ids, n * sizeof *ids);
    s->n_cached += n;
    s->n_evaluated += n;
    return HEARTH_OK;
}

static bool is_stop_id(const struct gen_session *s, const struct gen_params *p, int32_t id)
{
    if (tok_is_eog(s->tok, id))
        return true;
    for (size_t i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] == id)
            return true;
    for (size_t i = 0; p->chat && i < p->chat->n_stop_ids; i++)
        if (p->chat->stop_ids[i] == id)
            return true;
    return false;
}

/* The matcher over the user's stop strings plus the chat family's textual ones. */
static hearth_status init_stops(struct chat_stop_matcher *sm, const struct gen_params *p)
{
    size_t n_chat = p->chat ? p->chat->n_stop_strs : 0;
    if (n_chat == 0)
        return chat_stop_init(sm, p->stop, p->n_stop);
    const char **all = malloc((p->n_stop + n_chat) * sizeof *all);
    if (!all)
        return err_set(HEARTH_ERR_NO_MEMORY, "generate: stop list");
    for (size_t i = 0; i < p->n_stop; i++)
        all[i] = p->stop[i];
    for (size_t i = 0; i < n_chat; i++)
        all[p->n_stop + i] = p->chat->stop_strs[i];
    hearth_status st = chat_stop_init(sm, all, p->n_stop + n_chat);
    free(all);
    return st;
}

/* Runs prefill; on return s->logits holds the last prompt position's logits. */
static hearth_status prefill(struct gen_session *s, const int32_t *prompt, size_t n_prompt,
                             const struct gen_params *p, struct gen_stats *stats)
{
    size_t keep = 0;
    size_t lim = s->n_cached < n_prompt - 1 ? s->n_cached : n_prompt - 1;
    if (lim > engine_n_past(s->fc))
        lim = engine_n_past(s->fc);
    while (keep < lim && s->cached[keep] == prompt[keep])
        keep++;
    if (keep > 0 && !engine_seq_can_resume(s->fc, 0, (uint32_t)keep))
        keep = 0; /* the sliding-window rings no longer hold what position keep needs */
    s->n_cached = keep; /* the next eval's pos0 rewinds the cache to here */
    stats->n_prompt_eval = n_prompt - keep;

    size_t win = s->sp.repeat_last_n > 0 ? (size_t)s->sp.repeat_last_n : 0;
    for (size_t i = n_prompt > win ? n_prompt - win : 0; i < n_prompt; i++) {
        hearth_status st = sampler_accept(s->smp, prompt[i]);
        if (st != HEARTH_OK)
            return st;
    }
    for (size_t i = keep; i < n_prompt;) {
        if (p->should_abort && p->should_abort(p->user)) {
            stats->stop = GEN_STOP_CANCELLED;
            return HEARTH_OK;
        }
        size_t n = n_prompt - i < GEN_PREFILL_CHUNK ? n_prompt - i : GEN_PREFILL_CHUNK;
        hearth_status st = eval(s, prompt + i, n, i + n == n_prompt);
        if (st != HEARTH_OK)
            return st;
        i += n;
    }
    return HEARTH_OK;
}

/* The decode loop; text goes through the decoder and the stop matcher to on_token. */
static hearth_status decode(struct gen_session *s, const struct gen_params *p,
                            struct tok_decoder *dec, struct chat_stop_matcher *sm, char *piece,
                            size_t piece_cap, struct gen_stats *stats)
{
    for (;;) {
        if (p->should_abort && p->should_abort(p->user)) {
            stats->stop = GEN_STOP_CANCELLED;
            return HEARTH_OK;
        }
        int32_t id;
        hearth_status st = sampler_sample(s->smp, s->logits, &id);
        if (st != HEARTH_OK)
            return st;
        if (is_stop_id(s, p, id)) {
            stats->stop = GEN_STOP_EOG;
            return HEARTH_OK;
        }
        if ((st = sampler_accept(s->smp, id)) != HEARTH_OK)
            return st;
        stats->n_gen++;
        size_t n_piece = 0;
        if ((st = tok_decoder_push(dec, id, piece, piece_cap, &n_piece)) != HEARTH_OK)
            return st;
        const char *txt;
        size_t txt_len;
        bool stopped;
        if ((st = chat_stop_feed(sm, piece, n_piece, &txt, &txt_len, &stopped)) != HEARTH_OK)
            return st;
        if (p->on_token && !p->on_token(p->user, txt, txt_len, id)) {
            stats->stop = GEN_STOP_CANCELLED;
            return HEARTH_OK;
        }
        if (stopped) {
            stats->stop = GEN_STOP_STRING;
            return HEARTH_OK;
        }
        if (p->n_predict >= 0 && stats->n_gen >= (size_t)p->n_predict) {
            stats->stop = GEN_STOP_LIMIT;
            return HEARTH_OK;
        }
        if (s->n_cached >= s->n_ctx) {
            stats->stop = GEN_STOP_CTX_FULL;
            return HEARTH_OK;
        }
        if ((st = eval(s, &id, 1, true)) != HEARTH_OK)
            return st;
    }
}

hearth_status gen_run(struct gen_session *s, const int32_t *prompt, size_t n_prompt,
                      const struct gen_params *p, struct gen_stats *stats)
{
    struct gen_params defaults;
    struct gen_stats local;
    if (!p) {
        gen_params_default(&defaults);
        p = &defaults;
    }
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    stats->n_prompt = n_prompt;
    if (n_prompt == 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "generate: the prompt has no tokens");
    if (n_prompt > s->n_ctx)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "generate: the prompt has %zu tokens but the context holds %u "
                       "(raise -c / n_ctx)",
                       n_prompt, s->n_ctx);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= s->n_vocab)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "generate: prompt token %zu is id %d, outside [0, %d)", i,
                           (int)prompt[i], (int)s->n_vocab);

    struct tok_decoder *dec = NULL;
    struct chat_stop_matcher sm;
    memset(&sm, 0, sizeof sm);
    size_t piece_cap = tok_decoder_max_out(s->tok);
    char *piece = malloc(piece_cap);
    hearth_status st = piece ? HEARTH_OK
                             : err_set(HEARTH_ERR_NO_MEMORY, "generate: %zu-byte decode buffer",
                                       piece_cap);
    if (st == HEARTH_OK)
        st = tok_decoder_create(s->tok, false, &dec);
    if (st == HEARTH_OK)
        st = init_stops(&sm, p);
    if (st != HEARTH_OK)
        goto done;

    double t0 = gen_now_ms();
    st = prefill(s, prompt, n_prompt, p, stats);
    double t1 = gen_now_ms();
    stats->prompt_ms = t1 - t0;
    if (st != HEARTH_OK || stats->stop == GEN_STOP_CANCELLED)
        goto done;
    if (p->n_predict == 0) {
        stats->stop = GEN_STOP_LIMIT;
        goto done;
    }
    st = decode(s, p, dec, &sm, piece, piece_cap, stats);
    stats->gen_ms = gen_now_ms() - t1;
    if (st == HEARTH_OK && stats->stop != GEN_STOP_CANCELLED && stats->stop != GEN_STOP_STRING &&
        p->on_token) {
        /* release what the decoder and the matcher still hold */
        size_t n_piece = 0;
        const char *txt;
        size_t txt_len;
        bool stopped = false;
        st = tok_decoder_flush(dec, piece, piece_cap, &n_piece);
        if (st == HEARTH_OK && n_piece > 0)
            st = chat_stop_feed(&sm, piece, n_piece, &txt, &txt_len, &stopped);
        if (st == HEARTH_OK && n_piece > 0 && txt_len > 0)
            p->on_token(p->user, txt, txt_len, -1);
        if (st == HEARTH_OK && !stopped) {
            chat_stop_flush(&sm, &txt, &txt_len);
            if (txt_len > 0)
                p->on_token(p->user, txt, txt_len, -1);
        }
    }
done:
    if (st != HEARTH_OK)
        s->n_cached = 0;
    chat_stop_free(&sm);
    tok_decoder_free(dec);
    free(piece);
    return st;
}

hearth_status gen_tokenize_prompt(const struct tokenizer *t, const char *text, size_t len,
                                  bool parse_special, int32_t **ids_out, size_t *n_out)
{
    int32_t *ids = NULL;
    size_t n_ids = 0;
    *ids_out = NULL;
    *n_out = 0;
    /* BOS only: add_eos (a document-end marker) would make the model stop at once */
    hearth_status st = tok_encode(t, text, len, false, parse_special, &ids, &n_ids);
    if (st != HEARTH_OK)
        return err_prefix(st, "generate: tokenizing the prompt");
    int32_t bos = tok_bos(t);
    if (tok_add_bos(t) && bos >= 0 && (n_ids == 0 || ids[0] != bos)) {
        int32_t *grown = realloc(ids, (n_ids + 1) * sizeof *ids);
        if (!grown) {
            free(ids);
            return err_set(HEARTH_ERR_NO_MEMORY, "generate: prompt ids");
        }
        ids = grown;
        memmove(ids + 1, ids, n_ids * sizeof *ids);
        ids[0] = bos;
        n_ids++;
    }
    *ids_out = ids;
    *n_out = n_ids;
    return HEARTH_OK;
}

hearth_status gen_run_text(struct gen_session *s, const char *text, size_t len,
                           bool parse_special, const struct gen_params *p,
                           struct gen_stats *stats)
{
    int32_t *ids;
    size_t n_ids;
    hearth_status st = gen_tokenize_prompt(s->tok, text, len, parse_special, &ids, &n_ids);
    if (st != HEARTH_OK)
        return st;
    st = gen_run(s, ids, n_ids, p, stats);
    free(ids);
    return st;
}

void gen_chat_init(const struct model *m, const struct tokenizer *t, int fmt_override,
                   struct gen_chat *out)
{
    memset(out, 0, sizeof *out);
    if (fmt_override >= 0 && fmt_override < CHAT_FORMAT_COUNT) {
        out->fmt = (enum chat_format)fmt_override;
        out->source = CHAT_SOURCE_TEMPLATE;
    } else {
        struct gguf_str tmpl = {0}, arch = {0};
        char arch_buf[64] = "";
        if (gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl) != HEARTH_OK)
            memset(&tmpl, 0, sizeof tmpl);
        if (gguf_get_str(m->gguf, "general.architecture", &arch) == HEARTH_OK) {
            size_t n = arch.len < sizeof arch_buf - 1 ? (size_t)arch.len : sizeof arch_buf - 1;
            memcpy(arch_buf, arch.ptr, n);
            arch_buf[n] = '\0';
        }
        err_clear(); /* an absent template is normal, not a failure to report */
        out->fmt = chat_detect_model(tmpl.ptr, (size_t)tmpl.len, arch_buf, &out->source);
    }
    size_t n_strs = 0;
    const char *const *strs = chat_stop_strings(out->fmt, &n_strs);
    for (size_t i = 0; i < n_strs; i++) {
        int32_t id = tok_find(t, strs[i]);
        if (id >= 0 && out->n_stop_ids < GEN_CHAT_MAX_STOPS)
            out->stop_ids[out->n_stop_ids++] = id;
        else if (id < 0 && out->n_stop_strs < GEN_CHAT_MAX_STOPS)
            out->stop_strs[out->n_stop_strs++] = strs[i];
    }
}

hearth_status gen_chat_tokenize(const struct gen_chat *c, const struct tokenizer *t,
                                const struct chat_msg *msgs, size_t n,
                                bool add_generation_prompt, int32_t **ids, size_t *n_ids)
{
    char *text = NULL;
    *ids = NULL;
    *n_ids = 0;
    hearth_status st = chat_render(c->fmt, msgs, n, add_generation_prompt, &text);
    if (st != HEARTH_OK)
        return st;
    st = gen_tokenize_prompt(t, text, strlen(text), true, ids, n_ids);
    free(text);
    return st;
}
