//! SPEC §5: deterministic negative sampling without replacement, weights ∝ s_RS
//! (Efraimidis–Spirakis keys over SplitMix64 uniforms). A pure function of
//! (seed, query index, log s_RS, mask, n), so every binding draws the same negatives.

use crate::error::{Error, ErrorKind, Result};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 generator (Steele, Lea & Flood 2014).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }
    /// The stream for one query: seeded with `seed XOR (GOLDEN · (query_index + 1))`.
    pub fn for_query(seed: u64, query_index: u64) -> Self {
        SplitMix64::new(seed ^ GOLDEN.wrapping_mul(query_index.wrapping_add(1)))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A uniform draw in [−bound, bound), for test and benchmark data.
    pub fn next_symmetric(&mut self, bound: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32; // [0, 1), exact in f32
        (unit * 2.0 - 1.0) * bound
    }
    /// A uniform draw in (0, 1]: `((x >> 11) + 0.5) · 2⁻⁵³`, which rounds to exactly 1.0 for
    /// the largest `x >> 11` (SPEC §5 says (0, 1); the formula is what every binding reproduces).
    pub fn next_open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }
}

/// Marks the slots of `out` past the returned count.
pub const NOT_DRAWN: u32 = u32::MAX;

/// Draws up to `out.len()` candidates of one query, writes their positions (best key first)
/// into `out` and returns how many were drawn; the slots after them hold [`NOT_DRAWN`]. Candidates with a nonzero `positive_mask`
/// entry are never drawn; when fewer than `out.len()` are eligible all of them are returned.
pub fn sample_negatives(
    log_s_rs: &[f32],
    positive_mask: Option<&[u8]>,
    seed: u64,
    query_index: u64,
    out: &mut [u32],
) -> Result<usize> {
    let mut keys = Vec::with_capacity(log_s_rs.len());
    sample_with_scratch(log_s_rs, positive_mask, seed, query_index, out, &mut keys)
}

pub(crate) fn check_sampler_input(log_s_rs: &[f32], positive_mask: Option<&[u8]>) -> Result<()> {
    if let Some(mask) = positive_mask {
        if mask.len() != log_s_rs.len() {
            return Err(Error::invalid_argument(format!(
                "positive_mask: expected {} entries (one per candidate), got {}",
                log_s_rs.len(),
                mask.len()
            )));
        }
    }
    if log_s_rs.len() > u32::MAX as usize {
        return Err(Error::invalid_argument("log_s_rs: more than 2^32 - 1 candidates"));
    }
    if let Some(i) = log_s_rs.iter().position(|x| !x.is_finite()) {
        return Err(Error::new(ErrorKind::NonFiniteInput, format!("log_s_rs: position {i} is {}", log_s_rs[i])));
    }
    Ok(())
}

pub(crate) fn sample_with_scratch(
    log_s_rs: &[f32],
    positive_mask: Option<&[u8]>,
    seed: u64,
    query_index: u64,
    out: &mut [u32],
    keys: &mut Vec<(f64, u32)>,
) -> Result<usize> {
    check_sampler_input(log_s_rs, positive_mask)?;
    let mut rng = SplitMix64::for_query(seed, query_index);
    keys.clear();
    for (i, &log_w) in log_s_rs.iter().enumerate() {
        // Every candidate consumes its draw, masked or not, so masks do not shift the stream.
        let u = rng.next_open01();
        if positive_mask.is_some_and(|m| m[i] != 0) {
            continue;
        }
        // An underflowing weight gets key −∞ (drawn last), also when u rounds to exactly 1.0,
        // where ln(u) · ∞ would be NaN.
        let scale = (-f64::from(log_w)).exp();
        let key = if scale.is_infinite() { f64::NEG_INFINITY } else { u.ln() * scale };
        keys.push((key, i as u32));
    }
    // A total order (indices are unique), so the allocation-free unstable sort is exact.
    keys.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let count = keys.len().min(out.len());
    for (o, (_, i)) in out.iter_mut().zip(keys.iter()) {
        *o = *i;
    }
    out[count..].fill(NOT_DRAWN);
    Ok(count)
}
