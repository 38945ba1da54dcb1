//! Embedding values as the caller stores them: f32, f16 or bf16 (SPEC §1).
//!
//! The engines read f16 and bf16 values widened to f32, which is exact: a batch scores the same,
//! bit for bit, as the same values passed as f32. What the narrow types save is the caller's
//! memory and the bandwidth of reading it.

use half::{bf16, f16};
use std::ops::Range;

/// A borrowed run of embedding values in one of the three element types.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    F32(&'a [f32]),
    /// IEEE half precision.
    F16(&'a [f16]),
    /// bfloat16.
    Bf16(&'a [bf16]),
}

macro_rules! values_from {
    ($($t:ty => $variant:ident),*) => {$(
        impl<'a> From<&'a [$t]> for Values<'a> {
            fn from(values: &'a [$t]) -> Self {
                Values::$variant(values)
            }
        }
        impl<'a> From<&'a Vec<$t>> for Values<'a> {
            fn from(values: &'a Vec<$t>) -> Self {
                Values::$variant(values)
            }
        }
        impl<'a, const N: usize> From<&'a [$t; N]> for Values<'a> {
            fn from(values: &'a [$t; N]) -> Self {
                Values::$variant(values)
            }
        }
    )*};
}
values_from!(f32 => F32, f16 => F16, bf16 => Bf16);

impl<'a> Values<'a> {
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F16(v) => v.len(),
            Values::Bf16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes one value takes.
    pub(crate) fn value_size(&self) -> usize {
        match self {
            Values::F32(_) => 4,
            Values::F16(_) | Values::Bf16(_) => 2,
        }
    }

    /// Values `range`, or `None` where it is out of bounds.
    pub(crate) fn get(&self, range: Range<usize>) -> Option<Values<'a>> {
        Some(match self {
            Values::F32(v) => Values::F32(v.get(range)?),
            Values::F16(v) => Values::F16(v.get(range)?),
            Values::Bf16(v) => Values::Bf16(v.get(range)?),
        })
    }

    /// Values `range`; panics out of bounds, as slicing does (callers index validated batches).
    pub(crate) fn slice(&self, range: Range<usize>) -> Values<'a> {
        let (start, end, len) = (range.start, range.end, self.len());
        self.get(range).unwrap_or_else(|| panic!("values {start}..{end} of {len}"))
    }

    /// Value `i` widened to f32.
    pub(crate) fn value(&self, i: usize) -> f32 {
        match self {
            Values::F32(v) => v[i],
            Values::F16(v) => v[i].to_f32(),
            Values::Bf16(v) => v[i].to_f32(),
        }
    }

    /// These values as f32: borrowed where they are f32, otherwise widened into the start of
    /// `buf`, which must hold at least [`Values::len`] values.
    pub(crate) fn as_f32<'b>(&self, buf: &'b mut [f32]) -> &'b [f32]
    where
        'a: 'b,
    {
        match *self {
            Values::F32(v) => v,
            Values::F16(v) => {
                let out = &mut buf[..v.len()];
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, checked just above.
                    unsafe { avx512::widen_f16(v, out) };
                    return out;
                }
                // half converts with F16C where the CPU has it (detected at run time).
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(v, out);
                out
            }
            Values::Bf16(v) => {
                let out = &mut buf[..v.len()];
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: as above.
                    unsafe { avx512::widen_bf16(v, out) };
                    return out;
                }
                out.iter_mut().zip(v).for_each(|(o, x)| *o = x.to_f32());
                out
            }
        }
    }

    /// Appends these values, widened to f32, to `out`.
    #[cfg(any(feature = "cuda", test))]
    pub(crate) fn extend_f32(&self, out: &mut Vec<f32>) {
        let start = out.len();
        out.resize(start + self.len(), 0.0);
        if let Values::F32(v) = self {
            out[start..].copy_from_slice(v);
        } else {
            self.as_f32(&mut out[start..]);
        }
    }

    /// Whether every value is finite. Validation reads every input value on every call, so
    /// each loop is written for the compiler to vectorise; the narrow types test the exponent
    /// bits, all ones for ±Inf and NaN.
    pub(crate) fn all_finite(&self) -> bool {
        match self {
            Values::F32(v) => all_finite_f32(v),
            Values::F16(v) => !v.iter().fold(false, |any, x| any | (x.to_bits() & 0x7c00 == 0x7c00)),
            Values::Bf16(v) => !v.iter().fold(false, |any, x| any | (x.to_bits() & 0x7f80 == 0x7f80)),
        }
    }

    /// The position and value of the first NaN or ±Inf.
    pub(crate) fn first_non_finite(&self) -> Option<(usize, f32)> {
        if self.all_finite() {
            return None;
        }
        (0..self.len()).map(|i| (i, self.value(i))).find(|(_, x)| !x.is_finite())
    }

    /// Asks for these values' cache lines to be brought into L2.
    pub(crate) fn prefetch_l2(&self) {
        match self {
            Values::F32(v) => crate::engine::simd::prefetch_l2(v),
            Values::F16(v) => crate::engine::simd::prefetch_l2(v),
            Values::Bf16(v) => crate::engine::simd::prefetch_l2(v),
        }
    }

    /// The address range of these values, for the C ABI's aliasing check.
    pub(crate) fn byte_range(&self) -> Range<usize> {
        let start = match self {
            Values::F32(v) => v.as_ptr() as usize,
            Values::F16(v) => v.as_ptr() as usize,
            Values::Bf16(v) => v.as_ptr() as usize,
        };
        start..start + self.len() * self.value_size()
    }
}

/// Widening sixteen values per instruction. The engines widen each candidate row of a narrow
/// batch as they pack it; half's own F16C path converts eight at a time through a call per
/// eight, which made the widening a tenth of the f16 tile's time at d = 384.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX-512F. `dst` must be as long as `src`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen_f16(src: &[f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len());
        let (chunks, tail) = src.as_chunks::<16>();
        for (i, chunk) in chunks.iter().enumerate() {
            // SAFETY: 16 values read from `chunk`, 16 written from `dst[16·i]`, within both.
            unsafe {
                let bits = _mm256_loadu_si256(chunk.as_ptr().cast());
                _mm512_storeu_ps(dst.as_mut_ptr().add(16 * i), _mm512_cvtph_ps(bits));
            }
        }
        dst[16 * chunks.len()..].iter_mut().zip(tail).for_each(|(o, x)| *o = x.to_f32());
    }

    /// # Safety
    /// As [`widen_f16`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn widen_bf16(src: &[bf16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len());
        let (chunks, tail) = src.as_chunks::<16>();
        for (i, chunk) in chunks.iter().enumerate() {
            // SAFETY: as in `widen_f16`. A bf16 is the top half of an f32.
            unsafe {
                let bits = _mm512_cvtepu16_epi32(_mm256_loadu_si256(chunk.as_ptr().cast()));
                _mm512_storeu_ps(dst.as_mut_ptr().add(16 * i), _mm512_castsi512_ps(_mm512_slli_epi32::<16>(bits)));
            }
        }
        dst[16 * chunks.len()..].iter_mut().zip(tail).for_each(|(o, x)| *o = x.to_f32());
    }
}

/// Whether every value of `row` is finite: `x·0` is 0 for a finite `x` and NaN otherwise, summed
/// in 16 independent lanes so the compiler vectorises it.
fn all_finite_f32(row: &[f32]) -> bool {
    let mut lanes = [0.0f32; 16];
    let chunks = row.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(0.0f32, |acc, &x| acc + x * 0.0);
    for chunk in chunks {
        for l in 0..16 {
            lanes[l] += chunk[l] * 0.0;
        }
    }
    (lanes.iter().sum::<f32>() + tail).is_finite()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_values_widen_exactly_and_report_what_is_not_finite() {
        let wide: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.37).collect();
        let halves: Vec<f16> = wide.iter().map(|&x| f16::from_f32(x)).collect();
        let brains: Vec<bf16> = wide.iter().map(|&x| bf16::from_f32(x)).collect();
        let mut buf = vec![0.0; 40];
        for (values, expect) in [
            (Values::from(&halves), halves.iter().map(|x| x.to_f32()).collect::<Vec<_>>()),
            (Values::from(&brains), brains.iter().map(|x| x.to_f32()).collect()),
            (Values::from(&wide), wide.clone()),
        ] {
            assert_eq!(values.as_f32(&mut buf), &expect[..]);
            let mut extended = vec![1.0];
            values.extend_f32(&mut extended);
            assert_eq!(extended[1..], expect[..]);
            assert!(values.all_finite());
            assert_eq!(values.first_non_finite(), None);
        }
        let mut halves = halves;
        halves[33] = f16::NEG_INFINITY;
        assert_eq!(Values::from(&halves).first_non_finite(), Some((33, f32::NEG_INFINITY)));
        let mut brains = brains;
        brains[2] = bf16::NAN;
        assert!(Values::from(&brains).first_non_finite().is_some_and(|(i, x)| i == 2 && x.is_nan()));
        // The largest finite values are finite.
        assert!(Values::from(&[f16::MAX, f16::MIN]).all_finite() && Values::from(&[bf16::MAX, bf16::MIN]).all_finite());
        assert_eq!(Values::from(&brains).byte_range().len(), 2 * brains.len());
    }

    #[test]
    fn every_f16_and_bf16_bit_pattern_widens_as_half_says() {
        // Bit for bit, except that a NaN only has to stay a NaN (its payload is not kept alike).
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        let bits: Vec<u16> = (0..=u16::MAX).collect();
        let halves: Vec<f16> = bits.iter().map(|&b| f16::from_bits(b)).collect();
        let brains: Vec<bf16> = bits.iter().map(|&b| bf16::from_bits(b)).collect();
        let mut buf = vec![0.0; bits.len()];
        let widened = Values::from(&halves).as_f32(&mut buf);
        assert!(widened.iter().zip(&halves).all(|(&w, x)| same(w, x.to_f32())));
        let widened = Values::from(&brains).as_f32(&mut buf);
        assert!(widened.iter().zip(&brains).all(|(&w, x)| same(w, x.to_f32())));
    }
}
