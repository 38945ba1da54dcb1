//! The retrieval benchmark on real text (cargo feature `pipeline`): a corpus of documents,
//! queries with train/dev/test splits, relevance judgments and known near-duplicates, in the
//! layout of `debian-descriptions-v1` (see `scripts/fetch-debian-descriptions.sh`):
//!
//! | file | contents |
//! |---|---|
//! | `corpus.jsonl.gz` | `{"doc_id", "text", ...}` a line |
//! | `queries.jsonl.gz` | `{"query_id", "split", "text", ...}` a line |
//! | `qrels.tsv` | `query_id  doc_id  relevance` with a header |
//! | `likely_false_negatives.tsv` | `query_id  doc_id  reason` with a header |
//!
//! Everything is resolved to dense indices once at load, so the rest of the pipeline works on
//! `u32` document and query numbers.

use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Which part of the queries a query belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Dev,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
    fn parse(s: &str) -> Option<Split> {
        match s {
            "train" => Some(Split::Train),
            "dev" => Some(Split::Dev),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: String,
    pub text: String,
    pub split: Split,
}

/// A document that is not judged relevant to a query but is known to be nearly the same thing
/// (`reason` as the dataset spells it, e.g. `same_source`): a likely false negative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearDuplicate {
    pub doc: u32,
    pub reason: String,
}

/// A loaded dataset; `relevant[q]` and `near_duplicates[q]` belong to `queries[q]`.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub documents: Vec<Document>,
    pub queries: Vec<Query>,
    /// Judged-relevant documents per query, ascending, never empty.
    pub relevant: Vec<Vec<u32>>,
    /// Known near-duplicates per query, ascending by document, disjoint from `relevant`.
    pub near_duplicates: Vec<Vec<NearDuplicate>>,
}

/// The files [`Dataset::load`] reads.
pub const DATASET_FILES: [&str; 4] = ["corpus.jsonl.gz", "queries.jsonl.gz", "qrels.tsv", "likely_false_negatives.tsv"];

impl Dataset {
    /// Loads a dataset directory; every id must resolve and every query must have a judgment.
    pub fn load(dir: impl AsRef<Path>) -> Result<Dataset> {
        let dir = dir.as_ref();
        let mut documents = Vec::new();
        for_each_json_line(&dir.join("corpus.jsonl.gz"), |v| {
            documents.push(Document { id: string_field(v, "doc_id")?, text: string_field(v, "text")? });
            Ok(())
        })?;
        let mut queries = Vec::new();
        for_each_json_line(&dir.join("queries.jsonl.gz"), |v| {
            let split = string_field(v, "split")?;
            let split =
                Split::parse(&split).ok_or_else(|| format!("split: expected train, dev or test, got {split:?}"))?;
            queries.push(Query { id: string_field(v, "query_id")?, text: string_field(v, "text")?, split });
            Ok(())
        })?;
        let doc_index = index_of(documents.iter().map(|d| d.id.as_str()), "doc_id")?;
        let query_index = index_of(queries.iter().map(|q| q.id.as_str()), "query_id")?;

        let mut relevant = vec![Vec::new(); queries.len()];
        for_each_tsv_row(&dir.join("qrels.tsv"), &["query_id", "doc_id", "relevance"], |cols| {
            let (q, d) = resolve(&query_index, &doc_index, cols[0], cols[1])?;
            match cols[2] {
                "0" => {}
                "1" => relevant[q as usize].push(d),
                other => return Err(format!("relevance: expected 0 or 1, got {other:?}")),
            }
            Ok(())
        })?;
        let mut near_duplicates = vec![Vec::new(); queries.len()];
        for_each_tsv_row(&dir.join("likely_false_negatives.tsv"), &["query_id", "doc_id", "reason"], |cols| {
            let (q, d) = resolve(&query_index, &doc_index, cols[0], cols[1])?;
            near_duplicates[q as usize].push(NearDuplicate { doc: d, reason: cols[2].to_string() });
            Ok(())
        })?;
        let mut dataset = Dataset { documents, queries, relevant, near_duplicates };
        dataset.normalise()?;
        Ok(dataset)
    }

    /// Sorts the per-query lists, drops duplicates and near-duplicates that are also judged
    /// relevant, and checks that every query has a relevant document.
    fn normalise(&mut self) -> Result<()> {
        for (q, rel) in self.relevant.iter_mut().enumerate() {
            rel.sort_unstable();
            rel.dedup();
            if rel.is_empty() {
                return Err(Error::invalid_argument(format!(
                    "qrels.tsv: query {} has no relevant document",
                    self.queries[q].id
                )));
            }
        }
        for (dups, rel) in self.near_duplicates.iter_mut().zip(&self.relevant) {
            dups.sort_by_key(|n| n.doc);
            dups.dedup_by_key(|n| n.doc);
            dups.retain(|n| rel.binary_search(&n.doc).is_err());
        }
        Ok(())
    }

    /// Query numbers of one split, ascending.
    pub fn split(&self, split: Split) -> Vec<u32> {
        (0..self.queries.len() as u32).filter(|&q| self.queries[q as usize].split == split).collect()
    }

    /// A smaller, self-consistent dataset for quick runs and CI: the first `max_docs` documents in
    /// a fixed pseudo-random order (seeded by `seed`), and the queries whose relevant documents
    /// all survive. Near-duplicate lists keep the surviving documents.
    pub fn subset(&self, max_docs: usize, seed: u64) -> Dataset {
        if max_docs >= self.documents.len() {
            return self.clone();
        }
        let mut rng = crate::sampler::SplitMix64::new(seed);
        let mut keyed: Vec<(u64, u32)> = (0..self.documents.len() as u32).map(|d| (rng.next_u64(), d)).collect();
        keyed.sort_unstable();
        let mut kept: Vec<u32> = keyed[..max_docs].iter().map(|&(_, d)| d).collect();
        kept.sort_unstable();
        let mut new_doc = vec![u32::MAX; self.documents.len()];
        for (i, &d) in kept.iter().enumerate() {
            new_doc[d as usize] = i as u32;
        }
        let mut out = Dataset {
            documents: kept.iter().map(|&d| self.documents[d as usize].clone()).collect(),
            ..Dataset::default()
        };
        for (q, query) in self.queries.iter().enumerate() {
            if self.relevant[q].iter().any(|&d| new_doc[d as usize] == u32::MAX) {
                continue;
            }
            out.queries.push(query.clone());
            out.relevant.push(self.relevant[q].iter().map(|&d| new_doc[d as usize]).collect());
            out.near_duplicates.push(
                self.near_duplicates[q]
                    .iter()
                    .filter(|n| new_doc[n.doc as usize] != u32::MAX)
                    .map(|n| NearDuplicate { doc: new_doc[n.doc as usize], reason: n.reason.clone() })
                    .collect(),
            );
        }
        out
    }
}

fn resolve(
    queries: &HashMap<&str, u32>,
    docs: &HashMap<&str, u32>,
    query_id: &str,
    doc_id: &str,
) -> std::result::Result<(u32, u32), String> {
    let q = *queries.get(query_id).ok_or_else(|| format!("unknown query_id {query_id:?}"))?;
    let d = *docs.get(doc_id).ok_or_else(|| format!("unknown doc_id {doc_id:?}"))?;
    Ok((q, d))
}

fn index_of<'a>(ids: impl Iterator<Item = &'a str>, what: &str) -> Result<HashMap<&'a str, u32>> {
    let mut map = HashMap::new();
    for (i, id) in ids.enumerate() {
        if map.insert(id, i as u32).is_some() {
            return Err(Error::invalid_argument(format!("duplicate {what} {id:?}")));
        }
    }
    Ok(map)
}

fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot open {}: {e}", path.display())))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

/// Calls `f` for each line of `path` (one 1-based line number per error message).
fn for_each_line(path: &Path, mut f: impl FnMut(usize, &str) -> std::result::Result<(), String>) -> Result<()> {
    let mut reader = open(path)?;
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: line {}: {e}", path.display(), number + 1)))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        f(number, text).map_err(|m| Error::invalid_argument(format!("{}: line {number}: {m}", path.display())))?;
    }
}

fn for_each_json_line(
    path: &Path,
    mut f: impl FnMut(&serde_json::Value) -> std::result::Result<(), String>,
) -> Result<()> {
    for_each_line(path, |_, text| {
        if text.is_empty() {
            return Ok(());
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        f(&value)
    })
}

fn string_field(v: &serde_json::Value, key: &str) -> std::result::Result<String, String> {
    v.get(key).and_then(|s| s.as_str()).map(str::to_string).ok_or_else(|| format!("missing string field {key:?}"))
}

fn for_each_tsv_row(
    path: &Path,
    header: &[&str],
    mut f: impl FnMut(&[&str]) -> std::result::Result<(), String>,
) -> Result<()> {
    for_each_line(path, |number, text| {
        let cols: Vec<&str> = text.split('\t').collect();
        if number == 1 {
            return if cols == header { Ok(()) } else { Err(format!("header: expected {header:?}, got {cols:?}")) };
        }
        if text.is_empty() {
            return Ok(());
        }
        if cols.len() != header.len() {
            return Err(format!("expected {} tab-separated columns, got {}", header.len(), cols.len()));
        }
        f(&cols)
    })
}
