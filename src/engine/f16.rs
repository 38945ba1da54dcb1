//! f16 precision: weights and candidates rounded to IEEE half, products summed in half precision
//! for at most [`FLUSH`] steps and then in f32 (SPEC §6's reduced-precision contract).
//!
//! Why f16 and not bf16: on the CPUs with AVX512-FP16 (Sapphire Rapids and later), `vfmadd231ph`
//! does 32 multiply-adds per instruction at the f32 FMA's rate, twice the f32 arithmetic, while
//! AVX512-BF16's `vdpbf16ps` measured at half the f32 FMA rate on the same machine. Stable Rust
//! has no AVX512-FP16 intrinsics (they need the unstable `f16` type), so the tile's inner loop is
//! inline assembly; conversions use AVX-512F's `vcvtph2ps`/`vcvtps2ph`.

use super::simd::{CpuKernel, Element, Tile};
use half::f16;

/// Largest finite f16.
const F16_MAX: f32 = 65504.0;

/// Steps summed in half precision before the tile adds them into f32. Half has an 11-bit
/// significand: 32 products of similar size lose about 2⁻¹¹·√32 ≈ 0.3 % of their sum.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const FLUSH: usize = 32;

fn in_range(x: f32) -> bool {
    x.abs() <= F16_MAX
}

impl Element for f16 {
    const PRECISION: super::Precision = super::Precision::F16;

    fn tile(kernel: CpuKernel) -> Option<Tile<f16>> {
        #[cfg(target_arch = "x86_64")]
        if kernel == CpuKernel::Avx512
            && kernel.is_available()
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512fp16")
        {
            return Some(Tile { mr: fp16::MR, nr: fp16::NR, run: fp16::tile });
        }
        let _ = kernel;
        None
    }

    fn from_f32(x: f32) -> Option<f16> {
        in_range(x).then(|| f16::from_f32(x))
    }

    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }

    fn fold_row(m: &mut [f16], v: &mut [f32], diff: &[f16], prod: &[f16], sum: &[f16], x: f32) -> bool {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F detected just now.
            return unsafe { fp16::fold_row(m, v, diff, prod, sum, x) };
        }
        let mut ok = true;
        for ((((m, v), diff), prod), sum) in m.iter_mut().zip(v).zip(diff).zip(prod).zip(sum) {
            let value = diff.to_f32() + x * prod.to_f32();
            ok &= in_range(value);
            *m = f16::from_f32(value);
            *v += x * sum.to_f32();
        }
        ok
    }

    fn axpy(u: &mut [f32], x: f32, f: &[f16]) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F detected just now.
            return unsafe { fp16::axpy(u, x, f) };
        }
        for (u, f) in u.iter_mut().zip(f) {
            *u += x * f.to_f32();
        }
    }

    fn scatter(dst: &mut [f16], stride: usize, c: &[f32]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F detected just now.
            return unsafe { fp16::scatter(dst, stride, c) };
        }
        for (p, &x) in c.iter().enumerate() {
            dst[p * stride] = f16::from_f32(x);
        }
        c.iter().all(|&x| in_range(x))
    }
}

/// cbindgen:ignore
#[cfg(target_arch = "x86_64")]
mod fp16 {
    use super::{f16, in_range, FLUSH};
    use crate::engine::simd::{epilogue, Epilogue};
    use std::arch::asm;
    use std::arch::x86_64::*;

    pub const MR: usize = 12;
    pub const NR: usize = 64;

    const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

    /// The 12 × 64 tile: 24 zmm accumulators of 32 halves each (zmm0–23), two rows of `b`
    /// (zmm24–25), and `a`'s values broadcast from memory by the FMA itself. Every `FLUSH`
    /// steps the half sums are widened and added into `out` (f32).
    ///
    /// # Safety
    /// AVX-512F, AVX-512BW and AVX512-FP16 present; `a`, `b`, `out` hold `n·MR`, `n·NR`,
    /// `MR·NR` values.
    #[target_feature(enable = "avx512f,avx512bw,avx512fp16")]
    pub unsafe fn tile(
        a: *const f16,
        b: *const f16,
        n: usize,
        out: *mut f32,
        accumulate: bool,
        e: Option<&mut Epilogue<'_>>,
    ) {
        // SAFETY (every block below): offsets stay within the caller's lengths.
        let out = unsafe { std::slice::from_raw_parts_mut(out, MR * NR) };
        if !accumulate {
            out.fill(0.0);
        }
        let (mut a, mut b) = (a, b);
        let mut left = n;
        while left > 0 {
            let steps = FLUSH.min(left);
            left -= steps;
            let mut acc = [_mm512_setzero_ps(); 2 * MR];
            unsafe {
                asm!(
                    "2:",
                    "vmovups zmm24, [{b}]",
                    "vmovups zmm25, [{b} + 64]",
                    "vfmadd231ph zmm0, zmm24, word ptr [{a}]{{1to32}}",
                    "vfmadd231ph zmm1, zmm25, word ptr [{a}]{{1to32}}",
                    "vfmadd231ph zmm2, zmm24, word ptr [{a} + 2]{{1to32}}",
                    "vfmadd231ph zmm3, zmm25, word ptr [{a} + 2]{{1to32}}",
                    "vfmadd231ph zmm4, zmm24, word ptr [{a} + 4]{{1to32}}",
                    "vfmadd231ph zmm5, zmm25, word ptr [{a} + 4]{{1to32}}",
                    "vfmadd231ph zmm6, zmm24, word ptr [{a} + 6]{{1to32}}",
                    "vfmadd231ph zmm7, zmm25, word ptr [{a} + 6]{{1to32}}",
                    "vfmadd231ph zmm8, zmm24, word ptr [{a} + 8]{{1to32}}",
                    "vfmadd231ph zmm9, zmm25, word ptr [{a} + 8]{{1to32}}",
                    "vfmadd231ph zmm10, zmm24, word ptr [{a} + 10]{{1to32}}",
                    "vfmadd231ph zmm11, zmm25, word ptr [{a} + 10]{{1to32}}",
                    "vfmadd231ph zmm12, zmm24, word ptr [{a} + 12]{{1to32}}",
                    "vfmadd231ph zmm13, zmm25, word ptr [{a} + 12]{{1to32}}",
                    "vfmadd231ph zmm14, zmm24, word ptr [{a} + 14]{{1to32}}",
                    "vfmadd231ph zmm15, zmm25, word ptr [{a} + 14]{{1to32}}",
                    "vfmadd231ph zmm16, zmm24, word ptr [{a} + 16]{{1to32}}",
                    "vfmadd231ph zmm17, zmm25, word ptr [{a} + 16]{{1to32}}",
                    "vfmadd231ph zmm18, zmm24, word ptr [{a} + 18]{{1to32}}",
                    "vfmadd231ph zmm19, zmm25, word ptr [{a} + 18]{{1to32}}",
                    "vfmadd231ph zmm20, zmm24, word ptr [{a} + 20]{{1to32}}",
                    "vfmadd231ph zmm21, zmm25, word ptr [{a} + 20]{{1to32}}",
                    "vfmadd231ph zmm22, zmm24, word ptr [{a} + 22]{{1to32}}",
                    "vfmadd231ph zmm23, zmm25, word ptr [{a} + 22]{{1to32}}",
                    "add {a}, 24",
                    "add {b}, 128",
                    "dec {n}",
                    "jnz 2b",
                    inout("zmm0") acc[0], inout("zmm1") acc[1], inout("zmm2") acc[2], inout("zmm3") acc[3],
                    inout("zmm4") acc[4], inout("zmm5") acc[5], inout("zmm6") acc[6], inout("zmm7") acc[7],
                    inout("zmm8") acc[8], inout("zmm9") acc[9], inout("zmm10") acc[10], inout("zmm11") acc[11],
                    inout("zmm12") acc[12], inout("zmm13") acc[13], inout("zmm14") acc[14], inout("zmm15") acc[15],
                    inout("zmm16") acc[16], inout("zmm17") acc[17], inout("zmm18") acc[18], inout("zmm19") acc[19],
                    inout("zmm20") acc[20], inout("zmm21") acc[21], inout("zmm22") acc[22], inout("zmm23") acc[23],
                    out("zmm24") _, out("zmm25") _,
                    a = inout(reg) a,
                    b = inout(reg) b,
                    n = inout(reg) steps => _,
                    options(readonly, nostack),
                );
            }
            // Widen the half sums and add them into f32: row r's 64 columns are acc[2r], acc[2r + 1].
            for (acc, out) in acc.iter().zip(out.chunks_exact_mut(32)) {
                let bits = _mm512_castps_si512(*acc);
                let halves = [_mm512_castsi512_si256(bits), _mm512_extracti64x4_epi64::<1>(bits)];
                for (half, out) in halves.into_iter().zip(out.chunks_exact_mut(16)) {
                    unsafe {
                        let sum = _mm512_add_ps(_mm512_loadu_ps(out.as_ptr()), _mm512_cvtph_ps(half));
                        _mm512_storeu_ps(out.as_mut_ptr(), sum);
                    }
                }
            }
        }
        if let Some(e) = e {
            epilogue::<MR, NR>(out, e);
        }
    }

    /// 16 halves at `p` as f32.
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f16) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }

    /// Whether every lane of `x` is within the f16 range.
    #[target_feature(enable = "avx512f")]
    fn all_in_range(x: __m512) -> bool {
        let over = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_abs_ps(x), _mm512_set1_ps(super::F16_MAX));
        over == 0
    }

    /// # Safety
    /// AVX-512F present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fold_row(m: &mut [f16], v: &mut [f32], diff: &[f16], prod: &[f16], sum: &[f16], x: f32) -> bool {
        let n = m.len();
        assert!(v.len() == n && diff.len() == n && prod.len() == n && sum.len() == n);
        let xv = _mm512_set1_ps(x);
        let mut ok = true;
        let mut j = 0;
        // SAFETY (every block below): j + 16 <= n for every slice, checked above.
        while j + 16 <= n {
            unsafe {
                let value = _mm512_fmadd_ps(xv, load(prod.as_ptr().add(j)), load(diff.as_ptr().add(j)));
                ok &= all_in_range(value);
                _mm256_storeu_si256(m.as_mut_ptr().add(j).cast(), _mm512_cvtps_ph::<ROUND>(value));
                let acc = _mm512_fmadd_ps(xv, load(sum.as_ptr().add(j)), _mm512_loadu_ps(v.as_ptr().add(j)));
                _mm512_storeu_ps(v.as_mut_ptr().add(j), acc);
            }
            j += 16;
        }
        for j in j..n {
            let value = diff[j].to_f32() + x * prod[j].to_f32();
            ok &= in_range(value);
            m[j] = f16::from_f32(value);
            v[j] += x * sum[j].to_f32();
        }
        ok
    }

    /// # Safety
    /// AVX-512F present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn axpy(u: &mut [f32], x: f32, f: &[f16]) {
        let n = u.len().min(f.len());
        let xv = _mm512_set1_ps(x);
        let mut j = 0;
        while j + 16 <= n {
            // SAFETY: j + 16 <= n.
            unsafe {
                let acc = _mm512_fmadd_ps(xv, load(f.as_ptr().add(j)), _mm512_loadu_ps(u.as_ptr().add(j)));
                _mm512_storeu_ps(u.as_mut_ptr().add(j), acc);
            }
            j += 16;
        }
        for j in j..n {
            u[j] += x * f[j].to_f32();
        }
    }

    /// # Safety
    /// AVX-512F present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scatter(dst: &mut [f16], stride: usize, c: &[f32]) -> bool {
        assert!(c.is_empty() || (c.len() - 1) * stride < dst.len());
        let mut ok = true;
        let mut halves = [f16::ZERO; 16];
        let mut chunks = c.chunks_exact(16);
        for (i, chunk) in chunks.by_ref().enumerate() {
            // SAFETY: chunk holds 16 values, halves 16 slots.
            unsafe {
                let x = _mm512_loadu_ps(chunk.as_ptr());
                ok &= all_in_range(x);
                _mm256_storeu_si256(halves.as_mut_ptr().cast(), _mm512_cvtps_ph::<ROUND>(x));
            }
            for (k, &h) in halves.iter().enumerate() {
                dst[(i * 16 + k) * stride] = h;
            }
        }
        let done = c.len() - chunks.remainder().len();
        for (k, &x) in chunks.remainder().iter().enumerate() {
            ok &= in_range(x);
            dst[(done + k) * stride] = f16::from_f32(x);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::simd::{Epilogue, LANES};
    use crate::model::Activation;

    /// The f16 tile against float64 on values rounded to f16, over reductions around [`FLUSH`],
    /// within the error that half-precision sums allow; and the epilogue on top.
    #[test]
    fn the_f16_tile_matches_a_float64_product() {
        let Some(tile) = f16::tile(CpuKernel::Avx512) else {
            println!("skipped: this CPU has no AVX512-FP16");
            return;
        };
        let (mr, nr) = (tile.mr, tile.nr);
        let value = |i: usize| ((i * 7919 % 113) as f32 - 56.0) / 370.0;
        for n in [1, 7, FLUSH, FLUSH + 1, 3 * FLUSH + 5] {
            let a: Vec<f16> = (0..n * mr).map(|i| f16::from_f32(value(i))).collect();
            let b: Vec<f16> = (0..n * nr).map(|i| f16::from_f32(value(i + 3))).collect();
            let bias = vec![0.25f32; nr];
            let heads: Vec<f32> = (0..nr).map(|i| value(i + 9)).collect();
            let mut sums = vec![0.0f32; mr * LANES];
            let mut out = vec![f32::NAN; mr * nr];
            let mut e = Epilogue {
                bias: &bias,
                activation: Activation::Relu,
                heads: &heads,
                sums: &mut sums,
                stride: LANES,
                rows: mr,
                non_finite: false,
            };
            tile.run(&a, &b, n, &mut out, false, Some(&mut e));
            assert!(!e.non_finite);
            for r in 0..mr {
                let mut head_sum = 0.0f64;
                for j in 0..nr {
                    let dot: f64 = (0..n).map(|p| a[p * mr + r].to_f64() * b[p * nr + j].to_f64()).sum();
                    let want = (dot + 0.25).max(0.0);
                    let got = out[r * nr + j] as f64;
                    // Each half-precision sum of at most FLUSH products carries ~2⁻¹¹ relative error.
                    let scale: f64 = (0..n).map(|p| (a[p * mr + r].to_f64() * b[p * nr + j].to_f64()).abs()).sum();
                    assert!((got - want).abs() <= 2e-3 * scale + 1e-6, "n={n} r={r} j={j}: {got} vs {want}");
                    head_sum += got * heads[j] as f64;
                }
                let lanes: f64 = sums[r * LANES..][..LANES].iter().map(|&x| x as f64).sum();
                assert!((lanes - head_sum).abs() <= 1e-4 * (1.0 + head_sum.abs()), "n={n} r={r}");
            }
        }
    }

    #[test]
    fn conversions_refuse_values_out_of_f16_range() {
        assert_eq!(<f16 as Element>::from_f32(1.5), Some(f16::from_f32(1.5)));
        assert_eq!(<f16 as Element>::from_f32(70000.0), None);
        for len in [3, 16, 37] {
            let c: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
            let mut dst = vec![f16::ZERO; len * 3];
            assert!(f16::scatter(&mut dst, 3, &c));
            for (p, &x) in c.iter().enumerate() {
                assert_eq!(dst[p * 3].to_f32(), x);
            }
            let mut big = c.clone();
            big[len - 1] = -1e5;
            assert!(!f16::scatter(&mut dst, 3, &big));

            let diff: Vec<f16> = (0..len).map(|i| f16::from_f32(i as f32)).collect();
            let prod: Vec<f16> = (0..len).map(|i| f16::from_f32(1.0 + i as f32)).collect();
            let (mut m, mut v) = (vec![f16::ZERO; len], vec![1.0f32; len]);
            assert!(f16::fold_row(&mut m, &mut v, &diff, &prod, &prod, 2.0));
            for j in 0..len {
                assert_eq!(m[j].to_f32(), j as f32 + 2.0 * (1.0 + j as f32));
                assert_eq!(v[j], 1.0 + 2.0 * (1.0 + j as f32));
            }
            assert!(!f16::fold_row(&mut m, &mut v, &diff, &prod, &prod, 1e5));
            let mut u = vec![0.5f32; len];
            f16::axpy(&mut u, 2.0, &prod);
            assert!(u.iter().enumerate().all(|(j, &u)| u == 0.5 + 2.0 * (1.0 + j as f32)));
        }
    }
}
