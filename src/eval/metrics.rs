//! Per-query ranking metrics with binary relevance.
//!
//! `ranked` is one query's result list of document indices, best first; `relevant` holds the
//! documents judged relevant for it (any order, no duplicates). A document listed twice in
//! `ranked` is credited once, at its first (best) position, so every metric lies in [0, 1].

/// The 0-based ranks, ascending, at which a relevant document first appears in `ranked[..k]`.
fn hit_ranks(ranked: &[u32], relevant: &[u32], k: usize) -> Vec<usize> {
    // Relevant lists are short (tens of documents), so a linear scan of `relevant` per ranked
    // document beats building a hash set; `seen` keeps duplicates in `ranked` from counting twice.
    let mut seen = vec![false; relevant.len()];
    let mut ranks = Vec::new();
    for (rank, doc) in ranked.iter().take(k).enumerate() {
        if let Some(j) = relevant.iter().position(|r| r == doc) {
            if !seen[j] {
                seen[j] = true;
                ranks.push(rank);
            }
        }
    }
    ranks
}

/// The fraction of `relevant` found in the first `k` results; 0 when `relevant` is empty.
pub fn recall_at(ranked: &[u32], relevant: &[u32], k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    hit_ranks(ranked, relevant, k).len() as f64 / relevant.len() as f64
}

/// 1 when any relevant document is among the first `k` results, else 0.
pub fn hit_at(ranked: &[u32], relevant: &[u32], k: usize) -> f64 {
    let found = ranked.iter().take(k).any(|doc| relevant.contains(doc));
    if found {
        1.0
    } else {
        0.0
    }
}

/// `1 / rank` (1-based) of the first relevant document when it is within the first `k`, else 0.
pub fn reciprocal_rank_at(ranked: &[u32], relevant: &[u32], k: usize) -> f64 {
    match ranked.iter().take(k).position(|doc| relevant.contains(doc)) {
        Some(rank) => 1.0 / (rank + 1) as f64,
        None => 0.0,
    }
}

/// Discounted gain of a hit at 0-based rank `rank`: `1 / log2(rank + 2)`.
fn discount(rank: usize) -> f64 {
    1.0 / ((rank + 2) as f64).log2()
}

/// nDCG at `k` with binary gains: DCG over the first `k` results divided by the DCG of an ideal
/// list with `min(|relevant|, k)` relevant documents on top; 0 when `relevant` is empty.
pub fn ndcg_at(ranked: &[u32], relevant: &[u32], k: usize) -> f64 {
    let ideal_hits = relevant.len().min(k);
    if ideal_hits == 0 {
        return 0.0;
    }
    let dcg: f64 = hit_ranks(ranked, relevant, k).into_iter().map(discount).sum();
    let idcg: f64 = (0..ideal_hits).map(discount).sum();
    dcg / idcg
}

/// What stands at rank 1 of a set of rankings: how many queries a reranker of the list could
/// still lift, and how many it cannot (their first result is a likely false negative, or no
/// relevant document was retrieved).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirstResults {
    pub queries: usize,
    /// A relevant document first.
    pub relevant: usize,
    /// Not that, but a listed near-duplicate of a relevant document (a likely false negative).
    pub near_duplicate: usize,
    /// Neither; the first relevant document within the first 10 results, further down the
    /// list, or not in it.
    pub relevant_in_10: usize,
    pub relevant_below_10: usize,
    pub relevant_absent: usize,
}

impl FirstResults {
    /// Counts one query: `ranked` best first, `relevant` its judged documents, `near_duplicate`
    /// whether a document is a listed near-duplicate of one of them.
    pub fn add(&mut self, ranked: &[u32], relevant: &[u32], near_duplicate: impl Fn(u32) -> bool) {
        self.queries += 1;
        let first_relevant = ranked.iter().position(|d| relevant.contains(d));
        match (ranked.first(), first_relevant) {
            (_, Some(0)) => self.relevant += 1,
            (Some(&first), _) if near_duplicate(first) => self.near_duplicate += 1,
            (_, Some(rank)) if rank < 10 => self.relevant_in_10 += 1,
            (_, Some(_)) => self.relevant_below_10 += 1,
            (_, None) => self.relevant_absent += 1,
        }
    }

    /// The counts as shares of the queries, in field order after `queries`.
    pub fn shares(&self) -> [f64; 5] {
        let n = self.queries.max(1) as f64;
        [self.relevant, self.near_duplicate, self.relevant_in_10, self.relevant_below_10, self.relevant_absent]
            .map(|c| c as f64 / n)
    }
}

/// The standard metric set, one value per query in the order of the runs given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RankingMetrics {
    pub recall_1: Vec<f64>,
    pub recall_5: Vec<f64>,
    pub recall_10: Vec<f64>,
    pub recall_100: Vec<f64>,
    pub mrr_10: Vec<f64>,
    pub ndcg_10: Vec<f64>,
}

impl RankingMetrics {
    /// Scores every `(ranked, relevant)` pair.
    pub fn compute(runs: &[(&[u32], &[u32])]) -> Self {
        let mut metrics = RankingMetrics::default();
        for &(ranked, relevant) in runs {
            metrics.recall_1.push(recall_at(ranked, relevant, 1));
            metrics.recall_5.push(recall_at(ranked, relevant, 5));
            metrics.recall_10.push(recall_at(ranked, relevant, 10));
            metrics.recall_100.push(recall_at(ranked, relevant, 100));
            metrics.mrr_10.push(reciprocal_rank_at(ranked, relevant, 10));
            metrics.ndcg_10.push(ndcg_at(ranked, relevant, 10));
        }
        metrics
    }

    /// Each metric's display name with its per-query values, in a fixed order for reports.
    pub fn named(&self) -> [(&'static str, &[f64]); 6] {
        [
            ("R@1", &self.recall_1),
            ("R@5", &self.recall_5),
            ("R@10", &self.recall_10),
            ("R@100", &self.recall_100),
            ("MRR@10", &self.mrr_10),
            ("nDCG@10", &self.ndcg_10),
        ]
    }
}

/// Mean recall at every cutoff: element `j` is the mean over runs of recall@(j + 1). Queries
/// without relevant documents count as recall 0, as in [`recall_at`]; no runs give all zeros.
pub fn mean_recall_curve(runs: &[(&[u32], &[u32])], max_k: usize) -> Vec<f64> {
    let mut curve = vec![0.0; max_k];
    if runs.is_empty() {
        return curve;
    }
    // One pass per query: each hit at rank r raises recall at every cutoff past r, so add the
    // per-rank increments and take a running sum instead of recomputing recall max_k times.
    let mut increments = vec![0.0; max_k];
    for &(ranked, relevant) in runs {
        if relevant.is_empty() {
            continue;
        }
        let share = 1.0 / relevant.len() as f64;
        for rank in hit_ranks(ranked, relevant, max_k) {
            increments[rank] += share;
        }
    }
    let mut running = 0.0;
    for (point, increment) in curve.iter_mut().zip(&increments) {
        running += increment;
        *point = running / runs.len() as f64;
    }
    curve
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn first_results_are_sorted_by_what_stands_at_rank_1() {
        let dup = |d: u32| d == 7;
        let mut f = FirstResults::default();
        f.add(&[3, 7], &[3], dup); // relevant first
        f.add(&[7, 3], &[3], dup); // a near-duplicate first, relevant second
        f.add(&[1, 7, 3], &[3], dup); // relevant third: within 10
        let long: Vec<u32> = (100..120).chain([3]).collect();
        f.add(&long, &[3], dup); // relevant 21st
        f.add(&[1, 2], &[3], dup); // never retrieved
        f.add(&[], &[3], dup);
        let expected = FirstResults {
            queries: 6,
            relevant: 1,
            near_duplicate: 1,
            relevant_in_10: 1,
            relevant_below_10: 1,
            relevant_absent: 2,
        };
        assert_eq!(f, expected);
        assert!(close(f.shares().iter().sum::<f64>(), 1.0));
    }

    #[test]
    fn single_relevant_document() {
        let (ranked, relevant) = ([5, 3, 9], [3]);
        assert_eq!(recall_at(&ranked, &relevant, 1), 0.0);
        assert_eq!(recall_at(&ranked, &relevant, 2), 1.0);
        assert_eq!(hit_at(&ranked, &relevant, 1), 0.0);
        assert_eq!(hit_at(&ranked, &relevant, 2), 1.0);
        assert_eq!(reciprocal_rank_at(&ranked, &relevant, 10), 0.5);
        assert_eq!(reciprocal_rank_at(&ranked, &relevant, 1), 0.0);
        assert!(close(ndcg_at(&ranked, &relevant, 10), 1.0 / 3f64.log2()));
        assert_eq!(ndcg_at(&ranked, &relevant, 1), 0.0);
    }

    #[test]
    fn several_relevant_documents() {
        // Hits at ranks 1 and 3 (1-based); 7 is relevant but never retrieved.
        let (ranked, relevant) = ([4, 8, 2, 6], [2, 4, 7]);
        assert!(close(recall_at(&ranked, &relevant, 1), 1.0 / 3.0));
        assert!(close(recall_at(&ranked, &relevant, 3), 2.0 / 3.0));
        assert_eq!(reciprocal_rank_at(&ranked, &relevant, 10), 1.0);
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!(close(ndcg_at(&ranked, &relevant, 10), dcg / idcg));
        // At k = 2 the ideal list holds two hits, the actual one.
        assert!(close(ndcg_at(&ranked, &relevant, 2), 1.0 / (1.0 + 1.0 / 3f64.log2())));
    }

    #[test]
    fn perfect_ranking_scores_one() {
        let (ranked, relevant) = ([1, 2, 3, 4], [2, 1]);
        assert_eq!(ndcg_at(&ranked, &relevant, 10), 1.0);
        assert_eq!(recall_at(&ranked, &relevant, 2), 1.0);
    }

    #[test]
    fn cutoff_past_the_list_and_zero_cutoff() {
        let (ranked, relevant) = ([5, 3], [3, 11]);
        assert_eq!(recall_at(&ranked, &relevant, 1000), 0.5);
        assert_eq!(hit_at(&ranked, &relevant, 1000), 1.0);
        assert_eq!(recall_at(&ranked, &relevant, 0), 0.0);
        assert_eq!(ndcg_at(&ranked, &relevant, 0), 0.0);
        assert_eq!(reciprocal_rank_at(&ranked, &relevant, 0), 0.0);
    }

    #[test]
    fn empty_inputs_score_zero() {
        assert_eq!(recall_at(&[1, 2], &[], 10), 0.0);
        assert_eq!(ndcg_at(&[1, 2], &[], 10), 0.0);
        assert_eq!(hit_at(&[1, 2], &[], 10), 0.0);
        assert_eq!(recall_at(&[], &[1], 10), 0.0);
        assert_eq!(ndcg_at(&[], &[1], 10), 0.0);
    }

    #[test]
    fn duplicates_in_the_ranking_count_once() {
        let (ranked, relevant) = ([3, 3, 3], [3, 4]);
        assert_eq!(recall_at(&ranked, &relevant, 3), 0.5);
        assert!(ndcg_at(&ranked, &relevant, 3) <= 1.0);
        assert!(close(ndcg_at(&ranked, &relevant, 3), 1.0 / (1.0 + 1.0 / 3f64.log2())));
    }

    #[test]
    fn metric_set_and_curve() {
        let a: (&[u32], &[u32]) = (&[5, 3, 9], &[3]);
        let b: (&[u32], &[u32]) = (&[1, 2], &[1, 9]);
        let m = RankingMetrics::compute(&[a, b]);
        assert_eq!(m.recall_1, vec![0.0, 0.5]);
        assert_eq!(m.recall_5, vec![1.0, 0.5]);
        assert_eq!(m.mrr_10, vec![0.5, 1.0]);
        let names: Vec<&str> = m.named().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["R@1", "R@5", "R@10", "R@100", "MRR@10", "nDCG@10"]);
        assert_eq!(m.named()[5].1, m.ndcg_10.as_slice());

        let curve = mean_recall_curve(&[a, b], 4);
        assert_eq!(curve, vec![0.25, 0.75, 0.75, 0.75]);
        for (j, &c) in curve.iter().enumerate() {
            let direct = (recall_at(a.0, a.1, j + 1) + recall_at(b.0, b.1, j + 1)) / 2.0;
            assert!(close(c, direct));
        }
        assert_eq!(mean_recall_curve(&[], 3), vec![0.0; 3]);
        assert!(mean_recall_curve(&[a], 0).is_empty());
    }
}
