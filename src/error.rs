//! One error type for the whole library. Every message names the argument, tensor or key at
//! fault and, where there is one, the expected against the actual value.

use std::fmt;

/// What went wrong, coarsely; the C ABI maps each kind to one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A required pointer or buffer was missing (C ABI only).
    NullPointer,
    /// A length, stride, index or option value is wrong.
    InvalidArgument,
    /// Embedding width disagrees with the model's `d`.
    DimensionMismatch,
    /// NaN or ±Inf in queries, candidates or base scores.
    NonFiniteInput,
    /// The adapter file is malformed, hostile or violates SPEC §2.
    InvalidModel,
    /// Reading or writing a file failed.
    Io,
    /// The forward pass overflowed on finite input (inputs or weights of absurd magnitude).
    Numeric,
    /// The request needs something this build or machine does not have.
    Unsupported,
    /// A bug in the library (a caught panic).
    Internal,
}

/// An error with a message fit to show a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }
    pub(crate) fn invalid_model(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidModel, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
