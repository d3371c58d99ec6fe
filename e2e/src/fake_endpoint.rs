//! A scripted chat-completions endpoint on 127.0.0.1, for fault injection only: it answers each
//! request with the next step of its script (an error status with an optional `Retry-After`, or
//! a streamed completion with a given usage), and keeps every request it got so a test can check
//! what the worker sent (the key in `Authorization`, the messages, the sampling parameters).
//!
//! HTTP/1.1 by hand, one request per connection (`Connection: close`): enough for reqwest, and
//! no server dependency for the tests. The real endpoint the remote engine is tested against is
//! llama.cpp's own llama-server (tests/remote_llama.rs).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Step {
    /// An error status, with `Retry-After: N` when given.
    Status(u16, Option<u32>),
    /// A 200 event stream: `content` in one chunk per piece, then the usage and `[DONE]`.
    Stream {
        content: Vec<String>,
        prompt_tokens: u32,
        completion_tokens: u32,
    },
}

/// A request as the endpoint received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The endpoint: its URL (`http://127.0.0.1:PORT/v1`) and what it received.
#[derive(Clone)]
pub struct FakeEndpoint {
    pub url: String,
    script: Arc<Mutex<VecDeque<Step>>>,
    /// What to answer once the script is used up.
    fallback: Step,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl FakeEndpoint {
    /// Starts serving `script`, then `fallback` for every later request.
    pub async fn start(script: Vec<Step>, fallback: Step) -> FakeEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let endpoint = FakeEndpoint {
            url,
            script: Arc::new(Mutex::new(script.into())),
            fallback,
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let serving = endpoint.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let endpoint = serving.clone();
                tokio::spawn(async move { endpoint.serve(socket).await });
            }
        });
        endpoint
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn serve(&self, mut socket: tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let Ok(n) = socket.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("")
            .to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let Ok(n) = socket.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = serde_json::from_slice(&buf[head_end..]).unwrap_or(serde_json::Value::Null);
        self.received.lock().unwrap().push(Received {
            path,
            headers,
            body,
        });
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.fallback.clone());
        let response = match step {
            Step::Status(code, retry_after) => {
                let retry = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
                let text = format!("{{\"error\":{{\"message\":\"scripted {code}\"}}}}");
                format!(
                    "HTTP/1.1 {code} Scripted\r\nContent-Type: application/json\r\n{retry}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                )
            }
            Step::Stream {
                content,
                prompt_tokens,
                completion_tokens,
            } => {
                let mut events = String::new();
                let chunk = |delta: serde_json::Value, finish: Option<&str>| {
                    format!(
                        "data: {}\n\n",
                        serde_json::json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                    )
                };
                events.push_str(&chunk(
                    serde_json::json!({"role": "assistant", "content": ""}),
                    None,
                ));
                for piece in &content {
                    events.push_str(&chunk(serde_json::json!({"content": piece}), None));
                }
                events.push_str(&chunk(serde_json::json!({}), Some("stop")));
                events.push_str(&format!(
                    "data: {}\n\ndata: [DONE]\n\n",
                    serde_json::json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}})
                ));
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{events}",
                    events.len()
                )
            }
        };
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
    }
}
