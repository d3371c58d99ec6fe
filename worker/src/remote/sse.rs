//! Server-sent events, as far as chat-completions streaming uses them: `data:` lines, events
//! ended by a blank line, `data: [DONE]` at the end.
//!
//! Bytes arrive in arbitrary pieces (a UTF-8 character or a line may be split between two reads),
//! so the decoder buffers until it has whole lines. Comments (`:` lines, keep-alives some
//! routers send) and the other fields (`event:`, `id:`, `retry:`) carry nothing a chat completion
//! needs and are skipped; multi-line data is joined with `\n` as the SSE spec says.

/// Incremental decoder: push bytes, take whole events' data.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    data: Vec<String>,
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// The event's data (a JSON chunk, for chat completions).
    Data(String),
    /// `data: [DONE]`: the stream is complete.
    Done,
}

impl SseDecoder {
    /// Feeds `bytes` and returns the events they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            self.line(&line, &mut events);
        }
        events
    }

    /// The event left when the stream ends without a final blank line.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if !self.buffer.is_empty() {
            let rest = std::mem::take(&mut self.buffer);
            let line = String::from_utf8_lossy(&rest).into_owned();
            self.line(line.trim_end_matches('\r'), &mut events);
        }
        self.line("", &mut events);
        events
    }

    fn line(&mut self, line: &str, events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                let data = std::mem::take(&mut self.data).join("\n");
                events.push(if data.trim() == "[DONE]" {
                    SseEvent::Done
                } else {
                    SseEvent::Data(data)
                });
            }
            return;
        }
        if let Some(value) = line.strip_prefix("data:") {
            // One optional space after the colon belongs to the syntax, not the value.
            self.data
                .push(value.strip_prefix(' ').unwrap_or(value).to_string());
        }
        // Comments (":...") and event/id/retry fields: nothing for a chat completion.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_decode_whole() {
        let stream = "data: {\"a\":1}\n\n: keep-alive\n\ndata:{\"b\":\"é\"}\r\n\r\nevent: x\ndata: l1\ndata: l2\n\ndata: [DONE]\n\n";
        let bytes = stream.as_bytes();
        // Every split point, including inside the two-byte é.
        for cut in 0..bytes.len() {
            let mut d = SseDecoder::default();
            let mut events = d.push(&bytes[..cut]);
            events.extend(d.push(&bytes[cut..]));
            events.extend(d.finish());
            assert_eq!(
                events,
                vec![
                    SseEvent::Data("{\"a\":1}".into()),
                    SseEvent::Data("{\"b\":\"é\"}".into()),
                    SseEvent::Data("l1\nl2".into()),
                    SseEvent::Done,
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_last_event_without_blank_line_is_kept() {
        let mut d = SseDecoder::default();
        assert!(d.push(b"data: {\"x\":1}").is_empty());
        assert_eq!(d.finish(), vec![SseEvent::Data("{\"x\":1}".into())]);
    }
}
