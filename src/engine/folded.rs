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
//! stay in L2 while the panels stream past; the tiles of one block prefetch the next block's rows.
//! Packing a candidate also checks it for NaN and ±Inf, so the session makes no pass of its own.
//!
//! Three tiers of state: [`FoldedWeights`] (from the adapter, shared by all threads),
//! [`QueryPlan`] (one query's folded weights), [`BlockScratch`] (one per thread). All of it is
//! sized at creation, so calls allocate nothing, and generic over the element type `E` of the
//! packed weights and candidates: f32, or IEEE half at f16 precision ([`super::f16`]); a value
//! that `E` cannot hold, or a sum that overflows it, is an error naming the query.

use super::reference::cosine;
use super::simd::{self, CpuKernel, Element, Epilogue, Fold, Tile, LANES};
use super::{
    candidate_out_of_range, hidden_layer_overflow, weight_out_of_range, Engine, EngineKind, PairRaw, Precision,
};
use crate::batch::Batch;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Activation, Adapter, Similarity};
use crate::session::MAX_THREADS;
use crate::values::Values;
use crate::workers::{self, Workers};
use std::ops::Range;
use std::sync::Arc;

/// Per-row sums: the four classifier logits, `u_q·hid`, then (cosine) `q·a` and `‖a‖²`.
const SUMS: usize = 7;
const U_DOT_HID: usize = 4;
const Q_DOT_A: usize = 5;
const A_SQ: usize = 6;

/// The hidden panels fall into this many groups of consecutive panels, each summing its heads
/// into sums of its own that are added only at the end. A short list can then be split between
/// threads by group with results identical to one thread's, whatever the thread count.
const PANEL_GROUPS: usize = 2;

/// Bytes of packed candidates per block: with a panel of weights beside them they stay in L2.
const BLOCK_BYTES: usize = 384 * 1024;
const MAX_BLOCK_ROWS: usize = 512;
/// Bytes of a weight panel per chunk of layer 1's reduction: half of a typical L1 data cache.
const CHUNK_BYTES: usize = 24 * 1024;

/// Fewest candidates of a long list worth a thread of their own: a few tiles, since handing a
/// share to a worker costs microseconds (measured at d = h = 768).
const MIN_ROWS_PER_THREAD: usize = 64;

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

/// `a·b` in [`LANES`] partial sums, for the query's own products.
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    simd::dot_checked(a, b).0
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
        let out_of_range = || weight_out_of_range(precision);
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

    /// The group of panel `i` (see [`PANEL_GROUPS`]).
    fn group(&self, i: usize) -> usize {
        i * PANEL_GROUPS / self.panels
    }

    /// The first panel of group `g` (`panels` for `g = PANEL_GROUPS`).
    fn group_start(&self, g: usize) -> usize {
        (g * self.panels).div_ceil(PANEL_GROUPS)
    }

    /// Cosine's layer 2 runs over panels of `NR` output dimensions, in groups too: the group
    /// of output panel `o`, and the first output panel of group `g`.
    fn output_group(&self, o: usize) -> usize {
        o * PANEL_GROUPS / self.dim.div_ceil(self.tile.nr)
    }

    fn output_group_start(&self, g: usize) -> usize {
        (g * self.dim.div_ceil(self.tile.nr)).div_ceil(PANEL_GROUPS)
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
    panels: Vec<PanelPlan<E>>,
    /// `q·b₂`.
    q_dot_bias: f32,
    q_norm: f32,
}

/// One panel of a [`QueryPlan`]: its `NR` hidden units.
struct PanelPlan<E> {
    /// `[d][NR]`: `M_qᵀ`.
    m_q: AlignedBuf<E>,
    /// `v_q = (W_a + W_c)·q + b₁`.
    v_q: Vec<f32>,
    /// `[5][NR]`: the classifier rows, then `u_q = W₂ᵀq` (zero for cosine).
    heads: Vec<f32>,
}

impl<E: Element> QueryPlan<E> {
    fn new(w: &FoldedWeights<E>) -> Self {
        let nr = w.tile.nr;
        let panels = w
            .classifier
            .chunks_exact(4 * nr)
            .map(|classifier| {
                let mut heads = vec![0.0; 5 * nr];
                heads[..4 * nr].copy_from_slice(classifier);
                PanelPlan { m_q: AlignedBuf::zeroed(w.dim * nr), v_q: vec![0.0; nr], heads }
            })
            .collect();
        QueryPlan { panels, q_dot_bias: 0.0, q_norm: 0.0 }
    }

    /// The query's scalars: `q·b₂` and `‖q‖`.
    fn fold_scalars(&mut self, w: &FoldedWeights<E>, q: &[f32]) {
        self.q_dot_bias = lane_dot(q, &w.fc2_bias);
        self.q_norm = lane_dot(q, q).sqrt();
    }

    /// Folds every panel, split between the workers: the fold streams ~4·d·h weights, which
    /// dominates a short list. `false` when `M_q` is out of `E`'s range.
    fn fold(&mut self, w: &FoldedWeights<E>, q: &[f32], workers: &mut Workers, ends: &mut Vec<usize>) -> bool {
        self.fold_scalars(w, q);
        even_shares(w.panels, workers.width().min(w.panels), ends);
        workers
            .split(&mut [(); MAX_THREADS], &mut self.panels, ends, &|share, (), panels| {
                let first = workers::part(ends, share).start;
                panels.iter_mut().enumerate().try_for_each(|(i, panel)| fold_panel(w, q, first + i, panel))
            })
            .is_ok()
    }
}

/// Cuts `n` items into `shares` consecutive shares of nearly equal size, as the ends that
/// [`Workers::split`] takes.
fn even_shares(n: usize, shares: usize, ends: &mut Vec<usize>) {
    ends.clear();
    ends.extend((1..=shares).map(|s| n * s / shares));
}

/// Folds `q` into panel `i`: `M_q`'s columns, `v_q` and `u_q` for its `NR` hidden units.
/// Errors when an `M_q` value is out of `E`'s range.
fn fold_panel<E: Element>(
    w: &FoldedWeights<E>,
    q: &[f32],
    i: usize,
    panel: &mut PanelPlan<E>,
) -> std::result::Result<(), OutOfRange> {
    let nr = w.tile.nr;
    panel.v_q.copy_from_slice(&w.fc1_bias[i * nr..][..nr]);
    let u_q = match w.similarity {
        Similarity::Dot => &mut panel.heads[4 * nr..],
        Similarity::Cosine => &mut [],
    };
    u_q.fill(0.0);
    let in_range = w.tile.fold(Fold { weights: w.fold_weights(i), q, m: &mut panel.m_q, v: &mut panel.v_q, u: u_q });
    if in_range {
        Ok(())
    } else {
        Err(OutOfRange::Fold)
    }
}

/// What made a query unscorable at the session's precision.
#[derive(Clone, Copy, Debug)]
enum OutOfRange {
    /// The batch-wide candidate with a NaN or ±Inf.
    NotFinite(usize),
    /// The batch-wide candidate with a value beyond the element type's range.
    Candidate(usize),
    /// `M_q`, the query folded into the weights.
    Fold,
    /// A pre-activation of layer 1 (an overflow that the activation could hide).
    Layer1,
}

/// The bytes of `values`, as [`BlockScratch::layer1_panel`] prefetches them.
fn byte_range<T>(values: &[T]) -> Range<*const u8> {
    let Range { start, end } = values.as_ptr_range();
    start.cast()..end.cast()
}

/// One thread's working memory for a block of candidates.
struct BlockScratch<E> {
    /// The block's candidates packed for the tile, `[tile][d][MR]`, zero past the last row.
    packed: AlignedBuf<E>,
    /// `[group][row][SUMS][LANES]`: each panel group's sums (see [`PANEL_GROUPS`]).
    sums: Vec<f32>,
    q_dot_c: Vec<f32>,
    c_sq: Vec<f32>,
    /// Each tile's output, `[tile][MR × NR]`.
    tile_out: Vec<f32>,
    /// Cosine: the block's hidden activations packed for layer 2's tile, `[tile][panels·NR][MR]`.
    hidden: Vec<E>,
    /// The first thing out of range since the last [`BlockScratch::pack`].
    out_of_range: Option<OutOfRange>,
    /// Four candidates widened to f32, where they arrive as f16 or bf16.
    widened: Vec<f32>,
}

impl<E: Element> BlockScratch<E> {
    fn new(w: &FoldedWeights<E>) -> Self {
        let (rows, nr) = (w.block_rows, w.tile.nr);
        BlockScratch {
            packed: AlignedBuf::zeroed(rows * w.dim),
            sums: vec![0.0; PANEL_GROUPS * rows * SUMS * LANES],
            q_dot_c: vec![0.0; rows],
            c_sq: vec![0.0; rows],
            tile_out: vec![0.0; rows * nr],
            hidden: match w.similarity {
                Similarity::Dot => Vec::new(),
                Similarity::Cosine => vec![E::default(); rows * w.panels * nr],
            },
            out_of_range: None,
            widened: vec![0.0; 4 * w.dim],
        }
    }

    /// Packs the batch's candidates `first..first + n` (at most a block) and clears the sums.
    fn pack(&mut self, w: &FoldedWeights<E>, q: &[f32], batch: &Batch<'_>, first: usize, n: usize) {
        let (d, mr) = (w.dim, w.tile.mr);
        self.out_of_range = None;
        for (t, tile) in self.packed[..n.div_ceil(mr) * mr * d].chunks_exact_mut(mr * d).enumerate() {
            let present = mr.min(n - t * mr);
            // Groups of four rows (as f32, widened into `widened` where they are f16 or bf16),
            // each checked and dotted with the query, then placed four at a time while whole
            // groups fill the tile, the rest one by one, then zeros.
            let mut r = 0;
            while r < present {
                let group = (present - r).min(4);
                let mut slots = self.widened.chunks_exact_mut(d);
                let rows: [&[f32]; 4] = std::array::from_fn(|j| {
                    let slot = slots.next().expect("four rows of widening space");
                    if j < group {
                        batch.candidate(first + t * mr + r + j).as_f32(slot)
                    } else {
                        &[]
                    }
                });
                for (j, c) in rows[..group].iter().enumerate() {
                    let i = t * mr + r + j;
                    let finite;
                    (self.q_dot_c[i], finite) = w.tile.dot_checked(q, c);
                    if !finite {
                        self.out_of_range.get_or_insert(OutOfRange::NotFinite(first + i));
                    }
                    if w.similarity == Similarity::Cosine {
                        self.c_sq[i] = w.tile.dot_checked(c, c).0;
                    }
                }
                let placed = if group == 4 && r + 4 <= mr / 4 * 4 {
                    E::scatter4(&mut tile[r..], mr, rows)
                } else {
                    rows[..group].iter().enumerate().all(|(j, c)| E::scatter(&mut tile[r + j..], mr, c))
                };
                if !placed {
                    let bad = (0..group).find(|&j| rows[j].iter().any(|&x| E::from_f32(x).is_none())).unwrap_or(0);
                    self.out_of_range.get_or_insert(OutOfRange::Candidate(first + t * mr + r + bad));
                }
                r += group;
            }
            for r in present..mr {
                (0..d).for_each(|p| tile[p * mr + r] = E::default());
            }
        }
        for group in self.sums.chunks_exact_mut(w.block_rows * SUMS * LANES) {
            group[..n * SUMS * LANES].fill(0.0);
        }
    }

    /// Layer 1 of hidden panel `i` for the block's `n` rows, with the epilogue: bias,
    /// activation, then the heads summed into `sums` (and, for cosine, the hidden values kept).
    /// Meanwhile the tiles bring what comes next into L2, so that it does not wait on memory:
    /// each step of a tile prefetches the next cache line of `prefetch` (the weights the next
    /// panel folds from, read straight after) and moves its start past it, and after each tile
    /// the lines of the next row of `prefetch_rows` (the next block's candidates, read later,
    /// dense or by id) are asked for.
    fn layer1_panel(
        &mut self,
        w: &FoldedWeights<E>,
        n: usize,
        i: usize,
        PanelPlan { m_q, v_q, heads }: &PanelPlan<E>,
        prefetch: &mut Range<*const u8>,
        prefetch_rows: &mut dyn Iterator<Item = Values<'_>>,
    ) {
        let (d, Tile { mr, nr, .. }) = (w.dim, w.tile);
        let hidden_row = w.panels * nr;
        let tiles = n.div_ceil(mr);
        let sums = &mut self.sums[w.group(i) * w.block_rows * SUMS * LANES..][..w.block_rows * SUMS * LANES];
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
                    sums: &mut sums[t * mr * SUMS * LANES..][..rows * SUMS * LANES],
                    stride: SUMS * LANES,
                    rows,
                });
                let a = &self.packed[(t * d + p0) * mr..][..len * mr];
                let out = &mut self.tile_out[t * mr * nr..][..mr * nr];
                let lines = if prefetch.is_empty() {
                    std::ptr::null()
                } else {
                    let start = prefetch.start;
                    prefetch.start = start.wrapping_add((64 * len).min(prefetch.end.addr() - start.addr()));
                    start
                };
                w.tile.run(a, &m_q[p0 * nr..][..len * nr], len, out, p0 > 0, epilogue.as_mut(), lines);
                if let Some(row) = prefetch_rows.next() {
                    row.prefetch_l2();
                }
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

    /// Cosine's full layer 2, `a = c + W₂·hid + b₂`, on the same tile, summing `q·a` and `‖a‖²`
    /// of the output panels `outputs` into their groups' sums.
    fn layer2(&mut self, w: &FoldedWeights<E>, q: &[f32], n: usize, outputs: std::ops::Range<usize>) {
        let (d, h, Tile { mr, nr, .. }) = (w.dim, w.hidden, w.tile);
        let hidden_row = w.panels * nr;
        for o in outputs {
            let fc2 = &w.fc2_by_output[o * h * nr..][..h * nr];
            let group = w.output_group(o) * w.block_rows;
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
                    let sums = &mut self.sums[(group + t * mr + r) * SUMS * LANES..][..SUMS * LANES];
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

    /// Takes the sums of panel group `g` for the block's first `n` rows from `other`, which
    /// scored the same block.
    fn take_group(&mut self, other: &Self, w: &FoldedWeights<E>, g: usize, n: usize) {
        let range = g * w.block_rows * SUMS * LANES..;
        self.sums[range.clone()][..n * SUMS * LANES].copy_from_slice(&other.sums[range][..n * SUMS * LANES]);
    }

    /// Takes the hidden activations of panels `panels` for the block's first `n` rows from
    /// `other`, which scored them (cosine's layer 2 needs every panel's).
    fn take_hidden(&mut self, other: &Self, w: &FoldedWeights<E>, panels: std::ops::Range<usize>, n: usize) {
        let (mr, nr) = (w.tile.mr, w.tile.nr);
        for t in 0..n.div_ceil(mr) {
            let range = (t * w.panels + panels.start) * nr * mr..(t * w.panels + panels.end) * nr * mr;
            self.hidden[range.clone()].copy_from_slice(&other.hidden[range]);
        }
    }

    /// Cosine's layer 2 (all of it), then the block's per-pair results.
    fn finish(&mut self, w: &FoldedWeights<E>, plan: &QueryPlan<E>, q: &[f32], out: &mut [PairRaw]) {
        if w.similarity == Similarity::Cosine {
            self.layer2(w, q, out.len(), 0..w.dim.div_ceil(w.tile.nr));
        }
        self.results(w, plan, out);
    }

    /// Turns the block's sums into per-pair results.
    fn results(&self, w: &FoldedWeights<E>, plan: &QueryPlan<E>, out: &mut [PairRaw]) {
        let groups: [&[f32]; PANEL_GROUPS] =
            std::array::from_fn(|g| &self.sums[g * w.block_rows * SUMS * LANES..][..out.len() * SUMS * LANES]);
        for (i, o) in out.iter_mut().enumerate() {
            // Group by group, in order, so that the result does not depend on who summed them.
            let sum = |s: usize| groups.iter().flat_map(|g| &g[(i * SUMS + s) * LANES..][..LANES]).sum::<f32>();
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
    let end = first + out.len();
    for (b, block_out) in out.chunks_mut(w.block_rows).enumerate() {
        let start = first + b * w.block_rows;
        let n = block_out.len();
        s.pack(w, q, batch, start, n);
        // The next block's candidates come from memory while this block computes.
        let next = start + n..(start + n + w.block_rows).min(end);
        let mut next_rows = next.map(|i| batch.candidate(i));
        for i in 0..w.panels {
            s.layer1_panel(w, n, i, &plan.panels[i], &mut byte_range::<E>(&[]), &mut next_rows);
        }
        s.finish(w, plan, q, block_out);
        if let Some(failure) = s.out_of_range {
            return Err(failure);
        }
    }
    Ok(())
}

/// Folds and scores panels `first_panel..` (as many as `panels` holds) for a list of at most one
/// block, each panel folded just before the tile uses it, while it is still in cache. Leaves
/// the heads' sums in `s`.
#[allow(clippy::too_many_arguments)]
fn fold_and_score_panels<E: Element>(
    w: &FoldedWeights<E>,
    panels: &mut [PanelPlan<E>],
    first_panel: usize,
    s: &mut BlockScratch<E>,
    batch: &Batch<'_>,
    q: &[f32],
    first: usize,
    n: usize,
) -> std::result::Result<(), OutOfRange> {
    debug_assert!(n <= w.block_rows);
    s.pack(w, q, batch, first, n);
    let count = panels.len();
    for (j, panel) in panels.iter_mut().enumerate() {
        let i = first_panel + j;
        // A bad candidate is the more useful error than the fold it overflowed.
        fold_panel(w, q, i, panel).map_err(|fold| s.out_of_range.unwrap_or(fold))?;
        let next = if j + 1 < count { w.fold_weights(i + 1) } else { &[] };
        s.layer1_panel(w, n, i, panel, &mut byte_range(next), &mut std::iter::empty());
    }
    s.out_of_range.map_or(Ok(()), Err)
}

/// The error for a query that could not be scored at `precision`; `start` is its first
/// candidate's batch-wide index.
fn out_of_range(failure: OutOfRange, precision: Precision, query: usize, start: usize) -> Error {
    match failure {
        OutOfRange::NotFinite(i) => Error::new(
            ErrorKind::NonFiniteInput,
            format!("candidates: query {query}, position {}: a value is NaN or infinite", i - start),
        ),
        OutOfRange::Candidate(i) => candidate_out_of_range(precision, query, i - start),
        OutOfRange::Fold => Error::new(
            ErrorKind::Numeric,
            format!("query {query}: folding it into the weights overflowed {}", precision.range()),
        ),
        OutOfRange::Layer1 => hidden_layer_overflow(precision, query),
    }
}

/// One session thread's engine: the shared weights, a query plan, and block scratch for itself
/// and for the workers it may share a query with.
pub(crate) struct FoldedEngine<E> {
    w: Arc<FoldedWeights<E>>,
    plan: QueryPlan<E>,
    /// One per thread that has shared a query so far.
    scratch: Vec<BlockScratch<E>>,
    /// Where each thread's share ends, for [`Workers::split`].
    ends: Vec<usize>,
    /// The query widened to f32, where it arrives as f16 or bf16.
    query: Vec<f32>,
}

impl<E: Element> FoldedEngine<E> {
    pub(crate) fn new(w: Arc<FoldedWeights<E>>) -> Self {
        FoldedEngine {
            plan: QueryPlan::new(&w),
            scratch: vec![BlockScratch::new(&w)],
            ends: Vec::new(),
            query: vec![0.0; w.dim],
            w,
        }
    }

    /// Scores one query's list, the batch-wide candidates `first..first + out.len()`, sharing
    /// it with the workers as its length makes worthwhile.
    fn score_query(
        &mut self,
        batch: &Batch<'_>,
        q: &[f32],
        first: usize,
        out: &mut [PairRaw],
        workers: &mut Workers,
    ) -> std::result::Result<(), OutOfRange> {
        while self.scratch.len() < workers.width() {
            self.scratch.push(BlockScratch::new(&self.w));
        }
        if out.len() <= self.w.block_rows {
            self.score_short(batch, q, first, out, workers)
        } else {
            self.score_long(batch, q, first, out, workers)
        }
    }

    /// A list of at most one block, shared by panel group: each thread folds its own panels
    /// (the fold is most of a short list's work; on two cores each keeps its half of the
    /// weights in its own L2) and scores every candidate on them. Worth it down to k = 1.
    fn score_short(
        &mut self,
        batch: &Batch<'_>,
        q: &[f32],
        first: usize,
        out: &mut [PairRaw],
        workers: &mut Workers,
    ) -> std::result::Result<(), OutOfRange> {
        let (w, k) = (&*self.w, out.len());
        let shares = workers.width().min(PANEL_GROUPS);
        let shares = if w.panels >= shares { shares } else { 1 };
        self.plan.fold_scalars(w, q);
        if shares == 1 {
            fold_and_score_panels(w, &mut self.plan.panels, 0, &mut self.scratch[0], batch, q, first, k)?;
            self.scratch[0].finish(w, &self.plan, q, out);
            return Ok(());
        }
        // Share `s` takes the panel groups `group(s)..group(s + 1)`.
        let group = |s: usize| s * PANEL_GROUPS / shares;
        self.ends.clear();
        self.ends.extend((1..=shares).map(|s| w.group_start(group(s))));
        let ends = &self.ends;
        let scratch = &mut self.scratch[..shares];
        workers.split(scratch, &mut self.plan.panels, ends, &|share, s, panels| {
            fold_and_score_panels(w, panels, workers::part(ends, share).start, s, batch, q, first, k)
        })?;
        if w.similarity == Similarity::Cosine {
            // Layer 2 needs every hidden panel: each thread takes the others', then sums its
            // own groups of output panels.
            for (a, b) in (0..shares).flat_map(|a| (0..shares).map(move |b| (a, b))).filter(|(a, b)| a != b) {
                let (low, high) = scratch.split_at_mut(a.max(b));
                let (to, from) = if a < b { (&mut low[a], &high[0]) } else { (&mut high[0], &low[b]) };
                to.take_hidden(from, w, workers::part(ends, b), k);
            }
            workers.for_each(scratch, &|share, s| {
                s.layer2(w, q, k, w.output_group_start(group(share))..w.output_group_start(group(share + 1)));
                Ok::<(), OutOfRange>(())
            })?;
        }
        let (head, others) = scratch.split_first_mut().expect("a scratch per share");
        for (s, other) in (1..shares).zip(others) {
            (group(s)..group(s + 1)).for_each(|g| head.take_group(other, w, g, k));
        }
        head.results(w, &self.plan, out);
        Ok(())
    }

    /// A longer list: every thread helps fold, then scores its own candidates block by block.
    fn score_long(
        &mut self,
        batch: &Batch<'_>,
        q: &[f32],
        first: usize,
        out: &mut [PairRaw],
        workers: &mut Workers,
    ) -> std::result::Result<(), OutOfRange> {
        let (w, k) = (&*self.w, out.len());
        if !self.plan.fold(w, q, workers, &mut self.ends) {
            return Err(OutOfRange::Fold);
        }
        let threads = workers.width().min(k / MIN_ROWS_PER_THREAD).max(1);
        // Shares in whole tiles, so no tile straddles two threads.
        let share = k.div_ceil(threads).div_ceil(w.tile.mr) * w.tile.mr;
        self.ends.clear();
        self.ends.extend((1..=threads).map(|t| (t * share).min(k)));
        let (plan, ends) = (&self.plan, &self.ends);
        workers.split(&mut self.scratch, out, ends, &|share, s, part| {
            score_range(w, plan, s, batch, q, first + workers::part(ends, share).start, part)
        })
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

    fn checks_candidates(&self) -> bool {
        true
    }

    fn forward(
        &mut self,
        _adapter: &Adapter,
        batch: &Batch<'_>,
        first_query: usize,
        out: &mut [PairRaw],
        workers: &mut Workers,
    ) -> Result<()> {
        let mut start = 0;
        // Moved out for the call, which borrows the engine mutably; moving a Vec allocates nothing.
        let mut query_buf = std::mem::take(&mut self.query);
        let mut scored = Ok(());
        for (query, &k) in batch.candidate_counts.iter().enumerate() {
            if k > 0 {
                let q = batch.query(query).as_f32(&mut query_buf);
                scored = self
                    .score_query(batch, q, start, &mut out[start..start + k], workers)
                    .map_err(|failure| out_of_range(failure, E::PRECISION, first_query + query, start));
                if scored.is_err() {
                    break;
                }
            }
            start += k;
        }
        self.query = query_buf;
        scored
    }
}
