//! A BERT-family sentence encoder (cargo feature `encoder`): `tokenizer.json` and
//! `model.safetensors` from a sentence-transformers model directory (default model:
//! all-MiniLM-L6-v2, 384-d), mean pooling over the real tokens and L2 normalisation.
//!
//! The forward pass is plain f32 on the same GEMM library as the CPU engine
//! (`matrixmultiply::sgemm`, behind a bounds-checked helper in [`math`]). Each sentence runs at
//! its own length (no padding, so no attention mask is needed and batch results equal
//! one-at-a-time results exactly); a batch is split across `threads` scoped threads.
//!
//! ```no_run
//! use rrra::encoder::{Encoder, EncoderOptions};
//! let enc = Encoder::load_with_options("model_dir", EncoderOptions { threads: 2, ..Default::default() })?;
//! let emb = enc.encode(&["a query", "a document"])?; // 2 × enc.dim(), rows of unit length
//! # Ok::<(), rrra::Error>(())
//! ```

mod bert;
mod math;

use crate::error::{Error, ErrorKind, Result};
use std::path::Path;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

pub use bert::BertConfig;

/// The sequence limit the model was trained with (sentence-transformers' `max_seq_length`),
/// counting `[CLS]` and `[SEP]`; longer texts are truncated to it.
pub const DEFAULT_MAX_SEQ_LEN: usize = 256;

/// Options for [`Encoder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderOptions {
    /// Threads one [`Encoder::encode`] call may use (the batch is split by sentence); default 1.
    pub threads: usize,
    /// Token limit per text including the special tokens; default [`DEFAULT_MAX_SEQ_LEN`],
    /// at most the model's `max_position_embeddings`.
    pub max_seq_len: usize,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions { threads: 1, max_seq_len: DEFAULT_MAX_SEQ_LEN }
    }
}

/// A loaded sentence encoder: immutable, `Send + Sync`, share it between threads.
pub struct Encoder {
    tokenizer: Tokenizer,
    model: bert::Bert,
    options: EncoderOptions,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("config", &self.model.config).field("options", &self.options).finish()
    }
}

impl Encoder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir` with default options.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_with_options(dir, EncoderOptions::default())
    }

    /// Loads a model directory with the given options.
    pub fn load_with_options(dir: impl AsRef<Path>, options: EncoderOptions) -> Result<Self> {
        let dir = dir.as_ref();
        if options.threads == 0 || options.threads > crate::MAX_THREADS {
            return Err(Error::invalid_argument(format!(
                "options.threads: expected 1..={}, got {}",
                crate::MAX_THREADS,
                options.threads
            )));
        }
        let config_path = dir.join("config.json");
        let config_text = read_to_string(&config_path)?;
        let config = BertConfig::from_json(&config_text)
            .map_err(|m| Error::invalid_model(format!("{}: {m}", config_path.display())))?;
        if options.max_seq_len < 2 || options.max_seq_len > config.max_position_embeddings {
            return Err(Error::invalid_argument(format!(
                "options.max_seq_len: expected 2..={} (the model's max_position_embeddings), got {}",
                config.max_position_embeddings, options.max_seq_len
            )));
        }
        let weights_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights_path)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {}: {e}", weights_path.display())))?;
        let model = bert::Bert::from_safetensors(config, &bytes)
            .map_err(|m| Error::invalid_model(format!("{}: {m}", weights_path.display())))?;
        drop(bytes);

        let tok_path = dir.join("tokenizer.json");
        let tok_text = read_to_string(&tok_path)?;
        let mut tokenizer = Tokenizer::from_bytes(tok_text.as_bytes())
            .map_err(|e| Error::invalid_model(format!("{}: cannot parse tokenizer: {e}", tok_path.display())))?;
        // The shipped tokenizer.json pads and truncates every text to a fixed 128 tokens:
        // sequences here are dynamic, so no padding, and truncation at the model's limit.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: options.max_seq_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::invalid_model(format!("{}: cannot set truncation: {e}", tok_path.display())))?;
        Ok(Encoder { tokenizer, model, options })
    }

    /// Embedding width (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.model.config.hidden_size
    }

    /// The model's configuration.
    pub fn config(&self) -> &BertConfig {
        &self.model.config
    }

    /// The options in force.
    pub fn options(&self) -> &EncoderOptions {
        &self.options
    }

    /// Changes the thread count used by later [`Encoder::encode`] calls (1..=`MAX_THREADS`).
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        if threads == 0 || threads > crate::MAX_THREADS {
            return Err(Error::invalid_argument(format!(
                "threads: expected 1..={}, got {threads}",
                crate::MAX_THREADS
            )));
        }
        self.options.threads = threads;
        Ok(())
    }

    /// Token ids for one text, as the encoder sees them (`[CLS] … [SEP]`, truncated).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::invalid_argument(format!("cannot tokenize text: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Embeds `texts`: `texts.len() × dim()` floats, row-major, each row of unit L2 norm
    /// (mean pooling over the tokens, then normalisation; an all-zero row stays zero).
    pub fn encode<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<f32>> {
        let d = self.dim();
        let mut out = vec![0.0f32; texts.len() * d];
        let threads = self.options.threads.min(texts.len()).max(1);
        if threads == 1 {
            self.encode_into(texts, &mut out)?;
            return Ok(out);
        }
        // Contiguous chunks, sized by token count would be better balanced; by sentence is simple.
        let per = texts.len().div_ceil(threads);
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = texts
                .chunks(per)
                .zip(out.chunks_mut(per * d))
                .map(|(t, o)| s.spawn(move || self.encode_into(t, o)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Err(Error::new(ErrorKind::Internal, "encoder worker thread panicked")))
                })
                .collect()
        });
        for r in results {
            r?;
        }
        Ok(out)
    }

    fn encode_into<S: AsRef<str>>(&self, texts: &[S], out: &mut [f32]) -> Result<()> {
        let d = self.dim();
        let mut scratch = bert::Scratch::default();
        for (text, row) in texts.iter().zip(out.chunks_exact_mut(d)) {
            let ids = self.token_ids(text.as_ref())?;
            self.model.embed(&ids, &mut scratch, row).map_err(Error::invalid_argument)?;
        }
        Ok(())
    }
}

fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {}: {e}", path.display())))
}
