//! Embedding element types at the boundary: `rrra_dtype` and the typed view of a `void*` buffer.

use super::boundary::input_slice;
use crate::error::{Error, Result};
use crate::values::Values;
use std::ffi::c_void;

/// How the caller stores embedding values (SPEC §1), for `rrra_batch.queries_dtype`,
/// `rrra_batch.candidates_dtype` and `rrra_corpus_new_typed`. The library widens f16 and bf16
/// to f32 as it reads them, which is exact: the scores are those of the same values passed as
/// f32. The session's arithmetic is a separate choice (`rrra_precision`).
#[repr(u32)]
pub enum rrra_dtype {
    /// 32-bit IEEE floats (`float`). The default.
    F32 = 0,
    /// 16-bit IEEE half floats (`_Float16`, numpy's float16), passed as their bits.
    F16 = 1,
    /// bfloat16 (the top 16 bits of a float), passed as their bits.
    Bf16 = 2,
}

/// A caller buffer of `len` values of `dtype` (an `rrra_dtype` code). `dtype_name` names the
/// argument that carries the code, for the error of an unknown one.
///
/// # Safety
/// As [`input_slice`], for `len` values of that type.
pub(crate) unsafe fn input_values<'a>(
    ptr: *const c_void,
    len: usize,
    dtype: u32,
    name: &str,
    len_name: &str,
    dtype_name: &str,
) -> Result<Values<'a>> {
    // SAFETY: the caller's contract; `input_slice` checks NULL, alignment and size.
    unsafe {
        Ok(match dtype {
            0 => Values::F32(input_slice(ptr.cast::<f32>(), len, name, len_name)?),
            1 => Values::F16(input_slice(ptr.cast::<half::f16>(), len, name, len_name)?),
            2 => Values::Bf16(input_slice(ptr.cast::<half::bf16>(), len, name, len_name)?),
            other => {
                return Err(Error::invalid_argument(format!(
                    "{dtype_name}: unknown element type {other} (RRRA_DTYPE_F32 = 0, RRRA_DTYPE_F16 = 1, \
                     RRRA_DTYPE_BF16 = 2)"
                )))
            }
        })
    }
}
