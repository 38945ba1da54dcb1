#!/usr/bin/env python3
"""Independent reference for the Rust sentence encoder (src/encoder): a float64 numpy forward
pass of BERT (all-MiniLM-L6-v2) with mean pooling and L2 normalisation, written from the model
files alone. It regenerates the committed fixture the Rust test (tests/encoder.rs) compares to.

Usage:
    python3 tests/encoder_reference.py MODEL_DIR            # rewrite tests/fixtures/encoder/expected.txt
    python3 tests/encoder_reference.py MODEL_DIR --check    # compare to the committed fixture

MODEL_DIR is what scripts/fetch-minilm.sh prints. Needs numpy and the `tokenizers` package
(the tokenizer is the shared Hugging Face one; the forward pass is the independent part).
Input: tests/fixtures/encoder/sentences.txt, one text a line (an empty line is the empty text).
Output: tests/fixtures/encoder/expected.txt, one line a text: the token ids (comma-separated),
a tab, then the embedding (space-separated floats).
"""
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

MAX_SEQ_LEN = 256
HERE = Path(__file__).resolve().parent / "fixtures" / "encoder"


def load_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + a : base + b], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def forward(w, cfg, ids):
    h, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    dh = h // heads
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        lin = lambda t, name: t @ w[p + name + ".weight"].T + w[p + name + ".bias"]
        q = lin(x, "attention.self.query").reshape(n, heads, dh).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, dh).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, dh).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, h)
        a = layer_norm(lin(ctx, "attention.output.dense") + x,
                       w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        f = lin(gelu(lin(a, "intermediate.dense")), "output.dense")
        x = layer_norm(f + a, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    e = x.mean(0)
    return e / max(np.linalg.norm(e), 1e-12)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model = Path(sys.argv[1])
    check = "--check" in sys.argv[2:]
    cfg = json.loads((model / "config.json").read_text())
    w = load_safetensors(model / "model.safetensors")
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ_LEN)
    texts = (HERE / "sentences.txt").read_text(encoding="utf-8").split("\n")
    assert texts[-1] == "", "sentences.txt must end with a newline"
    texts = texts[:-1]
    lines = []
    embs = []
    for t in texts:
        ids = tok.encode(t).ids
        e = forward(w, cfg, ids)
        embs.append(e)
        lines.append(",".join(map(str, ids)) + "\t" + " ".join(f"{v:.8e}" for v in e))
    if check:
        old = (HERE / "expected.txt").read_text().splitlines()
        worst = 1.0
        for e, line in zip(embs, old):
            o = np.array([float(v) for v in line.split("\t")[1].split()])
            worst = min(worst, float(e @ o / np.linalg.norm(o)))
        print(f"{len(embs)} texts, worst cosine against the committed fixture {worst:.9f}")
        sys.exit(0 if worst >= 0.9999 and len(old) == len(embs) else 1)
    (HERE / "expected.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} embeddings to {HERE / 'expected.txt'}", file=sys.stderr)


if __name__ == "__main__":
    main()
