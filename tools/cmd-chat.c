/*
 * cmd-chat: `hearth chat [-m MODEL] [--system TEXT] [flags]`, an interactive
 * conversation.
 *
 * Each input line is a user turn. The whole conversation is re-rendered with
 * the model's chat template every turn and handed to gen_run, whose
 * common-prefix reuse finds the previous turns already in the KV cache, so only
 * the new user turn (and the few template tokens around it) is evaluated.
 * Re-rendering rather than appending tokens keeps the prompt exactly what the
 * template says even when a reply's re-tokenization differs from the sampled
 * ids; the cost is at worst re-evaluating that reply's tail.
 *
 * On a terminal: a "> " prompt; Ctrl-C during a reply stops that reply (the
 * SIGINT handler only sets a flag, checked by the token callback and between
 * prefill chunks); Ctrl-C at the prompt or EOF quits. From a pipe: no prompt,
 * each line is a turn, EOF quits. Commands: /reset forgets the history,
 * /exit quits.
 *
 * A full context: before a turn, the oldest user/assistant pairs are dropped
 * (a system message is kept) until the prompt leaves a quarter of the context
 * for the reply; a reply that still fills the context is cut there and the
 * next turn drops history the same way. Chosen over a silent full reset so a
 * long conversation keeps its recent turns.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "cli.h"
#include "err.h"
#include "generate.h"
#include "progress.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hearth chat [-m MODEL] [--system TEXT] [options]\n\n"
            "Interactive chat. Each line you type is a user turn; the reply streams to\n"
            "stdout. /reset forgets the conversation, /exit (or EOF) quits. Ctrl-C stops a\n"
            "reply; at the prompt it quits. Reads turns from a pipe too (one per line).\n\n"
            "Options: -m FILE, --system TEXT, -n N (per reply; default: until the end of\n"
            "the turn), --temp, --top-k, --top-p, --min-p, --repeat-penalty,\n"
            "--repeat-last-n, --presence-penalty, --frequency-penalty, --seed, -t, -c,\n"
            "--stop STR, --device NAME, -ngl N|auto|all, --kv-type T, --kv-window N,\n"
            "--vram-budget S, -b N, -l ID+BIAS (--logit-bias), --no-stream, --swa-full,\n"
            "--stats (speed and evaluated tokens per turn on stderr),\n"
            "-q (nothing on stderr but errors). See `hearth run --help`.\n");
}

struct history {
    struct chat_msg *msgs; /* [n] contents owned (malloc'd), roles static */
    size_t n, cap;
    size_t first; /* msgs[0..first) are fixed (the system message) */
};

static void history_drop(struct history *h, size_t from, size_t count)
{
    if (count == 0) /* also: an empty history has no array to move (msgs may be NULL) */
        return;
    for (size_t i = from; i < from + count; i++)
        free((char *)h->msgs[i].content);
    memmove(h->msgs + from, h->msgs + from + count,
            (h->n - from - count) * sizeof *h->msgs);
    h->n -= count;
}

static int history_push(struct history *h, const char *role, const char *text, size_t len)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16;
        struct chat_msg *m = realloc(h->msgs, cap * sizeof *m);
        if (!m)
            return -1;
        h->msgs = m;
        h->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, text, len);
    copy[len] = '\0';
    h->msgs[h->n++] = (struct chat_msg){role, copy};
    return 0;
}

/* The reply as it streams: printed at once and kept for the history. */
struct reply {
    char *text;
    size_t len, cap;
    bool oom;
};

static bool on_piece(void *user, const char *text, size_t len, int32_t token)
{
    struct reply *r = user;
    (void)token;
    if (interrupted)
        return false;
    if (len == 0)
        return true;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    if (r->len + len + 1 > r->cap) {
        size_t cap = (r->len + len + 1) * 2;
        char *t = realloc(r->text, cap);
        if (!t) {
            r->oom = true;
            return false;
        }
        r->text = t;
        r->cap = cap;
    }
    memcpy(r->text + r->len, text, len);
    r->len += len;
    return true;
}

static bool should_abort(void *user)
{
    (void)user;
    return interrupted != 0;
}

/*
 * Tokenizes the conversation with the assistant opening, dropping the oldest
 * turns while the prompt leaves less than a quarter of the context. Returns 0,
 * or 1 (message printed) when even the last user turn alone does not fit.
 */
static int fit_prompt(struct run_ctx *c, struct history *h, bool quiet, int32_t **ids,
                      size_t *n_ids)
{
    size_t n_ctx = gen_session_n_ctx(c->gs);
    size_t room = n_ctx - n_ctx / 4;
    bool dropped = false;
    for (;;) {
        hearth_status st =
            gen_chat_tokenize(&c->chat, c->tok, h->msgs, h->n, true, ids, n_ids);
        if (st != HEARTH_OK) {
            cli_error("cannot render the conversation");
            return 1;
        }
        if (*n_ids <= room)
            break;
        free(*ids);
        *ids = NULL;
        if (h->n - h->first <= 1) {
            fprintf(stderr,
                    "hearth: the message is %zu tokens, too long for a context of %zu (-c)\n",
                    *n_ids, n_ctx);
            history_drop(h, h->first, h->n - h->first);
            return 1;
        }
        /* the oldest turn and its reply (a lone user turn when that is all there is) */
        size_t k = h->n - h->first >= 3 ? 2 : 1;
        history_drop(h, h->first, k);
        dropped = true;
    }
    if (dropped && !quiet)
        fprintf(stderr, "(context full: dropped the oldest turns)\n");
    return 0;
}

int cmd_chat(int argc, char **argv)
{
    struct run_opts o;
    run_opts_default(&o);
    o.n_predict = -1;
    bool stats_flag = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--stats")) {
            stats_flag = true;
            continue;
        }
        int r = run_parse_flag(argc, argv, &i, &o);
        if (r < 0)
            return 2;
        if (r == 0 || o.prompt) {
            fprintf(stderr, "hearth: chat: unknown option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    struct run_ctx c;
    if (run_ctx_open(&o, &c))
        return 1;
    bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (!o.quiet && !o.sp.seed_set)
        fprintf(stderr, "seed: %llu\n", (unsigned long long)gen_session_seed(c.gs));
    if (!o.quiet && c.chat.source == CHAT_SOURCE_FALLBACK)
        fprintf(stderr, "hearth: no known chat template in the model; using ChatML\n");

    /* no SA_RESTART: a Ctrl-C at the prompt must interrupt the blocking read */
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);

    struct history h = {0};
    struct reply r = {0};
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 0;
    if (o.system) {
        if (history_push(&h, "system", o.system, strlen(o.system))) {
            cli_error("out of memory");
            rc = 1;
            goto done;
        }
        h.first = 1;
    }
    struct gen_params gp;
    gen_params_default(&gp);
    gp.n_predict = o.n_predict;
    gp.stop = o.stops;
    gp.n_stop = o.n_stops;
    gp.chat = &c.chat;
    gp.on_token = on_piece;
    gp.should_abort = should_abort;
    gp.user = &r;
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        interrupted = 0;
        errno = 0;
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0) {
            if (tty)
                fputc('\n', stdout);
            break; /* EOF, or Ctrl-C at the prompt (EINTR) */
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit"))
            break;
        if (!strcmp(line, "/reset")) {
            history_drop(&h, h.first, h.n - h.first);
            if (!o.quiet)
                fprintf(stderr, "(history cleared)\n");
            continue;
        }
        if (history_push(&h, "user", line, (size_t)n)) {
            cli_error("out of memory");
            rc = 1;
            break;
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (fit_prompt(&c, &h, o.quiet, &ids, &n_ids))
            continue;
        r.len = 0;
        struct gen_stats st;
        hearth_status s = gen_run(c.gs, ids, n_ids, &gp, &st);
        free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        if (s != HEARTH_OK || r.oom) {
            cli_error("generation failed");
            rc = 1;
            break;
        }
        if (history_push(&h, "assistant", r.text ? r.text : "", r.len)) {
            cli_error("out of memory");
            rc = 1;
            break;
        }
        if (st.stop == GEN_STOP_CANCELLED && !o.quiet)
            fprintf(stderr, "(reply stopped)\n");
        if (st.stop == GEN_STOP_CTX_FULL && !o.quiet)
            fprintf(stderr, "(the context is full: older turns will be dropped)\n");
        if (stats_flag && !o.quiet)
            run_print_stats(&st);
    }
done:
    sigaction(SIGINT, &old_sa, NULL);
    history_drop(&h, 0, h.n);
    free(h.msgs);
    free(r.text);
    free(line);
    run_ctx_close(&c);
    if (o.print_rss)
        run_print_rss();
    return rc;
}
