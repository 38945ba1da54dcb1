//! Evaluation: ranking metrics, confidence intervals and significance tests, the adapter's
//! four-way classification, and the negative-sampling strategies RRRA is compared against.
//!
//! Everything here is plain std Rust over per-query values, so the same code scores a run of
//! the command-line tool, a test and a benchmark. Randomness comes from [`crate::sampler`]'s
//! SplitMix64 so every interval and p-value is reproducible from its seed.
//!
//! - [`metrics`]: recall, hit rate, reciprocal rank and nDCG at a cutoff, per query.
//! - [`stats`]: bootstrap intervals, a paired randomization test and the sign test.
//! - [`classes`]: the TP/FN/FP/TN confusion matrix of the adapter's classifier.
//! - [`negatives`]: top-n, uniform, SimANS and RRRA negatives from a query's candidates.

pub mod classes;
pub mod metrics;
pub mod negatives;
pub mod stats;
