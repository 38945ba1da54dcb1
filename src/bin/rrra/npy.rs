//! A minimal `.npy` reader and writer: format versions 1.0–3.0, C order, little-endian
//! `<f2`/`<f4`/`<f8` and `<i4`/`<i8`/`<u4`/`<u8`. Everything else is refused with a message
//! that names the file and the problem.
//!
//! The header is untrusted: its shape is checked against the file's length before any
//! allocation is sized from it, and data is converted in fixed-size chunks so a large corpus
//! is not held twice in memory.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";
/// numpy itself refuses headers over 10 000 bytes by default; real headers are ~100 bytes.
const MAX_HEADER_BYTES: usize = 1 << 20;
/// Bytes converted per read; a multiple of every element size.
const CHUNK_BYTES: usize = 1 << 16;

/// A C-order array: `shape` and the values in row-major order.
#[derive(Debug, PartialEq)]
pub struct Array<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

/// Element types this module reads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dtype {
    F2,
    F4,
    F8,
    I4,
    I8,
    U4,
    U8,
}

impl Dtype {
    fn parse(descr: &str) -> Result<Dtype, String> {
        Ok(match descr {
            "<f2" => Dtype::F2,
            "<f4" => Dtype::F4,
            "<f8" => Dtype::F8,
            "<i4" => Dtype::I4,
            "<i8" => Dtype::I8,
            "<u4" => Dtype::U4,
            "<u8" => Dtype::U8,
            d if d.starts_with('>') => {
                return Err(format!("big-endian dtype '{d}' is not supported (expected little-endian, e.g. '<f4')"))
            }
            d => return Err(format!("unsupported dtype '{d}' (expected <f4, <f2, <f8, <i4, <i8, <u4 or <u8)")),
        })
    }
    fn size(self) -> usize {
        match self {
            Dtype::F2 => 2,
            Dtype::F4 | Dtype::I4 | Dtype::U4 => 4,
            Dtype::F8 | Dtype::I8 | Dtype::U8 => 8,
        }
    }
    fn is_float(self) -> bool {
        matches!(self, Dtype::F2 | Dtype::F4 | Dtype::F8)
    }
    fn f32(self, b: &[u8]) -> f32 {
        match self {
            Dtype::F2 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::F4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::F8 => f64::from_le_bytes(b[..8].try_into().unwrap_or_default()) as f32,
            _ => f32::NAN, // not reached: callers check is_float
        }
    }
    fn i128(self, b: &[u8]) -> i128 {
        let four = || [b[0], b[1], b[2], b[3]];
        let eight = || b[..8].try_into().unwrap_or_default();
        match self {
            Dtype::I4 => i32::from_le_bytes(four()).into(),
            Dtype::U4 => u32::from_le_bytes(four()).into(),
            Dtype::I8 => i64::from_le_bytes(eight()).into(),
            Dtype::U8 => u64::from_le_bytes(eight()).into(),
            _ => -1, // not reached: callers check !is_float
        }
    }
}

/// Reads a float array (`<f2`, `<f4` or `<f8`) as f32.
pub fn read_f32(path: &Path) -> Result<Array<f32>, String> {
    let (mut reader, dtype, shape, count) = open(path)?;
    if !dtype.is_float() {
        return Err(format!("{}: expected a float array (<f4, <f2 or <f8), got an integer array", path.display()));
    }
    let data = read_values(&mut reader, path, dtype, count, |b, _| Ok(dtype.f32(b)))?;
    Ok(Array { shape, data })
}

/// Reads a non-negative integer array (`<i4`, `<i8`, `<u4` or `<u8`) as u64.
pub fn read_u64(path: &Path) -> Result<Array<u64>, String> {
    let (mut reader, dtype, shape, count) = open(path)?;
    if dtype.is_float() {
        return Err(format!("{}: expected an integer array (<i8, <i4, <u8 or <u4), got a float array", path.display()));
    }
    let data = read_values(&mut reader, path, dtype, count, |b, i| {
        let v = dtype.i128(b);
        u64::try_from(v).map_err(|_| format!("{}: value at index {i} is negative ({v})", path.display()))
    })?;
    Ok(Array { shape, data })
}

/// Opens `path`, parses and checks its header against the file length.
/// Returns the reader positioned at the data, the dtype, the shape and the element count.
fn open(path: &Path) -> Result<(BufReader<File>, Dtype, Vec<usize>, usize), String> {
    let name = path.display();
    let file = File::open(path).map_err(|e| format!("cannot open '{name}': {e}"))?;
    let file_len = file.metadata().map_err(|e| format!("cannot read '{name}': {e}"))?.len();
    let mut reader = BufReader::new(file);
    let truncated = |what: &str| format!("{name}: truncated .npy file (ends inside the {what})");

    let mut prefix = [0u8; 8];
    reader.read_exact(&mut prefix).map_err(|_| truncated("magic string"))?;
    if &prefix[..6] != MAGIC {
        return Err(format!("{name}: not a .npy file (missing the \\x93NUMPY magic string)"));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let header_len = match major {
        1 => {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b).map_err(|_| truncated("header length"))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            reader.read_exact(&mut b).map_err(|_| truncated("header length"))?;
            u32::from_le_bytes(b) as usize
        }
        _ => return Err(format!("{name}: unsupported .npy format version {major}.{minor} (expected 1.0, 2.0 or 3.0)")),
    };
    let data_start = 8 + if major == 1 { 2 } else { 4 } + header_len as u64;
    if header_len > MAX_HEADER_BYTES || data_start > file_len {
        return Err(format!("{name}: header claims {header_len} bytes but the file holds {file_len} bytes in all"));
    }
    let mut header = vec![0u8; header_len];
    reader.read_exact(&mut header).map_err(|_| truncated("header"))?;
    let header = std::str::from_utf8(&header).map_err(|_| format!("{name}: header is not valid text"))?;
    let (descr, fortran_order, shape) = parse_header(header).map_err(|e| format!("{name}: malformed header: {e}"))?;
    if fortran_order {
        return Err(format!(
            "{name}: fortran_order=True is not supported; save a C-order array (np.ascontiguousarray)"
        ));
    }
    let dtype = Dtype::parse(&descr).map_err(|e| format!("{name}: {e}"))?;

    let shape_text = format_shape(&shape);
    let count = shape.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n));
    let need = count.and_then(|c| c.checked_mul(dtype.size())).and_then(|b| u64::try_from(b).ok());
    let have = file_len - data_start;
    match need {
        Some(need) if need == have => Ok((reader, dtype, shape, count.unwrap_or(0))),
        Some(need) if need > have => Err(format!(
            "{name}: truncated .npy file: shape {shape_text} of {descr} needs {need} data bytes, the file holds {have}"
        )),
        Some(need) => {
            Err(format!("{name}: {} unexpected bytes after the data of shape {shape_text} of {descr}", have - need))
        }
        None => Err(format!("{name}: shape {shape_text} is too large")),
    }
}

fn read_values<T>(
    reader: &mut impl Read,
    path: &Path,
    dtype: Dtype,
    count: usize,
    mut convert: impl FnMut(&[u8], usize) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    // `count` has been checked against the file length, so this allocation is bounded by it.
    let mut out = Vec::with_capacity(count);
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut left = count * dtype.size();
    while left > 0 {
        let n = left.min(CHUNK_BYTES);
        reader.read_exact(&mut chunk[..n]).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
        for element in chunk[..n].chunks_exact(dtype.size()) {
            let value = convert(element, out.len())?;
            out.push(value);
        }
        left -= n;
    }
    Ok(out)
}

/// numpy's tuple spelling: `(3,)`, `(2, 4)`, `()`.
pub fn format_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// Parses the header's Python dict literal, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(text: &str) -> Result<(String, bool, Vec<usize>), String> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    while !p.eat(b'}') {
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" if p.peek() == Some(b'[') => return Err("structured dtypes are not supported".into()),
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key '{other}'")),
        }
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err("expected the keys 'descr', 'fortran_order' and 'shape'".into()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&mut self) -> Option<u8> {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += hit as usize;
        hit
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        let start = self.i + 1;
        let len = self.s[start..].iter().position(|&c| c == quote).ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }
    fn boolean(&mut self) -> Result<bool, String> {
        self.peek();
        for (word, value) in [("True", true), ("False", false)] {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(format!("expected True or False at byte {}", self.i))
    }
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        while !self.eat(b')') {
            self.peek();
            let len = self.s[self.i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let digits = std::str::from_utf8(&self.s[self.i..self.i + len]).unwrap_or("");
            let dim = digits.parse::<usize>().map_err(|_| format!("bad shape entry at byte {}", self.i))?;
            self.i += len;
            dims.push(dim);
            if !self.eat(b',') {
                self.expect(b')')?;
                break;
            }
        }
        Ok(dims)
    }
}

/// Encodes a C-order `<f4` array as a version 1.0 `.npy` file.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    encode("<f4", shape, &bytes)
}

/// Encodes raw little-endian element bytes of dtype `descr` as a version 1.0 `.npy` file.
pub fn encode(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = header(descr, shape);
    out.extend_from_slice(data);
    out
}

/// Magic, version 1.0 and the header, padded with spaces and a newline so the data starts
/// at a multiple of 64 bytes, as numpy writes it.
fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}", format_shape(shape));
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // Shapes come from our own callers; a header never nears 64 KiB.
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes a `<f4` array to `path`.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), String> {
    let bytes = encode_f32(shape, data);
    File::create(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| format!("cannot write '{}': {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_64_byte_aligned_and_parses_back() {
        for shape in [vec![], vec![3], vec![2, 5], vec![123456789, 7]] {
            let bytes = header("<f4", &shape);
            assert_eq!(bytes.len() % 64, 0);
            let text = std::str::from_utf8(&bytes[10..]).unwrap();
            assert_eq!(parse_header(text).unwrap(), ("<f4".to_string(), false, shape));
        }
    }

    #[test]
    fn header_parser_accepts_numpy_spellings_and_rejects_junk() {
        let ok = parse_header("{\"shape\": (4,),'fortran_order':True,'descr':'<u8'}").unwrap();
        assert_eq!(ok, ("<u8".to_string(), true, vec![4]));
        for bad in [
            "",
            "{",
            "{'descr': '<f4'}",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}",
            "{'descr': '<f4', 'fortran_order': maybe, 'shape': ()}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
        ] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }
}
