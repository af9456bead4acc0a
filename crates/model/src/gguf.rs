//! A reader for the header of GGUF files: metadata and tensor directory.
//!
//! llama.cpp reports a bad file as "failed to load model" and nothing more. Reading the header
//! ourselves first lets us say *what* is wrong (not GGUF, which version, truncated where) and
//! gives the chat template and architecture to code that never loads the weights.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// The first four bytes of every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Why a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(
        "{path} is not a GGUF file (it starts with {found:?}, not \"GGUF\"); \
         name a .gguf model file, a Hugging Face model folder, or a catalogue name"
    )]
    NotGguf { path: PathBuf, found: String },
    #[error("{path}: GGUF version {version} is not supported (versions 2 and 3 are)")]
    Version { path: PathBuf, version: u32 },
    #[error(
        "{path} is truncated: {what} needs {needed} bytes but the file has {len} \
         (the download or copy was cut short; fetch the file again)"
    )]
    Truncated {
        path: PathBuf,
        what: String,
        needed: u64,
        len: u64,
    },
    #[error("{path} has a malformed GGUF header: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

pub type Result<T, E = GgufError> = std::result::Result<T, E>;

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(v) => Some(v),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// A tensor's entry in the directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Size in bytes, or `None` for a ggml type this reader does not know. A size past
    /// `u64::MAX` (only a damaged file has one) is `u64::MAX`, which no file holds.
    pub fn byte_len(&self) -> Option<u64> {
        let (block, type_size) = ggml_type_layout(self.ggml_type)?;
        let first = *self.dims.first().unwrap_or(&1);
        let size = self
            .dims
            .iter()
            .skip(1)
            .try_fold(first.div_ceil(block).checked_mul(type_size), |acc, &d| {
                Some(acc?.checked_mul(d))
            })
            .flatten();
        Some(size.unwrap_or(u64::MAX))
    }
}

/// The header of a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    /// Where the tensor data begins.
    pub data_offset: u64,
    pub file_len: u64,
}

impl GgufHeader {
    /// Reads and checks the header of `path`, including that every tensor lies inside the file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = fs_err::File::open(&path)?;
        let file_len = file.metadata()?.len();
        let mut r = Reader {
            inner: BufReader::with_capacity(1 << 16, file),
            pos: 0,
            len: file_len,
            path: &path,
        };
        let magic: [u8; 4] = r.bytes_array("the magic number")?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::NotGguf {
                found: String::from_utf8_lossy(&magic).escape_default().to_string(),
                path,
            });
        }
        let version = r.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version { path, version });
        }
        let n_tensors = r.u64("the tensor count")?;
        let n_kv = r.u64("the metadata count")?;
        // Each entry takes at least 8 bytes; a count beyond that is corruption, not a big model.
        r.check_count(n_tensors.saturating_add(n_kv), 8, "entry counts")?;

        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string("a metadata key")?;
            let ty = r.u32("a metadata type")?;
            let value = r.value(ty, &key, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity(n_tensors.min(1 << 16) as usize);
        for _ in 0..n_tensors {
            let name = r.string("a tensor name")?;
            let n_dims = r.u32("a tensor rank")?;
            if n_dims > 4 {
                return Err(r.malformed(format!("tensor {name} has {n_dims} dimensions (max 4)")));
            }
            let dims = (0..n_dims)
                .map(|_| r.u64("a tensor dimension"))
                .collect::<Result<Vec<_>>>()?;
            let ggml_type = r.u32("a tensor type")?;
            let offset = r.u64("a tensor offset")?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(Value::as_u64)
            .unwrap_or(32)
            .max(1);
        let data_offset = r.pos.div_ceil(alignment) * alignment;
        let header = GgufHeader {
            path,
            version,
            metadata,
            tensors,
            data_offset,
            file_len,
        };
        header.check_extent()?;
        Ok(header)
    }

    fn check_extent(&self) -> Result<()> {
        for t in &self.tensors {
            let end = self
                .data_offset
                .saturating_add(t.offset)
                .saturating_add(t.byte_len().unwrap_or(0));
            if end > self.file_len {
                return Err(GgufError::Truncated {
                    path: self.path.clone(),
                    what: format!("tensor {}", t.name),
                    needed: end,
                    len: self.file_len,
                });
            }
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// `general.architecture`, e.g. `llama`, `qwen2`, `gemma3`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// The Jinja chat template the model was trained with, if the file carries one.
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    /// The context length the model was trained with.
    pub fn context_length(&self) -> Option<u64> {
        let arch = self.architecture()?;
        self.get(&format!("{arch}.context_length"))
            .and_then(Value::as_u64)
    }

    /// The text of token `id` in the vocabulary stored in the file.
    pub fn token_text(&self, id: u64) -> Option<&str> {
        match self.get("tokenizer.ggml.tokens")? {
            Value::Array(tokens) => tokens.get(usize::try_from(id).ok()?)?.as_str(),
            _ => None,
        }
    }
}

struct Reader<'a, R> {
    inner: R,
    pos: u64,
    len: u64,
    path: &'a Path,
}

impl<R: Read> Reader<'_, R> {
    fn truncated(&self, what: &str, needed: u64) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what: what.to_string(),
            needed,
            len: self.len,
        }
    }

    fn malformed(&self, reason: String) -> GgufError {
        GgufError::Malformed {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    /// Refuses a count of items that could not fit in what is left of the file.
    fn check_count(&self, count: u64, min_item: u64, what: &str) -> Result<()> {
        let needed = self.pos.saturating_add(count.saturating_mul(min_item));
        if needed > self.len {
            return Err(self.truncated(what, needed));
        }
        Ok(())
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let needed = self.pos + buf.len() as u64;
        if needed > self.len {
            return Err(self.truncated(what, needed));
        }
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.truncated(what, needed)
            } else {
                GgufError::Io(std::io::Error::new(
                    e.kind(),
                    format!("reading {}: {e}", self.path.display()),
                ))
            }
        })?;
        self.pos = needed;
        Ok(())
    }

    fn bytes_array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes_array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes_array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        self.check_count(n, 1, what)?;
        let mut buf = vec![0u8; n as usize];
        self.fill(&mut buf, what)?;
        String::from_utf8(buf).map_err(|_| self.malformed(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U64(self.bytes_array::<1>(key)?[0] as u64),
            1 => Value::I64(self.bytes_array::<1>(key)?[0] as i8 as i64),
            2 => Value::U64(u16::from_le_bytes(self.bytes_array(key)?) as u64),
            3 => Value::I64(i16::from_le_bytes(self.bytes_array(key)?) as i64),
            4 => Value::U64(self.u32(key)? as u64),
            5 => Value::I64(i32::from_le_bytes(self.bytes_array(key)?) as i64),
            6 => Value::F64(f32::from_le_bytes(self.bytes_array(key)?) as f64),
            7 => Value::Bool(self.bytes_array::<1>(key)?[0] != 0),
            8 => Value::Str(self.string(key)?),
            9 if depth == 0 => {
                let item_ty = self.u32(key)?;
                let n = self.u64(key)?;
                self.check_count(n, 1, key)?;
                let items = (0..n)
                    .map(|_| self.value(item_ty, key, depth + 1))
                    .collect::<Result<Vec<_>>>()?;
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.bytes_array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.bytes_array(key)?)),
            _ => return Err(self.malformed(format!("metadata {key} has unknown type {ty}"))),
        })
    }
}

/// (elements per block, bytes per block) of a ggml tensor type, as in ggml's type traits.
fn ggml_type_layout(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),     // F32
        1 => (1, 2),     // F16
        2 => (32, 18),   // Q4_0
        3 => (32, 20),   // Q4_1
        6 => (32, 22),   // Q5_0
        7 => (32, 24),   // Q5_1
        8 => (32, 34),   // Q8_0
        9 => (32, 36),   // Q8_1
        10 => (256, 84), // Q2_K
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        29 => (256, 56),
        30 => (1, 2), // BF16
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17), // MXFP4
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gguf_bytes(n_tensors: u64, data_len: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&n_tensors.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        let key = b"general.architecture";
        b.extend_from_slice(&(key.len() as u64).to_le_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&5u64.to_le_bytes());
        b.extend_from_slice(b"llama");
        for i in 0..n_tensors {
            let name = format!("t{i}");
            b.extend_from_slice(&(name.len() as u64).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&8u64.to_le_bytes()); // 8 f32 = 32 bytes
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&(i * 32).to_le_bytes());
        }
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend(std::iter::repeat_n(0u8, data_len));
        b
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_a_well_formed_header() {
        let f = write(&gguf_bytes(2, 64));
        let h = GgufHeader::read(f.path()).unwrap();
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensors[1].byte_len(), Some(32));
    }

    #[test]
    fn truncated_data_names_the_tensor() {
        let f = write(&gguf_bytes(2, 40));
        let err = GgufHeader::read(f.path()).unwrap_err().to_string();
        assert!(
            err.contains("truncated") && err.contains("tensor t1"),
            "{err}"
        );
    }

    #[test]
    fn truncated_header_is_reported_not_panicking() {
        let bytes = gguf_bytes(2, 64);
        for cut in [3, 10, 30, 50, 70] {
            let f = write(&bytes[..cut]);
            let err = GgufHeader::read(f.path()).unwrap_err();
            assert!(
                matches!(err, GgufError::Truncated { .. } | GgufError::NotGguf { .. }),
                "cut at {cut}: {err}"
            );
        }
    }

    /// Found by `scripts/fuzz` (gguf_header): the size of a tensor with huge dimensions
    /// overflowed u64 and panicked.
    #[test]
    fn a_tensor_size_past_u64_is_truncated_not_a_panic() {
        let mut bytes = gguf_bytes(1, 64);
        let dim = bytes.windows(2).position(|w| w == b"t0").unwrap() + 2 + 4;
        bytes[dim..dim + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        let f = write(&bytes);
        let err = GgufHeader::read(f.path()).unwrap_err().to_string();
        assert!(
            err.contains("truncated") && err.contains("tensor t0"),
            "{err}"
        );
        // Release builds wrap instead of panicking: the size must saturate, not wrap.
        let tensor = TensorInfo {
            name: "t".into(),
            dims: vec![3, u64::MAX / 2, 4],
            ggml_type: 0,
            offset: 0,
        };
        assert_eq!(tensor.byte_len(), Some(u64::MAX));
    }

    #[test]
    fn huge_counts_are_refused_without_allocating() {
        let mut bytes = gguf_bytes(0, 0);
        bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let f = write(&bytes);
        assert!(matches!(
            GgufHeader::read(f.path()),
            Err(GgufError::Truncated { .. })
        ));
    }

    #[test]
    fn other_files_are_not_gguf() {
        let f = write(b"%PDF-1.7 not a model");
        let err = GgufHeader::read(f.path()).unwrap_err().to_string();
        assert!(err.contains("is not a GGUF file"), "{err}");
    }
}
