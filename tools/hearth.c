/*
 * hearth: the command-line front end. Dispatches to one function per
 * subcommand (tools/cmd-*.c); shared flag parsing lives in cli-util.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "hearth.h"

/* perplexity and bench; to move into cli.h */

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"inspect", cmd_inspect, "show a GGUF file's architecture, metadata and tensors"},
    {"synth", cmd_synth, "write a random-weight GGUF model of a named shape"},
    {"devices", cmd_devices, "list the devices this build and machine offer"},
    {"plan", cmd_plan, "plan tensor placement, memory and speed; compare quant schemes"},
    {"run", cmd_run, "generate text from a prompt and stream it to stdout"},
    {"chat", cmd_chat, "interactive chat with a model (history kept, KV reused)"},
    {"embed", cmd_embed, "print a text's embedding vector (pooled last hidden state)"},
    {"perplexity", cmd_perplexity, "score a text: perplexity, and KL divergence between runs"},
    {"bench", cmd_bench, "measure prefill and decode speed against memory bandwidth"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
};

static void usage(FILE *out)
{
    fprintf(out, "hearth %d.%d.%d: GPU inference for GGUF language models\n\n"
                 "usage: hearth COMMAND [options]\n\ncommands:\n",
            HEARTH_VERSION_MAJOR, HEARTH_VERSION_MINOR, HEARTH_VERSION_PATCH);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n`hearth COMMAND --help` describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("hearth %d.%d.%d\n", HEARTH_VERSION_MAJOR, HEARTH_VERSION_MINOR,
               HEARTH_VERSION_PATCH);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hearth: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
