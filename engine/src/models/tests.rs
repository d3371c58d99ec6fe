//! Discovery tests over temp directories holding tiny hand-built GGUF files.

use super::*;
use benchfarm_modelfile::sha256_bytes;
use std::time::{Duration, SystemTime};

/// A minimal valid GGUF: string metadata plus one F32 tensor of `n` elements.
fn gguf(kvs: &[(&str, &str)], n: u64) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    let put_str = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    for (k, v) in kvs {
        put_str(&mut out, k);
        out.extend_from_slice(&8u32.to_le_bytes());
        put_str(&mut out, v);
    }
    put_str(&mut out, "w");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // F32
    out.extend_from_slice(&0u64.to_le_bytes());
    let data_start = out.len().next_multiple_of(32);
    out.resize(data_start + 4 * n as usize, 7);
    out
}

fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn finds_models_and_skips_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let named = gguf(
        &[
            ("general.architecture", "llama"),
            ("general.name", "Named Model"),
            ("tokenizer.chat_template", "{{ x }}"),
        ],
        8,
    );
    std::fs::write(dir.path().join("b-named.gguf"), &named).unwrap();
    std::fs::write(
        dir.path().join("a-anon.GGUF"),
        gguf(&[("general.architecture", "gemma3")], 4),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c-truncated.gguf"),
        &named[..named.len() - 3],
    )
    .unwrap();
    std::fs::write(
        dir.path().join("d-random.gguf"),
        b"\x00\x01 definitely not gguf",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/nested.gguf"), &named).unwrap();

    let cache = dir.path().join("cache/hashes.json");
    let found = discover_all(dir.path(), &cache).unwrap();
    let names: Vec<&str> = found.models.iter().map(|m| m.file_name.as_str()).collect();
    assert_eq!(names, ["a-anon.GGUF", "b-named.gguf"]);

    let anon = &found.models[0];
    assert_eq!(anon.name, "a-anon");
    assert_eq!(anon.architecture.as_deref(), Some("gemma3"));
    assert!(!anon.has_chat_template);

    let m = &found.models[1];
    assert_eq!(m.name, "Named Model");
    assert!(m.has_chat_template);
    assert_eq!(m.size_bytes, named.len() as u64);
    assert_eq!(m.sha256, sha256_bytes(&named));

    assert_eq!(found.skipped.len(), 2);
    assert!(found.skipped[0].path.ends_with("c-truncated.gguf"));
    assert!(
        found.skipped[0]
            .reason
            .contains("truncated: tensor data needs"),
        "{:?}",
        found.skipped[0]
    );
    assert!(
        found.skipped[1].reason.contains("bad magic"),
        "{:?}",
        found.skipped[1]
    );
    assert!(cache.exists());

    // The plain entry point returns the same models.
    assert_eq!(discover(dir.path(), &cache).unwrap(), found.models);
}

#[test]
fn cached_hashes_are_reused_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let first = gguf(&[("general.name", "m")], 8);
    std::fs::write(&path, &first).unwrap();
    set_mtime(&path, 1_000_000);
    let cache = dir.path().join("hashes.json");
    assert_eq!(
        discover(dir.path(), &cache).unwrap()[0].sha256,
        sha256_bytes(&first)
    );

    // Plant a fake digest: an unchanged file must be served from the cache, not rehashed.
    let text = std::fs::read_to_string(&cache).unwrap();
    let planted = text.replace(&sha256_bytes(&first), "cafe");
    assert_ne!(planted, text);
    std::fs::write(&cache, planted).unwrap();
    assert_eq!(discover(dir.path(), &cache).unwrap()[0].sha256, "cafe");

    // Same size, different content and mtime: rehashed.
    let mut second = first.clone();
    let last = second.len() - 1;
    second[last] ^= 0xff;
    std::fs::write(&path, &second).unwrap();
    set_mtime(&path, 2_000_000);
    assert_eq!(
        discover(dir.path(), &cache).unwrap()[0].sha256,
        sha256_bytes(&second)
    );

    // Different size: rehashed.
    let third = gguf(&[("general.name", "m")], 16);
    std::fs::write(&path, &third).unwrap();
    set_mtime(&path, 2_000_000);
    assert_eq!(
        discover(dir.path(), &cache).unwrap()[0].sha256,
        sha256_bytes(&third)
    );
}

#[test]
fn corrupt_cache_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = gguf(&[], 4);
    std::fs::write(dir.path().join("m.gguf"), &bytes).unwrap();
    let cache = dir.path().join("hashes.json");
    std::fs::write(&cache, "{ not json").unwrap();
    let models = discover(dir.path(), &cache).unwrap();
    assert_eq!(models[0].sha256, sha256_bytes(&bytes));
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(text.contains(&sha256_bytes(&bytes)), "{text}");
}

#[test]
fn missing_dir_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = discover(&missing, &dir.path().join("c.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope: cannot list models directory"), "{err}");
}
