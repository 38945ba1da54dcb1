//! What a caller hands in: queries, their ragged candidate lists, optional base scores.
//! Validation happens here, once, before any engine runs, so engines can index freely.

use crate::error::{Error, ErrorKind, Result};
use crate::values::Values;

/// A corpus matrix the caller keeps alive; candidates can then be named by row id.
/// The library only borrows it: no copy is made.
#[derive(Clone, Copy, Debug)]
pub struct Corpus<'a> {
    data: Values<'a>,
    rows: usize,
    dim: usize,
    row_stride: usize,
}

/// Values a `rows × dim` matrix with `row_stride` spans in memory.
fn span(rows: usize, dim: usize, row_stride: usize) -> Option<usize> {
    if rows == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(row_stride)?.checked_add(dim)
}

/// Checks that `data` holds `rows` rows of `dim` values, `row_stride` apart.
fn check_matrix(name: &str, data_len: usize, rows: usize, dim: usize, row_stride: usize) -> Result<()> {
    if row_stride < dim && rows > 0 {
        return Err(Error::invalid_argument(format!(
            "{name}: row stride {row_stride} is smaller than the row width {dim}"
        )));
    }
    match span(rows, dim, row_stride) {
        Some(need) if need <= data_len => Ok(()),
        need => Err(Error::invalid_argument(format!(
            "{name}: {rows} rows of {dim} values with stride {row_stride} need {} values, the buffer holds {data_len}",
            need.map_or("more than usize::MAX".to_string(), |n| n.to_string())
        ))),
    }
}

impl<'a> Corpus<'a> {
    /// `rows` rows of `dim` values (f32, f16 or bf16), row `i` starting at `data[i * row_stride]`.
    pub fn new(data: impl Into<Values<'a>>, rows: usize, dim: usize, row_stride: usize) -> Result<Corpus<'a>> {
        let data = data.into();
        if dim == 0 {
            return Err(Error::invalid_argument("corpus: dim must be at least 1"));
        }
        check_matrix("corpus", data.len(), rows, dim, row_stride)?;
        Ok(Corpus { data, rows, dim, row_stride })
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The values the rows are in.
    pub fn data(&self) -> Values<'a> {
        self.data
    }
    pub(crate) fn row(&self, i: usize) -> Values<'a> {
        let start = i * self.row_stride;
        self.data.slice(start..start + self.dim)
    }
}

/// Where the candidate embeddings are.
#[derive(Clone, Copy, Debug)]
pub enum Candidates<'a> {
    /// All queries' candidates as consecutive rows of one row-major matrix.
    Dense { data: Values<'a>, row_stride: usize },
    /// Row ids into a registered corpus, one per candidate.
    ById { corpus: &'a Corpus<'a>, ids: &'a [u64] },
}

/// A batch of queries with ragged candidate lists.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// The embedding width the caller uses; must equal the adapter's `d`.
    pub dim: usize,
    /// `candidate_counts.len()` query rows of `dim` values, contiguous.
    pub queries: Values<'a>,
    /// Candidates per query; 0 is allowed.
    pub candidate_counts: &'a [usize],
    pub candidates: Candidates<'a>,
    /// One retriever score per candidate, or `None` to use `sim(q, c)` (SPEC §4).
    pub base_scores: Option<&'a [f32]>,
}

impl<'a> Batch<'a> {
    /// Dense candidates, `dim` values per row, rows packed (`row_stride = dim`); no base scores.
    /// Queries and candidates may each be f32, f16 or bf16 (`&[f32]`, `&[half::f16]`, ...).
    pub fn dense(
        dim: usize,
        queries: impl Into<Values<'a>>,
        candidate_counts: &'a [usize],
        candidates: impl Into<Values<'a>>,
    ) -> Self {
        Batch {
            dim,
            queries: queries.into(),
            candidate_counts,
            candidates: Candidates::Dense { data: candidates.into(), row_stride: dim },
            base_scores: None,
        }
    }

    /// Attaches retriever scores, one per candidate.
    pub fn with_base_scores(mut self, base_scores: &'a [f32]) -> Self {
        self.base_scores = Some(base_scores);
        self
    }

    pub fn query_count(&self) -> usize {
        self.candidate_counts.len()
    }
    pub(crate) fn query(&self, i: usize) -> Values<'a> {
        self.queries.slice(i * self.dim..(i + 1) * self.dim)
    }
    /// Candidate `i` of the whole batch (queries' lists concatenated).
    pub(crate) fn candidate(&self, i: usize) -> Values<'a> {
        match self.candidates {
            Candidates::Dense { data, row_stride } => data.slice(i * row_stride..i * row_stride + self.dim),
            Candidates::ById { corpus, ids } => corpus.row(ids[i] as usize),
        }
    }

    /// The sum of `candidate_counts`, which positions and orders (u32) must be able to index.
    pub fn total_candidates(&self) -> Result<usize> {
        self.candidate_counts
            .iter()
            .try_fold(0usize, |acc, &k| acc.checked_add(k))
            .filter(|&t| t <= u32::MAX as usize)
            .ok_or_else(|| Error::invalid_argument("candidate_counts: total exceeds 2^32 - 1 candidates"))
    }

    /// Checks every length and id against the adapter's `d`, and the queries' values; returns
    /// the total candidate count. After this, every index the engines use is in bounds. The
    /// candidates' values are left to [`Batch::check_finite_candidates`], which a session
    /// splits between its threads.
    pub(crate) fn validate(&self, model_dim: usize) -> Result<usize> {
        if self.dim != model_dim {
            return Err(Error::new(
                ErrorKind::DimensionMismatch,
                format!("dim: the adapter expects embeddings of {model_dim} values, got {}", self.dim),
            ));
        }
        let n = self.query_count();
        let want = n.checked_mul(self.dim);
        if want != Some(self.queries.len()) {
            return Err(Error::invalid_argument(format!(
                "queries: expected {n} queries × {} values = {}, got {}",
                self.dim,
                want.map_or("overflow".to_string(), |w| w.to_string()),
                self.queries.len()
            )));
        }
        let total = self.total_candidates()?;
        match self.candidates {
            Candidates::Dense { data, row_stride } => {
                check_matrix("candidates", data.len(), total, self.dim, row_stride)?;
                // More rows than the counts use means counts and candidates disagree.
                if total > 0 && data.len() > total * row_stride {
                    return Err(Error::invalid_argument(format!(
                        "candidates: {} values hold more than the {total} rows of stride {row_stride} that \
                         candidate_counts add up to",
                        data.len()
                    )));
                }
            }
            Candidates::ById { corpus, ids } => {
                if corpus.dim() != self.dim {
                    return Err(Error::new(
                        ErrorKind::DimensionMismatch,
                        format!("corpus: expected rows of {} values, the corpus has {}", self.dim, corpus.dim()),
                    ));
                }
                if ids.len() != total {
                    return Err(Error::invalid_argument(format!(
                        "candidate_ids: expected {total} ids (the sum of candidate_counts), got {}",
                        ids.len()
                    )));
                }
                if let Some(pos) = ids.iter().position(|&id| id >= corpus.rows() as u64) {
                    let (query, local) = self.locate(pos);
                    return Err(Error::invalid_argument(format!(
                        "candidate_ids: query {query}, position {local}: id {} is out of range for a corpus of {} rows",
                        ids[pos],
                        corpus.rows()
                    )));
                }
            }
        }
        if let Some(base) = self.base_scores {
            if base.len() != total {
                return Err(Error::invalid_argument(format!(
                    "base_scores: expected {total} values (the sum of candidate_counts), got {}",
                    base.len()
                )));
            }
        }
        self.check_finite_queries()?;
        Ok(total)
    }

    fn check_finite_queries(&self) -> Result<()> {
        (0..self.query_count()).try_for_each(|q| non_finite("queries", q, None, self.query(q)))
    }

    /// Checks the batch-wide candidates `range` and their base scores for NaN and ±Inf.
    pub(crate) fn check_finite_candidates(&self, range: std::ops::Range<usize>) -> Result<()> {
        let (mut query, position) = self.locate(range.start);
        let mut start = range.start - position;
        for i in range {
            while i >= start + self.candidate_counts[query] {
                start += self.candidate_counts[query];
                query += 1;
            }
            non_finite("candidates", query, Some(i - start), self.candidate(i))?;
            if let Some(b) = self.base_scores.map(|b| b[i]).filter(|b| !b.is_finite()) {
                return Err(Error::new(
                    ErrorKind::NonFiniteInput,
                    format!("base_scores: query {query}, position {} is {b}", i - start),
                ));
            }
        }
        Ok(())
    }

    /// Whether every base score (if the batch has them) is finite.
    pub(crate) fn base_scores_finite(&self) -> bool {
        self.base_scores.is_none_or(|b| Values::F32(b).all_finite())
    }

    /// The sub-batch of queries `queries`, whose candidates are batch-wide `candidates`.
    pub(crate) fn slice(&self, queries: std::ops::Range<usize>, candidates: std::ops::Range<usize>) -> Batch<'a> {
        let candidate_rows = match self.candidates {
            Candidates::Dense { data, row_stride } => Candidates::Dense {
                data: data.get(candidates.start * row_stride..data.len()).unwrap_or(data.slice(0..0)),
                row_stride,
            },
            Candidates::ById { corpus, ids } => Candidates::ById { corpus, ids: &ids[candidates.clone()] },
        };
        Batch {
            dim: self.dim,
            queries: self.queries.slice(queries.start * self.dim..queries.end * self.dim),
            candidate_counts: &self.candidate_counts[queries],
            candidates: candidate_rows,
            base_scores: self.base_scores.map(|b| &b[candidates]),
        }
    }

    /// (query, position within its list) of batch-wide candidate `i`.
    pub(crate) fn locate(&self, i: usize) -> (usize, usize) {
        let mut start = 0;
        for (q, &k) in self.candidate_counts.iter().enumerate() {
            if i < start + k {
                return (q, i - start);
            }
            start += k;
        }
        (self.query_count(), i - start)
    }
}

/// The error for the first NaN or ±Inf in `row`, which is `what` of `query` (at `position`).
fn non_finite(what: &str, query: usize, position: Option<usize>, row: Values<'_>) -> Result<()> {
    match row.first_non_finite() {
        Some((col, x)) => {
            let at = position.map_or(String::new(), |p| format!(", position {p}"));
            Err(Error::new(ErrorKind::NonFiniteInput, format!("{what}: query {query}{at}, column {col} is {x}")))
        }
        None => Ok(()),
    }
}
