//! One streamed chat completion, chunk by chunk: the answer, the reasoning kept apart from it,
//! the token usage and when the tokens arrived.
//!
//! Pure: every chunk comes with the time since its request was sent (the caller reads the
//! clock), so the timings and the reasoning split are tested on scripted streams.
//!
//! Reasoning output reaches us two ways: a separate delta field (`reasoning_content`, as
//! DeepSeek and llama-server send it, or `reasoning`, as OpenRouter and vLLM do), or inline in
//! the content between `<think>` and `</think>`. Both are kept apart from the answer, which is
//! what gets graded; their tokens count as generated tokens (the endpoint bills them) and are
//! reported on their own.

use serde_json::Value;

/// Token counts from the endpoint's `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// `completion_tokens_details.reasoning_tokens`, when the endpoint says.
    pub reasoning_tokens: Option<u32>,
}

/// A completion being streamed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    /// The content deltas joined (inline `<think>` blocks included).
    pub content: String,
    /// The reasoning deltas joined.
    pub reasoning: String,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// llama-server's own prompt-evaluation time (its non-standard `timings.prompt_ms`).
    pub server_prompt_ms: Option<f64>,
    /// Milliseconds after sending the request at which the first and the last token (answer or
    /// reasoning) arrived.
    pub first_token_ms: Option<f64>,
    pub last_token_ms: Option<f64>,
    /// Chunks that carried answer text, and chunks that carried reasoning: one token each on
    /// the servers that stream token by token, the estimate when there is no `usage`.
    pub answer_chunks: u32,
    pub reasoning_chunks: u32,
}

/// What a finished completion amounts to.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The graded text: the content without its reasoning.
    pub answer: String,
    pub reasoning: String,
    pub prompt_tokens: u32,
    /// Every generated token, reasoning included.
    pub gen_tokens: u32,
    pub reasoning_tokens: u32,
    /// No `usage` came: the counts are estimates (chunks, and the prompt's length / 4).
    pub estimated: bool,
}

impl Completion {
    /// Applies one `data:` payload that arrived `at_ms` after the request was sent. An `error`
    /// object (some endpoints report failures inside the stream) is returned as the reason.
    pub fn apply(&mut self, data: &str, at_ms: f64) -> Result<(), String> {
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| format!("malformed stream chunk: {e}"))?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_string);
            return Err(format!(
                "the endpoint reported an error mid-stream: {message}"
            ));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let count = |v: Option<&Value>| v.and_then(Value::as_u64).map(saturate);
            self.usage = Some(Usage {
                prompt_tokens: count(usage.get("prompt_tokens")).unwrap_or(0),
                completion_tokens: count(usage.get("completion_tokens")).unwrap_or(0),
                reasoning_tokens: count(
                    usage
                        .get("completion_tokens_details")
                        .and_then(|d| d.get("reasoning_tokens")),
                ),
            });
        }
        if let Some(ms) = chunk
            .get("timings")
            .and_then(|t| t.get("prompt_ms"))
            .and_then(Value::as_f64)
        {
            self.server_prompt_ms = Some(ms);
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Ok(());
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_string());
        }
        let delta = choice.get("delta");
        let text = |field: &str| {
            delta
                .and_then(|d| d.get(field))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let mut got_token = false;
        if let Some(r) = text("reasoning_content").or_else(|| text("reasoning")) {
            self.reasoning.push_str(r);
            self.reasoning_chunks += 1;
            got_token = true;
        }
        if let Some(c) = text("content") {
            let was_thinking = thinking(&self.content);
            self.content.push_str(c);
            // A chunk that opens, continues or closes an inline <think> block is reasoning.
            if was_thinking
                || thinking(&self.content)
                || c.contains("</think>")
                || opening_tag(&self.content)
            {
                self.reasoning_chunks += 1;
            } else {
                self.answer_chunks += 1;
            }
            got_token = true;
        }
        if got_token {
            self.first_token_ms.get_or_insert(at_ms);
            self.last_token_ms = Some(at_ms);
        }
        Ok(())
    }

    /// The answer, reasoning and token counts; `prompt_estimate` is used when there is no usage.
    pub fn outcome(&self, prompt_estimate: u32) -> Outcome {
        let (answer, inline) = split_think(&self.content);
        let mut reasoning = self.reasoning.clone();
        if !inline.is_empty() {
            if !reasoning.is_empty() {
                reasoning.push('\n');
            }
            reasoning.push_str(inline);
        }
        let chunks = self.answer_chunks + self.reasoning_chunks;
        match self.usage {
            Some(u) => {
                // Without the endpoint's own figure, reasoning gets its share of the chunks.
                let reasoning_tokens = u.reasoning_tokens.unwrap_or_else(|| {
                    if chunks == 0 {
                        0
                    } else {
                        let share = f64::from(self.reasoning_chunks) / f64::from(chunks);
                        (share * f64::from(u.completion_tokens)).round() as u32
                    }
                });
                Outcome {
                    answer: answer.to_string(),
                    reasoning,
                    prompt_tokens: u.prompt_tokens,
                    gen_tokens: u.completion_tokens,
                    reasoning_tokens: reasoning_tokens.min(u.completion_tokens),
                    estimated: false,
                }
            }
            None => Outcome {
                answer: answer.to_string(),
                reasoning,
                prompt_tokens: prompt_estimate,
                gen_tokens: chunks,
                reasoning_tokens: self.reasoning_chunks,
                estimated: true,
            },
        }
    }

    /// "eos", "max_tokens", or the endpoint's own finish reason.
    pub fn stop(&self) -> String {
        match self.finish_reason.as_deref() {
            Some("stop") | None => "eos".into(),
            Some("length") => "max_tokens".into(),
            Some(other) => other.to_string(),
        }
    }
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Whether `content` so far is the start of a `<think>` tag split across chunks ("<thi").
fn opening_tag(content: &str) -> bool {
    let start = content.trim_start();
    !start.is_empty() && "<think>".starts_with(start)
}

/// Whether `content` ends inside an unclosed `<think>` block.
fn thinking(content: &str) -> bool {
    match (content.rfind("<think>"), content.rfind("</think>")) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    }
}

/// (answer, reasoning) of content that may hold a `<think>…</think>` block: a leading block is
/// reasoning; an unclosed one is all reasoning (the token limit ended it); a `</think>` with no
/// opening tag (the chat template put `<think>` in the prompt) ends the reasoning.
pub fn split_think(content: &str) -> (&str, &str) {
    let trimmed = content.trim_start();
    if let Some(inner) = trimmed.strip_prefix("<think>") {
        return match inner.split_once("</think>") {
            Some((reasoning, answer)) => (answer.trim_start(), reasoning.trim()),
            None => ("", inner.trim()),
        };
    }
    match content.split_once("</think>") {
        Some((reasoning, answer)) if !reasoning.contains("<think>") => {
            (answer.trim_start(), reasoning.trim())
        }
        _ => (content, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(field: &str, text: &str) -> String {
        serde_json::json!({"choices": [{"index": 0, "delta": {field: text}}]}).to_string()
    }

    #[test]
    fn content_usage_and_token_times_are_collected() {
        let mut c = Completion::default();
        // The role-only first chunk is no token.
        c.apply(
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            5.0,
        )
        .unwrap();
        c.apply(&delta("content", "jq "), 40.0).unwrap();
        c.apply(&delta("content", ".a"), 50.0).unwrap();
        c.apply(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#, 55.0)
            .unwrap();
        c.apply(
            r#"{"choices":[],"usage":{"prompt_tokens":31,"completion_tokens":3},"timings":{"prompt_ms":12.5}}"#,
            56.0,
        )
        .unwrap();
        assert_eq!(
            (c.first_token_ms, c.last_token_ms),
            (Some(40.0), Some(50.0))
        );
        assert_eq!(c.server_prompt_ms, Some(12.5));
        assert_eq!(c.stop(), "eos");
        let o = c.outcome(99);
        assert_eq!(o.answer, "jq .a");
        assert_eq!((o.prompt_tokens, o.gen_tokens, o.estimated), (31, 3, false));
        assert_eq!(o.reasoning_tokens, 0);
    }

    #[test]
    fn without_usage_tokens_are_estimated_from_chunks() {
        let mut c = Completion::default();
        for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
            c.apply(&delta("content", t), i as f64).unwrap();
        }
        c.apply(
            r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#,
            9.0,
        )
        .unwrap();
        let o = c.outcome(17);
        assert_eq!((o.prompt_tokens, o.gen_tokens, o.estimated), (17, 4, true));
        assert_eq!(c.stop(), "max_tokens");
    }

    #[test]
    fn reasoning_is_kept_apart_and_counted() {
        // A reasoning field, then the answer.
        let mut c = Completion::default();
        c.apply(&delta("reasoning_content", "think "), 10.0)
            .unwrap();
        c.apply(&delta("reasoning_content", "hard"), 11.0).unwrap();
        c.apply(&delta("content", "42"), 12.0).unwrap();
        c.apply(
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"completion_tokens_details":{"reasoning_tokens":2}}}"#,
            13.0,
        )
        .unwrap();
        let o = c.outcome(0);
        assert_eq!(
            (o.answer.as_str(), o.reasoning.as_str()),
            ("42", "think hard")
        );
        assert_eq!((o.gen_tokens, o.reasoning_tokens), (3, 2));
        assert_eq!(c.first_token_ms, Some(10.0));

        // Inline <think> in the content, split across chunks; no reasoning_tokens in usage: its
        // share of the chunks (3 of 4 chunks → 6 of 8 tokens).
        let mut c = Completion::default();
        for (i, t) in ["<thi", "nk>plan", "</think>\n", "ls -la"]
            .iter()
            .enumerate()
        {
            c.apply(&delta("content", t), i as f64).unwrap();
        }
        c.apply(
            r#"{"usage":{"prompt_tokens":5,"completion_tokens":8}}"#,
            9.0,
        )
        .unwrap();
        assert_eq!((c.reasoning_chunks, c.answer_chunks), (3, 1));
        let o = c.outcome(0);
        assert_eq!(
            (o.answer.as_str(), o.reasoning.as_str()),
            ("ls -la", "plan")
        );
        assert_eq!(o.reasoning_tokens, 6);
    }

    #[test]
    fn think_blocks_split_in_every_shape() {
        assert_eq!(split_think("<think>a</think> b"), ("b", "a"));
        assert_eq!(split_think("  <think>a"), ("", "a"));
        assert_eq!(split_think("a</think>b"), ("b", "a"));
        assert_eq!(split_think("plain"), ("plain", ""));
        assert_eq!(
            split_think("x <think>y</think>"),
            ("x <think>y</think>", "")
        );
    }

    #[test]
    fn errors_in_the_stream_and_garbage_are_reasons() {
        let mut c = Completion::default();
        let e = c
            .apply(r#"{"error":{"message":"overloaded"}}"#, 1.0)
            .unwrap_err();
        assert!(e.contains("overloaded"), "{e}");
        assert!(c.apply("not json", 1.0).unwrap_err().contains("malformed"));
    }
}
