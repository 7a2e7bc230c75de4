/*
 * dot-avx2: AVX2/FMA/F16C dot products and activation quantizers.
 *
 * Each weight type has one always-inlined block function: it forms the block's
 * integer dot product with vpmaddubsw (unsigned x signed bytes -> pairs in
 * int16) and vpmaddwd (-> int32), converts once and adds scale * sum into a
 * float accumulator. Signed weights use the sign trick (|w| times sign(w)·a),
 * which is exact because activations never hold −128 (the quantizers clamp to
 * ±127). K-quant mins and the −32/−4 offsets of Q6_K/Q3_K never touch the quants:
 * they are one vpmaddwd of Q8_K's bsums with the scales. Every int16 pair sum
 * stays below 2^15 (at most 2·128·127), so vpmaddubsw never saturates.
 *
 * DEF_KERNELS turns a block function into dot (two accumulators over
 * alternating blocks, so the FMA chain is not the bottleneck) and dot_rows
 * (four rows at once: the activation block is loaded once and reused from
 * registers, and four weight streams are in flight); DEF_TILE into dot_tile
 * (one row against four tokens, for prefill: the weight-side unpacking is
 * shared by the four inlined copies) for the float types and IQ4_XS. The
 * other quantized types' dot_tile decodes each block once: the K-quants in
 * dot-ktile-avx2.c, the 32-element types in dot-ltile-avx2.c. All use the
 * same per-output accumulation order, so dot_rows and dot_tile equal dot bit
 * for bit. Q4_0 and Q5_0 use unsigned codes minus an activation-only offset
 * in dot/dot_rows (shared by the four rows) and the sign trick in the tile;
 * both give the same exact int32 sums. Scale fields are unpacked in SIMD,
 * never per scale in scalar code (bench/NOTES-cpu.md has the instruction
 * counts).
 *
 * The quantizers reproduce the reference bit for bit (see dot-scalar.c for the
 * rounding rules). Every load is unaligned (rows in mapped files are byte-aligned).
 */
#include "cpu/dot-avx2.h"

/*
 * The f16 at p, reading the 4 bytes p..p+3 (one vmovd, no zeroing of a register
 * first); only for f16 fields followed by 2 more bytes of the same block.
 */
static inline float f16_lo(const uint8_t *p)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dot__u32(p))));
}

/* The two f16 at p, p + 2 as floats in lanes 0 and 1 (lanes 2, 3 zero). */
static inline __m128 f16x2_at(const uint8_t *p)
{
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)dot__u32(p)));
}

/* Both signed: |x| times sign(x)·y. */
static inline __m256i dot_ss(__m256i x, __m256i y)
{
    return dot_us(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* ---- 32-element blocks ------------------------------------------------------ */

/*
 * Q4_1/Q5_1 against Q8_1S (dot.h): each lane adds d_a·(d_w·p + (m_w/8)·Σq), p
 * its own 4 elements' integer dot and Σq the block's exact code sum, which the
 * quantizer stored once per activation block (so no per-row summing of the
 * codes; /8 is exact). Not m_w·s_a: the reference Q8_1's s is d·Σq rounded to
 * f16, whose error on massive activations outgrew the 8-bit quantization
 * error. The min term is spread over all 8 lanes rather than added into one:
 * there it would pile up across blocks apart from the scale terms (each ~1000x
 * the result on SmolLM2's FFN outliers) and cancel only at the end; spread,
 * the block's two terms cancel before d_a scales them into the accumulator.
 * d_w, m_w/8 depend only on w (shared by dot_tile's four tokens), d_a and Σq
 * only on a (shared by dot_rows' four rows) and come from broadcast loads of
 * the 4-byte head {f16 d, int16 Σq}, leaving a multiply and two FMAs per
 * (row, token): a per-token scalar chain there halved prefill speed.
 */
static inline __m256 q_1_accum(const uint8_t *w, const uint8_t *a, __m256 p, __m256 acc)
{
    __m128 wdm = f16x2_at(w); /* d_w, m_w */
    __m256 dw = _mm256_broadcastss_ps(wdm);
    __m256 mw8 = _mm256_broadcastss_ps(_mm_mul_ss(_mm_movehdup_ps(wdm), _mm_set_ss(0.125f)));
    uint16_t dh;
    memcpy(&dh, a, 2);
    __m256 da = _mm256_cvtph_ps(_mm_set1_epi16((short)dh));
    /* Σq is the high half of the little-endian u32 at a */
    __m256 q = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_set1_epi32((int)dot__u32(a)), 16));
    __m256 inner = _mm256_fmadd_ps(dw, p, _mm256_mul_ps(mw8, q));
    return _mm256_fmadd_ps(inner, da, acc);
}

/*
 * Q4_0 and Q5_0 for dot and dot_rows: the unsigned codes u (0..15, 0..31)
 * against a, minus the offset times Σa per 4-byte group. This gives the same
 * int32 lanes as the sign trick (exact integers), so it matches the tile
 * kernels bit for bit; the offset term depends only on a, so dot_rows' four
 * inlined copies share it, and each row saves the two vpsignb.
 */
static inline __attribute__((always_inline)) __m256 blk_q4_0u(const uint8_t *w, const uint8_t *a,
                                                              __m256 acc)
{
    __m256i y = load32(a + 2);
    __m256i x = _mm256_sub_epi32(dot_us(nibbles32(w + 2), y), dot_us(_mm256_set1_epi8(8), y));
    __m256 p = _mm256_cvtepi32_ps(x);
    return _mm256_fmadd_ps(_mm256_set1_ps(f16_lo(w) * f16_lo(a)), p, acc);
}

static inline __attribute__((always_inline)) __m256 blk_q5_0u(const uint8_t *w, const uint8_t *a,
                                                              __m256 acc)
{
    __m256i u = q5_codes(w + 2, w + 6);
    __m256i y = load32(a + 2);
    __m256i x = _mm256_sub_epi32(dot_us(u, y), dot_us(_mm256_set1_epi8(16), y));
    __m256 p = _mm256_cvtepi32_ps(x);
    return _mm256_fmadd_ps(_mm256_set1_ps(f16_lo(w) * f16_lo(a)), p, acc);
}

static inline __attribute__((always_inline)) __m256 blk_q4_1(const uint8_t *w, const uint8_t *a,
                                                             __m256 acc)
{
    __m256 p = _mm256_cvtepi32_ps(dot_us(nibbles32(w + 4), load32(a + 4)));
    return q_1_accum(w, a, p, acc);
}

static inline __attribute__((always_inline)) __m256 blk_q5_1(const uint8_t *w, const uint8_t *a,
                                                             __m256 acc)
{
    __m256 p = _mm256_cvtepi32_ps(dot_us(q5_codes(w + 4, w + 8), load32(a + 4)));
    return q_1_accum(w, a, p, acc);
}

static inline __attribute__((always_inline)) __m256 blk_q8_0(const uint8_t *w, const uint8_t *a,
                                                             __m256 acc)
{
    __m256 p = _mm256_cvtepi32_ps(dot_ss(load32(w + 2), load32(a + 2)));
    return _mm256_fmadd_ps(_mm256_set1_ps(f16_lo(w) * f16_lo(a)), p, acc);
}

static inline __attribute__((always_inline)) __m256 blk_iq4_nl(const uint8_t *w,
                                                               const uint8_t *a, __m256 acc)
{
    __m256i x = _mm256_shuffle_epi8(iq4_table(), nibbles32(w + 2));
    __m256 p = _mm256_cvtepi32_ps(dot_ss(x, load32(a + 2)));
    return _mm256_fmadd_ps(_mm256_set1_ps(f16_lo(w) * f16_lo(a)), p, acc);
}

/* ---- 256-element super-blocks ------------------------------------------------ */

/*
 * Per-16-group scales for a 32-element chunk: lane 0 (elements 0..15) gets
 * int16 scale 2c of s8x8, lane 1 gets scale 2c+1. s8x8 holds 8 int16 scales in
 * both 128-bit lanes.
 */
static inline __m256i pair_scale(__m256i s8x8, int c)
{
    const __m256i m = _mm256_set_m128i(_mm_set1_epi16((short)(((4 * c + 3) << 8) | (4 * c + 2))),
                                       _mm_set1_epi16((short)(((4 * c + 1) << 8) | (4 * c))));
    return _mm256_shuffle_epi8(s8x8, m);
}

/* int16 scale j (0..7) of s8 (8 int16 in both lanes) in every lane. */
static inline __m256i one_scale(__m256i s8, int j)
{
    return _mm256_shuffle_epi8(s8, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
}

/*
 * Bit `bit` of every byte of v moved to bit `to` (other bits zero). 16-bit
 * shifts are fine: the wanted bit stays inside its byte (|bit − to| < 8 and
 * the mask drops what crossed over).
 */
static inline __m256i bit_to(__m256i v, int bit, int to)
{
    if (bit < to)
        v = _mm256_slli_epi16(v, to - bit);
    else if (bit > to)
        v = _mm256_srli_epi16(v, bit - to);
    return _mm256_and_si256(v, _mm256_set1_epi8((char)(1 << to)));
}

static inline __m256i bsums_of(const uint8_t *a)
{
    return load32(a + DOT_Q8_K_BSUMS);
}

static inline __attribute__((always_inline)) __m256 blk_q2_k(const uint8_t *w, const uint8_t *a,
                                                             __m256 acc)
{
    float da = dot__f32(a);
    __m128i sc = load16(w);
    __m128i lo = _mm_and_si128(sc, _mm_set1_epi8(0x0F));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0F));
    __m256i msum = _mm256_madd_epi16(bsums_of(a), _mm256_cvtepu8_epi16(hi));
    __m256i s_lo = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(lo));
    __m256i s_hi = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_srli_si128(lo, 8)));
    __m256i isum = _mm256_setzero_si256();
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int half = 0; half < 2; half++) {
        __m256i q = load32(w + 16 + 32 * half);
        __m256i ss = half ? s_hi : s_lo;
        for (int k = 0; k < 4; k++) {
            __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3);
            __m256i p = _mm256_maddubs_epi16(u, load32(a + DOT_Q8_K_QS + 128 * half + 32 * k));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, pair_scale(ss, k)));
        }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(da * f16_at(w + 80)), _mm256_cvtepi32_ps(isum), acc);
    return _mm256_fnmadd_ps(_mm256_set1_ps(da * f16_at(w + 82)), _mm256_cvtepi32_ps(msum), acc);
}

/*
 * The 16 Q3_K scales (§3.9) as int8 in SIMD: low 4 bits are the nibbles of bytes
 * 0..7 (low nibbles for scales 0..7, high for 8..15); the top 2 bits of scale j
 * are bits 2(j/4)..2(j/4)+1 of byte 8 + j%4, i.e. u32 word h shifted by 0, 2,
 * 4, 6 for the four groups of four scales.
 */
static inline __m128i q3_k_scales(const uint8_t *s)
{
    uint64_t lo8;
    memcpy(&lo8, s, 8);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m128i v = _mm_cvtsi64_si128((long long)lo8);
    __m128i low = _mm_unpacklo_epi64(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    __m128i h = _mm_srlv_epi32(_mm_set1_epi32((int)dot__u32(s + 8)), _mm_setr_epi32(0, 2, 4, 6));
    __m128i high = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi8(3)), 4);
    return _mm_sub_epi8(_mm_or_si128(low, high), _mm_set1_epi8(32));
}

static inline __attribute__((always_inline)) __m256 blk_q3_k(const uint8_t *w, const uint8_t *a,
                                                             __m256 acc)
{
    __m128i sc = q3_k_scales(w + 96);
    /* q = u − 4 with u = low2 + 4·hbit in 0..7: Σ s·q = Σ s·Σ u·a − 4 Σ s·bsum */
    __m256i msum = _mm256_madd_epi16(bsums_of(a), _mm256_cvtepi8_epi16(sc));
    __m256i s_lo = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(sc));
    __m256i s_hi = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128(sc, 8)));
    __m256i hm = load32(w);
    __m256i isum = _mm256_setzero_si256();
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int half = 0; half < 2; half++) {
        __m256i q = load32(w + 32 + 32 * half);
        __m256i ss = half ? s_hi : s_lo;
        for (int k = 0; k < 4; k++) {
            int c = 4 * half + k;
            __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m3),
                                        bit_to(hm, c, 2));
            __m256i p = _mm256_maddubs_epi16(u, load32(a + DOT_Q8_K_QS + 32 * c));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, pair_scale(ss, k)));
        }
    }
    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(msum, 2));
    float d = dot__f32(a) * f16_at(w + 108);
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
}

/*
 * Q4_K/Q5_K 6-bit scales and mins (§3.10) of the 12-byte field s: bytes 0..7
 * scales, 8..15 mins. With u32 words a, b, c of s: scales 0..3 = a & 0x3f,
 * mins 0..3 = b & 0x3f, scales 4..7 = (c & 0x0f) | ((a >> 2) & 0x30), mins
 * 4..7 = ((c >> 4) & 0x0f) | ((b >> 2) & 0x30), bytewise; done on the four
 * words at once. Reads 16 bytes at s (the block's quants follow the field).
 */
static inline __m128i k4_scales_mins(const uint8_t *s)
{
    __m128i l = load16(s);                       /* a b c . */
    __m128i v = _mm_shuffle_epi32(l, 0x98);      /* a c b c */
    __m128i ab = _mm_shuffle_epi32(l, 0x50);     /* a a b b */
    __m128i p = _mm_and_si128(_mm_srlv_epi32(v, _mm_setr_epi32(0, 0, 0, 4)),
                              _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    __m128i q = _mm_and_si128(_mm_srli_epi32(ab, 2),
                              _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
    return _mm_or_si128(p, q);
}


static inline __attribute__((always_inline)) __m256 blk_q45_k(const uint8_t *w, const uint8_t *a,
                                                              __m256 acc, const int five)
{
    float da = dot__f32(a);
    __m128i sm = k4_scales_mins(w + 4);
    __m128i mins = _mm_srli_si128(sm, 8);
    /* each min once per 16-element bsum */
    __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins, mins));
    __m256i msum = _mm256_madd_epi16(bsums_of(a), mins16);
    __m256i s8 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
    const uint8_t *qs = w + (five ? 48 : 16);
    __m256i hb = five ? load32(w + 16) : _mm256_setzero_si256();
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i isum = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        __m256i q = load32(qs + 32 * k);
        __m256i lo = _mm256_and_si256(q, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (five) {
            lo = _mm256_or_si256(lo, bit_to(hb, 2 * k, 4));
            hi = _mm256_or_si256(hi, bit_to(hb, 2 * k + 1, 4));
        }
        __m256i p0 = _mm256_maddubs_epi16(lo, load32(a + DOT_Q8_K_QS + 64 * k));
        __m256i p1 = _mm256_maddubs_epi16(hi, load32(a + DOT_Q8_K_QS + 64 * k + 32));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p0, one_scale(s8, 2 * k)));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p1, one_scale(s8, 2 * k + 1)));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(da * f16_at(w)), _mm256_cvtepi32_ps(isum), acc);
    return _mm256_fnmadd_ps(_mm256_set1_ps(da * f16_at(w + 2)), _mm256_cvtepi32_ps(msum), acc);
}

static inline __attribute__((always_inline)) __m256 blk_q4_k(const uint8_t *w, const uint8_t *a,
                                                             __m256 acc)
{
    return blk_q45_k(w, a, acc, 0);
}

static inline __attribute__((always_inline)) __m256 blk_q5_k(const uint8_t *w, const uint8_t *a,
                                                             __m256 acc)
{
    return blk_q45_k(w, a, acc, 1);
}

static inline __attribute__((always_inline)) __m256 blk_q6_k(const uint8_t *w, const uint8_t *a,
                                                             __m256 acc)
{
    __m128i sc = load16(w + 192);
    /* q = u − 32 with u in 0..63: Σ s·q = Σ s·Σ u·a − 32 Σ s·bsum */
    __m256i msum = _mm256_madd_epi16(bsums_of(a), _mm256_cvtepi8_epi16(sc));
    __m256i s_lo = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(sc));
    __m256i s_hi = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128(sc, 8)));
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256i isum = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        __m256i ql0 = load32(w + 64 * h), ql1 = load32(w + 64 * h + 32);
        __m256i qh = load32(w + 128 + 32 * h);
        __m256i ss = h ? s_hi : s_lo;
        __m256i u[4];
        u[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                               _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
        u[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                               _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
        u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                               _mm256_and_si256(qh, m30));
        u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
        for (int k = 0; k < 4; k++) {
            __m256i p = _mm256_maddubs_epi16(u[k], load32(a + DOT_Q8_K_QS + 128 * h + 32 * k));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, pair_scale(ss, k)));
        }
    }
    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(msum, 5));
    float d = dot__f32(a) * f16_at(w + 208);
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
}

/*
 * The 8 IQ4_XS sub-block scales ls − 32 (§3.15) as int16 in both 128-bit lanes:
 * low 4 bits are the nibbles of bytes 4..7 in order; the top 2 bits of scale ib
 * are bits 2ib..2ib+1 of the u16 at byte 2, brought to the top of each int16
 * lane by a per-lane multiply by 2^(14−2ib) (AVX2 has no per-lane 16-bit shift).
 */
static inline __m256i iq4_xs_scales(const uint8_t *blk)
{
    uint16_t sh;
    memcpy(&sh, blk + 2, 2);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m128i v = _mm_cvtsi32_si128((int)dot__u32(blk + 4));
    __m128i low = _mm_cvtepu8_epi16(
        _mm_unpacklo_epi8(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4)));
    __m128i top = _mm_mullo_epi16(_mm_set1_epi16((short)sh),
                                  _mm_setr_epi16(1 << 14, 1 << 12, 1 << 10, 1 << 8, 1 << 6,
                                                 1 << 4, 1 << 2, 1));
    __m128i high = _mm_slli_epi16(_mm_srli_epi16(top, 14), 4);
    __m128i ls = _mm_sub_epi16(_mm_or_si128(low, high), _mm_set1_epi16(32));
    return _mm256_broadcastsi128_si256(ls);
}

static inline __attribute__((always_inline)) __m256 blk_iq4_xs(const uint8_t *w,
                                                               const uint8_t *a, __m256 acc)
{
    __m256i s8 = iq4_xs_scales(w);
    const __m256i table = iq4_table();
    __m256i isum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib++) {
        __m256i x = _mm256_shuffle_epi8(table, nibbles32(w + 8 + 16 * ib));
        __m256i y = load32(a + DOT_Q8_K_QS + 32 * ib);
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, one_scale(s8, ib)));
    }
    float d = dot__f32(a) * f16_at(w);
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
}

/* ---- float weights: 8 elements per "block", the n % 8 tail in scalar ---------- */

static inline __attribute__((always_inline)) __m256 blk_f32(const uint8_t *w, const uint8_t *a,
                                                            __m256 acc)
{
    return _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(const void *)w),
                           _mm256_loadu_ps((const float *)(const void *)a), acc);
}

static inline __attribute__((always_inline)) __m256 blk_f16(const uint8_t *w, const uint8_t *a,
                                                            __m256 acc)
{
    return _mm256_fmadd_ps(_mm256_cvtph_ps(load16(w)),
                           _mm256_loadu_ps((const float *)(const void *)a), acc);
}

static inline __attribute__((always_inline)) __m256 blk_bf16(const uint8_t *w, const uint8_t *a,
                                                             __m256 acc)
{
    __m256i v = _mm256_slli_epi32(_mm256_cvtepu16_epi32(load16(w)), 16);
    return _mm256_fmadd_ps(_mm256_castsi256_ps(v),
                           _mm256_loadu_ps((const float *)(const void *)a), acc);
}

static inline float tail_none(int64_t n, const uint8_t *w, const uint8_t *a)
{
    (void)n, (void)w, (void)a;
    return 0.0f;
}

static inline float tail_f32(int64_t n, const uint8_t *w, const uint8_t *a)
{
    float s = 0.0f;
    for (int64_t i = n & ~(int64_t)7; i < n; i++)
        s += dot__f32(w + 4 * i) * dot__f32(a + 4 * i);
    return s;
}

static inline float tail_f16(int64_t n, const uint8_t *w, const uint8_t *a)
{
    float s = 0.0f;
    for (int64_t i = n & ~(int64_t)7; i < n; i++)
        s += dot__f16(w + 2 * i) * dot__f32(a + 4 * i);
    return s;
}

static inline float tail_bf16(int64_t n, const uint8_t *w, const uint8_t *a)
{
    float s = 0.0f;
    for (int64_t i = n & ~(int64_t)7; i < n; i++) {
        uint16_t h;
        memcpy(&h, w + 2 * i, 2);
        s += bf16_to_f32(h) * dot__f32(a + 4 * i);
    }
    return s;
}

/*
 * dot and dot_rows from a block function BLK_FN over BLK elements (WB weight
 * bytes, AB activation bytes per block). Blocks alternate between two
 * accumulators; dot_rows runs four rows with the same per-row order.
 */
/*
 * dot_rows reads four rows block by block, four short interleaved streams the
 * hardware prefetcher is slow to pick up when rows are short: with 640-wide
 * Q8_0 rows (Gemma 3's head) it ran at 45% of its 10240-wide rate. So rows up
 * to DOT_PF_MAX_ROW bytes prefetch the next group of four (contiguous, 4 * st
 * bytes on) into L2 at the rate this group is read: 2.25x on that head in
 * bench-dot, 1.3-1.5x at 4096 wide. Longer rows are left to the hardware,
 * where prefetching a group of 60 KB ahead measured 10-20% slower.
 */
#define DOT_PF_MAX_ROW 6144

#define DEF_KERNELS(name, BLK, WB, AB, BLK_FN, TAIL_FN)                                       \
    static void dot_##name(int64_t n, float *s, const void *w, const void *a)                 \
    {                                                                                         \
        const uint8_t *wp = w, *ap = a;                                                       \
        int64_t nb = n / (BLK), i = 0;                                                        \
        __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();                            \
        for (; i + 1 < nb; i += 2) {                                                          \
            c0 = BLK_FN(wp + i * (WB), ap + i * (AB), c0);                                    \
            c1 = BLK_FN(wp + (i + 1) * (WB), ap + (i + 1) * (AB), c1);                        \
        }                                                                                     \
        if (i < nb)                                                                           \
            c0 = BLK_FN(wp + i * (WB), ap + i * (AB), c0);                                    \
        *s = hsum_ps(_mm256_add_ps(c0, c1)) + TAIL_FN(n, wp, ap);                             \
    }                                                                                         \
    static void rows_##name(int64_t n, int nrows, float *s, const void *w, size_t st,         \
                            const void *a)                                                    \
    {                                                                                         \
        const uint8_t *ap = a;                                                                \
        int64_t nb = n / (BLK);                                                               \
        int r = 0;                                                                            \
        for (; r + 4 <= nrows; r += 4) {                                                      \
            const uint8_t *w0 = (const uint8_t *)w + (size_t)r * st;                          \
            const uint8_t *w1 = w0 + st, *w2 = w1 + st, *w3 = w2 + st;                        \
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;                \
            __m256 c20 = c00, c21 = c00, c30 = c00, c31 = c00;                                \
            int64_t i = 0;                                                                    \
            const char *pf = st <= DOT_PF_MAX_ROW ? (const char *)w0 + 4 * st : NULL;        \
            for (; i + 1 < nb; i += 2) {                                                      \
                const uint8_t *x0 = ap + i * (AB), *x1 = x0 + (AB);                           \
                int64_t o0 = i * (WB), o1 = o0 + (WB);                                        \
                for (int q = 0; pf && q < 8 * (WB); q += 64)                                  \
                    _mm_prefetch(pf + i * 4 * (WB) + q, _MM_HINT_T1);                         \
                c00 = BLK_FN(w0 + o0, x0, c00);                                               \
                c10 = BLK_FN(w1 + o0, x0, c10);                                               \
                c20 = BLK_FN(w2 + o0, x0, c20);                                               \
                c30 = BLK_FN(w3 + o0, x0, c30);                                               \
                c01 = BLK_FN(w0 + o1, x1, c01);                                               \
                c11 = BLK_FN(w1 + o1, x1, c11);                                               \
                c21 = BLK_FN(w2 + o1, x1, c21);                                               \
                c31 = BLK_FN(w3 + o1, x1, c31);                                               \
            }                                                                                 \
            if (i < nb) {                                                                     \
                const uint8_t *x0 = ap + i * (AB);                                            \
                int64_t o0 = i * (WB);                                                        \
                c00 = BLK_FN(w0 + o0, x0, c00);                                               \
                c10 = BLK_FN(w1 + o0, x0, c10);                                               \
                c20 = BLK_FN(w2 + o0, x0, c20);                                               \
                c30 = BLK_FN(w3 + o0, x0, c30);                                               \
            }                                                                                 \
            s[r] = hsum_ps(_mm256_add_ps(c00, c01)) + TAIL_FN(n, w0, ap);                     \
            s[r + 1] = hsum_ps(_mm256_add_ps(c10, c11)) + TAIL_FN(n, w1, ap);                 \
            s[r + 2] = hsum_ps(_mm256_add_ps(c20, c21)) + TAIL_FN(n, w2, ap);                 \
            s[r + 3] = hsum_ps(_mm256_add_ps(c30, c31)) + TAIL_FN(n, w3, ap);                 \
        }                                                                                     \
        for (; r < nrows; r++)                                                                \
            dot_##name(n, s + r, (const uint8_t *)w + (size_t)r * st, a);                     \
    }

/*
 * dot_tile from the same block function: one weight row against four tokens
 * at a time, each token with dot's two alternating accumulators, so every
 * output equals dot bit for bit. The four inlined BLK_FN copies read the same
 * weight bytes and compute the same unpacked quants and weight scales, which
 * the compiler evaluates once (they are pure expressions of w), so a block is
 * unpacked once per four tokens; only the activation side runs per token.
 */
#define DEF_TILE(name, BLK, WB, AB, BLK_FN, TAIL_FN)                                          \
    static void tile_##name(int64_t n, int nrows, int ntok, float *s, size_t ss,              \
                            const void *w, size_t wst, const void *a, size_t ast)             \
    {                                                                                         \
        int64_t nb = n / (BLK);                                                               \
        for (int r = 0; r < nrows; r++) {                                                     \
            const uint8_t *wr = (const uint8_t *)w + (size_t)r * wst;                         \
            int t = 0;                                                                        \
            for (; t + 4 <= ntok; t += 4) {                                                   \
                const uint8_t *a0 = (const uint8_t *)a + (size_t)t * ast;                     \
                const uint8_t *a1 = a0 + ast, *a2 = a1 + ast, *a3 = a2 + ast;                  \
                __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;            \
                __m256 c20 = c00, c21 = c00, c30 = c00, c31 = c00;                            \
                int64_t i = 0;                                                                \
                for (; i + 1 < nb; i += 2) {                                                  \
                    int64_t o0 = i * (WB), o1 = o0 + (WB);                                    \
                    int64_t x0 = i * (AB), x1 = x0 + (AB);                                    \
                    c00 = BLK_FN(wr + o0, a0 + x0, c00);                                      \
                    c10 = BLK_FN(wr + o0, a1 + x0, c10);                                      \
                    c20 = BLK_FN(wr + o0, a2 + x0, c20);                                      \
                    c30 = BLK_FN(wr + o0, a3 + x0, c30);                                      \
                    c01 = BLK_FN(wr + o1, a0 + x1, c01);                                      \
                    c11 = BLK_FN(wr + o1, a1 + x1, c11);                                      \
                    c21 = BLK_FN(wr + o1, a2 + x1, c21);                                      \
                    c31 = BLK_FN(wr + o1, a3 + x1, c31);                                      \
                }                                                                             \
                if (i < nb) {                                                                 \
                    int64_t o0 = i * (WB), x0 = i * (AB);                                     \
                    c00 = BLK_FN(wr + o0, a0 + x0, c00);                                      \
                    c10 = BLK_FN(wr + o0, a1 + x0, c10);                                      \
                    c20 = BLK_FN(wr + o0, a2 + x0, c20);                                      \
                    c30 = BLK_FN(wr + o0, a3 + x0, c30);                                      \
                }                                                                             \
                float *st = s + (size_t)t * ss + r;                                           \
                st[0] = hsum_ps(_mm256_add_ps(c00, c01)) + TAIL_FN(n, wr, a0);                \
                st[ss] = hsum_ps(_mm256_add_ps(c10, c11)) + TAIL_FN(n, wr, a1);               \
                st[2 * ss] = hsum_ps(_mm256_add_ps(c20, c21)) + TAIL_FN(n, wr, a2);           \
                st[3 * ss] = hsum_ps(_mm256_add_ps(c30, c31)) + TAIL_FN(n, wr, a3);           \
            }                                                                                 \
            for (; t < ntok; t++) {                                                           \
                const uint8_t *at = (const uint8_t *)a + (size_t)t * ast;                     \
                dot_##name(n, s + (size_t)t * ss + r, wr, at);                                \
            }                                                                                 \
        }                                                                                     \
    }

#define DEF_ALL(name, BLK, WB, AB, BLK_FN, TAIL_FN)                                           \
    DEF_KERNELS(name, BLK, WB, AB, BLK_FN, TAIL_FN)                                           \
    DEF_TILE(name, BLK, WB, AB, BLK_FN, TAIL_FN)

DEF_ALL(f32, 8, 32, 32, blk_f32, tail_f32)
DEF_ALL(f16, 8, 16, 32, blk_f16, tail_f16)
DEF_ALL(bf16, 8, 16, 32, blk_bf16, tail_bf16)
/* the 32-element types' dot_tile decodes each block once: dot-ltile-avx2.c */
DEF_KERNELS(q4_0, 32, DOT_Q4_0_BYTES, DOT_Q8_0_BYTES, blk_q4_0u, tail_none)
DEF_KERNELS(q4_1, 32, DOT_Q4_1_BYTES, DOT_Q8_1_BYTES, blk_q4_1, tail_none)
DEF_KERNELS(q5_0, 32, DOT_Q5_0_BYTES, DOT_Q8_0_BYTES, blk_q5_0u, tail_none)
DEF_KERNELS(q5_1, 32, DOT_Q5_1_BYTES, DOT_Q8_1_BYTES, blk_q5_1, tail_none)
DEF_KERNELS(q8_0, 32, DOT_Q8_0_BYTES, DOT_Q8_0_BYTES, blk_q8_0, tail_none)
DEF_KERNELS(iq4_nl, 32, DOT_IQ4_NL_BYTES, DOT_Q8_0_BYTES, blk_iq4_nl, tail_none)
/* the K-quants' dot_tile decodes each super-block once: dot-ktile-avx2.c */
DEF_KERNELS(q2_k, 256, DOT_Q2_K_BYTES, DOT_Q8_K_BYTES, blk_q2_k, tail_none)
DEF_KERNELS(q3_k, 256, DOT_Q3_K_BYTES, DOT_Q8_K_BYTES, blk_q3_k, tail_none)
DEF_KERNELS(q4_k, 256, DOT_Q4_K_BYTES, DOT_Q8_K_BYTES, blk_q4_k, tail_none)
DEF_KERNELS(q5_k, 256, DOT_Q5_K_BYTES, DOT_Q8_K_BYTES, blk_q5_k, tail_none)
DEF_KERNELS(q6_k, 256, DOT_Q6_K_BYTES, DOT_Q8_K_BYTES, blk_q6_k, tail_none)
DEF_ALL(iq4_xs, 256, DOT_IQ4_XS_BYTES, DOT_Q8_K_BYTES, blk_iq4_xs, tail_none)

/* ---- activation quantizers ---------------------------------------------------- */

static inline float hmax_ps(__m256 v)
{
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* Four vectors of int32 codes (in −128..127) -> 32 bytes in element order. */
static inline __m256i pack_codes(__m256i i0, __m256i i1, __m256i i2, __m256i i3)
{
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/*
 * Codes of one 32-element block, as the reference: clamp x·id to ±127, add
 * ±0.5 by sign, truncate. Returns the float scale d = amax/127.
 */
static inline float q8_block(const float *x, uint8_t *qs, int *sum)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[j]));
    }
    float amax = hmax_ps(m);
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    __m256 mul = _mm256_set1_ps(id);
    __m256i q[4];
    for (int j = 0; j < 4; j++) {
        __m256 t = _mm256_mul_ps(v[j], mul);
        t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
        t = _mm256_add_ps(t, _mm256_or_ps(_mm256_and_ps(t, sign), _mm256_set1_ps(0.5f)));
        q[j] = _mm256_cvttps_epi32(t);
    }
    if (sum) {
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        *sum = _mm_cvtsi128_si32(s4);
    }
    _mm256_storeu_si256((__m256i *)(void *)qs, pack_codes(q[0], q[1], q[2], q[3]));
    return d;
}

void cpu__quantize_q8_0_avx2(const float *x, void *y, int64_t n)
{
    uint8_t *out = y;
    for (int64_t i = 0; i < n / 32; i++, x += 32, out += DOT_Q8_0_BYTES) {
        uint16_t dh = f32_to_f16(q8_block(x, out + 2, NULL));
        memcpy(out, &dh, 2);
    }
}

void cpu__quantize_q8_1s_avx2(const float *x, void *y, int64_t n)
{
    uint8_t *out = y;
    for (int64_t i = 0; i < n / 32; i++, x += 32, out += DOT_Q8_1_BYTES) {
        int sum = 0;
        uint16_t dh = f32_to_f16(q8_block(x, out + 4, &sum));
        int16_t sum16 = (int16_t)sum; /* |sum| <= 32·127 */
        memcpy(out, &dh, 2);
        memcpy(out + DOT_Q8_1S_SUM, &sum16, 2);
    }
}

void cpu__quantize_q8_k_avx2(const float *x, void *y, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    uint8_t *out = y;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, out += DOT_Q8_K_BYTES) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8)
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
        float amax = hmax_ps(m);
        memset(out, 0, DOT_Q8_K_BYTES);
        if (amax == 0.0f)
            continue;
        /* the first element of largest magnitude gives the sign of the scale */
        __m256 am = _mm256_set1_ps(amax);
        float xmax = 0.0f;
        for (int j = 0; j < QK_K; j += 8) {
            __m256 eq = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), am,
                                      _CMP_EQ_OQ);
            int mask = _mm256_movemask_ps(eq);
            if (mask) {
                xmax = x[j + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        float iscale = -127.0f / xmax;
        __m256 mul = _mm256_set1_ps(iscale);
        int8_t *qs = (int8_t *)(out + DOT_Q8_K_QS);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), mul);
                t = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                __m256i v = _mm256_cvtps_epi32(t);
                q[k] = _mm256_max_epi32(_mm256_min_epi32(v, _mm256_set1_epi32(127)),
                                        _mm256_set1_epi32(-128));
            }
            _mm256_storeu_si256((__m256i *)(void *)(qs + j), pack_codes(q[0], q[1], q[2], q[3]));
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += qs[16 * g + j];
            int16_t s16 = (int16_t)sum;
            memcpy(out + DOT_Q8_K_BSUMS + 2 * g, &s16, 2);
        }
        float d = 1.0f / iscale;
        memcpy(out, &d, 4);
    }
}

bool cpu__kernels_avx2(hearth_dtype wtype, struct cpu__kernel_set *out)
{
    cpu_quantize_fn q80 = cpu__quantize_q8_0_avx2, q81 = cpu__quantize_q8_1s_avx2;
    cpu_quantize_fn q8k = cpu__quantize_q8_k_avx2;
    struct cpu__kernel_set k;
#define KSET(q, name) (struct cpu__kernel_set){q, dot_##name, rows_##name, tile_##name}
#define KSETL(q, name, T) (struct cpu__kernel_set){q, dot_##name, rows_##name, cpu__ltile_avx2(T)}
#define KSETK(name, T) (struct cpu__kernel_set){q8k, dot_##name, rows_##name, cpu__ktile_avx2(T)}
    switch (wtype) {
    case HEARTH_DTYPE_F32: k = KSET(NULL, f32); break;
    case HEARTH_DTYPE_F16: k = KSET(NULL, f16); break;
    case HEARTH_DTYPE_BF16: k = KSET(NULL, bf16); break;
    case HEARTH_DTYPE_Q4_0: k = KSETL(q80, q4_0, HEARTH_DTYPE_Q4_0); break;
    case HEARTH_DTYPE_Q4_1: k = KSETL(q81, q4_1, HEARTH_DTYPE_Q4_1); break;
    case HEARTH_DTYPE_Q5_0: k = KSETL(q80, q5_0, HEARTH_DTYPE_Q5_0); break;
    case HEARTH_DTYPE_Q5_1: k = KSETL(q81, q5_1, HEARTH_DTYPE_Q5_1); break;
    case HEARTH_DTYPE_Q8_0: k = KSETL(q80, q8_0, HEARTH_DTYPE_Q8_0); break;
    case HEARTH_DTYPE_IQ4_NL: k = KSETL(q80, iq4_nl, HEARTH_DTYPE_IQ4_NL); break;
    case HEARTH_DTYPE_Q2_K: k = KSETK(q2_k, HEARTH_DTYPE_Q2_K); break;
    case HEARTH_DTYPE_Q3_K: k = KSETK(q3_k, HEARTH_DTYPE_Q3_K); break;
    case HEARTH_DTYPE_Q4_K: k = KSETK(q4_k, HEARTH_DTYPE_Q4_K); break;
    case HEARTH_DTYPE_Q5_K: k = KSETK(q5_k, HEARTH_DTYPE_Q5_K); break;
    case HEARTH_DTYPE_Q6_K: k = KSETK(q6_k, HEARTH_DTYPE_Q6_K); break;
    case HEARTH_DTYPE_IQ4_XS: k = KSET(q8k, iq4_xs); break;
    case HEARTH_DTYPE_IQ2_XXS:
    case HEARTH_DTYPE_IQ2_XS:
    case HEARTH_DTYPE_IQ2_S:
    case HEARTH_DTYPE_IQ3_XXS:
    case HEARTH_DTYPE_IQ3_S:
    case HEARTH_DTYPE_IQ1_S:
    case HEARTH_DTYPE_IQ1_M: return cpu__kernels_iq_avx2(wtype, out);
    default: return false;
    }
#undef KSET
#undef KSETL
#undef KSETK
    *out = k;
    return true;
}
