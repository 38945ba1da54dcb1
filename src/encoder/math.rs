//! Small f32 kernels for the encoder: linear layers, LayerNorm, softmax (GEMM and GELU are in
//! `crate::linalg`).

use crate::linalg::gemm;

/// `y = x·Wᵀ + bias` for `x` of `rows × inp` and a PyTorch `Linear` weight `W` of `out × inp`.
pub(crate) fn linear(x: &[f32], rows: usize, inp: usize, w: &[f32], bias: &[f32], out: usize, y: &mut [f32]) {
    gemm(rows, inp, out, x, (inp, 1), w, (1, inp), y, out);
    for row in y[..rows * out].chunks_exact_mut(out) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// In-place LayerNorm over rows of width `gamma.len()` (biased variance, as PyTorch).
pub(crate) fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let w = gamma.len();
    for row in x.chunks_exact_mut(w) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / w as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = ((*v as f64 - mean) * inv) as f32 * g + b;
        }
    }
}

/// In-place softmax of one row.
pub(crate) fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_naive() {
        let (rows, inp, out) = (3, 5, 4);
        let x: Vec<f32> = (0..rows * inp).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..out * inp).map(|i| (i as f32 * 0.11).cos()).collect();
        let b: Vec<f32> = (0..out).map(|i| i as f32).collect();
        let mut y = vec![0.0; rows * out];
        linear(&x, rows, inp, &w, &b, out, &mut y);
        for r in 0..rows {
            for o in 0..out {
                let e: f32 = (0..inp).map(|k| x[r * inp + k] * w[o * inp + k]).sum::<f32>() + b[o];
                assert!((y[r * out + o] - e).abs() < 1e-5);
            }
        }
    }
}
