//! The fuzz targets as plain tests: every file of the committed corpus (`fuzz/corpus/TARGET/`)
//! goes through the same `benchfarm_coordinator::untrusted` function its target calls, so a
//! `cargo test` replays every input the fuzzers kept (each crash found became a corpus file and a
//! fix). A panic is a failure; so is an input that takes over 10 s in this (unoptimised) build: a
//! suite input runs the built-in suite's 69 examples too, ~1 s here on a loaded 2-core machine.
//!
//! `cargo test -p benchfarm-coordinator --test fuzz_corpus -- --ignored write_seeds` writes the
//! protobuf seeds (hand-made messages, encoded) that the corpus grew from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benchfarm_coordinator::untrusted;
use benchfarm_proto::v1 as pb;
use prost::Message;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{}: the corpus of {target} is empty",
        dir.display()
    );
    files
}

/// Feeds every corpus file of `target` to `run`; returns how many inputs `run` accepted.
fn replay(target: &str, run: impl Fn(&[u8]) -> bool) -> usize {
    let mut accepted = 0;
    for file in corpus(target) {
        let data = std::fs::read(&file).unwrap();
        let start = Instant::now();
        if run(&data) {
            accepted += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}: took {:?}",
            file.display(),
            start.elapsed()
        );
    }
    accepted
}

// Each corpus holds inputs that get through the parser as well as ones that do not; a corpus
// with none accepted would mean the fuzzer never got past the first check.

#[test]
fn suite_grade_corpus() {
    assert!(
        replay("suite_grade", |d| untrusted::suite_parse_and_grade(d)
            .is_some())
            > 0
    );
}

#[test]
fn plan_parse_corpus() {
    let dir = tempfile::tempdir().unwrap();
    untrusted::plan_base(dir.path()).unwrap();
    assert!(
        replay("plan_parse", |d| matches!(
            untrusted::plan_parse(d, dir.path()),
            Some(Ok(()))
        )) > 0
    );
}

#[test]
fn scripted_parse_corpus() {
    assert!(replay("scripted_parse", |d| untrusted::scripted_parse(d).is_some()) > 0);
}

#[test]
fn gguf_header_corpus() {
    assert!(replay("gguf_header", |d| untrusted::gguf_header(d).is_some()) > 0);
}

#[test]
fn proto_submit_corpus() {
    assert!(
        replay("proto_submit", |d| matches!(
            untrusted::proto_submit(d),
            Some(Ok(_))
        )) > 0
    );
}

#[test]
fn proto_worker_message_corpus() {
    assert!(
        replay("proto_worker_message", |d| untrusted::proto_worker_message(
            d
        ) == Some(true))
            > 0
    );
}

/// The protobuf seeds: one message of each kind the coordinator accepts, valid, encoded.
#[test]
#[ignore = "writes the seed files; run by hand"]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: Vec<u8>| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let scripted = "name = \"m\"\n[answers]\nt = [\"x\"]\n";
    let submit = pb::SubmitRunRequest {
        suite_toml: "name = \"s\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contains = \"x\" }]\n".into(),
        models: vec![
            pb::ModelRef {
                name: "m".into(),
                sha256: benchfarm_modelfile::sha256_bytes(scripted.as_bytes()),
                size_bytes: 0,
                source: Some(pb::model_ref::Source::ScriptedToml(scripted.into())),
                context_length: 0,
            },
            pb::ModelRef {
                name: "g".into(),
                sha256: "ab".repeat(32),
                size_bytes: 1000,
                source: Some(pb::model_ref::Source::Gguf(pb::GgufModel {
                    file_name: "g.gguf".into(),
                })),
                context_length: 2048,
            },
        ],
        repetitions: 3,
        seed: 42,
        label: "plan.toml".into(),
        placement: pb::Placement::PerClass.into(),
        require: Some(pb::Requirements {
            labels: [("site".to_string(), "lab".to_string())].into(),
            min_ram_gb: 1.5,
            arch: "x86_64".into(),
        }),
        strict: true,
        throughput: vec!["pp16".into(), "tg8".into()],
        adaptive: Some(pb::AdaptiveRepetitions {
            max: 6,
            target_ci: 0.05,
            target_rsd: 0.035,
        }),
    };
    write("proto_submit", "seed-valid", submit.encode_to_vec());
    let key = || pb::JobKey {
        job_id: "0190abcd-0000-7000-8000-000000000001-0000000000".into(),
        attempt: 1,
    };
    let messages = [
        (
            "seed-hello",
            pb::worker_message::Kind::Hello(pb::Hello {
                worker_id: "w1".into(),
                name: "lab-1".into(),
                hardware: Some(pb::Hardware {
                    cpu_model: "cpu".into(),
                    arch: "x86_64".into(),
                    logical_cores: 4,
                    ram_total_bytes: 8 << 30,
                    ..pb::Hardware::default()
                }),
                labels: [("site".to_string(), "lab".to_string())].into(),
                slots: 2,
                threads: 2,
                running: vec![key()],
                ..pb::Hello::default()
            }),
        ),
        (
            "seed-heartbeat",
            pb::worker_message::Kind::Heartbeat(pb::Heartbeat {
                running: vec![key()],
                unacknowledged: vec![key()],
                draining: true,
                ..pb::Heartbeat::default()
            }),
        ),
        (
            "seed-result",
            pb::worker_message::Kind::Result(pb::JobResult {
                key: Some(key()),
                answer: "jq .services config.json".into(),
                grade: Some(pb::Grade {
                    verdict: pb::Verdict::Pass as i32,
                    score: 1.0,
                    extracted: "jq".into(),
                    checks: vec![pb::CheckOutcome {
                        group: "pass".into(),
                        check: "contains \"jq\"".into(),
                        held: true,
                    }],
                }),
                timings: Some(pb::Timings {
                    gen_tokens: 5,
                    gen_ms: 10.0,
                    wall_ms: 12.0,
                    ..pb::Timings::default()
                }),
                threads: 1,
                stop: "eos".into(),
                ..pb::JobResult::default()
            }),
        ),
        (
            "seed-failed",
            pb::worker_message::Kind::Failed(pb::JobFailed {
                key: Some(key()),
                reason: "boom".into(),
                not_started: false,
                refused: true,
                suite_unknown: false,
            }),
        ),
        (
            "seed-started",
            pb::worker_message::Kind::Started(pb::JobStarted { key: Some(key()) }),
        ),
    ];
    for (name, kind) in messages {
        write(
            "proto_worker_message",
            name,
            pb::WorkerMessage { kind: Some(kind) }.encode_to_vec(),
        );
    }
}
