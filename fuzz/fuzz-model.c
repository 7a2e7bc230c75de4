/*
 * fuzz-model: libFuzzer target for everything that reads a model file's
 * metadata once the GGUF reader has accepted it (run by scripts/fuzz.sh): the
 * tokenizer loader (vocabulary, merges, scores, special ids), the chat
 * template detection, the model loader (hyperparameters, tensor shapes and
 * types, layer kinds) and the planner. A model file is the input hearth
 * users take from strangers, and fuzz-gguf stops at the container.
 *
 * The input is a file's header (key-values and tensor infos). It is copied
 * to the start of an anonymous mapping that reads as zeros past it, and
 * opened as a file 64 MiB longer than the input, so the tensor data the
 * header promises (the seeds' models need well under 1 MiB) is there: zeros,
 * not touched into RSS unless read. Not larger: zeros parse as empty strings,
 * so a header may declare an array of (room / 8) of them, and the reader's
 * 16-byte view per string must stay within the fuzzer's memory limit. A loader must return a
 * status for any of it; what it accepts must hold up: a tokenizer encodes
 * and decodes a fixed text with every id in range, and a loaded model's
 * plan keeps within its budgets.
 *
 * Seeds: HEARTH_FUZZ_WRITE_SEEDS=DIR makes LLVMFuzzerInitialize write the
 * headers of small synth models (llama, qwen2 and gemma3 shapes, 2-6 layers,
 * a 512-word vocabulary) into DIR and exit; scripts/fuzz.sh does that first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arch-info.h"
#include "chat.h"
#include "fuzz.h"
#include "gguf.h"
#include "model-presets.h"
#include "model.h"
#include "plan.h"
#include "quant-mix.h"
#include "synth.h"
#include "tokenizer.h"

static const size_t k_room = (size_t)64 << 20; /* zeros past the input */
static const size_t k_max_input = (size_t)1 << 20;
static uint8_t *g_map;
static size_t g_dirty; /* bytes at the start of g_map holding an earlier input */

/* The header of a small model shaped like preset `name` (n_layer blocks) as a seed. */
static int write_seed(const char *dir, const char *name, uint32_t n_layer)
{
    const struct model_preset *base = NULL;
    if (model_preset_find(name, &base) != HEARTH_OK)
        return 1;
    struct model_preset p = *base;
    p.n_layer = n_layer;
    p.n_embd = 64;
    p.n_head = 2;
    p.n_head_kv = 1;
    p.head_dim = 32;
    p.n_ff = 128;
    p.n_vocab = 512;
    if (p.sliding_window)
        p.sliding_window = 16;
    struct synth_opts so;
    memset(&so, 0, sizeof so);
    so.preset = &p;
    so.seed = 1;
    so.header_only = true;
    if (quant_mix_from_name("Q8_0", &so.mix) != HEARTH_OK)
        return 1;
    char tmp[512], out[512];
    snprintf(tmp, sizeof tmp, "%s/.%s.gguf", dir, name);
    snprintf(out, sizeof out, "%s/%s.hdr", dir, name);
    struct gguf_file *f = NULL;
    if (synth_write(&so, tmp, NULL) != HEARTH_OK || gguf_open(tmp, &f) != HEARTH_OK)
        return 1;
    FILE *o = fopen(out, "wb");
    size_t n = (size_t)f->data_offset;
    int bad = !o || fwrite(f->base, 1, n, o) != n;
    if (o)
        bad |= fclose(o) != 0;
    gguf_close(f);
    remove(tmp);
    return bad;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("HEARTH_FUZZ_WRITE_SEEDS");
    if (dir) {
        int bad = write_seed(dir, "smollm2-135m", 2) | write_seed(dir, "qwen2-7b", 2) |
                  write_seed(dir, "llama3.1-8b", 2) | write_seed(dir, "gemma3-270m", 6);
        if (bad)
            fprintf(stderr, "fuzz-model: could not write the seeds: %s\n", hearth_last_error());
        exit(bad);
    }
    g_map = mmap(NULL, k_max_input + k_room, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
    FUZZ_CHECK(g_map != MAP_FAILED);
    return 0;
}

static void check_tokenizer(const struct gguf_file *f)
{
    struct tokenizer *t = NULL;
    if (tok_load(f, &t) != HEARTH_OK)
        return;
    static const char text[] = "Hello, world! 123 caf\xc3\xa9 <|im_start|>\n\n  x";
    const size_t n_vocab = tok_n_vocab(t);
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok_encode(t, text, sizeof text - 1, true, true, &ids, &n) == HEARTH_OK) {
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < n_vocab);
        char *back = NULL;
        size_t back_len = 0;
        if (tok_decode(t, ids, n, true, &back, &back_len) == HEARTH_OK)
            FUZZ_CHECK(back != NULL && back[back_len] == '\0'); /* a byte token may be a NUL */
        free(back);
    }
    free(ids);
    /* every id decodes (or is refused) on its own */
    for (size_t i = 0; i < n_vocab && i < 4096; i++) {
        int32_t id = (int32_t)i;
        char *s = NULL;
        size_t len = 0;
        if (tok_decode(t, &id, 1, true, &s, &len) == HEARTH_OK)
            FUZZ_CHECK(s != NULL && s[len] == '\0');
        free(s);
    }
    tok_free(t);
}

static void check_chat(const struct gguf_file *f)
{
    struct gguf_str tmpl = {0}, arch = {0};
    char a[64] = "";
    if (gguf_get_str(f, "general.architecture", &arch) == HEARTH_OK && arch.len < sizeof a) {
        memcpy(a, arch.ptr, (size_t)arch.len);
        a[arch.len] = '\0';
    }
    if (gguf_get_str(f, "tokenizer.chat_template", &tmpl) != HEARTH_OK)
        tmpl = (struct gguf_str){0};
    enum chat_source src;
    enum chat_format cf = chat_detect_model(tmpl.ptr, (size_t)tmpl.len, a, &src);
    FUZZ_CHECK(strcmp(chat_format_name(cf), "unknown") != 0);
}

static void check_model(struct gguf_file *f)
{
    struct model *m = NULL;
    if (model_load_gguf(f, &m) != HEARTH_OK)
        return;
    struct plan_model pm;
    if (plan_model_from_gguf(f, &pm) == HEARTH_OK) {
        struct plan_devices d;
        plan_devices_init(&d);
        FUZZ_CHECK(plan_devices_set_host(&d, "16GiB:50GB/s") == HEARTH_OK);
        FUZZ_CHECK(plan_devices_add(&d, "cuda:1GiB:500GB/s") == HEARTH_OK);
        struct plan_opts o;
        plan_opts_default(&o);
        o.n_ctx = 256;
        struct plan p;
        if (plan_make(&pm, &d, &o, &p) == HEARTH_OK) {
            FUZZ_CHECK(p.use[1].total <= p.use[1].budget);
            plan_free(&p);
        }
        plan_model_free(&pm);
    }
    model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > k_max_input)
        return 0;
    memcpy(g_map, data, size);
    if (g_dirty > size)
        memset(g_map + size, 0, g_dirty - size); /* zeros past the input, as promised */
    g_dirty = size;
    struct gguf_file *f = NULL;
    if (gguf_open_memory(g_map, size + k_room, "fuzz", &f) != HEARTH_OK)
        return 0;
    check_tokenizer(f);
    check_chat(f);
    check_model(f);
    gguf_close(f);
    return 0;
}
