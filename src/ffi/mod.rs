//! The C ABI: a thin skin over the safe Rust core. It checks and converts pointers, calls the
//! core, and maps errors to [`rrra_status`]; no scoring logic lives here.
//!
//! Conventions, for every exported function:
//! - the argument order is handle, inputs, outputs; every pointer is followed by its length;
//! - a panic never crosses the boundary: it becomes `RRRA_STATUS_INTERNAL`;
//! - outputs are written only when the function returns `RRRA_STATUS_OK`;
//! - after a failure, `rrra_last_error()` on the same thread describes it.
//!
//! `include/rrra.h` is generated from these modules by cbindgen (see `tests/header.rs`).

#![allow(non_camel_case_types)]

mod boundary;
mod corpus;
mod model;
mod sampler;
mod session;
mod values;

pub use boundary::{rrra_last_error, rrra_status, rrra_status_name, rrra_version};
pub use corpus::{rrra_corpus, rrra_corpus_free, rrra_corpus_new, rrra_corpus_new_typed};
pub use model::{
    rrra_activation, rrra_base_transform, rrra_model, rrra_model_free, rrra_model_info, rrra_model_info_get,
    rrra_model_load_bytes, rrra_model_load_file, rrra_similarity,
};
pub use sampler::{rrra_sample_negatives, RRRA_NOT_DRAWN};
pub use session::*;
pub use values::rrra_dtype;
