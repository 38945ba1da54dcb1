//! Parity of the Rust sentence encoder (feature `encoder`) with the independent numpy forward
//! pass in tests/encoder_reference.py, on the committed fixture in tests/fixtures/encoder/.
//! The model directory comes from env RRRA_MINILM_DIR (scripts/test-all.sh sets it from
//! scripts/fetch-minilm.sh); without it the tests skip, except under CI where they fail.
#![cfg(feature = "encoder")]

use rrra::encoder::{Encoder, EncoderOptions};
use rrra::ErrorKind;
use std::path::{Path, PathBuf};

fn model_dir() -> Option<PathBuf> {
    match std::env::var_os("RRRA_MINILM_DIR") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("RRRA_MINILM_DIR is unset under CI: run RRRA_MINILM_DIR=\"$(bash scripts/fetch-minilm.sh)\"");
            }
            eprintln!("skipped: set RRRA_MINILM_DIR to the directory scripts/fetch-minilm.sh prints");
            None
        }
    }
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoder")
}

fn sentences() -> Vec<String> {
    let text = std::fs::read_to_string(fixture_dir().join("sentences.txt")).unwrap();
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    assert_eq!(lines.pop().as_deref(), Some(""), "sentences.txt must end with a newline");
    lines
}

/// (token ids, embedding) per sentence, as the reference wrote them.
fn expected() -> Vec<(Vec<u32>, Vec<f32>)> {
    let text = std::fs::read_to_string(fixture_dir().join("expected.txt")).unwrap();
    text.lines()
        .map(|line| {
            let (ids, emb) = line.split_once('\t').expect("ids<TAB>embedding");
            (ids.split(',').map(|v| v.parse().unwrap()).collect(), emb.split(' ').map(|v| v.parse().unwrap()).collect())
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn matches_reference_fixture() {
    let Some(dir) = model_dir() else { return };
    let enc = Encoder::load(&dir).unwrap();
    assert_eq!(enc.dim(), 384);
    let texts = sentences();
    let want = expected();
    assert_eq!(texts.len(), want.len(), "fixture files disagree in length");
    for (text, (ids, _)) in texts.iter().zip(&want) {
        assert_eq!(&enc.token_ids(text).unwrap(), ids, "token ids for {text:?}");
    }
    // The long text is truncated at 256 tokens, not the tokenizer.json's fixed 128.
    assert_eq!(want.iter().map(|(ids, _)| ids.len()).max(), Some(256));
    let got = enc.encode(&texts).unwrap();
    assert_eq!(got.len(), texts.len() * 384);
    let mut worst = 1.0f64;
    for (i, (row, (_, e))) in got.chunks_exact(384).zip(&want).enumerate() {
        let norm: f64 = row.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {i} norm {norm}");
        let c = cosine(row, e);
        assert!(c >= 0.9999, "sentence {i} ({:?}): cosine {c} < 0.9999", texts[i]);
        worst = worst.min(c);
    }
    eprintln!("encoder parity: {} sentences, worst cosine {worst:.9}", texts.len());
    // Semantics sanity: the two paraphrases are closer to each other than to a package text.
    let row = |i: usize| &got[i * 384..(i + 1) * 384];
    assert!(cosine(row(10), row(11)) > cosine(row(10), row(1)) + 0.2);
}

#[test]
fn batch_equals_one_at_a_time_and_threads() {
    let Some(dir) = model_dir() else { return };
    let texts = sentences();
    let enc = Encoder::load(&dir).unwrap();
    let batch = enc.encode(&texts).unwrap();
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(enc.encode(&[t.as_str()]).unwrap(), &batch[i * 384..(i + 1) * 384], "sentence {i}");
    }
    let enc2 = Encoder::load_with_options(&dir, EncoderOptions { threads: 2, ..Default::default() }).unwrap();
    assert_eq!(enc2.encode(&texts).unwrap(), batch);
    let mut enc3 = enc2;
    enc3.set_threads(3).unwrap();
    assert_eq!(enc3.encode(&texts[..2]).unwrap(), &batch[..2 * 384]);
    assert!(enc3.encode::<&str>(&[]).unwrap().is_empty());
}

#[test]
fn shorter_limit_truncates() {
    let Some(dir) = model_dir() else { return };
    let enc = Encoder::load_with_options(&dir, EncoderOptions { max_seq_len: 16, ..Default::default() }).unwrap();
    let long = sentences().pop().unwrap();
    assert_eq!(enc.token_ids(&long).unwrap().len(), 16);
    let too_long = Encoder::load_with_options(&dir, EncoderOptions { max_seq_len: 513, ..Default::default() });
    assert_eq!(too_long.unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn load_errors_are_clear() {
    let missing = Encoder::load("/nonexistent/rrra-encoder").unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Io);
    assert!(missing.message().contains("config.json"), "{}", missing.message());

    let tmp = std::env::temp_dir().join(format!("rrra-encoder-bad-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("config.json"), r#"{"model_type": "bert", "hidden_size": 384}"#).unwrap();
    let bad = Encoder::load(&tmp).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidModel);
    assert!(bad.message().contains("vocab_size"), "{}", bad.message());
    std::fs::write(
        tmp.join("config.json"),
        r#"{"vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 8, "max_position_embeddings": 8, "type_vocab_size": 2}"#,
    )
    .unwrap();
    std::fs::write(tmp.join("model.safetensors"), b"not safetensors").unwrap();
    let bad = Encoder::load_with_options(&tmp, EncoderOptions { max_seq_len: 8, ..Default::default() }).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidModel);
    assert!(bad.message().contains("model.safetensors"), "{}", bad.message());
    assert_eq!(
        Encoder::load_with_options(&tmp, EncoderOptions { threads: 0, ..Default::default() }).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    std::fs::remove_dir_all(&tmp).ok();
}

/// Throughput on the fixture's short texts (not the 256-token one), 1 and 2 threads:
/// `cargo test --release --features encoder --test encoder -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let Some(dir) = model_dir() else { return };
    let mut enc = Encoder::load(&dir).unwrap();
    let short: Vec<String> = sentences().into_iter().take(12).collect();
    let texts: Vec<&str> = short.iter().cycle().take(240).map(String::as_str).collect();
    let tokens: usize = texts.iter().map(|t| enc.token_ids(t).unwrap().len()).sum();
    for threads in [1, 2] {
        enc.set_threads(threads).unwrap();
        enc.encode(&texts[..12]).unwrap();
        let t0 = std::time::Instant::now();
        enc.encode(&texts).unwrap();
        let s = t0.elapsed().as_secs_f64();
        eprintln!(
            "threads={threads}: {} texts ({:.1} tokens avg) in {s:.3}s = {:.0} sentences/s",
            texts.len(),
            tokens as f64 / texts.len() as f64,
            texts.len() as f64 / s
        );
    }
    let long = sentences().pop().unwrap();
    let t0 = std::time::Instant::now();
    enc.encode(&[long.as_str(); 8]).unwrap();
    eprintln!("threads=2: 256-token texts at {:.1} sentences/s", 8.0 / t0.elapsed().as_secs_f64());
}
