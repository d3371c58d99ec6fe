//! One entry point per kind of untrusted input the coordinator (and its client) reads, each taking
//! raw bytes and going through the same code a real input goes through: the fuzz targets
//! (`fuzz/fuzz_targets/`) call these, and so does the corpus test (`tests/fuzz_corpus.rs`), which
//! feeds every committed corpus file through them in a plain `cargo test`.
//!
//! Each must return for any input, never panic, and stay within the limits (a suite's checks run
//! over the answer under the suite limits, a protobuf message is converted only as far as the
//! server converts it). What each returns is only there so that tests can see what happened.

use std::path::Path;

use benchfarm_proto::v1 as pb;
use prost::Message;

use crate::limits::Limits;

/// Splits `data` at its first NUL byte: (before, after); all of it and "" without one.
fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A suite (before the first NUL) parsed under the default limits, and, when it loads, the rest
/// graded as an answer by every task and the suite's own examples checked. `Some(verdicts)` when
/// the suite loaded.
pub fn suite_parse_and_grade(data: &[u8]) -> Option<Vec<benchfarm_suite::Verdict>> {
    let (suite, answer) = split_nul(data);
    let suite = std::str::from_utf8(suite).ok()?;
    let answer = String::from_utf8_lossy(answer);
    let suite =
        benchfarm_suite::Suite::parse_with_limits(suite, "fuzz.toml", Limits::DEFAULT.suite)
            .ok()?;
    let _ = benchfarm_suite::check_examples(&suite);
    Some(
        suite
            .tasks
            .iter()
            .map(|t| t.grade(&answer).verdict)
            .collect(),
    )
}

/// A plan file resolved against `base` (which holds the files a plan may name: see
/// [`plan_base`]). Inputs that name a path outside `base` (`/`, `\`, `..`) are skipped: resolving
/// reads and hashes the files a plan names, and a fuzzer must not wander the file system.
pub fn plan_parse(data: &[u8], base: &Path) -> Option<Result<(), crate::plan::PlanError>> {
    let text = std::str::from_utf8(data).ok()?;
    if text.contains('/') || text.contains('\\') || text.contains("..") {
        return None;
    }
    Some(crate::plan::resolve(text, "plan.toml", base).map(|_| ()))
}

/// Writes the files a fuzzed plan may name into `dir`: a suite `s.toml` and a scripted model
/// `m.toml` (the built-in suite needs none).
pub fn plan_base(dir: &Path) -> std::io::Result<()> {
    std::fs::write(
        dir.join("s.toml"),
        "name = \"s\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contains = \"x\" }]\n",
    )?;
    std::fs::write(dir.join("m.toml"), "name = \"m\"\n[answers]\nt = [\"x\"]\n")
}

/// A scripted model parsed as the client and the coordinator parse it, then asked for an answer
/// and a fault the way the engine asks.
pub fn scripted_parse(data: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(data).ok()?;
    let model = benchfarm_modelfile::ScriptedModel::parse(text, "fuzz.toml").ok()?;
    let mut seen = 0;
    for (task, answers) in model.answers() {
        for rep in 0..answers.len().min(4) as u32 + 1 {
            seen += model.answer(task, rep).len();
            let _ = model.fault(task, rep, 1);
        }
    }
    let _ = model.with_speed_factor(2.0);
    Some(seen)
}

/// A GGUF header read from `data` as if it were a whole file, then every accessor the client uses.
pub fn gguf_header(data: &[u8]) -> Option<u64> {
    let info =
        benchfarm_modelfile::parse_gguf(std::io::Cursor::new(data), data.len() as u64).ok()?;
    let _ = (
        info.name(),
        info.architecture(),
        info.chat_template(),
        info.file_type_name(),
        info.tensors().len(),
        info.alignment(),
    );
    // Both are the file's own numbers (a context length near u64::MAX is a valid u64): the sum
    // only keeps them alive for the fuzzer, so it must not be arithmetic that can overflow.
    Some(
        info.context_length()
            .unwrap_or(0)
            .wrapping_add(info.data_offset()),
    )
}

/// A `SubmitRunRequest` decoded from protobuf bytes and validated as `SubmitRun` validates it.
/// `Some(Ok(jobs per model))` for a request the server would accept.
pub fn proto_submit(data: &[u8]) -> Option<Result<u64, tonic::Status>> {
    let req = pb::SubmitRunRequest::decode(data).ok()?;
    Some(
        crate::grpc::submit::run_record(req, &Limits::DEFAULT, "fuzz".into(), 0)
            .map(|run| u64::from(run.repetitions) * run.tasks.len() as u64),
    )
}

/// A `WorkerMessage` decoded from protobuf bytes and converted as `Connect` converts it: a hello
/// to a joining worker, anything else to a scheduler event; a result's answer cut to the
/// stored-answer limit, as the connection cuts it before grading.
pub fn proto_worker_message(data: &[u8]) -> Option<bool> {
    let message = pb::WorkerMessage::decode(data).ok()?;
    if let Some(pb::worker_message::Kind::Hello(hello)) = message.kind {
        return Some(crate::grpc::convert::joining(hello).is_ok());
    }
    let event = crate::grpc::worker_service::to_event(message, "fuzz")?;
    if let crate::scheduler::WorkerEvent::Result(mut result) = event {
        crate::grading::truncate_answer(&mut result.answer, Limits::DEFAULT.answer_bytes);
        return Some(result.answer.len() <= Limits::DEFAULT.answer_bytes);
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entry_sees_a_valid_input_through() {
        let suite = "name = \"s\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contains = \"x\" }]\n";
        let graded = suite_parse_and_grade(format!("{suite}\0x").as_bytes());
        assert_eq!(graded, Some(vec![benchfarm_suite::Verdict::Pass]));
        assert_eq!(suite_parse_and_grade(b"not a suite"), None);
        let dir = tempfile::tempdir().expect("tempdir");
        plan_base(dir.path()).expect("base");
        let plan = b"suite = \"s.toml\"\n[[models]]\nscripted = \"m.toml\"\n";
        assert!(matches!(plan_parse(plan, dir.path()), Some(Ok(()))));
        assert_eq!(plan_parse(b"suite = \"../x\"", dir.path()), None);
        assert_eq!(
            scripted_parse(b"name = \"m\"\n[answers]\nt = [\"ab\"]"),
            Some(4)
        );
        assert_eq!(gguf_header(b"GGUF"), None);
        assert!(proto_submit(&[0xff]).is_none());
        let empty = pb::SubmitRunRequest::default().encode_to_vec();
        assert!(matches!(proto_submit(&empty), Some(Err(_))));
        let hello = pb::WorkerMessage {
            kind: Some(pb::worker_message::Kind::Hello(pb::Hello {
                worker_id: "w".into(),
                ..pb::Hello::default()
            })),
        };
        assert_eq!(proto_worker_message(&hello.encode_to_vec()), Some(true));
    }
}
