//! The message of a caught panic, for the job failure it becomes. Its own module because both the
//! slot threads (`runner.rs`) and the engine host process (`host.rs`) catch panics, and the host
//! must not depend on the runner (the runner drives the supervisor, which drives the host).

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`), else
/// "unknown panic".
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_payload_and_others() {
        let text = |f: fn()| panic_text(std::panic::catch_unwind(f).unwrap_err().as_ref());
        assert_eq!(text(|| panic!("plain")), "plain");
        assert_eq!(text(|| panic!("formatted {}", 7)), "formatted 7");
        assert_eq!(
            panic_text(
                std::panic::catch_unwind(|| std::panic::panic_any(3u8))
                    .unwrap_err()
                    .as_ref()
            ),
            "unknown panic"
        );
    }
}
