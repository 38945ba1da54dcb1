//! The adapter model of SPEC §2: its weights, its score configuration, and the file that holds them.

pub(crate) mod config;
mod file;

pub use config::{Activation, AdapterConfig, BaseTransform, Similarity};
pub use file::WeightDtype;

use crate::error::{Error, Result};
use std::path::Path;

/// The six weight tensors of SPEC §2, row-major f32, with `d` and `h` stated.
///
/// Trainers and tests build one of these and turn it into an [`Adapter`] with
/// [`Adapter::new`], which checks every shape and value.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterWeights {
    pub dim: usize,
    pub hidden: usize,
    /// `[h, 3d]`, input columns ordered `[q−c | q⊙c | q+c]`.
    pub fc1_weight: Vec<f32>,
    /// `[h]`
    pub fc1_bias: Vec<f32>,
    /// `[d, h]`
    pub fc2_weight: Vec<f32>,
    /// `[d]`
    pub fc2_bias: Vec<f32>,
    /// `[4, h]`, rows in class order TP, FN, FP, TN.
    pub classifier_weight: Vec<f32>,
    /// `[4]`
    pub classifier_bias: Vec<f32>,
}

impl AdapterWeights {
    /// Weights drawn like PyTorch's default `nn.Linear` initialisation (weights and biases
    /// uniform in ±1/√fan_in), deterministic in `seed`. For examples, benchmarks and tests:
    /// an untrained adapter reranks with noise.
    pub fn random(dim: usize, hidden: usize, seed: u64) -> AdapterWeights {
        let mut rng = crate::sampler::SplitMix64::new(seed);
        let mut draw = |n: usize, fan_in: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
            (0..n).map(|_| rng.next_symmetric(bound)).collect()
        };
        AdapterWeights {
            dim,
            hidden,
            fc1_weight: draw(hidden * 3 * dim, 3 * dim),
            fc1_bias: draw(hidden, 3 * dim),
            fc2_weight: draw(dim * hidden, hidden),
            fc2_bias: draw(dim, hidden),
            classifier_weight: draw(4 * hidden, hidden),
            classifier_bias: draw(4, hidden),
        }
    }

    /// Tensor names, shapes and data in file order, so loader and saver agree on one table.
    pub(crate) fn tensors(&self) -> [(&'static str, [usize; 2], &[f32]); 6] {
        let (d, h) = (self.dim, self.hidden);
        [
            ("fc1.weight", [h, 3 * d], &self.fc1_weight),
            ("fc1.bias", [h, 0], &self.fc1_bias),
            ("fc2.weight", [d, h], &self.fc2_weight),
            ("fc2.bias", [d, 0], &self.fc2_bias),
            ("classifier.weight", [4, h], &self.classifier_weight),
            ("classifier.bias", [4, 0], &self.classifier_bias),
        ]
    }
}

/// A loaded, validated adapter. Immutable: share it between threads behind an `Arc`.
#[derive(Clone, Debug, PartialEq)]
pub struct Adapter {
    weights: AdapterWeights,
    config: AdapterConfig,
}

/// Number of elements a `[rows, cols]` table entry describes (`cols == 0` marks a vector).
pub(crate) fn element_count(shape: [usize; 2]) -> usize {
    if shape[1] == 0 {
        shape[0]
    } else {
        shape[0] * shape[1]
    }
}

impl Adapter {
    /// Checks shapes, finiteness and the configuration, then takes ownership of both.
    /// `config.extra` is kept sorted by key, as a file stores it.
    pub fn new(weights: AdapterWeights, mut config: AdapterConfig) -> Result<Adapter> {
        config.extra.sort();
        if weights.dim == 0 || weights.hidden == 0 {
            return Err(Error::invalid_model(format!(
                "adapter dimensions must be at least 1, got d = {} and h = {}",
                weights.dim, weights.hidden
            )));
        }
        weights.dim.checked_mul(3).and_then(|x| x.checked_mul(weights.hidden)).ok_or_else(|| {
            Error::invalid_model(format!("adapter too large: d = {}, h = {}", weights.dim, weights.hidden))
        })?;
        for (name, shape, data) in weights.tensors() {
            let expected = element_count(shape);
            if data.len() != expected {
                return Err(Error::invalid_model(format!(
                    "tensor '{name}': expected {expected} values for shape {}, got {}",
                    shape_text(shape),
                    data.len()
                )));
            }
            check_finite(name, data)?;
        }
        config.validate()?;
        Ok(Adapter { weights, config })
    }

    /// Parses and validates an adapter file held in memory (SPEC §2).
    pub fn from_bytes(bytes: &[u8]) -> Result<Adapter> {
        file::parse(bytes)
    }

    /// Reads and validates an adapter file. For a regular file the header length is checked
    /// against the file's size before the rest is read, so pointing this at a large
    /// non-adapter file is cheap; pipes and other streams are read whole.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Adapter> {
        use std::io::Read;
        let path = path.as_ref();
        let in_file = |e: Error| Error::new(e.kind(), format!("{}: {}", path.display(), e.message()));
        let io = |e: std::io::Error| {
            Error::new(crate::ErrorKind::Io, format!("cannot read adapter file '{}': {e}", path.display()))
        };
        let mut f = std::fs::File::open(path).map_err(io)?;
        let meta = f.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(Error::new(crate::ErrorKind::Io, format!("'{}' is a directory", path.display())));
        }
        let mut bytes = Vec::new();
        if meta.is_file() {
            (&mut f).take(8).read_to_end(&mut bytes).map_err(io)?;
            file::check_header_length(&bytes, meta.len()).map_err(in_file)?;
        }
        f.read_to_end(&mut bytes).map_err(io)?;
        file::parse(&bytes).map_err(in_file)
    }

    /// Serialises to the safetensors layout of SPEC §2 with the given tensor dtype.
    pub fn to_bytes(&self, dtype: WeightDtype) -> Result<Vec<u8>> {
        file::serialize(self, dtype)
    }

    /// Writes the adapter file (f32 tensors).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes(WeightDtype::F32)?;
        std::fs::write(path, bytes).map_err(|e| {
            Error::new(crate::ErrorKind::Io, format!("cannot write adapter file '{}': {e}", path.display()))
        })
    }

    /// Embedding dimension `d`.
    pub fn dim(&self) -> usize {
        self.weights.dim
    }
    /// Hidden width `h`.
    pub fn hidden(&self) -> usize {
        self.weights.hidden
    }
    pub fn weights(&self) -> &AdapterWeights {
        &self.weights
    }
    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }
    /// Total number of learned parameters.
    pub fn parameter_count(&self) -> usize {
        self.weights.tensors().iter().map(|(_, shape, _)| element_count(*shape)).sum()
    }
}

pub(crate) fn shape_text(shape: [usize; 2]) -> String {
    if shape[1] == 0 {
        format!("[{}]", shape[0])
    } else {
        format!("[{}, {}]", shape[0], shape[1])
    }
}

fn check_finite(name: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::invalid_model(format!(
            "tensor '{name}' holds a non-finite value ({}) at flat index {i}",
            data[i]
        ))),
    }
}
