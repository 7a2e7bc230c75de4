/*
 * json-guard (jg_ prefix): constrained generation of JSON (the server's
 * response_format {"type": "json_object"}).
 *
 * An incremental recognizer of JSON text (RFC 8259) over bytes: its state
 * says whether the bytes fed so far are a prefix of a valid JSON text, and
 * whether that text is complete. The sampler asks it, per candidate token,
 * whether the token's bytes keep the reply a valid prefix (jg_allows); a
 * token that would break it is never chosen, and once the value is
 * complete only an end-of-generation token is. A check copies the state's
 * header and the frames in use (about 100 bytes plus 24 per constrained
 * level) and feeds the token's bytes to the copy, so checking the whole
 * vocabulary takes about a millisecond for 49k tokens, paid only when the
 * sampled token is refused.
 *
 * With a compiled JSON Schema (json-schema.h) the same state also follows
 * the schema: each value's node is known before its first byte (the root,
 * a property's, an array's items), so the first byte picks the kind, keys
 * are matched against the unseen property names byte by byte, and enum
 * values against their canonical texts. Containers under constraint keep a
 * frame (at most JS_MAX_NEST); an unconstrained subtree keeps none.
 *
 * Beyond RFC 8259: strings must be valid UTF-8 (no overlongs, no
 * surrogates, as RFC 3629 says), nesting is capped at JG_MAX_DEPTH, and at
 * most JG_MAX_WS whitespace bytes may follow each other, so that a model
 * cannot pad forever with spaces or newlines.
 */
#ifndef HEARTH_JSON_GUARD_H
#define HEARTH_JSON_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json-schema.h"

#define JG_MAX_DEPTH 64
#define JG_MAX_WS 48

/* A constrained object or array being read (json_schema). */
struct jg_frame {
    int32_t node;  /* its schema node */
    int32_t prop;  /* object: the property whose value is read (index in its js_obj) */
    uint64_t seen; /* object: properties present */
    uint32_t count; /* array: elements begun */
};

struct jg_state {
    uint64_t arrays;  /* bit d: nesting level d is an array (else an object) */
    uint8_t depth;    /* open objects and arrays */
    uint8_t mode;     /* enum jg_mode (json-guard.c) */
    uint8_t sub;      /* literal index, \u hex digits left, UTF-8 continuation bytes left */
    uint8_t lit;      /* which literal (true, false, null) */
    uint8_t utf8_lo, utf8_hi; /* range of the next UTF-8 continuation byte */
    uint8_t ws;       /* consecutive whitespace bytes */
    bool key;         /* the string being read is an object key */
    bool object_only; /* the text must be an object (json_object) */
    bool int_only;    /* the number being read must be an integer (json_schema) */
    /* json_schema: NULL for plain JSON */
    const struct js_schema *schema;
    int32_t pending;  /* node of the value due next; -1: any value */
    uint8_t free_depth; /* > 0: levels from this depth down are unconstrained (no frames) */
    uint8_t n_frames;
    uint64_t cand;    /* key or enum value being matched: the candidates still agreeing */
    uint32_t mpos;    /* bytes of it matched */
    int32_t enum0;    /* enum value being matched: index of the node's first value */
    struct jg_frame frames[JS_MAX_NEST];
};

/* A fresh state: nothing fed. object_only: the text must be a JSON object. */
void jg_init(struct jg_state *s, bool object_only);
/*
 * A fresh state whose text must also be valid against schema (borrowed: it
 * outlives the state): kinds, an object's keys (only its properties, each
 * once; closed only with every required one), array lengths, enum values.
 */
void jg_init_schema(struct jg_state *s, const struct js_schema *schema);
/* Feeds b[0..n). False (s then unspecified) when they leave no valid JSON prefix. */
bool jg_feed(struct jg_state *s, const char *b, size_t n);
/* A whole JSON text has been read (only whitespace may follow). */
bool jg_done(const struct jg_state *s);

struct tokenizer;
/*
 * Whether token id may come next: an end-of-generation token (is_stop) once
 * the text is done, else a non-control token whose bytes keep a valid
 * prefix (none after a closed top-level value; a top-level number may still
 * grow). An id the tokenizer does not have is refused.
 */
bool jg_allows(const struct jg_state *s, const struct tokenizer *t, int32_t id, bool is_stop);

/*
 * The vocabulary's text tokens (not control tokens, not empty) sorted by
 * their bytes, each with the length of the prefix it shares with the one
 * before: a sweep walks them as a trie, feeding each token only the bytes
 * after that shared prefix and skipping every token that starts with a
 * prefix already refused. At a structural position (where a sampled token
 * is refused most often) that skips nearly all of them: "{" may follow, but
 * " the", " and", ... all fail at their second byte.
 */
struct jg_index {
    int32_t *ids;    /* sorted by bytes */
    uint16_t *lcp;   /* [n]: bytes shared with the previous token (0 for the first) */
    size_t n;
    size_t max_len;  /* longest token, in bytes */
};

/* Builds x for t; false when out of memory (x then empty). */
bool jg_index_build(const struct tokenizer *t, struct jg_index *x);
void jg_index_free(struct jg_index *x);
/*
 * Every token of x that may come next (jg_allows with is_stop false) into
 * out (room for tok_n_vocab ids, in x's order); returns how many, or
 * SIZE_MAX when out of memory. End-of-generation tokens are the caller's:
 * jg_done says whether they may come.
 */
size_t jg_candidates(const struct jg_state *s, const struct jg_index *x,
                     const struct tokenizer *t, int32_t *out);

#endif
