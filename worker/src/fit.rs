//! Results cut to the coordinator's message limit.
//!
//! A message larger than the coordinator decodes would not just be refused: it breaks the whole
//! stream, the worker reconnects and re-sends it first, and so on forever, losing every job sent in
//! between. So before a result goes out it is made to fit — its answer cut at a character boundary
//! (then the chat template, the only other free-text field) — and flagged `truncated`, which the
//! report shows. The limit is the welcome's `max_message_bytes` (tonic's 4 MiB before one came).

use benchfarm_proto::v1 as pb;
use prost::Message;

/// The limit assumed until a welcome says otherwise: tonic's default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;
/// Room left for the envelope around a result (the `WorkerMessage` wrapper and gRPC framing).
const ENVELOPE_BYTES: usize = 1024;

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn cut(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

/// Makes `result` fit in `max_message_bytes`; returns whether anything was cut.
///
/// Cut in this order, each only as far as still needed: the grader's extract (derived from the
/// answer, and re-derived by a coordinator that grades itself), the answer, the checks' texts, the
/// chat template.
pub fn fit_result(result: &mut pb::JobResult, max_message_bytes: usize) -> bool {
    let budget = max_message_bytes.saturating_sub(ENVELOPE_BYTES);
    if result.encoded_len() <= budget {
        return false;
    }
    // Flagged first: the flag itself takes two bytes of the budget.
    result.truncated = true;
    // Removing n bytes of a string shrinks the message by at least n (length prefixes only shrink).
    let shrink = |result: &mut pb::JobResult,
                  pick: &dyn Fn(&mut pb::JobResult) -> Vec<&mut String>| {
        let mut over = result.encoded_len().saturating_sub(budget);
        for field in pick(result) {
            if over == 0 {
                break;
            }
            let before = field.len();
            cut(field, before.saturating_sub(over));
            over = over.saturating_sub(before - field.len());
        }
    };
    shrink(result, &|r| {
        r.grade.iter_mut().map(|g| &mut g.extracted).collect()
    });
    shrink(result, &|r| vec![&mut r.answer]);
    shrink(result, &|r| {
        r.grade
            .iter_mut()
            .flat_map(|g| g.checks.iter_mut())
            .flat_map(|c| [&mut c.check, &mut c.group])
            .collect()
    });
    shrink(result, &|r| vec![&mut r.chat_template]);
    true
}

/// [`fit_result`] on a message, when it is a result.
pub fn fit_message(message: &mut pb::WorkerMessage, max_message_bytes: usize) -> bool {
    match &mut message.kind {
        Some(pb::worker_message::Kind::Result(result)) => fit_result(result, max_message_bytes),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(answer: String) -> pb::JobResult {
        pb::JobResult {
            key: Some(pb::JobKey {
                job_id: "0000000001".into(),
                attempt: 1,
            }),
            answer,
            chat_template: "chatml".into(),
            ..pb::JobResult::default()
        }
    }

    #[test]
    fn a_small_result_is_left_alone() {
        let mut r = result("ok".into());
        assert!(!fit_result(&mut r, DEFAULT_MAX_MESSAGE_BYTES));
        assert_eq!(r.answer, "ok");
        assert!(!r.truncated);
    }

    #[test]
    fn a_huge_answer_is_cut_to_fit_at_a_char_boundary_and_flagged() {
        let limit = 64 * 1024;
        // Multi-byte characters, so a cut in the middle of one would be invalid UTF-8.
        let mut r = result("é".repeat(100_000));
        assert!(fit_result(&mut r, limit));
        assert!(r.truncated);
        let message = pb::WorkerMessage {
            kind: Some(pb::worker_message::Kind::Result(r.clone())),
        };
        assert!(message.encoded_len() <= limit, "{}", message.encoded_len());
        assert!(r.answer.len() > limit / 2, "cut far more than needed");
        assert!(r.answer.chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_extract_goes_before_the_answer() {
        let mut r = result("b".repeat(50_000));
        r.grade = Some(pb::Grade {
            extracted: "b".repeat(50_000),
            ..pb::Grade::default()
        });
        assert!(fit_result(&mut r, 64 * 1024));
        assert!(r.encoded_len() <= 63 * 1024);
        assert_eq!(
            r.answer.len(),
            50_000,
            "the answer was cut while the extract could be"
        );
    }

    #[test]
    fn a_huge_chat_template_is_cut_too() {
        let mut r = result(String::new());
        r.chat_template = "x".repeat(10_000);
        assert!(fit_result(&mut r, 4096));
        assert!(r.encoded_len() <= 4096 - ENVELOPE_BYTES);
    }
}
