//! The adapter file loader against SPEC §2: round trips, and every rejection the spec lists,
//! on files written byte by byte (including ones the `safetensors` crate would never write).
//!
//! Every rejection must be `ErrorKind::InvalidModel` with a message that names the tensor or
//! metadata key at fault and, where there is one, the expected against the actual value.

use half::{bf16, f16};
use rrra::{Activation, Adapter, AdapterConfig, AdapterWeights, BaseTransform, ErrorKind, Similarity, WeightDtype};
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// A hand-written safetensors file: 8-byte little-endian header length, JSON header, data.
// ---------------------------------------------------------------------------------------------

/// `d` and `h` of the valid base file; chosen so no two tensors share a shape.
const D: usize = 5;
const H: usize = 3;

#[derive(Clone)]
struct RawTensor {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    /// Written as given; `None` places the tensor right after the previous one's data.
    offsets: Option<[u64; 2]>,
    /// Appended to the data section in tensor order.
    data: Vec<u8>,
}

/// A file under construction. Every field is free, so it can describe files no writer would make.
#[derive(Clone)]
struct RawFile {
    tensors: Vec<RawTensor>,
    /// Metadata entries as (key, raw JSON value); `None` leaves out `__metadata__` entirely.
    metadata: Option<Vec<(String, String)>>,
    /// Bytes after the last tensor's data.
    trailing: Vec<u8>,
}

impl RawFile {
    /// A valid F32 adapter file with d = 5, h = 3 and only the required metadata.
    fn valid() -> RawFile {
        let shapes: [(&str, &[u64]); 6] = [
            ("fc1.weight", &[H as u64, 3 * D as u64]),
            ("fc1.bias", &[H as u64]),
            ("fc2.weight", &[D as u64, H as u64]),
            ("fc2.bias", &[D as u64]),
            ("classifier.weight", &[4, H as u64]),
            ("classifier.bias", &[4]),
        ];
        let tensors = shapes
            .iter()
            .enumerate()
            .map(|(t, (name, shape))| {
                let n = shape.iter().product::<u64>() as usize;
                let values: Vec<f32> = (0..n).map(|i| test_value(t, i)).collect();
                RawTensor {
                    name: name.to_string(),
                    dtype: "F32".into(),
                    shape: shape.to_vec(),
                    offsets: None,
                    data: f32_bytes(&values),
                }
            })
            .collect();
        RawFile {
            tensors,
            metadata: Some(vec![
                ("format".into(), json_string("rrra-adapter")),
                ("format_version".into(), json_string("1")),
            ]),
            trailing: Vec::new(),
        }
    }

    fn tensor(mut self, name: &str, edit: impl FnOnce(&mut RawTensor)) -> RawFile {
        let t = self.tensors.iter_mut().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}"));
        edit(t);
        self
    }
    /// Replaces a tensor's dtype, shape and data at once.
    fn retype(self, name: &str, dtype: &str, shape: &[u64], data: Vec<u8>) -> RawFile {
        self.tensor(name, |t| {
            t.dtype = dtype.into();
            t.shape = shape.to_vec();
            t.data = data;
        })
    }
    fn without_tensor(mut self, name: &str) -> RawFile {
        self.tensors.retain(|t| t.name != name);
        self
    }
    fn with_tensor(mut self, name: &str, dtype: &str, shape: &[u64], data: Vec<u8>) -> RawFile {
        self.tensors.push(RawTensor {
            name: name.into(),
            dtype: dtype.into(),
            shape: shape.to_vec(),
            offsets: None,
            data,
        });
        self
    }
    /// Sets a metadata value to a JSON string.
    fn meta(self, key: &str, value: &str) -> RawFile {
        self.meta_json(key, &json_string(value))
    }
    /// Sets a metadata value to raw JSON text (a number, an escape sequence, ...).
    fn meta_json(mut self, key: &str, json: &str) -> RawFile {
        let map = self.metadata.get_or_insert_with(Vec::new);
        map.retain(|(k, _)| k != key);
        map.push((key.into(), json.into()));
        self
    }
    fn without_meta(mut self, key: &str) -> RawFile {
        if let Some(map) = &mut self.metadata {
            map.retain(|(k, _)| k != key);
        }
        self
    }
    fn without_metadata(mut self) -> RawFile {
        self.metadata = None;
        self
    }

    fn header(&self) -> String {
        let mut entries = Vec::new();
        if let Some(map) = &self.metadata {
            let body: Vec<String> = map.iter().map(|(k, v)| format!("{}:{v}", json_string(k))).collect();
            entries.push(format!("\"__metadata__\":{{{}}}", body.join(",")));
        }
        let mut at = 0u64;
        for t in &self.tensors {
            let [start, end] = t.offsets.unwrap_or([at, at + t.data.len() as u64]);
            at += t.data.len() as u64;
            let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
            entries.push(format!(
                "{}:{{\"dtype\":{},\"shape\":[{}],\"data_offsets\":[{start},{end}]}}",
                json_string(&t.name),
                json_string(&t.dtype),
                shape.join(",")
            ));
        }
        format!("{{{}}}", entries.join(","))
    }

    fn data(&self) -> Vec<u8> {
        let mut data: Vec<u8> = self.tensors.iter().flat_map(|t| t.data.iter().copied()).collect();
        data.extend_from_slice(&self.trailing);
        data
    }

    fn bytes(&self) -> Vec<u8> {
        let header = self.header();
        assemble(header.len() as u64, header.as_bytes(), &self.data())
    }
}

/// Length prefix (as given, not necessarily the true length), header bytes, data.
fn assemble(header_len: u64, header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = header_len.to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
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

/// A deterministic, finite, non-trivial weight: not exactly representable in f16 or bf16.
fn test_value(tensor: usize, i: usize) -> f32 {
    ((tensor * 131 + i * 37) % 29) as f32 / 29.0 - 0.45 + 0.001 * tensor as f32
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn zeros(n: usize) -> Vec<u8> {
    vec![0; n]
}

/// Asserts the bytes are rejected as an invalid model and the message contains every fragment.
#[track_caller]
fn expect_invalid(bytes: &[u8], fragments: &[&str]) -> String {
    match Adapter::from_bytes(bytes) {
        Ok(_) => panic!("accepted a file that should be rejected (expected a message containing {fragments:?})"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidModel, "wrong kind for: {}", e.message());
            for f in fragments {
                assert!(e.message().contains(f), "message {:?} does not contain {f:?}", e.message());
            }
            e.message().to_string()
        }
    }
}

/// A temporary path removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        TempPath(
            std::env::temp_dir().join(format!("rrra-model-file-{}-{nanos}-{n}-{tag}.safetensors", std::process::id())),
        )
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn sample_weights() -> AdapterWeights {
    let v = |t: usize, n: usize| (0..n).map(|i| test_value(t, i)).collect::<Vec<f32>>();
    AdapterWeights {
        dim: D,
        hidden: H,
        fc1_weight: v(0, H * 3 * D),
        fc1_bias: v(1, H),
        fc2_weight: v(2, D * H),
        fc2_bias: v(3, D),
        classifier_weight: v(4, 4 * H),
        classifier_bias: v(5, 4),
    }
}

fn sample_config() -> AdapterConfig {
    AdapterConfig {
        activation: Activation::GeluTanh,
        similarity: Similarity::Cosine,
        adapter_mu: -0.3,
        adapter_tau: 0.07,
        base_transform: BaseTransform::Softmax,
        base_mu: 1.5e-3,
        base_tau: 0.05,
        lambda_rr: 0.0,
        gamma_rs: 2.5,
        encoder: "BAAI/bge-small-en-v1.5 \"quoted\" ü\n".into(),
        extra: vec![("x-note".into(), "trained 2024".into()), ("x-seed".into(), "7".into())],
    }
}

fn all_weights(w: &AdapterWeights) -> [&[f32]; 6] {
    [&w.fc1_weight, &w.fc1_bias, &w.fc2_weight, &w.fc2_bias, &w.classifier_weight, &w.classifier_bias]
}

fn bits(w: &AdapterWeights) -> Vec<Vec<u32>> {
    all_weights(w).iter().map(|t| t.iter().map(|x| x.to_bits()).collect()).collect()
}

// ---------------------------------------------------------------------------------------------
// Round trips and defaults
// ---------------------------------------------------------------------------------------------

#[test]
fn the_hand_written_base_file_is_valid() {
    let adapter = Adapter::from_bytes(&RawFile::valid().bytes()).expect("base file loads");
    assert_eq!((adapter.dim(), adapter.hidden()), (D, H));
    assert_eq!(adapter.weights(), &sample_weights());
    assert_eq!(adapter.parameter_count(), H * 3 * D + H + D * H + D + 4 * H + 4);
}

#[test]
fn round_trip_f32_is_bit_exact() {
    let mut weights = sample_weights();
    // Values that only survive an exact encoding.
    weights.fc1_weight[..6].copy_from_slice(&[-0.0, f32::MIN_POSITIVE, 1e-45, f32::MAX, -f32::MAX, 0.1]);
    let adapter = Adapter::new(weights, sample_config()).unwrap();
    let loaded = Adapter::from_bytes(&adapter.to_bytes(WeightDtype::F32).unwrap()).unwrap();
    assert_eq!(loaded.config(), adapter.config());
    assert_eq!(bits(loaded.weights()), bits(adapter.weights()));
    assert_eq!((loaded.dim(), loaded.hidden()), (D, H));
}

#[test]
fn round_trip_f16_and_bf16_give_the_rounded_values() {
    let adapter = Adapter::new(sample_weights(), sample_config()).unwrap();
    let round_f16 = |x: f32| f16::from_f32(x).to_f32();
    let round_bf16 = |x: f32| bf16::from_f32(x).to_f32();
    for (dtype, round) in [(WeightDtype::F16, &round_f16 as &dyn Fn(f32) -> f32), (WeightDtype::BF16, &round_bf16)] {
        let loaded = Adapter::from_bytes(&adapter.to_bytes(dtype).unwrap()).unwrap();
        assert_eq!(loaded.config(), adapter.config(), "{dtype:?}");
        let mut changed = 0;
        for (got, orig) in all_weights(loaded.weights()).iter().zip(all_weights(adapter.weights())) {
            let want: Vec<u32> = orig.iter().map(|&x| round(x).to_bits()).collect();
            assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want, "{dtype:?}");
            changed += got.iter().zip(orig).filter(|(a, b)| a != b).count();
        }
        assert!(changed > 0, "{dtype:?}: the test values should not all be exactly representable");
    }
}

#[test]
fn tensors_of_mixed_dtypes_load() {
    let fc1: Vec<u8> = (0..H).flat_map(|i| f16::from_f32(test_value(1, i)).to_le_bytes()).collect();
    let cls: Vec<u8> = (0..4).flat_map(|i| bf16::from_f32(test_value(5, i)).to_le_bytes()).collect();
    let file =
        RawFile::valid().retype("fc1.bias", "F16", &[H as u64], fc1).retype("classifier.bias", "BF16", &[4], cls);
    let adapter = Adapter::from_bytes(&file.bytes()).unwrap();
    assert_eq!(adapter.weights().fc1_bias[1], f16::from_f32(test_value(1, 1)).to_f32());
    assert_eq!(adapter.weights().classifier_bias[2], bf16::from_f32(test_value(5, 2)).to_f32());
}

#[test]
fn save_and_from_file_round_trip() {
    let adapter = Adapter::new(sample_weights(), sample_config()).unwrap();
    let path = TempPath::new("save");
    adapter.save(&path.0).unwrap();
    let loaded = Adapter::from_file(&path.0).unwrap();
    assert_eq!(loaded, adapter);
    assert_eq!(bits(loaded.weights()), bits(adapter.weights()));
}

#[test]
fn absent_optional_metadata_takes_the_defaults() {
    let adapter = Adapter::from_bytes(&RawFile::valid().bytes()).unwrap();
    assert_eq!(adapter.config(), &AdapterConfig::default());
    let c = AdapterConfig::default();
    assert_eq!(
        (c.activation, c.similarity, c.base_transform),
        (Activation::Relu, Similarity::Dot, BaseTransform::Sigmoid)
    );
    assert_eq!(
        [c.adapter_mu, c.adapter_tau, c.base_mu, c.base_tau, c.lambda_rr, c.gamma_rs],
        [0.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    );
    assert_eq!((c.encoder.as_str(), c.extra.len()), ("", 0));
}

#[test]
fn every_metadata_value_parses() {
    let file = RawFile::valid()
        .meta("similarity", "cosine")
        .meta("adapter_mu", "-2.5")
        .meta("adapter_tau", "0.25")
        .meta("base_mu", "1e-3")
        .meta("base_tau", "3")
        .meta("lambda_rr", "0")
        .meta("gamma_rs", "0.5")
        .meta("encoder", "e5-base");
    for (name, activation) in [
        ("relu", Activation::Relu),
        ("gelu", Activation::Gelu),
        ("gelu_tanh", Activation::GeluTanh),
        ("silu", Activation::Silu),
        ("tanh", Activation::Tanh),
    ] {
        let c = Adapter::from_bytes(&file.clone().meta("activation", name).bytes()).unwrap().config().clone();
        assert_eq!(c.activation, activation);
        assert_eq!(c.similarity, Similarity::Cosine);
        assert_eq!(
            [c.adapter_mu, c.adapter_tau, c.base_mu, c.base_tau, c.lambda_rr, c.gamma_rs],
            [-2.5, 0.25, 1e-3, 3.0, 0.0, 0.5]
        );
        assert_eq!(c.encoder, "e5-base");
    }
    for (name, transform) in [
        ("identity", BaseTransform::Identity),
        ("sigmoid", BaseTransform::Sigmoid),
        ("softmax", BaseTransform::Softmax),
    ] {
        let c = Adapter::from_bytes(&file.clone().meta("base_transform", name).bytes()).unwrap().config().clone();
        assert_eq!(c.base_transform, transform);
    }
}

#[test]
fn x_prefixed_keys_are_kept_and_written_back() {
    let file = RawFile::valid().meta("x-trainer", "rrra-train 0.3").meta("x-a", "");
    let adapter = Adapter::from_bytes(&file.bytes()).unwrap();
    let want = vec![("x-a".to_string(), String::new()), ("x-trainer".to_string(), "rrra-train 0.3".to_string())];
    assert_eq!(adapter.config().extra, want);
    let again = Adapter::from_bytes(&adapter.to_bytes(WeightDtype::F32).unwrap()).unwrap();
    assert_eq!(again.config().extra, want);
}

// ---------------------------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------------------------

const TENSORS: [&str; 6] = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "classifier.weight", "classifier.bias"];

#[test]
fn each_missing_tensor_is_named() {
    for name in TENSORS {
        expect_invalid(&RawFile::valid().without_tensor(name).bytes(), &[&format!("missing tensor '{name}'")]);
    }
}

#[test]
fn misspelled_and_extra_tensors_are_named() {
    // A misspelling names the missing tensor and the name found in its place.
    let misspelled = RawFile::valid().tensor("fc1.weight", |t| t.name = "fc1.weights".into());
    expect_invalid(&misspelled.bytes(), &["missing tensor 'fc1.weight'", "'fc1.weights' instead"]);
    let renamed = RawFile::valid().tensor("classifier.bias", |t| t.name = "head.bias".into());
    expect_invalid(&renamed.bytes(), &["missing tensor 'classifier.bias'", "'head.bias' instead"]);
    let extra = RawFile::valid().with_tensor("fc3.weight", "F32", &[2], zeros(8));
    expect_invalid(&extra.bytes(), &["unexpected tensor 'fc3.weight'"]);
}

#[test]
fn wrong_rank_is_named_with_expected_and_actual_shape() {
    let (d, h) = (D as u64, H as u64);
    let cases: [(&str, &[u64], &str, &str); 6] = [
        ("fc2.weight", &[d * h], "[d, h]", "[15]"),
        ("fc2.weight", &[d, h, 1], "[d, h]", "[5, 3, 1]"),
        ("fc1.weight", &[h, 3, d], "[3, 15]", "[3, 3, 5]"),
        ("fc1.bias", &[h, 1], "[3]", "[3, 1]"),
        ("fc2.bias", &[1, d], "[5]", "[1, 5]"),
        ("classifier.bias", &[2, 2], "[4]", "[2, 2]"),
    ];
    for (name, shape, expected, actual) in cases {
        let file = RawFile::valid().tensor(name, |t| t.shape = shape.to_vec());
        expect_invalid(&file.bytes(), &[&format!("tensor '{name}'"), expected, actual]);
    }
    // A scalar (rank 0) holding one value.
    let scalar = RawFile::valid().retype("classifier.bias", "F32", &[], zeros(4));
    expect_invalid(&scalar.bytes(), &["tensor 'classifier.bias'", "[4]", "got []"]);
}

#[test]
fn shapes_disagreeing_with_fc2_weight_are_named() {
    let (d, h) = (D as u64, H as u64);
    let cases: [(&str, &[u64], &str); 8] = [
        ("fc1.weight", &[h, 3 * d - 1], "[3, 15]"),
        ("fc1.weight", &[h + 1, 3 * d], "[3, 15]"),
        ("fc1.weight", &[3 * d, h], "[3, 15]"),
        ("fc1.bias", &[h + 1], "[3]"),
        ("fc2.bias", &[d - 1], "[5]"),
        ("classifier.weight", &[4, h + 1], "[4, 3]"),
        ("classifier.weight", &[h, 4], "[4, 3]"),
        ("classifier.bias", &[3], "[4]"),
    ];
    for (name, shape, expected) in cases {
        let n = shape.iter().product::<u64>() as usize;
        let file = RawFile::valid().retype(name, "F32", shape, zeros(4 * n));
        let actual = format!("{shape:?}");
        expect_invalid(&file.bytes(), &[&format!("tensor '{name}'"), &format!("expected shape {expected}"), &actual]);
    }
    // fc2.weight is the reference: changing it blames the first tensor that then disagrees.
    let file = RawFile::valid().retype("fc2.weight", "F32", &[4, 3], zeros(48));
    expect_invalid(&file.bytes(), &["tensor 'fc1.weight'", "expected shape [3, 12]", "d = 4, h = 3", "[3, 15]"]);
}

#[test]
fn zero_d_or_h_is_rejected() {
    for shape in [[0, H as u64], [D as u64, 0], [0, 0]] {
        let file = RawFile::valid().retype("fc2.weight", "F32", &shape, Vec::new());
        expect_invalid(&file.bytes(), &["tensor 'fc2.weight'", &format!("[{}, {}]", shape[0], shape[1]), "at least 1"]);
    }
}

#[test]
fn unsupported_dtypes_are_named() {
    for (dtype, size) in [("F64", 8), ("I32", 4), ("U8", 1), ("I64", 8), ("BOOL", 1), ("F8_E4M3", 1)] {
        let file = RawFile::valid().retype("fc1.bias", dtype, &[H as u64], zeros(size * H));
        expect_invalid(
            &file.bytes(),
            &["tensor 'fc1.bias'", &format!("unsupported dtype {dtype}"), "F32, F16 or BF16"],
        );
    }
    // A dtype string safetensors does not know at all fails in the header.
    for dtype in ["Q4", "f32", ""] {
        let file = RawFile::valid().tensor("fc1.bias", |t| t.dtype = dtype.into());
        expect_invalid(&file.bytes(), &["malformed safetensors file", "header"]);
    }
}

#[test]
fn non_finite_weights_are_named_with_their_index() {
    // The tensor in the given dtype, all 0.5 except the raw bit pattern `bits` at flat index `at`.
    let poisoned = |name: &str, dtype: &str, at: usize, bits: u32| {
        RawFile::valid().tensor(name, |t| {
            let n = t.shape.iter().product::<u64>() as usize;
            let (half, size) = match dtype {
                "F32" => (0.5f32.to_bits(), 4),
                "F16" => (u32::from(f16::from_f32(0.5).to_bits()), 2),
                _ => (u32::from(bf16::from_f32(0.5).to_bits()), 2),
            };
            t.dtype = dtype.into();
            t.data = (0..n).flat_map(|i| (if i == at { bits } else { half }).to_le_bytes()[..size].to_vec()).collect();
        })
    };
    let cases = [
        ("fc2.bias", "F32", 2, f32::NAN.to_bits(), "(NaN) at flat index 2"),
        ("classifier.weight", "F32", 11, f32::INFINITY.to_bits(), "(inf) at flat index 11"),
        ("fc1.bias", "F32", 0, f32::NEG_INFINITY.to_bits(), "(-inf) at flat index 0"),
        ("fc1.weight", "F16", 7, u32::from(f16::INFINITY.to_bits()), "(inf) at flat index 7"),
        ("fc2.weight", "F16", 14, u32::from(f16::NAN.to_bits()), "(NaN) at flat index 14"),
        ("classifier.bias", "BF16", 3, u32::from(bf16::NEG_INFINITY.to_bits()), "(-inf) at flat index 3"),
        ("fc2.bias", "BF16", 0, u32::from(bf16::NAN.to_bits()), "(NaN) at flat index 0"),
    ];
    for (name, dtype, at, bits, shown) in cases {
        let file = poisoned(name, dtype, at, bits);
        expect_invalid(&file.bytes(), &[&format!("tensor '{name}'"), "non-finite", shown]);
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn required_metadata_is_checked() {
    expect_invalid(&RawFile::valid().without_metadata().bytes(), &["missing '__metadata__'"]);
    let cases: [(RawFile, &[&str]); 8] = [
        (RawFile::valid().without_meta("format"), &["metadata 'format' is missing"]),
        (RawFile::valid().meta("format", "rrra"), &["metadata 'format'", "expected 'rrra-adapter'", "got 'rrra'"]),
        (RawFile::valid().meta("format", "RRRA-ADAPTER"), &["metadata 'format'", "got 'RRRA-ADAPTER'"]),
        (RawFile::valid().without_meta("format_version"), &["metadata 'format_version' is missing"]),
        (RawFile::valid().meta("format_version", "2"), &["metadata 'format_version'", "expected '1'", "got '2'"]),
        (RawFile::valid().meta("format_version", "1.0"), &["metadata 'format_version'", "got '1.0'"]),
        (RawFile::valid().meta("format_version", ""), &["metadata 'format_version'", "got ''"]),
        (RawFile::valid().without_meta("format").without_meta("format_version"), &["metadata 'format' is missing"]),
    ];
    for (file, fragments) in cases {
        expect_invalid(&file.bytes(), fragments);
    }
}

#[test]
fn metadata_values_must_be_json_strings() {
    // `"format_version": 1` is a number, not the string "1".
    let msg =
        expect_invalid(&RawFile::valid().meta_json("format_version", "1").bytes(), &["malformed safetensors file"]);
    assert!(msg.contains("string"), "{msg}");
    expect_invalid(&RawFile::valid().meta_json("adapter_tau", "0.5").bytes(), &["malformed safetensors file"]);
    expect_invalid(&RawFile::valid().meta_json("x-list", "[1, 2]").bytes(), &["malformed safetensors file"]);
}

#[test]
fn unknown_enum_values_are_named() {
    let cases = [
        ("activation", "swish", "relu, gelu, gelu_tanh, silu, tanh"),
        ("activation", "ReLU", "relu"),
        ("similarity", "l2", "dot, cosine"),
        ("base_transform", "exp", "identity, sigmoid, softmax"),
        ("base_transform", "", "identity"),
    ];
    for (key, value, listed) in cases {
        expect_invalid(
            &RawFile::valid().meta(key, value).bytes(),
            &[&format!("metadata '{key}'"), &format!("unknown value '{value}'"), listed],
        );
    }
}

#[test]
fn bad_float_values_are_named() {
    let keys = ["adapter_mu", "adapter_tau", "base_mu", "base_tau", "lambda_rr", "gamma_rs"];
    for key in keys {
        for value in ["abc", "", "NaN", "nan", "inf", "-inf", "infinity", "1e999", "1,5", "0x10"] {
            expect_invalid(
                &RawFile::valid().meta(key, value).bytes(),
                &[&format!("metadata '{key}'"), "finite number", &format!("got '{value}'")],
            );
        }
    }
}

#[test]
fn out_of_range_floats_are_named() {
    let cases = [
        ("adapter_tau", "0", "> 0", "got 0"),
        ("adapter_tau", "-0", "> 0", "got -0"),
        ("adapter_tau", "-1.5", "> 0", "got -1.5"),
        ("base_tau", "0", "> 0", "got 0"),
        ("base_tau", "-1e-300", "> 0", "got -1e-300"),
        ("lambda_rr", "-0.5", "≥ 0", "got -0.5"),
        ("gamma_rs", "-1", "≥ 0", "got -1"),
    ];
    for (key, value, want, got) in cases {
        expect_invalid(&RawFile::valid().meta(key, value).bytes(), &[&format!("metadata '{key}'"), want, got]);
    }
    // Boundaries that are allowed: exponents of exactly 0, tiny positive temperatures, any mean.
    let ok = RawFile::valid()
        .meta("lambda_rr", "0")
        .meta("gamma_rs", "-0")
        .meta("adapter_tau", "1e-300")
        .meta("base_mu", "-1e300");
    let c = Adapter::from_bytes(&ok.bytes()).unwrap().config().clone();
    assert_eq!((c.lambda_rr, c.adapter_tau, c.base_mu), (0.0, 1e-300, -1e300));
}

#[test]
fn unknown_metadata_keys_are_named() {
    for key in ["lamda_rr", "Format", "tau", "x_note", "X-note"] {
        expect_invalid(&RawFile::valid().meta(key, "1").bytes(), &[&format!("unknown metadata key '{key}'"), "x-"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Truncated and malformed files
// ---------------------------------------------------------------------------------------------

#[test]
fn files_shorter_than_the_length_prefix() {
    expect_invalid(&[], &["truncated file", "0 bytes"]);
    expect_invalid(&[1, 0, 0, 0, 0, 0, 0], &["truncated file", "7 bytes"]);
    expect_invalid(&RawFile::valid().bytes()[..3], &["truncated file", "3 bytes"]);
}

#[test]
fn header_length_beyond_the_file() {
    let file = RawFile::valid();
    let header = file.header();
    let data = file.data();
    let available = (header.len() + data.len()) as u64;
    for claimed in [available + 1, 1 << 32, 1 << 63, u64::MAX] {
        expect_invalid(
            &assemble(claimed, header.as_bytes(), &data),
            &[&format!("header claims {claimed} bytes"), &format!("holds only {available}")],
        );
    }
    // Just the prefix: zero bytes available.
    expect_invalid(&100u64.to_le_bytes(), &["header claims 100 bytes", "holds only 0"]);
}

#[test]
fn header_length_cap_is_16_mib() {
    const CAP: usize = 16 << 20;
    let file = RawFile::valid();
    let header = file.header();
    // A valid header padded with spaces to exactly the cap still loads...
    let mut padded = header.clone().into_bytes();
    padded.resize(CAP, b' ');
    assert!(Adapter::from_bytes(&assemble(CAP as u64, &padded, &file.data())).is_ok());
    // ...one byte more does not, even though the file holds it.
    padded.push(b' ');
    expect_invalid(
        &assemble(CAP as u64 + 1, &padded, &file.data()),
        &[&format!("header of {} bytes", CAP + 1), &format!("limit of {CAP}")],
    );
}

#[test]
fn malformed_headers() {
    let data = RawFile::valid().data();
    let cases: [(&[u8], &str); 8] = [
        (b"", "not a valid safetensors JSON header"),
        (b"{not json", "not a valid safetensors JSON header"),
        (b"[]", "not a valid safetensors JSON header"),
        (b"null", "not a valid safetensors JSON header"),
        (b"{\"fc1.bias\": 3}", "not a valid safetensors JSON header"),
        (b"{\"fc1.bias\": {\"dtype\": \"F32\", \"shape\": [-3], \"data_offsets\": [0, 12]}}", "JSON header"),
        (b"{\"fc1.bias\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0]}}", "JSON header"),
        (b"{\"fc1.bias\": {\"dtype\": \"F32\", \"shape\": [1e30], \"data_offsets\": [0, 12]}}", "JSON header"),
    ];
    for (header, fragment) in cases {
        expect_invalid(&assemble(header.len() as u64, header, &data), &["malformed safetensors file", fragment]);
    }
}

#[test]
fn non_utf8_header_and_metadata() {
    // Raw bytes 0xff 0xfe inside a JSON string.
    let file = RawFile::valid().meta("encoder", "AB");
    let mut header = file.header().into_bytes();
    let at = header.windows(4).position(|w| w == b"\"AB\"").unwrap() + 1;
    header[at] = 0xff;
    header[at + 1] = 0xfe;
    expect_invalid(&assemble(header.len() as u64, &header, &file.data()), &["header is not valid UTF-8"]);
    // A lone surrogate escape cannot become a Rust string.
    let surrogate = RawFile::valid().meta_json("encoder", "\"\\udcff\"");
    expect_invalid(&surrogate.bytes(), &["malformed safetensors file", "JSON header"]);
    // A valid non-ASCII value is fine.
    let ok = RawFile::valid().meta("encoder", "Ünïcödé 模型");
    assert_eq!(Adapter::from_bytes(&ok.bytes()).unwrap().config().encoder, "Ünïcödé 模型");
}

#[test]
fn data_offsets_past_the_end() {
    // The last tensor's offsets agree with its shape but its bytes are not in the file.
    let end = RawFile::valid().data().len() as u64 - 16;
    let file = RawFile::valid().tensor("classifier.bias", |t| {
        t.data.clear();
        t.offsets = Some([end, end + 16]);
    });
    expect_invalid(&file.bytes(), &["truncated file or trailing bytes"]);
    // Offsets far past the end, or at the very top of the address range.
    for [start, stop] in [[1 << 40, (1 << 40) + 16], [u64::MAX - 15, u64::MAX], [end, u64::MAX]] {
        let far = file.clone().tensor("classifier.bias", |t| t.offsets = Some([start, stop]));
        expect_invalid(&far.bytes(), &["malformed safetensors file"]);
    }
    // A valid file cut short anywhere in its data.
    let bytes = RawFile::valid().bytes();
    for cut in [1, 4, 17, 100] {
        expect_invalid(&bytes[..bytes.len() - cut], &["malformed safetensors file"]);
    }
}

#[test]
fn offsets_that_do_not_tile_the_data() {
    let base = RawFile::valid();
    let first_len = base.tensors[0].data.len() as u64;
    let second_len = base.tensors[1].data.len() as u64;
    // Two tensors sharing one byte range (the second's bytes are not in the file).
    let overlap = base.clone().tensor("fc1.bias", |t| {
        t.offsets = Some([0, second_len]);
        t.data.clear();
    });
    let msg = expect_invalid(&overlap.bytes(), &["data offsets are invalid"]);
    assert!(msg.contains("'fc1.weight'") || msg.contains("'fc1.bias'"), "{msg}");
    // classifier.bias pointing at the last 16 bytes of fc1.weight (a size that fits its shape).
    let inside = base.clone().tensor("classifier.bias", |t| {
        t.offsets = Some([first_len - 16, first_len]);
        t.data.clear();
    });
    expect_invalid(&inside.bytes(), &["data offsets are invalid"]);
    // A 4-byte gap after the first tensor.
    let gap = base.clone().tensor("fc1.weight", |t| {
        t.offsets = Some([0, first_len]);
        t.data.extend_from_slice(&[0; 4]);
    });
    expect_invalid(&gap.bytes(), &["data offsets are invalid"]);
    // A gap before the first tensor.
    let mut leading = base.clone();
    let mut at = 4;
    for t in &mut leading.tensors {
        t.offsets = Some([at, at + t.data.len() as u64]);
        at += t.data.len() as u64;
    }
    leading.tensors[0].data.splice(0..0, [0u8; 4]);
    expect_invalid(&leading.bytes(), &["data offsets are invalid"]);
    // end < start.
    let backwards = base.clone().tensor("fc1.bias", |t| t.offsets = Some([first_len + second_len, first_len]));
    expect_invalid(&backwards.bytes(), &["tensor 'fc1.bias'", "data offsets are invalid"]);
    // Trailing bytes after the last tensor.
    let mut trailing = base.clone();
    trailing.trailing = vec![0; 4];
    expect_invalid(&trailing.bytes(), &["trailing bytes"]);
    // A length that disagrees with shape and dtype.
    let short = base.tensor("fc2.bias", |t| t.data.truncate(16));
    expect_invalid(&short.bytes(), &["do not match its shape and dtype"]);
}

#[test]
fn huge_shapes_are_rejected_without_allocating() {
    let start = std::time::Instant::now();
    let shapes: [&[u64]; 6] = [
        &[1 << 40, 1 << 40],
        &[1 << 40, 1 << 20],
        &[1 << 31, 1 << 31],
        &[u64::MAX, 2],
        &[u64::MAX],
        &[1 << 20, 1 << 20],
    ];
    for shape in shapes {
        for name in ["fc2.weight", "fc1.weight", "classifier.bias"] {
            let file = RawFile::valid().tensor(name, |t| t.shape = shape.to_vec());
            expect_invalid(&file.bytes(), &["malformed safetensors file"]);
        }
    }
    assert!(start.elapsed().as_secs() < 2, "hostile shapes took {:?}", start.elapsed());
}

#[test]
fn from_file_errors_name_the_path() {
    let missing = TempPath::new("missing");
    let e = Adapter::from_file(&missing.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{}", e.message());
    assert!(e.message().contains(&missing.0.display().to_string()), "{}", e.message());

    let path = TempPath::new("bad");
    let shown = path.0.display().to_string();
    let cases: [(Vec<u8>, &str); 4] = [
        (vec![1, 2, 3, 4, 5, 6, 7], "truncated file"),
        (assemble(1 << 62, b"{}", &[]), "header claims 4611686018427387904 bytes"),
        (RawFile::valid().meta("adapter_tau", "0").bytes(), "metadata 'adapter_tau'"),
        (RawFile::valid().without_tensor("fc2.bias").bytes(), "missing tensor 'fc2.bias'"),
    ];
    for (bytes, fragment) in cases {
        std::fs::write(&path.0, &bytes).unwrap();
        let e = Adapter::from_file(&path.0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{}", e.message());
        assert!(e.message().contains(&shown) && e.message().contains(fragment), "{}", e.message());
    }
    // A directory is not a file.
    let e = Adapter::from_file(std::env::temp_dir()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{}", e.message());
}

// ---------------------------------------------------------------------------------------------
// Fuzz: mutated valid files never panic, and anything accepted is a valid adapter.
// ---------------------------------------------------------------------------------------------

/// SplitMix64, written out so the test needs no `rand`.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Loads `bytes`; panics (with the case described) if the loader panicked, returned the wrong
/// error kind, or accepted something that is not a valid adapter. Returns whether it loaded.
fn check_no_panic(bytes: &[u8], what: &dyn Fn() -> String) -> bool {
    let result = std::panic::catch_unwind(|| Adapter::from_bytes(bytes))
        .unwrap_or_else(|_| panic!("from_bytes panicked on {}", what()));
    match result {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidModel, "{}: {}", what(), e.message());
            assert!(!e.message().is_empty(), "{}", what());
            false
        }
        Ok(a) => {
            let rebuilt = Adapter::new(a.weights().clone(), a.config().clone())
                .unwrap_or_else(|e| panic!("accepted an invalid adapter from {}: {}", what(), e.message()));
            assert_eq!(rebuilt, a, "{}", what());
            let again = Adapter::from_bytes(&a.to_bytes(WeightDtype::F32).unwrap()).unwrap();
            assert_eq!(again, a, "{}", what());
            true
        }
    }
}

#[test]
fn fuzzed_files_never_panic() {
    let base = RawFile::valid().meta("activation", "gelu").meta("base_tau", "0.5").meta("x-k", "v").bytes();
    let header_end = 8 + u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
    let mut rng = Prng(0x5EED_1234);
    let mut loaded = 0;

    // Every truncation.
    for len in 0..base.len() {
        loaded += check_no_panic(&base[..len], &|| format!("truncation to {len} bytes")) as usize;
    }
    // Single-byte mutations, biased towards the header where the structure is.
    const INTERESTING: &[u8] = b"0123456789{}[]\",:-. eE\\\x00\xff";
    for i in 0..10_000 {
        let mut bytes = base.clone();
        let at = if i % 4 == 0 { rng.below(bytes.len()) } else { rng.below(header_end) };
        let value = if i % 2 == 0 { rng.next() as u8 } else { INTERESTING[rng.below(INTERESTING.len())] };
        bytes[at] = value;
        loaded += check_no_panic(&bytes, &|| format!("byte {at} set to {value:#04x}")) as usize;
    }
    // A few multi-byte mutations combined with a truncation or an extension.
    for _ in 0..2000 {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
        }
        match rng.below(3) {
            0 => bytes.truncate(rng.below(bytes.len() + 1)),
            1 => bytes.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
            _ => {}
        }
        let copy = bytes.clone();
        loaded += check_no_panic(&bytes, &|| format!("mutated file {copy:?}")) as usize;
    }
    // Mutations that land in the weights usually still load, so the accept path is exercised.
    assert!(loaded > 0, "no mutated file loaded; the fuzz never reaches the accept path");
}

#[test]
fn saving_refuses_weights_that_overflow_16_bit_floats() {
    let adapter = Adapter::from_bytes(&RawFile::valid().bytes()).unwrap();
    let mut weights = adapter.weights().clone();
    weights.fc2_weight[4] = 70000.0; // above f16's largest finite value, 65504
    let big = Adapter::new(weights.clone(), adapter.config().clone()).unwrap();
    let err = big.to_bytes(WeightDtype::F16).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidModel);
    assert!(err.message().contains("tensor 'fc2.weight'") && err.message().contains("flat index 4"), "{err}");
    assert!(big.to_bytes(WeightDtype::BF16).is_ok(), "70000 fits in bf16");
    weights.fc2_weight[4] = f32::MAX; // rounds up to bf16 infinity
    let huge = Adapter::new(weights, adapter.config().clone()).unwrap();
    assert!(huge.to_bytes(WeightDtype::BF16).unwrap_err().message().contains("does not fit in BF16"));
}
