/*
 * cmd-inspect: `hearth inspect FILE [--json]` shows what a GGUF file holds.
 *
 * Four parts: the architecture summary (core/arch-info), every metadata key,
 * the tensor table, and totals per type with the overall bits per weight. Long
 * values are abbreviated the same way in both outputs (arrays show their first
 * elements and their count, strings over STR_CUT bytes are cut with a note of
 * their length), so a 250k-token vocabulary prints as one line.
 *
 * The JSON is written by hand: strings are escaped per RFC 8259 (quote,
 * backslash, control characters as \uXXXX), valid UTF-8 is kept as is and any
 * invalid byte becomes U+FFFD, so the output always parses even when a file's
 * strings are not valid UTF-8. Non-finite floats become null.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch-info.h"
#include "cli.h"
#include "err.h"
#include "gguf.h"
#include "quant.h"
#include "utf8.h"

#define STR_CUT 120 /* strings longer than this are cut (bytes) */
#define ARR_SHOW 3  /* elements shown of an abbreviated array */
#define ARR_FULL 8  /* arrays up to this length are shown whole */

static void usage(FILE *out)
{
    fprintf(out, "usage: hearth inspect FILE [--json]\n\n"
                 "Shows a GGUF file's architecture summary, metadata, tensors, totals per type\n"
                 "and bits per weight. --json prints the same as JSON.\n");
}

/* ---- string output ------------------------------------------------------- */

/* Writes s[0..n) escaped for JSON (json) or for a terminal line (text), cut to max bytes. */
static void put_escaped(FILE *out, const char *s, uint64_t n, bool json)
{
    uint64_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\') {
                fputc('\\', out);
                fputc(c, out);
            } else if (c == '\n') {
                fputs("\\n", out);
            } else if (c == '\t') {
                fputs("\\t", out);
            } else if (c == '\r') {
                fputs("\\r", out);
            } else if (c < 0x20 || c == 0x7f) {
                fprintf(out, json ? "\\u%04x" : "\\x%02x", c);
            } else {
                fputc(c, out);
            }
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_decode(s + i, (size_t)(n - i < 4 ? n - i : 4), &cp);
        if (len == 0) {
            if (json)
                fputs(UTF8_REPLACEMENT, out);
            else
                fprintf(out, "\\x%02x", c);
            i++;
        } else {
            fwrite(s + i, 1, len, out);
            i += len;
        }
    }
}

/* Length of the longest prefix of at most max bytes that does not split a UTF-8 sequence. */
static uint64_t cut_len(const char *s, uint64_t n, uint64_t max)
{
    if (n <= max)
        return n;
    uint64_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    return k;
}

static void put_str(FILE *out, struct gguf_str s, bool json, bool cut)
{
    uint64_t n = cut ? cut_len(s.ptr, s.len, STR_CUT) : s.len;
    fputc('"', out);
    put_escaped(out, s.ptr, n, json);
    fputc('"', out);
    if (n < s.len && !json)
        fprintf(out, " ... (%" PRIu64 " bytes)", s.len);
}

static void put_cstr(FILE *out, const char *s, bool json)
{
    struct gguf_str v = {strlen(s), s};
    put_str(out, v, json, false);
}

/* ---- scalar values -------------------------------------------------------- */

static void put_float(FILE *out, double v, bool json)
{
    if (!isfinite(v))
        fputs(json ? "null" : (isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf")), out);
    else
        fprintf(out, "%.17g", v);
}

/* An f32 in the fewest digits that read back to the same float (1e-05, not 9.99999975e-06). */
static void put_f32(FILE *out, float v, bool json)
{
    if (!isfinite(v)) {
        put_float(out, (double)v, json);
        return;
    }
    char buf[64];
    if (v == floorf(v) && fabsf(v) < 1e15f) { /* integral: no exponent (1000000, not 1e+06) */
        fprintf(out, "%.0f", (double)v);
        return;
    }
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
}

/* One scalar element of type t at p (not string/array). */
static void put_scalar(FILE *out, enum gguf_vtype t, const uint8_t *p, bool json)
{
    switch (t) {
    case GGUF_VT_UINT8:
        fprintf(out, "%u", p[0]);
        break;
    case GGUF_VT_INT8:
        fprintf(out, "%d", (int8_t)p[0]);
        break;
    case GGUF_VT_BOOL:
        fputs(p[0] ? "true" : "false", out);
        break;
    case GGUF_VT_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        fprintf(out, "%u", v);
        break;
    }
    case GGUF_VT_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        fprintf(out, "%d", v);
        break;
    }
    case GGUF_VT_UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        fprintf(out, "%" PRIu32, v);
        break;
    }
    case GGUF_VT_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        fprintf(out, "%" PRId32, v);
        break;
    }
    case GGUF_VT_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        fprintf(out, "%" PRIu64, v);
        break;
    }
    case GGUF_VT_INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        fprintf(out, "%" PRId64, v);
        break;
    }
    case GGUF_VT_FLOAT32: {
        float v;
        memcpy(&v, p, 4);
        put_f32(out, v, json);
        break;
    }
    case GGUF_VT_FLOAT64: {
        double v;
        memcpy(&v, p, 8);
        put_float(out, v, json);
        break;
    }
    default:
        fputs(json ? "null" : "?", out);
        break;
    }
}

static const char *plural_type(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_VT_STRING:
        return "strings";
    case GGUF_VT_FLOAT32:
    case GGUF_VT_FLOAT64:
        return "floats";
    case GGUF_VT_BOOL:
        return "bools";
    default:
        return "integers";
    }
}

/* Array elements [0, n_show) comma-separated, strings quoted and cut. */
static void put_elems(FILE *out, const struct gguf_kv *kv, uint64_t n_show, bool json)
{
    size_t es = gguf_vtype_size(kv->arr_type);
    for (uint64_t i = 0; i < n_show; i++) {
        if (i)
            fputs(", ", out);
        if (kv->arr_type == GGUF_VT_STRING)
            put_str(out, kv->arr_strs[i], json, true);
        else
            put_scalar(out, kv->arr_type, kv->data + i * es, json);
    }
}

/* ---- the two printers -------------------------------------------------------- */

struct type_total {
    uint64_t count, bytes, params;
};

static void kv_string(const struct gguf_file *f, const struct gguf_kv *kv, struct gguf_str *s)
{
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255), kv->key.ptr);
    s->len = 0;
    s->ptr = "";
    if (gguf_get_str(f, key, s) != HEARTH_OK) {
        s->len = 0;
        s->ptr = "";
    }
}

static void print_kv_value(FILE *out, const struct gguf_file *f, const struct gguf_kv *kv,
                           bool json)
{
    if (kv->type == GGUF_VT_STRING) {
        struct gguf_str s;
        kv_string(f, kv, &s);
        put_str(out, s, json, !json);
        return;
    }
    if (kv->type != GGUF_VT_ARRAY) {
        put_scalar(out, kv->type, kv->data, json);
        return;
    }
    uint64_t n = kv->arr_n;
    bool whole = n <= ARR_FULL;
    uint64_t show = whole ? n : ARR_SHOW;
    if (kv->arr_type == GGUF_VT_ARRAY ||
        (kv->arr_type != GGUF_VT_STRING && gguf_vtype_size(kv->arr_type) == 0))
        show = 0;
    if (json) {
        fputc('[', out);
        put_elems(out, kv, show, json);
        fputc(']', out);
        return;
    }
    if (whole && show == n) {
        fputc('[', out);
        put_elems(out, kv, show, json);
        fputc(']', out);
        return;
    }
    fprintf(out, "[%" PRIu64 " %s: ", n, plural_type(kv->arr_type));
    put_elems(out, kv, show, json);
    fputs(", ... ]", out);
}

static void shape_text(const struct gguf_tensor *t, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (uint32_t d = 0; d < t->n_dims && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

static uint64_t n_elems(const struct gguf_tensor *t)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        n *= t->ne[d];
    return n;
}

static void print_text(FILE *out, const struct gguf_file *f, const struct arch_info *ai,
                       hearth_status ai_st, const char *ai_err, const struct type_total *tt,
                       uint64_t total_bytes, uint64_t total_params)
{
    fprintf(out, "file: %s\n", f->path);
    fprintf(out,
            "  %" PRIu64 " bytes, GGUF v%u, %" PRIu64 " tensors, %" PRIu64
            " metadata keys, alignment %" PRIu64 ", data at offset %" PRIu64 "\n\n",
            f->size, f->version, f->n_tensors, f->n_kv, f->alignment, f->data_offset);
    fprintf(out, "architecture\n");
    if (ai_st != HEARTH_OK) {
        fprintf(out, "  unavailable: %s\n\n", ai_err);
    } else {
        fprintf(out, "  %-14s %s\n", "arch", ai->arch);
        fprintf(out, "  %-14s %u\n", "blocks", ai->n_layer);
        fprintf(out, "  %-14s %u\n", "embedding", ai->n_embd);
        fprintf(out, "  %-14s %u\n", "heads", ai->n_head);
        fprintf(out, "  %-14s %u\n", "KV heads", ai->n_head_kv);
        fprintf(out, "  %-14s %u (K) / %u (V)\n", "head dim", ai->head_dim_k, ai->head_dim_v);
        fprintf(out, "  %-14s %u%s\n", "FFN size", ai->n_ff,
                ai->per_layer_heads ? " (per-layer; max shown)" : "");
        fprintf(out, "  %-14s %u\n", "context", ai->n_ctx_train);
        fprintf(out, "  %-14s ", "RoPE base");
        put_f32(out, ai->rope_base, false);
        fputc('\n', out);
        fprintf(out, "  %-14s %u\n", "RoPE dims", ai->n_rot);
        fprintf(out, "  %-14s %s", "RoPE scaling", ai->rope_scaling);
        if (ai->rope_scale_factor > 0.0f) {
            fputs(" (factor ", out);
            put_f32(out, ai->rope_scale_factor, false);
            fputc(')', out);
        }
        if (ai->has_rope_freqs)
            fprintf(out, " (rope_freqs.weight)");
        fputc('\n', out);
        if (ai->norm_eps > 0.0f) {
            fprintf(out, "  %-14s ", "norm eps");
            put_f32(out, ai->norm_eps, false);
            fputc('\n', out);
        }
        if (ai->sliding_window)
            fprintf(out, "  %-14s %u\n", "sliding window", ai->sliding_window);
        if (ai->n_expert)
            fprintf(out, "  %-14s %u (%u used)\n", "experts", ai->n_expert, ai->n_expert_used);
        fprintf(out, "  %-14s %u\n", "vocab size", ai->n_vocab);
        fprintf(out, "  %-14s %s (pre %s)\n", "tokenizer", ai->tok_model[0] ? ai->tok_model : "-",
                ai->tok_pre);
        fprintf(out, "  %-14s %s\n\n", "LM head", ai->tied ? "tied (token_embd)" : "output.weight");
    }
    fprintf(out, "metadata (%" PRIu64 " keys)\n", f->n_kv);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        fputs("  ", out);
        put_escaped(out, kv->key.ptr, kv->key.len, false);
        fprintf(out, " (%s) = ", kv->type == GGUF_VT_ARRAY ? "array" : gguf_vtype_name(kv->type));
        print_kv_value(out, f, kv, false);
        fputc('\n', out);
    }
    fprintf(out, "\ntensors (%" PRIu64 ")\n", f->n_tensors);
    fprintf(out, "  %-36s %-8s %-22s %14s %14s\n", "name", "type", "shape", "bytes", "offset");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        char shape[96];
        shape_text(t, shape, sizeof shape);
        const char *tn = hearth_dtype_name(t->type);
        fprintf(out, "  %-36.*s %-8s %-22s %14" PRIu64 " %14" PRIu64 "\n", (int)t->name.len,
                t->name.ptr, tn ? tn : "?", shape, t->nbytes, t->offset);
    }
    fprintf(out, "\ntotals by type\n  %-8s %6s %16s %7s\n", "type", "count", "bytes", "share");
    for (int ty = 0; ty < HEARTH_DTYPE_COUNT; ty++) {
        if (!tt[ty].count)
            continue;
        fprintf(out, "  %-8s %6" PRIu64 " %16" PRIu64 " %6.2f%%\n",
                hearth_dtype_name((hearth_dtype)ty), tt[ty].count, tt[ty].bytes,
                total_bytes ? 100.0 * (double)tt[ty].bytes / (double)total_bytes : 0.0);
    }
    fprintf(out, "  %-8s %6" PRIu64 " %16" PRIu64 " (%.3f GiB, %" PRIu64 " parameters)\n", "total",
            f->n_tensors, total_bytes, (double)total_bytes / 1073741824.0, total_params);
    fprintf(out, "\nbits per weight: %.4f\n",
            total_params ? 8.0 * (double)total_bytes / (double)total_params : 0.0);
}

static void json_key(FILE *out, const char *k, bool first)
{
    fprintf(out, "%s\"%s\": ", first ? "" : ", ", k);
}

static void print_json(FILE *out, const struct gguf_file *f, const struct arch_info *ai,
                       hearth_status ai_st, const char *ai_err, const struct type_total *tt,
                       uint64_t total_bytes, uint64_t total_params)
{
    fputs("{\"file\": ", out);
    put_cstr(out, f->path, true);
    fprintf(out,
            ", \"size\": %" PRIu64 ", \"version\": %u, \"alignment\": %" PRIu64
            ", \"data_offset\": %" PRIu64 ",\n \"architecture\": ",
            f->size, f->version, f->alignment, f->data_offset);
    if (ai_st != HEARTH_OK) {
        fputs("{\"error\": ", out);
        put_cstr(out, ai_err, true);
        fputc('}', out);
    } else {
        fputc('{', out);
        json_key(out, "arch", true);
        put_cstr(out, ai->arch, true);
        fprintf(out,
                ", \"blocks\": %u, \"embedding\": %u, \"heads\": %u, \"kv_heads\": %u"
                ", \"head_dim_k\": %u, \"head_dim_v\": %u, \"ffn\": %u, \"context\": %u"
                ", \"rope_dims\": %u, \"vocab\": %u, \"sliding_window\": %u"
                ", \"experts\": %u, \"experts_used\": %u",
                ai->n_layer, ai->n_embd, ai->n_head, ai->n_head_kv, ai->head_dim_k, ai->head_dim_v,
                ai->n_ff, ai->n_ctx_train, ai->n_rot, ai->n_vocab, ai->sliding_window, ai->n_expert,
                ai->n_expert_used);
        json_key(out, "rope_base", false);
        put_f32(out, ai->rope_base, true);
        json_key(out, "rope_scaling", false);
        put_cstr(out, ai->rope_scaling, true);
        json_key(out, "rope_scale_factor", false);
        put_f32(out, ai->rope_scale_factor, true);
        json_key(out, "norm_eps", false);
        put_f32(out, ai->norm_eps, true);
        json_key(out, "tokenizer", false);
        put_cstr(out, ai->tok_model, true);
        json_key(out, "tokenizer_pre", false);
        put_cstr(out, ai->tok_pre, true);
        fprintf(out, ", \"tied\": %s, \"rope_freqs\": %s}", ai->tied ? "true" : "false",
                ai->has_rope_freqs ? "true" : "false");
    }
    fputs(",\n \"metadata\": [", out);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        fputs(i ? ",\n  {\"key\": " : "\n  {\"key\": ", out);
        put_str(out, kv->key, true, false);
        fprintf(out, ", \"type\": \"%s\"", gguf_vtype_name(kv->type));
        if (kv->type == GGUF_VT_ARRAY)
            fprintf(out, ", \"elem_type\": \"%s\", \"count\": %" PRIu64 ", \"truncated\": %s",
                    gguf_vtype_name(kv->arr_type), kv->arr_n,
                    kv->arr_n > ARR_FULL ? "true" : "false");
        if (kv->type == GGUF_VT_STRING) {
            struct gguf_str s;
            kv_string(f, kv, &s);
            fprintf(out, ", \"length\": %" PRIu64, s.len);
        }
        fputs(", \"value\": ", out);
        print_kv_value(out, f, kv, true);
        fputc('}', out);
    }
    fputs("],\n \"tensors\": [", out);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", out);
        put_str(out, t->name, true, false);
        const char *tn = hearth_dtype_name(t->type);
        fprintf(out, ", \"type\": \"%s\", \"shape\": [", tn ? tn : "?");
        for (uint32_t d = 0; d < t->n_dims; d++)
            fprintf(out, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
        fprintf(out, "], \"bytes\": %" PRIu64 ", \"offset\": %" PRIu64 "}", t->nbytes, t->offset);
    }
    fputs("],\n \"totals\": [", out);
    bool first = true;
    for (int ty = 0; ty < HEARTH_DTYPE_COUNT; ty++) {
        if (!tt[ty].count)
            continue;
        fprintf(out,
                "%s\n  {\"type\": \"%s\", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64
                ", \"share\": %.6f}",
                first ? "" : ",", hearth_dtype_name((hearth_dtype)ty), tt[ty].count, tt[ty].bytes,
                total_bytes ? (double)tt[ty].bytes / (double)total_bytes : 0.0);
        first = false;
    }
    fprintf(out,
            "],\n \"total_bytes\": %" PRIu64 ", \"n_params\": %" PRIu64
            ", \"bits_per_weight\": %.6f}\n",
            total_bytes, total_params,
            total_params ? 8.0 * (double)total_bytes / (double)total_params : 0.0);
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "hearth inspect: unknown option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "hearth inspect: more than one file given ('%s', '%s')\n\n", path,
                    argv[i]);
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    err_clear();
    struct gguf_file *f = NULL;
    if (gguf_open(path, &f) != HEARTH_OK) {
        fprintf(stderr, "hearth inspect: %s\n", hearth_last_error());
        return 1;
    }
    struct arch_info ai;
    char ai_err[512] = "";
    hearth_status ai_st = arch_info_read(f, &ai);
    if (ai_st != HEARTH_OK)
        snprintf(ai_err, sizeof ai_err, "%s", hearth_last_error());
    static struct type_total tt[HEARTH_DTYPE_COUNT];
    memset(tt, 0, sizeof tt);
    uint64_t total_bytes = 0, total_params = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if ((int)t->type >= 0 && t->type < HEARTH_DTYPE_COUNT) {
            tt[t->type].count++;
            tt[t->type].bytes += t->nbytes;
        }
        total_bytes += t->nbytes;
        total_params += n_elems(t);
    }
    if (json)
        print_json(stdout, f, &ai, ai_st, ai_err, tt, total_bytes, total_params);
    else
        print_text(stdout, f, &ai, ai_st, ai_err, tt, total_bytes, total_params);
    gguf_close(f);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "hearth inspect: writing the output failed\n");
        return 1;
    }
    return 0;
}
