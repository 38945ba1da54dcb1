//! The adapter file: safetensors bytes in, validated [`Adapter`] out, and back (SPEC §2).
//!
//! Hostile input is the normal case here: every length in the file is checked against the
//! bytes actually present before anything is allocated from it.

use super::{shape_text, Adapter, AdapterConfig, AdapterWeights};
use crate::error::{Error, Result};
use half::{bf16, f16};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};

/// An adapter's header is a few hundred bytes; anything near this is not an adapter file.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// The element type to store weights as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightDtype {
    F32,
    F16,
    BF16,
}

const TENSOR_NAMES: [&str; 6] =
    ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "classifier.weight", "classifier.bias"];

pub(super) fn parse(bytes: &[u8]) -> Result<Adapter> {
    check_header_length(bytes, bytes.len() as u64)?;
    let file = SafeTensors::deserialize(bytes).map_err(describe_format_error)?;

    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    let unexpected: Vec<&str> = names.iter().copied().filter(|n| !TENSOR_NAMES.contains(n)).collect();
    let found_instead = || match unexpected.as_slice() {
        [] => String::new(),
        names => {
            format!(" (the file has {} instead)", names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", "))
        }
    };
    if let Some(missing) = TENSOR_NAMES.iter().find(|n| !names.contains(n)) {
        return Err(Error::invalid_model(format!("missing tensor '{missing}'{}", found_instead())));
    }
    if let Some(extra) = unexpected.first() {
        return Err(Error::invalid_model(format!(
            "unexpected tensor '{extra}' (an adapter file holds exactly: {})",
            TENSOR_NAMES.join(", ")
        )));
    }
    let tensor = |name: &str| -> Result<TensorView<'_>> {
        file.tensor(name).map_err(|_| Error::invalid_model(format!("missing tensor '{name}'")))
    };

    // d and h come from fc2.weight; every other shape must agree with them.
    let fc2 = tensor("fc2.weight")?;
    let (dim, hidden) = match fc2.shape() {
        [d, h] => (*d, *h),
        other => {
            return Err(Error::invalid_model(format!(
                "tensor 'fc2.weight': expected 2 dimensions [d, h], got shape {other:?}"
            )))
        }
    };
    if dim == 0 || hidden == 0 {
        return Err(Error::invalid_model(format!(
            "tensor 'fc2.weight' has shape [{dim}, {hidden}]; d and h must be at least 1"
        )));
    }
    let mut weights = AdapterWeights {
        dim,
        hidden,
        fc1_weight: Vec::new(),
        fc1_bias: Vec::new(),
        fc2_weight: Vec::new(),
        fc2_bias: Vec::new(),
        classifier_weight: Vec::new(),
        classifier_bias: Vec::new(),
    };
    let expected: Vec<(&str, [usize; 2])> = weights.tensors().iter().map(|(n, s, _)| (*n, *s)).collect();
    let mut values: Vec<Vec<f32>> = Vec::with_capacity(6);
    for (name, shape) in expected {
        let view = tensor(name)?;
        let want: Vec<usize> = if shape[1] == 0 { vec![shape[0]] } else { shape.to_vec() };
        if view.shape() != want.as_slice() {
            return Err(Error::invalid_model(format!(
                "tensor '{name}': expected shape {} (d = {dim}, h = {hidden} from fc2.weight), got {:?}",
                shape_text(shape),
                view.shape()
            )));
        }
        values.push(decode(name, &view)?);
    }
    let mut values = values.into_iter();
    let mut next = || values.next().unwrap_or_default();
    weights.fc1_weight = next();
    weights.fc1_bias = next();
    weights.fc2_weight = next();
    weights.fc2_bias = next();
    weights.classifier_weight = next();
    weights.classifier_bias = next();

    let metadata = file_metadata(bytes)?;
    let config = AdapterConfig::from_metadata(&metadata)?;
    Adapter::new(weights, config)
}

/// Checks the 8-byte header-length prefix at the start of `start` against a file of
/// `file_len` bytes.
pub(super) fn check_header_length(start: &[u8], file_len: u64) -> Result<()> {
    let Some(prefix) = start.get(..8).filter(|_| file_len >= 8) else {
        return Err(Error::invalid_model(format!(
            "truncated file: {file_len} bytes, but a safetensors file starts with an 8-byte header length"
        )));
    };
    let header_len = u64::from_le_bytes(prefix.try_into().unwrap_or_default());
    let available = file_len - 8;
    if header_len > available {
        return Err(Error::invalid_model(format!(
            "header claims {header_len} bytes but the file holds only {available} after the length prefix"
        )));
    }
    if header_len > MAX_HEADER_BYTES {
        return Err(Error::invalid_model(format!(
            "header of {header_len} bytes exceeds the limit of {MAX_HEADER_BYTES} for an adapter file"
        )));
    }
    Ok(())
}

fn file_metadata(bytes: &[u8]) -> Result<std::collections::HashMap<String, String>> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(describe_format_error)?;
    metadata.metadata().clone().ok_or_else(|| {
        Error::invalid_model(
            "missing '__metadata__': an adapter file declares format = 'rrra-adapter' and format_version = '1'",
        )
    })
}

fn describe_format_error(e: SafeTensorError) -> Error {
    let detail = match e {
        SafeTensorError::InvalidHeader(_) => "header is not valid UTF-8".to_string(),
        SafeTensorError::InvalidHeaderDeserialization(e) | SafeTensorError::JsonError(e) => {
            format!("header is not a valid safetensors JSON header: {e}")
        }
        SafeTensorError::InvalidOffset(name) => format!(
            "tensor '{name}': data offsets are invalid (tensors must be stored back to back, in order, without overlap)"
        ),
        SafeTensorError::TensorInvalidInfo => "a tensor's data offsets do not match its shape and dtype".to_string(),
        SafeTensorError::MetadataIncompleteBuffer => {
            "tensor data does not end where the file ends (truncated file or trailing bytes)".to_string()
        }
        SafeTensorError::ValidationOverflow => "a tensor's declared shape overflows".to_string(),
        other => other.to_string(),
    };
    Error::invalid_model(format!("malformed safetensors file: {detail}"))
}

/// Rounds to a 16-bit float, refusing values that would become ±Inf (the loader would reject
/// the file this writes).
fn narrow<T: Copy>(
    name: &str,
    data: &[f32],
    dtype: &str,
    convert: fn(f32) -> T,
    is_finite: fn(T) -> bool,
    to_bytes: fn(T) -> [u8; 2],
) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(2 * data.len());
    for (i, &x) in data.iter().enumerate() {
        let v = convert(x);
        if !is_finite(v) {
            return Err(Error::invalid_model(format!(
                "tensor '{name}': value {x} at flat index {i} does not fit in {dtype}"
            )));
        }
        bytes.extend_from_slice(&to_bytes(v));
    }
    Ok(bytes)
}

fn decode(name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => {
            return Err(Error::invalid_model(format!(
                "tensor '{name}': unsupported dtype {other:?} (expected F32, F16 or BF16)"
            )))
        }
    };
    Ok(values)
}

pub(super) fn serialize(adapter: &Adapter, dtype: WeightDtype) -> Result<Vec<u8>> {
    let tensors = adapter.weights().tensors();
    let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(tensors.len());
    for (name, _, data) in &tensors {
        let bytes: Vec<u8> = match dtype {
            WeightDtype::F32 => data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            WeightDtype::F16 => narrow(name, data, "F16", f16::from_f32, f16::is_finite, f16::to_le_bytes)?,
            WeightDtype::BF16 => narrow(name, data, "BF16", bf16::from_f32, bf16::is_finite, bf16::to_le_bytes)?,
        };
        encoded.push(bytes);
    }
    // The header is written here rather than by `safetensors::serialize`, whose metadata is a
    // HashMap in random order: sorted keys and tensors make the same adapter the same bytes.
    let dtype_name = match dtype {
        WeightDtype::F32 => "F32",
        WeightDtype::F16 => "F16",
        WeightDtype::BF16 => "BF16",
    };
    let mut metadata: Vec<(String, String)> = adapter.config().to_metadata().into_iter().collect();
    metadata.sort();
    let entries: Vec<String> = metadata.iter().map(|(k, v)| format!("{}:{}", json_string(k), json_string(v))).collect();
    let mut header = format!("{{\"__metadata__\":{{{}}}", entries.join(","));
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].0);
    let mut offset = 0;
    for &i in &order {
        let (name, shape, _) = tensors[i];
        let shape = if shape[1] == 0 { format!("[{}]", shape[0]) } else { format!("[{},{}]", shape[0], shape[1]) };
        let end = offset + encoded[i].len();
        header.push_str(&format!(
            ",{}:{{\"dtype\":\"{dtype_name}\",\"shape\":{shape},\"data_offsets\":[{offset},{end}]}}",
            json_string(name)
        ));
        offset = end;
    }
    header.push('}');
    // Data starts 8-byte aligned, as the format recommends; the padding is spaces.
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &i in &order {
        out.extend_from_slice(&encoded[i]);
    }
    Ok(out)
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
