//! BERT encoder weights and the f32 forward pass for one sequence.

use super::math::{layer_norm, linear, softmax};
use crate::linalg::{gelu, gemm};
use safetensors::{Dtype, SafeTensors};

/// The parts of a Hugging Face BERT `config.json` the forward pass uses.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f32,
}

impl BertConfig {
    pub(crate) fn from_json(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let int = |key: &str| -> Result<usize, String> {
            let n = v
                .get(key)
                .and_then(|x| x.as_u64())
                .ok_or_else(|| format!("key {key:?}: missing or not a non-negative integer"))?;
            if n == 0 || n > 1 << 20 {
                return Err(format!("key {key:?}: {n} out of range"));
            }
            Ok(n as usize)
        };
        if let Some(t) = v.get("model_type").and_then(|x| x.as_str()) {
            if t != "bert" {
                return Err(format!("key \"model_type\": expected \"bert\", got {t:?}"));
            }
        }
        let act = v.get("hidden_act").and_then(|x| x.as_str()).unwrap_or("gelu");
        if act != "gelu" {
            return Err(format!("key \"hidden_act\": only \"gelu\" is supported, got {act:?}"));
        }
        if let Some(p) = v.get("position_embedding_type").and_then(|x| x.as_str()) {
            if p != "absolute" {
                return Err(format!("key \"position_embedding_type\": only \"absolute\" is supported, got {p:?}"));
            }
        }
        let eps = v.get("layer_norm_eps").and_then(|x| x.as_f64()).unwrap_or(1e-12);
        if !(eps > 0.0 && eps < 1.0) {
            return Err(format!("key \"layer_norm_eps\": {eps} out of range"));
        }
        let c = BertConfig {
            vocab_size: int("vocab_size")?,
            hidden_size: int("hidden_size")?,
            num_hidden_layers: int("num_hidden_layers")?,
            num_attention_heads: int("num_attention_heads")?,
            intermediate_size: int("intermediate_size")?,
            max_position_embeddings: int("max_position_embeddings")?,
            type_vocab_size: int("type_vocab_size")?,
            layer_norm_eps: eps as f32,
        };
        if !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            ));
        }
        Ok(c)
    }
}

pub(crate) struct Layer {
    q_w: Vec<f32>,
    q_b: Vec<f32>,
    k_w: Vec<f32>,
    k_b: Vec<f32>,
    v_w: Vec<f32>,
    v_b: Vec<f32>,
    o_w: Vec<f32>,
    o_b: Vec<f32>,
    ln1_g: Vec<f32>,
    ln1_b: Vec<f32>,
    i_w: Vec<f32>,
    i_b: Vec<f32>,
    f_w: Vec<f32>,
    f_b: Vec<f32>,
    ln2_g: Vec<f32>,
    ln2_b: Vec<f32>,
}

pub(crate) struct Bert {
    pub(crate) config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type0: Vec<f32>,
    emb_ln_g: Vec<f32>,
    emb_ln_b: Vec<f32>,
    layers: Vec<Layer>,
}

/// Per-thread buffers, grown to the longest sequence seen.
#[derive(Default)]
pub(crate) struct Scratch {
    x: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    inter: Vec<f32>,
    scores: Vec<f32>,
}

fn tensor(st: &SafeTensors<'_>, prefix: &str, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
    // sentence-transformers checkpoints sometimes carry a "bert." prefix.
    let full = format!("{prefix}{name}");
    let view = st.tensor(&full).map_err(|_| format!("tensor {full:?} missing"))?;
    if view.shape() != shape {
        return Err(format!("tensor {full:?}: expected shape {shape:?}, got {:?}", view.shape()));
    }
    let data = view.data();
    let out: Vec<f32> = match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => return Err(format!("tensor {full:?}: unsupported dtype {other:?} (F32, F16 or BF16)")),
    };
    if out.len() != shape.iter().product::<usize>() {
        return Err(format!("tensor {full:?}: data length disagrees with its shape"));
    }
    if out.iter().any(|v| !v.is_finite()) {
        return Err(format!("tensor {full:?}: contains NaN or Inf"));
    }
    Ok(out)
}

impl Bert {
    pub(crate) fn from_safetensors(config: BertConfig, bytes: &[u8]) -> Result<Self, String> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
        let prefix = if st.tensor("embeddings.word_embeddings.weight").is_ok() { "" } else { "bert." };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let t = |name: &str, shape: &[usize]| tensor(&st, prefix, name, shape);
        let token_type = t("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}.");
            let n = |s: &str| format!("{p}{s}");
            layers.push(Layer {
                q_w: t(&n("attention.self.query.weight"), &[h, h])?,
                q_b: t(&n("attention.self.query.bias"), &[h])?,
                k_w: t(&n("attention.self.key.weight"), &[h, h])?,
                k_b: t(&n("attention.self.key.bias"), &[h])?,
                v_w: t(&n("attention.self.value.weight"), &[h, h])?,
                v_b: t(&n("attention.self.value.bias"), &[h])?,
                o_w: t(&n("attention.output.dense.weight"), &[h, h])?,
                o_b: t(&n("attention.output.dense.bias"), &[h])?,
                ln1_g: t(&n("attention.output.LayerNorm.weight"), &[h])?,
                ln1_b: t(&n("attention.output.LayerNorm.bias"), &[h])?,
                i_w: t(&n("intermediate.dense.weight"), &[i, h])?,
                i_b: t(&n("intermediate.dense.bias"), &[i])?,
                f_w: t(&n("output.dense.weight"), &[h, i])?,
                f_b: t(&n("output.dense.bias"), &[h])?,
                ln2_g: t(&n("output.LayerNorm.weight"), &[h])?,
                ln2_b: t(&n("output.LayerNorm.bias"), &[h])?,
            });
        }
        Ok(Bert {
            word: t("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: t("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?,
            token_type0: token_type[..h].to_vec(),
            emb_ln_g: t("embeddings.LayerNorm.weight", &[h])?,
            emb_ln_b: t("embeddings.LayerNorm.bias", &[h])?,
            layers,
            config,
        })
    }

    /// Runs one token sequence and writes its mean-pooled, L2-normalised embedding to `out`.
    pub(crate) fn embed(&self, ids: &[u32], s: &mut Scratch, out: &mut [f32]) -> Result<(), String> {
        let c = &self.config;
        let (h, inter, heads) = (c.hidden_size, c.intermediate_size, c.num_attention_heads);
        let dh = h / heads;
        let n = ids.len();
        out.fill(0.0);
        if n == 0 {
            return Ok(());
        }
        if n > c.max_position_embeddings {
            return Err(format!("{n} tokens exceed max_position_embeddings {}", c.max_position_embeddings));
        }
        for buf in [&mut s.x, &mut s.q, &mut s.k, &mut s.v, &mut s.ctx, &mut s.tmp] {
            buf.resize(n * h, 0.0);
        }
        s.inter.resize(n * inter, 0.0);
        s.scores.resize(n * n, 0.0);

        // Embeddings: word + position + token type 0, then LayerNorm.
        for (t, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if id >= c.vocab_size {
                return Err(format!("token id {id} outside the vocabulary ({})", c.vocab_size));
            }
            let row = &mut s.x[t * h..(t + 1) * h];
            let w = &self.word[id * h..(id + 1) * h];
            let p = &self.position[t * h..(t + 1) * h];
            for j in 0..h {
                row[j] = w[j] + p[j] + self.token_type0[j];
            }
        }
        layer_norm(&mut s.x[..n * h], &self.emb_ln_g, &self.emb_ln_b, c.layer_norm_eps);

        let scale = 1.0 / (dh as f32).sqrt();
        for l in &self.layers {
            linear(&s.x, n, h, &l.q_w, &l.q_b, h, &mut s.q);
            linear(&s.x, n, h, &l.k_w, &l.k_b, h, &mut s.k);
            linear(&s.x, n, h, &l.v_w, &l.v_b, h, &mut s.v);
            for hd in 0..heads {
                let off = hd * dh;
                // scores = Q_h · K_hᵀ (n × n)
                gemm(n, dh, n, &s.q[off..], (h, 1), &s.k[off..], (1, h), &mut s.scores, n);
                for row in s.scores.chunks_exact_mut(n) {
                    for v in row.iter_mut() {
                        *v *= scale;
                    }
                    softmax(row);
                }
                // ctx_h = P · V_h (n × dh), written into columns off..off+dh of ctx.
                gemm(n, n, dh, &s.scores, (n, 1), &s.v[off..], (h, 1), &mut s.ctx[off..], h);
            }
            linear(&s.ctx, n, h, &l.o_w, &l.o_b, h, &mut s.tmp);
            for (t, x) in s.tmp.iter_mut().zip(&s.x) {
                *t += x;
            }
            layer_norm(&mut s.tmp, &l.ln1_g, &l.ln1_b, c.layer_norm_eps);
            linear(&s.tmp, n, h, &l.i_w, &l.i_b, inter, &mut s.inter);
            for v in s.inter.iter_mut() {
                *v = gelu(*v);
            }
            linear(&s.inter, n, inter, &l.f_w, &l.f_b, h, &mut s.x);
            for (x, t) in s.x.iter_mut().zip(&s.tmp) {
                *x += t;
            }
            layer_norm(&mut s.x, &l.ln2_g, &l.ln2_b, c.layer_norm_eps);
        }

        // Mean pooling over all tokens (no padding here), then L2 normalisation.
        let mut acc = vec![0.0f64; h];
        for row in s.x.chunks_exact(h) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += *v as f64;
            }
        }
        let norm = acc.iter().map(|a| (a / n as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = (a / n as f64 / norm) as f32;
        }
        if out.iter().any(|v| !v.is_finite()) {
            return Err("the forward pass produced NaN or Inf".into());
        }
        Ok(())
    }
}
