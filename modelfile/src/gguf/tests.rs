//! Unit tests of the GGUF reader against files built by the test writer: the happy path,
//! every kind of truncation, corrupt headers, and a property test that arbitrary bytes never
//! panic.

use super::writer::GgufWriter;
use super::*;
use proptest::prelude::*;

fn parse(bytes: &[u8]) -> Result<GgufInfo, GgufError> {
    parse_gguf(bytes, bytes.len() as u64)
}

/// A small llama-like model: string/int metadata, a long token array, three tensors.
fn sample() -> GgufWriter {
    let tokens = (0..1000)
        .map(|i| GgufValue::String(format!("tok{i}")))
        .collect();
    GgufWriter::new()
        .kv("general.architecture", GgufValue::String("llama".into()))
        .kv("general.name", GgufValue::String("Tiny Test".into()))
        .kv("general.file_type", GgufValue::U32(3))
        .kv("llama.context_length", GgufValue::U32(2048))
        .kv("llama.rope.freq_base", GgufValue::F32(10000.0))
        .kv("tokenizer.ggml.add_bos_token", GgufValue::Bool(true))
        .kv("tokenizer.ggml.tokens", GgufValue::Array(tokens))
        .kv(
            "tokenizer.ggml.token_type",
            GgufValue::Array(vec![GgufValue::I32(1); 1000]),
        )
        .kv(
            "tokenizer.chat_template",
            GgufValue::String("{% for m in messages %}{{ m.content }}{% endfor %}".into()),
        )
        .kv(
            "misc.small",
            GgufValue::Array(vec![GgufValue::U8(7), GgufValue::U8(9)]),
        )
        .kv("misc.i64", GgufValue::I64(-5))
        .kv("misc.f64", GgufValue::F64(0.5))
        .kv("misc.u16", GgufValue::U16(65535))
        .kv("misc.i16", GgufValue::I16(-2))
        .kv("misc.i8", GgufValue::I8(-1))
        .kv("misc.u64", GgufValue::U64(1 << 40))
        .tensor("token_embd.weight", &[64, 10], 3)
        .tensor("output_norm.weight", &[64], 0)
        .tensor("blk.0.attn_q.weight", &[256, 4], 12)
}

#[test]
fn reads_a_valid_file() {
    let bytes = sample().build();
    let info = parse(&bytes).unwrap();
    assert_eq!(info.version(), 3);
    assert_eq!(info.name(), Some("Tiny Test"));
    assert_eq!(info.architecture(), Some("llama"));
    assert_eq!(info.context_length(), Some(2048));
    assert_eq!(info.file_type(), Some(3));
    assert_eq!(info.file_type_name(), Some("Q4_1"));
    assert!(info.chat_template().unwrap().contains("messages"));
    assert_eq!(info.metadata().len(), 16);
    assert_eq!(info.get("misc.i64"), Some(&GgufValue::I64(-5)));
    assert_eq!(
        info.get("misc.u64").and_then(GgufValue::as_u64),
        Some(1 << 40)
    );
    assert_eq!(
        info.get("misc.small"),
        Some(&GgufValue::Array(vec![GgufValue::U8(7), GgufValue::U8(9)]))
    );
    assert_eq!(
        info.get("tokenizer.ggml.tokens"),
        Some(&GgufValue::SkippedArray {
            elem_type: GgufType::String,
            len: 1000
        })
    );
    assert_eq!(
        info.get("tokenizer.ggml.token_type")
            .and_then(GgufValue::array_len),
        Some(1000)
    );
    let t = info.tensors();
    assert_eq!(t.len(), 3);
    assert_eq!(t[0].name, "token_embd.weight");
    assert_eq!(t[0].n_bytes, 2 * 20 * 10);
    assert_eq!(t[0].type_name(), Some("Q4_1"));
    assert_eq!(t[1].n_bytes, 64 * 4);
    assert_eq!(t[2].n_bytes, 144 * 4);
    assert_eq!(t[1].offset % 32, 0);
    assert_eq!(info.data_offset() % 32, 0);
    // The last tensor ends exactly at the end of the file.
    assert_eq!(
        info.data_offset() + t[2].offset + t[2].n_bytes,
        bytes.len() as u64
    );
    assert_eq!(info.file_len(), bytes.len() as u64);
}

#[test]
fn version_2_and_custom_alignment_are_accepted() {
    let mut w = sample().kv("general.alignment", GgufValue::U32(64));
    w.version = 2;
    let info = parse(&w.build()).unwrap();
    assert_eq!(info.version(), 2);
    assert_eq!(info.alignment(), 64);
    assert_eq!(info.data_offset() % 64, 0);
    assert!(info.tensors().iter().all(|t| t.offset % 64 == 0));
}

#[test]
fn bad_alignment_is_rejected() {
    let w = sample().kv("general.alignment", GgufValue::U32(48));
    // The writer cannot lay out a non-power-of-two alignment sensibly; the reader must refuse it
    // before looking at tensors.
    let err = parse(&w.build()).unwrap_err().to_string();
    assert!(
        err.contains("general.alignment must be a power of two"),
        "{err}"
    );
}

#[test]
fn empty_file_is_truncated_magic() {
    let err = parse(&[]).unwrap_err();
    assert!(
        matches!(err, GgufError::Truncated { offset: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("magic"), "{err}");
}

#[test]
fn bad_magic_is_reported() {
    let mut bytes = sample().build();
    bytes[0] = b'X';
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.starts_with("not a GGUF file: bad magic"), "{err}");
}

#[test]
fn unsupported_version_is_reported() {
    let mut w = sample();
    w.version = 1;
    let err = parse(&w.build()).unwrap_err().to_string();
    assert_eq!(
        err,
        "unsupported GGUF version 1 at byte 4 (supported: 2, 3)"
    );
}

#[test]
fn truncated_data_section_names_sizes() {
    let bytes = sample().build();
    let cut = &bytes[..bytes.len() - 10];
    let err = parse(cut).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "truncated: tensor data needs {} bytes, file has {} (tensor \"blk.0.attn_q.weight\")",
            bytes.len(),
            cut.len()
        )
    );
}

#[test]
fn every_truncation_point_is_an_error() {
    let bytes = sample().build();
    for len in 0..bytes.len() {
        let result = parse(&bytes[..len]);
        assert!(result.is_err(), "prefix of {len} bytes parsed");
    }
}

#[test]
fn truncation_inside_metadata_names_the_key() {
    let bytes = sample().build();
    // Cut in the middle of the token array.
    let pos = bytes.windows(6).position(|w| w == b"tok500").unwrap();
    let err = parse(&bytes[..pos]).unwrap_err().to_string();
    assert!(err.starts_with("truncated at byte"), "{err}");
    assert!(err.contains("tokenizer.ggml.tokens"), "{err}");
}

#[test]
fn file_len_larger_than_stream_is_truncation_not_panic() {
    let bytes = sample().build();
    let err = parse_gguf(&bytes[..100], bytes.len() as u64).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
}

#[test]
fn absurd_counts_are_rejected_without_allocating() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&u64::MAX.to_le_bytes()); // tensors
    bytes.extend_from_slice(&u64::MAX.to_le_bytes()); // kvs
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("metadata entries (header claims"), "{err}");
}

#[test]
fn absurd_string_length_is_truncation() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&(1u64 << 60).to_le_bytes()); // key length
    bytes.extend_from_slice(&[0; 16]);
    let err = parse(&bytes).unwrap_err();
    assert!(
        matches!(err, GgufError::Truncated { offset: 32, .. }),
        "{err}"
    );
}

#[test]
fn unknown_value_and_tensor_types_are_invalid() {
    let mut bytes = sample().build();
    // First value type follows magic(4)+version(4)+counts(16)+key len(8)+"general.architecture".
    let at = 24 + 8 + "general.architecture".len();
    bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("unknown value type 99"), "{err}");

    let bytes = GgufWriter::new().tensor("t", &[4], 0).build();
    let mut patched = bytes.clone();
    // Tensor info: name len(8) + "t" + n_dims(4) + dim(8) + type(4) + offset(8), after 24 bytes.
    let type_at = 24 + 8 + 1 + 4 + 8;
    patched[type_at..type_at + 4].copy_from_slice(&4u32.to_le_bytes());
    let err = parse(&patched).unwrap_err().to_string();
    assert!(err.contains("unknown ggml type 4"), "{err}");
}

#[test]
fn impossible_shapes_and_dims_are_invalid() {
    // 33 elements of Q4_0 is not a whole number of 32-element blocks.
    let mut w = GgufWriter::new().tensor("t", &[64], 2);
    let mut bytes = w.build();
    let dim_at = 24 + 8 + 1 + 4;
    bytes[dim_at..dim_at + 8].copy_from_slice(&33u64.to_le_bytes());
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("impossible shape [33]"), "{err}");

    w = GgufWriter::new().tensor("t", &[1, 1, 1, 1], 0);
    let mut bytes = w.build();
    let ndims_at = 24 + 8 + 1;
    bytes[ndims_at..ndims_at + 4].copy_from_slice(&5u32.to_le_bytes());
    let err = parse(&bytes).unwrap_err().to_string();
    assert!(err.contains("has 5 dimensions"), "{err}");
}

#[test]
fn duplicate_keys_are_invalid() {
    let w = GgufWriter::new()
        .kv("a", GgufValue::U8(1))
        .kv("a", GgufValue::U8(2));
    let err = parse(&w.build()).unwrap_err().to_string();
    assert!(err.contains("duplicate metadata key \"a\""), "{err}");
}

#[test]
fn nested_arrays_are_read_and_skipped() {
    let inner = GgufValue::Array(vec![GgufValue::U32(1), GgufValue::U32(2)]);
    let long_of_arrays = GgufValue::Array(vec![inner.clone(); 300]);
    let w = GgufWriter::new()
        .kv(
            "short",
            GgufValue::Array(vec![inner.clone(), inner.clone()]),
        )
        .kv("long", long_of_arrays)
        .kv("after", GgufValue::Bool(true));
    let info = parse(&w.build()).unwrap();
    assert_eq!(
        info.get("short"),
        Some(&GgufValue::Array(vec![inner.clone(), inner]))
    );
    assert_eq!(info.get("long").and_then(GgufValue::array_len), Some(300));
    assert_eq!(info.get("after"), Some(&GgufValue::Bool(true)));
}

#[test]
fn read_gguf_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    std::fs::write(&path, b"not a model at all").unwrap();
    let err = read_gguf(&path).unwrap_err().to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(err.contains("bad magic"), "{err}");

    let missing = dir.path().join("missing.gguf");
    let err = read_gguf(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.gguf: cannot read"), "{err}");

    let good = dir.path().join("good.gguf");
    std::fs::write(&good, sample().build()).unwrap();
    assert_eq!(read_gguf(&good).unwrap().name(), Some("Tiny Test"));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        cut in 0usize..400,
        tail in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = sample().build();
        bytes.truncate(cut.min(bytes.len()));
        bytes.extend_from_slice(&tail);
        let _ = parse(&bytes);
    }

    #[test]
    fn corrupting_one_byte_never_panics(pos in 0usize..600, byte in any::<u8>()) {
        let mut bytes = sample().build();
        let pos = pos % bytes.len();
        bytes[pos] = byte;
        let _ = parse(&bytes);
    }
}
