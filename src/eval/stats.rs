//! Uncertainty of per-query metrics: percentile-bootstrap intervals, a paired randomization
//! test and the exact sign test. All randomness comes from [`SplitMix64`] seeded by the caller,
//! so an interval or p-value is a pure function of its inputs and seed.

use crate::sampler::SplitMix64;

/// A point estimate with a 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The arithmetic mean; 0 for no values.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// A uniform index in `0..n` by the widening multiply `(x · n) >> 64` (Lemire), which avoids
/// the low-bit pattern of `x % n`; its bias is at most n / 2⁶⁴, negligible for any slice.
fn uniform_index(rng: &mut SplitMix64, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// The `p`-quantile of sorted values by linear interpolation between order statistics at
/// position `p · (m − 1)` (Hyndman & Fan type 7, the default of R and NumPy).
fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty() && (0.0..=1.0).contains(&p));
    let position = p * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + fraction * (sorted[above] - sorted[below])
}

/// The sample mean with a percentile-bootstrap 95% interval: the 2.5% and 97.5% quantiles
/// (type 7, see `quantile_sorted`) of the means of `resamples` resamples drawn with
/// replacement. No values give all zeros; zero resamples collapse the interval onto the mean.
/// NaN values propagate into the result rather than failing.
pub fn bootstrap_mean(values: &[f64], resamples: usize, seed: u64) -> Interval {
    let n = values.len();
    if n == 0 {
        return Interval { mean: 0.0, lo: 0.0, hi: 0.0 };
    }
    let sample_mean = mean(values);
    if resamples == 0 {
        return Interval { mean: sample_mean, lo: sample_mean, hi: sample_mean };
    }
    let mut rng = SplitMix64::new(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            // Summed in draw order like `mean`, so a constant input reproduces its mean exactly.
            let sum: f64 = (0..n).map(|_| values[uniform_index(&mut rng, n)]).sum();
            sum / n as f64
        })
        .collect();
    means.sort_unstable_by(f64::total_cmp);
    Interval { mean: sample_mean, lo: quantile_sorted(&means, 0.025), hi: quantile_sorted(&means, 0.975) }
}

/// The per-query differences `b − a` after checking that the runs pair up.
fn paired_differences(a: &[f64], b: &[f64]) -> Result<Vec<f64>, String> {
    if a.len() != b.len() {
        return Err(format!(
            "paired values: a has {} values and b has {}; both need one value per query",
            a.len(),
            b.len()
        ));
    }
    for (name, values) in [("a", a), ("b", b)] {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!("paired values: {name}[{i}] is {}, expected a finite number", values[i]));
        }
    }
    Ok(a.iter().zip(b).map(|(x, y)| y - x).collect())
}

/// The mean of `b − a` with a 95% percentile-bootstrap interval, resampling queries jointly
/// so each resample keeps a query's two values together. Fails on unequal lengths or
/// non-finite values.
pub fn paired_bootstrap_difference(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Result<Interval, String> {
    let differences = paired_differences(a, b)?;
    Ok(bootstrap_mean(&differences, resamples, seed))
}

/// The two-sided p-value of the mean difference `b − a` under the null that each query's two
/// values are exchangeable: `permutations` random sign flips of the per-query differences give
/// p = (1 + #{|flipped mean| ≥ |observed mean| − 1e-12}) / (1 + permutations). The +1 counts
/// the observed assignment, so p is never 0; identical inputs give exactly 1.
pub fn paired_randomization_test(a: &[f64], b: &[f64], permutations: usize, seed: u64) -> Result<f64, String> {
    let differences = paired_differences(a, b)?;
    let observed = mean(&differences).abs();
    // The tolerance keeps flips that only reorder the same sum from losing to rounding error.
    let threshold = observed - 1e-12;
    let mut rng = SplitMix64::new(seed);
    let mut at_least_as_extreme = 0usize;
    for _ in 0..permutations {
        let mut sum = 0.0;
        let mut bits = 0u64;
        for (i, d) in differences.iter().enumerate() {
            // One 64-bit draw supplies the signs of 64 queries.
            if i % 64 == 0 {
                bits = rng.next_u64();
            }
            sum += if bits & 1 == 1 { -d } else { *d };
            bits >>= 1;
        }
        let flipped = if differences.is_empty() { 0.0 } else { sum / differences.len() as f64 };
        if flipped.abs() >= threshold {
            at_least_as_extreme += 1;
        }
    }
    Ok((1 + at_least_as_extreme) as f64 / (1 + permutations) as f64)
}

/// The exact two-sided binomial sign test of `b` against `a`: ties are dropped and the p-value
/// is `min(1, 2 · P(X ≤ min(wins, losses)))` for X ~ Binomial(non-tied pairs, 1/2); 1 when
/// every pair ties. Computed in log space, so a hundred thousand pairs do not overflow.
pub fn sign_test(a: &[f64], b: &[f64]) -> Result<f64, String> {
    let differences = paired_differences(a, b)?;
    let wins = differences.iter().filter(|&&d| d > 0.0).count();
    let losses = differences.iter().filter(|&&d| d < 0.0).count();
    let n = wins + losses;
    if n == 0 {
        return Ok(1.0);
    }
    let k = wins.min(losses);
    // ln C(n, i) by the recurrence C(n, i + 1) = C(n, i) · (n − i) / (i + 1); the tail sum is a
    // log-sum-exp anchored at the largest term, ln C(n, k), since C(n, i) grows for i ≤ k ≤ n/2.
    let mut log_terms = Vec::with_capacity(k + 1);
    let mut log_binomial = 0.0f64;
    for i in 0..=k {
        log_terms.push(log_binomial);
        log_binomial += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    let largest = log_terms[k];
    let scaled_sum: f64 = log_terms.iter().map(|t| (t - largest).exp()).sum();
    let log_tail = largest + scaled_sum.ln() - n as f64 * std::f64::consts::LN_2;
    Ok((2.0 * log_tail.exp()).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [−0.5, 0.5).
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| rng.next_open01() - 0.5).collect()
    }

    #[test]
    fn mean_of_nothing_is_zero() {
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
    }

    #[test]
    fn quantile_interpolates_between_order_statistics() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_sorted(&sorted, 0.0), 1.0);
        assert_eq!(quantile_sorted(&sorted, 1.0), 5.0);
        assert_eq!(quantile_sorted(&sorted, 0.5), 3.0);
        assert_eq!(quantile_sorted(&sorted, 0.125), 1.5);
        assert_eq!(quantile_sorted(&[7.0], 0.975), 7.0);
    }

    #[test]
    fn uniform_index_covers_the_range() {
        let mut rng = SplitMix64::new(3);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[uniform_index(&mut rng, 5)] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }

    #[test]
    fn bootstrap_of_a_constant_is_a_point() {
        let values = vec![0.1; 37];
        let interval = bootstrap_mean(&values, 500, 7);
        assert_eq!(interval.lo, interval.mean);
        assert_eq!(interval.hi, interval.mean);
        assert_eq!(interval.mean, mean(&values));
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_mean() {
        let values: Vec<f64> = noise(300, 11).iter().map(|x| x + 0.3).collect();
        let first = bootstrap_mean(&values, 1000, 42);
        assert_eq!(first, bootstrap_mean(&values, 1000, 42));
        assert_ne!(first, bootstrap_mean(&values, 1000, 43));
        assert!(first.lo < first.mean && first.mean < first.hi, "{first:?}");
        // The standard error of the mean of U(−0.5, 0.5) over 300 values is about 0.0167, so
        // the 95% interval spans about 4 standard errors.
        let width = first.hi - first.lo;
        assert!((0.04..0.09).contains(&width), "{width}");
    }

    #[test]
    fn bootstrap_edge_cases() {
        assert_eq!(bootstrap_mean(&[], 100, 1), Interval { mean: 0.0, lo: 0.0, hi: 0.0 });
        assert_eq!(bootstrap_mean(&[1.0, 3.0], 0, 1), Interval { mean: 2.0, lo: 2.0, hi: 2.0 });
    }

    #[test]
    fn paired_difference_resamples_queries_together() {
        // b − a is 0.25 for every query even though the queries themselves vary widely.
        let a: Vec<f64> = noise(50, 5).iter().map(|x| x * 10.0).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.25).collect();
        let interval = paired_bootstrap_difference(&a, &b, 400, 9).unwrap();
        assert!((interval.mean - 0.25).abs() < 1e-12);
        assert!(interval.hi - interval.lo < 1e-12, "{interval:?}");
    }

    #[test]
    fn mismatched_or_non_finite_inputs_are_errors() {
        let error = paired_bootstrap_difference(&[1.0, 2.0], &[1.0], 10, 0).unwrap_err();
        assert!(error.contains('2') && error.contains('1'), "{error}");
        assert!(paired_randomization_test(&[1.0], &[1.0, 2.0, 3.0], 10, 0).unwrap_err().contains('3'));
        assert!(sign_test(&[1.0], &[]).is_err());
        let error = sign_test(&[1.0, f64::NAN], &[0.0, 0.0]).unwrap_err();
        assert!(error.contains("a[1]") && error.contains("NaN"), "{error}");
    }

    #[test]
    fn randomization_test_of_identical_runs_is_one() {
        let a = noise(100, 1);
        assert_eq!(paired_randomization_test(&a, &a, 999, 3).unwrap(), 1.0);
        assert_eq!(paired_randomization_test(&[], &[], 10, 3).unwrap(), 1.0);
    }

    #[test]
    fn randomization_test_detects_a_shift() {
        let a = noise(200, 21);
        let b: Vec<f64> = a.iter().zip(noise(200, 22)).map(|(x, e)| x + 0.5 + e).collect();
        let p = paired_randomization_test(&a, &b, 2000, 4).unwrap();
        assert!(p < 0.01, "{p}");
        // With 2000 flips the smallest attainable p-value is 1/2001.
        assert_eq!(p, 1.0 / 2001.0);
        assert_eq!(p, paired_randomization_test(&a, &b, 2000, 4).unwrap());
    }

    #[test]
    fn randomization_test_of_pure_noise_is_not_significant() {
        let a = noise(200, 31);
        let b = noise(200, 32);
        let p = paired_randomization_test(&a, &b, 2000, 5).unwrap();
        // Against an exact mean difference computed here rather than trusted.
        assert!(p > 0.01, "{p} (mean difference {})", mean(&b) - mean(&a));
    }

    #[test]
    fn sign_test_known_values() {
        // 9 wins, 1 loss, 2 ties: p = 2 · (1 + 10) / 2¹⁰ = 22/1024.
        let a = [0.0; 12];
        let mut b = [1.0; 12];
        b[3] = -1.0;
        b[7] = 0.0;
        b[9] = 0.0;
        let p = sign_test(&a, &b).unwrap();
        assert!((p - 0.021484375).abs() < 1e-14, "{p}");
        // Symmetric in wins and losses.
        assert!((sign_test(&b, &a).unwrap() - p).abs() < 1e-14);
        // Balanced wins and losses clamp at 1; all ties give 1.
        assert_eq!(sign_test(&[0.0, 0.0], &[1.0, -1.0]).unwrap(), 1.0);
        assert_eq!(sign_test(&[0.5; 4], &[0.5; 4]).unwrap(), 1.0);
        // One win of one pair: p = 2 · 1/2 = 1. Six of six: 2/64.
        assert_eq!(sign_test(&[0.0], &[1.0]).unwrap(), 1.0);
        assert!((sign_test(&[0.0; 6], &[1.0; 6]).unwrap() - 2.0 / 64.0).abs() < 1e-15);
    }

    #[test]
    fn sign_test_handles_many_pairs() {
        // 100 000 pairs, 50 500 wins: z ≈ 3.16, two-sided p ≈ 0.0016 by the normal approximation.
        let n = 100_000;
        let a = vec![0.0; n];
        let b: Vec<f64> = (0..n).map(|i| if i < 50_500 { 1.0 } else { -1.0 }).collect();
        let p = sign_test(&a, &b).unwrap();
        assert!(p.is_finite() && (0.0012..0.0020).contains(&p), "{p}");
        // All wins: p = 2 · 2⁻¹⁰⁰⁰⁰⁰ underflows to 0 rather than becoming NaN.
        assert_eq!(sign_test(&a, &vec![1.0; n]).unwrap(), 0.0);
    }
}
