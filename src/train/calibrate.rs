//! The score transforms of SPEC §4 fitted to data: `sigmoid((x − μ)/τ)` as a one-feature
//! logistic regression of relevance on a score, and the fused rerank order for a given λ.

use crate::scores::{log_sigmoid, stable_order};

/// The λ values tried on dev (0 = the base order).
pub const LAMBDA_GRID: &[f64] =
    &[0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0];

/// `(μ, τ)` such that `sigmoid((x − μ)/τ)` is the maximum-likelihood estimate of
/// P(relevant | x), by Newton's method on the logistic loss with a tiny ridge for stability.
/// Falls back to the mean and standard deviation of `x` when the fit has no positive slope
/// (no positives, no negatives, or scores that do not separate them).
pub fn fit_logistic(pairs: &[(f64, bool)]) -> (f64, f64) {
    let n = pairs.len().max(1) as f64;
    let mean = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let std = (pairs.iter().map(|p| (p.0 - mean).powi(2)).sum::<f64>() / n).sqrt().max(1e-6);
    let positives = pairs.iter().filter(|p| p.1).count() as f64;
    if positives == 0.0 || positives == n {
        return (mean, std);
    }
    // Work on the standardised score so one ridge strength suits any scale.
    let (mut w, mut b) = (1.0f64, (positives / (n - positives)).ln());
    for _ in 0..50 {
        let (mut gw, mut gb, mut hww, mut hwb, mut hbb) = (1e-4 * w, 0.0, 1e-4, 0.0, 1e-9);
        for &(x, y) in pairs {
            let z = (x - mean) / std;
            let p = 1.0 / (1.0 + (-(w * z + b)).exp());
            let r = p - if y { 1.0 } else { 0.0 };
            let s = p * (1.0 - p);
            gw += r * z / n;
            gb += r / n;
            hww += s * z * z / n;
            hwb += s * z / n;
            hbb += s / n;
        }
        let det = hww * hbb - hwb * hwb;
        if det.is_nan() || det <= 0.0 {
            break;
        }
        let (dw, db) = ((hbb * gw - hwb * gb) / det, (hww * gb - hwb * gw) / det);
        w -= dw;
        b -= db;
        if dw.abs() + db.abs() < 1e-10 {
            break;
        }
    }
    if w.is_nan() || w <= 1e-9 || !w.is_finite() || !b.is_finite() {
        return (mean, std);
    }
    // w·(x − mean)/std + b = (x − μ)/τ.
    let tau = std / w;
    (mean - b * tau, tau)
}

/// The SPEC §4 fusion with sigmoid transforms on both scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Fusion {
    pub base_mu: f64,
    pub base_tau: f64,
    pub adapter_mu: f64,
    pub adapter_tau: f64,
    pub lambda: f64,
}

impl Fusion {
    /// Candidate positions by `log s_B + λ · log s_A`, best first, ties in input order.
    pub fn order(&self, base: &[f32], sim: &[f32], scores: &mut Vec<f64>, order: &mut Vec<u32>) {
        scores.clear();
        scores.extend(base.iter().zip(sim).map(|(&b, &s)| {
            log_sigmoid((b as f64 - self.base_mu) / self.base_tau)
                + self.lambda * log_sigmoid((s as f64 - self.adapter_mu) / self.adapter_tau)
        }));
        order.resize(scores.len(), 0);
        stable_order(scores, order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_fit_recovers_a_known_transform() {
        // Relevance drawn with P = sigmoid((x − 0.6)/0.05): the fit must come back close.
        let mut rng = crate::sampler::SplitMix64::new(3);
        let pairs: Vec<(f64, bool)> = (0..200_000)
            .map(|_| {
                let x = 0.3 + 0.6 * rng.next_open01();
                let p = 1.0 / (1.0 + (-(x - 0.6) / 0.05).exp());
                (x, rng.next_open01() < p)
            })
            .collect();
        let (mu, tau) = fit_logistic(&pairs);
        assert!((mu - 0.6).abs() < 0.005 && (tau - 0.05).abs() < 0.003, "mu {mu}, tau {tau}");
    }

    #[test]
    fn logistic_fit_falls_back_without_both_classes() {
        let (mu, tau) = fit_logistic(&[(1.0, false), (3.0, false)]);
        assert_eq!((mu, tau), (2.0, 1.0));
        let (mu, tau) = fit_logistic(&[]);
        assert!(mu.is_finite() && tau > 0.0);
    }

    #[test]
    fn fusion_with_lambda_zero_is_the_base_order() {
        let f = Fusion { base_mu: 0.5, base_tau: 0.1, adapter_mu: 0.0, adapter_tau: 1.0, lambda: 0.0 };
        let (mut s, mut o) = (vec![], vec![]);
        f.order(&[0.1, 0.9, 0.5, 0.9], &[9.0, -9.0, 0.0, 0.0], &mut s, &mut o);
        assert_eq!(o, vec![1, 3, 2, 0]);
        let f = Fusion { lambda: 10.0, ..f };
        f.order(&[0.1, 0.9, 0.5, 0.9], &[9.0, -9.0, 0.0, 0.0], &mut s, &mut o);
        assert_eq!(o[0], 0);
    }
}
