// common/kvq: what the compressed KV-cache shaders share (kv-store-q.comp,
// attention-kvq.comp): the Lloyd-Max codebooks of the rotated types, the
// nearest-level search, an exact f32 -> f16 conversion, the power-of-two
// pieces of a head vector and the byte size of one encoded head vector.
// Layouts and the reference codecs: core/kv-quant.h, core/kv-quant.c.
//
// Bit-exactness with the CPU reference is the aim wherever float arithmetic
// allows it: the codebook constants are the C literals of core/kv-codebook.c,
// the level search is kv-quant.c's unrolled threshold descent (ties go to the
// lower level), the f16 conversion rounds to nearest even by integer ops
// (packHalf2x16's rounding is not pinned down by the spec), and the Hadamard
// normalisation uses the exact bits of C's 1.0f / sqrtf(len) rather than a
// shader inversesqrt (whose precision is only bounded, not exact).
// Requires params/kv.h (VK_KVQ_*) and the local_size_x layout declared before
// it: kvq_rotate strides by gl_WorkGroupSize, which reads (1, 1, 1) above the
// layout.

const float kvq_lv4[16] = float[16](
    -2.732590, -2.069017, -1.618046, -1.256231, -0.942340, -0.656759,
    -0.388048, -0.128395, 0.128395, 0.388048, 0.656759, 0.942340,
    1.256231, 1.618046, 2.069017, 2.732590);
const float kvq_th4[15] = float[15](
    -2.400803, -1.843532, -1.437139, -1.099286, -0.799550,
    -0.522404, -0.258222, 0.0, 0.258222, 0.522404,
    0.799550, 1.099286, 1.437139, 1.843532, 2.400803);
const float kvq_lv3[8] = float[8](
    -2.151946, -1.343909, -0.756005, -0.245094, 0.245094, 0.756005, 1.343909, 2.151946);
const float kvq_th3[7] = float[7](
    -1.747927, -1.049957, -0.500550, 0.0, 0.500550, 1.049957, 1.747927);

uint kvq_index4(float x)
{
    uint c = x > kvq_th4[7] ? 8u : 0u;
    c += x > kvq_th4[c + 3u] ? 4u : 0u;
    c += x > kvq_th4[c + 1u] ? 2u : 0u;
    c += x > kvq_th4[c] ? 1u : 0u;
    return c;
}

uint kvq_index3(float x)
{
    uint c = x > kvq_th3[3] ? 4u : 0u;
    c += x > kvq_th3[c + 1u] ? 2u : 0u;
    c += x > kvq_th3[c] ? 1u : 0u;
    return c;
}

float kvq_level(uint type, uint c)
{
    return type == VK_KVQ_ROT4 ? kvq_lv4[c] : kvq_lv3[c];
}

bool kvq_rotated(uint type)
{
    return type == VK_KVQ_ROT4 || type == VK_KVQ_ROT3;
}

// IEEE half bits of f, round to nearest even, overflow to inf (core/f16.h's rule)
uint kvq_f16_bits(float f)
{
    uint x = floatBitsToUint(f);
    uint sgn = (x >> 16) & 0x8000u;
    uint ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)
        return sgn | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u);
    if (ax >= 0x477ff000u)
        return sgn | 0x7c00u;
    if (ax < 0x38800000u) {
        if (ax < 0x33000000u)
            return sgn;
        uint e = ax >> 23;
        uint m = (ax & 0x7fffffu) | 0x800000u;
        uint shift = 126u - e;
        uint hv = m >> shift;
        uint rem = m & ((1u << shift) - 1u);
        uint mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (hv & 1u) != 0u))
            hv++;
        return sgn | hv;
    }
    uint r = ax + 0xfffu + ((ax >> 13) & 1u) - 0x38000000u;
    return sgn | (r >> 13);
}

// Pieces of a head vector: the binary digits of hd (a multiple of 32, <= 256),
// largest first; a piece's offset is a multiple of its length.
uint kvq_n_pieces(uint hd)
{
    return bitCount(hd >> 5);
}

// length of the piece holding coordinate i
uint kvq_piece_len(uint i, uint hd)
{
    uint off = 0u;
    for (uint len = uint(VK_KVQ_MAX_HD); len >= 32u; len >>= 1) {
        if ((hd & len) != 0u) {
            if (i < off + len)
                return len;
            off += len;
        }
    }
    return 32u;
}

// index of the piece holding coordinate i
uint kvq_piece_index(uint i, uint hd)
{
    uint off = 0u, p = 0u;
    for (uint len = uint(VK_KVQ_MAX_HD); len >= 32u; len >>= 1) {
        if ((hd & len) != 0u) {
            if (i < off + len)
                return p;
            off += len;
            p++;
        }
    }
    return p;
}

// (float)(1.0f / sqrtf(len)) of the C reference, bit for bit
float kvq_piece_norm(uint len)
{
    return len == 32u ? uintBitsToFloat(0x3e3504f3u) : len == 64u ? 0.125 :
           len == 128u ? uintBitsToFloat(0x3db504f3u) : 0.0625;
}

uint kvq_head_bytes(uint type, uint hd)
{
    if (type == VK_KVQ_F16)
        return 2u * hd;
    if (type == VK_KVQ_Q8_0)
        return hd / 32u * 34u;
    if (type == VK_KVQ_Q4_0)
        return hd / 32u * 18u;
    return 2u * kvq_n_pieces(hd) + hd * (type == VK_KVQ_ROT4 ? 4u : 3u) / 8u;
}

// -1.0 or 1.0: coordinate i of the rotation's sign diagonal (pc.sign bit i)
float kvq_sign(uint i)
{
    return ((pc.sign[i >> 5] >> (i & 31u)) & 1u) != 0u ? -1.0 : 1.0;
}

// The head vector being rotated, shared by the workgroup.
shared float kvq_vec[VK_KVQ_MAX_HD];

// kvq_vec[0..hd) = R kvq_vec (inverse false: signs, butterflies, 1/sqrt(len))
// or R^T kvq_vec (inverse true: butterflies, 1/sqrt(len), signs), the order
// of core/kv-rotate.c, so each stage adds the same two floats as the CPU.
// Call from uniform control flow; ends with a barrier.
void kvq_rotate(uint hd, bool inverse)
{
    uint tid = gl_LocalInvocationID.x, n = gl_WorkGroupSize.x;
    if (!inverse)
        for (uint d = tid; d < hd; d += n)
            kvq_vec[d] *= kvq_sign(d);
    barrier();
    for (uint hh = 1u; hh < hd; hh <<= 1) {
        for (uint idx = tid; idx < hd / 2u; idx += n) {
            uint lo = (idx / hh) * 2u * hh + idx % hh;
            if (hh < kvq_piece_len(lo, hd)) {
                float a = kvq_vec[lo], b = kvq_vec[lo + hh];
                kvq_vec[lo] = a + b;
                kvq_vec[lo + hh] = a - b;
            }
        }
        barrier();
    }
    for (uint d = tid; d < hd; d += n) {
        float v = kvq_vec[d] * kvq_piece_norm(kvq_piece_len(d, hd));
        kvq_vec[d] = inverse ? v * kvq_sign(d) : v;
    }
    barrier();
}
