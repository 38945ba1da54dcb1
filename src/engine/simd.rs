//! The CPU engine's one hot loop, a register-blocked matrix-product tile, written once per
//! instruction set and chosen at run time.
//!
//! A tile computes `out[r][j] = Σ_p a[p][r] · b[p][j]` for `MR` rows and `NR` columns over a
//! reduction of length `n`, with both operands packed so that each step of `p` reads `MR`
//! consecutive values of `a` (broadcast) and `NR` consecutive values of `b` (vector loads). The
//! accumulators stay in registers for the whole reduction. Layer 1's epilogue (bias,
//! activation, the heads) runs on the tile while it is still in L1, compiled once per instruction
//! set from one generic function, so it vectorises as wide as the tile.

use super::reference::activate;
use crate::model::Activation;

/// Per-row head sums are kept in this many lanes and reduced once per row, so the epilogue
/// vectorises; every tile width is a multiple of it.
pub(crate) const LANES: usize = 16;

/// The instruction set a session's CPU kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuKernel {
    /// Plain Rust that the compiler vectorises for the build's baseline (SSE2 on x86-64, NEON on
    /// AArch64); runs everywhere.
    Portable,
    /// x86-64 AVX2 with FMA: 6 × 16 tiles in 12 of the 16 ymm registers.
    Avx2,
    /// x86-64 AVX-512F: 12 × 32 tiles in 24 of the 32 zmm registers.
    Avx512,
}

/// cbindgen:ignore
impl CpuKernel {
    /// Every kernel, fastest last.
    pub const ALL: [CpuKernel; 3] = [CpuKernel::Portable, CpuKernel::Avx2, CpuKernel::Avx512];

    pub fn name(self) -> &'static str {
        match self {
            CpuKernel::Portable => "portable",
            CpuKernel::Avx2 => "avx2",
            CpuKernel::Avx512 => "avx512",
        }
    }

    /// The kernel named `name` (as [`CpuKernel::name`] spells it).
    pub fn from_name(name: &str) -> Option<CpuKernel> {
        CpuKernel::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this CPU can run the kernel (detected at run time).
    pub fn is_available(self) -> bool {
        match self {
            CpuKernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest kernel this CPU can run.
    pub fn best() -> CpuKernel {
        CpuKernel::ALL.into_iter().rev().find(|k| k.is_available()).unwrap_or(CpuKernel::Portable)
    }

    /// This kernel's measured arithmetic peak on one core, in f32 GFLOP/s (an FMA counts 2), for
    /// benchmarks that compare a time with the floor the arithmetic sets. It runs independent
    /// FMA chains on registers for about `duration`. `None` where the CPU lacks the kernel.
    pub fn measure_peak_gflops(self, duration: std::time::Duration) -> Option<f64> {
        if !self.is_available() {
            return None;
        }
        let run: fn(usize) -> f32 = match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: availability checked above.
            CpuKernel::Avx2 => |n| unsafe { avx2::fma_chains(n) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: availability checked above.
            CpuKernel::Avx512 => |n| unsafe { avx512::fma_chains(n) },
            _ => portable::fma_chains,
        };
        let lanes = match self {
            CpuKernel::Portable => portable::NR,
            CpuKernel::Avx2 => 8,
            CpuKernel::Avx512 => 16,
        };
        let (mut steps, mut best) = (1usize << 12, 0.0f64);
        let started = std::time::Instant::now();
        while started.elapsed() < duration {
            let t = std::time::Instant::now();
            std::hint::black_box(run(std::hint::black_box(steps)));
            let seconds = t.elapsed().as_secs_f64();
            best = best.max((steps * CHAINS * lanes * 2) as f64 / seconds / 1e9);
            if seconds < 1e-3 {
                steps *= 2;
            }
        }
        Some(best)
    }
}

/// Independent accumulator chains in the peak measurement: enough to cover the FMA latency
/// (4 cycles) on two FMA units, and within the 16 registers of AVX2.
const CHAINS: usize = 12;

/// A tile function: `(a, b, n, out, accumulate, epilogue)` with `a` of `n·MR`, `b` of `n·NR` and
/// `out` of `MR·NR` values, all checked by [`Tile::run`].
type TileFn<E> = unsafe fn(*const E, *const E, usize, *mut f32, bool, Option<&mut Epilogue<'_>>);

/// The element type of packed weights and candidates: `f32`, or IEEE half ([`half::f16`]) for
/// sessions at f16 precision. Everything else (bias, heads, sums, outputs) stays f32.
pub(crate) trait Element: Copy + Default + Send + Sync + 'static {
    /// The session precision this element type implements.
    const PRECISION: super::Precision;
    /// The tile of `kernel` for this element type, or `None` where this CPU cannot run it.
    fn tile(kernel: CpuKernel) -> Option<Tile<Self>>;
    /// `x` in this type; `None` when it is out of range (f16: |x| > 65504).
    fn from_f32(x: f32) -> Option<Self>;
    fn to_f32(self) -> f32;
    /// One row of a query's fold: `m = diff + x·prod` and `v += x·sum` (all the same length).
    /// `false` when an `m` value is out of range.
    fn fold_row(m: &mut [Self], v: &mut [f32], diff: &[Self], prod: &[Self], sum: &[Self], x: f32) -> bool;
    /// `u += x·f`.
    fn axpy(u: &mut [f32], x: f32, f: &[Self]);
    /// `dst[p·stride] = c[p]` for every `p`; `false` when a value is out of range.
    fn scatter(dst: &mut [Self], stride: usize, c: &[f32]) -> bool;
}

impl Element for f32 {
    const PRECISION: super::Precision = super::Precision::F32;

    fn tile(kernel: CpuKernel) -> Option<Tile<f32>> {
        Tile::new(kernel)
    }

    fn from_f32(x: f32) -> Option<f32> {
        Some(x)
    }

    fn to_f32(self) -> f32 {
        self
    }

    #[inline]
    fn fold_row(m: &mut [f32], v: &mut [f32], diff: &[f32], prod: &[f32], sum: &[f32], x: f32) -> bool {
        for ((((m, v), &diff), &prod), &sum) in m.iter_mut().zip(v).zip(diff).zip(prod).zip(sum) {
            *m = diff + x * prod;
            *v += x * sum;
        }
        true
    }

    #[inline]
    fn axpy(u: &mut [f32], x: f32, f: &[f32]) {
        for (u, &f) in u.iter_mut().zip(f) {
            *u += x * f;
        }
    }

    #[inline]
    fn scatter(dst: &mut [f32], stride: usize, c: &[f32]) -> bool {
        for (p, &x) in c.iter().enumerate() {
            dst[p * stride] = x;
        }
        true
    }
}

/// What layer 1 does with a tile before it leaves L1: for each of the first `rows` rows `x`,
/// `x += bias`, `x = activation(x)`, then for each head `h` (`NR` values each, in `heads`)
/// `sums[row·stride + h·LANES + j mod LANES] += x[j]·head[j]`.
/// Sets `non_finite` when a pre-activation value is not finite (an overflow, which an
/// activation such as ReLU would otherwise hide).
pub(crate) struct Epilogue<'a> {
    pub bias: &'a [f32],
    pub activation: Activation,
    pub heads: &'a [f32],
    pub sums: &'a mut [f32],
    pub stride: usize,
    pub rows: usize,
    pub non_finite: bool,
}

/// The epilogue for an `MR × NR` tile; inlined into each kernel so it is compiled with that
/// kernel's instruction set.
#[inline(always)]
pub(crate) fn epilogue<const MR: usize, const NR: usize>(out: &mut [f32], e: &mut Epilogue<'_>) {
    // Every loop below runs over whole LANES-wide chunks into LANES accumulators, so it
    // vectorises without reassociating a floating-point sum.
    let bias: &[f32; NR] = e.bias[..NR].try_into().expect("checked by Tile::run");
    for r in 0..e.rows.min(MR) {
        let x: &mut [f32; NR] = (&mut out[r * NR..][..NR]).try_into().expect("checked by Tile::run");
        // `x·0` is 0 for a finite value and NaN otherwise.
        let mut check = [0.0f32; LANES];
        for (x, bias) in x.chunks_exact_mut(LANES).zip(bias.chunks_exact(LANES)) {
            for l in 0..LANES {
                x[l] += bias[l];
                check[l] += x[l] * 0.0;
            }
        }
        e.non_finite |= !check.iter().sum::<f32>().is_finite();
        match e.activation {
            Activation::Relu => x.iter_mut().for_each(|x| *x = x.max(0.0)),
            other => x.iter_mut().for_each(|x| *x = activate(other, *x)),
        }
        for (h, head) in e.heads.chunks_exact(NR).enumerate() {
            let sums = &mut e.sums[r * e.stride + h * LANES..][..LANES];
            let mut lanes: [f32; LANES] = (&*sums).try_into().expect("checked by Tile::run");
            for (x, head) in x.chunks_exact(LANES).zip(head.chunks_exact(LANES)) {
                for l in 0..LANES {
                    lanes[l] += x[l] * head[l];
                }
            }
            sums.copy_from_slice(&lanes);
        }
    }
}

/// One kernel's tile and its shape.
pub(crate) struct Tile<E> {
    pub mr: usize,
    pub nr: usize,
    pub(crate) run: TileFn<E>,
}

impl<E> Clone for Tile<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Tile<E> {}

impl Tile<f32> {
    /// The f32 tile of `kernel`, or `None` where this CPU cannot run it.
    pub(crate) fn new(kernel: CpuKernel) -> Option<Tile<f32>> {
        if !kernel.is_available() {
            return None;
        }
        Some(match kernel {
            CpuKernel::Portable => Tile { mr: portable::MR, nr: portable::NR, run: portable::tile },
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx2 => Tile { mr: avx2::MR, nr: avx2::NR, run: avx2::tile },
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx512 => Tile { mr: avx512::MR, nr: avx512::NR, run: avx512::tile },
            #[cfg(not(target_arch = "x86_64"))]
            _ => return None,
        })
    }
}

impl<E: Element> Tile<E> {
    /// `out[r·NR + j] = Σ_{p<n} a[p·MR + r] · b[p·NR + j]` (added to `out`'s values when
    /// `accumulate`, so a long reduction can run in chunks), then the epilogue if there is one.
    #[inline]
    pub(crate) fn run(
        &self,
        a: &[E],
        b: &[E],
        n: usize,
        out: &mut [f32],
        accumulate: bool,
        epilogue: Option<&mut Epilogue<'_>>,
    ) {
        assert!(a.len() >= n * self.mr && b.len() >= n * self.nr && out.len() >= self.mr * self.nr);
        if let Some(e) = &epilogue {
            let heads = e.heads.len() / self.nr;
            assert!(e.bias.len() >= self.nr && e.heads.len() % self.nr == 0 && e.stride >= heads * LANES);
            assert!(e.rows <= self.mr && e.sums.len() >= e.rows.saturating_sub(1) * e.stride + heads * LANES);
        }
        // SAFETY: the lengths are checked above, and `Tile::new` hands out an instruction-set
        // kernel only after run-time detection found that instruction set.
        unsafe { (self.run)(a.as_ptr(), b.as_ptr(), n, out.as_mut_ptr(), accumulate, epilogue) }
    }
}

/// cbindgen:ignore
mod portable {
    pub const MR: usize = 4;
    pub const NR: usize = 16;

    /// `CHAINS` chains of `NR`-wide multiply-adds, `steps` long, as the compiler vectorises them.
    pub fn fma_chains(steps: usize) -> f32 {
        let mut acc = [[1.0f32; NR]; super::CHAINS];
        for _ in 0..steps {
            for chain in acc.iter_mut() {
                for x in chain.iter_mut() {
                    *x = *x * 0.999_999 + 1e-7;
                }
            }
        }
        acc.as_flattened().iter().sum()
    }

    /// # Safety
    /// `a`, `b`, `out` hold `n·MR`, `n·NR`, `MR·NR` values.
    pub unsafe fn tile(
        a: *const f32,
        b: *const f32,
        n: usize,
        out: *mut f32,
        accumulate: bool,
        e: Option<&mut super::Epilogue<'_>>,
    ) {
        // SAFETY: the caller's lengths.
        let (a, b) = unsafe { (std::slice::from_raw_parts(a, n * MR), std::slice::from_raw_parts(b, n * NR)) };
        let out = unsafe { std::slice::from_raw_parts_mut(out, MR * NR) };
        let mut acc = [[0.0f32; NR]; MR];
        if accumulate {
            acc.as_flattened_mut().copy_from_slice(out);
        }
        for (a, b) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for (row, &x) in acc.iter_mut().zip(a) {
                for (acc, &y) in row.iter_mut().zip(b) {
                    *acc += x * y;
                }
            }
        }
        out.copy_from_slice(acc.as_flattened());
        if let Some(e) = e {
            super::epilogue::<MR, NR>(out, e);
        }
    }
}

/// One x86 kernel module: its FMA-peak loop and its `MR × NR` tile of two vectors per row, written
/// once for every vector width. `$reduce` sums a vector's lanes.
macro_rules! x86_kernel {
    (
        $module:ident, $feature:literal, lanes: $lanes:literal, mr: $mr:literal,
        $zero:ident, $set1:ident, $load:ident, $store:ident, $fmadd:ident, $add:ident, $reduce:expr
    ) => {
        /// cbindgen:ignore
        #[cfg(target_arch = "x86_64")]
        mod $module {
            use std::arch::x86_64::*;

            /// `CHAINS` independent chains of FMAs, `steps` long.
            ///
            /// # Safety
            #[doc = concat!("The CPU has ", $feature, ".")]
            #[target_feature(enable = $feature)]
            pub unsafe fn fma_chains(steps: usize) -> f32 {
                let (x, y) = ($set1(0.999_999), $set1(1e-7));
                let mut acc = [$set1(1.0); super::CHAINS];
                for _ in 0..steps {
                    for a in acc.iter_mut() {
                        *a = $fmadd(*a, x, y);
                    }
                }
                $reduce(acc.into_iter().fold($zero(), |s, a| $add(s, a)))
            }

            pub const MR: usize = $mr;
            pub const NR: usize = 2 * $lanes;

            /// # Safety
            #[doc = concat!("The CPU has ", $feature, "; `a`, `b`, `out` hold `n·MR`, `n·NR`, `MR·NR` values.")]
            #[target_feature(enable = $feature)]
            pub unsafe fn tile(
                a: *const f32,
                b: *const f32,
                n: usize,
                out: *mut f32,
                accumulate: bool,
                e: Option<&mut super::Epilogue<'_>>,
            ) {
                // SAFETY (every block below): offsets stay within the caller's lengths.
                let mut acc = [[$zero(); 2]; MR];
                if accumulate {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        *acc = unsafe { [$load(out.add(r * NR)), $load(out.add(r * NR + $lanes))] };
                    }
                }
                for p in 0..n {
                    let (b0, b1) = unsafe { ($load(b.add(p * NR)), $load(b.add(p * NR + $lanes))) };
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = $set1(unsafe { *a.add(p * MR + r) });
                        acc[0] = $fmadd(x, b0, acc[0]);
                        acc[1] = $fmadd(x, b1, acc[1]);
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    unsafe {
                        $store(out.add(r * NR), acc[0]);
                        $store(out.add(r * NR + $lanes), acc[1]);
                    }
                }
                if let Some(e) = e {
                    super::epilogue::<MR, NR>(unsafe { std::slice::from_raw_parts_mut(out, MR * NR) }, e);
                }
            }
        }
    };
}

// 6 × 16 in 12 of AVX2's 16 ymm registers; 12 × 32 in 24 of AVX-512's 32 zmm registers.
x86_kernel!(avx2, "avx2,fma", lanes: 8, mr: 6,
_mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps,
|sum: __m256| {
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds the 8 values stored.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum::<f32>()
});
x86_kernel!(avx512, "avx512f", lanes: 16, mr: 12,
    _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps,
    _mm512_reduce_add_ps);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every available tile against a float64 sum, for reduction lengths around the unrolls.
    #[test]
    fn tiles_match_a_float64_product() {
        for kernel in CpuKernel::ALL.into_iter().filter(|k| k.is_available()) {
            let tile = Tile::new(kernel).unwrap();
            for n in [0, 1, 2, 7, 16, 33] {
                let value = |i: usize| ((i * 7919 % 113) as f32 - 56.0) / 37.0;
                let a: Vec<f32> = (0..n * tile.mr).map(value).collect();
                let b: Vec<f32> = (0..n * tile.nr).map(|i| value(i + 5)).collect();
                let mut out = vec![f32::NAN; tile.mr * tile.nr];
                tile.run(&a, &b, n, &mut out, false, None);
                for r in 0..tile.mr {
                    for j in 0..tile.nr {
                        let want: f64 = (0..n).map(|p| a[p * tile.mr + r] as f64 * b[p * tile.nr + j] as f64).sum();
                        let got = out[r * tile.nr + j] as f64;
                        assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{kernel:?} n={n} r={r} j={j}");
                    }
                }
            }
        }
    }

    /// The epilogue against float64: bias, activation, and every head's sum, for partial tiles.
    #[test]
    fn epilogues_match_a_float64_epilogue() {
        let value = |i: usize| ((i * 6007 % 127) as f32 - 63.0) / 41.0;
        for kernel in CpuKernel::ALL.into_iter().filter(|k| k.is_available()) {
            let tile = Tile::new(kernel).unwrap();
            let (mr, nr, n, heads) = (tile.mr, tile.nr, 9, 3);
            let a: Vec<f32> = (0..n * mr).map(value).collect();
            let b: Vec<f32> = (0..n * nr).map(|i| value(i + 1)).collect();
            let bias: Vec<f32> = (0..nr).map(|i| value(i + 2)).collect();
            let head: Vec<f32> = (0..heads * nr).map(|i| value(i + 3)).collect();
            for (activation, f) in
                [(Activation::Relu, (|x: f64| x.max(0.0)) as fn(f64) -> f64), (Activation::Tanh, f64::tanh)]
            {
                for rows in [1, mr - 1, mr] {
                    let stride = heads * LANES + 3;
                    let mut sums = vec![0.5f32; rows * stride];
                    let mut out = vec![f32::NAN; mr * nr];
                    let mut e = Epilogue {
                        bias: &bias,
                        activation,
                        heads: &head,
                        sums: &mut sums,
                        stride,
                        rows,
                        non_finite: false,
                    };
                    tile.run(&a, &b, n, &mut out, false, Some(&mut e));
                    for r in 0..rows {
                        let x: Vec<f64> = (0..nr)
                            .map(|j| {
                                let dot: f64 = (0..n).map(|p| a[p * mr + r] as f64 * b[p * nr + j] as f64).sum();
                                f(dot + bias[j] as f64)
                            })
                            .collect();
                        for (j, &x) in x.iter().enumerate() {
                            assert!(
                                (out[r * nr + j] as f64 - x).abs() <= 1e-5 * (1.0 + x.abs()),
                                "{kernel:?} r={r} j={j}"
                            );
                        }
                        for h in 0..heads {
                            let want: f64 =
                                0.5 * LANES as f64 + (0..nr).map(|j| x[j] * head[h * nr + j] as f64).sum::<f64>();
                            let got: f64 = sums[r * stride + h * LANES..][..LANES].iter().map(|&v| v as f64).sum();
                            assert!(
                                (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                                "{kernel:?} {activation:?} r={r} h={h}"
                            );
                        }
                    }
                    // Rows past `rows`, and the padding past the heads, are left alone.
                    assert!(sums.chunks(stride).all(|row| row[heads * LANES..].iter().all(|&v| v == 0.5)));
                }
            }
        }
    }

    #[test]
    fn the_best_kernel_is_available_and_names_round_trip() {
        assert!(CpuKernel::best().is_available());
        for kernel in CpuKernel::ALL {
            assert_eq!(CpuKernel::from_name(kernel.name()), Some(kernel));
        }
    }
}
