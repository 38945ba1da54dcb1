//! SPEC §4: base-score transforms, the log-domain rerank and resampling scores, stable ordering.
//! Everything here runs in f64 on the engines' raw outputs, the same for every engine.

use crate::engine::PairRaw;
use crate::error::{Error, Result};
use crate::model::config::{check_real, check_tau};
use crate::model::{AdapterConfig, BaseTransform};

/// Per-call overrides of the adapter file's score configuration; `None` keeps the file's value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScoreOptions {
    /// λ in `log s_RR = log s_B + λ · log s_A`.
    pub lambda_rr: Option<f64>,
    /// γ in `log s_RS = log s_B + γ · log(1 − s_FN)`.
    pub gamma_rs: Option<f64>,
    pub base_transform: Option<BaseTransform>,
    pub base_mu: Option<f64>,
    pub base_tau: Option<f64>,
}

/// The score parameters in force for one call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScoreParams {
    pub lambda_rr: f64,
    pub gamma_rs: f64,
    pub base_transform: BaseTransform,
    pub base_mu: f64,
    pub base_tau: f64,
    pub adapter_mu: f64,
    pub adapter_tau: f64,
}

impl ScoreParams {
    pub(crate) fn resolve(config: &AdapterConfig, options: &ScoreOptions) -> Result<ScoreParams> {
        let params = ScoreParams {
            lambda_rr: options.lambda_rr.unwrap_or(config.lambda_rr),
            gamma_rs: options.gamma_rs.unwrap_or(config.gamma_rs),
            base_transform: options.base_transform.unwrap_or(config.base_transform),
            base_mu: options.base_mu.unwrap_or(config.base_mu),
            base_tau: options.base_tau.unwrap_or(config.base_tau),
            adapter_mu: config.adapter_mu,
            adapter_tau: config.adapter_tau,
        };
        check_real("options.lambda_rr", params.lambda_rr, true)?;
        check_real("options.gamma_rs", params.gamma_rs, true)?;
        check_real("options.base_mu", params.base_mu, false)?;
        check_tau("options.base_tau", params.base_tau)?;
        Ok(params)
    }
}

/// `log(1 + e^x)` without overflow or loss of precision.
pub(crate) fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `log sigmoid(x)`, finite for every finite x (SPEC §4).
pub(crate) fn log_sigmoid(x: f64) -> f64 {
    -softplus(-x)
}

fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Class probabilities (TP, FN, FP, TN) and `log(1 − s_FN)`, the latter as
/// `log(p_TP + p_FP + p_TN)` so it keeps precision when `s_FN` is close to 1.
pub(crate) fn classify(logits: [f32; 4]) -> ([f64; 4], f64) {
    let l = logits.map(f64::from);
    let all = log_sum_exp(l.iter().copied());
    let not_fn = log_sum_exp([l[0], l[2], l[3]].into_iter());
    (l.map(|x| (x - all).exp()), not_fn - all)
}

/// `log s_A` of one pair.
pub(crate) fn log_adapter_score(params: &ScoreParams, raw: &PairRaw) -> f64 {
    log_sigmoid((f64::from(raw.sim_adapted) - params.adapter_mu) / params.adapter_tau)
}

/// `log s_B` for one query's candidates: `base` holds the caller's scores or `None` for
/// `sim(q, c)` from `raw`. `query` names the query in error messages.
pub(crate) fn log_base_scores(
    params: &ScoreParams,
    base: Option<&[f32]>,
    raw: &[PairRaw],
    query: usize,
    out: &mut [f64],
) -> Result<()> {
    let b = |i: usize| base.map_or(f64::from(raw[i].sim_candidate), |b| f64::from(b[i]));
    match params.base_transform {
        BaseTransform::Identity => {
            for (i, o) in out.iter_mut().enumerate() {
                let v = b(i);
                if v <= 0.0 {
                    let source = if base.is_some() { "base_scores" } else { "base score sim(q, c)" };
                    return Err(Error::invalid_argument(format!(
                        "{source}: query {query}, position {i} is {v}; the identity base transform needs scores > 0"
                    )));
                }
                *o = v.ln();
            }
        }
        BaseTransform::Sigmoid => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = log_sigmoid((b(i) - params.base_mu) / params.base_tau);
            }
        }
        BaseTransform::Softmax => {
            let norm = log_sum_exp((0..out.len()).map(|i| b(i) / params.base_tau));
            for (i, o) in out.iter_mut().enumerate() {
                *o = b(i) / params.base_tau - norm;
            }
        }
    }
    Ok(())
}

/// Writes the positions `0..scores.len()` sorted by score descending; ties keep input order.
pub(crate) fn stable_order(scores: &[f64], order: &mut [u32]) {
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u32;
    }
    // Scores are finite here (checked by the caller), so total_cmp is the numeric order; ties
    // go to the lower position, which makes the order total and the unstable sort stable (and
    // allocation-free, unlike `sort_by`).
    order.sort_unstable_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]).then(a.cmp(&b)));
}
