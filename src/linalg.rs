//! Small f32 numerics shared by the engines and the encoder: a bounds-checked GEMM over
//! `matrixmultiply`, and erf (std has none) with the exact GELU built on it.

/// `c[i*rsc + j] = Σ_k a[i*rsa + k*csa] · b[k*rsb + j*csb]` for `i < m`, `j < n`.
/// Panics (never undefined behaviour) when a stride would reach outside a slice.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    strides_a: (usize, usize),
    b: &[f32],
    strides_b: (usize, usize),
    c: &mut [f32],
    rsc: usize,
) {
    gemm_beta(m, k, n, a, strides_a, b, strides_b, 0.0, c, rsc)
}

/// As [`gemm`], but `c = β·c + a·b` (β = 1 accumulates, as gradients do).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_beta(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(rsc >= n, "gemm: output rows overlap");
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(c.len() > last(m, n, rsc, 1), "gemm: output out of bounds");
    if k == 0 {
        for i in 0..m {
            let row = &mut c[i * rsc..i * rsc + n];
            if beta == 0.0 {
                row.fill(0.0); // even over NaN, as sgemm treats β = 0
            } else {
                row.iter_mut().for_each(|x| *x *= beta);
            }
        }
        return;
    }
    assert!(a.len() > last(m, k, rsa, csa), "gemm: left input out of bounds");
    assert!(b.len() > last(k, n, rsb, csb), "gemm: right input out of bounds");
    // SAFETY: the assertions keep every element sgemm reads or writes inside its slice; `c` is
    // a distinct `&mut`, so it aliases neither input, and rsc ≥ n keeps output elements distinct.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            1,
        );
    }
}

/// Exact GELU, `x/2 · (1 + erf(x/√2))`, as BERT's `hidden_act = "gelu"`.
pub(crate) fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// erf to about 1.2e-7 absolute error (Numerical Recipes' erfc Chebyshev fit), in f64.
pub(crate) fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_known_values() {
        for (x, e) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (-2.0, -0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
        ] {
            assert!((erf(x) - e).abs() < 2e-7, "erf({x}) = {} vs {e}", erf(x));
        }
    }
}
