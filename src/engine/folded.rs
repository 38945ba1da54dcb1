//! The folded CPU engine: SPEC §8's identities on blocked f32 GEMMs.
//!
//! Layer 1 for every candidate of a query is one `[k × d] · [d × h]` product with the query
//! folded into the weights (`M_q = (W_c − W_a) + W_b·diag(q)`, built once per query), instead
//! of the literal `[h × 3d]` product per pair: a third of the flops. The same product yields
//! `q·c` from one extra column. For dot similarity layer 2 collapses to a length-h dot product
//! (`q·a = q·c + u_q·hid + q·b₂`, `u_q = W₂ᵀq`), which rides along the classifier as a fifth
//! output column; cosine keeps the full layer 2 to get `‖a‖`.
//!
//! Three tiers of state: [`FoldedWeights`] (from the adapter, shared by all threads),
//! [`QueryPlan`] (one query's folded weights, shared read-only by the threads scoring its
//! candidates), [`BlockScratch`] (one per thread).

use super::reference::{activate, cosine};
use super::{Engine, EngineKind, PairRaw};
use crate::batch::{Batch, Candidates};
use crate::error::Result;
use crate::linalg::gemm;
use crate::model::{Activation, Adapter, Similarity};
use std::sync::Arc;

/// Candidates per GEMM call: large enough to amortise packing, small enough that a block's
/// hidden activations (`BLOCK × h` floats) stay in L2.
const BLOCK: usize = 256;

/// Fewest candidates worth a thread of their own within one query: below this, starting the
/// thread costs more than it saves.
const MIN_ROWS_PER_THREAD: usize = 32;

/// What the engine precomputes from an adapter once; shared by every thread's engine.
pub(crate) struct FoldedWeights {
    dim: usize,
    hidden: usize,
    activation: Activation,
    similarity: Similarity,
    /// `(W_c − W_a)ᵀ`, `[d × h]`.
    w_diff_t: Vec<f32>,
    /// `W_bᵀ`, `[d × h]`.
    w_prod_t: Vec<f32>,
    /// `W_a + W_c`, `[h × d]`.
    w_sum: Vec<f32>,
    fc1_bias: Vec<f32>,
    /// `fc2.weight`, `[d × h]`.
    fc2: Vec<f32>,
    fc2_bias: Vec<f32>,
    /// `[h × 5]`: the classifier rows as columns; column 4 is left for `u_q`.
    heads: Vec<f32>,
    classifier_bias: [f32; 4],
}

impl FoldedWeights {
    pub(crate) fn new(adapter: &Adapter) -> Arc<Self> {
        let (d, h) = (adapter.dim(), adapter.hidden());
        let w = adapter.weights();
        // fc1.weight row j is [W_a | W_b | W_c] row j.
        let part = |j: usize, p: usize, t: usize| w.fc1_weight[j * 3 * d + p * d + t];
        let mut w_diff_t = vec![0.0; d * h];
        let mut w_prod_t = vec![0.0; d * h];
        let mut w_sum = vec![0.0; h * d];
        for j in 0..h {
            for t in 0..d {
                w_diff_t[t * h + j] = part(j, 2, t) - part(j, 0, t);
                w_prod_t[t * h + j] = part(j, 1, t);
                w_sum[j * d + t] = part(j, 0, t) + part(j, 2, t);
            }
        }
        let mut heads = vec![0.0; h * 5];
        for class in 0..4 {
            for j in 0..h {
                heads[j * 5 + class] = w.classifier_weight[class * h + j];
            }
        }
        let config = adapter.config();
        Arc::new(FoldedWeights {
            dim: d,
            hidden: h,
            activation: config.activation,
            similarity: config.similarity,
            w_diff_t,
            w_prod_t,
            w_sum,
            fc1_bias: w.fc1_bias.clone(),
            fc2: w.fc2_weight.clone(),
            fc2_bias: w.fc2_bias.clone(),
            heads,
            classifier_bias: [w.classifier_bias[0], w.classifier_bias[1], w.classifier_bias[2], w.classifier_bias[3]],
        })
    }
}

/// One query folded into the weights.
struct QueryPlan {
    /// `[d × (h + 1)]`: columns `M_qᵀ`, then `q`.
    layer1: Vec<f32>,
    /// `v_q = (W_a + W_c)·q + b₁`.
    layer1_bias: Vec<f32>,
    /// `[h × 5]`: the classifier rows as columns, then `u_q` (dot similarity only).
    heads: Vec<f32>,
    /// `q·b₂`.
    q_dot_bias: f32,
    q_norm: f32,
}

impl QueryPlan {
    fn new(w: &FoldedWeights) -> Self {
        QueryPlan {
            layer1: vec![0.0; w.dim * (w.hidden + 1)],
            layer1_bias: vec![0.0; w.hidden],
            heads: w.heads.clone(),
            q_dot_bias: 0.0,
            q_norm: 0.0,
        }
    }

    /// Folds `q` into the plan, on up to `threads` threads: the fold streams ~4·d·h weights,
    /// which dominates a short list.
    fn fold(&mut self, w: &FoldedWeights, q: &[f32], threads: usize) {
        let (d, h) = (w.dim, w.hidden);
        // Thread i builds layer-1 rows t ∈ [i·d/T, (i+1)·d/T) and the entries j ∈ [i·h/T, (i+1)·h/T)
        // of v_q and u_q: exactly T disjoint, non-empty parts of the plan.
        let threads = threads.clamp(1, d.min(h));
        let (mut layer1, mut bias, mut heads) = (&mut self.layer1[..], &mut self.layer1_bias[..], &mut self.heads[..]);
        let parts = (0..threads).map(move |i| {
            let (t0, t1) = (i * d / threads, (i + 1) * d / threads);
            let (j0, j1) = (i * h / threads, (i + 1) * h / threads);
            let (l, rest) = std::mem::take(&mut layer1).split_at_mut((t1 - t0) * (h + 1));
            layer1 = rest;
            let (b, rest) = std::mem::take(&mut bias).split_at_mut(j1 - j0);
            bias = rest;
            let (hd, rest) = std::mem::take(&mut heads).split_at_mut((j1 - j0) * 5);
            heads = rest;
            FoldPart { t0, j0, layer1: l, bias: b, heads: hd }
        });
        if threads == 1 {
            parts.for_each(|part| part.fold(w, q));
        } else {
            std::thread::scope(|scope| {
                let mut parts = parts;
                let first = parts.next();
                for part in parts {
                    scope.spawn(move || part.fold(w, q));
                }
                first.into_iter().for_each(|part| part.fold(w, q));
            });
        }
        self.q_dot_bias = q.iter().zip(&w.fc2_bias).map(|(a, b)| a * b).sum();
        self.q_norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    }
}

/// A disjoint part of a [`QueryPlan`] for one thread to fold.
struct FoldPart<'a> {
    /// First layer-1 row (`t`) and first hidden unit (`j`) of this part.
    t0: usize,
    j0: usize,
    /// Rows `t0..` of `layer1` (`h + 1` values each).
    layer1: &'a mut [f32],
    /// Entries `j0..` of `v_q`.
    bias: &'a mut [f32],
    /// Rows `j0..` of `heads` (5 values each).
    heads: &'a mut [f32],
}

impl FoldPart<'_> {
    fn fold(self, w: &FoldedWeights, q: &[f32]) {
        let (d, h) = (w.dim, w.hidden);
        for (r, row) in self.layer1.chunks_exact_mut(h + 1).enumerate() {
            let t = self.t0 + r;
            let (diff, prod) = (&w.w_diff_t[t * h..][..h], &w.w_prod_t[t * h..][..h]);
            for j in 0..h {
                row[j] = diff[j] + prod[j] * q[t];
            }
            row[h] = q[t];
        }
        for (i, v) in self.bias.iter_mut().enumerate() {
            let j = self.j0 + i;
            *v = w.w_sum[j * d..][..d].iter().zip(q).map(|(a, x)| a * x).sum::<f32>() + w.fc1_bias[j];
        }
        if w.similarity == Similarity::Dot {
            // u_q = W₂ᵀ q for this part's j, accumulated row by row of W₂ so reads are contiguous.
            let cols = self.bias.len();
            let mut u = [0.0f32; 64];
            for j_start in (0..cols).step_by(u.len()) {
                let n = u.len().min(cols - j_start);
                u[..n].fill(0.0);
                for (t, row) in w.fc2.chunks_exact(h).enumerate() {
                    let row = &row[self.j0 + j_start..][..n];
                    for (acc, x) in u[..n].iter_mut().zip(row) {
                        *acc += x * q[t];
                    }
                }
                for (i, value) in u[..n].iter().enumerate() {
                    self.heads[(j_start + i) * 5 + 4] = *value;
                }
            }
        }
    }
}

/// One thread's working memory for a block of candidates.
struct BlockScratch {
    /// Gathered candidate rows when they are not one strided matrix.
    gathered: Vec<f32>,
    /// `[BLOCK × (h + 1)]`: hidden pre-activations, then `q·c`.
    hidden: Vec<f32>,
    /// `[BLOCK × 5]`: classifier logits, then `u_q·hid`.
    heads: Vec<f32>,
    /// `[BLOCK × d]`: `Δc` (cosine only).
    delta: Vec<f32>,
}

impl BlockScratch {
    fn new(w: &FoldedWeights) -> Self {
        BlockScratch {
            gathered: Vec::new(),
            hidden: vec![0.0; BLOCK * (w.hidden + 1)],
            heads: vec![0.0; BLOCK * 5],
            delta: match w.similarity {
                Similarity::Dot => Vec::new(),
                Similarity::Cosine => vec![0.0; BLOCK * w.dim],
            },
        }
    }
}

/// Scores candidates `cands` (row `i` at `cands[i * stride..][..d]`) of the query `plan` was
/// folded from into `out`, one block at most.
fn score_block(
    w: &FoldedWeights,
    plan: &QueryPlan,
    s: &mut BlockScratch,
    q: &[f32],
    cands: &[f32],
    stride: usize,
    out: &mut [PairRaw],
) {
    let (d, h) = (w.dim, w.hidden);
    let rows = out.len();
    let hs = h + 1;
    gemm(rows, d, hs, cands, (stride, 1), &plan.layer1, (hs, 1), &mut s.hidden, hs);
    for row in s.hidden[..rows * hs].chunks_exact_mut(hs) {
        for (x, b) in row[..h].iter_mut().zip(&plan.layer1_bias) {
            *x = activate(w.activation, *x + b);
        }
    }
    // Reads the first h columns of each hidden row: classifier logits and u_q·hid.
    gemm(rows, h, 5, &s.hidden, (hs, 1), &plan.heads, (5, 1), &mut s.heads, 5);
    if w.similarity == Similarity::Cosine {
        // Δc = hid · W₂ᵀ, with W₂ (d × h) read transposed.
        gemm(rows, h, d, &s.hidden, (hs, 1), &w.fc2, (1, h), &mut s.delta, d);
    }
    for (i, o) in out.iter_mut().enumerate() {
        let head = &s.heads[i * 5..][..5];
        let q_dot_c = s.hidden[i * hs + h];
        let logits = [0, 1, 2, 3].map(|c| head[c] + w.classifier_bias[c]);
        let (sim_adapted, sim_candidate) = match w.similarity {
            Similarity::Dot => (q_dot_c + head[4] + plan.q_dot_bias, q_dot_c),
            Similarity::Cosine => {
                let c = &cands[i * stride..][..d];
                let delta = &s.delta[i * d..][..d];
                let (mut q_dot_a, mut a_sq, mut c_sq) = (0.0f32, 0.0f32, 0.0f32);
                for t in 0..d {
                    let a = c[t] + delta[t] + w.fc2_bias[t];
                    q_dot_a += q[t] * a;
                    a_sq += a * a;
                    c_sq += c[t] * c[t];
                }
                (cosine(q_dot_a, plan.q_norm, a_sq.sqrt()), cosine(q_dot_c, plan.q_norm, c_sq.sqrt()))
            }
        };
        *o = PairRaw { sim_adapted, sim_candidate, logits };
    }
}

/// Scores the batch-wide candidates `first..first + out.len()`, all of one query, block by block.
fn score_range(
    w: &FoldedWeights,
    plan: &QueryPlan,
    s: &mut BlockScratch,
    batch: &Batch<'_>,
    q: &[f32],
    first: usize,
    out: &mut [PairRaw],
) {
    for (b, block_out) in out.chunks_mut(BLOCK).enumerate() {
        let start = first + b * BLOCK;
        match batch.candidates {
            Candidates::Dense { data, row_stride } => {
                score_block(w, plan, s, q, &data[start * row_stride..], row_stride, block_out);
            }
            Candidates::ById { .. } => {
                let mut gathered = std::mem::take(&mut s.gathered);
                gathered.clear();
                for i in start..start + block_out.len() {
                    gathered.extend_from_slice(batch.candidate(i));
                }
                score_block(w, plan, s, q, &gathered, w.dim, block_out);
                s.gathered = gathered;
            }
        }
    }
}

/// One session thread's engine: the shared weights, a query plan, and block scratch for itself
/// and for the helper threads it may start within one query.
pub(crate) struct FoldedEngine {
    w: Arc<FoldedWeights>,
    plan: QueryPlan,
    scratch: Vec<BlockScratch>,
}

impl FoldedEngine {
    pub(crate) fn new(w: Arc<FoldedWeights>) -> Self {
        FoldedEngine { plan: QueryPlan::new(&w), scratch: vec![BlockScratch::new(&w)], w }
    }
}

impl Engine for FoldedEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Folded
    }

    fn forward(&mut self, _adapter: &Adapter, batch: &Batch<'_>, out: &mut [PairRaw], width: usize) -> Result<()> {
        let mut start = 0;
        for (qi, &k) in batch.candidate_counts.iter().enumerate() {
            if k == 0 {
                continue;
            }
            let q = batch.query(qi);
            self.plan.fold(&self.w, q, width);
            let query_out = &mut out[start..start + k];
            let threads = width.min(k / MIN_ROWS_PER_THREAD).max(1);
            if threads == 1 {
                score_range(&self.w, &self.plan, &mut self.scratch[0], batch, q, start, query_out);
            } else {
                while self.scratch.len() < threads {
                    self.scratch.push(BlockScratch::new(&self.w));
                }
                let (w, plan) = (&*self.w, &self.plan);
                let share = k.div_ceil(threads);
                std::thread::scope(|scope| {
                    let mut parts = query_out.chunks_mut(share).zip(self.scratch.iter_mut()).enumerate();
                    // The calling thread takes the first share itself.
                    let (_, (first_out, first_scratch)) = parts.next().expect("at least one share");
                    for (i, (part, scratch)) in parts {
                        scope.spawn(move || score_range(w, plan, scratch, batch, q, start + i * share, part));
                    }
                    score_range(w, plan, first_scratch, batch, q, start, first_out);
                });
            }
            start += k;
        }
        Ok(())
    }
}
