//! The GGUF reader against the real models fetched by `scripts/fetch-models.sh`: the parsed
//! header must match what is known about each file, and a truncated copy must be caught.
//!
//! A model that is absent is skipped with a note, except under CI (env `CI` set), where the test
//! fails and says how to fetch it.

use std::path::{Path, PathBuf};

use benchfarm_modelfile::{GgufError, GgufType, GgufValue, read_gguf};

fn model(file: &str, fetch_flag: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(file);
    if path.exists() {
        return Some(path);
    }
    let how = format!("run `scripts/fetch-models.sh {fetch_flag}` to fetch {file}");
    assert!(
        std::env::var_os("CI").is_none(),
        "{} missing: {how}",
        path.display()
    );
    eprintln!("skipping: {} missing ({how})", path.display());
    None
}

#[test]
fn smollm2_header() {
    let Some(path) = model("SmolLM2-135M-Instruct.Q4_1.gguf", "") else {
        return;
    };
    let info = read_gguf(&path).unwrap();
    assert_eq!(info.architecture(), Some("llama"));
    assert_eq!(info.file_type_name(), Some("Q4_1"));
    assert_eq!(info.context_length(), Some(8192));
    assert!(info.chat_template().unwrap().contains("<|im_start|>"));
    assert!(matches!(
        info.get("tokenizer.ggml.tokens"),
        Some(GgufValue::SkippedArray {
            elem_type: GgufType::String,
            len: 49152
        })
    ));
    assert_eq!(info.tensors().len(), 272);
    let end = info
        .tensors()
        .iter()
        .map(|t| info.data_offset() + t.offset + t.n_bytes)
        .max()
        .unwrap();
    assert!(end <= info.file_len() && info.file_len() - end < info.alignment());
}

#[test]
fn gemma3_header() {
    let Some(path) = model("gemma-3-270m-q4_k_m.gguf", "--gemma") else {
        return;
    };
    let info = read_gguf(&path).unwrap();
    assert_eq!(info.architecture(), Some("gemma3"));
    assert_eq!(info.file_type_name(), Some("Q4_K_M"));
    assert_eq!(info.context_length(), Some(32768));
    // "270M": the tensors' elements, which `coordinator models list` shows.
    let params = info.parameter_count();
    assert!((250_000_000..300_000_000).contains(&params), "{params}");
}

#[test]
fn truncated_real_model_is_caught() {
    let Some(path) = model("SmolLM2-135M-Instruct.Q4_1.gguf", "") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.gguf");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_gguf(&cut).unwrap_err();
    let GgufError::InFile { error, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        matches!(**error, GgufError::TruncatedData { file_len, .. } if file_len == (bytes.len() / 2) as u64),
        "{err}"
    );
}
