//! The reference engine: SPEC §3 written out literally, one pair at a time, in f32.
//! Obviously correct rather than fast; the fast engines are tested against it.

use super::{hidden_layer_overflow, Engine, EngineKind, PairRaw, Precision};
use crate::batch::Batch;
use crate::error::Result;
use crate::model::{Activation, Adapter, Similarity};
use crate::workers::Workers;

pub(crate) struct ReferenceEngine {
    /// The query and the candidate widened to f32 (where they arrive as f16 or bf16).
    query: Vec<f32>,
    candidate: Vec<f32>,
    interaction: Vec<f32>,
    hidden: Vec<f32>,
    adapted: Vec<f32>,
}

impl ReferenceEngine {
    pub(crate) fn new(adapter: &Adapter) -> Self {
        ReferenceEngine {
            query: vec![0.0; adapter.dim()],
            candidate: vec![0.0; adapter.dim()],
            interaction: vec![0.0; 3 * adapter.dim()],
            hidden: vec![0.0; adapter.hidden()],
            adapted: vec![0.0; adapter.dim()],
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(crate) fn similarity(kind: Similarity, q: &[f32], x: &[f32]) -> f32 {
    match kind {
        Similarity::Dot => dot(q, x),
        Similarity::Cosine => cosine(dot(q, x), dot(q, q).sqrt(), dot(x, x).sqrt()),
    }
}

/// `dot / (‖a‖‖b‖)`, 0 when either norm is below 1e-12 (SPEC §3). A norm that overflowed f32
/// gives NaN, which the session reports as a numeric error instead of a silent 0.
pub(crate) fn cosine(dot: f32, norm_a: f32, norm_b: f32) -> f32 {
    if !(norm_a.is_finite() && norm_b.is_finite()) {
        f32::NAN
    } else if norm_a < 1e-12 || norm_b < 1e-12 {
        0.0
    } else {
        dot / (norm_a * norm_b)
    }
}

pub(crate) fn activate(kind: Activation, x: f32) -> f32 {
    match kind {
        Activation::Relu => x.max(0.0),
        Activation::Gelu => crate::linalg::gelu(x),
        Activation::GeluTanh => {
            const C: f32 = 0.797_884_6; // √(2/π)
            0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
    }
}

// Indexed loops on purpose: this engine mirrors SPEC §3's subscripts one to one.
#[allow(clippy::needless_range_loop)]
impl Engine for ReferenceEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Reference
    }

    /// Single-threaded whatever the workers: this engine is the plain statement of the math.
    fn forward(
        &mut self,
        adapter: &Adapter,
        batch: &Batch<'_>,
        first_query: usize,
        out: &mut [PairRaw],
        _: &mut Workers,
    ) -> Result<()> {
        let (d, h) = (adapter.dim(), adapter.hidden());
        let w = adapter.weights();
        let config = adapter.config();
        let mut pair = 0;
        for (qi, &k) in batch.candidate_counts.iter().enumerate() {
            let q = batch.query(qi).as_f32(&mut self.query);
            for _ in 0..k {
                let c = batch.candidate(pair).as_f32(&mut self.candidate);
                let (diff, rest) = self.interaction.split_at_mut(d);
                let (prod, sum) = rest.split_at_mut(d);
                for t in 0..d {
                    diff[t] = q[t] - c[t];
                    prod[t] = q[t] * c[t];
                    sum[t] = q[t] + c[t];
                }
                for j in 0..h {
                    let pre = dot(&w.fc1_weight[j * 3 * d..][..3 * d], &self.interaction) + w.fc1_bias[j];
                    if !pre.is_finite() {
                        return Err(hidden_layer_overflow(Precision::F32, first_query + qi));
                    }
                    self.hidden[j] = activate(config.activation, pre);
                }
                for t in 0..d {
                    let delta = dot(&w.fc2_weight[t * h..][..h], &self.hidden) + w.fc2_bias[t];
                    self.adapted[t] = c[t] + delta;
                }
                let mut logits = [0.0f32; 4];
                for (class, logit) in logits.iter_mut().enumerate() {
                    *logit = dot(&w.classifier_weight[class * h..][..h], &self.hidden) + w.classifier_bias[class];
                }
                out[pair] = PairRaw {
                    sim_adapted: similarity(config.similarity, q, &self.adapted),
                    sim_candidate: similarity(config.similarity, q, c),
                    logits,
                };
                pair += 1;
            }
        }
        Ok(())
    }
}
