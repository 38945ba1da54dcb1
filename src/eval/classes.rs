//! The adapter's four-way classification of a (query, candidate) pair and its confusion matrix.
//! Class indices follow the classifier's output order: TP = 0, FN = 1, FP = 2, TN = 3.

/// Display names of the four classes, indexed by class.
pub const CLASS_NAMES: [&str; 4] = ["TP", "FN", "FP", "TN"];

/// Counts of (true class, predicted class) pairs: `counts[truth][predicted]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Confusion {
    pub counts: [[u64; 4]; 4],
}

/// `numerator / denominator`, or 0 where the ratio is undefined.
fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

impl Confusion {
    /// Records one pair.
    ///
    /// # Panics
    /// If either class is 4 or more: class indices come from the code, not from user data.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        assert!(truth < 4 && predicted < 4, "class indices must be below 4, got truth {truth}, predicted {predicted}");
        self.counts[truth][predicted] += 1;
    }

    /// The number of pairs recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// The fraction of pairs predicted correctly; 0 when empty.
    pub fn accuracy(&self) -> f64 {
        ratio((0..4).map(|c| self.counts[c][c]).sum(), self.total())
    }

    /// Of the pairs predicted as `class`, the fraction that are; 0 when none were predicted.
    ///
    /// # Panics
    /// If `class` is 4 or more.
    pub fn precision(&self, class: usize) -> f64 {
        ratio(self.counts[class][class], self.counts.iter().map(|row| row[class]).sum())
    }

    /// Of the pairs truly in `class`, the fraction predicted so; 0 when there are none.
    ///
    /// # Panics
    /// If `class` is 4 or more.
    pub fn recall(&self, class: usize) -> f64 {
        ratio(self.counts[class][class], self.counts[class].iter().sum())
    }

    /// The harmonic mean of precision and recall of `class`; 0 when both are 0.
    ///
    /// # Panics
    /// If `class` is 4 or more.
    pub fn f1(&self, class: usize) -> f64 {
        let (p, r) = (self.precision(class), self.recall(class));
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Adds another matrix's counts, e.g. one per worker thread.
    pub fn merge(&mut self, other: &Confusion) {
        for (row, other_row) in self.counts.iter_mut().zip(&other.counts) {
            for (count, other_count) in row.iter_mut().zip(other_row) {
                *count += other_count;
            }
        }
    }
}

/// The index of the largest probability, the first one on ties; NaN entries never win
/// unless all four are NaN (then 0).
pub fn argmax4(p: &[f32; 4]) -> usize {
    let mut best = 0;
    for i in 1..4 {
        if p[i] > p[best] || (p[best].is_nan() && !p[i].is_nan()) {
            best = i;
        }
    }
    best
}

/// How well `score` ranks the positive pairs above the others, independent of any threshold
/// (the 4-way head's argmax can miss a rare class whose probability still ranks it well).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Separation {
    /// The probability that a random positive outscores a random negative, ties counting half.
    pub roc_auc: f64,
    /// Mean precision at the rank of each positive, best score first (tied scores share their
    /// group's precision).
    pub average_precision: f64,
    /// The fraction of pairs that are positive: what a random score's average precision is.
    pub base_rate: f64,
}

/// [`Separation`] of `scores` for the pairs where `positive` is true; `None` when there are no
/// positives, no negatives, a NaN score or mismatched lengths.
pub fn separation(scores: &[f64], positive: &[bool]) -> Option<Separation> {
    let n = scores.len();
    let positives = positive.iter().filter(|&&p| p).count();
    if n != positive.len() || positives == 0 || positives == n || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    // Walk groups of tied scores, best first.
    let (mut seen, mut seen_pos, mut ap, mut pairs_won) = (0usize, 0usize, 0.0f64, 0.0f64);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let group_pos = order[i..j].iter().filter(|&&k| positive[k]).count();
        let group_neg = (j - i) - group_pos;
        // Each positive in the group beats every negative below it and half of the group's.
        let negatives_below = (n - positives) - (seen - seen_pos) - group_neg;
        pairs_won += group_pos as f64 * (negatives_below as f64 + 0.5 * group_neg as f64);
        seen += j - i;
        seen_pos += group_pos;
        ap += group_pos as f64 * seen_pos as f64 / seen as f64;
        i = j;
    }
    Some(Separation {
        roc_auc: pairs_won / (positives as f64 * (n - positives) as f64),
        average_precision: ap / positives as f64,
        base_rate: positives as f64 / n as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Separation against its definitions, computed pair by pair and rank by rank.
    #[test]
    fn separation_matches_its_definitions() {
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 33
        };
        for n in [2usize, 3, 10, 57] {
            for _ in 0..20 {
                // Few distinct scores, so ties occur.
                let scores: Vec<f64> = (0..n).map(|_| (next() % 7) as f64 / 7.0).collect();
                let positive: Vec<bool> = (0..n).map(|_| next() % 3 == 0).collect();
                let p = positive.iter().filter(|&&x| x).count();
                let Some(s) = separation(&scores, &positive) else {
                    assert!(p == 0 || p == n);
                    continue;
                };
                let mut won = 0.0;
                for a in (0..n).filter(|&a| positive[a]) {
                    for b in (0..n).filter(|&b| !positive[b]) {
                        won += if scores[a] > scores[b] {
                            1.0
                        } else if scores[a] == scores[b] {
                            0.5
                        } else {
                            0.0
                        };
                    }
                }
                assert!((s.roc_auc - won / (p * (n - p)) as f64).abs() < 1e-12);
                // A tied group's precision is taken at the group's end, for each of its positives.
                let ap: f64 = (0..n)
                    .filter(|&a| positive[a])
                    .map(|a| {
                        let at_or_above = (0..n).filter(|&b| scores[b] >= scores[a]);
                        let hits = at_or_above.clone().filter(|&b| positive[b]).count();
                        hits as f64 / at_or_above.count() as f64
                    })
                    .sum::<f64>()
                    / p as f64;
                assert!((s.average_precision - ap).abs() < 1e-12, "{scores:?} {positive:?}");
                assert_eq!(s.base_rate, p as f64 / n as f64);
            }
        }
        let perfect = separation(&[0.9, 0.8, 0.1], &[true, true, false]).unwrap();
        assert_eq!((perfect.roc_auc, perfect.average_precision), (1.0, 1.0));
        assert!(separation(&[0.5, f64::NAN], &[true, false]).is_none());
        assert!(separation(&[0.5], &[true, false]).is_none());
    }

    fn example() -> Confusion {
        let mut c = Confusion::default();
        // Truth TP: 3 right, 1 called FN. Truth FN: 2 right, 2 called TP. Truth TN: 4 right.
        for (truth, predicted, times) in [(0, 0, 3), (0, 1, 1), (1, 1, 2), (1, 0, 2), (3, 3, 4)] {
            for _ in 0..times {
                c.add(truth, predicted);
            }
        }
        c
    }

    #[test]
    fn counts_and_rates() {
        let c = example();
        assert_eq!(c.total(), 12);
        assert_eq!(c.accuracy(), 9.0 / 12.0);
        assert_eq!(c.precision(0), 3.0 / 5.0);
        assert_eq!(c.recall(0), 3.0 / 4.0);
        let f1 = 2.0 * 0.6 * 0.75 / 1.35;
        assert!((c.f1(0) - f1).abs() < 1e-12);
        assert_eq!(c.precision(1), 2.0 / 3.0);
        assert_eq!(c.recall(1), 0.5);
        assert_eq!(c.f1(3), 1.0);
    }

    #[test]
    fn undefined_rates_are_zero() {
        let c = example();
        // FP is never true nor predicted.
        assert_eq!(c.precision(2), 0.0);
        assert_eq!(c.recall(2), 0.0);
        assert_eq!(c.f1(2), 0.0);
        assert_eq!(Confusion::default().accuracy(), 0.0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut c = example();
        c.merge(&example());
        assert_eq!(c.total(), 24);
        assert_eq!(c.counts[1][0], 4);
        assert_eq!(c.accuracy(), 9.0 / 12.0);
    }

    #[test]
    #[should_panic(expected = "below 4")]
    fn out_of_range_class_panics() {
        Confusion::default().add(4, 0);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax4(&[0.1, 0.4, 0.4, 0.1]), 1);
        assert_eq!(argmax4(&[0.7, 0.1, 0.1, 0.1]), 0);
        assert_eq!(argmax4(&[0.1, 0.1, 0.1, 0.7]), 3);
        assert_eq!(argmax4(&[0.25; 4]), 0);
        assert_eq!(argmax4(&[f32::NAN, 0.1, 0.2, f32::NAN]), 2);
        assert_eq!(argmax4(&[f32::NAN; 4]), 0);
    }
}
