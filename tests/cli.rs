//! The `rrra` command-line tool, run as a user would: real files in a temp dir, the built
//! binary, and the library's own `Session::rerank` as the oracle.

// The tool's .npy module, shared so the tests write exactly what the tool reads.
#[allow(dead_code)]
#[path = "../src/bin/rrra/npy.rs"]
mod npy;

use rrra::{
    Adapter, AdapterConfig, AdapterWeights, BaseTransform, Batch, Candidates, Corpus, EngineKind, EnginePreference,
    ScoreOptions, Session, SessionOptions,
};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

const D: usize = 4;
const H: usize = 3;

/// A scratch directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rrra-cli-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// Writes `bytes` to `name` and returns its path as a string for the command line.
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic values in [-scale, scale).
fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

fn adapter(config: AdapterConfig) -> Adapter {
    let weights = AdapterWeights {
        dim: D,
        hidden: H,
        fc1_weight: values(1, H * 3 * D, 0.8),
        fc1_bias: values(2, H, 0.2),
        fc2_weight: values(3, D * H, 0.8),
        fc2_bias: values(4, D, 0.2),
        classifier_weight: values(5, 4 * H, 1.0),
        classifier_bias: values(6, 4, 0.5),
    };
    Adapter::new(weights, config).unwrap()
}

fn save_adapter(dir: &TempDir, config: AdapterConfig) -> (Adapter, String) {
    let adapter = adapter(config);
    let path = dir.path("model.safetensors");
    adapter.save(&path).unwrap();
    (adapter, path.to_str().unwrap().to_string())
}

fn ints(values: &[i64]) -> Vec<u8> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy::encode("<i8", &[values.len()], &bytes)
}

fn rrra(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rrra")).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "rrra failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The printed positions of each query, best first.
fn printed_orders(text: &str) -> Vec<Vec<u32>> {
    let mut orders: Vec<Vec<u32>> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"query") {
            orders.push(Vec::new());
        } else if let (Some(Ok(_rank)), Some(position)) = (words.first().map(|w| w.parse::<u32>()), words.get(1)) {
            orders.last_mut().unwrap().push(position.parse().unwrap());
        }
    }
    orders
}

/// `order` of one batch-wide rerank, split per query.
fn split(order: &[u32], counts: &[usize]) -> Vec<Vec<u32>> {
    let mut start = 0;
    counts
        .iter()
        .map(|&k| {
            start += k;
            order[start - k..start].to_vec()
        })
        .collect()
}

/// The value printed after `key` in `rrra inspect`'s text output.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with(' ')).map(str::trim))
        .unwrap_or_else(|| panic!("no '{key}' line in:\n{text}"))
}

#[test]
fn version_and_help() {
    assert_eq!(stdout(&rrra(&["--version"])).trim(), format!("rrra {}", rrra::VERSION));
    let help = stdout(&rrra(&["help"]));
    assert!(help.contains("rrra inspect") && help.contains("rrra rerank"), "{help}");
    assert_eq!(stdout(&rrra(&["--help"])), help);
    let rerank_help = stdout(&rrra(&["help", "rerank"]));
    for flag in [
        "--model",
        "--queries",
        "--candidates",
        "--counts",
        "--k",
        "--ids",
        "--corpus",
        "--base",
        "--lambda",
        "--base-transform",
        "--out",
        "--top",
    ] {
        assert!(rerank_help.contains(flag), "rerank usage lacks {flag}");
    }
    assert_eq!(stdout(&rrra(&["rerank", "--help"])), rerank_help);
    assert!(stdout(&rrra(&["inspect", "-h"])).contains("--json"));
    let none = rrra(&[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).starts_with("rrra: "));
}

fn noted_config() -> AdapterConfig {
    AdapterConfig {
        adapter_mu: 0.25,
        lambda_rr: 0.5,
        base_transform: BaseTransform::Softmax,
        encoder: "mini \"LM\"\n\tv2".to_string(),
        extra: vec![("x-note".to_string(), "a\\b".to_string())],
        ..AdapterConfig::default()
    }
}

#[test]
fn inspect_prints_dimensions_and_configuration() {
    let dir = TempDir::new("inspect");
    let (adapter, model) = save_adapter(&dir, noted_config());
    let text = stdout(&rrra(&["inspect", &model]));
    assert_eq!(field(&text, "d"), "4");
    assert_eq!(field(&text, "h"), "3");
    assert_eq!(adapter.parameter_count(), 3 * D * H + H + D * H + D + 4 * H + 4);
    assert_eq!(field(&text, "parameters"), adapter.parameter_count().to_string());
    assert_eq!(field(&text, "activation"), "relu");
    assert_eq!(field(&text, "adapter_mu"), "0.25");
    assert_eq!(field(&text, "base_transform"), "softmax");
    assert_eq!(field(&text, "lambda_rr"), "0.5");
    // Control characters are escaped so the output stays one line per field.
    assert_eq!(field(&text, "encoder"), "mini \"LM\"\\n\\tv2");
    assert_eq!(field(&text, "x-note"), "a\\b");
}

#[test]
fn inspect_json_is_valid_and_exact() {
    let dir = TempDir::new("json");
    let (adapter, model) = save_adapter(&dir, noted_config());
    let text = stdout(&rrra(&["inspect", "--json", &model]));
    let rest = json::value(text.trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"));
    assert!(rest.is_empty(), "trailing text after the JSON value: {rest}");
    for expected in [
        "\"d\": 4,".to_string(),
        "\"h\": 3,".to_string(),
        format!("\"parameters\": {},", adapter.parameter_count()),
        "\"adapter_mu\": 0.25,".to_string(),
        "\"adapter_tau\": 1.0,".to_string(),
        "\"similarity\": \"dot\",".to_string(),
        "\"encoder\": \"mini \\\"LM\\\"\\n\\tv2\",".to_string(),
        "\"extra\": {\"x-note\": \"a\\\\b\"}".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected} in:\n{text}");
    }
}

/// Just enough of a JSON parser to tell valid from invalid: returns the text after one value.
mod json {
    pub fn value(s: &str) -> Result<&str, String> {
        let s = s.trim_start();
        match s.chars().next() {
            Some('{') => seq(&s[1..], '}', |s| {
                let s = string(s.trim_start())?;
                let s = s.trim_start().strip_prefix(':').ok_or("expected ':'")?;
                value(s)
            }),
            Some('[') => seq(&s[1..], ']', value),
            Some('"') => string(s),
            Some('t') => s.strip_prefix("true").ok_or_else(|| "bad literal".into()),
            Some('f') => s.strip_prefix("false").ok_or_else(|| "bad literal".into()),
            Some('n') => s.strip_prefix("null").ok_or_else(|| "bad literal".into()),
            _ => {
                let len = s.find(|c: char| !"+-0123456789.eE".contains(c)).unwrap_or(s.len());
                s[..len].parse::<f64>().map_err(|_| format!("bad value at '{}'", &s[..s.len().min(20)]))?;
                Ok(&s[len..])
            }
        }
    }
    fn seq(mut s: &str, close: char, item: impl Fn(&str) -> Result<&str, String>) -> Result<&str, String> {
        if let Some(rest) = s.trim_start().strip_prefix(close) {
            return Ok(rest);
        }
        loop {
            s = item(s)?.trim_start();
            if let Some(rest) = s.strip_prefix(close) {
                return Ok(rest);
            }
            s = s.strip_prefix(',').ok_or(format!("expected ',' or '{close}'"))?;
        }
    }
    fn string(s: &str) -> Result<&str, String> {
        let mut chars = s.strip_prefix('"').ok_or("expected a string")?.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok(&s[i + 2..]),
                '\\' => match chars.next() {
                    Some((_, 'u')) => {
                        for _ in 0..4 {
                            chars.next().filter(|(_, h)| h.is_ascii_hexdigit()).ok_or("bad \\u escape")?;
                        }
                    }
                    Some((_, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't')) => {}
                    _ => return Err("bad escape".into()),
                },
                c if (c as u32) < 0x20 => return Err("raw control character in a string".into()),
                _ => {}
            }
        }
        Err("unterminated string".into())
    }
}

#[test]
fn rerank_dense_with_counts_matches_the_library_and_writes_out() {
    let dir = TempDir::new("dense");
    let (adapter, model) = save_adapter(&dir, AdapterConfig::default());
    let counts = [4usize, 0, 5];
    let total: usize = counts.iter().sum();
    let queries = values(10, 3 * D, 1.0);
    let candidates = values(11, total * D, 1.0);
    let q = dir.file("q.npy", &npy::encode_f32(&[3, D], &queries));
    let c = dir.file("c.npy", &npy::encode_f32(&[total, D], &candidates));
    let k = dir.file("k.npy", &ints(&[4, 0, 5]));
    let out = dir.path("scores.npy");

    let text = stdout(&rrra(&[
        "rerank",
        "--model",
        &model,
        "--queries",
        &q,
        "--candidates",
        &c,
        "--counts",
        &k,
        "--out",
        out.to_str().unwrap(),
    ]));
    let mut session = Session::new(Arc::new(adapter), SessionOptions::default()).unwrap();
    let expected = session.rerank(&Batch::dense(D, &queries, &counts, &candidates), &ScoreOptions::default()).unwrap();
    assert_eq!(printed_orders(&text), split(&expected.order, &counts), "{text}");
    assert_ne!(expected.order[..4], [0, 1, 2, 3], "weights too tame to test the order");

    let written = npy::read_f32(&out).unwrap();
    assert_eq!(written.shape, [total]);
    assert_eq!(written.data, expected.log_s_rr);
}

#[test]
fn rerank_by_ids_with_uniform_k_and_overrides_matches_the_library() {
    let dir = TempDir::new("ids");
    let (adapter, model) = save_adapter(&dir, AdapterConfig::default());
    let rows = 10;
    let corpus = values(20, rows * D, 1.0);
    let queries = values(21, 2 * D, 1.0);
    let ids = [7i64, 0, 3, 9, 3, 5];
    let base = values(22, ids.len(), 2.0);
    let q = dir.file("q.npy", &npy::encode_f32(&[2, D], &queries));
    let corpus_file = dir.file("corpus.npy", &npy::encode_f32(&[rows, D], &corpus));
    let id_file = dir.file("ids.npy", &ints(&ids));
    let b = dir.file("b.npy", &npy::encode_f32(&[ids.len()], &base));

    let text = stdout(&rrra(&[
        "rerank",
        "--model",
        &model,
        "--queries",
        &q,
        "--ids",
        &id_file,
        "--corpus",
        &corpus_file,
        "--k=3",
        "--base",
        &b,
        "--lambda",
        "2.5",
        "--base-transform",
        "softmax",
    ]));
    let corpus_view = Corpus::new(&corpus, rows, D, D).unwrap();
    let id_values: Vec<u64> = ids.iter().map(|&i| i as u64).collect();
    let batch = Batch {
        dim: D,
        queries: (&queries).into(),
        candidate_counts: &[3, 3],
        candidates: Candidates::ById { corpus: &corpus_view, ids: &id_values },
        base_scores: Some(&base),
    };
    let options =
        ScoreOptions { lambda_rr: Some(2.5), base_transform: Some(BaseTransform::Softmax), ..ScoreOptions::default() };
    let mut session = Session::new(Arc::new(adapter), SessionOptions::default()).unwrap();
    let expected = session.rerank(&batch, &options).unwrap();
    assert_eq!(printed_orders(&text), split(&expected.order, &[3, 3]), "{text}");
    // The id column shows the corpus row of each printed position.
    let first_row = text.lines().find(|l| l.trim_start().starts_with("1 ")).unwrap();
    let words: Vec<&str> = first_row.split_whitespace().collect();
    assert_eq!(words[2], ids[expected.order[0] as usize].to_string(), "{text}");
}

#[test]
fn rerank_one_query_given_as_a_vector_and_top() {
    let dir = TempDir::new("top");
    let (adapter, model) = save_adapter(&dir, AdapterConfig::default());
    let query = values(30, D, 1.0);
    let candidates = values(31, 6 * D, 1.0);
    let q = dir.file("q.npy", &npy::encode_f32(&[D], &query));
    let c = dir.file("c.npy", &npy::encode_f32(&[6, D], &candidates));

    let text = stdout(&rrra(&["rerank", "--model", &model, "--queries", &q, "--candidates", &c, "--top", "2"]));
    let mut session = Session::new(Arc::new(adapter), SessionOptions::default()).unwrap();
    let expected = session.rerank(&Batch::dense(D, &query, &[6], &candidates), &ScoreOptions::default()).unwrap();
    assert_eq!(printed_orders(&text), vec![expected.order[..2].to_vec()], "{text}");
}

/// Runs `rrra` and checks it fails with `code` and a one-line message containing `needle`.
fn fails(args: &[&str], code: i32, needle: &str) {
    let out = rrra(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: stderr: {err}");
    assert!(err.starts_with("rrra: ") && err.contains(needle), "{args:?}: expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn bad_input_fails_with_a_message_naming_the_problem() {
    let dir = TempDir::new("errors");
    let (_, model) = save_adapter(&dir, AdapterConfig::default());
    let q_values = values(40, 2 * D, 1.0);
    let q_bytes: Vec<u8> = q_values.iter().flat_map(|x| x.to_le_bytes()).collect();
    let good_q = npy::encode_f32(&[2, D], &q_values);
    let q = dir.file("q.npy", &good_q);
    let c = dir.file("c.npy", &npy::encode_f32(&[4, D], &values(41, 4 * D, 1.0)));
    let k = dir.file("k.npy", &ints(&[2, 2]));
    let missing = dir.path("missing.npy");
    let missing = missing.to_str().unwrap();

    let wide_q = dir.file("wide.npy", &npy::encode_f32(&[2, D + 1], &values(42, 2 * (D + 1), 1.0)));
    let mut fortran = good_q.clone();
    let at = fortran.windows(5).position(|w| w == b"False").unwrap();
    fortran[at..at + 5].copy_from_slice(b"True ");
    let fortran = dir.file("fortran.npy", &fortran);
    let truncated = dir.file("truncated.npy", &good_q[..good_q.len() - 3]);
    // A header that claims 4 TiB of data in front of 32 bytes must not be believed.
    let huge = dir.file("huge.npy", &npy::encode("<f4", &[1 << 40, D], &q_bytes));
    let big_endian = dir.file("big.npy", &npy::encode(">f4", &[2, D], &q_bytes));
    let garbage = dir.file("garbage.npy", b"not an array at all");
    let int_q = dir.file("int_q.npy", &npy::encode("<i8", &[D], &[0u8; 8 * D]));
    let negative = dir.file("negative.npy", &ints(&[0, -1, 2, 3]));
    let out_of_range = dir.file("far.npy", &ints(&[0, 1, 2, 4]));
    let bad_counts = dir.file("bad_k.npy", &ints(&[1, 2]));
    let not_model = dir.file("not_model.safetensors", b"\x08\0\0\0\0\0\0\0{}");

    let rerank = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["rerank", "--model", &model].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        // Usage errors: exit 2.
        (rerank(&["--queries", &q, "--candidates", &c, "--counts", &k, "--bogus"]), 2, "unknown option '--bogus'"),
        (vec!["frobnicate".into()], 2, "unknown command 'frobnicate'"),
        (rerank(&["--candidates", &c]), 2, "--queries"),
        (rerank(&["--queries", &q, "--candidates", &c, "--k"]), 2, "--k needs a value"),
        (rerank(&["--queries", &q, "--candidates", &c, "--k", "two"]), 2, "--k: expected a non-negative integer"),
        (rerank(&["--queries", &q, "--candidates", &c, "--k", "2", "--lambda", "-1"]), 2, "--lambda"),
        (rerank(&["--queries", &q, "--candidates", &c, "--k", "2", "--base-transform", "exp"]), 2, "--base-transform"),
        (rerank(&["--queries", &q, "--candidates", &c, "--k", "2", "--counts", &k]), 2, "either --counts or --k"),
        (rerank(&["--queries", &q, "--ids", &k]), 2, "--ids needs --corpus"),
        (rerank(&["--queries", &q, "--candidates", &c, "--model", &model]), 2, "--model given more than once"),
        (rerank(&["--queries", &q, "--candidates", &c]), 2, "--counts or --k"),
        (vec!["inspect".into()], 2, "needs a model file"),
        // File and library errors: exit 1, naming the file.
        (vec!["inspect".into(), missing.into()], 1, missing),
        (vec!["inspect".into(), not_model.clone()], 1, &not_model),
        (rerank(&["--queries", missing, "--candidates", &c, "--k", "2"]), 1, missing),
        (rerank(&["--queries", &wide_q, "--candidates", &c, "--k", "2"]), 1, "d = 5, the adapter expects d = 4"),
        (rerank(&["--queries", &fortran, "--candidates", &c, "--k", "2"]), 1, "fortran_order"),
        (rerank(&["--queries", &q, "--candidates", &truncated, "--k", "2"]), 1, "truncated"),
        (rerank(&["--queries", &huge, "--candidates", &c, "--k", "2"]), 1, "truncated"),
        (rerank(&["--queries", &big_endian, "--candidates", &c, "--k", "2"]), 1, "big-endian"),
        (rerank(&["--queries", &garbage, "--candidates", &c, "--k", "2"]), 1, "not a .npy file"),
        (rerank(&["--queries", &int_q, "--candidates", &c]), 1, "expected a float array"),
        (rerank(&["--queries", &q, "--ids", &negative, "--corpus", &c, "--k", "2"]), 1, "negative"),
        (rerank(&["--queries", &q, "--ids", &out_of_range, "--corpus", &c, "--k", "2"]), 1, "out of range"),
        (rerank(&["--queries", &q, "--candidates", &c, "--counts", &bad_counts]), 1, "add up to 3"),
        (rerank(&["--queries", &q, "--candidates", &c, "--k", "3"]), 1, "--k 3 with 2 queries needs 6"),
        (rerank(&["--queries", &q, "--candidates", &c, "--k", "2", "--base", &k]), 1, "expected a float array"),
    ];
    for (args, code, needle) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, *code, needle);
    }
    for name in ["fortran.npy", "truncated.npy", "huge.npy"] {
        fails(
            &["rerank", "--model", &model, "--queries", &dir.path(name).to_string_lossy(), "--candidates", &c],
            1,
            name,
        );
    }
}

#[test]
fn npy_reader_round_trips_what_numpy_writes() {
    let dir = TempDir::new("npy");
    // Byte-for-byte what `np.save(path, np.arange(6, dtype='<f4').reshape(2, 3))` writes.
    let mut numpy = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_vec();
    numpy.resize(127, b' ');
    numpy.push(b'\n');
    numpy.extend((0..6).flat_map(|i| (i as f32).to_le_bytes()));
    assert_eq!(numpy, npy::encode_f32(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));

    // f16 and version 2.0 headers read as f32; u4 ids read as u64.
    let half: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
    let mut v2 = npy::encode("<f2", &[2], &half);
    let header_len = u16::from_le_bytes([v2[8], v2[9]]);
    v2.splice(6..10, [2, 0, header_len as u8, (header_len >> 8) as u8, 0, 0]);
    let v2_path = dir.path("v2.npy");
    std::fs::write(&v2_path, &v2).unwrap();
    assert_eq!(npy::read_f32(&v2_path).unwrap(), npy::Array { shape: vec![2], data: vec![1.5, -2.0] });
    let ids_path = dir.path("ids.npy");
    std::fs::write(&ids_path, npy::encode("<u4", &[3], &[1, 0, 0, 0, 2, 0, 0, 0, 255, 255, 255, 255])).unwrap();
    assert_eq!(npy::read_u64(&ids_path).unwrap().data, [1, 2, u32::MAX as u64]);
}

/// The number after `"key": ` in one-line JSON output.
fn json_number(text: &str, key: &str) -> f64 {
    let rest = text.split(&format!("\"{key}\": ")).nth(1).unwrap_or_else(|| panic!("no \"{key}\" in:\n{text}"));
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim().parse().unwrap_or_else(|_| panic!("\"{key}\" is not a number in:\n{text}"))
}

#[test]
fn bench_times_each_engine_on_a_tiny_shape() {
    let help = stdout(&rrra(&["help"]));
    assert!(help.contains("rrra bench") && help.contains("bench "), "{help}");
    let bench_help = stdout(&rrra(&["help", "bench"]));
    for flag in [
        "--d",
        "--h",
        "--k",
        "--queries",
        "--batch",
        "--threads",
        "--dtype",
        "--engine",
        "--similarity",
        "--seed",
        "--json",
    ] {
        assert!(bench_help.contains(flag), "bench usage lacks {flag}");
    }
    assert_eq!(stdout(&rrra(&["bench", "--help"])), bench_help);

    let text = stdout(&rrra(&["bench", "--d", "8", "--h", "5", "--k", "7", "--queries", "3", "--engine", "folded"]));
    assert!(text.contains("engine folded") && text.contains("ms/query") && text.contains("p10"), "{text}");
    let text =
        stdout(&rrra(&["bench", "--d", "8", "--h", "5", "--k", "7", "--queries", "3", "--similarity", "cosine"]));
    assert!(text.contains("cosine similarity") && text.contains("4·k·d·h flops"), "{text}");

    for engine in ["reference", "folded", "auto"] {
        let text = stdout(&rrra(&[
            "bench",
            "--d=6",
            "--h=4",
            "--k=9",
            "--queries=4",
            "--batch=3",
            "--threads=2",
            "--dtype=f32",
            "--seed=7",
            "--engine",
            engine,
            "--json",
        ]));
        let rest = json::value(text.trim()).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"));
        assert!(rest.is_empty(), "trailing text after the JSON value: {rest}");
        for (key, want) in
            [("d", 6.0), ("h", 4.0), ("k", 9.0), ("queries", 4.0), ("batch", 3.0), ("threads", 2.0), ("seed", 7.0)]
        {
            assert_eq!(json_number(&text, key), want, "{key} in {text}");
        }
        assert!(text.contains("\"dtype\": \"f32\"") && text.contains("\"similarity\": \"dot\""), "{text}");
        if engine != "auto" {
            assert!(text.contains(&format!("\"engine\": \"{engine}\"")), "{text}");
        }
        let kernel =
            if engine == "reference" { "none".to_string() } else { rrra::CpuKernel::best().name().to_string() };
        assert!(text.contains(&format!("\"kernel\": \"{kernel}\"")), "{text}");
        let (p10, median, p90) =
            (json_number(&text, "p10_ms"), json_number(&text, "median_ms"), json_number(&text, "p90_ms"));
        assert!(0.0 <= p10 && p10 <= median && median <= p90 && p90.is_finite(), "{text}");
        assert!(json_number(&text, "min_ms") <= p10 && p90 <= json_number(&text, "max_ms"), "{text}");
    }
}

#[test]
fn bench_runs_f16_precision_or_says_why_not() {
    let out = rrra(&["bench", "--d", "9", "--h", "70", "--k", "30", "--queries", "3", "--dtype", "f16", "--json"]);
    if out.status.success() {
        let text = stdout(&out);
        assert!(text.contains("\"dtype\": \"f16\"") && text.contains("\"kernel\": \"avx512\""), "{text}");
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("f16 precision runs on the avx512 kernel"), "{err}");
    }
}

#[test]
fn bench_reads_inputs_stored_as_f16_or_bf16() {
    for inputs in ["f16", "bf16"] {
        let out = rrra(&["bench", "--d", "9", "--h", "7", "--k", "30", "--queries", "3", "--inputs", inputs, "--json"]);
        let text = stdout(&out);
        assert!(text.contains(&format!("\"inputs\": \"{inputs}\"")) && text.contains("\"dtype\": \"f32\""), "{text}");
    }
}

#[test]
fn bench_refuses_what_it_cannot_run() {
    let bench = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["bench", "--d", "4", "--h", "3"].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        // Configurations that do not exist yet are refused, never silently run as something else.
        (bench(&["--k", "5", "--threads", "0"]), "--threads: expected a positive integer, got 0"),
        (bench(&["--k", "5", "--batch", "0"]), "--batch: expected a positive integer, got 0"),
        (bench(&["--k", "5", "--threads", "two"]), "--threads: expected a positive integer"),
        (bench(&["--k", "5", "--dtype", "f8"]), "--dtype: expected f32, f16 or bf16, got 'f8'"),
        (bench(&["--k", "5", "--inputs", "int8"]), "--inputs: expected f32, f16 or bf16, got 'int8'"),
        (bench(&["--k", "5", "--engine", "gpu"]), "--engine: expected auto, reference, folded or cuda, got 'gpu'"),
        (bench(&["--k", "5", "--kernel", "sse2"]), "--kernel: expected auto, portable, avx2 or avx512, got 'sse2'"),
        (bench(&["--k", "5", "--similarity", "l2"]), "--similarity: expected dot or cosine, got 'l2'"),
        (bench(&[]), "rrra bench needs --k"),
        (vec!["bench".into(), "--k".into(), "5".into()], "rrra bench needs --d"),
        (bench(&["--k", "0"]), "--k: expected a positive integer, got 0"),
        (bench(&["--k", "5", "--queries", "0"]), "--queries: expected a positive integer, got 0"),
        (bench(&["--k", "-5"]), "--k: expected a positive integer"),
        (bench(&["--k", "5", "--seed", "x"]), "--seed: expected a non-negative integer"),
        (bench(&["--k", "5", "--bogus"]), "unknown option '--bogus' for 'rrra bench'"),
        (bench(&["--k", "5", "extra"]), "unexpected argument 'extra'"),
        (bench(&["--k", "5", "--d", "4"]), "--d given more than once"),
        (bench(&["--k", "100000", "--queries", "100000"]), "4 GiB limit"),
        (vec!["help".into(), "benchmark".into()], "commands: inspect, rerank, bench"),
    ];
    for (args, needle) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, 2, needle);
    }
    // A valid request the library cannot serve here fails as the library says, with exit 1.
    if !cfg!(feature = "cuda") {
        let args = bench(&["--k", "5", "--engine", "cuda"]);
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1, "the cuda engine is not compiled in");
    }
}

#[test]
fn rerank_runs_the_engine_asked_for() {
    let dir = TempDir::new("engine");
    let (adapter, model) = save_adapter(&dir, AdapterConfig::default());
    let adapter = Arc::new(adapter);
    let queries = values(50, 2 * D, 1.0);
    let candidates = values(51, 10 * D, 1.0);
    let q = dir.file("q.npy", &npy::encode_f32(&[2, D], &queries));
    let c = dir.file("c.npy", &npy::encode_f32(&[10, D], &candidates));
    for (name, kind) in [("reference", EngineKind::Reference), ("folded", EngineKind::Folded)] {
        let out = dir.path(&format!("{name}.npy"));
        let text = stdout(&rrra(&[
            "rerank",
            "--model",
            &model,
            "--queries",
            &q,
            "--candidates",
            &c,
            "--k",
            "5",
            "--engine",
            name,
            "--out",
            out.to_str().unwrap(),
        ]));
        let options = SessionOptions { engine: EnginePreference::Force(kind), ..Default::default() };
        let mut session = Session::new(adapter.clone(), options).unwrap();
        let expected =
            session.rerank(&Batch::dense(D, &queries, &[5, 5], &candidates), &ScoreOptions::default()).unwrap();
        assert_eq!(printed_orders(&text), split(&expected.order, &[5, 5]), "{name}: {text}");
        assert_eq!(npy::read_f32(&out).unwrap().data, expected.log_s_rr, "{name}");
    }
    fails(
        &["rerank", "--model", &model, "--queries", &q, "--candidates", &c, "--k", "5", "--engine", "fast"],
        2,
        "--engine: expected auto, reference, folded or cuda, got 'fast'",
    );
}
