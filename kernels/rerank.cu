// The adapter's forward pass (SPEC §3) for every candidate of a batch, folded as in SPEC §8 and
// src/engine/folded.rs:
//
//   layer 1:  W1·z + b1 = M_q·c + v_q,   M_q = (W_c − W_a) + W_b·diag(q),   v_q = (W_a + W_c)·q + b1
//   dot:      q·a = q·c + u_q·hid + q·b2,   u_q = W2ᵀq
//   cosine:   a = c + W2·hid + b2 in full (|a| needs it)
//
// Three entry-point families, each `<op>_<dtype>`:
//   fold_query_f32     v_q, u_q, q·b2 and |q| of every query (small GEMVs, f32).
//   score_pairs_T      layer 1 as a [rows × d]·[d × h] product per tile of one query's candidates,
//                      M_q formed on the fly from f32 weights while B tiles are staged, then the
//                      epilogue: + v_q, activation, the classifier logits and (dot) u_q·hid summed
//                      per row. Cosine also stores hid for the next kernel.
//   adapt_cosine_T     cosine's layer 2, a = c + W2·hid + b2, reduced to q·a and |a|² per row.
// T = bf16/f16 runs on tensor cores (mma.sync m16n8k16, f32 accumulate, sm_80+); T = f32 is the
// exact path on the CUDA cores. Candidate rows stay f32 with the caller's row stride (q·c and the
// cosine norms use them as they are); each product rounds its operands to T as it stages them.
//
// Output per pair (PAIR_VALUES floats): sim(q, a), sim(q, c), logits TP, FN, FP, TN, the same
// three things as the CPU engines' PairRaw.
#include "common.cuh"

using namespace rrra;

namespace {

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;
// Per-row sums of the layer-1 epilogue: four logits, then u_q·hid.
constexpr int HEAD_SUMS = 5;
// Per-row sums of cosine's layer-2 epilogue: q·a and |a|².
constexpr int ADAPT_SUMS = 2;

// ---------------------------------------------------------------------------------------------
// Tiles: a block computes a [BM × BN] block of A·Bᵀ (A: rows × K, B: N × K, both K-contiguous),
// K in steps of BK through shared memory. A tile policy owns its shared-memory layout and its
// accumulators and tells the epilogue which (row, column) each accumulator holds. Every thread
// holds the same SLOTS rows for the whole block, so per-row sums stay in registers until the end.
// ---------------------------------------------------------------------------------------------

// bf16/f16 on tensor cores: BM = 128, BN = 64, BK = 32; 8 warps as 4 (rows) × 2 (columns), each
// warp a 32 × 32 tile of 2 × 4 mma tiles.
template <class T> struct TensorCoreTile {
    static constexpr int BM = 128, BN = 64, BK = 32, SLOTS = 4, GROUPS = 2;
    // +8 halves per row: 80-byte rows keep the fragment loads free of bank conflicts and the
    // 16-byte stores aligned.
    static constexpr int PAD = BK + 8;
    struct Smem {
        u16 a[BM][PAD];
        u16 b[BN][PAD];
    };

    float acc[2][4][4];
    int warp_m, warp_n, grp, tig;

    __device__ TensorCoreTile() {
        const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
        warp_m = warp / 2;
        warp_n = warp % 2;
        grp = lane / 4;
        tig = lane % 4;
    }

    __device__ void clear() {
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int ni = 0; ni < 4; ++ni)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;
    }

    // A[r][k0..k0+BK) of the rows in `row_index` (−1: a row past the tile's end), zero from
    // column `k_end` on, rounded to T.
    template <class S>
    __device__ void load_a(Smem& s, const S* __restrict__ src, int ld, const int* row_index, int k0, int k_end) const {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int chunk = threadIdx.x + i * THREADS;  // 512 chunks of 8 values
            const int r = chunk / 4, c8 = (chunk % 4) * 8;
            float v[8] = {};
            const int row = row_index[r];
            if (row >= 0) load_span(src + (size_t)row * ld + k0 + c8, k_end - (k0 + c8), v);
            u16 b[8];
#pragma unroll
            for (int e = 0; e < 8; ++e) b[e] = from_f32<T>(v[e]).bits;
            *reinterpret_cast<uint4*>(&s.a[r][c8]) =
                make_uint4(pack2(b[0], b[1]), pack2(b[2], b[3]), pack2(b[4], b[5]), pack2(b[6], b[7]));
        }
    }

    // B[n][k] = value(n0 + n, k0 + k) in f32, rounded to T once.
    template <class Value> __device__ void load_b(Smem& s, int n0, int k0, Value value) const {
        const int n = threadIdx.x / 4, c8 = (threadIdx.x % 4) * 8;  // 256 chunks of 8 values
        u16 v[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) v[e] = from_f32<T>(value(n0 + n, k0 + c8 + e)).bits;
        *reinterpret_cast<uint4*>(&s.b[n][c8]) =
            make_uint4(pack2(v[0], v[1]), pack2(v[2], v[3]), pack2(v[4], v[5]), pack2(v[6], v[7]));
    }

    __device__ void compute(const Smem& s) {
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            u32 a[2][4], b[4][2];
            const int k = kk + 2 * tig;
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                const int r = warp_m * 32 + mi * 16 + grp;
                a[mi][0] = *reinterpret_cast<const u32*>(&s.a[r][k]);
                a[mi][1] = *reinterpret_cast<const u32*>(&s.a[r + 8][k]);
                a[mi][2] = *reinterpret_cast<const u32*>(&s.a[r][k + 8]);
                a[mi][3] = *reinterpret_cast<const u32*>(&s.a[r + 8][k + 8]);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                const int n = warp_n * 32 + ni * 8 + grp;
                b[ni][0] = *reinterpret_cast<const u32*>(&s.b[n][k]);
                b[ni][1] = *reinterpret_cast<const u32*>(&s.b[n][k + 8]);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_16x8x16<T>(acc[mi][ni], a[mi], b[ni]);
        }
    }

    // The block row held in `slot` (0..SLOTS).
    __device__ int slot_row(int slot) const { return warp_m * 32 + (slot / 2) * 16 + (slot % 2) * 8 + grp; }

    // f(slot, row, column, value) for every accumulator; the two columns of a pair are adjacent.
    template <class F> __device__ void for_each(F f) const {
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int ni = 0; ni < 4; ++ni)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int slot = mi * 2 + e / 2;
                    f(slot, slot_row(slot), warp_n * 32 + ni * 8 + 2 * tig + e % 2, acc[mi][ni][e]);
                }
    }

    // Adds each thread's per-row sums into `row_sum[group]`: the four lanes of a quad share
    // rows, and the two column warps (the groups) add to separate copies, so that the sums do
    // not depend on which warp comes first.
    template <int S> __device__ void add_rows(float (&sums)[SLOTS][S], float (*row_sum)[BM][S]) const {
#pragma unroll
        for (int slot = 0; slot < SLOTS; ++slot)
#pragma unroll
            for (int k = 0; k < S; ++k) {
                float v = sums[slot][k];
                v += __shfl_xor_sync(0xffffffffu, v, 1);
                v += __shfl_xor_sync(0xffffffffu, v, 2);
                if (tig == 0) row_sum[warp_n][slot_row(slot)][k] += v;
            }
    }
};

// f32 on the CUDA cores: BM = BN = 64, BK = 16; each thread a 4 × 4 micro-tile of rows
// ty + 16i and columns tx + 16j, so the shared-memory reads of a warp are broadcasts (A) or
// consecutive (B).
struct SimtTile {
    static constexpr int BM = 64, BN = 64, BK = 16, SLOTS = 4, GROUPS = 1;
    struct Smem {
        float a[BK][BM + 4];
        float b[BK][BN + 4];
    };

    float acc[4][4];
    int tx, ty;

    __device__ SimtTile() : tx(threadIdx.x % 16), ty(threadIdx.x / 16) {}

    __device__ void clear() {
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
    }

    template <class S>
    __device__ void load_a(Smem& s, const S* __restrict__ src, int ld, const int* row_index, int k0, int k_end) const {
        const int r = threadIdx.x / 4, k4 = (threadIdx.x % 4) * 4;  // 256 chunks of 4 values
        float v[4] = {};
        const int row = row_index[r];
        if (row >= 0) load_span(src + (size_t)row * ld + k0 + k4, k_end - (k0 + k4), v);
#pragma unroll
        for (int e = 0; e < 4; ++e) s.a[k4 + e][r] = v[e];
    }

    template <class Value> __device__ void load_b(Smem& s, int n0, int k0, Value value) const {
        const int n = threadIdx.x / 4, k4 = (threadIdx.x % 4) * 4;
#pragma unroll
        for (int e = 0; e < 4; ++e) s.b[k4 + e][n] = value(n0 + n, k0 + k4 + e);
    }

    __device__ void compute(const Smem& s) {
#pragma unroll
        for (int k = 0; k < BK; ++k) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = s.a[k][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = s.b[k][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
    }

    __device__ int slot_row(int slot) const { return ty + 16 * slot; }

    template <class F> __device__ void for_each(F f) const {
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) f(i, ty + 16 * i, tx + 16 * j, acc[i][j]);
    }

    // The 16 lanes with one ty share rows (and no other warp holds them).
    template <int S> __device__ void add_rows(float (&sums)[SLOTS][S], float (*row_sum)[BM][S]) const {
#pragma unroll
        for (int slot = 0; slot < SLOTS; ++slot)
#pragma unroll
            for (int k = 0; k < S; ++k) {
                float v = sums[slot][k];
#pragma unroll
                for (int offset = 8; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
                if (tx == 0) row_sum[0][slot_row(slot)][k] += v;
            }
    }
};

// The tile this block works on; a trap (a launch failure the engine reports) if the host built
// tiles for another tile height.
struct TileJob {
    u32 query, first, rows;
};
template <class Tile> __device__ TileJob tile_job(const u32* __restrict__ tiles) {
    TileJob job{tiles[TILE_WORDS * blockIdx.x], tiles[TILE_WORDS * blockIdx.x + 1], tiles[TILE_WORDS * blockIdx.x + 2]};
    if (job.rows > (u32)Tile::BM) __trap();
    return job;
}

// The tile's accumulators = A·Bᵀ over k < k_end: A's rows picked by `row_index` from `src`
// (row stride `ld`), B[n][k] = value(n0 + n, k), staged through shared memory BK at a time.
template <class Tile, class S, class Value>
__device__ void product(Tile& tile, typename Tile::Smem& smem, const S* __restrict__ src, int ld,
                        const int* row_index, int k_end, int n0, Value value) {
    tile.clear();
    for (int k0 = 0; k0 < k_end; k0 += Tile::BK) {
        tile.load_a(smem, src, ld, row_index, k0, k_end);
        tile.load_b(smem, n0, k0, value);
        __syncthreads();
        tile.compute(smem);
        __syncthreads();
    }
}

// ---------------------------------------------------------------------------------------------
// Layer 1 and the heads.
// ---------------------------------------------------------------------------------------------
template <class Tile, class T>
__device__ void score_pairs(const float* __restrict__ rows, int ld_rows, const u32* __restrict__ row_ids,
                            const u32* __restrict__ tiles, const float* __restrict__ queries, int d, int h,
                            const float* __restrict__ w_diff, const float* __restrict__ w_prod,
                            const float* __restrict__ v_q, const float* __restrict__ u_q,
                            const float* __restrict__ q_scalars, const float* __restrict__ classifier,
                            const float* __restrict__ classifier_bias, int activation, int similarity,
                            float* __restrict__ pairs, T* __restrict__ hidden, int ld_hidden) {
    constexpr int BM = Tile::BM, BN = Tile::BN;
    __shared__ typename Tile::Smem smem;
    __shared__ int row_index[BM];
    __shared__ float row_qc[BM], row_cc[BM];
    __shared__ float row_sum[Tile::GROUPS][BM][HEAD_SUMS];
    // Per hidden unit of the current chunk: v_q, the four classifier rows, u_q (0 past h).
    __shared__ float head[6][BN];

    const TileJob job = tile_job<Tile>(tiles);
    const float* __restrict__ q = queries + (size_t)job.query * d;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

    for (int r = threadIdx.x; r < BM; r += THREADS) {
        row_index[r] = r < (int)job.rows ? (int)(row_ids ? row_ids[job.first + r] : job.first + r) : -1;
        for (int g = 0; g < Tile::GROUPS; ++g)
            for (int k = 0; k < HEAD_SUMS; ++k) row_sum[g][r][k] = 0.0f;
    }
    __syncthreads();
    // q·c and |c|², a warp per row, in f32 whatever T is.
    for (int r = warp; r < (int)job.rows; r += WARPS) {
        const float* __restrict__ c = rows + (size_t)row_index[r] * ld_rows;
        float qc = 0.0f, cc = 0.0f;
        for (int t = lane; t < d; t += 32) {
            const float x = c[t];
            qc = fmaf(q[t], x, qc);
            cc = fmaf(x, x, cc);
        }
        qc = warp_sum(qc);
        cc = warp_sum(cc);
        if (lane == 0) {
            row_qc[r] = qc;
            row_cc[r] = cc;
        }
    }

    Tile tile;
    // M_q[j][t], formed while the B tile is staged: every block folds the query itself, so no
    // [h × d] matrix per query is ever written.
    const auto folded = [=](int j, int t) -> float {
        if (j >= h || t >= d) return 0.0f;
        const size_t at = (size_t)j * d + t;
        return fmaf(w_prod[at], q[t], w_diff[at]);
    };

    for (int j0 = 0; j0 < h; j0 += BN) {
        __syncthreads();  // the previous chunk's epilogue is done with `head`
        for (int i = threadIdx.x; i < BN; i += THREADS) {
            const int j = j0 + i;
            const bool in = j < h;
            head[0][i] = in ? v_q[(size_t)job.query * h + j] : 0.0f;
            for (int c = 0; c < 4; ++c) head[1 + c][i] = in ? classifier[(size_t)c * h + j] : 0.0f;
            head[5][i] = in && u_q ? u_q[(size_t)job.query * h + j] : 0.0f;
        }
        product(tile, smem, rows, ld_rows, row_index, d, j0, folded);
        // The chunk's sums go to shared memory at once: kept in registers across chunks they
        // would cost the main loop its registers.
        with_activation(activation, [&](auto kind) {
            float sums[Tile::SLOTS][HEAD_SUMS] = {};
            tile.for_each([&](int slot, int r, int col, float x) {
                const int j = j0 + col;
                const float hid = j < h ? activate<decltype(kind)::value>(x + head[0][col]) : 0.0f;
#pragma unroll
                for (int c = 0; c < 4; ++c) sums[slot][c] = fmaf(head[1 + c][col], hid, sums[slot][c]);
                sums[slot][4] = fmaf(head[5][col], hid, sums[slot][4]);
                if (hidden && r < (int)job.rows) {
                    hidden[(size_t)(job.first + r) * ld_hidden + j] = from_f32<T>(hid);
                }
            });
            tile.add_rows(sums, row_sum);
        });
    }
    __syncthreads();

    const float q_dot_b2 = q_scalars[2 * job.query], q_norm = q_scalars[2 * job.query + 1];
    for (int r = threadIdx.x; r < (int)job.rows; r += THREADS) {
        float* __restrict__ out = pairs + (size_t)(job.first + r) * PAIR_VALUES;
        float sum[HEAD_SUMS];
        for (int k = 0; k < HEAD_SUMS; ++k) {
            sum[k] = row_sum[0][r][k];
            for (int g = 1; g < Tile::GROUPS; ++g) sum[k] += row_sum[g][r][k];
        }
        const float qc = row_qc[r];
        if (similarity == DOT) {
            out[0] = qc + sum[4] + q_dot_b2;
            out[1] = qc;
        } else {
            out[0] = 0.0f;  // adapt_cosine writes it
            out[1] = cosine(qc, q_norm, sqrtf(row_cc[r]));
        }
        for (int c = 0; c < 4; ++c) out[2 + c] = sum[c] + classifier_bias[c];
    }
}

// ---------------------------------------------------------------------------------------------
// Cosine's layer 2: a = c + W2·hid + b2, reduced to q·a and |a|², then sim(q, a).
// ---------------------------------------------------------------------------------------------
template <class Tile, class T>
__device__ void adapt_cosine(const float* __restrict__ rows, int ld_rows, const u32* __restrict__ row_ids,
                             const u32* __restrict__ tiles, const float* __restrict__ queries, int d, int h,
                             const T* __restrict__ hidden, int ld_hidden, const T* __restrict__ w2,
                             const float* __restrict__ b2, const float* __restrict__ q_scalars,
                             float* __restrict__ pairs) {
    constexpr int BM = Tile::BM, BN = Tile::BN;
    __shared__ typename Tile::Smem smem;
    __shared__ int hidden_index[BM], row_index[BM];
    __shared__ float row_sum[Tile::GROUPS][BM][ADAPT_SUMS];
    __shared__ float head[2][BN];  // q[t], b2[t] of the current chunk (0 past d)

    const TileJob job = tile_job<Tile>(tiles);
    const float* __restrict__ q = queries + (size_t)job.query * d;
    for (int r = threadIdx.x; r < BM; r += THREADS) {
        const bool in = r < (int)job.rows;
        hidden_index[r] = in ? (int)(job.first + r) : -1;
        row_index[r] = in ? (int)(row_ids ? row_ids[job.first + r] : job.first + r) : -1;
        for (int g = 0; g < Tile::GROUPS; ++g)
            for (int k = 0; k < ADAPT_SUMS; ++k) row_sum[g][r][k] = 0.0f;
    }

    Tile tile;

    // W2[t][j], zero past d; columns past h are zero in memory.
    const auto weight = [=](int t, int j) -> float { return t < d ? to_f32(w2[(size_t)t * ld_hidden + j]) : 0.0f; };

    for (int t0 = 0; t0 < d; t0 += BN) {
        __syncthreads();  // row tables ready; the previous chunk is done with `head`
        for (int i = threadIdx.x; i < BN; i += THREADS) {
            const int t = t0 + i;
            head[0][i] = t < d ? q[t] : 0.0f;
            head[1][i] = t < d ? b2[t] : 0.0f;
        }
        product(tile, smem, hidden, ld_hidden, hidden_index, h, t0, weight);
        float sums[Tile::SLOTS][ADAPT_SUMS] = {};
        tile.for_each([&](int slot, int r, int col, float x) {
            const int t = t0 + col;
            if (t < d && r < (int)job.rows) {
                const float a = rows[(size_t)row_index[r] * ld_rows + t] + x + head[1][col];
                sums[slot][0] = fmaf(head[0][col], a, sums[slot][0]);
                sums[slot][1] = fmaf(a, a, sums[slot][1]);
            }
        });
        tile.add_rows(sums, row_sum);
    }
    __syncthreads();

    const float q_norm = q_scalars[2 * job.query + 1];
    for (int r = threadIdx.x; r < (int)job.rows; r += THREADS) {
        float q_dot_a = row_sum[0][r][0], a_sq = row_sum[0][r][1];
        for (int g = 1; g < Tile::GROUPS; ++g) {
            q_dot_a += row_sum[g][r][0];
            a_sq += row_sum[g][r][1];
        }
        pairs[(size_t)(job.first + r) * PAIR_VALUES] = cosine(q_dot_a, q_norm, sqrtf(a_sq));
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points.
// ---------------------------------------------------------------------------------------------

// Grid (ceil(h / 8) + 1, queries), 256 threads: a warp per hidden unit j computes
// v_q[j] = (W_a + W_c)[j]·q + b1[j] and (dot) u_q[j] = W2ᵀ[j]·q; the last block column computes
// q·b2 and |q|. `w2t` and `u_q` are null for cosine.
extern "C" __global__ void __launch_bounds__(THREADS)
    fold_query_f32(const float* __restrict__ queries, int d, int h, const float* __restrict__ w_sum,
                   const float* __restrict__ b1, const float* __restrict__ w2t, const float* __restrict__ b2,
                   float* __restrict__ v_q, float* __restrict__ u_q, float* __restrict__ q_scalars) {
    __shared__ float part[2][WARPS];
    const int query = blockIdx.y;
    const float* __restrict__ q = queries + (size_t)query * d;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (blockIdx.x + 1 == gridDim.x) {
        float qb = 0.0f, qq = 0.0f;
        for (int t = threadIdx.x; t < d; t += THREADS) {
            qb = fmaf(q[t], b2[t], qb);
            qq = fmaf(q[t], q[t], qq);
        }
        qb = warp_sum(qb);
        qq = warp_sum(qq);
        if (lane == 0) {
            part[0][warp] = qb;
            part[1][warp] = qq;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            qb = 0.0f;
            qq = 0.0f;
            for (int w = 0; w < WARPS; ++w) {
                qb += part[0][w];
                qq += part[1][w];
            }
            q_scalars[2 * query] = qb;
            q_scalars[2 * query + 1] = sqrtf(qq);
        }
        return;
    }
    const int j = blockIdx.x * WARPS + warp;
    if (j >= h) return;
    const float* __restrict__ ws = w_sum + (size_t)j * d;
    float v = 0.0f, u = 0.0f;
    if (w2t) {
        const float* __restrict__ wt = w2t + (size_t)j * d;
        for (int t = lane; t < d; t += 32) {
            v = fmaf(ws[t], q[t], v);
            u = fmaf(wt[t], q[t], u);
        }
    } else {
        for (int t = lane; t < d; t += 32) v = fmaf(ws[t], q[t], v);
    }
    v = warp_sum(v);
    u = warp_sum(u);
    if (lane == 0) {
        v_q[(size_t)query * h + j] = v + b1[j];
        if (u_q) u_q[(size_t)query * h + j] = u;
    }
}

// One block per tile (TILE_WORDS words in `tiles`): at most BM rows of one query (BM = 128 for
// bf16/f16, 64 for f32). `row_ids` (null: pair p is row p) picks candidate rows out of `rows`;
// `hidden` is null for dot similarity.
#define RRRA_SCORE_PAIRS(NAME, TILE, T)                                                                               \
    extern "C" __global__ void __launch_bounds__(THREADS)                                                             \
        NAME(const float* __restrict__ rows, int ld_rows, const u32* __restrict__ row_ids,                          \
             const u32* __restrict__ tiles, const float* __restrict__ queries, int d, int h, const float* __restrict__ w_diff,                     \
             const float* __restrict__ w_prod, const float* __restrict__ v_q, const float* __restrict__ u_q,        \
             const float* __restrict__ q_scalars, const float* __restrict__ classifier,                             \
             const float* __restrict__ classifier_bias, int activation, int similarity, float* __restrict__ pairs,  \
             T* __restrict__ hidden, int ld_hidden) {                                                                 \
        score_pairs<TILE, T>(rows, ld_rows, row_ids, tiles, queries, d, h, w_diff, w_prod, v_q, u_q, q_scalars,     \
                             classifier, classifier_bias, activation, similarity, pairs, hidden, ld_hidden);         \
    }
RRRA_SCORE_PAIRS(score_pairs_bf16, TensorCoreTile<Bf16>, Bf16)
RRRA_SCORE_PAIRS(score_pairs_f16, TensorCoreTile<F16>, F16)
RRRA_SCORE_PAIRS(score_pairs_f32, SimtTile, float)

// Same tiles as score_pairs; `hidden` as score_pairs wrote it, `w2` = fc2.weight [d × ld_hidden]
// in T, zero past h.
#define RRRA_ADAPT_COSINE(NAME, TILE, T)                                                                              \
    extern "C" __global__ void __launch_bounds__(THREADS)                                                             \
        NAME(const float* __restrict__ rows, int ld_rows, const u32* __restrict__ row_ids,                          \
             const u32* __restrict__ tiles, const float* __restrict__ queries, int d, int h, const T* __restrict__ hidden, \
             int ld_hidden,          \
             const T* __restrict__ w2, const float* __restrict__ b2, const float* __restrict__ q_scalars,           \
             float* __restrict__ pairs) {                                                                             \
        adapt_cosine<TILE, T>(rows, ld_rows, row_ids, tiles, queries, d, h, hidden, ld_hidden, w2, b2, q_scalars,   \
                              pairs);                                                                                 \
    }
RRRA_ADAPT_COSINE(adapt_cosine_bf16, TensorCoreTile<Bf16>, Bf16)
RRRA_ADAPT_COSINE(adapt_cosine_f16, TensorCoreTile<F16>, F16)
RRRA_ADAPT_COSINE(adapt_cosine_f32, SimtTile, float)
