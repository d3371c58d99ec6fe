//! `worker bench` as a user runs it: the built binary on the default model, JSON out, checked
//! for llama-bench's fields and sane figures. Runs the test (dev) profile's llama.cpp build
//! (CMake `Release`, `-O3`). Without the model it prints a skip note, except under CI (env `CI`
//! set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

fn default_model() -> Option<PathBuf> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "default model {} is missing: run scripts/fetch-models.sh",
        path.display()
    );
    eprintln!(
        "skipping: {} is missing; run scripts/fetch-models.sh",
        path.display()
    );
    None
}

#[test]
fn bench_prints_llama_bench_json() {
    let Some(model) = default_model() else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["bench", "--model"])
        .arg(&model)
        .args([
            "-p", "16", "-n", "8", "-r", "2", "-t", "1", "--format", "json",
        ])
        .output()
        .expect("run worker bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "worker bench failed: {stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let records = json.as_array().expect("a JSON array of records");
    let tests: Vec<(u64, u64)> = records
        .iter()
        .map(|r| {
            (
                r["n_prompt"].as_u64().unwrap(),
                r["n_gen"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tests, [(16, 0), (0, 8)]);
    for r in records {
        for field in [
            "model_filename",
            "model_type",
            "model_size",
            "model_n_params",
            "n_threads",
            "n_prompt",
            "n_gen",
            "test_time",
            "avg_ns",
            "stddev_ns",
            "avg_ts",
            "stddev_ts",
            "samples_ns",
            "samples_ts",
            "cpu_info",
            "backends",
            "build_commit",
        ] {
            assert!(r.get(field).is_some(), "{field} missing from {r}");
        }
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["samples_ts"].as_array().unwrap().len(), 2, "{r}");
        assert_eq!(r["samples_ns"].as_array().unwrap().len(), 2, "{r}");
        assert_eq!(r["n_threads"], 1);
        assert!(r["model_size"].as_u64().unwrap() > 50_000_000, "{r}");
        assert!(r["model_n_params"].as_u64().unwrap() > 100_000_000, "{r}");
        assert!(r["model_filename"].as_str().unwrap().ends_with(".gguf"));
    }
}
