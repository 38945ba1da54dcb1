//! The evaluation API as a caller sees it: score two systems' runs, put intervals and a
//! significance test on the difference, tally the adapter's classes and draw negatives.

use rrra::eval::classes::{argmax4, Confusion, CLASS_NAMES};
use rrra::eval::metrics::{mean_recall_curve, ndcg_at, recall_at, RankingMetrics};
use rrra::eval::negatives::{rrra, simans, top_n, uniform, SIMANS_A, SIMANS_B};
use rrra::eval::stats::{bootstrap_mean, mean, paired_bootstrap_difference, paired_randomization_test, sign_test};
use rrra::sampler::SplitMix64;

/// `queries` synthetic queries over 1000 documents, each with one relevant document placed at
/// a random rank in 0..`spread` of a 100-long ranking; a smaller spread is a better system.
fn runs(queries: usize, spread: u64, seed: u64) -> Vec<(Vec<u32>, Vec<u32>)> {
    let mut rng = SplitMix64::new(seed);
    (0..queries as u32)
        .map(|q| {
            let relevant = 1000 + q;
            let mut ranked: Vec<u32> = (0..100).collect();
            let rank = (rng.next_u64() % spread) as usize;
            ranked[rank] = relevant;
            (ranked, vec![relevant])
        })
        .collect()
}

fn borrowed(runs: &[(Vec<u32>, Vec<u32>)]) -> Vec<(&[u32], &[u32])> {
    runs.iter().map(|(r, j)| (r.as_slice(), j.as_slice())).collect()
}

#[test]
fn comparing_two_systems_end_to_end() {
    let (weak, strong) = (runs(300, 40, 1), runs(300, 8, 2));
    let (weak, strong) = (borrowed(&weak), borrowed(&strong));
    let (a, b) = (RankingMetrics::compute(&weak), RankingMetrics::compute(&strong));
    assert_eq!(a.recall_10.len(), 300);

    for ((name, a_values), (_, b_values)) in a.named().iter().zip(b.named().iter()) {
        let interval = bootstrap_mean(a_values, 500, 7);
        assert!(interval.lo <= interval.mean && interval.mean <= interval.hi, "{name}: {interval:?}");
        let difference = paired_bootstrap_difference(a_values, b_values, 500, 7).unwrap();
        assert!((difference.mean - (mean(b_values) - mean(a_values))).abs() < 1e-12);
        if *name == "R@100" {
            // Every relevant document is within the 100 retrieved: no difference at all.
            assert_eq!(paired_randomization_test(a_values, b_values, 500, 3).unwrap(), 1.0);
            assert_eq!(sign_test(a_values, b_values).unwrap(), 1.0);
        } else {
            assert!(difference.lo > 0.0, "{name}: {difference:?}");
            assert!(paired_randomization_test(a_values, b_values, 500, 3).unwrap() < 0.01, "{name}");
            assert!(sign_test(a_values, b_values).unwrap() < 0.01, "{name}");
        }
    }

    let curve = mean_recall_curve(&strong, 100);
    assert!(curve.windows(2).all(|w| w[0] <= w[1]));
    assert!((curve[9] - mean(&b.recall_10)).abs() < 1e-12);
    assert_eq!(curve[7], 1.0);
}

#[test]
fn metric_functions_agree_on_a_hand_checked_case() {
    assert_eq!(recall_at(&[5, 3, 9], &[3], 1), 0.0);
    assert_eq!(recall_at(&[5, 3, 9], &[3], 2), 1.0);
    assert!((ndcg_at(&[5, 3, 9], &[3], 10) - 1.0 / 3f64.log2()).abs() < 1e-12);
}

#[test]
fn paired_statistics_refuse_mismatched_runs() {
    let message = paired_bootstrap_difference(&[0.0; 3], &[0.0; 5], 10, 0).unwrap_err();
    assert!(message.contains('3') && message.contains('5'), "{message}");
    assert!(paired_randomization_test(&[0.0; 3], &[0.0; 5], 10, 0).is_err());
    assert!(sign_test(&[0.0; 3], &[0.0; 5]).is_err());
}

#[test]
fn confusion_from_class_probabilities() {
    let predictions = [[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7], [0.4, 0.4, 0.1, 0.1]];
    let truths = [0, 0, 3, 1];
    let mut confusion = Confusion::default();
    for (p, &t) in predictions.iter().zip(&truths) {
        confusion.add(t, argmax4(p));
    }
    assert_eq!(confusion.total(), 4);
    assert_eq!(confusion.accuracy(), 0.5);
    assert_eq!(CLASS_NAMES[argmax4(&predictions[2])], "TN");
    let mut merged = Confusion::default();
    merged.merge(&confusion);
    assert_eq!(merged, confusion);
}

#[test]
fn negative_strategies_share_one_contract() {
    let scores: Vec<f32> = (0..30).map(|i| (i as f32 * 0.37).sin()).collect();
    let mask: Vec<u8> = (0..30).map(|i| u8::from(i == 4 || i == 17)).collect();
    let log_s_rs: Vec<f32> = scores.iter().map(|s| s - 1.0).collect();
    let mut drawn: Vec<Vec<u32>> = vec![Vec::new(); 4];
    top_n(&scores, &mask, 8, &mut drawn[0]).unwrap();
    uniform(&scores, &mask, 8, 11, 2, &mut drawn[1]).unwrap();
    simans(&scores, &mask, scores[4], 8, SIMANS_A, SIMANS_B, 11, 2, &mut drawn[2]).unwrap();
    rrra(&log_s_rs, &mask, 8, 11, 2, &mut drawn[3]).unwrap();
    for out in &drawn {
        assert_eq!(out.len(), 8);
        assert!(out.iter().all(|&i| mask[i as usize] == 0));
        let mut unique = out.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 8);
    }
    // top_n is best first.
    assert!(drawn[0].windows(2).all(|w| scores[w[0] as usize] >= scores[w[1] as usize]));
    assert!(top_n(&scores, &mask[..3], 8, &mut drawn[0]).is_err());
}
