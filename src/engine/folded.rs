//! The folded CPU engine: SPEC §8's identities on weights packed once, through the register-blocked
//! tile of [`super::simd`].
//!
//! Layer 1 for every candidate of a query is one `[k × d] · [d × h]` product with the query folded
//! into the weights (`M_q = (W_c − W_a) + W_b·diag(q)`), a third of the literal flops. The weights
//! are packed at session creation into panels of `NR` hidden units (`[d × NR]` each), so folding a
//! query is one contiguous pass over four panel streams that also yields `v_q` and `u_q`. For dot
//! similarity layer 2 collapses to a length-h dot product (`q·a = q·c + u_q·hid + q·b₂`), which
//! rides along the classifier in the tile's epilogue; nothing of size `k × h` is ever stored.
//! Cosine keeps the full layer 2 (`‖a‖` needs `Δc`) on the same tile.
//!
//! A short list (one block, one thread) folds each panel just before using it, so the folded
//! weights never leave the cache, and the tiles of one panel prefetch the weights the next panel
//! folds from (the fold would otherwise wait on memory: at k = 100 it streams as many bytes as
//! the tiles read). Longer lists fold every panel first and then score blocks of candidates that
//! stay in L2 while the panels stream past.
//!
//! Three tiers of state: [`FoldedWeights`] (from the adapter, shared by all threads),
//! [`QueryPlan`] (one query's folded weights), [`BlockScratch`] (one per thread). All of it is
//! sized at creation, so calls allocate nothing, and generic over the element type `E` of the
//! packed weights and candidates: f32, or IEEE half at f16 precision ([`super::f16`]); a value
//! that `E` cannot hold, or a sum that overflows it, is an error naming the query.

use super::reference::cosine;
use super::simd::{CpuKernel, Element, Epilogue, Fold, Tile, LANES};
use super::{Engine, EngineKind, PairRaw, Precision};
use crate::batch::Batch;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Activation, Adapter, Similarity};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Per-row sums: the four classifier logits, `u_q·hid`, then (cosine) `q·a` and `‖a‖²`.
const SUMS: usize = 7;
const U_DOT_HID: usize = 4;
const Q_DOT_A: usize = 5;
const A_SQ: usize = 6;

/// Bytes of packed candidates per block: with a panel of weights beside them they stay in L2.
const BLOCK_BYTES: usize = 384 * 1024;
const MAX_BLOCK_ROWS: usize = 512;
/// Bytes of a weight panel per chunk of layer 1's reduction: half of a typical L1 data cache.
const CHUNK_BYTES: usize = 24 * 1024;

/// Fewest candidates worth a thread of their own within one query: below this, starting a thread
/// and losing the fused fold cost more than the second core gains (measured at d = h = 384, 768).
const MIN_ROWS_PER_THREAD: usize = 256;

/// A function `(p, j)` giving element `p, j` of an `n × cols` matrix.
type Matrix<'a> = &'a dyn Fn(usize, usize) -> f32;

/// Packs `n × cols` matrices into panels of `nr` columns with the matrices' rows interleaved,
/// `[panel][n][matrix][nr]`, zero beyond `cols`; `None` when a value is out of `E`'s range.
fn pack_panels<E: Element>(n: usize, cols: usize, nr: usize, matrices: &[Matrix<'_>]) -> Option<Vec<E>> {
    let panels = cols.div_ceil(nr);
    let mut packed = vec![E::default(); panels * n * matrices.len() * nr];
    for (panel, block) in packed.chunks_exact_mut(n * matrices.len() * nr).enumerate() {
        for (i, row) in block.chunks_exact_mut(nr).enumerate() {
            let (p, value) = (i / matrices.len(), matrices[i % matrices.len()]);
            for (jj, x) in row.iter_mut().enumerate().take(cols - panel * nr) {
                *x = E::from_f32(value(p, panel * nr + jj))?;
            }
        }
    }
    Some(packed)
}

/// A zeroed buffer whose first value sits on a 64-byte boundary, so that the tile's vector
/// loads of a panel never straddle two cache lines.
struct AlignedBuf<E> {
    data: Vec<E>,
    start: usize,
    len: usize,
}

impl<E: Element> AlignedBuf<E> {
    fn zeroed(len: usize) -> Self {
        let slack = 64 / std::mem::size_of::<E>();
        let data = vec![E::default(); len + slack];
        let start = data.as_ptr().align_offset(64).min(slack);
        AlignedBuf { data, start, len }
    }
}

impl<E> std::ops::Deref for AlignedBuf<E> {
    type Target = [E];
    fn deref(&self) -> &[E] {
        &self.data[self.start..][..self.len]
    }
}

impl<E> std::ops::DerefMut for AlignedBuf<E> {
    fn deref_mut(&mut self) -> &mut [E] {
        &mut self.data[self.start..][..self.len]
    }
}

/// `a·b` in [`LANES`] partial sums, so the compiler vectorises it.
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (a_tail, b_tail) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_tail.remainder().iter().zip(b_tail.remainder()).map(|(x, y)| x * y).sum();
    for (a, b) in a_tail.zip(b_tail) {
        for l in 0..LANES {
            lanes[l] += a[l] * b[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// What the engine precomputes from an adapter once; shared by every thread's engine. `E` is
/// the element type of the packed weights and candidates (f32, or f16 for f16 precision).
pub(crate) struct FoldedWeights<E> {
    kernel: CpuKernel,
    tile: Tile<E>,
    dim: usize,
    hidden: usize,
    /// Panels of `tile.nr` hidden units.
    panels: usize,
    block_rows: usize,
    /// Length of layer 1's reduction chunks.
    chunk: usize,
    activation: Activation,
    similarity: Similarity,
    /// What a query folds into, `[panel][d][S][NR]` (see [`Fold`]): `(W_c − W_a)ᵀ`, `W_bᵀ`,
    /// `(W_a + W_c)ᵀ` and, for dot similarity, `fc2.weight` (so `u_q = W₂ᵀq` folds with the
    /// rest), interleaved row by row so that a panel's fold reads one stream.
    fold: Vec<E>,
    /// `fc2.weightᵀ` in panels of `NR` output dimensions, `[panel][h][NR]` (cosine only).
    fc2_by_output: Vec<E>,
    /// `[panels · NR]`, zero beyond h.
    fc1_bias: Vec<f32>,
    /// `[panel][4][NR]`: the classifier rows, cut into panels.
    classifier: Vec<f32>,
    classifier_bias: [f32; 4],
    fc2_bias: Vec<f32>,
}

impl<E: Element> FoldedWeights<E> {
    /// Errors: Unsupported when this CPU cannot run `kernel` at this precision, or a weight is
    /// out of the precision's range.
    pub(crate) fn new(adapter: &Adapter, kernel: CpuKernel) -> Result<Arc<Self>> {
        let precision = E::PRECISION;
        let tile = E::tile(kernel).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                match precision {
                    Precision::F32 => {
                        format!("cpu kernel {}: this CPU does not have its instruction set", kernel.name())
                    }
                    // The folded engine has no bf16 arithmetic; `engine::select` refuses it first.
                    Precision::F16 | Precision::Bf16 => format!(
                        "f16 precision runs on the avx512 kernel of a CPU with AVX512-FP16 (kernel {}{})",
                        kernel.name(),
                        if kernel.is_available() { "; this CPU has no AVX512-FP16" } else { " is not available here" }
                    ),
                },
            )
        })?;
        let out_of_range = || {
            Error::new(
                ErrorKind::Unsupported,
                format!("{} precision: a weight of the adapter is outside its range (±65504)", precision.name()),
            )
        };
        let (d, h, nr) = (adapter.dim(), adapter.hidden(), tile.nr);
        let w = adapter.weights();
        let config = adapter.config();
        // fc1.weight row j is [W_a | W_b | W_c] row j.
        let fc1 = |part: usize, t: usize, j: usize| w.fc1_weight[j * 3 * d + part * d + t];
        let fc2 = |t: usize, j: usize| w.fc2_weight[t * h + j];
        let dot = config.similarity == Similarity::Dot;
        let mut classifier: Vec<f32> =
            pack_panels(4, h, nr, &[&|class, j| w.classifier_weight[class * h + j]]).expect("f32 holds every f32");
        classifier.shrink_to_fit();
        let mut fc1_bias = w.fc1_bias.clone();
        fc1_bias.resize(h.div_ceil(nr) * nr, 0.0);
        let size = std::mem::size_of::<E>();
        let rows = (BLOCK_BYTES / (size * d.max(1))).clamp(tile.mr, MAX_BLOCK_ROWS);
        let panels = |n, cols, matrices: &[Matrix<'_>]| pack_panels(n, cols, nr, matrices).ok_or_else(out_of_range);
        let diff = |t, j| fc1(2, t, j) - fc1(0, t, j);
        let prod = |t, j| fc1(1, t, j);
        let sum = |t, j| fc1(0, t, j) + fc1(2, t, j);
        Ok(Arc::new(FoldedWeights {
            kernel,
            tile,
            dim: d,
            hidden: h,
            panels: h.div_ceil(nr),
            block_rows: rows / tile.mr * tile.mr,
            chunk: (CHUNK_BYTES / (size * nr)).max(1),
            activation: config.activation,
            similarity: config.similarity,
            fold: if dot { panels(d, h, &[&diff, &prod, &sum, &fc2])? } else { panels(d, h, &[&diff, &prod, &sum])? },
            fc2_by_output: if dot { Vec::new() } else { panels(h, d, &[&|j, t| fc2(t, j)])? },
            fc1_bias,
            classifier,
            classifier_bias: [w.classifier_bias[0], w.classifier_bias[1], w.classifier_bias[2], w.classifier_bias[3]],
            fc2_bias: w.fc2_bias.clone(),
        }))
    }

    /// Panel `i` of the weights a query folds into.
    fn fold_weights(&self, i: usize) -> &[E] {
        let len = self.fold.len() / self.panels.max(1);
        &self.fold[i * len..][..len]
    }

    /// The heads the epilogue sums per row: the classifier, plus `u_q` for dot similarity.
    fn heads(&self) -> usize {
        if self.similarity == Similarity::Dot {
            5
        } else {
            4
        }
    }
}

/// One query folded into the weights.
struct QueryPlan<E> {
    /// `[panel][d][NR]`: `M_qᵀ`.
    m_q: AlignedBuf<E>,
    /// `[panels · NR]`: `v_q = (W_a + W_c)·q + b₁`.
    v_q: Vec<f32>,
    /// `[panel][5][NR]`: the classifier rows, then `u_q = W₂ᵀq` (zero for cosine).
    heads: Vec<f32>,
    /// `q·b₂`.
    q_dot_bias: f32,
    q_norm: f32,
}

/// One panel of a [`QueryPlan`].
struct PlanPanel<'a, E> {
    m_q: &'a mut [E],
    v_q: &'a mut [f32],
    heads: &'a mut [f32],
}

impl<E: Element> QueryPlan<E> {
    fn new(w: &FoldedWeights<E>) -> Self {
        let nr = w.tile.nr;
        let mut heads = vec![0.0; w.panels * 5 * nr];
        for (dst, src) in heads.chunks_exact_mut(5 * nr).zip(w.classifier.chunks_exact(4 * nr)) {
            dst[..4 * nr].copy_from_slice(src);
        }
        QueryPlan {
            m_q: AlignedBuf::zeroed(w.panels * w.dim * nr),
            v_q: vec![0.0; w.panels * nr],
            heads,
            q_dot_bias: 0.0,
            q_norm: 0.0,
        }
    }

    /// The query's scalars: `q·b₂` and `‖q‖`.
    fn fold_scalars(&mut self, w: &FoldedWeights<E>, q: &[f32]) {
        self.q_dot_bias = lane_dot(q, &w.fc2_bias);
        self.q_norm = lane_dot(q, q).sqrt();
    }

    /// Folds every panel, split between up to `threads` threads: the fold streams ~4·d·h
    /// weights, which dominates a short list. `false` when `M_q` is out of `E`'s range.
    fn fold(&mut self, w: &FoldedWeights<E>, q: &[f32], threads: usize) -> bool {
        self.fold_scalars(w, q);
        let in_range = AtomicBool::new(true);
        let in_range = &in_range;
        let (d, nr) = (w.dim, w.tile.nr);
        let per = w.panels.div_ceil(threads.clamp(1, w.panels.max(1)));
        let mut shares = self
            .m_q
            .chunks_mut(per * d * nr)
            .zip(self.v_q.chunks_mut(per * nr))
            .zip(self.heads.chunks_mut(per * 5 * nr))
            .enumerate()
            .map(|(s, ((m_q, v_q), heads))| {
                move || {
                    for (i, mut panel) in plan_panels(w, m_q, v_q, heads).enumerate() {
                        if !fold_panel(w, q, s * per + i, &mut panel) {
                            in_range.store(false, Ordering::Relaxed);
                        }
                    }
                }
            });
        // The calling thread folds the first share itself; threads start only for the others.
        let Some(mut first) = shares.next() else { return true };
        if shares.len() == 0 {
            first();
        } else {
            std::thread::scope(|scope| {
                shares.for_each(|share| drop(scope.spawn(share)));
                first();
            });
        }
        in_range.load(Ordering::Relaxed)
    }

    fn panel(&self, w: &FoldedWeights<E>, i: usize) -> (&[E], &[f32], &[f32]) {
        let nr = w.tile.nr;
        (&self.m_q[i * w.dim * nr..][..w.dim * nr], &self.v_q[i * nr..][..nr], &self.heads[i * 5 * nr..][..5 * nr])
    }
}

/// Cuts a plan's arrays (or a contiguous share of them) into panels.
fn plan_panels<'a, E: Element>(
    w: &FoldedWeights<E>,
    m_q: &'a mut [E],
    v_q: &'a mut [f32],
    heads: &'a mut [f32],
) -> impl Iterator<Item = PlanPanel<'a, E>> {
    let nr = w.tile.nr;
    m_q.chunks_exact_mut(w.dim * nr)
        .zip(v_q.chunks_exact_mut(nr))
        .zip(heads.chunks_exact_mut(5 * nr))
        .map(|((m_q, v_q), heads)| PlanPanel { m_q, v_q, heads })
}

/// Folds `q` into panel `i`: `M_q`'s columns, `v_q` and `u_q` for its `NR` hidden units.
/// `false` when an `M_q` value is out of `E`'s range.
fn fold_panel<E: Element>(w: &FoldedWeights<E>, q: &[f32], i: usize, panel: &mut PlanPanel<'_, E>) -> bool {
    let nr = w.tile.nr;
    panel.v_q.copy_from_slice(&w.fc1_bias[i * nr..][..nr]);
    let u_q = match w.similarity {
        Similarity::Dot => &mut panel.heads[4 * nr..],
        Similarity::Cosine => &mut [],
    };
    u_q.fill(0.0);
    w.tile.fold(Fold { weights: w.fold_weights(i), q, m: panel.m_q, v: panel.v_q, u: u_q })
}

/// What made a query unscorable at the session's precision.
#[derive(Clone, Copy, Debug)]
enum OutOfRange {
    /// The batch-wide candidate with a value beyond the element type's range.
    Candidate(usize),
    /// `M_q`, the query folded into the weights.
    Fold,
    /// A pre-activation of layer 1 (an overflow that the activation could hide).
    Layer1,
}

/// One thread's working memory for a block of candidates.
struct BlockScratch<E> {
    /// The block's candidates packed for the tile, `[tile][d][MR]`, zero past the last row.
    packed: AlignedBuf<E>,
    /// `[row][SUMS][LANES]`.
    sums: Vec<f32>,
    q_dot_c: Vec<f32>,
    c_sq: Vec<f32>,
    /// Each tile's output, `[tile][MR × NR]`.
    tile_out: Vec<f32>,
    /// Cosine: the block's hidden activations packed for layer 2's tile, `[tile][panels·NR][MR]`.
    hidden: Vec<E>,
    /// The first thing out of range since the last [`BlockScratch::pack`].
    out_of_range: Option<OutOfRange>,
}

impl<E: Element> BlockScratch<E> {
    fn new(w: &FoldedWeights<E>) -> Self {
        let (rows, nr) = (w.block_rows, w.tile.nr);
        BlockScratch {
            packed: AlignedBuf::zeroed(rows * w.dim),
            sums: vec![0.0; rows * SUMS * LANES],
            q_dot_c: vec![0.0; rows],
            c_sq: vec![0.0; rows],
            tile_out: vec![0.0; rows * nr],
            hidden: match w.similarity {
                Similarity::Dot => Vec::new(),
                Similarity::Cosine => vec![E::default(); rows * w.panels * nr],
            },
            out_of_range: None,
        }
    }

    /// Packs the batch's candidates `first..first + n` (at most a block) and clears the sums.
    fn pack(&mut self, w: &FoldedWeights<E>, q: &[f32], batch: &Batch<'_>, first: usize, n: usize) {
        let (d, mr) = (w.dim, w.tile.mr);
        self.out_of_range = None;
        for (t, tile) in self.packed[..n.div_ceil(mr) * mr * d].chunks_exact_mut(mr * d).enumerate() {
            let rows = (t * mr..n.min((t + 1) * mr)).map(|i| (i, batch.candidate(first + i)));
            for (i, c) in rows.clone() {
                self.q_dot_c[i] = lane_dot(q, c);
                if w.similarity == Similarity::Cosine {
                    self.c_sq[i] = lane_dot(c, c);
                }
            }
            // Whole groups of four rows, then the rest one by one, then zeros.
            let (full, present) = (mr / 4 * 4, rows.len());
            let mut r = 0;
            while r + 4 <= present.min(full) {
                let c = |j: usize| batch.candidate(first + t * mr + r + j);
                if !E::scatter4(&mut tile[r..], mr, [c(0), c(1), c(2), c(3)]) {
                    let bad = (0..4).find(|&j| c(j).iter().any(|&x| E::from_f32(x).is_none())).unwrap_or(0);
                    self.out_of_range.get_or_insert(OutOfRange::Candidate(first + t * mr + r + bad));
                }
                r += 4;
            }
            for (i, c) in rows.skip(r) {
                if !E::scatter(&mut tile[i - t * mr..], mr, c) {
                    self.out_of_range.get_or_insert(OutOfRange::Candidate(first + i));
                }
            }
            for r in present..mr {
                (0..d).for_each(|p| tile[p * mr + r] = E::default());
            }
        }
        self.sums[..n * SUMS * LANES].fill(0.0);
    }

    /// Layer 1 of hidden panel `i` for the block's `n` rows, with the epilogue: bias,
    /// activation, then the heads summed into `sums` (and, for cosine, the hidden values kept).
    /// Meanwhile the tiles prefetch `next` (the weights the next panel folds from), so that fold
    /// finds them in L2 instead of waiting on memory.
    fn layer1_panel(
        &mut self,
        w: &FoldedWeights<E>,
        n: usize,
        i: usize,
        (m_q, v_q, heads): (&[E], &[f32], &[f32]),
        next: &[E],
    ) {
        let (d, Tile { mr, nr, .. }) = (w.dim, w.tile);
        let hidden_row = w.panels * nr;
        let tiles = n.div_ceil(mr);
        let mut prefetched = 0;
        // The reduction over d runs in chunks whose slice of the panel stays in L1 while every
        // tile of the block passes over it; each tile's partial sums wait in `tile_out`.
        for p0 in (0..d).step_by(w.chunk) {
            let len = w.chunk.min(d - p0);
            let last = p0 + len == d;
            for t in 0..tiles {
                let rows = mr.min(n - t * mr);
                let mut epilogue = last.then(|| Epilogue {
                    non_finite: false,
                    bias: v_q,
                    activation: w.activation,
                    heads: &heads[..w.heads() * nr],
                    sums: &mut self.sums[t * mr * SUMS * LANES..][..rows * SUMS * LANES],
                    stride: SUMS * LANES,
                    rows,
                });
                let a = &self.packed[(t * d + p0) * mr..][..len * mr];
                let out = &mut self.tile_out[t * mr * nr..][..mr * nr];
                // Each step of the tile prefetches one cache line.
                let prefetch = if prefetched < std::mem::size_of_val(next) {
                    next.as_ptr().cast::<u8>().wrapping_add(prefetched)
                } else {
                    std::ptr::null()
                };
                prefetched += 64 * len;
                w.tile.run(a, &m_q[p0 * nr..][..len * nr], len, out, p0 > 0, epilogue.as_mut(), prefetch);
                if epilogue.is_some_and(|e| e.non_finite) {
                    self.out_of_range.get_or_insert(OutOfRange::Layer1);
                }
            }
        }
        if w.similarity == Similarity::Cosine {
            for t in 0..tiles {
                let hidden = &mut self.hidden[t * mr * hidden_row..][..mr * hidden_row];
                for r in 0..mr.min(n - t * mr) {
                    for (jj, &g) in self.tile_out[(t * mr + r) * nr..][..nr].iter().enumerate() {
                        // Activations are bounded by the pre-activations checked in the epilogue.
                        hidden[(i * nr + jj) * mr + r] = E::from_f32(g).unwrap_or_default();
                    }
                }
            }
        }
    }

    /// Cosine's full layer 2, `a = c + W₂·hid + b₂`, on the same tile, summing `q·a` and `‖a‖²`.
    fn layer2(&mut self, w: &FoldedWeights<E>, q: &[f32], n: usize) {
        let (d, h, Tile { mr, nr, .. }) = (w.dim, w.hidden, w.tile);
        let hidden_row = w.panels * nr;
        for (o, fc2) in w.fc2_by_output.chunks_exact(h * nr).enumerate() {
            let cols = nr.min(d - o * nr);
            for t in 0..n.div_ceil(mr) {
                w.tile.run(
                    &self.hidden[t * mr * hidden_row..][..mr * hidden_row],
                    fc2,
                    h,
                    &mut self.tile_out,
                    false,
                    None,
                    std::ptr::null(),
                );
                let c = &self.packed[t * mr * d..][..mr * d];
                for r in 0..mr.min(n - t * mr) {
                    let sums = &mut self.sums[(t * mr + r) * SUMS * LANES..][..SUMS * LANES];
                    let (q_dot_a, a_sq) = sums[Q_DOT_A * LANES..].split_at_mut(LANES);
                    for jj in 0..cols {
                        let tt = o * nr + jj;
                        let a = c[tt * mr + r].to_f32() + self.tile_out[r * nr + jj] + w.fc2_bias[tt];
                        q_dot_a[jj % LANES] += q[tt] * a;
                        a_sq[jj % LANES] += a * a;
                    }
                }
            }
        }
    }

    /// Turns the block's sums into per-pair results.
    fn finish(&mut self, w: &FoldedWeights<E>, plan: &QueryPlan<E>, q: &[f32], out: &mut [PairRaw]) {
        if w.similarity == Similarity::Cosine {
            self.layer2(w, q, out.len());
        }
        for (i, o) in out.iter_mut().enumerate() {
            let sums = &self.sums[i * SUMS * LANES..][..SUMS * LANES];
            let sum = |s: usize| sums[s * LANES..][..LANES].iter().sum::<f32>();
            let logits = [0, 1, 2, 3].map(|c| sum(c) + w.classifier_bias[c]);
            let q_dot_c = self.q_dot_c[i];
            let (sim_adapted, sim_candidate) = match w.similarity {
                Similarity::Dot => (q_dot_c + sum(U_DOT_HID) + plan.q_dot_bias, q_dot_c),
                Similarity::Cosine => (
                    cosine(sum(Q_DOT_A), plan.q_norm, sum(A_SQ).sqrt()),
                    cosine(q_dot_c, plan.q_norm, self.c_sq[i].sqrt()),
                ),
            };
            *o = PairRaw { sim_adapted, sim_candidate, logits };
        }
    }
}

/// Scores the batch-wide candidates `first..first + out.len()`, all of one query whose plan is
/// folded, block by block.
fn score_range<E: Element>(
    w: &FoldedWeights<E>,
    plan: &QueryPlan<E>,
    s: &mut BlockScratch<E>,
    batch: &Batch<'_>,
    q: &[f32],
    first: usize,
    out: &mut [PairRaw],
) -> std::result::Result<(), OutOfRange> {
    for (b, block_out) in out.chunks_mut(w.block_rows).enumerate() {
        let start = first + b * w.block_rows;
        let n = block_out.len();
        s.pack(w, q, batch, start, n);
        for i in 0..w.panels {
            s.layer1_panel(w, n, i, plan.panel(w, i), &[]);
        }
        s.finish(w, plan, q, block_out);
        if let Some(failure) = s.out_of_range {
            return Err(failure);
        }
    }
    Ok(())
}

/// Folds and scores a list of at most one block in one pass: each panel is folded just before
/// the tile uses it, while it is still in cache.
fn fold_and_score<E: Element>(
    w: &FoldedWeights<E>,
    plan: &mut QueryPlan<E>,
    s: &mut BlockScratch<E>,
    batch: &Batch<'_>,
    q: &[f32],
    first: usize,
    out: &mut [PairRaw],
) -> std::result::Result<(), OutOfRange> {
    let n = out.len();
    debug_assert!(n <= w.block_rows);
    plan.fold_scalars(w, q);
    s.pack(w, q, batch, first, n);
    for (i, mut panel) in plan_panels(w, &mut plan.m_q, &mut plan.v_q, &mut plan.heads).enumerate() {
        if !fold_panel(w, q, i, &mut panel) {
            return Err(OutOfRange::Fold);
        }
        let next = if i + 1 < w.panels { w.fold_weights(i + 1) } else { &[] };
        s.layer1_panel(w, n, i, (&*panel.m_q, &*panel.v_q, &*panel.heads), next);
    }
    s.finish(w, plan, q, out);
    s.out_of_range.map_or(Ok(()), Err)
}

/// The error for a query that could not be scored at `precision`; `start` is its first
/// candidate's batch-wide index.
fn out_of_range(failure: OutOfRange, precision: Precision, query: usize, start: usize) -> Error {
    let range = match precision {
        Precision::F32 => "the f32 range",
        Precision::F16 => "±65504, the range of the session's f16 precision",
        Precision::Bf16 => "the range of the session's bf16 precision",
    };
    match failure {
        OutOfRange::Candidate(i) => {
            Error::invalid_argument(format!("query {query}, candidate {}: a value is beyond {range}", i - start))
        }
        OutOfRange::Fold => {
            Error::new(ErrorKind::Numeric, format!("query {query}: folding it into the weights overflowed {range}"))
        }
        OutOfRange::Layer1 => {
            Error::new(ErrorKind::Numeric, format!("query {query}: the adapter's hidden layer overflowed {range}"))
        }
    }
}

/// One session thread's engine: the shared weights, a query plan, and block scratch for itself
/// and for the helper threads it may start within one query.
pub(crate) struct FoldedEngine<E> {
    w: Arc<FoldedWeights<E>>,
    plan: QueryPlan<E>,
    scratch: Vec<BlockScratch<E>>,
}

impl<E: Element> FoldedEngine<E> {
    pub(crate) fn new(w: Arc<FoldedWeights<E>>) -> Self {
        FoldedEngine { plan: QueryPlan::new(&w), scratch: vec![BlockScratch::new(&w)], w }
    }
}

/// `threads` folded engines over `adapter` on `kernel`, sharing its packed weights.
pub(crate) fn engines<E: Element>(
    adapter: &Adapter,
    kernel: CpuKernel,
    threads: usize,
) -> Result<Vec<Box<dyn Engine>>> {
    let weights = FoldedWeights::<E>::new(adapter, kernel)?;
    Ok((0..threads).map(|_| Box::new(FoldedEngine::new(weights.clone())) as Box<dyn Engine>).collect())
}

impl<E: Element> Engine for FoldedEngine<E> {
    fn kind(&self) -> EngineKind {
        EngineKind::Folded
    }

    fn cpu_kernel(&self) -> Option<CpuKernel> {
        Some(self.w.kernel)
    }

    fn precision(&self) -> Precision {
        E::PRECISION
    }

    fn forward(&mut self, _adapter: &Adapter, batch: &Batch<'_>, out: &mut [PairRaw], width: usize) -> Result<()> {
        let w = &*self.w;
        let mut start = 0;
        for (qi, &k) in batch.candidate_counts.iter().enumerate() {
            if k == 0 {
                continue;
            }
            let q = batch.query(qi);
            let query_out = &mut out[start..start + k];
            let threads = width.min(k / MIN_ROWS_PER_THREAD).max(1);
            let scored = if threads == 1 && k <= w.block_rows {
                fold_and_score(w, &mut self.plan, &mut self.scratch[0], batch, q, start, query_out)
            } else if !self.plan.fold(w, q, threads) {
                Err(OutOfRange::Fold)
            } else if threads == 1 {
                score_range(w, &self.plan, &mut self.scratch[0], batch, q, start, query_out)
            } else {
                {
                    while self.scratch.len() < threads {
                        self.scratch.push(BlockScratch::new(w));
                    }
                    let plan = &self.plan;
                    // Shares in whole tiles, so no tile straddles two threads.
                    let share = k.div_ceil(threads).div_ceil(w.tile.mr) * w.tile.mr;
                    std::thread::scope(|scope| {
                        let mut parts = query_out.chunks_mut(share).zip(self.scratch.iter_mut()).enumerate();
                        // The calling thread takes the first share itself.
                        let (_, (first_out, first_scratch)) = parts.next().expect("at least one share");
                        for (i, (part, scratch)) in parts {
                            scope.spawn(move || {
                                if let Err(failure) = score_range(w, plan, scratch, batch, q, start + i * share, part) {
                                    scratch.out_of_range = Some(failure);
                                }
                            });
                        }
                        if let Err(failure) = score_range(w, plan, first_scratch, batch, q, start, first_out) {
                            first_scratch.out_of_range = Some(failure);
                        }
                    });
                }
                self.scratch[..threads].iter().find_map(|s| s.out_of_range).map_or(Ok(()), Err)
            };
            if let Err(failure) = scored {
                return Err(out_of_range(failure, E::PRECISION, qi, start));
            }
            start += k;
        }
        Ok(())
    }
}
