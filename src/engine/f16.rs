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
            return Some(Tile {
                mr: fp16::MR,
                nr: fp16::NR,
                run: fp16::tile,
                fold: fp16::fold,
                dot: super::simd::avx512::dot_checked,
            });
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

    fn scatter4(dst: &mut [f16], stride: usize, rows: [&[f32]; 4]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F detected just now.
            return unsafe { fp16::scatter4(dst, stride, rows) };
        }
        rows.into_iter().enumerate().fold(true, |ok, (i, row)| Self::scatter(&mut dst[i..], stride, row) & ok)
    }
}

/// cbindgen:ignore
#[cfg(target_arch = "x86_64")]
mod fp16 {
    use super::{f16, in_range, FLUSH};
    use crate::engine::simd::avx512::relu_epilogue;
    use crate::engine::simd::{epilogue, Epilogue, Fold};
    use crate::model::Activation;
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
        prefetch: *const u8,
    ) {
        // SAFETY (every block below): offsets stay within the caller's lengths.
        let out = unsafe { std::slice::from_raw_parts_mut(out, MR * NR) };
        // Without `accumulate`, the first flush stores instead of adding.
        let mut add = accumulate;
        let (mut a, mut b) = (a, b);
        // A prefetch never faults, so with nothing to prefetch the tile re-reads `b`'s line.
        let (mut prefetch, prefetch_step) = if prefetch.is_null() { (b.cast(), 0usize) } else { (prefetch, 64) };
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
                    "prefetcht1 [{prefetch}]",
                    "add {prefetch}, {prefetch_step}",
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
                    prefetch = inout(reg) prefetch,
                    prefetch_step = in(reg) prefetch_step,
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
                        let wide = _mm512_cvtph_ps(half);
                        let sum = if add { _mm512_add_ps(_mm512_loadu_ps(out.as_ptr()), wide) } else { wide };
                        _mm512_storeu_ps(out.as_mut_ptr(), sum);
                    }
                }
            }
            add = true;
        }
        if !add {
            // `n = 0`: nothing was flushed.
            out.fill(0.0);
        }
        match e {
            Some(e) if e.activation == Activation::Relu => {
                let out = out.as_mut_ptr();
                // SAFETY: AVX-512F is present (this function's features); `out` holds MR·NR
                // values, and row `r` is read before the epilogue writes it.
                let row = |r: usize| std::array::from_fn(|c| unsafe { _mm512_loadu_ps(out.add(r * NR + c * 16)) });
                unsafe { relu_epilogue::<{ NR / 16 }>(row, out, e) };
            }
            Some(e) => epilogue::<MR, NR>(out, e),
            None => {}
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

    /// [`Fold`] for 64-wide panels: `v` and `u` stay in 8 registers, `m` is rounded to f16.
    /// `false` when an `m` value is beyond the f16 range.
    ///
    /// # Safety
    /// AVX-512F present; the lengths checked by [`crate::engine::simd::Tile::fold`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fold(f: Fold<'_, f16>) -> bool {
        const V: usize = NR / 16;
        let dot = !f.u.is_empty();
        let row = if dot { 4 * NR } else { 3 * NR };
        // SAFETY (every block below): offsets within `NR`-wide rows of the checked lengths.
        let mut v: [__m512; V] = std::array::from_fn(|c| unsafe { _mm512_loadu_ps(f.v.as_ptr().add(16 * c)) });
        let mut u = [_mm512_setzero_ps(); V];
        if dot {
            u = std::array::from_fn(|c| unsafe { _mm512_loadu_ps(f.u.as_ptr().add(16 * c)) });
        }
        let mut in_range = true;
        for ((w, m), &x) in f.weights.chunks_exact(row).zip(f.m.chunks_exact_mut(NR)).zip(f.q) {
            let xv = _mm512_set1_ps(x);
            let w = w.as_ptr();
            for c in 0..V {
                unsafe {
                    let value = _mm512_fmadd_ps(xv, load(w.add(NR + 16 * c)), load(w.add(16 * c)));
                    in_range &= all_in_range(value);
                    _mm256_storeu_si256(m.as_mut_ptr().add(16 * c).cast(), _mm512_cvtps_ph::<ROUND>(value));
                    v[c] = _mm512_fmadd_ps(xv, load(w.add(2 * NR + 16 * c)), v[c]);
                    if dot {
                        u[c] = _mm512_fmadd_ps(xv, load(w.add(3 * NR + 16 * c)), u[c]);
                    }
                }
            }
        }
        for c in 0..V {
            unsafe {
                _mm512_storeu_ps(f.v.as_mut_ptr().add(16 * c), v[c]);
                if dot {
                    _mm512_storeu_ps(f.u.as_mut_ptr().add(16 * c), u[c]);
                }
            }
        }
        in_range
    }

    /// # Safety
    /// AVX-512F present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scatter4(dst: &mut [f16], stride: usize, rows: [&[f32]; 4]) -> bool {
        let n = rows[0].len();
        assert!(rows.iter().all(|r| r.len() == n) && (n == 0 || (n - 1) * stride + 4 <= dst.len()));
        let limit = _mm_set1_ps(super::F16_MAX);
        let mut over = _mm_setzero_ps();
        let mut p = 0;
        while p + 4 <= n {
            // SAFETY: p + 4 <= n, and (p + 3)·stride + 4 <= dst.len() by the assertion.
            unsafe {
                for (j, column) in crate::engine::simd::transpose4(rows, p).into_iter().enumerate() {
                    over = _mm_or_ps(over, _mm_cmpgt_ps(_mm_andnot_ps(_mm_set1_ps(-0.0), column), limit));
                    let halves = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(column);
                    _mm_storel_epi64(dst.as_mut_ptr().add((p + j) * stride).cast(), halves);
                }
            }
            p += 4;
        }
        let mut ok = _mm_movemask_ps(over) == 0;
        if p < n {
            for (i, row) in rows.into_iter().enumerate() {
                ok &= unsafe { scatter(&mut dst[p * stride + i..], stride, &row[p..]) };
            }
        }
        ok
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
    use crate::engine::simd::{Epilogue, Fold, LANES};
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
            tile.run(&a, &b, n, &mut out, false, Some(&mut e), std::ptr::null());
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
            // Fewer rows than the tile, and a −∞ pre-activation that ReLU would hide: flagged,
            // and the sums of the rows past `rows` are left alone.
            let mut bias = bias.clone();
            bias[nr - 1] = f32::NEG_INFINITY;
            let mut sums = vec![0.5f32; mr * LANES];
            let rows = mr - 1;
            let mut e = Epilogue {
                bias: &bias,
                activation: Activation::Relu,
                heads: &heads,
                sums: &mut sums,
                stride: LANES,
                rows,
                non_finite: false,
            };
            tile.run(&a, &b, n, &mut out, false, Some(&mut e), std::ptr::null());
            assert!(e.non_finite, "n={n}: −∞ not flagged");
            assert!(sums[rows * LANES..].iter().all(|&x| x == 0.5), "n={n}: a row past `rows` changed");
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

            // Four rows at once, through whole 4 × 4 transposes and the tail.
            let rows: Vec<Vec<f32>> = (0..4).map(|i| c.iter().map(|x| x + i as f32).collect()).collect();
            let mut dst = vec![f16::ZERO; len * 6];
            assert!(f16::scatter4(&mut dst, 6, [&rows[0], &rows[1], &rows[2], &rows[3]]));
            for (p, i) in (0..len).flat_map(|p| (0..4).map(move |i| (p, i))) {
                assert_eq!(dst[p * 6 + i].to_f32(), rows[i][p]);
            }
            for at in [0, len - 1] {
                let mut big = rows[2].clone();
                big[at] = 7e4;
                assert!(!f16::scatter4(&mut dst, 6, [&rows[0], &rows[1], &big, &rows[3]]));
            }
        }
    }

    /// The f16 fold on small integers (exact in f16), with and without `W₂ᵀ`, and its refusal
    /// of an `M_q` value beyond the f16 range.
    #[test]
    fn the_f16_fold_is_exact_on_small_integers_and_refuses_overflow() {
        let Some(tile) = f16::tile(CpuKernel::Avx512) else {
            println!("skipped: this CPU has no AVX512-FP16");
            return;
        };
        let nr = tile.nr;
        for (d, streams) in [(1, 3), (5, 4), (9, 3)] {
            let weight = |p: usize, s: usize, j: usize| ((p * 7 + s * 3 + j) % 11) as f32 - 5.0;
            let weights: Vec<f16> = (0..d * streams * nr)
                .map(|i| f16::from_f32(weight(i / (streams * nr), i / nr % streams, i % nr)))
                .collect();
            let q: Vec<f32> = (0..d).map(|p| p as f32 - 2.0).collect();
            let (mut m, mut v, mut u) = (vec![f16::ZERO; d * nr], vec![1.0f32; nr], vec![0.5f32; nr]);
            let u_len = if streams == 4 { nr } else { 0 };
            let fold = Fold { weights: &weights, q: &q, m: &mut m, v: &mut v, u: &mut u[..u_len] };
            assert!(tile.fold(fold));
            for j in 0..nr {
                let mut want_v = 1.0;
                let mut want_u = 0.5;
                for p in 0..d {
                    assert_eq!(m[p * nr + j].to_f32(), weight(p, 0, j) + q[p] * weight(p, 1, j));
                    want_v += q[p] * weight(p, 2, j);
                    want_u += q[p] * weight(p, 3, j);
                }
                assert_eq!(v[j], want_v);
                assert_eq!(u[j], if streams == 4 { want_u } else { 0.5 });
            }
            let huge = vec![1e5f32; d];
            let fold = Fold { weights: &weights, q: &huge, m: &mut m, v: &mut v, u: &mut u[..u_len] };
            assert!(!tile.fold(fold));
        }
    }
}
