//! The score configuration an adapter file carries in its metadata (SPEC §2).

use crate::error::{Error, Result};
use std::collections::HashMap;

/// Hidden-layer activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    Relu,
    /// `x·Φ(x)`, the erf form.
    Gelu,
    /// The tanh approximation of GELU.
    GeluTanh,
    Silu,
    Tanh,
}

/// How `sim(q, ·)` is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Similarity {
    #[default]
    Dot,
    /// `q·a / (‖q‖‖a‖)`, 0 when either norm is below 1e-12.
    Cosine,
}

/// How a base score `b` becomes `s_B ∈ (0, 1]` (SPEC §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BaseTransform {
    /// `s_B = b`; every `b` must be > 0.
    Identity,
    /// `s_B = sigmoid((b − base_mu) / base_tau)`.
    #[default]
    Sigmoid,
    /// `s_B = softmax_i(b_i / base_tau)` over one query's candidates.
    Softmax,
}

macro_rules! named_enum {
    ($ty:ty, $key:literal, [$(($variant:path, $name:literal)),+]) => {
        impl $ty {
            /// The name used in adapter files.
            pub fn name(self) -> &'static str {
                match self { $($variant => $name,)+ }
            }
            /// Parses the name used in adapter files.
            pub fn from_name(text: &str) -> Result<Self> {
                match text {
                    $($name => Ok($variant),)+
                    other => Err(Error::invalid_argument(format!(
                        concat!($key, ": unknown value '{}' (expected one of: {})"),
                        other,
                        [$($name),+].join(", ")
                    ))),
                }
            }
        }
    };
}

named_enum!(
    Activation,
    "activation",
    [
        (Activation::Relu, "relu"),
        (Activation::Gelu, "gelu"),
        (Activation::GeluTanh, "gelu_tanh"),
        (Activation::Silu, "silu"),
        (Activation::Tanh, "tanh")
    ]
);
named_enum!(Similarity, "similarity", [(Similarity::Dot, "dot"), (Similarity::Cosine, "cosine")]);
named_enum!(
    BaseTransform,
    "base_transform",
    [(BaseTransform::Identity, "identity"), (BaseTransform::Sigmoid, "sigmoid"), (BaseTransform::Softmax, "softmax")]
);

/// Everything in an adapter file besides its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterConfig {
    pub activation: Activation,
    pub similarity: Similarity,
    pub adapter_mu: f64,
    pub adapter_tau: f64,
    pub base_transform: BaseTransform,
    pub base_mu: f64,
    pub base_tau: f64,
    pub lambda_rr: f64,
    pub gamma_rs: f64,
    /// Free text: the bi-encoder the adapter was trained on.
    pub encoder: String,
    /// Keys starting with `x-`: free-form notes a trainer may add; kept and written back as they are.
    pub extra: Vec<(String, String)>,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig {
            activation: Activation::Relu,
            similarity: Similarity::Dot,
            adapter_mu: 0.0,
            adapter_tau: 1.0,
            base_transform: BaseTransform::Sigmoid,
            base_mu: 0.0,
            base_tau: 1.0,
            lambda_rr: 1.0,
            gamma_rs: 1.0,
            encoder: String::new(),
            extra: Vec::new(),
        }
    }
}

pub(crate) const FORMAT: &str = "rrra-adapter";
pub(crate) const FORMAT_VERSION: &str = "1";
const KNOWN_KEYS: [&str; 13] = [
    "format",
    "format_version",
    "activation",
    "similarity",
    "adapter_mu",
    "adapter_tau",
    "base_transform",
    "base_mu",
    "base_tau",
    "lambda_rr",
    "gamma_rs",
    "encoder",
    "x-…",
];

/// Checks a scale parameter: finite and > 0.
pub(crate) fn check_tau(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!("{name} must be finite and > 0, got {value:?}")))
    }
}

/// Checks an exponent or offset parameter: finite, and ≥ 0 where `non_negative`.
pub(crate) fn check_real(name: &str, value: f64, non_negative: bool) -> Result<()> {
    if !value.is_finite() || (non_negative && value < 0.0) {
        let want = if non_negative { "finite and ≥ 0" } else { "finite" };
        return Err(Error::invalid_argument(format!("{name} must be {want}, got {value:?}")));
    }
    Ok(())
}

impl AdapterConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let as_model_error = |e: Error| Error::invalid_model(format!("metadata {}", e.message()));
        check_real("'adapter_mu'", self.adapter_mu, false).map_err(as_model_error)?;
        check_tau("'adapter_tau'", self.adapter_tau).map_err(as_model_error)?;
        check_real("'base_mu'", self.base_mu, false).map_err(as_model_error)?;
        check_tau("'base_tau'", self.base_tau).map_err(as_model_error)?;
        check_real("'lambda_rr'", self.lambda_rr, true).map_err(as_model_error)?;
        check_real("'gamma_rs'", self.gamma_rs, true).map_err(as_model_error)?;
        for (i, (key, _)) in self.extra.iter().enumerate() {
            if !key.starts_with("x-") {
                return Err(Error::invalid_model(format!("extra metadata key '{key}' must start with 'x-'")));
            }
            if self.extra[..i].iter().any(|(k, _)| k == key) {
                return Err(Error::invalid_model(format!("extra metadata key '{key}' appears twice")));
            }
        }
        Ok(())
    }

    /// Reads the `__metadata__` map of an adapter file.
    pub(crate) fn from_metadata(map: &HashMap<String, String>) -> Result<AdapterConfig> {
        let require = |key: &str, want: &str| {
            match map.get(key) {
            Some(v) if v == want => Ok(()),
            Some(v) => Err(Error::invalid_model(format!("metadata '{key}': expected '{want}', got '{v}'"))),
            None => Err(Error::invalid_model(format!(
                "metadata '{key}' is missing (an adapter file declares format = '{FORMAT}', format_version = '{FORMAT_VERSION}')"
            ))),
        }
        };
        require("format", FORMAT)?;
        require("format_version", FORMAT_VERSION)?;

        let real = |key: &str, default: f64| -> Result<f64> {
            match map.get(key) {
                None => Ok(default),
                Some(text) => match text.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(Error::invalid_model(format!("metadata '{key}': expected a finite number, got '{text}'"))),
                },
            }
        };
        let in_metadata = |e: Error| Error::invalid_model(format!("metadata '{}", e.message().replacen(':', "':", 1)));
        let mut config = AdapterConfig {
            activation: map
                .get("activation")
                .map_or(Ok(Activation::Relu), |v| Activation::from_name(v))
                .map_err(in_metadata)?,
            similarity: map
                .get("similarity")
                .map_or(Ok(Similarity::Dot), |v| Similarity::from_name(v))
                .map_err(in_metadata)?,
            adapter_mu: real("adapter_mu", 0.0)?,
            adapter_tau: real("adapter_tau", 1.0)?,
            base_transform: map
                .get("base_transform")
                .map_or(Ok(BaseTransform::Sigmoid), |v| BaseTransform::from_name(v))
                .map_err(in_metadata)?,
            base_mu: real("base_mu", 0.0)?,
            base_tau: real("base_tau", 1.0)?,
            lambda_rr: real("lambda_rr", 1.0)?,
            gamma_rs: real("gamma_rs", 1.0)?,
            encoder: map.get("encoder").cloned().unwrap_or_default(),
            extra: Vec::new(),
        };
        let mut unknown: Vec<&String> = Vec::new();
        for (key, value) in map {
            if key.starts_with("x-") {
                config.extra.push((key.clone(), value.clone()));
            } else if !KNOWN_KEYS.contains(&key.as_str()) {
                unknown.push(key);
            }
        }
        if let Some(key) = unknown.into_iter().min() {
            // A misspelled key would otherwise silently fall back to its default.
            return Err(Error::invalid_model(format!(
                "unknown metadata key '{key}' (known keys: {}; free-form notes go under keys starting with 'x-')",
                KNOWN_KEYS.join(", ")
            )));
        }
        config.extra.sort();
        config.validate()?;
        Ok(config)
    }

    /// Writes the `__metadata__` map; every key is spelled out, defaults included.
    pub(crate) fn to_metadata(&self) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("format_version", FORMAT_VERSION.to_string()),
            ("activation", self.activation.name().to_string()),
            ("similarity", self.similarity.name().to_string()),
            ("adapter_mu", format_real(self.adapter_mu)),
            ("adapter_tau", format_real(self.adapter_tau)),
            ("base_transform", self.base_transform.name().to_string()),
            ("base_mu", format_real(self.base_mu)),
            ("base_tau", format_real(self.base_tau)),
            ("lambda_rr", format_real(self.lambda_rr)),
            ("gamma_rs", format_real(self.gamma_rs)),
            ("encoder", self.encoder.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        map.extend(self.extra.iter().cloned());
        map
    }
}

/// Shortest text that parses back to the same f64.
fn format_real(value: f64) -> String {
    format!("{value:?}")
}
