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

/// A tile function: `(a, b, n, out, accumulate, epilogue, prefetch)` with `a` of `n·MR`, `b` of
/// `n·NR` and `out` of `MR·NR` values, all checked by [`Tile::run`]. Unless `prefetch` is null,
/// step `p` also asks for the cache line at `prefetch + 64·p` to be brought into L2.
type TileFn<E> = unsafe fn(*const E, *const E, usize, *mut f32, bool, Option<&mut Epilogue<'_>>, *const u8);

/// A fold function, checked by [`Tile::fold`].
type FoldFn<E> = unsafe fn(Fold<'_, E>) -> bool;

/// [`dot_checked`] compiled for one instruction set, checked by [`Tile::dot_checked`].
type DotFn = unsafe fn(&[f32], &[f32]) -> (f32, bool);

/// Asks for the cache lines of `values` to be brought into L2: a hint, which never faults (and
/// does nothing off x86-64).
pub(crate) fn prefetch_l2<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..std::mem::size_of_val(values)).step_by(64) {
        // SAFETY: SSE is part of x86-64, and a prefetch reads nothing.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                values.as_ptr().cast::<i8>().wrapping_add(offset),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// `a·b` in [`LANES`] partial sums (in the same order on every instruction set), and whether
/// every value of `b` is finite (`x·0` is 0 for a finite `x` and NaN otherwise), found in the
/// same pass over `b`. Inlined into each kernel's `dot_checked`, so it is compiled with that
/// kernel's instruction set: at the baseline's SSE2 the compiler makes poor code of it.
#[inline(always)]
pub(crate) fn dot_checked(a: &[f32], b: &[f32]) -> (f32, bool) {
    let (mut lanes, mut check) = ([0.0f32; LANES], [0.0f32; LANES]);
    let ((a_rows, a_tail), (b_rows, b_tail)) = (a.as_chunks::<LANES>(), b.as_chunks::<LANES>());
    // Two loops: in one, the compiler pairs `lanes[l]` with `check[l]` instead of vectorising
    // each; the second finds the row in L1.
    for (a, b) in a_rows.iter().zip(b_rows) {
        for l in 0..LANES {
            lanes[l] += a[l] * b[l];
        }
    }
    for b in b_rows {
        for l in 0..LANES {
            check[l] += b[l] * 0.0;
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    let tail_check: f32 = b_tail.iter().map(|y| y * 0.0).sum();
    (lanes.iter().sum::<f32>() + tail, (check.iter().sum::<f32>() + tail_check).is_finite())
}

/// One panel of a query's fold (SPEC §8) for the tile's `NR` hidden units. `weights` is
/// `[d][S][NR]`: for each input dimension `p`, that row of `W_c − W_a`, `W_b`, `W_a + W_c` and,
/// for dot similarity (`S = 4`, `u` not empty), `W₂ᵀ`. For each `p`:
/// `m[p] = diff[p] + q[p]·prod[p]`, `v += q[p]·sum[p]`, `u += q[p]·fc2[p]`. One stream of
/// weights per panel, so the hardware prefetcher and [`Tile::run`]'s prefetch follow it.
pub(crate) struct Fold<'a, E> {
    pub weights: &'a [E],
    pub q: &'a [f32],
    pub m: &'a mut [E],
    pub v: &'a mut [f32],
    pub u: &'a mut [f32],
}

/// The portable fold in f32 for `NR`-wide panels.
fn fold_f32<const NR: usize>(f: Fold<'_, f32>) -> bool {
    let streams = if f.u.is_empty() { 3 } else { 4 };
    let (mut v, mut u) = ([0.0f32; NR], [0.0f32; NR]);
    v.copy_from_slice(f.v);
    if streams == 4 {
        u.copy_from_slice(f.u);
    }
    for ((w, m), &x) in f.weights.chunks_exact(streams * NR).zip(f.m.chunks_exact_mut(NR)).zip(f.q) {
        // Fixed-size rows, so the loops below vectorise without run-time alias checks.
        let m: &mut [f32; NR] = m.try_into().expect("NR values");
        let row = |s: usize| -> &[f32; NR] { w[s * NR..][..NR].try_into().expect("NR values") };
        let (diff, prod, sum) = (row(0), row(1), row(2));
        for j in 0..NR {
            m[j] = diff[j] + x * prod[j];
            v[j] += x * sum[j];
        }
        if streams == 4 {
            let fc2 = row(3);
            for j in 0..NR {
                u[j] += x * fc2[j];
            }
        }
    }
    f.v.copy_from_slice(&v);
    if streams == 4 {
        f.u.copy_from_slice(&u);
    }
    true
}

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
    /// `dst[p·stride] = c[p]` for every `p`; `false` when a value is out of range.
    fn scatter(dst: &mut [Self], stride: usize, c: &[f32]) -> bool;
    /// [`Element::scatter`] for four rows of one length into `dst[p·stride + i]`, `i < 4`: on
    /// x86-64 four values at a time through a 4 × 4 transpose, several times faster than one by
    /// one.
    fn scatter4(dst: &mut [Self], stride: usize, rows: [&[f32]; 4]) -> bool;
}

/// Four rows' columns `p..p + 4` transposed: element `i` of vector `j` is `rows[i][p + j]`.
///
/// # Safety
/// `p + 4 <= rows[i].len()` for every row.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn transpose4(rows: [&[f32]; 4], p: usize) -> [std::arch::x86_64::__m128; 4] {
    use std::arch::x86_64::*;
    // SAFETY: the caller's bound; SSE is part of x86-64.
    let [r0, r1, r2, r3] = rows.map(|row| unsafe { _mm_loadu_ps(row.as_ptr().add(p)) });
    let (t0, t1) = (_mm_unpacklo_ps(r0, r1), _mm_unpacklo_ps(r2, r3));
    let (t2, t3) = (_mm_unpackhi_ps(r0, r1), _mm_unpackhi_ps(r2, r3));
    [_mm_movelh_ps(t0, t1), _mm_movehl_ps(t1, t0), _mm_movelh_ps(t2, t3), _mm_movehl_ps(t3, t2)]
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
    fn scatter(dst: &mut [f32], stride: usize, c: &[f32]) -> bool {
        for (p, &x) in c.iter().enumerate() {
            dst[p * stride] = x;
        }
        true
    }

    fn scatter4(dst: &mut [f32], stride: usize, rows: [&[f32]; 4]) -> bool {
        let n = rows[0].len();
        assert!(rows.iter().all(|r| r.len() == n) && (n == 0 || (n - 1) * stride + 4 <= dst.len()));
        let mut p = 0;
        #[cfg(target_arch = "x86_64")]
        while p + 4 <= n {
            // SAFETY: p + 4 <= n, and (p + 3)·stride + 4 <= dst.len() by the assertion.
            unsafe {
                for (j, column) in transpose4(rows, p).into_iter().enumerate() {
                    std::arch::x86_64::_mm_storeu_ps(dst.as_mut_ptr().add((p + j) * stride), column);
                }
            }
            p += 4;
        }
        if p < n {
            for (i, row) in rows.into_iter().enumerate() {
                Self::scatter(&mut dst[p * stride + i..], stride, &row[p..]);
            }
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
    // The arithmetic runs on local copies: the compiler cannot tell that `out`, `bias`, `heads`
    // and `sums` do not overlap, and would otherwise not vectorise it.
    let mut bias = [0.0f32; NR];
    bias.copy_from_slice(&e.bias[..NR]);
    let (bias, _) = bias.as_chunks::<LANES>();
    // `x·0` is 0 for a finite value and NaN otherwise; summed over the whole tile, reduced once.
    let mut check = [0.0f32; LANES];
    for r in 0..e.rows.min(MR) {
        let row = &mut out[r * NR..][..NR];
        let mut x = [0.0f32; NR];
        x.copy_from_slice(row);
        let (x, _) = x.as_chunks_mut::<LANES>();
        for (x, bias) in x.iter_mut().zip(bias) {
            for l in 0..LANES {
                x[l] += bias[l];
                check[l] += x[l] * 0.0;
            }
        }
        match e.activation {
            Activation::Relu => x.as_flattened_mut().iter_mut().for_each(|x| *x = x.max(0.0)),
            other => x.as_flattened_mut().iter_mut().for_each(|x| *x = activate(other, *x)),
        }
        row.copy_from_slice(x.as_flattened());
        for (h, head) in e.heads.chunks_exact(NR).enumerate() {
            let sums: &mut [f32; LANES] =
                (&mut e.sums[r * e.stride + h * LANES..][..LANES]).try_into().expect("checked by Tile::run");
            let mut lanes = *sums;
            for (x, head) in x.iter().zip(head.as_chunks::<LANES>().0) {
                for l in 0..LANES {
                    lanes[l] += x[l] * head[l];
                }
            }
            *sums = lanes;
        }
    }
    e.non_finite |= !check.iter().sum::<f32>().is_finite();
}

/// One kernel's tile and its shape, with the fold that produces the tile's `b` panels.
pub(crate) struct Tile<E> {
    pub mr: usize,
    pub nr: usize,
    pub(crate) run: TileFn<E>,
    pub(crate) fold: FoldFn<E>,
    pub(crate) dot: DotFn,
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
            CpuKernel::Portable => {
                Tile { mr: portable::MR, nr: portable::NR, run: portable::tile, fold: portable::fold, dot: dot_checked }
            }
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx2 => {
                Tile { mr: avx2::MR, nr: avx2::NR, run: avx2::tile, fold: avx2::fold, dot: avx2::dot_checked }
            }
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx512 => {
                Tile { mr: avx512::MR, nr: avx512::NR, run: avx512::tile, fold: avx512::fold, dot: avx512::dot_checked }
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => return None,
        })
    }
}

impl<E: Element> Tile<E> {
    /// `out[r·NR + j] = Σ_{p<n} a[p·MR + r] · b[p·NR + j]` (added to `out`'s values when
    /// `accumulate`, so a long reduction can run in chunks), then the epilogue if there is one.
    /// Meanwhile it prefetches `n` cache lines from `prefetch` into L2 (none when null): the
    /// tile is bound by arithmetic, so memory the next step needs can stream in beside it.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn run(
        &self,
        a: &[E],
        b: &[E],
        n: usize,
        out: &mut [f32],
        accumulate: bool,
        epilogue: Option<&mut Epilogue<'_>>,
        prefetch: *const u8,
    ) {
        assert!(a.len() >= n * self.mr && b.len() >= n * self.nr && out.len() >= self.mr * self.nr);
        if let Some(e) = &epilogue {
            let heads = e.heads.len() / self.nr;
            assert!(e.bias.len() >= self.nr && e.heads.len() % self.nr == 0 && e.stride >= heads * LANES);
            assert!(e.rows <= self.mr && e.sums.len() >= e.rows.saturating_sub(1) * e.stride + heads * LANES);
        }
        // SAFETY: the lengths are checked above, and `Tile::new` hands out an instruction-set
        // kernel only after run-time detection found that instruction set.
        unsafe { (self.run)(a.as_ptr(), b.as_ptr(), n, out.as_mut_ptr(), accumulate, epilogue, prefetch) }
    }

    /// Folds a query into one panel (see [`Fold`]); `false` when an `m` value is out of `E`'s
    /// range.
    pub(crate) fn fold(&self, f: Fold<'_, E>) -> bool {
        let nr = self.nr;
        let streams = if f.u.is_empty() { 3 } else { 4 };
        assert!(f.v.len() == nr && (f.u.is_empty() || f.u.len() == nr));
        assert!(f.m.len() == f.q.len() * nr && f.weights.len() == f.q.len() * streams * nr);
        // SAFETY: as for `run`.
        unsafe { (self.fold)(f) }
    }

    /// [`dot_checked`] on this tile's instruction set.
    pub(crate) fn dot_checked(&self, a: &[f32], b: &[f32]) -> (f32, bool) {
        assert_eq!(a.len(), b.len());
        // SAFETY: as for `run`.
        unsafe { (self.dot)(a, b) }
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
        _prefetch: *const u8,
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

    /// # Safety
    /// None beyond [`super::Tile::fold`]'s checks.
    pub unsafe fn fold(f: super::Fold<'_, f32>) -> bool {
        super::fold_f32::<NR>(f)
    }
}

/// One x86 kernel module: its FMA-peak loop and its `MR × NR` tile of two vectors per row, written
/// once for every vector width. `$reduce` sums a vector's lanes.
macro_rules! x86_kernel {
    (
        $module:ident, $feature:literal, $vec:ty, lanes: $lanes:literal, mr: $mr:literal,
        $zero:ident, $set1:ident, $load:ident, $store:ident, $fmadd:ident, $add:ident, $max:ident,
        $reduce:expr
    ) => {
        /// cbindgen:ignore
        #[cfg(target_arch = "x86_64")]
        pub(super) mod $module {
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
            #[doc = concat!("The CPU has ", $feature, ".")]
            #[target_feature(enable = $feature)]
            pub unsafe fn dot_checked(a: &[f32], b: &[f32]) -> (f32, bool) {
                super::dot_checked(a, b)
            }

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
                prefetch: *const u8,
            ) {
                // SAFETY (every block below): offsets stay within the caller's lengths.
                let mut acc = [[$zero(); 2]; MR];
                if accumulate {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        *acc = unsafe { [$load(out.add(r * NR)), $load(out.add(r * NR + $lanes))] };
                    }
                }
                for p in 0..n {
                    if !prefetch.is_null() {
                        // A hint: it never faults, whatever the address.
                        _mm_prefetch::<_MM_HINT_T1>(prefetch.wrapping_add(64 * p).cast());
                    }
                    let (b0, b1) = unsafe { ($load(b.add(p * NR)), $load(b.add(p * NR + $lanes))) };
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = $set1(unsafe { *a.add(p * MR + r) });
                        acc[0] = $fmadd(x, b0, acc[0]);
                        acc[1] = $fmadd(x, b1, acc[1]);
                    }
                }
                match e {
                    Some(e) if e.activation == super::Activation::Relu => unsafe { relu_epilogue(|r| acc[r], out, e) },
                    e => {
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
            }

            /// [`super::epilogue`] for ReLU on a tile of `V` vectors per row, row `r` given by
            /// `row(r)` (from registers, or loaded just before it is used; the generic epilogue
            /// copies the tile through the stack): bias, the finiteness check, ReLU, the
            /// activations stored to `out`, and each head's products added into its sums.
            ///
            /// # Safety
            #[doc = concat!("The CPU has ", $feature, "; `out` holds `rows · V·", $lanes, "` values; `e` checked by `Tile::run`.")]
            #[target_feature(enable = $feature)]
            #[inline]
            pub(in crate::engine) unsafe fn relu_epilogue<const V: usize>(
                row: impl Fn(usize) -> [$vec; V],
                out: *mut f32,
                e: &mut super::Epilogue<'_>,
            ) {
                let nr = V * $lanes;
                // SAFETY (every block below): `Tile::run` checked `bias`, `heads` and `sums`
                // against the tile's width, `rows` and `stride`.
                let bias: [$vec; V] = std::array::from_fn(|c| unsafe { $load(e.bias.as_ptr().add(c * $lanes)) });
                let (zero, mut check) = ($zero(), $zero());
                let heads = e.heads.len() / nr;
                for r in 0..e.rows {
                    let row = row(r);
                    let x: [$vec; V] = std::array::from_fn(|c| {
                        let pre = $add(row[c], bias[c]);
                        // `x·0 + check` turns NaN for a non-finite `x`.
                        check = $fmadd(pre, zero, check);
                        let x = $max(pre, zero);
                        unsafe { $store(out.add(r * nr + c * $lanes), x) };
                        x
                    });
                    for h in 0..heads {
                        let (head, sums) = unsafe {
                            (e.heads.as_ptr().add(h * nr), e.sums.as_mut_ptr().add(r * e.stride + h * super::LANES))
                        };
                        // Column `j` adds into lane `j % LANES`, as in the generic epilogue.
                        for (c, x) in x.iter().enumerate() {
                            let o = c * $lanes % super::LANES;
                            unsafe {
                                $store(sums.add(o), $fmadd(*x, $load(head.add(c * $lanes)), $load(sums.add(o))));
                            }
                        }
                    }
                }
                e.non_finite |= !$reduce(check).is_finite();
            }

            /// [`super::Fold`] with `v` and `u` in registers for the whole panel.
            ///
            /// # Safety
            #[doc = concat!("The CPU has ", $feature, "; the lengths checked by `Tile::fold`.")]
            #[target_feature(enable = $feature)]
            pub unsafe fn fold(f: super::Fold<'_, f32>) -> bool {
                let dot = !f.u.is_empty();
                let row = if dot { 4 * NR } else { 3 * NR };
                // SAFETY (every block below): offsets within `NR`-wide rows of the checked lengths.
                let mut v = [0, 1].map(|c| unsafe { $load(f.v.as_ptr().add(c * $lanes)) });
                let mut u = [$zero(); 2];
                if dot {
                    u = [0, 1].map(|c| unsafe { $load(f.u.as_ptr().add(c * $lanes)) });
                }
                for ((w, m), &x) in f.weights.chunks_exact(row).zip(f.m.chunks_exact_mut(NR)).zip(f.q) {
                    let (x, w, m) = ($set1(x), w.as_ptr(), m.as_mut_ptr());
                    for c in 0..2 {
                        let o = c * $lanes;
                        unsafe {
                            $store(m.add(o), $fmadd(x, $load(w.add(NR + o)), $load(w.add(o))));
                            v[c] = $fmadd(x, $load(w.add(2 * NR + o)), v[c]);
                            if dot {
                                u[c] = $fmadd(x, $load(w.add(3 * NR + o)), u[c]);
                            }
                        }
                    }
                }
                for c in 0..2 {
                    unsafe {
                        $store(f.v.as_mut_ptr().add(c * $lanes), v[c]);
                        if dot {
                            $store(f.u.as_mut_ptr().add(c * $lanes), u[c]);
                        }
                    }
                }
                true
            }
        }
    };
}

// 6 × 16 in 12 of AVX2's 16 ymm registers; 12 × 32 in 24 of AVX-512's 32 zmm registers.
x86_kernel!(avx2, "avx2,fma", __m256, lanes: 8, mr: 6,
_mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_max_ps,
|sum: __m256| {
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds the 8 values stored.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum::<f32>()
});
x86_kernel!(avx512, "avx512f", __m512, lanes: 16, mr: 12,
    _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps,
    _mm512_max_ps, _mm512_reduce_add_ps);

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
                tile.run(&a, &b, n, &mut out, false, None, std::ptr::null());
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

    /// Four rows scattered at once equal four rows scattered one by one, for lengths around the
    /// transpose's width of 4.
    #[test]
    fn scatter4_transposes_four_rows() {
        for len in [0, 1, 4, 7, 9] {
            let rows: Vec<Vec<f32>> = (0..4).map(|i| (0..len).map(|p| (10 * i + p) as f32).collect()).collect();
            let mut dst = vec![f32::NAN; len.max(1) * 6];
            assert!(f32::scatter4(&mut dst, 6, [&rows[0], &rows[1], &rows[2], &rows[3]]));
            for (p, i) in (0..len).flat_map(|p| (0..4).map(move |i| (p, i))) {
                assert_eq!(dst[p * 6 + i], rows[i][p], "len={len} p={p} i={i}");
            }
        }
    }

    /// Every available kernel's fold against float64, with and without `W₂ᵀ`, and with a
    /// prefetch that runs past the end of its buffer (a hint, which must not fault).
    #[test]
    fn folds_match_float64() {
        for kernel in CpuKernel::ALL.into_iter().filter(|k| k.is_available()) {
            let tile = Tile::new(kernel).unwrap();
            let nr = tile.nr;
            for (d, streams) in [(1, 4), (7, 3), (33, 4)] {
                let value = |i: usize| ((i * 7919 % 113) as f32 - 56.0) / 37.0;
                let weights: Vec<f32> = (0..d * streams * nr).map(value).collect();
                let w = |p: usize, s: usize, j: usize| weights[(p * streams + s) * nr + j] as f64;
                let q: Vec<f32> = (0..d).map(|p| value(p + 11)).collect();
                let (mut m, mut v, mut u) = (vec![f32::NAN; d * nr], vec![0.5f32; nr], vec![-0.25f32; nr]);
                let u_len = if streams == 4 { nr } else { 0 };
                assert!(tile.fold(Fold { weights: &weights, q: &q, m: &mut m, v: &mut v, u: &mut u[..u_len] }));
                for j in 0..nr {
                    let (mut want_v, mut want_u) = (0.5f64, -0.25f64);
                    for p in 0..d {
                        let want_m = w(p, 0, j) + q[p] as f64 * w(p, 1, j);
                        assert!((m[p * nr + j] as f64 - want_m).abs() <= 1e-5 * (1.0 + want_m.abs()), "{kernel:?}");
                        want_v += q[p] as f64 * w(p, 2, j);
                        if streams == 4 {
                            want_u += q[p] as f64 * w(p, 3, j);
                        }
                    }
                    assert!((v[j] as f64 - want_v).abs() <= 1e-4 * (1.0 + want_v.abs()), "{kernel:?} d={d}");
                    assert!((u[j] as f64 - want_u).abs() <= 1e-4 * (1.0 + want_u.abs()), "{kernel:?} d={d}");
                }
                let a = vec![1.0f32; d * tile.mr];
                let mut out = vec![0.0f32; tile.mr * nr];
                tile.run(&a, &m, d, &mut out, false, None, weights[weights.len() - 1..].as_ptr().cast());
                assert!(out.iter().all(|x| x.is_finite()));
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
                    tile.run(&a, &b, n, &mut out, false, Some(&mut e), std::ptr::null());
                    assert!(!e.non_finite, "{kernel:?} {activation:?}: finite values flagged");
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
                    // A pre-activation of −∞ is flagged, though ReLU would turn it into 0.
                    let mut bias = bias.clone();
                    bias[nr - 1] = f32::NEG_INFINITY;
                    let mut e = Epilogue {
                        bias: &bias,
                        activation,
                        heads: &head,
                        sums: &mut sums,
                        stride,
                        rows,
                        non_finite: false,
                    };
                    tile.run(&a, &b, n, &mut out, false, Some(&mut e), std::ptr::null());
                    assert!(e.non_finite, "{kernel:?} {activation:?}: −∞ not flagged");
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
