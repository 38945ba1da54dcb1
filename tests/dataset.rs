//! The dataset reader on small hand-made directories, good and broken, and on the frozen
//! debian-descriptions-v1 snapshot when it is at hand (its README's counts).

use rrra::dataset::{Dataset, Split};
use std::io::Write;
use std::path::{Path, PathBuf};

struct Files<'a> {
    corpus: &'a str,
    queries: &'a str,
    qrels: &'a str,
    near: &'a str,
}

const GOOD: Files<'static> = Files {
    corpus: r#"{"doc_id": "d1", "packages": ["a"], "text": "alpha document"}
{"doc_id": "d2", "text": "beta document"}
{"doc_id": "d3", "text": "gamma document"}
"#,
    queries: r#"{"query_id": "q-a", "split": "train", "text": "alpha"}
{"query_id": "q-b", "split": "test", "text": "beta"}
{"query_id": "q-c", "split": "dev", "text": "gamma"}
"#,
    qrels: "query_id\tdoc_id\trelevance\nq-a\td1\t1\nq-b\td2\t1\nq-b\td3\t1\nq-c\td3\t1\n",
    near: "query_id\tdoc_id\treason\nq-a\td2\tsame_source\nq-a\td1\tsame_source\nq-c\td1\tsame_first_paragraph\n",
};

fn write_dir(name: &str, f: &Files<'_>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rrra-dataset-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gz = |path: &Path, text: &str| {
        let mut e = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap();
    };
    gz(&dir.join("corpus.jsonl.gz"), f.corpus);
    gz(&dir.join("queries.jsonl.gz"), f.queries);
    std::fs::write(dir.join("qrels.tsv"), f.qrels).unwrap();
    std::fs::write(dir.join("likely_false_negatives.tsv"), f.near).unwrap();
    dir
}

#[test]
fn loads_and_resolves_ids() {
    let data = Dataset::load(write_dir("good", &GOOD)).unwrap();
    assert_eq!(data.documents.len(), 3);
    assert_eq!(data.documents[1].text, "beta document");
    assert_eq!(data.queries[1].split, Split::Test);
    assert_eq!(data.relevant, vec![vec![0], vec![1, 2], vec![2]]);
    // q-a lists its own relevant d1 as a near-duplicate: dropped, since relevance wins.
    assert_eq!(data.near_duplicates[0].iter().map(|n| n.doc).collect::<Vec<_>>(), vec![1]);
    assert_eq!(data.near_duplicates[2][0].reason, "same_first_paragraph");
    assert_eq!(data.split(Split::Dev), vec![2]);
}

#[test]
fn subset_keeps_queries_whose_documents_survive() {
    let data = Dataset::load(write_dir("subset", &GOOD)).unwrap();
    let small = data.subset(2, 1);
    assert_eq!(small.documents.len(), 2);
    for (q, rel) in small.relevant.iter().enumerate() {
        assert!(!rel.is_empty());
        for &d in rel {
            let original = data.queries.iter().position(|x| x.id == small.queries[q].id).unwrap();
            assert!(data.relevant[original].iter().any(|&o| data.documents[o as usize] == small.documents[d as usize]));
        }
    }
    assert_eq!(data.subset(10, 1).documents.len(), 3);
}

#[test]
fn broken_files_are_errors_that_name_file_and_line() {
    let cases: [(&str, Files<'_>, &str); 6] = [
        (
            "json",
            Files { corpus: "{\"doc_id\": \"d1\", \"text\": \n", ..GOOD },
            "corpus.jsonl.gz: line 1: invalid JSON",
        ),
        ("field", Files { corpus: "{\"doc_id\": \"d1\"}\n", ..GOOD }, "missing string field \"text\""),
        ("split", Files { queries: "{\"query_id\": \"q\", \"split\": \"val\", \"text\": \"x\"}\n", ..GOOD }, "split"),
        (
            "unknown",
            Files { qrels: "query_id\tdoc_id\trelevance\nq-a\td9\t1\n", ..GOOD },
            "qrels.tsv: line 2: unknown doc_id \"d9\"",
        ),
        ("header", Files { near: "query\tdoc\treason\n", ..GOOD }, "likely_false_negatives.tsv: line 1: header"),
        (
            "unjudged",
            Files { qrels: "query_id\tdoc_id\trelevance\nq-a\td1\t1\nq-b\td2\t1\n", ..GOOD },
            "query q-c has no relevant document",
        ),
    ];
    for (name, files, want) in cases {
        let err = Dataset::load(write_dir(name, &files)).unwrap_err();
        assert!(err.message().contains(want), "{name}: {}", err.message());
    }
    let missing = Dataset::load("/nonexistent/rrra-dataset").unwrap_err();
    assert!(missing.message().contains("corpus.jsonl.gz"), "{}", missing.message());
}

/// The frozen snapshot beside the project (this workplace) or where RRRA_DATA_DIR points.
fn snapshot() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RRRA_DATA_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/data/debian-descriptions-v1")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/debian-descriptions-v1")),
    ];
    candidates.into_iter().flatten().find(|p| p.join("corpus.jsonl.gz").is_file())
}

#[test]
fn frozen_snapshot_has_the_documented_counts() {
    let Some(dir) = snapshot() else {
        eprintln!("skipped: no debian-descriptions-v1 (run scripts/fetch-debian-descriptions.sh or set RRRA_DATA_DIR)");
        return;
    };
    let data = Dataset::load(&dir).unwrap();
    assert_eq!((data.documents.len(), data.queries.len()), (19265, 20097));
    let counts: Vec<usize> = [Split::Train, Split::Dev, Split::Test].iter().map(|&s| data.split(s).len()).collect();
    assert_eq!(counts, vec![16078, 2010, 2009]);
    assert_eq!(data.relevant.iter().map(Vec::len).sum::<usize>(), 21656);
    assert_eq!(data.near_duplicates.iter().map(Vec::len).sum::<usize>(), 283232);
}
