//! The folded CPU engine: SPEC §8's identities on blocked f32 GEMMs.
//!
//! Layer 1 for every candidate of a query is one `[k × d] · [d × h]` product with the query
//! folded into the weights (`M_q = (W_c − W_a) + W_b·diag(q)`, built once per query), instead
//! of the literal `[h × 3d]` product per pair: a third of the flops. The same product yields
//! `q·c` from one extra column. For dot similarity layer 2 collapses to a length-h dot product
//! (`q·a = q·c + u_q·hid + q·b₂`, `u_q = W₂ᵀq`), which rides along the classifier as a fifth
//! output column; cosine keeps the full layer 2 to get `‖a‖`.

use super::reference::{activate, cosine};
use super::{Engine, EngineKind, PairRaw};
use crate::batch::{Batch, Candidates};
use crate::error::Result;
use crate::model::{Activation, Adapter, Similarity};
use std::sync::Arc;

/// Candidates per GEMM call: large enough to amortise packing, small enough that a block's
/// hidden activations (`BLOCK × h` floats) stay in L2.
const BLOCK: usize = 256;

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

/// One thread's engine: the shared weights and this thread's scratch.
pub(crate) struct FoldedEngine {
    w: Arc<FoldedWeights>,
    /// Per query: `[d × (h + 1)]`, columns `M_qᵀ` then `q`.
    layer1: Vec<f32>,
    /// Per query: `v_q = (W_a + W_c)·q + b₁`.
    layer1_bias: Vec<f32>,
    /// `[h × 5]`: the classifier rows as columns, then this query's `u_q` (dot similarity only).
    heads: Vec<f32>,
    /// Gathered candidate rows when they are not one strided matrix.
    gathered: Vec<f32>,
    /// `[BLOCK × (h + 1)]`: hidden pre-activations, then `q·c`.
    hidden_block: Vec<f32>,
    /// `[BLOCK × 5]`: classifier logits, then `u_q·hid`.
    head_block: Vec<f32>,
    /// `[BLOCK × d]`: `Δc` (cosine only).
    delta_block: Vec<f32>,
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

impl FoldedEngine {
    pub(crate) fn new(w: Arc<FoldedWeights>) -> Self {
        let (d, h) = (w.dim, w.hidden);
        FoldedEngine {
            layer1: vec![0.0; d * (h + 1)],
            layer1_bias: vec![0.0; h],
            heads: w.heads.clone(),
            gathered: Vec::new(),
            hidden_block: vec![0.0; BLOCK * (h + 1)],
            head_block: vec![0.0; BLOCK * 5],
            delta_block: match w.similarity {
                Similarity::Dot => Vec::new(),
                Similarity::Cosine => vec![0.0; BLOCK * d],
            },
            w,
        }
    }

    /// Folds query `q` into the layer-1 weights and the dot-similarity head.
    fn fold_query(&mut self, q: &[f32]) {
        let (d, h) = (self.w.dim, self.w.hidden);
        for (t, row) in self.layer1.chunks_exact_mut(h + 1).enumerate() {
            let (diff, prod) = (&self.w.w_diff_t[t * h..][..h], &self.w.w_prod_t[t * h..][..h]);
            for j in 0..h {
                row[j] = diff[j] + prod[j] * q[t];
            }
            row[h] = q[t];
        }
        for (j, v) in self.layer1_bias.iter_mut().enumerate() {
            *v = self.w.w_sum[j * d..][..d].iter().zip(q).map(|(w, x)| w * x).sum::<f32>() + self.w.fc1_bias[j];
        }
        if self.w.similarity == Similarity::Dot {
            // u_q = W₂ᵀ q, accumulated row by row of W₂ so the reads are contiguous.
            for j in 0..h {
                self.heads[j * 5 + 4] = 0.0;
            }
            for (t, row) in self.w.fc2.chunks_exact(h).enumerate() {
                for (j, w) in row.iter().enumerate() {
                    self.heads[j * 5 + 4] += w * q[t];
                }
            }
        }
    }

    /// Scores `rows` candidates, row `i` at `cands[i * stride..][..d]`, into `out`.
    fn score_block(&mut self, q: &[f32], q_bias: f32, q_norm: f32, cands: &[f32], stride: usize, out: &mut [PairRaw]) {
        let (d, h) = (self.w.dim, self.w.hidden);
        let rows = out.len();
        let hs = h + 1;
        // SAFETY: every matrix below lies inside its slice: `cands` holds `rows` rows of `d`
        // values `stride` apart (checked by the batch validation or built by the gather),
        // `layer1` is `d × (h + 1)`, `hidden_block` `BLOCK × (h + 1)` with rows ≤ BLOCK, and
        // the output strides do not alias.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                d,
                hs,
                1.0,
                cands.as_ptr(),
                stride as isize,
                1,
                self.layer1.as_ptr(),
                hs as isize,
                1,
                0.0,
                self.hidden_block.as_mut_ptr(),
                hs as isize,
                1,
            );
        }
        for row in self.hidden_block[..rows * hs].chunks_exact_mut(hs) {
            for (x, b) in row[..h].iter_mut().zip(&self.layer1_bias) {
                *x = activate(self.w.activation, *x + b);
            }
        }
        // SAFETY: `hidden_block` rows are `h + 1` apart and the first `h` entries are read;
        // `heads` is `h × 5`; `head_block` is `BLOCK × 5`.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                h,
                5,
                1.0,
                self.hidden_block.as_ptr(),
                hs as isize,
                1,
                self.heads.as_ptr(),
                5,
                1,
                0.0,
                self.head_block.as_mut_ptr(),
                5,
                1,
            );
        }
        if self.w.similarity == Similarity::Cosine {
            // SAFETY: `fc2` is `d × h`, read transposed as `h × d`; `delta_block` is `BLOCK × d`.
            unsafe {
                matrixmultiply::sgemm(
                    rows,
                    h,
                    d,
                    1.0,
                    self.hidden_block.as_ptr(),
                    hs as isize,
                    1,
                    self.w.fc2.as_ptr(),
                    1,
                    h as isize,
                    0.0,
                    self.delta_block.as_mut_ptr(),
                    d as isize,
                    1,
                );
            }
        }
        for (i, o) in out.iter_mut().enumerate() {
            let head = &self.head_block[i * 5..][..5];
            let q_dot_c = self.hidden_block[i * hs + h];
            let logits = [0, 1, 2, 3].map(|c| head[c] + self.w.classifier_bias[c]);
            let (sim_adapted, sim_candidate) = match self.w.similarity {
                Similarity::Dot => (q_dot_c + head[4] + q_bias, q_dot_c),
                Similarity::Cosine => {
                    let c = &cands[i * stride..][..d];
                    let delta = &self.delta_block[i * d..][..d];
                    let (mut q_dot_a, mut a_sq, mut c_sq) = (0.0f32, 0.0f32, 0.0f32);
                    for t in 0..d {
                        let a = c[t] + delta[t] + self.w.fc2_bias[t];
                        q_dot_a += q[t] * a;
                        a_sq += a * a;
                        c_sq += c[t] * c[t];
                    }
                    (cosine(q_dot_a, q_norm, a_sq.sqrt()), cosine(q_dot_c, q_norm, c_sq.sqrt()))
                }
            };
            *o = PairRaw { sim_adapted, sim_candidate, logits };
        }
    }
}

impl Engine for FoldedEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Folded
    }

    fn forward(&mut self, _adapter: &Adapter, batch: &Batch<'_>, out: &mut [PairRaw]) -> Result<()> {
        let d = self.w.dim;
        let mut start = 0;
        for (qi, &k) in batch.candidate_counts.iter().enumerate() {
            if k == 0 {
                continue;
            }
            let q = batch.query(qi);
            self.fold_query(q);
            let q_bias: f32 = q.iter().zip(&self.w.fc2_bias).map(|(a, b)| a * b).sum();
            let q_norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            for block_start in (start..start + k).step_by(BLOCK) {
                let rows = BLOCK.min(start + k - block_start);
                let block_out = &mut out[block_start..block_start + rows];
                match batch.candidates {
                    Candidates::Dense { data, row_stride } => {
                        let cands = &data[block_start * row_stride..];
                        self.score_block(q, q_bias, q_norm, cands, row_stride, block_out);
                    }
                    Candidates::ById { .. } => {
                        let mut gathered = std::mem::take(&mut self.gathered);
                        gathered.clear();
                        for i in block_start..block_start + rows {
                            gathered.extend_from_slice(batch.candidate(i));
                        }
                        self.score_block(q, q_bias, q_norm, &gathered, d, block_out);
                        self.gathered = gathered;
                    }
                }
            }
            start += k;
        }
        Ok(())
    }
}
