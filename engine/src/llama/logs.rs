//! llama.cpp's log lines: routed into `tracing`, and the recent warnings/errors captured so a
//! failure can say *why* (llama.cpp reports "error loading model: ..." only through its log).
//!
//! `llama-cpp-2`'s `send_logs_to_tracing` delivers each llama.cpp line as a tracing event
//! (target "llama-cpp-2") to the *current* dispatcher of the calling thread. [`LlamaLogs::run`]
//! installs, while it runs, a thread-local dispatcher that
//!
//! - re-emits llama.cpp's INFO/DEBUG chatter at DEBUG (and WARN/ERROR as such) under target
//!   "llama.cpp" to the dispatcher that was current before, and
//! - keeps the last few WARN/ERROR lines, returned to the caller for its error message.
//!
//! Every other event and span passes straight through to the previous dispatcher.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, FieldSet, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};
use tracing_core::callsite::Callsite;
use tracing_core::metadata::Kind;

/// The target `llama-cpp-2` gives the events it forwards from llama.cpp.
const LLAMA_TARGET: &str = "llama-cpp-2";
/// How many recent warning/error lines are kept.
const KEEP_LINES: usize = 12;

/// A capture of llama.cpp's recent warning/error lines, filled while [`LlamaLogs::run`] runs.
#[derive(Debug, Default)]
pub(crate) struct LlamaLogs {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl LlamaLogs {
    /// Runs `f` with llama.cpp's logs routed as described in the module docs.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let outer = tracing::dispatcher::get_default(Dispatch::clone);
        let tee = Dispatch::new(LlamaLogTee {
            outer,
            lines: Arc::clone(&self.lines),
        });
        tracing::dispatcher::with_default(&tee, f)
    }

    /// Removes and returns the captured lines, oldest first (at most [`KEEP_LINES`]).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(PoisonError::into_inner)).into()
    }

    /// The captured lines joined into one reason, or `fallback` when llama.cpp said nothing.
    pub fn reason(&self, fallback: &str) -> String {
        let lines = self.take();
        if lines.is_empty() {
            fallback.to_string()
        } else {
            lines.join("; ")
        }
    }
}

struct LlamaLogTee {
    outer: Dispatch,
    lines: Arc<Mutex<VecDeque<String>>>,
}

/// Pulls the `message` and `module` fields out of a forwarded llama.cpp event.
#[derive(Default)]
struct LlamaLine {
    message: String,
    module: Option<String>,
}

impl Visit for LlamaLine {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.trim_end().to_string(),
            "module" => self.module = Some(value.to_string()),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && self.message.is_empty() {
            self.message = format!("{value:?}");
        }
    }
}

impl LlamaLogTee {
    fn on_llama_line(&self, event: &Event<'_>) {
        let mut line = LlamaLine::default();
        event.record(&mut line);
        let level = *event.metadata().level();
        if level <= Level::WARN && !line.message.is_empty() {
            let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            if lines.len() == KEEP_LINES {
                lines.pop_front();
            }
            lines.push_back(line.message.clone());
        }
        // This runs inside a dispatch, where tracing's macros cannot reach any subscriber, so the
        // re-leveled event is built on a static callsite and handed to the outer dispatcher.
        let callsite = if level == Level::ERROR {
            &ERROR_CALLSITE
        } else if level == Level::WARN {
            &WARN_CALLSITE
        } else {
            &DEBUG_CALLSITE
        };
        let meta = callsite.metadata();
        if !self.outer.enabled(meta) {
            return;
        }
        let fields = meta.fields();
        let (Some(message_field), Some(module_field)) =
            (fields.field("message"), fields.field("module"))
        else {
            return;
        };
        let module = line.module.as_deref().unwrap_or("llama.cpp");
        let message = line.message.as_str();
        let values = [
            (&message_field, Some(&message as &dyn tracing::Value)),
            (&module_field, Some(&module as &dyn tracing::Value)),
        ];
        self.outer
            .event(&Event::new(meta, &fields.value_set(&values)));
    }
}

/// A static event callsite for re-emitted llama.cpp lines (target "llama.cpp").
struct LineCallsite {
    meta: &'static Metadata<'static>,
}

impl Callsite for LineCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        self.meta
    }
}

macro_rules! line_callsite {
    ($callsite:ident, $meta:ident, $level:expr) => {
        static $callsite: LineCallsite = LineCallsite { meta: &$meta };
        static $meta: Metadata<'static> = Metadata::new(
            "llama.cpp log line",
            "llama.cpp",
            $level,
            Some(file!()),
            Some(line!()),
            Some(module_path!()),
            FieldSet::new(
                &["message", "module"],
                tracing_core::identify_callsite!(&$callsite),
            ),
            Kind::EVENT,
        );
    };
}
line_callsite!(DEBUG_CALLSITE, DEBUG_META, Level::DEBUG);
line_callsite!(WARN_CALLSITE, WARN_META, Level::WARN);
line_callsite!(ERROR_CALLSITE, ERROR_META, Level::ERROR);

impl Subscriber for LlamaLogTee {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // "Sometimes" keeps `enabled` consulted per event while this dispatcher is alive, so
        // neither this filter nor the outer one gets cached into a callsite.
        let _ = self.outer.register_callsite(metadata);
        Interest::sometimes()
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == LLAMA_TARGET || self.outer.enabled(metadata)
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        None
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.outer.new_span(span)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        self.outer.record(span, values);
    }
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.outer.record_follows_from(span, follows);
    }
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() == LLAMA_TARGET {
            self.on_llama_line(event);
        } else if self.outer.enabled(event.metadata()) {
            self.outer.event(event);
        }
    }
    fn enter(&self, span: &Id) {
        self.outer.enter(span);
    }
    fn exit(&self, span: &Id) {
        self.outer.exit(span);
    }
    fn clone_span(&self, id: &Id) -> Id {
        self.outer.clone_span(id)
    }
    fn try_close(&self, id: Id) -> bool {
        self.outer.try_close(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_llama_warnings_and_errors_only() {
        let logs = LlamaLogs::default();
        logs.run(|| {
            tracing::info!(target: "llama-cpp-2", message = "loading tensors");
            tracing::warn!(target: "llama-cpp-2", message = "odd vocab\n");
            tracing::error!(target: "llama-cpp-2", message = "error loading model: bad tensor");
            tracing::error!(target: "somewhere_else", "unrelated");
        });
        assert_eq!(
            logs.take(),
            vec!["odd vocab", "error loading model: bad tensor"]
        );
        assert!(logs.take().is_empty());
    }

    #[test]
    fn keeps_only_the_latest_lines() {
        let logs = LlamaLogs::default();
        logs.run(|| {
            for i in 0..20 {
                tracing::error!(target: "llama-cpp-2", message = format!("e{i}").as_str());
            }
        });
        let lines = logs.take();
        assert_eq!(lines.len(), KEEP_LINES);
        assert_eq!(lines.first().map(String::as_str), Some("e8"));
        assert_eq!(lines.last().map(String::as_str), Some("e19"));
        assert_eq!(logs.reason("no log"), "no log");
        logs.run(|| tracing::error!(target: "llama-cpp-2", message = "a"));
        logs.run(|| tracing::warn!(target: "llama-cpp-2", message = "b"));
        assert_eq!(logs.reason("no log"), "a; b");
    }

    /// Records (target, level, message) of every event; enables everything.
    #[derive(Default)]
    struct Recorder(Arc<Mutex<Vec<(String, Level, String)>>>);

    impl Subscriber for Recorder {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = LlamaLine::default();
            event.record(&mut line);
            let meta = event.metadata();
            self.0
                .lock()
                .unwrap()
                .push((meta.target().to_string(), *meta.level(), line.message));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn relevels_llama_lines_and_passes_others_through() {
        let recorder = Recorder::default();
        let seen = Arc::clone(&recorder.0);
        tracing::subscriber::with_default(recorder, || {
            LlamaLogs::default().run(|| {
                tracing::info!(target: "llama-cpp-2", message = "print_info: n_vocab = 49152");
                tracing::error!(target: "llama-cpp-2", message = "failed to load");
                tracing::info!(target: "worker", "own event");
            });
        });
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                (
                    "llama.cpp".to_string(),
                    Level::DEBUG,
                    "print_info: n_vocab = 49152".to_string()
                ),
                (
                    "llama.cpp".to_string(),
                    Level::ERROR,
                    "failed to load".to_string()
                ),
                ("worker".to_string(), Level::INFO, "own event".to_string()),
            ]
        );
    }
}
