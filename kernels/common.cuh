// Shared helpers of the rrra kernels.
//
// Nothing here (or in any kernel) includes a CUDA Toolkit header: NVRTC ships none of them
// built in, and a machine that runs the library has the driver and libnvrtc but usually no
// toolkit. bf16/f16 are therefore plain 16-bit storage, converted with one PTX instruction, and
// the tensor-core products are `mma.sync` in inline PTX.
#pragma once

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

namespace rrra {

// Must match `Activation` and `Similarity` in src/engine/cuda/mod.rs (and SPEC §2's names).
enum Activation { RELU = 0, GELU = 1, GELU_TANH = 2, SILU = 3, TANH = 4 };
enum Similarity { DOT = 0, COSINE = 1 };

// Values per candidate in the pair output: sim(q, a), sim(q, c), then the four logits.
constexpr int PAIR_VALUES = 6;
// Per tile: the query (index into the launch's queries), the first pair, the number of rows.
constexpr int TILE_WORDS = 3;

// SPEC §3's activations, in f32 like the CPU engines. The kind is a template argument: an
// epilogue is compiled once per activation (see `with_activation`), so an unrolled epilogue
// holds the registers of one activation rather than of all five behind a switch.
//
// A pre-activation that overflowed (±inf or NaN: a value beyond T's range, or f32's) gives NaN,
// which the engine reports as an error. GELU and SiLU do so by themselves (−inf·0); ReLU and
// tanh would hide it in 0 or ±1, a finite, wrong score, so they carry `x·0` along (0 for a
// finite x).
template <int KIND> __device__ __forceinline__ float activate(float x) {
    if (KIND == RELU) {
        return x > 0.0f ? x : x * 0.0f;
    } else if (KIND == GELU) {
        return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    } else if (KIND == GELU_TANH) {
        const float c = 0.7978845608028654f;  // sqrt(2/pi)
        return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
    } else if (KIND == SILU) {
        return x / (1.0f + expf(-x));
    } else {
        return tanhf(x) + x * 0.0f;
    }
}

template <int V> struct Constant {
    static constexpr int value = V;
};

// f(Constant<kind>{}) for the run-time activation `kind`.
template <class F> __device__ __forceinline__ void with_activation(int kind, F f) {
    switch (kind) {
    case RELU:
        f(Constant<RELU>{});
        break;
    case GELU:
        f(Constant<GELU>{});
        break;
    case GELU_TANH:
        f(Constant<GELU_TANH>{});
        break;
    case SILU:
        f(Constant<SILU>{});
        break;
    default:
        f(Constant<TANH>{});
        break;
    }
}

// dot / (|a| |b|), 0 when a norm is below 1e-12, NaN when a norm overflowed (SPEC §3; the same
// rule as `cosine` in src/engine/reference.rs, so the session reports the overflow).
__device__ __forceinline__ float cosine(float dot, float norm_a, float norm_b) {
    if (!(isfinite(norm_a) && isfinite(norm_b))) {
        return __int_as_float(0x7fc00000);
    }
    if (norm_a < 1e-12f || norm_b < 1e-12f) {
        return 0.0f;
    }
    return dot / (norm_a * norm_b);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

// Storage types. A kernel family is instantiated once per type; `Load`/`store` convert between
// the stored value and f32, with round-to-nearest-even on the way in.
struct Bf16 {
    u16 bits;
};
struct F16 {
    u16 bits;
};

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(Bf16 x) { return __uint_as_float(((u32)x.bits) << 16); }
__device__ __forceinline__ float to_f32(F16 x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
}

template <class T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ F16 from_f32<F16>(float x) {
    F16 r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
    return r;
}
template <> __device__ __forceinline__ Bf16 from_f32<Bf16>(float x) {
    Bf16 r;
#if __CUDA_ARCH__ >= 800
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
#else
    // Round to nearest even by hand (sm_75 has no bf16 conversion); NaN stays NaN.
    u32 u = __float_as_uint(x);
    r.bits = (x != x) ? (u16)0x7fc0 : (u16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#endif
    return r;
}

// v[0..N) = p[0..N) as f32, zero from `available` on; one or two 16-byte loads when the span
// is whole and aligned (rows of a caller's matrix may have any stride, so alignment is checked).
template <int N> __device__ __forceinline__ void load_span(const float* __restrict__ p, int available, float (&v)[N]) {
    static_assert(N % 4 == 0, "whole float4s");
    if (available >= N && (reinterpret_cast<size_t>(p) & 15) == 0) {
#pragma unroll
        for (int i = 0; i < N / 4; ++i) {
            const float4 x = reinterpret_cast<const float4*>(p)[i];
            v[4 * i] = x.x;
            v[4 * i + 1] = x.y;
            v[4 * i + 2] = x.z;
            v[4 * i + 3] = x.w;
        }
    } else {
#pragma unroll
        for (int e = 0; e < N; ++e) v[e] = e < available ? p[e] : 0.0f;
    }
}
template <int N, class H> __device__ __forceinline__ void load_span(const H* __restrict__ p, int available, float (&v)[N]) {
    static_assert(N == 8, "one uint4 of 16-bit values");
    if (available >= N && (reinterpret_cast<size_t>(p) & 15) == 0) {
        const uint4 x = *reinterpret_cast<const uint4*>(p);
        const u32 w[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            v[2 * i] = to_f32(H{(u16)(w[i] & 0xffffu)});
            v[2 * i + 1] = to_f32(H{(u16)(w[i] >> 16)});
        }
    } else {
#pragma unroll
        for (int e = 0; e < N; ++e) v[e] = e < available ? to_f32(p[e]) : 0.0f;
    }
}

// Two 16-bit values packed as one 32-bit register, the low half first (the mma operand order).
__device__ __forceinline__ u32 pack2(u16 lo, u16 hi) { return (u32)lo | ((u32)hi << 16); }

// D = A·B + D for one 16×8×16 tile: A row-major, B column-major, f32 accumulators. The operand
// layouts are PTX's "matrix fragments for mma.m16n8k16" (grp = lane / 4, tig = lane % 4):
//   a[0] = A[grp][2tig..+1]   a[1] = A[grp+8][2tig..+1]   a[2] = A[grp][2tig+8..+9]   a[3] = A[grp+8][2tig+8..+9]
//   b[0] = B[2tig..+1][grp]   b[1] = B[2tig+8..+9][grp]
//   d[0..1] = D[grp][2tig..+1]   d[2..3] = D[grp+8][2tig..+1]
template <class T> __device__ __forceinline__ void mma_16x8x16(float d[4], const u32 a[4], const u32 b[2]);
template <> __device__ __forceinline__ void mma_16x8x16<Bf16>(float d[4], const u32 a[4], const u32 b[2]) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();  // the engine never launches a tensor-core kernel below sm_80
#endif
}
template <> __device__ __forceinline__ void mma_16x8x16<F16>(float d[4], const u32 a[4], const u32 b[2]) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();
#endif
}

}  // namespace rrra
