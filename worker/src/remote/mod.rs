//! Remote models: one job = one streamed OpenAI chat completion (`POST {url}/chat/completions`
//! with `stream: true` and `stream_options.include_usage`), measured as a local job is.
//!
//! The slot threads are plain OS threads, so the caller owns a small tokio runtime of its own and
//! each call blocks its slot on it; the HTTP client is reqwest (rustls, webpki roots): TLS to
//! any cloud endpoint, connection reuse and proxies from the environment, none of which is worth
//! writing again on bare hyper. Redirects are not followed, so the key only ever goes to the URL
//! the plan names.
//!
//! The API key is read from this worker's environment (`api_key_env`) when a request is made,
//! sent only as the `Authorization` header (reqwest marks it sensitive, so no debug output shows
//! it), and scrubbed from every error text before that text leaves this module.
//!
//! Per model, at most `max_concurrency` requests are in flight from this worker (the coordinator
//! also caps them across the farm); each request has the plan's timeout; 429, 5xx and unanswered
//! requests are retried `retries` times ([`retry`]), and what is left after that is the job's
//! failure with the HTTP reason.

mod retry;
mod sse;
mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use benchfarm_proto::v1 as pb;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use sse::{SseDecoder, SseEvent};
use stream::Completion;

/// One remote job's request.
#[derive(Debug)]
pub struct RemoteRequest<'a> {
    pub spec: &'a pb::RemoteModel,
    /// The model's identity in the farm (its "sha256"): concurrency is limited per model.
    pub model_key: &'a str,
    /// The same chat messages the local engine formats: the task's system message (none when
    /// empty) and its prompt.
    pub system: &'a str,
    pub prompt: &'a str,
    pub max_tokens: u32,
    /// 0 (or less) means greedy: sent as temperature 0.
    pub temperature: f32,
    pub seed: u64,
    pub cancel: &'a AtomicBool,
}

/// A remote job's answer with its measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteAnswer {
    /// The graded text: the content without any reasoning.
    pub answer: String,
    pub timings: pb::Timings,
    /// "eos", "max_tokens", or the endpoint's finish reason.
    pub stop: String,
    pub call: pb::RemoteCall,
}

/// Calls remote endpoints for the slots of one worker.
pub struct RemoteCaller {
    runtime: Option<tokio::runtime::Runtime>,
    client: reqwest::Client,
    /// Per (model, limit): the requests this worker may have in flight.
    limits: Mutex<HashMap<(String, u32), Arc<Semaphore>>>,
}

impl std::fmt::Debug for RemoteCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCaller").finish_non_exhaustive()
    }
}

impl Drop for RemoteCaller {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime: let it go in the
        // background instead.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// How one request went wrong.
enum Failure {
    /// Worth another try (429, 5xx, no answer), after `after` if the server said.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Not worth one (other 4xx, redirects, not an event stream).
    Final(String),
    Cancelled,
}

impl RemoteCaller {
    pub fn new() -> Result<RemoteCaller, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("remote-http")
            .enable_all()
            .build()
            .map_err(|e| format!("starting the remote-call runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("benchfarm-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(RemoteCaller {
            runtime: Some(runtime),
            client,
            limits: Mutex::new(HashMap::new()),
        })
    }

    /// Runs one remote job to an answer or a reason. Blocks the calling (slot) thread.
    pub fn call(&self, req: &RemoteRequest<'_>) -> Result<RemoteAnswer, String> {
        let runtime = self.runtime.as_ref().ok_or("the remote runtime is gone")?;
        runtime.block_on(self.call_async(req))
    }

    fn limit(&self, model: &str, max: u32) -> Arc<Semaphore> {
        let mut limits = match self.limits.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(
            limits
                .entry((model.to_string(), max))
                .or_insert_with(|| Arc::new(Semaphore::new(max.max(1) as usize))),
        )
    }

    async fn call_async(&self, req: &RemoteRequest<'_>) -> Result<RemoteAnswer, String> {
        let started = Instant::now();
        let spec = req.spec;
        let key = match spec.api_key_env.as_str() {
            "" => None,
            var => Some(
                std::env::var(var)
                    .ok()
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| format!("{var} is not set in this worker's environment"))?,
            ),
        };
        let scrub = |text: String| scrub(text, key.as_deref());
        let limit = self.limit(req.model_key, spec.max_concurrency);
        let _permit = match until_cancelled(req.cancel, limit.acquire_owned()).await {
            Some(Ok(permit)) => permit,
            Some(Err(_)) => return Err("the concurrency limit closed".into()),
            None => return Err("cancelled".into()),
        };
        let url = format!("{}/chat/completions", spec.url);
        let body = request_body(req);
        let timeout = Duration::from_millis(u64::from(spec.timeout_ms.max(1)));
        let mut reasons: Vec<String> = Vec::new();
        loop {
            let sent = Instant::now();
            let outcome = self
                .request(&url, &body, key.as_deref(), timeout, req.cancel, sent)
                .await;
            let (reason, after) = match outcome {
                Ok((status, completion)) => {
                    return Ok(answer(req, &completion, status, reasons, started));
                }
                Err(Failure::Cancelled) => return Err("cancelled".into()),
                Err(Failure::Final(reason)) => {
                    return Err(scrub(with_retries(&reason, &reasons)));
                }
                Err(Failure::Retry { reason, after }) => (scrub(reason), after),
            };
            let retry = u32::try_from(reasons.len()).unwrap_or(u32::MAX);
            if retry >= spec.retries {
                return Err(with_retries(&reason, &reasons));
            }
            let wait = retry::wait_before(retry, after);
            warn!(model = %spec.model, retry = retry + 1, of = spec.retries, wait_ms = wait.as_millis() as u64,
                  reason = %reason, "remote request failed; retrying");
            reasons.push(format!("{reason}; waited {:.1} s", wait.as_secs_f64()));
            if until_cancelled(req.cancel, tokio::time::sleep(wait))
                .await
                .is_none()
            {
                return Err("cancelled".into());
            }
        }
    }

    /// One HTTP request, streamed to the end.
    async fn request(
        &self,
        url: &str,
        body: &[u8],
        key: Option<&str>,
        timeout: Duration,
        cancel: &AtomicBool,
        sent: Instant,
    ) -> Result<(u16, Completion), Failure> {
        let mut request = self
            .client
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(body.to_vec());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let mut response = until_cancelled(cancel, request.send())
            .await
            .ok_or(Failure::Cancelled)?
            .map_err(|e| transport(&e, timeout))?;
        let status = response.status();
        if !status.is_success() {
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry::retry_after(v, SystemTime::now()));
            let code = status.as_u16();
            let mut reason = format!("HTTP {code} {}", status.canonical_reason().unwrap_or(""))
                .trim_end()
                .to_string();
            if let Some(after) = after {
                reason.push_str(&format!(" (Retry-After {} s)", after.as_secs()));
            }
            let excerpt = excerpt(response, cancel).await;
            if !excerpt.is_empty() {
                reason.push_str(&format!(": {excerpt}"));
            }
            return Err(if retry::retryable_status(code) {
                Failure::Retry { reason, after }
            } else if status.is_redirection() {
                Failure::Final(format!(
                    "{reason}: redirects are not followed (the key goes only to the plan's URL); give the final URL"
                ))
            } else {
                Failure::Final(reason)
            });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !content_type.starts_with("text/event-stream") {
            return Err(Failure::Final(format!(
                "HTTP {} but the response is {content_type:?}, not an event stream: the endpoint ignored `stream: true`",
                status.as_u16()
            )));
        }
        let mut decoder = SseDecoder::default();
        let mut completion = Completion::default();
        let mut done = false;
        while !done {
            let chunk = until_cancelled(cancel, response.chunk())
                .await
                .ok_or(Failure::Cancelled)?
                .map_err(|e| transport(&e, timeout))?;
            let at_ms = sent.elapsed().as_secs_f64() * 1000.0;
            let events = match &chunk {
                Some(bytes) => decoder.push(bytes),
                None => decoder.finish(),
            };
            for event in events {
                match event {
                    SseEvent::Data(data) => {
                        completion
                            .apply(&data, at_ms)
                            .map_err(|reason| Failure::Retry {
                                reason,
                                after: None,
                            })?;
                    }
                    SseEvent::Done => done = true,
                }
            }
            if chunk.is_none() {
                break;
            }
        }
        if !done && completion.finish_reason.is_none() {
            return Err(Failure::Retry {
                reason: "the stream ended before the completion did".into(),
                after: None,
            });
        }
        Ok((status.as_u16(), completion))
    }
}

/// The chat-completions request: the local engine's messages, greedy at temperature 0, the
/// job's seed (31 bits: what every endpoint accepts as an integer seed).
fn request_body(req: &RemoteRequest<'_>) -> Vec<u8> {
    let mut messages = Vec::with_capacity(2);
    if !req.system.is_empty() {
        messages.push(serde_json::json!({"role": "system", "content": req.system}));
    }
    messages.push(serde_json::json!({"role": "user", "content": req.prompt}));
    let temperature = if req.temperature > 0.0 && req.temperature.is_finite() {
        f64::from(req.temperature)
    } else {
        0.0
    };
    serde_json::json!({
        "model": req.spec.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": req.max_tokens.max(1),
        "temperature": temperature,
        "seed": req.seed & 0x7fff_ffff,
    })
    .to_string()
    .into_bytes()
}

/// The job's answer and measurements from a finished completion.
fn answer(
    req: &RemoteRequest<'_>,
    completion: &Completion,
    status: u16,
    reasons: Vec<String>,
    started: Instant,
) -> RemoteAnswer {
    let estimate = benchfarm_engine::estimate_tokens(req.system)
        .saturating_add(benchfarm_engine::estimate_tokens(req.prompt));
    let outcome = completion.outcome(estimate);
    let first = completion.first_token_ms;
    let gen_ms = match (first, completion.last_token_ms) {
        (Some(a), Some(b)) => (b - a).max(0.0),
        _ => 0.0,
    };
    // Tokens after the first, over the time between the first and the last: the inter-token
    // rate, as llama-bench's tg measures decoding (the first token comes with the prompt).
    let decode_tokens = if gen_ms > 0.0 {
        outcome.gen_tokens.saturating_sub(1)
    } else {
        0
    };
    let timings = pb::Timings {
        load_ms: 0.0,
        cold: false,
        prompt_tokens: outcome.prompt_tokens,
        prompt_ms: completion.server_prompt_ms.unwrap_or(0.0),
        ttft_ms: first.unwrap_or(f64::NAN),
        gen_tokens: outcome.gen_tokens,
        gen_ms,
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
        decode_tokens,
        decode_ms: if decode_tokens > 0 { gen_ms } else { 0.0 },
    };
    let host = req
        .spec
        .url
        .split_once("://")
        .map_or(req.spec.url.as_str(), |(_, r)| r)
        .split('/')
        .next()
        .unwrap_or_default();
    info!(model = %req.spec.model, status, retries = reasons.len(), ttft_ms = timings.ttft_ms as u64,
          gen_tokens = timings.gen_tokens, estimated = outcome.estimated, "remote completion");
    RemoteAnswer {
        answer: outcome.answer,
        timings,
        stop: completion.stop(),
        call: pb::RemoteCall {
            endpoint: format!("{host} {}", req.spec.model),
            http_status: u32::from(status),
            retries: u32::try_from(reasons.len()).unwrap_or(u32::MAX),
            retry_reasons: reasons,
            tokens_estimated: outcome.estimated,
            reasoning: outcome.reasoning,
            reasoning_tokens: outcome.reasoning_tokens,
        },
    }
}

/// "REASON, after N retries (first; second)" or just the reason.
fn with_retries(reason: &str, earlier: &[String]) -> String {
    if earlier.is_empty() {
        reason.to_string()
    } else {
        format!(
            "{reason}, after {} retries ({})",
            earlier.len(),
            earlier.join("; ")
        )
    }
}

/// A transport error (no HTTP answer, or the body cut off) with its causes.
fn transport(e: &reqwest::Error, timeout: Duration) -> Failure {
    let reason = if e.is_timeout() {
        format!("timed out after {:.1} s", timeout.as_secs_f64())
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    };
    Failure::Retry {
        reason,
        after: None,
    }
}

/// The start of an error response's body, on one line (it says what the endpoint objects to).
async fn excerpt(mut response: reqwest::Response, cancel: &AtomicBool) -> String {
    const MAX: usize = 300;
    let mut bytes = Vec::new();
    while bytes.len() < MAX {
        match until_cancelled(cancel, response.chunk()).await {
            Some(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` with every occurrence of the key replaced: an endpoint may echo a rejected key.
fn scrub(text: String, key: Option<&str>) -> String {
    match key {
        Some(k) if !k.is_empty() => text.replace(k, "[redacted]"),
        _ => text,
    }
}

/// Runs `fut` until it ends or `cancel` is set (polled every 50 ms); `None` when cancelled.
async fn until_cancelled<F: std::future::Future>(cancel: &AtomicBool, fut: F) -> Option<F::Output> {
    let watch = async {
        while !cancel.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        out = fut => Some(out),
        () = watch => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_local_engines_messages_and_greedy_sampling() {
        let spec = pb::RemoteModel {
            url: "http://h/v1".into(),
            model: "m".into(),
            ..Default::default()
        };
        let cancel = AtomicBool::new(false);
        let req = RemoteRequest {
            spec: &spec,
            model_key: "k",
            system: "be brief",
            prompt: "list files",
            max_tokens: 64,
            temperature: 0.0,
            seed: u64::MAX,
            cancel: &cancel,
        };
        let body: serde_json::Value = serde_json::from_slice(&request_body(&req)).unwrap();
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "list files");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(body["seed"], 0x7fff_ffff);
        let no_system = RemoteRequest { system: "", ..req };
        let body: serde_json::Value = serde_json::from_slice(&request_body(&no_system)).unwrap();
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn keys_are_scrubbed_and_retries_listed() {
        assert_eq!(
            scrub("HTTP 401: bad key sk-123".into(), Some("sk-123")),
            "HTTP 401: bad key [redacted]"
        );
        assert_eq!(scrub("x".into(), None), "x");
        assert_eq!(
            with_retries("HTTP 500", &["HTTP 500; waited 1.0 s".into()]),
            "HTTP 500, after 1 retries (HTTP 500; waited 1.0 s)"
        );
    }
}
