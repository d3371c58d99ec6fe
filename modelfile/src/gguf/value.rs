//! The value and type vocabulary of a GGUF file: metadata value types, the metadata values we
//! keep, and the ggml tensor types with their block sizes.
//!
//! Kept apart from the parser so the tables (which track llama.cpp's `ggml.h` / `ggml-common.h`)
//! can be updated without touching the parsing logic.

use std::fmt;

/// The type tag of a GGUF metadata value (`gguf_type` in llama.cpp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgufType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl GgufType {
    /// Maps the on-disk tag; `None` for a tag this reader does not know.
    pub fn from_tag(tag: u32) -> Option<Self> {
        Some(match tag {
            0 => Self::U8,
            1 => Self::I8,
            2 => Self::U16,
            3 => Self::I16,
            4 => Self::U32,
            5 => Self::I32,
            6 => Self::F32,
            7 => Self::Bool,
            8 => Self::String,
            9 => Self::Array,
            10 => Self::U64,
            11 => Self::I64,
            12 => Self::F64,
            _ => return None,
        })
    }

    /// Size in bytes of one value of a fixed-size type; `None` for string and array.
    pub fn fixed_size(self) -> Option<u64> {
        match self {
            Self::U8 | Self::I8 | Self::Bool => Some(1),
            Self::U16 | Self::I16 => Some(2),
            Self::U32 | Self::I32 | Self::F32 => Some(4),
            Self::U64 | Self::I64 | Self::F64 => Some(8),
            Self::String | Self::Array => None,
        }
    }
}

/// One metadata value.
///
/// Arrays longer than [`crate::gguf::MAX_STORED_ARRAY_LEN`] (the tokenizer's vocabulary, merges,
/// scores) are not stored: only their element type and length are kept, which is all the farm
/// needs and keeps a header read cheap.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    /// A short array, kept in full.
    Array(Vec<GgufValue>),
    /// A long array, skipped: only its element type and length are known.
    SkippedArray {
        elem_type: GgufType,
        len: u64,
    },
}

impl GgufValue {
    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned integer, when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(u64::from(v)),
            Self::U16(v) => Some(u64::from(v)),
            Self::U32(v) => Some(u64::from(v)),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Number of elements for either kind of array.
    pub fn array_len(&self) -> Option<u64> {
        match self {
            Self::Array(v) => u64::try_from(v.len()).ok(),
            Self::SkippedArray { len, .. } => Some(*len),
            _ => None,
        }
    }
}

impl fmt::Display for GgufValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::U8(v) => write!(f, "{v}"),
            Self::I8(v) => write!(f, "{v}"),
            Self::U16(v) => write!(f, "{v}"),
            Self::I16(v) => write!(f, "{v}"),
            Self::U32(v) => write!(f, "{v}"),
            Self::I32(v) => write!(f, "{v}"),
            Self::F32(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::String(v) => write!(f, "{v:?}"),
            Self::U64(v) => write!(f, "{v}"),
            Self::I64(v) => write!(f, "{v}"),
            Self::F64(v) => write!(f, "{v}"),
            Self::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Self::SkippedArray { elem_type, len } => write!(f, "[{elem_type:?}; {len}]"),
        }
    }
}

/// Block layout of a ggml tensor type: `block` elements are stored in `bytes` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlTypeLayout {
    pub name: &'static str,
    pub block: u64,
    pub bytes: u64,
}

/// The layout of ggml tensor type `id`, from llama.cpp's `ggml.h` enum and the block structs'
/// `static_assert`s in `ggml-common.h`. `None` for ids this table does not know (removed types,
/// or types newer than the table): the caller then cannot check that tensor's size.
pub fn ggml_type_layout(id: u32) -> Option<GgmlTypeLayout> {
    const QK_K: u64 = 256;
    let (name, block, bytes) = match id {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", QK_K, 84),
        11 => ("Q3_K", QK_K, 110),
        12 => ("Q4_K", QK_K, 144),
        13 => ("Q5_K", QK_K, 176),
        14 => ("Q6_K", QK_K, 210),
        15 => ("Q8_K", QK_K, 292),
        16 => ("IQ2_XXS", QK_K, 66),
        17 => ("IQ2_XS", QK_K, 74),
        18 => ("IQ3_XXS", QK_K, 98),
        19 => ("IQ1_S", QK_K, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", QK_K, 110),
        22 => ("IQ2_S", QK_K, 82),
        23 => ("IQ4_XS", QK_K, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", QK_K, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", QK_K, 54),
        35 => ("TQ2_0", QK_K, 66),
        39 => ("MXFP4", 32, 17),
        40 => ("NVFP4", 64, 36),
        41 => ("Q1_0", 128, 18),
        42 => ("Q2_0", 64, 18),
        _ => return None,
    };
    Some(GgmlTypeLayout { name, block, bytes })
}

/// Human name of `general.file_type` (llama.cpp's `llama_ftype`), e.g. 15 → "Q4_K_M".
pub fn file_type_name(ftype: u32) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        41 => "Q2_0",
        _ => return None,
    })
}
