//! Ways of choosing a query's training negatives from its retrieved top-K, so RRRA's
//! resampling can be compared with the usual alternatives on equal terms.
//!
//! Every strategy reads one query's candidates as positions `0..scores.len()` (any order),
//! never draws a position whose `positive_mask` entry is nonzero, and writes
//! `min(n, eligible)` distinct positions into `out` (cleared first) in the order the strategy
//! ranks them. The random ones go through [`sample_negatives`], so they are reproducible from
//! `(seed, query_index)` exactly like the library's own sampler.

use crate::sampler::{sample_negatives, NOT_DRAWN};

/// SimANS's default sharpness `a` for cosine base scores; see [`simans`].
pub const SIMANS_A: f32 = 50.0;
/// SimANS's default offset `b`: the weight peaks at the positive's own score.
pub const SIMANS_B: f32 = 0.0;

/// Checks that `values` (named `name` in messages) and `positive_mask` describe the same
/// candidates and that every value is finite.
fn check_candidates(name: &str, values: &[f32], positive_mask: &[u8]) -> Result<(), String> {
    if positive_mask.len() != values.len() {
        return Err(format!(
            "positive_mask: expected {} entries (one per candidate in {name}), got {}",
            values.len(),
            positive_mask.len()
        ));
    }
    if values.len() > NOT_DRAWN as usize {
        return Err(format!("{name}: {} candidates, at most {} allowed", values.len(), NOT_DRAWN));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("{name}: position {i} is {}, expected a finite score", values[i]));
    }
    Ok(())
}

/// Draws from `log_weights` without replacement through the library's sampler and collects
/// the drawn positions into `out`.
fn draw(
    log_weights: &[f32],
    positive_mask: &[u8],
    n: usize,
    seed: u64,
    query_index: u64,
    out: &mut Vec<u32>,
) -> Result<(), String> {
    // The sampler fills a slice and marks unused slots, so size `out` to the most it can hold
    // and cut it back to the count drawn.
    out.clear();
    out.resize(n.min(log_weights.len()), NOT_DRAWN);
    let drawn =
        sample_negatives(log_weights, Some(positive_mask), seed, query_index, out).map_err(|e| e.to_string())?;
    out.truncate(drawn);
    Ok(())
}

/// The `n` highest-scoring non-positive positions, best first; equal scores keep the lower
/// position first. The classic "hard negatives" and the most exposed to false negatives.
pub fn top_n(scores: &[f32], positive_mask: &[u8], n: usize, out: &mut Vec<u32>) -> Result<(), String> {
    check_candidates("scores", scores, positive_mask)?;
    out.clear();
    out.extend((0..scores.len() as u32).filter(|&i| positive_mask[i as usize] == 0));
    let by_score = |x: &u32, y: &u32| scores[*y as usize].total_cmp(&scores[*x as usize]).then(x.cmp(y));
    // Partition first so only the kept n are fully sorted.
    if n < out.len() {
        if n > 0 {
            out.select_nth_unstable_by(n - 1, by_score);
        }
        out.truncate(n);
    }
    out.sort_unstable_by(by_score);
    Ok(())
}

/// `n` distinct non-positive positions drawn uniformly without replacement, in draw order.
/// `scores` only fixes the candidate count and is checked like the other strategies' input.
pub fn uniform(
    scores: &[f32],
    positive_mask: &[u8],
    n: usize,
    seed: u64,
    query_index: u64,
    out: &mut Vec<u32>,
) -> Result<(), String> {
    check_candidates("scores", scores, positive_mask)?;
    let log_weights = vec![0.0f32; scores.len()];
    draw(&log_weights, positive_mask, n, seed, query_index, out)
}

/// SimANS (Zhou et al., EMNLP 2022, "SimANS: Simple Ambiguous Negatives Sampling"): draws
/// without replacement with weight `exp(−a · (s_i − positive_score − b)²)`, favouring
/// negatives scored close to the positive, which are informative but less often unlabelled
/// positives than the very top of the list.
///
/// The paper's `a ≈ 1` suits raw dot products that span tens of units. Here base scores are
/// cosine similarities in [−1, 1] and one query's top-K usually spans a few tenths, where
/// `a = 1` would be nearly uniform; [`SIMANS_A`] = 50 gives weight e⁻¹ at
/// `|s_i − positive_score − b| = 1/√50 ≈ 0.14`. [`SIMANS_B`] = 0 centres the peak on the
/// positive's score. Fails on non-finite scores or parameters, or a negative `a`.
#[allow(clippy::too_many_arguments)] // mirrors the other strategies plus SimANS's own three
pub fn simans(
    scores: &[f32],
    positive_mask: &[u8],
    positive_score: f32,
    n: usize,
    a: f32,
    b: f32,
    seed: u64,
    query_index: u64,
    out: &mut Vec<u32>,
) -> Result<(), String> {
    check_candidates("scores", scores, positive_mask)?;
    if !positive_score.is_finite() {
        return Err(format!("positive_score: {positive_score}, expected a finite score"));
    }
    if !(a.is_finite() && a >= 0.0) {
        return Err(format!("a: {a}, expected a finite value ≥ 0"));
    }
    if !b.is_finite() {
        return Err(format!("b: {b}, expected a finite value"));
    }
    let centre = f64::from(positive_score) + f64::from(b);
    let log_weights: Vec<f32> = scores
        .iter()
        .map(|&s| {
            let gap = f64::from(s) - centre;
            // Clamped so extreme gaps stay finite for the sampler; they are drawn last anyway.
            (-f64::from(a) * gap * gap).max(f64::from(f32::MIN)) as f32
        })
        .collect();
    draw(&log_weights, positive_mask, n, seed, query_index, out)
}

/// RRRA's own resampling: draws without replacement with weight `s_RS` given as `log_s_rs`
/// (e.g. a session's resampling output), a thin wrapper over [`sample_negatives`] that
/// collects the positions like the other strategies.
pub fn rrra(
    log_s_rs: &[f32],
    positive_mask: &[u8],
    n: usize,
    seed: u64,
    query_index: u64,
    out: &mut Vec<u32>,
) -> Result<(), String> {
    check_candidates("log_s_rs", log_s_rs, positive_mask)?;
    draw(log_s_rs, positive_mask, n, seed, query_index, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` scores evenly spaced over [−1, 1] in a shuffled order, and a mask of every 7th.
    fn candidates(len: usize) -> (Vec<f32>, Vec<u8>) {
        let scores = (0..len).map(|i| -1.0 + 2.0 * ((i * 389) % len) as f32 / (len - 1) as f32).collect();
        let mask = (0..len).map(|i| u8::from(i % 7 == 3)).collect();
        (scores, mask)
    }

    fn assert_valid(out: &[u32], mask: &[u8], expected_len: usize) {
        assert_eq!(out.len(), expected_len);
        let mut sorted = out.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), out.len(), "duplicates in {out:?}");
        assert!(out.iter().all(|&i| (i as usize) < mask.len() && mask[i as usize] == 0), "{out:?}");
    }

    #[test]
    fn top_n_orders_by_score_then_position() {
        let scores = [0.2, 0.9, 0.5, 0.9, 0.7, 0.1];
        let mask = [0, 0, 0, 0, 1, 0];
        let mut out = vec![99];
        top_n(&scores, &mask, 3, &mut out).unwrap();
        assert_eq!(out, [1, 3, 2]);
        top_n(&scores, &mask, 100, &mut out).unwrap();
        assert_eq!(out, [1, 3, 2, 0, 5]);
        top_n(&scores, &mask, 0, &mut out).unwrap();
        assert!(out.is_empty());
        top_n(&scores, &mask, 1, &mut out).unwrap();
        assert_eq!(out, [1]);
    }

    #[test]
    fn every_strategy_respects_the_mask_and_the_count() {
        let (scores, mask) = candidates(50);
        let eligible = mask.iter().filter(|&&m| m == 0).count();
        let mut out = Vec::new();
        for n in [0, 1, 10, eligible, eligible + 5] {
            let expected = n.min(eligible);
            top_n(&scores, &mask, n, &mut out).unwrap();
            assert_valid(&out, &mask, expected);
            for query in 0..20 {
                uniform(&scores, &mask, n, 1, query, &mut out).unwrap();
                assert_valid(&out, &mask, expected);
                simans(&scores, &mask, 0.4, n, SIMANS_A, SIMANS_B, 1, query, &mut out).unwrap();
                assert_valid(&out, &mask, expected);
                rrra(&scores, &mask, n, 1, query, &mut out).unwrap();
                assert_valid(&out, &mask, expected);
            }
        }
    }

    #[test]
    fn no_candidates_or_all_positive() {
        let mut out = vec![1, 2];
        uniform(&[], &[], 5, 0, 0, &mut out).unwrap();
        assert!(out.is_empty());
        simans(&[0.1, 0.2], &[1, 1], 0.3, 5, SIMANS_A, SIMANS_B, 0, 0, &mut out).unwrap();
        assert!(out.is_empty());
        top_n(&[0.1, 0.2], &[1, 1], 5, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut out = Vec::new();
        let error = top_n(&[0.1, 0.2], &[0], 1, &mut out).unwrap_err();
        assert!(error.contains("positive_mask") && error.contains('2') && error.contains('1'), "{error}");
        let error = uniform(&[0.1, f32::NAN], &[0, 0], 1, 0, 0, &mut out).unwrap_err();
        assert!(error.contains("position 1"), "{error}");
        assert!(rrra(&[f32::NEG_INFINITY], &[0], 1, 0, 0, &mut out).unwrap_err().contains("log_s_rs"));
        assert!(simans(&[0.1], &[0], f32::NAN, 1, SIMANS_A, SIMANS_B, 0, 0, &mut out).is_err());
        assert!(simans(&[0.1], &[0], 0.1, 1, -1.0, SIMANS_B, 0, 0, &mut out).is_err());
        assert!(simans(&[0.1], &[0], 0.1, 1, SIMANS_A, f32::INFINITY, 0, 0, &mut out).is_err());
    }

    #[test]
    fn draws_are_reproducible_and_vary_by_query() {
        let (scores, mask) = candidates(200);
        let (mut first, mut again, mut other) = (Vec::new(), Vec::new(), Vec::new());
        simans(&scores, &mask, 0.2, 10, SIMANS_A, SIMANS_B, 9, 4, &mut first).unwrap();
        simans(&scores, &mask, 0.2, 10, SIMANS_A, SIMANS_B, 9, 4, &mut again).unwrap();
        simans(&scores, &mask, 0.2, 10, SIMANS_A, SIMANS_B, 9, 5, &mut other).unwrap();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn rrra_matches_the_library_sampler() {
        let log_s_rs = [-0.1, -2.0, -0.5, -3.0, -0.2];
        let mask = [0, 0, 1, 0, 0];
        let mut out = Vec::new();
        rrra(&log_s_rs, &mask, 3, 77, 12, &mut out).unwrap();
        let mut reference = [0u32; 3];
        let count = sample_negatives(&log_s_rs, Some(&mask), 77, 12, &mut reference).unwrap();
        assert_eq!(out, reference[..count]);
    }

    #[test]
    fn uniform_draws_every_eligible_position_about_equally() {
        let (scores, mask) = candidates(20);
        let mut counts = [0usize; 20];
        let mut out = Vec::new();
        for query in 0..4000 {
            uniform(&scores, &mask, 4, 3, query, &mut out).unwrap();
            for &i in &out {
                counts[i as usize] += 1;
            }
        }
        // 17 eligible positions, 16 000 draws: about 941 each, standard deviation about 28.
        for (i, &c) in counts.iter().enumerate() {
            if mask[i] == 0 {
                assert!((800..1080).contains(&c), "position {i}: {c}");
            } else {
                assert_eq!(c, 0);
            }
        }
    }

    #[test]
    fn simans_concentrates_near_the_positive_score() {
        let (scores, mask) = candidates(1000);
        let positive = 0.3;
        let mut out = Vec::new();
        let mean_gap = |offset: f32, a: f32, out: &mut Vec<u32>| {
            let (mut sum, mut count) = (0.0f64, 0usize);
            for query in 0..200 {
                simans(&scores, &mask, positive, 20, a, offset, 5, query, out).unwrap();
                for &i in out.iter() {
                    sum += f64::from(scores[i as usize] - positive);
                    count += 1;
                }
            }
            sum / count as f64
        };
        let mean_abs_gap = |out: &mut Vec<u32>| {
            let mut sum = 0.0f64;
            for query in 0..200 {
                simans(&scores, &mask, positive, 20, SIMANS_A, SIMANS_B, 5, query, out).unwrap();
                sum += out.iter().map(|&i| f64::from((scores[i as usize] - positive).abs())).sum::<f64>();
            }
            sum / (200.0 * 20.0)
        };
        // A Gaussian of standard deviation 0.1 has mean |gap| ≈ 0.08; uniform draws over
        // [−1, 1] would give about 0.55.
        let abs_gap = mean_abs_gap(&mut out);
        assert!(abs_gap < 0.12, "{abs_gap}");
        let centred = mean_gap(SIMANS_B, SIMANS_A, &mut out);
        assert!(centred.abs() < 0.03, "{centred}");
        // b shifts the peak to positive_score + b.
        let shifted = mean_gap(0.2, SIMANS_A, &mut out);
        assert!((shifted - 0.2).abs() < 0.03, "{shifted}");
        // a = 0 is uniform: the mean gap is that of the whole grid, −0.3.
        let flat = mean_gap(0.0, 0.0, &mut out);
        assert!((flat + 0.3).abs() < 0.05, "{flat}");
    }
}
