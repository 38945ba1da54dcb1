//! Boundary plumbing shared by every export: status codes, the thread-local error message,
//! the panic guard, and checked conversion of raw pointers into slices and structs.

use crate::error::{Error, ErrorKind, Result};
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Result of every fallible function. Values are never renumbered; new ones are appended.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum rrra_status {
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1001,
    /// A length, stride, index, struct_size, flag or option value is wrong.
    InvalidArgument = 1002,
    /// An embedding width disagrees with the model's `d`.
    DimensionMismatch = 1003,
    /// NaN or ±Inf in queries, candidates or base scores.
    NonFiniteInput = 1004,
    /// The adapter file is malformed, hostile or violates the format.
    InvalidModel = 1005,
    /// A file could not be read.
    Io = 1006,
    /// The forward pass overflowed on finite input of absurd magnitude.
    Numeric = 1007,
    /// The request needs something this build or machine does not have.
    Unsupported = 1008,
    /// A bug in rrra (a caught panic); the message says where. Please report it.
    Internal = 1099,
}

impl From<ErrorKind> for rrra_status {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::NullPointer => rrra_status::NullPointer,
            ErrorKind::InvalidArgument => rrra_status::InvalidArgument,
            ErrorKind::DimensionMismatch => rrra_status::DimensionMismatch,
            ErrorKind::NonFiniteInput => rrra_status::NonFiniteInput,
            ErrorKind::InvalidModel => rrra_status::InvalidModel,
            ErrorKind::Io => rrra_status::Io,
            ErrorKind::Numeric => rrra_status::Numeric,
            ErrorKind::Unsupported => rrra_status::Unsupported,
            ErrorKind::Internal => rrra_status::Internal,
        }
    }
}

thread_local! {
    // None after a successful call, so success costs no allocation.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(message: Option<&str>) {
    // Interior NULs cannot appear in a C string; none occur in our messages, but be safe.
    let text = message.map(|m| CString::new(m.replace('\0', " ")).unwrap_or_default());
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Runs `body` behind the panic boundary and records its error for `rrra_last_error`.
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> rrra_status {
    set_last_error(None);
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => rrra_status::Ok,
        Ok(Err(e)) => {
            set_last_error(Some(e.message()));
            e.kind().into()
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(Some(&format!("internal error (a bug in rrra, please report it): {what}")));
            rrra_status::Internal
        }
    }
}

/// Runs a `*_free` body behind the panic boundary without touching `rrra_last_error`, so a
/// caller may clean up before it reads the message of the call that failed.
pub(crate) fn guard_free(body: impl FnOnce()) {
    // A panic while freeing has nowhere to be reported; it must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// The message of the last failed call on this thread, or "" if the last call succeeded.
///
/// Ownership: the string belongs to the library and stays valid until the next rrra call on
/// this thread; copy it to keep it. Thread-safety: each thread has its own message.
/// Errors: none; never returns NULL.
#[no_mangle]
pub extern "C" fn rrra_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(c"".as_ptr(), |m| m.as_ptr()))
}

/// A static, NUL-terminated name for a status code, e.g. "RRRA_STATUS_INVALID_MODEL";
/// "RRRA_STATUS_UNKNOWN" for a value this version does not define.
/// Ownership: static storage, never freed. Thread-safety: any thread. Errors: none.
#[no_mangle]
pub extern "C" fn rrra_status_name(status: i32) -> *const c_char {
    let name: &'static [u8] = match status {
        0 => b"RRRA_STATUS_OK\0",
        1001 => b"RRRA_STATUS_NULL_POINTER\0",
        1002 => b"RRRA_STATUS_INVALID_ARGUMENT\0",
        1003 => b"RRRA_STATUS_DIMENSION_MISMATCH\0",
        1004 => b"RRRA_STATUS_NON_FINITE_INPUT\0",
        1005 => b"RRRA_STATUS_INVALID_MODEL\0",
        1006 => b"RRRA_STATUS_IO\0",
        1007 => b"RRRA_STATUS_NUMERIC\0",
        1008 => b"RRRA_STATUS_UNSUPPORTED\0",
        1099 => b"RRRA_STATUS_INTERNAL\0",
        _ => b"RRRA_STATUS_UNKNOWN\0",
    };
    name.as_ptr().cast()
}

/// The library version as "MAJOR.MINOR.PATCH", equal to `RRRA_VERSION_STRING` of the header
/// it was built with. Ownership: static storage, never freed. Thread-safety: any thread.
/// Errors: none.
#[no_mangle]
pub extern "C" fn rrra_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

pub(crate) fn null_pointer(name: &str) -> Error {
    Error::new(ErrorKind::NullPointer, format!("{name} is NULL"))
}

/// A caller buffer as a slice; `len_name` is the argument that carries its length.
/// NULL is accepted only with length 0.
///
/// # Safety
/// If non-NULL, `ptr` must point to `len` valid, initialised values that stay unchanged
/// during the call.
pub(crate) unsafe fn input_slice<'a, T>(ptr: *const T, len: usize, name: &str, len_name: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    check_buffer(ptr, len, name, len_name)?;
    // SAFETY: non-NULL, aligned and size-checked above; validity is the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An optional input: NULL with length 0 means "not given"; NULL with a length is an error,
/// since it most likely is a pointer the caller forgot to set.
///
/// # Safety
/// As [`input_slice`].
pub(crate) unsafe fn optional_input<'a, T>(
    ptr: *const T,
    len: usize,
    name: &str,
    len_name: &str,
) -> Result<Option<&'a [T]>> {
    if ptr.is_null() && len == 0 {
        return Ok(None);
    }
    // SAFETY: the caller's contract.
    unsafe { input_slice(ptr, len, name, len_name) }.map(Some)
}

/// An optional caller output buffer: NULL with length 0 means "not wanted".
///
/// # Safety
/// If non-NULL, `ptr` must point to `len` writable values not aliased by any other argument.
pub(crate) unsafe fn output_slice<'a, T>(
    ptr: *mut T,
    len: usize,
    name: &str,
    len_name: &str,
) -> Result<Option<&'a mut [T]>> {
    if ptr.is_null() && len == 0 {
        return Ok(None);
    }
    if len == 0 {
        return Ok(Some(&mut []));
    }
    check_buffer(ptr.cast_const(), len, name, len_name)?;
    // SAFETY: non-NULL, aligned and size-checked above; validity is the caller's contract.
    Ok(Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) }))
}

fn check_buffer<T>(ptr: *const T, len: usize, name: &str, len_name: &str) -> Result<()> {
    if ptr.is_null() {
        return Err(Error::new(ErrorKind::NullPointer, format!("{name} is NULL but {len_name} is {len}")));
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::invalid_argument(format!("{name} is not aligned to {} bytes", std::mem::align_of::<T>())));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(Error::invalid_argument(format!("{len_name} = {len} is larger than any {name} buffer can be")));
    }
    Ok(())
}

/// A named byte range of a caller buffer: (name, address, bytes).
pub(crate) type Extent = (&'static str, usize, usize);

/// The byte range of a slice, for [`check_disjoint`].
pub(crate) fn extent<T>(name: &'static str, s: &[T]) -> Extent {
    (name, s.as_ptr() as usize, std::mem::size_of_val(s))
}

/// The byte range of caller values of any element type, for [`check_disjoint`].
pub(crate) fn values_extent(name: &'static str, v: crate::values::Values<'_>) -> Extent {
    let bytes = v.byte_range();
    (name, bytes.start, bytes.len())
}

/// Outputs must not overlap each other or any input: a Rust `&mut` may not alias.
/// `None` entries (absent buffers) are skipped.
pub(crate) fn check_disjoint(outputs: &[Option<Extent>], inputs: &[Option<Extent>]) -> Result<()> {
    let overlaps = |a: &Extent, b: &Extent| a.1 < b.1 + b.2 && b.1 < a.1 + a.2;
    for (i, out) in outputs.iter().enumerate().filter_map(|(i, o)| Some((i, o.as_ref()?))) {
        for other in outputs[i + 1..].iter().chain(inputs).flatten() {
            if out.2 > 0 && other.2 > 0 && overlaps(out, other) {
                return Err(Error::invalid_argument(format!("{} overlaps {} in memory", out.0, other.0)));
            }
        }
    }
    Ok(())
}

/// The `struct_size` a caller declared at the start of its struct, after checking the pointer.
///
/// # Safety
/// `ptr` must be NULL or point to at least a `size_t` of readable bytes.
unsafe fn declared_size<T>(ptr: *const T, name: &str) -> Result<usize> {
    if ptr.is_null() {
        return Err(null_pointer(name));
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::invalid_argument(format!("{name} is not aligned")));
    }
    // SAFETY: every such struct starts with a size_t; the caller provides at least that much.
    Ok(unsafe { *(ptr as *const usize) })
}

fn size_mismatch<T>(name: &str, size: usize) -> Error {
    let want = std::mem::size_of::<T>();
    Error::invalid_argument(format!(
        "{name}->struct_size: expected {want} (sizeof from this version's rrra.h), got {size}"
    ))
}

/// Reads a caller struct whose first field is its `struct_size`.
///
/// Callers set `struct_size = sizeof(T)` from the header they compiled against; this version
/// knows exactly one layout of the struct, so any other size is refused with a message instead
/// of being read past its end.
///
/// # Safety
/// `ptr` must be NULL or point to at least `struct_size` readable bytes.
pub(crate) unsafe fn read_struct<T: Copy>(ptr: *const T, name: &str) -> Result<T> {
    // SAFETY: the caller's contract.
    let size = unsafe { declared_size(ptr, name) }?;
    if size != std::mem::size_of::<T>() {
        return Err(size_mismatch::<T>(name, size));
    }
    // SAFETY: the caller declared the full struct.
    Ok(unsafe { *ptr })
}

/// As [`read_struct`], but also accepts the `struct_size` of an older version of a struct that
/// grew, listed in `older_sizes`: the fields that version did not have keep `T::default()`.
///
/// # Safety
/// As [`read_struct`].
pub(crate) unsafe fn read_struct_since<T: Copy + Default>(
    ptr: *const T,
    name: &str,
    older_sizes: &[usize],
) -> Result<T> {
    // SAFETY: the caller's contract.
    let size = unsafe { declared_size(ptr, name) }?;
    let want = std::mem::size_of::<T>();
    if size == want {
        // SAFETY: the caller declared the full struct.
        return Ok(unsafe { *ptr });
    }
    if !(older_sizes.contains(&size) && size < want) {
        return Err(size_mismatch::<T>(name, size));
    }
    let mut value = T::default();
    // SAFETY: the caller declared `size` readable bytes, fewer than `value` has; an older version's
    // fields are a prefix of this one's with the same layout.
    unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&mut value as *mut T).cast::<u8>(), size) };
    Ok(value)
}

/// Writes a freshly created handle to the caller's out-pointer.
///
/// # Safety
/// `out` must be a valid, writable pointer (checked for NULL by the caller of this function).
pub(crate) unsafe fn write_handle<T>(out: *mut *mut T, value: T) {
    // SAFETY: checked non-NULL by the caller; we only write on success.
    unsafe { *out = Box::into_raw(Box::new(value)) };
}

/// Frees a handle made by [`write_handle`]; NULL is a no-op.
///
/// # Safety
/// `ptr` must be NULL or a pointer returned through [`write_handle`] and not yet freed.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the pointer came from Box::into_raw and is freed once, per the contract.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: rrra_last_error always returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(rrra_last_error()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let status = guard(|| panic!("boom at the boundary"));
        assert_eq!(status, rrra_status::Internal);
        assert!(last_error().contains("boom at the boundary"), "{}", last_error());
        assert_eq!(guard(|| Ok(())), rrra_status::Ok);
        assert_eq!(last_error(), "", "a successful call clears the message");
    }

    #[test]
    fn errors_map_to_their_status_and_message() {
        let status = guard(|| Err(Error::new(ErrorKind::DimensionMismatch, "dim: expected 768, got 384")));
        assert_eq!(status, rrra_status::DimensionMismatch);
        assert_eq!(last_error(), "dim: expected 768, got 384");
    }
}
