//! One candidate list through the adapter and back: the forward pass of SPEC §3 (dot
//! similarity) with the stage-2 loss of SPEC §7, and its exact gradient, as GEMMs over the
//! list's `k × 3d` interaction matrix.

use crate::linalg::{gemm, gemm_beta};
use crate::model::{Activation, AdapterWeights};

/// Loss weights and temperatures of SPEC §7 for one pass.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LossWeights {
    /// Per-class cross-entropy weight (TP, FN, FP, TN).
    pub class: [f32; 4],
    /// β, on the linear normalization loss.
    pub norm: f32,
    /// η, on the listwise rank loss.
    pub rank: f32,
    /// τ_rank.
    pub rank_temperature: f32,
}

/// Per-list buffers, grown on demand and reused.
#[derive(Default)]
pub(crate) struct Workspace {
    z: Vec<f32>,
    pre: Vec<f32>,
    hidden: Vec<f32>,
    delta: Vec<f32>,
    logits: Vec<f32>,
    d_delta: Vec<f32>,
    d_hidden: Vec<f32>,
    d_logits: Vec<f32>,
    /// `sim(q, a_i)` of the last forward pass.
    pub sim: Vec<f32>,
}

/// The parts of a loss, each averaged as SPEC §7 defines it for one list.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct LossParts {
    pub cls: f64,
    pub norm: f64,
    pub rank: f64,
}

fn grow(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// `act(x)` and `act'(x)`.
fn activate(kind: Activation, x: f32) -> (f32, f32) {
    match kind {
        Activation::Relu => (x.max(0.0), if x > 0.0 { 1.0 } else { 0.0 }),
        Activation::Tanh => {
            let t = x.tanh();
            (t, 1.0 - t * t)
        }
        Activation::Silu => {
            let s = 1.0 / (1.0 + (-x).exp());
            (x * s, s * (1.0 + x * (1.0 - s)))
        }
        Activation::Gelu => {
            let cdf = 0.5 * (1.0 + crate::linalg::erf(x as f64 / std::f64::consts::SQRT_2) as f32);
            let density = (-0.5 * x * x).exp() * 0.398_942_3; // 1/√(2π)
            (x * cdf, cdf + x * density)
        }
        Activation::GeluTanh => {
            const C: f32 = 0.797_884_6; // √(2/π)
            let u = C * (x + 0.044715 * x * x * x);
            let t = u.tanh();
            let y = 0.5 * x * (1.0 + t);
            (y, 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * C * (1.0 + 3.0 * 0.044715 * x * x))
        }
    }
}

impl Workspace {
    /// The forward pass for one query `q` over `rows` candidates (`k × d`, gathered):
    /// fills `sim` (and the intermediates `backward` needs).
    pub fn forward(&mut self, w: &AdapterWeights, act: Activation, q: &[f32], rows: &[f32]) {
        let (d, h) = (w.dim, w.hidden);
        let k = rows.len() / d;
        let z = grow(&mut self.z, k * 3 * d);
        for (zi, c) in z.chunks_exact_mut(3 * d).zip(rows.chunks_exact(d)) {
            let (diff, rest) = zi.split_at_mut(d);
            let (prod, sum) = rest.split_at_mut(d);
            for j in 0..d {
                diff[j] = q[j] - c[j];
                prod[j] = q[j] * c[j];
                sum[j] = q[j] + c[j];
            }
        }
        let pre = grow(&mut self.pre, k * h);
        gemm(k, 3 * d, h, z, (3 * d, 1), &w.fc1_weight, (1, 3 * d), pre, h);
        let hidden = grow(&mut self.hidden, k * h);
        for (hr, pr) in hidden.chunks_exact_mut(h).zip(pre.chunks_exact_mut(h)) {
            for j in 0..h {
                pr[j] += w.fc1_bias[j];
                hr[j] = activate(act, pr[j]).0;
            }
        }
        let delta = grow(&mut self.delta, k * d);
        gemm(k, h, d, hidden, (h, 1), &w.fc2_weight, (1, h), delta, d);
        let logits = grow(&mut self.logits, k * 4);
        gemm(k, h, 4, hidden, (h, 1), &w.classifier_weight, (1, h), logits, 4);
        let sim = grow(&mut self.sim, k);
        for i in 0..k {
            let (dr, c) = (&mut delta[i * d..(i + 1) * d], &rows[i * d..(i + 1) * d]);
            let mut s = 0.0f32;
            for j in 0..d {
                dr[j] += w.fc2_bias[j];
                s += q[j] * (c[j] + dr[j]);
            }
            sim[i] = s;
            for (l, b) in logits[i * 4..(i + 1) * 4].iter_mut().zip(&w.classifier_bias) {
                *l += b;
            }
        }
    }

    /// The loss of the last forward pass and its gradient, added into `grad` (scaled by
    /// `scale`, e.g. 1/batch). `labels` are classes 0..4, `relevant` the rank-loss targets.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        w: &AdapterWeights,
        act: Activation,
        loss: &LossWeights,
        q: &[f32],
        rows: &[f32],
        labels: &[u8],
        relevant: &[bool],
        scale: f32,
        grad: &mut AdapterWeights,
    ) -> LossParts {
        let (d, h) = (w.dim, w.hidden);
        let k = rows.len() / d;
        let mut parts = LossParts::default();
        if k == 0 {
            return parts;
        }
        let inv_k = 1.0 / k as f32;

        // Class-weighted cross-entropy, averaged over the list.
        let d_logits = grow(&mut self.d_logits, k * 4);
        for i in 0..k {
            let p = softmax4(&self.logits[i * 4..i * 4 + 4]);
            let y = labels[i] as usize;
            let wy = loss.class[y];
            parts.cls += -(wy as f64) * (p[y].max(1e-30) as f64).ln() * inv_k as f64;
            for c in 0..4 {
                let target = if c == y { 1.0 } else { 0.0 };
                d_logits[i * 4 + c] = scale * wy * inv_k * (p[c] - target);
            }
        }

        // Listwise rank loss: −log Σ_relevant softmax(sim/τ).
        let tau = loss.rank_temperature;
        let sim = &self.sim[..k];
        let max = sim.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let (mut all, mut rel) = (0.0f64, 0.0f64);
        for (s, &r) in sim.iter().zip(relevant) {
            let e = (((s - max) / tau) as f64).exp();
            all += e;
            if r {
                rel += e;
            }
        }
        let has_target = rel > 0.0;
        if has_target {
            parts.rank = (all / rel).ln();
        }

        // dL/dΔ_i = β·(2/k)·r_i + (dL_rank/dsim_i)·q, with r_i the residual of L_norm.
        let d_delta = grow(&mut self.d_delta, k * d);
        for i in 0..k {
            let (c, delta) = (&rows[i * d..(i + 1) * d], &self.delta[i * d..(i + 1) * d]);
            // α* = clamp((a − c)·(q − c) / ‖q − c‖², 0, 1) with a − c = Δ.
            let (mut num, mut den) = (0.0f32, 0.0f32);
            for j in 0..d {
                let u = q[j] - c[j];
                num += delta[j] * u;
                den += u * u;
            }
            let alpha = if den > 0.0 { (num / den).clamp(0.0, 1.0) } else { 0.0 };
            let e = (((sim[i] - max) / tau) as f64).exp();
            let d_sim = if has_target {
                let target = if relevant[i] { e / rel } else { 0.0 };
                (loss.rank as f64 * (e / all - target) / tau as f64) as f32
            } else {
                0.0
            };
            let dd = &mut d_delta[i * d..(i + 1) * d];
            let mut norm2 = 0.0f32;
            for j in 0..d {
                // r = Δ − α*(q − c); the gradient of ‖r‖² is 2r whether or not α* is clamped.
                let r = delta[j] - alpha * (q[j] - c[j]);
                norm2 += r * r;
                dd[j] = scale * (loss.norm * 2.0 * inv_k * r + d_sim * q[j]);
            }
            parts.norm += norm2 as f64 * inv_k as f64;
        }

        // Layer 2 and the classifier: weight gradients, then back into the hidden layer.
        let hidden = &self.hidden[..k * h];
        gemm_beta(d, k, h, d_delta, (1, d), hidden, (h, 1), 1.0, &mut grad.fc2_weight, h);
        gemm_beta(4, k, h, d_logits, (1, 4), hidden, (h, 1), 1.0, &mut grad.classifier_weight, h);
        for i in 0..k {
            for (g, x) in grad.fc2_bias.iter_mut().zip(&d_delta[i * d..(i + 1) * d]) {
                *g += x;
            }
            for (g, x) in grad.classifier_bias.iter_mut().zip(&d_logits[i * 4..i * 4 + 4]) {
                *g += x;
            }
        }
        let d_hidden = grow(&mut self.d_hidden, k * h);
        gemm(k, d, h, d_delta, (d, 1), &w.fc2_weight, (h, 1), d_hidden, h);
        gemm_beta(k, 4, h, d_logits, (4, 1), &w.classifier_weight, (h, 1), 1.0, d_hidden, h);
        for (g, p) in d_hidden.iter_mut().zip(&self.pre[..k * h]) {
            *g *= activate(act, *p).1;
        }
        // Layer 1.
        gemm_beta(h, k, 3 * d, d_hidden, (1, h), &self.z[..k * 3 * d], (3 * d, 1), 1.0, &mut grad.fc1_weight, 3 * d);
        for row in d_hidden.chunks_exact(h) {
            for (g, x) in grad.fc1_bias.iter_mut().zip(row) {
                *g += x;
            }
        }
        parts
    }
}

fn softmax4(l: &[f32]) -> [f32; 4] {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e = [(l[0] - m).exp(), (l[1] - m).exp(), (l[2] - m).exp(), (l[3] - m).exp()];
    let s = e[0] + e[1] + e[2] + e[3];
    e.map(|x| x / s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::SplitMix64;

    /// The same loss in f64, written from SPEC §3 and §7 directly.
    fn loss_f64(
        w: &AdapterWeights,
        act: Activation,
        lw: &LossWeights,
        q: &[f32],
        rows: &[f32],
        labels: &[u8],
        rel: &[bool],
    ) -> f64 {
        let (d, h) = (w.dim, w.hidden);
        let k = rows.len() / d;
        let f = |x: f64| -> f64 {
            match act {
                Activation::Relu => x.max(0.0),
                Activation::Tanh => x.tanh(),
                Activation::Silu => x / (1.0 + (-x).exp()),
                Activation::Gelu => 0.5 * x * (1.0 + crate::linalg::erf(x / 2f64.sqrt())),
                Activation::GeluTanh => {
                    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
                }
            }
        };
        let (mut cls, mut norm) = (0.0, 0.0);
        let mut sims = vec![];
        for i in 0..k {
            let c: Vec<f64> = rows[i * d..(i + 1) * d].iter().map(|&x| x as f64).collect();
            let qd: Vec<f64> = q.iter().map(|&x| x as f64).collect();
            let z: Vec<f64> = (0..3 * d)
                .map(|j| match j / d {
                    0 => qd[j] - c[j],
                    1 => qd[j - d] * c[j - d],
                    _ => qd[j - 2 * d] + c[j - 2 * d],
                })
                .collect();
            let hid: Vec<f64> = (0..h)
                .map(|r| {
                    f(w.fc1_bias[r] as f64 + (0..3 * d).map(|j| w.fc1_weight[r * 3 * d + j] as f64 * z[j]).sum::<f64>())
                })
                .collect();
            let a: Vec<f64> = (0..d)
                .map(|j| {
                    c[j] + w.fc2_bias[j] as f64 + (0..h).map(|r| w.fc2_weight[j * h + r] as f64 * hid[r]).sum::<f64>()
                })
                .collect();
            sims.push((0..d).map(|j| qd[j] * a[j]).sum::<f64>());
            let logits: Vec<f64> = (0..4)
                .map(|cl| {
                    w.classifier_bias[cl] as f64
                        + (0..h).map(|r| w.classifier_weight[cl * h + r] as f64 * hid[r]).sum::<f64>()
                })
                .collect();
            let lse = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
            let y = labels[i] as usize;
            cls += lw.class[y] as f64 * (lse - logits[y]) / k as f64;
            let u: Vec<f64> = (0..d).map(|j| qd[j] - c[j]).collect();
            let alpha = ((0..d).map(|j| (a[j] - c[j]) * u[j]).sum::<f64>() / u.iter().map(|x| x * x).sum::<f64>())
                .clamp(0.0, 1.0);
            norm += (0..d).map(|j| (a[j] - (alpha * qd[j] + (1.0 - alpha) * c[j])).powi(2)).sum::<f64>() / k as f64;
        }
        let tau = lw.rank_temperature as f64;
        let all: f64 = sims.iter().map(|s| (s / tau).exp()).sum();
        let relsum: f64 = sims.iter().zip(rel).filter(|(_, r)| **r).map(|(s, _)| (s / tau).exp()).sum();
        cls + lw.norm as f64 * norm + lw.rank as f64 * (all / relsum).ln()
    }

    #[test]
    fn gradient_matches_central_differences_of_an_f64_loss() {
        for (act, d, h, k) in [
            (Activation::Tanh, 5, 3, 4),
            (Activation::Silu, 3, 4, 1),
            (Activation::Gelu, 4, 2, 3),
            (Activation::GeluTanh, 2, 3, 5),
        ] {
            let mut rng = SplitMix64::new(d as u64 * 31 + k as u64);
            let w = AdapterWeights::random(d, h, 7 + k as u64);
            let q: Vec<f32> = (0..d).map(|_| rng.next_symmetric(1.0)).collect();
            let rows: Vec<f32> = (0..k * d).map(|_| rng.next_symmetric(1.0)).collect();
            let labels: Vec<u8> = (0..k).map(|i| (i % 4) as u8).collect();
            let rel: Vec<bool> = (0..k).map(|i| i == 0 || i == 3).collect();
            let lw = LossWeights { class: [1.5, 0.7, 1.2, 0.4], norm: 0.3, rank: 0.8, rank_temperature: 0.5 };
            let mut ws = Workspace::default();
            let mut grad = AdapterWeights { dim: d, hidden: h, ..zero_like(&w) };
            ws.forward(&w, act, &q, &rows);
            let parts = ws.backward(&w, act, &lw, &q, &rows, &labels, &rel, 1.0, &mut grad);
            let total = parts.cls + 0.3 * parts.norm + 0.8 * parts.rank;
            let want = loss_f64(&w, act, &lw, &q, &rows, &labels, &rel);
            assert!((total - want).abs() < 1e-4 * want.abs().max(1.0), "{act:?}: loss {total} vs {want}");

            // Central differences on every parameter, in f64 through the f32 weights.
            let eps = 1e-3f32;
            for t in 0..6 {
                let n = tensor(&w, t).len();
                for idx in 0..n {
                    let mut plus = w.clone();
                    tensor_mut(&mut plus, t)[idx] += eps;
                    let mut minus = w.clone();
                    tensor_mut(&mut minus, t)[idx] -= eps;
                    let numeric = (loss_f64(&plus, act, &lw, &q, &rows, &labels, &rel)
                        - loss_f64(&minus, act, &lw, &q, &rows, &labels, &rel))
                        / (2.0 * eps as f64);
                    let analytic = tensor(&grad, t)[idx] as f64;
                    assert!(
                        (numeric - analytic).abs() < 2e-3 * numeric.abs().max(1.0),
                        "{act:?} tensor {t} index {idx}: analytic {analytic} vs numeric {numeric}"
                    );
                }
            }
        }
    }

    fn zero_like(w: &AdapterWeights) -> AdapterWeights {
        let mut z = w.clone();
        for t in 0..6 {
            tensor_mut(&mut z, t).fill(0.0);
        }
        z
    }
    fn tensor(w: &AdapterWeights, t: usize) -> &[f32] {
        [&w.fc1_weight, &w.fc1_bias, &w.fc2_weight, &w.fc2_bias, &w.classifier_weight, &w.classifier_bias][t]
    }
    fn tensor_mut(w: &mut AdapterWeights, t: usize) -> &mut Vec<f32> {
        match t {
            0 => &mut w.fc1_weight,
            1 => &mut w.fc1_bias,
            2 => &mut w.fc2_weight,
            3 => &mut w.fc2_bias,
            4 => &mut w.classifier_weight,
            _ => &mut w.classifier_bias,
        }
    }
}
