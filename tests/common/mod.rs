//! Independent float64 reference for SPEC §3–§5, used by `tests/parity.rs` and
//! `tests/cuda_engine.rs`.
//!
//! Nothing here calls into `rrra`: the crate's public types serve as configuration labels and
//! plain data (weights, score options), and everything is computed from the same f32 inputs,
//! widened to f64. The sampler is a second,
//! separate implementation of SplitMix64 + Efraimidis–Spirakis.

use rrra::{Activation, AdapterConfig, AdapterWeights, BaseTransform, ScoreOptions, Similarity};

// ---------------------------------------------------------------------------------------------
// Test data generator: xorshift64* (deliberately not SplitMix64, which the sampler under test uses).
// ---------------------------------------------------------------------------------------------

pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        TestRng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform integer in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    /// `n` values uniform in ±`scale`, as f32.
    pub fn uniform_vec(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform(-scale, scale) as f32).collect()
    }
    /// `n` values ~ N(0, scale²), as f32.
    pub fn normal_vec(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * scale) as f32).collect()
    }
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Special functions in f64.
// ---------------------------------------------------------------------------------------------

/// erf(x), within a few ulp (checked against CPython's `math.erf` in `tests/parity.rs`).
///
/// |x| < 0.75: the Maclaurin series 2/√π · Σ (−1)^n x^{2n+1} / (n! (2n+1)), whose terms shrink
/// fast enough here that cancellation costs under a bit. |x| ≥ 0.75: erf = 1 − erfc with erfc
/// from Laplace's continued fraction, evaluated backwards to a depth that converges to full
/// precision on each range.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    if z < 0.75 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        loop {
            n += 1.0;
            term *= -x * x / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() {
                return std::f64::consts::FRAC_2_SQRT_PI * sum;
            }
        }
    }
    let depth = if z >= 2.0 {
        60
    } else if z >= 1.0 {
        200
    } else {
        400
    };
    (1.0 - erfc_continued_fraction(z, depth)).copysign(x)
}

/// erfc(z), z > 0: e^{−z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + …))))).
fn erfc_continued_fraction(z: f64, depth: u32) -> f64 {
    let mut tail = z;
    for k in (1..=depth).rev() {
        tail = z + (f64::from(k) / 2.0) / tail;
    }
    exp_minus_square(z) / std::f64::consts::PI.sqrt() / tail
}

/// e^{−z²} without the error of rounding z² first (up to ~9 ulp at z = 3): with z² = s + e
/// exactly (s = fl(z²), e from an FMA), e^{−z²} = e^{−s} · e^{−e} ≈ e^{−s} · (1 − e).
fn exp_minus_square(z: f64) -> f64 {
    let s = z * z;
    let e = z.mul_add(z, -s);
    (-s).exp() * (1.0 - e)
}

pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// log(1 + e^x) without overflow.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn log_sigmoid(x: f64) -> f64 {
    -softplus(-x)
}

fn logsumexp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

pub fn activation(kind: Activation, x: f64) -> f64 {
    match kind {
        Activation::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Activation::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Activation::GeluTanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::Silu => x * sigmoid(x),
        Activation::Tanh => x.tanh(),
    }
}

// ---------------------------------------------------------------------------------------------
// The forward pass (SPEC §3) and the scores (SPEC §4).
// ---------------------------------------------------------------------------------------------

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn similarity(kind: Similarity, q: &[f64], x: &[f64]) -> f64 {
    match kind {
        Similarity::Dot => dot(q, x),
        Similarity::Cosine => {
            let (nq, nx) = (dot(q, q).sqrt(), dot(x, x).sqrt());
            if nq < 1e-12 || nx < 1e-12 {
                0.0
            } else {
                dot(q, x) / (nq * nx)
            }
        }
    }
}

/// The adapter's weights in f64 plus the file-level parts of its configuration.
pub struct RefModel {
    pub d: usize,
    pub h: usize,
    fc1: Vec<f64>,
    b1: Vec<f64>,
    fc2: Vec<f64>,
    b2: Vec<f64>,
    cls: Vec<f64>,
    cls_b: Vec<f64>,
    pub activation: Activation,
    pub similarity: Similarity,
}

/// The six tensors, row-major f32, as SPEC §2 lays them out.
pub struct RawWeights<'a> {
    pub fc1: &'a [f32],
    pub b1: &'a [f32],
    pub fc2: &'a [f32],
    pub b2: &'a [f32],
    pub cls: &'a [f32],
    pub cls_b: &'a [f32],
}

impl<'a> RawWeights<'a> {
    pub fn of(w: &'a AdapterWeights) -> Self {
        RawWeights {
            fc1: &w.fc1_weight,
            b1: &w.fc1_bias,
            fc2: &w.fc2_weight,
            b2: &w.fc2_bias,
            cls: &w.classifier_weight,
            cls_b: &w.classifier_bias,
        }
    }
}

/// Weights uniform in ±1/√fan_in (PyTorch's `nn.Linear` default), so pre-activations are O(1);
/// the classifier is scaled by `classifier_gain` to push `s_FN` towards 0 or 1.
pub fn random_weights(rng: &mut TestRng, d: usize, h: usize, classifier_gain: f64) -> AdapterWeights {
    let fan1 = 1.0 / ((3 * d) as f64).sqrt();
    let fan2 = 1.0 / (h as f64).sqrt();
    AdapterWeights {
        dim: d,
        hidden: h,
        fc1_weight: rng.uniform_vec(h * 3 * d, fan1),
        fc1_bias: rng.uniform_vec(h, fan1),
        fc2_weight: rng.uniform_vec(d * h, fan2),
        fc2_bias: rng.uniform_vec(d, fan2),
        classifier_weight: rng.uniform_vec(4 * h, fan2 * classifier_gain),
        classifier_bias: rng.uniform_vec(4, fan2 * classifier_gain),
    }
}

/// What one (q, c) pair yields.
#[derive(Clone, Copy, Debug)]
pub struct RefPair {
    pub sim_adapted: f64,
    pub sim_candidate: f64,
    pub logits: [f64; 4],
}

impl RefModel {
    pub fn new(d: usize, h: usize, w: &RawWeights<'_>, activation: Activation, similarity: Similarity) -> Self {
        assert_eq!(w.fc1.len(), h * 3 * d);
        assert_eq!(w.fc2.len(), d * h);
        assert_eq!(w.cls.len(), 4 * h);
        RefModel {
            d,
            h,
            fc1: widen(w.fc1),
            b1: widen(w.b1),
            fc2: widen(w.fc2),
            b2: widen(w.b2),
            cls: widen(w.cls),
            cls_b: widen(w.cls_b),
            activation,
            similarity,
        }
    }

    pub fn pair(&self, q: &[f32], c: &[f32]) -> RefPair {
        let (d, h) = (self.d, self.h);
        let (q, c) = (widen(q), widen(c));
        let z: Vec<f64> =
            (0..d).map(|t| q[t] - c[t]).chain((0..d).map(|t| q[t] * c[t])).chain((0..d).map(|t| q[t] + c[t])).collect();
        let hid: Vec<f64> = (0..h)
            .map(|j| activation(self.activation, dot(&self.fc1[j * 3 * d..(j + 1) * 3 * d], &z) + self.b1[j]))
            .collect();
        let adapted: Vec<f64> = (0..d).map(|t| c[t] + dot(&self.fc2[t * h..(t + 1) * h], &hid) + self.b2[t]).collect();
        let logits = [0, 1, 2, 3].map(|k| dot(&self.cls[k * h..(k + 1) * h], &hid) + self.cls_b[k]);
        RefPair {
            sim_adapted: similarity(self.similarity, &q, &adapted),
            sim_candidate: similarity(self.similarity, &q, &c),
            logits,
        }
    }
}

/// Score parameters in force for one call (file values with the call's overrides applied).
#[derive(Clone, Copy, Debug)]
pub struct RefParams {
    pub lambda_rr: f64,
    pub gamma_rs: f64,
    pub base_transform: BaseTransform,
    pub base_mu: f64,
    pub base_tau: f64,
    pub adapter_mu: f64,
    pub adapter_tau: f64,
}

impl RefParams {
    /// The parameters in force for a call: the file's values with the call's overrides.
    pub fn resolve(config: &AdapterConfig, options: &ScoreOptions) -> RefParams {
        RefParams {
            lambda_rr: options.lambda_rr.unwrap_or(config.lambda_rr),
            gamma_rs: options.gamma_rs.unwrap_or(config.gamma_rs),
            base_transform: options.base_transform.unwrap_or(config.base_transform),
            base_mu: options.base_mu.unwrap_or(config.base_mu),
            base_tau: options.base_tau.unwrap_or(config.base_tau),
            adapter_mu: config.adapter_mu,
            adapter_tau: config.adapter_tau,
        }
    }
}

/// Reference outputs for one candidate.
#[derive(Clone, Copy, Debug)]
pub struct RefScore {
    pub log_s_rr: f64,
    pub log_s_rs: f64,
    pub s_a: f64,
    pub probs: [f64; 4],
}

/// The reference's refusal of an identity-transform base score ≤ 0: (query, position).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonPositiveBase {
    pub query: usize,
    pub position: usize,
}

/// SPEC §4 for one query's list: `pairs[i]` from [`RefModel::pair`], `base` the caller's scores.
pub fn score_query(
    params: &RefParams,
    pairs: &[RefPair],
    base: Option<&[f32]>,
    query: usize,
) -> Result<Vec<RefScore>, NonPositiveBase> {
    let b: Vec<f64> = match base {
        Some(base) => widen(base),
        None => pairs.iter().map(|p| p.sim_candidate).collect(),
    };
    let log_base: Vec<f64> = match params.base_transform {
        BaseTransform::Identity => {
            if let Some(position) = b.iter().position(|&v| v <= 0.0) {
                return Err(NonPositiveBase { query, position });
            }
            b.iter().map(|v| v.ln()).collect()
        }
        BaseTransform::Sigmoid => b.iter().map(|v| log_sigmoid((v - params.base_mu) / params.base_tau)).collect(),
        BaseTransform::Softmax => {
            let scaled: Vec<f64> = b.iter().map(|v| v / params.base_tau).collect();
            let norm = logsumexp(&scaled);
            scaled.iter().map(|v| v - norm).collect()
        }
    };
    Ok(pairs
        .iter()
        .zip(&log_base)
        .map(|(pair, &log_b)| {
            let log_s_a = log_sigmoid((pair.sim_adapted - params.adapter_mu) / params.adapter_tau);
            let l = pair.logits;
            let norm = logsumexp(&l);
            let probs = l.map(|x| (x - norm).exp());
            let log_not_fn = logsumexp(&[l[0], l[2], l[3]]) - norm;
            let penalty = if params.gamma_rs == 0.0 { 0.0 } else { params.gamma_rs * log_not_fn };
            RefScore {
                log_s_rr: log_b + params.lambda_rr * log_s_a,
                log_s_rs: log_b + penalty,
                s_a: log_s_a.exp(),
                probs,
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The sampler (SPEC §5), written from the text.
// ---------------------------------------------------------------------------------------------

pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

pub struct RefSplitMix(pub u64);

impl RefSplitMix {
    pub fn for_query(seed: u64, query_index: u64) -> Self {
        RefSplitMix(seed ^ GOLDEN_GAMMA.wrapping_mul(query_index.wrapping_add(1)))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn next_open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * 2f64.powi(-53)
    }
}

/// Efraimidis–Spirakis draws of up to `n` eligible candidates, best key first, by repeated
/// selection (independent of any sort): ties go to the lower index because only a strictly
/// larger key replaces the current best.
pub fn ref_sample(log_s_rs: &[f32], mask: Option<&[u8]>, seed: u64, query_index: u64, n: usize) -> Vec<u32> {
    let mut rng = RefSplitMix::for_query(seed, query_index);
    let mut keys: Vec<Option<f64>> = log_s_rs
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let u = rng.next_open01();
            let eligible = mask.is_none_or(|m| m[i] == 0);
            // SPEC §5: a weight that underflows (exp(−log w) = ∞) has key −∞, whatever u is.
            let scale = (-f64::from(w)).exp();
            eligible.then(|| if scale.is_infinite() { f64::NEG_INFINITY } else { u.ln() * scale })
        })
        .collect();
    let mut drawn = Vec::new();
    while drawn.len() < n {
        let mut best: Option<(usize, f64)> = None;
        for (i, key) in keys.iter().enumerate() {
            if let Some(k) = *key {
                if best.is_none_or(|(_, b)| k > b) {
                    best = Some((i, k));
                }
            }
        }
        match best {
            Some((i, _)) => {
                drawn.push(i as u32);
                keys[i] = None;
            }
            None => break,
        }
    }
    drawn
}

// ---------------------------------------------------------------------------------------------
// Collecting mismatches so that one failure report shows many of them.
// ---------------------------------------------------------------------------------------------

pub struct Mismatches {
    context: String,
    lines: Vec<String>,
    count: usize,
}

impl Mismatches {
    pub fn new(context: impl Into<String>) -> Self {
        Mismatches { context: context.into(), lines: Vec::new(), count: 0 }
    }
    pub fn push(&mut self, line: String) {
        self.count += 1;
        if self.lines.len() < 25 {
            self.lines.push(line);
        }
    }
    /// Checks `|got − want| ≤ tol` and records a mismatch otherwise.
    pub fn close(&mut self, what: &str, query: usize, position: usize, got: f64, want: f64, tol: f64) {
        let diff = (got - want).abs();
        if diff.is_nan() || diff > tol {
            self.push(format!(
                "{what}: query {query}, position {position}: got {got:.9e}, want {want:.9e} (|diff| {diff:.3e} > tol {tol:.1e})"
            ));
        }
    }
    pub fn finish(self) {
        if self.count > 0 {
            panic!(
                "{}: {} mismatch(es); first {}:\n  {}",
                self.context,
                self.count,
                self.lines.len(),
                self.lines.join("\n  ")
            );
        }
    }
}
