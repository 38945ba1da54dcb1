//! Exact top-K retrieval by inner product: the first stage whose candidates the adapter reranks.
//!
//! Queries are scored against the whole corpus a block at a time (one GEMM per block of
//! queries, so the corpus streams through the cache once per block rather than once per
//! query), and each row keeps its K best with a partial selection.

use crate::error::{Error, Result};
use crate::linalg::gemm;

/// Queries per GEMM block: 64 rows × a 20k-document corpus is a 5 MB score block.
const QUERY_BLOCK: usize = 64;

/// The K best documents of each query, best first (ties: lower document number first).
#[derive(Clone, Debug, PartialEq)]
pub struct TopK {
    /// Candidates per query: min(requested K, corpus size).
    pub k: usize,
    /// `queries × k` document numbers, row-major.
    pub docs: Vec<u32>,
    /// `queries × k` inner products, row-major.
    pub scores: Vec<f32>,
}

impl TopK {
    pub fn queries(&self) -> usize {
        self.docs.len().checked_div(self.k).unwrap_or(0)
    }
    pub fn docs_of(&self, query: usize) -> &[u32] {
        &self.docs[query * self.k..(query + 1) * self.k]
    }
    pub fn scores_of(&self, query: usize) -> &[f32] {
        &self.scores[query * self.k..(query + 1) * self.k]
    }
}

/// The top `k` documents of `corpus` (`n × dim`, row-major) for each row of `queries`
/// (`m × dim`) by inner product, computed on `threads` threads.
pub fn exact_top_k(queries: &[f32], corpus: &[f32], dim: usize, k: usize, threads: usize) -> Result<TopK> {
    if dim == 0 {
        return Err(Error::invalid_argument("dim: expected > 0, got 0"));
    }
    if threads == 0 || threads > crate::MAX_THREADS {
        return Err(Error::invalid_argument(format!("threads: expected 1..={}, got {threads}", crate::MAX_THREADS)));
    }
    for (name, m) in [("queries", queries), ("corpus", corpus)] {
        if m.len() % dim != 0 {
            return Err(Error::invalid_argument(format!("{name}: length {} is not a multiple of dim {dim}", m.len())));
        }
        check_finite_rows(name, m, dim)?;
    }
    let (m, n) = (queries.len() / dim, corpus.len() / dim);
    let k = k.min(n);
    let mut top = TopK { k, docs: vec![0; m * k], scores: vec![0.0; m * k] };
    if m == 0 || k == 0 {
        return Ok(top);
    }
    let rows_per_thread = m.div_ceil(threads.min(m));
    std::thread::scope(|s| {
        for ((q, docs), scores) in queries
            .chunks(rows_per_thread * dim)
            .zip(top.docs.chunks_mut(rows_per_thread * k))
            .zip(top.scores.chunks_mut(rows_per_thread * k))
        {
            s.spawn(move || top_k_rows(q, corpus, dim, k, docs, scores));
        }
    });
    Ok(top)
}

/// Fails with the row and column of the first NaN or ±Inf in the row-major matrix `m`.
pub(crate) fn check_finite_rows(name: &str, m: &[f32], dim: usize) -> Result<()> {
    match m.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::new(
            crate::ErrorKind::NonFiniteInput,
            format!("{name}: row {} column {} is {}", i / dim, i % dim, m[i]),
        )),
        None => Ok(()),
    }
}

fn top_k_rows(queries: &[f32], corpus: &[f32], dim: usize, k: usize, docs: &mut [u32], scores: &mut [f32]) {
    let n = corpus.len() / dim;
    let mut block = vec![0.0f32; QUERY_BLOCK * n];
    let mut order: Vec<u32> = Vec::with_capacity(n);
    for (b, q) in queries.chunks(QUERY_BLOCK * dim).enumerate() {
        let rows = q.len() / dim;
        gemm(rows, dim, n, q, (dim, 1), corpus, (1, dim), &mut block, n);
        for r in 0..rows {
            let row = &block[r * n..(r + 1) * n];
            // Descending score, then ascending document: a total order, since inputs are finite.
            let better = |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
            order.clear();
            order.extend(0..n as u32);
            if k < n {
                order.select_nth_unstable_by(k - 1, better);
            }
            order[..k].sort_unstable_by(better);
            let at = (b * QUERY_BLOCK + r) * k;
            docs[at..at + k].copy_from_slice(&order[..k]);
            for (s, &d) in scores[at..at + k].iter_mut().zip(&order[..k]) {
                *s = row[d as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::SplitMix64;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..len).map(|_| rng.next_symmetric(1.0)).collect()
    }

    /// Brute force in f64 with a full sort.
    fn reference(queries: &[f32], corpus: &[f32], dim: usize, k: usize) -> Vec<Vec<u32>> {
        let n = corpus.len() / dim;
        queries
            .chunks(dim)
            .map(|q| {
                let s: Vec<f64> =
                    corpus.chunks(dim).map(|c| q.iter().zip(c).map(|(a, b)| *a as f64 * *b as f64).sum()).collect();
                let mut idx: Vec<u32> = (0..n as u32).collect();
                idx.sort_by(|a, b| s[*b as usize].total_cmp(&s[*a as usize]).then(a.cmp(b)));
                idx.truncate(k);
                idx
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_on_odd_shapes_and_threads() {
        for (m, n, dim, k, threads) in
            [(1, 1, 1, 1, 1), (3, 10, 7, 4, 2), (130, 57, 13, 57, 3), (70, 200, 33, 100, 2), (5, 9, 3, 20, 1)]
        {
            let q = random(m * dim, m as u64);
            let c = random(n * dim, n as u64 + 99);
            let top = exact_top_k(&q, &c, dim, k, threads).unwrap();
            assert_eq!(top.k, k.min(n));
            let want = reference(&q, &c, dim, k);
            for (i, w) in want.iter().enumerate() {
                assert_eq!(top.docs_of(i), &w[..], "query {i} of shape {m}x{n}x{dim}");
                for (s, &d) in top.scores_of(i).iter().zip(w) {
                    let exact: f32 =
                        q[i * dim..(i + 1) * dim].iter().zip(&c[d as usize * dim..]).map(|(a, b)| a * b).sum();
                    assert!((s - exact).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn ties_keep_the_lower_document_first() {
        let c = [1.0, 0.0, 1.0, 0.0, 2.0, 0.0];
        let top = exact_top_k(&[1.0, 0.0], &c, 2, 3, 1).unwrap();
        assert_eq!(top.docs, vec![2, 0, 1]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(exact_top_k(&[1.0, 2.0, 3.0], &[1.0, 2.0], 2, 1, 1).unwrap_err().message().contains("queries"));
        assert!(exact_top_k(&[1.0, f32::NAN], &[1.0, 2.0], 2, 1, 1).unwrap_err().message().contains("column 1"));
        assert!(exact_top_k(&[1.0], &[1.0], 1, 1, 0).is_err());
        let empty = exact_top_k(&[], &[1.0], 1, 5, 1).unwrap();
        assert_eq!((empty.k, empty.queries()), (1, 0));
    }
}
