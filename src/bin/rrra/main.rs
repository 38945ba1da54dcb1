//! `rrra`: inspect adapter files, rerank candidates stored as `.npy` arrays, and time the
//! engines on random data.
//!
//! This tool is the first user of the library's public API and uses nothing else from it, so
//! anything awkward here is awkward for every caller. Exit codes: 0 success, 1 a file or library
//! error, 2 a usage error.

mod bench;
#[cfg(feature = "pipeline")]
mod evaluate;
mod npy;
#[cfg(feature = "pipeline")]
mod pipeline;
#[cfg(feature = "pipeline")]
mod report;
#[cfg(feature = "pipeline")]
mod svg;

use rrra::{
    Adapter, BaseTransform, Batch, Candidates, Corpus, EngineKind, EnginePreference, Precision, Reranked, ScoreOptions,
    Session, SessionOptions,
};
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "\
rrra: the RRRA retriever adapter from the command line

Usage:
  rrra inspect MODEL.safetensors [--json]
  rrra rerank --model MODEL --queries Q.npy --candidates C.npy [options]
  rrra bench --d D --h H --k K [options]
  rrra encode | train | eval | mine | demo [options]   (built with --features pipeline)
  rrra help [COMMAND]
  rrra --version

Commands:
  inspect   print an adapter file's dimensions and score configuration
  rerank    score and reorder candidates for each query
  bench     time reranking on a random adapter and random candidates
  encode    embed a retrieval dataset and retrieve its top-K candidates
  train     train an adapter on them (SPEC §7)
  eval      measure an adapter: reranking metrics, classification, latency, sampling
  mine      write training triples with false-negative-aware hard negatives
  demo      all of the above on the default dataset, with a report
  help      print this text, or a command's usage

Run 'rrra help COMMAND' for a command's options.
";

const INSPECT_USAGE: &str = "\
Usage: rrra inspect MODEL.safetensors [--json]

Prints the adapter's d, h, parameter count and the score configuration from its metadata
(activation, similarity, adapter_mu/tau, base_transform, base_mu/tau, lambda_rr, gamma_rs,
encoder, and any x- keys).

Options:
  --json    print one JSON object instead of aligned text
";

const RERANK_USAGE: &str = "\
Usage: rrra rerank --model MODEL --queries Q.npy
                   (--candidates C.npy | --ids IDS.npy --corpus CORPUS.npy)
                   [--counts K.npy | --k K] [--base B.npy] [--lambda L]
                   [--base-transform identity|sigmoid|softmax] [--out OUT.npy] [--top N]
                   [--engine auto|reference|folded|cuda] [--dtype f32|f16|bf16]

Scores every (query, candidate) pair with the adapter and prints, per query, the candidates'
positions in reranked order (best first) with log s_RR, s_A and s_FN.

Inputs (.npy, C order, little-endian; floats <f4, <f2 or <f8; integers <i8, <i4, <u8 or <u4):
  --model MODEL         adapter file (.safetensors)
  --queries Q.npy       queries, shape (n, d), or (d,) for one query
  --candidates C.npy    all queries' candidates one after another, shape (total, d)
  --ids IDS.npy         instead of --candidates: corpus row ids, shape (total,)
  --corpus CORPUS.npy   the corpus the ids index, shape (rows, d)
  --counts K.npy        candidates per query, integers, shape (n,)
  --k K                 every query has K candidates
                        (without --counts or --k, all candidates belong to the one query)
  --base B.npy          the retriever's scores, shape (total,); default: sim(q, c)

Options:
  --lambda L            weight of log s_A in log s_RR (default: the file's lambda_rr)
  --base-transform T    identity, sigmoid or softmax (default: the file's base_transform)
  --out OUT.npy         write log s_RR as <f4, shape (total,), in input order
  --top N               print only the best N candidates of each query
  --engine E            auto, reference, folded or cuda (default auto: the library's choice)
  --dtype T             the arithmetic: f32 (default); f16 (the folded engine on a CPU with
                        AVX512-FP16, or the cuda engine); bf16 (the cuda engine)
";

/// Why the tool stopped: the message goes to stderr as `rrra: <message>`.
#[derive(Debug)]
enum Failure {
    /// The command line is wrong (exit 2).
    Usage(String),
    /// A file or the library refused (exit 1).
    Failed(String),
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

fn failed(message: impl Into<String>) -> Failure {
    Failure::Failed(message.into())
}

impl From<rrra::Error> for Failure {
    fn from(e: rrra::Error) -> Self {
        failed(e.message())
    }
}

fn main() -> ExitCode {
    let (code, message) = match run(std::env::args_os().skip(1).collect()) {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => (2, m),
        Err(Failure::Failed(m)) => (1, m),
    };
    // eprintln! would panic if stderr is gone; there is nowhere left to report that.
    let _ = writeln!(io::stderr(), "rrra: {message}");
    ExitCode::from(code)
}

fn run(args: Vec<OsString>) -> Result<(), Failure> {
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        return Err(usage("no command given; run 'rrra help' for usage"));
    };
    match command.to_str().unwrap_or("") {
        "-h" | "--help" | "help" => match args.next() {
            None => print(USAGE),
            Some(topic) => match topic.to_str().unwrap_or("") {
                "inspect" => print(INSPECT_USAGE),
                "rerank" => print(RERANK_USAGE),
                "bench" => print(bench::BENCH_USAGE),
                #[cfg(feature = "pipeline")]
                other if pipeline::help(other).is_some() => print(&pipeline::help(other).unwrap_or_default()),
                _ => Err(usage(format!(
                    "no help for '{}'; commands: inspect, rerank, bench, encode, train, eval, mine, demo",
                    topic.to_string_lossy()
                ))),
            },
        },
        "-V" | "--version" | "version" => print(&format!("rrra {}\n", rrra::VERSION)),
        "inspect" => inspect(parse("inspect", args, &[], &["--json"])?),
        "rerank" => rerank(parse("rerank", args, RERANK_OPTIONS, &[])?),
        "bench" => bench::bench(parse("bench", args, bench::BENCH_OPTIONS, &["--json"])?),
        #[cfg(feature = "pipeline")]
        "encode" => pipeline::encode_command(parse("encode", args, pipeline::INPUT_OPTIONS, &[])?),
        #[cfg(feature = "pipeline")]
        "train" => pipeline::train_command(parse(
            "train",
            args,
            &[pipeline::INPUT_OPTIONS, pipeline::TRAIN_OPTIONS].concat(),
            &[],
        )?),
        #[cfg(feature = "pipeline")]
        "eval" => pipeline::eval_command(parse(
            "eval",
            args,
            &[pipeline::INPUT_OPTIONS, pipeline::EVAL_OPTIONS].concat(),
            &[],
        )?),
        #[cfg(feature = "pipeline")]
        "mine" => pipeline::mine_command(parse(
            "mine",
            args,
            &[pipeline::INPUT_OPTIONS, pipeline::MINE_OPTIONS].concat(),
            &[],
        )?),
        #[cfg(feature = "pipeline")]
        "demo" => pipeline::demo_command(parse(
            "demo",
            args,
            &[pipeline::INPUT_OPTIONS, pipeline::TRAIN_OPTIONS, &["--report", "--negatives"]].concat(),
            pipeline::DEMO_OPTIONS,
        )?),
        #[cfg(not(feature = "pipeline"))]
        "encode" | "train" | "eval" | "mine" | "demo" => Err(failed(format!(
            "'{}' needs the pipeline feature: cargo run --release --features pipeline -- ...",
            command.to_string_lossy()
        ))),
        _ => Err(usage(format!(
            "unknown command '{}'; commands: inspect, rerank, bench, encode, train, eval, mine, demo, help",
            command.to_string_lossy()
        ))),
    }
}

/// Writes to stdout; a closed pipe (`rrra ... | head`) ends the output quietly.
fn print(text: &str) -> Result<(), Failure> {
    write_stdout(|out| out.write_all(text.as_bytes()))
}

fn write_stdout(body: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), Failure> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    match body(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(failed(format!("cannot write to standard output: {e}"))),
        _ => Ok(()),
    }
}

/// A command line after the command word.
#[derive(Default)]
struct Parsed {
    command: &'static str,
    values: Vec<(&'static str, OsString)>,
    switches: Vec<&'static str>,
    positional: Vec<OsString>,
    help: bool,
}

/// Splits `words` into options that take a value (`--name V` or `--name=V`), switches and
/// positional arguments; an unknown or repeated option is a usage error.
fn parse(
    command: &'static str,
    words: impl IntoIterator<Item = OsString>,
    options: &[&'static str],
    switches: &[&'static str],
) -> Result<Parsed, Failure> {
    let mut parsed = Parsed { command, ..Parsed::default() };
    let mut words = words.into_iter();
    let mut options_done = false;
    while let Some(word) = words.next() {
        let text = match word.to_str() {
            Some(t) if !options_done && t.starts_with('-') && t.len() > 1 => t,
            _ => {
                parsed.positional.push(word);
                continue;
            }
        };
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) => (name, Some(OsString::from(value))),
            None => (text, None),
        };
        if let Some(&option) = options.iter().find(|o| **o == name) {
            if parsed.values.iter().any(|(n, _)| *n == option) {
                return Err(usage(format!("{name} given more than once")));
            }
            let value = inline.or_else(|| words.next()).ok_or_else(|| usage(format!("{name} needs a value")))?;
            parsed.values.push((option, value));
        } else if let (Some(&switch), None) = (switches.iter().find(|s| **s == name), &inline) {
            parsed.switches.push(switch);
        } else if text == "--" {
            options_done = true;
        } else if text == "-h" || text == "--help" {
            parsed.help = true;
        } else {
            return Err(usage(format!(
                "unknown option '{text}' for 'rrra {command}'; run 'rrra help {command}' for usage"
            )));
        }
    }
    Ok(parsed)
}

impl Parsed {
    fn value(&self, name: &str) -> Option<&OsString> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
    #[cfg_attr(not(feature = "pipeline"), allow(dead_code))]
    fn switch(&self, name: &str) -> bool {
        self.switches.contains(&name)
    }
    fn path(&self, name: &str) -> Option<PathBuf> {
        self.value(name).map(PathBuf::from)
    }
    fn required_path(&self, name: &str) -> Result<PathBuf, Failure> {
        self.path(name).ok_or_else(|| {
            usage(format!("rrra {} needs {name}; run 'rrra help {}' for usage", self.command, self.command))
        })
    }
    /// The option's value parsed as `T`; `want` describes a valid value for the message.
    fn number<T: std::str::FromStr>(&self, name: &str, want: &str) -> Result<Option<T>, Failure> {
        let Some(raw) = self.value(name) else { return Ok(None) };
        let text = raw.to_str().unwrap_or("");
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| usage(format!("{name}: expected {want}, got '{}'", raw.to_string_lossy())))
    }
    fn no_positional(&self) -> Result<(), Failure> {
        match self.positional.first() {
            Some(extra) => {
                Err(usage(format!("unexpected argument '{}' for 'rrra {}'", extra.to_string_lossy(), self.command)))
            }
            None => Ok(()),
        }
    }
}

fn inspect(args: Parsed) -> Result<(), Failure> {
    if args.help {
        return print(INSPECT_USAGE);
    }
    let path = match args.positional.as_slice() {
        [path] => PathBuf::from(path),
        [] => return Err(usage("rrra inspect needs a model file; run 'rrra help inspect' for usage")),
        [_, extra, ..] => {
            return Err(usage(format!("unexpected argument '{}' for 'rrra inspect'", extra.to_string_lossy())))
        }
    };
    let adapter = Adapter::from_file(&path)?;
    let c = adapter.config();
    let file = path.display().to_string();
    // (key, value, value is a string). Reals use `{:?}`, the shortest text that reads back the
    // same f64, which is also a valid JSON number.
    let fields: Vec<(&str, String, bool)> = vec![
        ("file", file, true),
        ("d", adapter.dim().to_string(), false),
        ("h", adapter.hidden().to_string(), false),
        ("parameters", adapter.parameter_count().to_string(), false),
        ("activation", c.activation.name().to_string(), true),
        ("similarity", c.similarity.name().to_string(), true),
        ("adapter_mu", format!("{:?}", c.adapter_mu), false),
        ("adapter_tau", format!("{:?}", c.adapter_tau), false),
        ("base_transform", c.base_transform.name().to_string(), true),
        ("base_mu", format!("{:?}", c.base_mu), false),
        ("base_tau", format!("{:?}", c.base_tau), false),
        ("lambda_rr", format!("{:?}", c.lambda_rr), false),
        ("gamma_rs", format!("{:?}", c.gamma_rs), false),
        ("encoder", c.encoder.clone(), true),
    ];
    let mut text = String::new();
    if args.switches.contains(&"--json") {
        text.push_str("{\n");
        for (key, value, is_string) in &fields {
            let value = if *is_string { json_string(value) } else { value.clone() };
            text.push_str(&format!("  {}: {value},\n", json_string(key)));
        }
        let extra: Vec<String> =
            c.extra.iter().map(|(k, v)| format!("{}: {}", json_string(k), json_string(v))).collect();
        text.push_str(&format!("  \"extra\": {{{}}}\n}}\n", extra.join(", ")));
    } else {
        let extra = c.extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (key, value) in fields.iter().map(|(k, v, _)| (*k, v.as_str())).chain(extra) {
            let value = if key == "encoder" && value.is_empty() { "(none)" } else { value };
            text.push_str(&format!("{:<16}{}\n", printable(key), printable(value)));
        }
    }
    print(&text)
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Free text from a file, with control characters escaped so it cannot garble the terminal.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

const RERANK_OPTIONS: &[&str] = &[
    "--model",
    "--queries",
    "--candidates",
    "--ids",
    "--corpus",
    "--counts",
    "--k",
    "--base",
    "--lambda",
    "--base-transform",
    "--out",
    "--top",
    "--engine",
    "--dtype",
];

/// A rerank command line, checked before any file is read.
struct RerankArgs {
    model: PathBuf,
    queries: PathBuf,
    source: Source,
    counts: Counts,
    base: Option<PathBuf>,
    options: ScoreOptions,
    out: Option<PathBuf>,
    top: Option<usize>,
    engine: EnginePreference,
    precision: Precision,
}

/// Where the candidate rows come from.
enum Source {
    Dense(PathBuf),
    ById { ids: PathBuf, corpus: PathBuf },
}

/// How the candidates split among the queries.
enum Counts {
    File(PathBuf),
    Uniform(usize),
    /// All candidates belong to the one query.
    Single,
}

/// Candidate rows as read from disk.
enum Rows {
    Dense(npy::Array<f32>),
    ById { ids: Vec<u64>, corpus: npy::Array<f32> },
}

impl RerankArgs {
    fn from(args: &Parsed) -> Result<RerankArgs, Failure> {
        args.no_positional()?;
        let source = match (args.path("--candidates"), args.path("--ids"), args.path("--corpus")) {
            (Some(c), None, None) => Source::Dense(c),
            (None, Some(ids), Some(corpus)) => Source::ById { ids, corpus },
            (None, None, None) => {
                return Err(usage("give the candidates with --candidates, or with --ids and --corpus"))
            }
            (Some(_), _, _) => return Err(usage("--candidates cannot be combined with --ids/--corpus")),
            (None, Some(_), None) => return Err(usage("--ids needs --corpus")),
            (None, None, Some(_)) => return Err(usage("--corpus needs --ids")),
        };
        let counts = match (args.path("--counts"), args.number("--k", "a non-negative integer")?) {
            (Some(_), Some(_)) => return Err(usage("give either --counts or --k, not both")),
            (Some(path), None) => Counts::File(path),
            (None, Some(k)) => Counts::Uniform(k),
            (None, None) => Counts::Single,
        };
        let lambda: Option<f64> = args.number("--lambda", "a number ≥ 0")?;
        if let Some(l) = lambda.filter(|l| !(l.is_finite() && *l >= 0.0)) {
            return Err(usage(format!("--lambda: expected a finite number ≥ 0, got {l}")));
        }
        let base_transform = match args.value("--base-transform") {
            None => None,
            // BaseTransform::from_name's error speaks of file metadata; say what is wrong here.
            Some(raw) => Some(BaseTransform::from_name(raw.to_str().unwrap_or("")).map_err(|_| {
                usage(format!(
                    "--base-transform: expected identity, sigmoid or softmax, got '{}'",
                    raw.to_string_lossy()
                ))
            })?),
        };
        Ok(RerankArgs {
            model: args.required_path("--model")?,
            queries: args.required_path("--queries")?,
            source,
            counts,
            base: args.path("--base"),
            options: ScoreOptions { lambda_rr: lambda, base_transform, ..ScoreOptions::default() },
            out: args.path("--out"),
            top: args.number("--top", "a non-negative integer")?,
            engine: parse_engine(args)?,
            precision: parse_precision(args)?,
        })
    }
}

fn rerank(args: Parsed) -> Result<(), Failure> {
    if args.help {
        return print(RERANK_USAGE);
    }
    let args = RerankArgs::from(&args)?;
    let adapter = Adapter::from_file(&args.model)?;
    let d = adapter.dim();

    let queries = npy::read_f32(&args.queries).map_err(failed)?;
    let n = match queries.shape[..] {
        [n, qd] if qd == d => n,
        [qd] if qd == d => 1,
        [_, qd] | [qd] => {
            return Err(failed(format!(
                "{}: queries have d = {qd}, the adapter expects d = {d}",
                args.queries.display()
            )))
        }
        _ => return Err(failed(shape_error(&args.queries, "(n, d) or (d,)", &queries.shape))),
    };
    let (rows, rows_path) = match &args.source {
        Source::Dense(path) => (Rows::Dense(read_matrix(path, d)?), path),
        Source::ById { ids, corpus } => {
            let id_array = npy::read_u64(ids).map_err(failed)?;
            if id_array.shape.len() != 1 {
                return Err(failed(shape_error(ids, "(total,)", &id_array.shape)));
            }
            (Rows::ById { ids: id_array.data, corpus: read_matrix(corpus, d)? }, ids)
        }
    };
    let total = match &rows {
        Rows::Dense(c) => c.shape[0],
        Rows::ById { ids, .. } => ids.len(),
    };
    let counts = read_counts(&args, n, total, rows_path)?;
    let base = match &args.base {
        None => None,
        Some(path) => {
            let array = npy::read_f32(path).map_err(failed)?;
            if array.shape != [total] {
                return Err(failed(shape_error(path, &format!("({total},), one score per candidate"), &array.shape)));
            }
            Some(array.data)
        }
    };

    let corpus;
    let candidates = match &rows {
        Rows::Dense(c) => Candidates::Dense { data: (&c.data).into(), row_stride: d },
        Rows::ById { ids, corpus: matrix } => {
            corpus = Corpus::new(&matrix.data, matrix.shape[0], d, d)?;
            Candidates::ById { corpus: &corpus, ids }
        }
    };
    let batch = Batch {
        dim: d,
        queries: (&queries.data).into(),
        candidate_counts: &counts,
        candidates,
        base_scores: base.as_deref(),
    };
    let mut session = Session::new(
        Arc::new(adapter),
        SessionOptions { engine: args.engine, precision: args.precision, ..Default::default() },
    )?;
    let result = session.rerank(&batch, &args.options).map_err(|e| failed(format!("rerank: {}", e.message())))?;

    if let Some(path) = &args.out {
        npy::write_f32(path, &[total], &result.log_s_rr).map_err(failed)?;
    }
    let ids = match &rows {
        Rows::ById { ids, .. } => Some(ids.as_slice()),
        Rows::Dense(_) => None,
    };
    write_stdout(|out| print_ranking(out, &result, &counts, ids, args.top))
}

/// Candidates per query; `rows_path` names the candidates in messages.
fn read_counts(args: &RerankArgs, n: usize, total: usize, rows_path: &Path) -> Result<Vec<usize>, Failure> {
    let too_many = || "more than usize::MAX".to_string();
    let rows = rows_path.display();
    match &args.counts {
        Counts::File(path) => {
            let array = npy::read_u64(path).map_err(failed)?;
            if array.shape != [n] {
                return Err(failed(shape_error(path, &format!("({n},), one count per query"), &array.shape)));
            }
            let counts: Vec<usize> = array.data.iter().map(|&c| usize::try_from(c).unwrap_or(usize::MAX)).collect();
            match counts.iter().try_fold(0usize, |acc, &c| acc.checked_add(c)) {
                Some(sum) if sum == total => Ok(counts),
                sum => Err(failed(format!(
                    "{}: the counts add up to {}, but {rows} holds {total} candidates",
                    path.display(),
                    sum.map_or_else(too_many, |s| s.to_string())
                ))),
            }
        }
        Counts::Uniform(k) => match n.checked_mul(*k) {
            Some(need) if need == total => Ok(vec![*k; n]),
            need => Err(failed(format!(
                "--k {k} with {n} queries needs {} candidates, but {rows} holds {total}",
                need.map_or_else(too_many, |t| t.to_string())
            ))),
        },
        Counts::Single if n == 1 => Ok(vec![total]),
        Counts::Single => Err(usage(format!(
            "{} holds {n} queries; say how the candidates split among them with --counts or --k",
            args.queries.display()
        ))),
    }
}

/// Per query: its reranked positions, best first, with their scores (and corpus ids).
fn print_ranking(
    out: &mut dyn Write,
    result: &Reranked,
    counts: &[usize],
    ids: Option<&[u64]>,
    top: Option<usize>,
) -> io::Result<()> {
    let id_header = if ids.is_some() { format!("{:>10}", "id") } else { String::new() };
    let mut start = 0;
    for (query, &k) in counts.iter().enumerate() {
        writeln!(out, "query {query} ({k} candidates)")?;
        let shown = top.unwrap_or(k).min(k);
        if shown > 0 {
            writeln!(out, "{:>6}{:>10}{id_header}{:>14}{:>12}{:>12}", "rank", "position", "log_s_rr", "s_a", "s_fn")?;
        }
        for (rank, &position) in result.order[start..start + k][..shown].iter().enumerate() {
            let i = start + position as usize;
            let id = ids.map_or(String::new(), |ids| format!("{:>10}", ids[i]));
            let (log_s_rr, s_a, s_fn) = (result.log_s_rr[i], result.s_a[i], result.s_fn[i]);
            writeln!(out, "{:>6}{position:>10}{id}{log_s_rr:>14.6}{s_a:>12.6}{s_fn:>12.6}", rank + 1)?;
        }
        start += k;
    }
    Ok(())
}

/// Reads a float matrix of shape (rows, d).
fn read_matrix(path: &Path, d: usize) -> Result<npy::Array<f32>, Failure> {
    let array = npy::read_f32(path).map_err(failed)?;
    match array.shape[..] {
        [_, cd] if cd == d => Ok(array),
        [_, cd] => Err(failed(format!("{}: rows have d = {cd}, the adapter expects d = {d}", path.display()))),
        _ => Err(failed(shape_error(path, "(rows, d)", &array.shape))),
    }
}

/// `--dtype f32|f16|bf16`, the session's precision; default f32.
fn parse_precision(args: &Parsed) -> Result<Precision, Failure> {
    match args.value("--dtype").map(|v| v.to_string_lossy()) {
        None => Ok(Precision::F32),
        Some(v) => {
            Precision::from_name(&v).ok_or_else(|| usage(format!("--dtype: expected f32, f16 or bf16, got '{v}'")))
        }
    }
}

/// `--engine auto|reference|folded|cuda`, default auto.
fn parse_engine(args: &Parsed) -> Result<EnginePreference, Failure> {
    let Some(raw) = args.value("--engine") else { return Ok(EnginePreference::Auto) };
    match raw.to_str().unwrap_or("") {
        "auto" => Ok(EnginePreference::Auto),
        "reference" => Ok(EnginePreference::Force(EngineKind::Reference)),
        "folded" => Ok(EnginePreference::Force(EngineKind::Folded)),
        "cuda" => Ok(EnginePreference::Force(EngineKind::Cuda)),
        _ => Err(usage(format!("--engine: expected auto, reference, folded or cuda, got '{}'", raw.to_string_lossy()))),
    }
}

fn shape_error(path: &Path, want: &str, got: &[usize]) -> String {
    format!("{}: expected shape {want}, got {}", path.display(), npy::format_shape(got))
}
