//! A GGUF header reader in plain Rust, so the coordinator and worker can inspect and validate a
//! model file without linking llama.cpp.
//!
//! It reads the magic, version, metadata key/values and tensor infos, then checks that every
//! tensor's bytes lie inside the file. That last check is the point: a truncated download is
//! reported here with a precise message instead of surfacing as an opaque llama.cpp load failure.
//!
//! Every length read from the file is checked against the bytes that remain before anything is
//! allocated or skipped, so arbitrary input yields an error, never a panic or a huge allocation.
//! Long arrays (tokenizer vocabularies) are skipped and kept only as `{element type, length}`.

mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod writer;

pub use value::{GgmlTypeLayout, GgufType, GgufValue, file_type_name, ggml_type_layout};

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Arrays up to this many elements are stored in [`GgufValue::Array`]; longer ones are skipped.
pub const MAX_STORED_ARRAY_LEN: u64 = 256;
/// Largest string accepted (chat templates are a few KiB; anything this big is corruption).
const MAX_STRING_LEN: u64 = 64 << 20;
/// Arrays of arrays nest at most this deep.
const MAX_ARRAY_DEPTH: u32 = 4;
/// `GGML_MAX_DIMS`: llama.cpp rejects tensors with more dimensions.
const MAX_TENSOR_DIMS: u32 = 4;
/// Alignment of the tensor data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Smallest possible encodings, used to reject absurd counts before looping over them.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// What can be wrong with a GGUF file. Offsets are byte offsets from the start of the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{}: cannot read: {error}", path.display())]
    Open { path: PathBuf, error: io::Error },
    /// Any parse error, with the file it came from.
    #[error("{}: {error}", path.display())]
    InFile {
        path: PathBuf,
        error: Box<GgufError>,
    },
    #[error("not a GGUF file: bad magic {found:02x?} at byte 0 (expected \"GGUF\")")]
    BadMagic { found: Vec<u8> },
    #[error("unsupported GGUF version {version} at byte 4 (supported: 2, 3)")]
    UnsupportedVersion { version: u32 },
    #[error("truncated at byte {offset}: file ends inside {what}")]
    Truncated { offset: u64, what: String },
    #[error("truncated: tensor data needs {needed} bytes, file has {file_len} (tensor {tensor:?})")]
    TruncatedData {
        needed: u64,
        file_len: u64,
        tensor: String,
    },
    #[error("invalid GGUF at byte {offset}: {what}")]
    Invalid { offset: u64, what: String },
    #[error("read error at byte {offset}: {error}")]
    Io { offset: u64, error: io::Error },
}

impl GgufError {
    /// Adds "of <context>" to a truncation/invalid message so it names the key or tensor involved.
    fn within(self, context: impl FnOnce() -> String) -> Self {
        match self {
            Self::Truncated { offset, what } => Self::Truncated {
                offset,
                what: format!("{what} of {}", context()),
            },
            Self::Invalid { offset, what } => Self::Invalid {
                offset,
                what: format!("{what} (in {})", context()),
            },
            other => other,
        }
    }
}

/// One tensor's descriptor from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions, innermost first (ggml's `ne`).
    pub dims: Vec<u64>,
    /// The ggml type id (see [`ggml_type_layout`]).
    pub ggml_type: u32,
    /// Offset of the tensor's bytes from the start of the data section.
    pub offset: u64,
    /// Size of the tensor's bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// The ggml type's name, e.g. "Q4_K".
    pub fn type_name(&self) -> Option<&'static str> {
        ggml_type_layout(self.ggml_type).map(|l| l.name)
    }
}

/// What the header of a GGUF file says.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufInfo {
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
    file_len: u64,
}

impl GgufInfo {
    pub fn version(&self) -> u32 {
        self.version
    }
    /// All metadata key/values (long arrays appear as [`GgufValue::SkippedArray`]).
    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }
    fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(GgufValue::as_str)
    }
    /// `general.name`.
    pub fn name(&self) -> Option<&str> {
        self.get_str("general.name")
    }
    /// `general.architecture`, e.g. "llama", "gemma3".
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }
    /// `tokenizer.chat_template` (a Jinja template), absent on base models.
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }
    /// `{architecture}.context_length`: the context the model was trained with.
    pub fn context_length(&self) -> Option<u64> {
        let arch = self.architecture()?;
        self.get(&format!("{arch}.context_length"))
            .and_then(GgufValue::as_u64)
    }
    /// `general.file_type` (llama.cpp's `llama_ftype`).
    pub fn file_type(&self) -> Option<u32> {
        self.get("general.file_type")
            .and_then(GgufValue::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    }
    /// `general.file_type` as a name such as "Q4_K_M".
    pub fn file_type_name(&self) -> Option<&'static str> {
        self.file_type().and_then(file_type_name)
    }
    /// The number of weights: every tensor's elements (the product of its dimensions), summed.
    pub fn parameter_count(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.dims.iter().fold(1u64, |n, d| n.saturating_mul(*d)))
            .fold(0u64, u64::saturating_add)
    }
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// Alignment of the data section (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Byte offset where the tensor data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    /// Length of the file the header was read from.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
}

/// Reads and validates the header of the GGUF file at `path`; errors name the file.
pub fn read_gguf(path: &Path) -> Result<GgufInfo, GgufError> {
    let open_err = |error| GgufError::Open {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(open_err)?;
    let file_len = file.metadata().map_err(open_err)?.len();
    parse_gguf(BufReader::with_capacity(1 << 16, file), file_len).map_err(|error| {
        GgufError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        }
    })
}

/// Parses a GGUF header from `r`, which holds a file of `file_len` bytes starting at byte 0.
pub fn parse_gguf<R: Read>(r: R, file_len: u64) -> Result<GgufInfo, GgufError> {
    let mut c = Cursor {
        r,
        pos: 0,
        file_len,
    };
    let magic = c.array::<4>("magic")?;
    if &magic != b"GGUF" {
        return Err(GgufError::BadMagic {
            found: magic.to_vec(),
        });
    }
    let version = c.u32("version")?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion { version });
    }
    let tensor_count = c.u64("tensor count")?;
    let kv_count = c.u64("metadata count")?;
    c.check_count(kv_count, MIN_KV_BYTES, "metadata entries")?;

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key_at = c.pos;
        let key = c
            .string("metadata key")
            .map_err(|e| e.within(|| format!("metadata entry {i}")))?;
        let value = c
            .value()
            .map_err(|e| e.within(|| format!("metadata {key:?}")))?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(GgufError::Invalid {
                offset: key_at,
                what: format!("duplicate metadata key {key:?}"),
            });
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => a,
            _ => {
                return Err(GgufError::Invalid {
                    offset: 0,
                    what: format!("general.alignment must be a power of two, got {v}"),
                });
            }
        },
    };

    c.check_count(tensor_count, MIN_TENSOR_INFO_BYTES, "tensor infos")?;
    let mut tensors: Vec<TensorInfo> =
        Vec::with_capacity(usize::try_from(tensor_count.min(4096)).unwrap_or(0));
    let mut names = std::collections::HashSet::new();
    for i in 0..tensor_count {
        let at = c.pos;
        let tensor = c
            .tensor_info(alignment)
            .map_err(|e| e.within(|| format!("tensor info {i}")))?;
        if !names.insert(tensor.name.clone()) {
            return Err(GgufError::Invalid {
                offset: at,
                what: format!("duplicate tensor name {:?}", tensor.name),
            });
        }
        tensors.push(tensor);
    }

    let header_end = c.pos;
    let data_offset = header_end
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| GgufError::Invalid {
            offset: header_end,
            what: "data section offset overflows".into(),
        })?;
    // The data section must hold every tensor; report the one that reaches furthest.
    let mut furthest: Option<(u64, &TensorInfo)> = None;
    for t in &tensors {
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|v| v.checked_add(t.n_bytes))
            .ok_or_else(|| GgufError::Invalid {
                offset: header_end,
                what: format!("tensor {:?} ends past 2^64", t.name),
            })?;
        if furthest.is_none_or(|(e, _)| end > e) {
            furthest = Some((end, t));
        }
    }
    if let Some((needed, t)) = furthest
        && needed > file_len
    {
        return Err(GgufError::TruncatedData {
            needed,
            file_len,
            tensor: t.name.clone(),
        });
    }

    Ok(GgufInfo {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
        file_len,
    })
}

/// A reader that knows its position and how many bytes the file still holds.
struct Cursor<R> {
    r: R,
    pos: u64,
    file_len: u64,
}

impl<R: Read> Cursor<R> {
    fn remaining(&self) -> u64 {
        self.file_len.saturating_sub(self.pos)
    }

    fn truncated(&self, what: &str) -> GgufError {
        GgufError::Truncated {
            offset: self.pos,
            what: what.to_string(),
        }
    }

    fn need(&self, n: u64, what: &str) -> Result<(), GgufError> {
        if n > self.remaining() {
            Err(self.truncated(what))
        } else {
            Ok(())
        }
    }

    /// Rejects a count that cannot fit in the rest of the file even at `min_each` bytes apiece.
    fn check_count(&self, count: u64, min_each: u64, what: &str) -> Result<(), GgufError> {
        match count.checked_mul(min_each) {
            Some(n) if n <= self.remaining() => Ok(()),
            _ => Err(GgufError::Truncated {
                offset: self.pos,
                what: format!(
                    "{what} (header claims {count}, file has {} bytes left)",
                    self.remaining()
                ),
            }),
        }
    }

    fn io_err(&self, error: io::Error, what: &str) -> GgufError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            self.truncated(what)
        } else {
            GgufError::Io {
                offset: self.pos,
                error,
            }
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| self.io_err(e, what))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        self.need(n, what)?;
        let copied = io::copy(&mut (&mut self.r).take(n), &mut io::sink())
            .map_err(|e| self.io_err(e, what))?;
        self.pos += copied;
        if copied < n {
            return Err(self.truncated(what));
        }
        Ok(())
    }

    /// A length-prefixed string. Bytes are read incrementally, so a lying length costs nothing.
    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        self.need(len, what)?;
        if len > MAX_STRING_LEN {
            return Err(GgufError::Invalid {
                offset: self.pos,
                what: format!("{what} is {len} bytes long (limit {MAX_STRING_LEN})"),
            });
        }
        let mut bytes = Vec::new();
        let got = (&mut self.r)
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io_err(e, what))?;
        self.pos += got as u64;
        if (got as u64) < len {
            return Err(self.truncated(what));
        }
        // GGUF strings are UTF-8; a stray invalid byte in a value is not worth refusing the file.
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn value_type(&mut self, what: &str) -> Result<GgufType, GgufError> {
        let at = self.pos;
        let tag = self.u32(what)?;
        GgufType::from_tag(tag).ok_or_else(|| GgufError::Invalid {
            offset: at,
            what: format!("unknown value type {tag}"),
        })
    }

    fn value(&mut self) -> Result<GgufValue, GgufError> {
        let ty = self.value_type("value type")?;
        self.value_of(ty, 0)
    }

    fn value_of(&mut self, ty: GgufType, depth: u32) -> Result<GgufValue, GgufError> {
        const W: &str = "value";
        Ok(match ty {
            GgufType::U8 => GgufValue::U8(u8::from_le_bytes(self.array(W)?)),
            GgufType::I8 => GgufValue::I8(i8::from_le_bytes(self.array(W)?)),
            GgufType::U16 => GgufValue::U16(u16::from_le_bytes(self.array(W)?)),
            GgufType::I16 => GgufValue::I16(i16::from_le_bytes(self.array(W)?)),
            GgufType::U32 => GgufValue::U32(u32::from_le_bytes(self.array(W)?)),
            GgufType::I32 => GgufValue::I32(i32::from_le_bytes(self.array(W)?)),
            GgufType::F32 => GgufValue::F32(f32::from_le_bytes(self.array(W)?)),
            GgufType::U64 => GgufValue::U64(u64::from_le_bytes(self.array(W)?)),
            GgufType::I64 => GgufValue::I64(i64::from_le_bytes(self.array(W)?)),
            GgufType::F64 => GgufValue::F64(f64::from_le_bytes(self.array(W)?)),
            GgufType::Bool => {
                let at = self.pos;
                match self.array::<1>(W)?[0] {
                    0 => GgufValue::Bool(false),
                    1 => GgufValue::Bool(true),
                    b => {
                        return Err(GgufError::Invalid {
                            offset: at,
                            what: format!("bool value {b}"),
                        });
                    }
                }
            }
            GgufType::String => GgufValue::String(self.string("string value")?),
            GgufType::Array => self.array_value(depth)?,
        })
    }

    fn array_value(&mut self, depth: u32) -> Result<GgufValue, GgufError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::Invalid {
                offset: self.pos,
                what: format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"),
            });
        }
        let elem_type = self.value_type("array element type")?;
        let len = self.u64("array length")?;
        if len <= MAX_STORED_ARRAY_LEN {
            let mut items = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            for _ in 0..len {
                items.push(self.value_of(elem_type, depth + 1)?);
            }
            return Ok(GgufValue::Array(items));
        }
        self.skip_elements(elem_type, len, depth)?;
        Ok(GgufValue::SkippedArray { elem_type, len })
    }

    /// Skips `len` elements of `elem_type` without storing them.
    fn skip_elements(
        &mut self,
        elem_type: GgufType,
        len: u64,
        depth: u32,
    ) -> Result<(), GgufError> {
        if let Some(size) = elem_type.fixed_size() {
            let total = len
                .checked_mul(size)
                .ok_or_else(|| self.truncated("array data"))?;
            return self.skip(total, "array data");
        }
        // Each string or nested array takes at least 8 bytes, so this loop is bounded by the file.
        self.check_count(len, 8, "array elements")?;
        for _ in 0..len {
            match elem_type {
                GgufType::String => {
                    let n = self.u64("array string length")?;
                    self.skip(n, "array string")?;
                }
                _ => {
                    if depth + 1 >= MAX_ARRAY_DEPTH {
                        return Err(GgufError::Invalid {
                            offset: self.pos,
                            what: format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                        });
                    }
                    let inner = self.value_type("array element type")?;
                    let n = self.u64("array length")?;
                    self.skip_elements(inner, n, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    fn tensor_info(&mut self, alignment: u64) -> Result<TensorInfo, GgufError> {
        let name = self.string("tensor name")?;
        let at = self.pos;
        let n_dims = self.u32("tensor dimension count")?;
        if n_dims == 0 || n_dims > MAX_TENSOR_DIMS {
            return Err(GgufError::Invalid {
                offset: at,
                what: format!("tensor {name:?} has {n_dims} dimensions (1..={MAX_TENSOR_DIMS})"),
            });
        }
        let mut dims = Vec::with_capacity(MAX_TENSOR_DIMS as usize);
        for _ in 0..n_dims {
            let d = self.u64("tensor dimension")?;
            if i64::try_from(d).is_err() {
                return Err(GgufError::Invalid {
                    offset: self.pos - 8,
                    what: format!("tensor {name:?} has dimension {d}"),
                });
            }
            dims.push(d);
        }
        let type_at = self.pos;
        let ggml_type = self.u32("tensor type")?;
        let offset = self.u64("tensor offset")?;
        let invalid = |what: String| GgufError::Invalid {
            offset: type_at,
            what,
        };
        let layout = ggml_type_layout(ggml_type)
            .ok_or_else(|| invalid(format!("tensor {name:?} has unknown ggml type {ggml_type}")))?;
        if offset % alignment != 0 {
            return Err(invalid(format!(
                "tensor {name:?} offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        let n_bytes = tensor_bytes(&dims, layout).ok_or_else(|| {
            invalid(format!(
                "tensor {name:?} has an impossible shape {dims:?} for {}",
                layout.name
            ))
        })?;
        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_bytes,
        })
    }
}

/// Bytes of a tensor with `dims` in `layout`: rows of `dims[0]` elements, stored in whole blocks.
/// `None` when the row length is not a multiple of the block or the size overflows.
fn tensor_bytes(dims: &[u64], layout: GgmlTypeLayout) -> Option<u64> {
    let (&row, rest) = dims.split_first()?;
    if row % layout.block != 0 {
        return None;
    }
    let row_bytes = (row / layout.block).checked_mul(layout.bytes)?;
    rest.iter()
        .try_fold(row_bytes, |acc, &d| acc.checked_mul(d))
}
