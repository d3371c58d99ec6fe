//! A tiny GGUF writer for tests: builds small but structurally valid files (metadata, tensor
//! infos, zero-filled data) so the reader can be tested without shipping model files.

use super::{GgufType, GgufValue, ggml_type_layout};

/// Builder for an in-memory GGUF file.
pub(crate) struct GgufWriter {
    pub version: u32,
    pub alignment: u64,
    kvs: Vec<(String, GgufValue)>,
    tensors: Vec<(String, Vec<u64>, u32)>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self {
            version: 3,
            alignment: 32,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    pub fn kv(mut self, key: &str, value: GgufValue) -> Self {
        if key == "general.alignment" {
            self.alignment = value.as_u64().unwrap_or(32);
        }
        self.kvs.push((key.to_string(), value));
        self
    }

    pub fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32) -> Self {
        self.tensors
            .push((name.to_string(), dims.to_vec(), ggml_type));
        self
    }

    /// Serialises the file; tensors are laid out back to back, each aligned.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_str(&mut out, k);
            put_u32(&mut out, tag_of(v));
            put_value(&mut out, v);
        }
        let mut offset = 0u64;
        let mut data_len = 0u64;
        for (name, dims, ty) in &self.tensors {
            put_str(&mut out, name);
            put_u32(&mut out, dims.len() as u32);
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            put_u32(&mut out, *ty);
            out.extend_from_slice(&offset.to_le_bytes());
            let layout = ggml_type_layout(*ty).expect("test tensor type");
            let n = dims.iter().skip(1).product::<u64>() * dims[0] / layout.block * layout.bytes;
            // The last tensor needs only its own bytes, not trailing alignment padding.
            data_len = offset + n;
            offset = data_len.next_multiple_of(self.alignment);
        }
        let data_start = (out.len() as u64).next_multiple_of(self.alignment);
        out.resize((data_start + data_len) as usize, 0);
        out
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn type_tag(t: GgufType) -> u32 {
    (0..=12)
        .find(|&tag| GgufType::from_tag(tag) == Some(t))
        .expect("every type has a tag")
}

fn tag_of(v: &GgufValue) -> u32 {
    type_tag(match v {
        GgufValue::U8(_) => GgufType::U8,
        GgufValue::I8(_) => GgufType::I8,
        GgufValue::U16(_) => GgufType::U16,
        GgufValue::I16(_) => GgufType::I16,
        GgufValue::U32(_) => GgufType::U32,
        GgufValue::I32(_) => GgufType::I32,
        GgufValue::F32(_) => GgufType::F32,
        GgufValue::Bool(_) => GgufType::Bool,
        GgufValue::String(_) => GgufType::String,
        GgufValue::U64(_) => GgufType::U64,
        GgufValue::I64(_) => GgufType::I64,
        GgufValue::F64(_) => GgufType::F64,
        GgufValue::Array(_) | GgufValue::SkippedArray { .. } => GgufType::Array,
    })
}

fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Array(items) => {
            // Element type is taken from the first item (U8 for an empty array).
            put_u32(out, items.first().map_or(0, tag_of));
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        GgufValue::SkippedArray { .. } => panic!("write long arrays as Array"),
    }
}
