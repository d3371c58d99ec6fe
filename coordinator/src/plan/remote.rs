//! A plan's remote model: `remote = { url, model, api_key_env, price_per_mtok, max_concurrency,
//! timeout, retries }`, checked field by field before anything is submitted.
//!
//! The plan names the API key's *environment variable*, never the key: the key lives only in the
//! environment of the workers that call the endpoint, so it never crosses the client, the
//! coordinator or its store. The checks here enforce that shape (no credentials in the URL, a
//! variable name where the key would go) with an error naming the field.

use benchfarm_modelfile::{is_key_env_name, remote_identity as identity};
use benchfarm_proto::v1 as pb;
use serde::Deserialize;

/// Requests in flight at once when the plan does not say.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 4;
/// Seconds one request may take when the plan does not say.
pub const DEFAULT_TIMEOUT_SECONDS: f64 = 120.0;
/// Retries of a 429/5xx/unanswered request when the plan does not say.
pub const DEFAULT_RETRIES: u32 = 3;

/// `remote = { ... }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteEntry {
    url: String,
    model: String,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    price_per_mtok: Option<PriceEntry>,
    #[serde(default)]
    max_concurrency: Option<i64>,
    /// Seconds.
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    retries: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    input: f64,
    output: f64,
}

/// A field error: the field under `remote` and what is wrong with it.
pub type FieldError = (String, String);

/// Resolves a `remote` table into the model reference the client submits. `name` is the entry's
/// `name` (default: the endpoint's model id).
pub fn remote_model(value: toml::Value, name: Option<&str>) -> Result<pb::ModelRef, FieldError> {
    check_types(&value)?;
    let in_price = value
        .get("price_per_mtok")
        .and_then(toml::Value::as_table)
        .is_some_and(|t| !(t.contains_key("input") && t.contains_key("output")));
    let entry: RemoteEntry = value.try_into().map_err(|e: toml::de::Error| {
        let message = e.message().to_string();
        let prefix = if in_price {
            "remote.price_per_mtok"
        } else {
            "remote"
        };
        let field = message
            .split('`')
            .nth(1)
            .map_or_else(|| prefix.to_string(), |f| format!("{prefix}.{f}"));
        (field, message)
    })?;
    let err = |field: &str, message: String| (format!("remote.{field}"), message);

    let url = check_url(entry.url.trim()).map_err(|m| err("url", m))?;
    let model = entry.model.trim().to_string();
    if model.is_empty() {
        return Err(err(
            "model",
            "the endpoint's model id must not be empty".into(),
        ));
    }
    let api_key_env = match entry.api_key_env.as_deref().map(str::trim) {
        None | Some("") => String::new(),
        Some(var) => check_key_env(var).map_err(|m| err("api_key_env", m))?,
    };
    let price_per_mtok = match entry.price_per_mtok {
        None => None,
        Some(p) => {
            for (field, value) in [("input", p.input), ("output", p.output)] {
                if !value.is_finite() || value < 0.0 {
                    return Err(err(
                        &format!("price_per_mtok.{field}"),
                        format!("{value} is not a price: dollars per million tokens, 0 or more"),
                    ));
                }
            }
            Some(pb::Price {
                input: p.input,
                output: p.output,
            })
        }
    };
    let max_concurrency = match entry.max_concurrency {
        None => DEFAULT_MAX_CONCURRENCY,
        Some(n @ 1..=1024) => n as u32,
        Some(n) => {
            return Err(err(
                "max_concurrency",
                format!("{n}: must be between 1 and 1024 requests in flight"),
            ));
        }
    };
    let timeout = entry.timeout.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    if !timeout.is_finite() || !(0.001..=3600.0).contains(&timeout) {
        return Err(err(
            "timeout",
            format!("{timeout}: seconds per request, more than 0 and at most 3600"),
        ));
    }
    let retries = match entry.retries {
        None => DEFAULT_RETRIES,
        Some(n @ 0..=10) => n as u32,
        Some(n) => return Err(err("retries", format!("{n}: must be between 0 and 10"))),
    };
    Ok(pb::ModelRef {
        name: name.unwrap_or(&model).to_string(),
        sha256: identity(&url, &model),
        size_bytes: 0,
        // The endpoint holds its own context; the worker does not fit a remote prompt to it.
        context_length: 0,
        source: Some(pb::model_ref::Source::Remote(pb::RemoteModel {
            url,
            model,
            api_key_env,
            price_per_mtok,
            max_concurrency,
            timeout_ms: (timeout * 1000.0).round() as u32,
            retries,
        })),
    })
}

/// Each known field's type, checked first so that a wrong one is named (serde's message for a
/// type mismatch does not say which field it was).
fn check_types(value: &toml::Value) -> Result<(), FieldError> {
    let Some(table) = value.as_table() else {
        return Err((
            "remote".into(),
            "expected a table: remote = { url = \"...\", model = \"...\" }".into(),
        ));
    };
    let number = |v: &toml::Value| v.is_integer() || v.is_float();
    for (key, v) in table {
        let (ok, expected) = match key.as_str() {
            "url" | "model" | "api_key_env" => (v.is_str(), "a string"),
            "max_concurrency" | "retries" => (v.is_integer(), "a whole number"),
            "timeout" => (number(v), "a number of seconds"),
            "price_per_mtok" => match v.as_table() {
                Some(t) => {
                    for (k, p) in t {
                        if !number(p) {
                            return Err((
                                format!("remote.price_per_mtok.{k}"),
                                format!(
                                    "expected dollars per million tokens (a number), got {}",
                                    p.type_str()
                                ),
                            ));
                        }
                    }
                    (true, "")
                }
                None => (false, "a table { input = 3.0, output = 15.0 }"),
            },
            _ => (true, ""), // unknown fields are named by the deserializer
        };
        if !ok {
            return Err((
                format!("remote.{key}"),
                format!("expected {expected}, got {}", v.type_str()),
            ));
        }
    }
    Ok(())
}

/// An http(s) base URL without credentials, query or fragment; trailing `/` removed.
fn check_url(url: &str) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{url:?} is not a URL; expected e.g. https://api.example.com/v1"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "{url:?}: only http and https endpoints are supported"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "the URL carries credentials; put the key in the calling workers' environment and \
             name its variable with api_key_env"
                .into(),
        );
    }
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!(
            "{url:?}: a base URL has no query or fragment (requests go to {{url}}/chat/completions)"
        ));
    }
    let url = url.trim_end_matches('/');
    if url.ends_with("/chat/completions") {
        return Err(format!(
            "{url:?}: give the base URL (e.g. .../v1); /chat/completions is appended to it"
        ));
    }
    Ok(url.to_string())
}

/// An environment variable name of the form workers report: `[A-Z_][A-Z0-9_]*` ending in `_KEY`
/// or `_TOKEN` (PROVIDER_API_KEY, HF_TOKEN). Workers say which such variables they have set
/// without listing the rest of their environment, so only these names can match a worker.
fn check_key_env(var: &str) -> Result<String, String> {
    if !is_key_env_name(var) {
        let hint = if var.len() > 20 && !var.contains('_') {
            " (this looks like a key itself: a plan names the variable, never the key)"
        } else {
            ""
        };
        return Err(format!(
            "{var:?} is not an API-key variable name: expected upper-case letters, digits and _, \
             ending in _KEY or _TOKEN, e.g. PROVIDER_API_KEY{hint}"
        ));
    }
    Ok(var.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Value {
        toml::from_str::<toml::Table>(&format!("r = {text}")).unwrap()["r"].clone()
    }

    fn remote(text: &str) -> Result<pb::RemoteModel, FieldError> {
        match remote_model(table(text), None)?.source {
            Some(pb::model_ref::Source::Remote(r)) => Ok(r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_entry_resolves_with_its_defaults() {
        let r = remote(
            r#"{ url = "https://api.example.com/v1/", model = "p/m", api_key_env = "P_API_KEY",
                 price_per_mtok = { input = 3, output = 15.5 } }"#,
        )
        .unwrap();
        assert_eq!(r.url, "https://api.example.com/v1");
        assert_eq!(r.api_key_env, "P_API_KEY");
        assert_eq!(
            r.price_per_mtok,
            Some(pb::Price {
                input: 3.0,
                output: 15.5
            })
        );
        assert_eq!(r.max_concurrency, DEFAULT_MAX_CONCURRENCY);
        assert_eq!(r.timeout_ms, 120_000);
        assert_eq!(r.retries, DEFAULT_RETRIES);
        let m = remote_model(table(r#"{ url = "http://h/v1", model = "m" }"#), None).unwrap();
        assert_eq!(m.name, "m");
        assert_eq!(m.sha256, identity("http://h/v1", "m"));
        assert_ne!(m.sha256, identity("http://h/v1", "n"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            (r#"{ model = "m" }"#, "remote.url"),
            (r#"{ url = "h/v1", model = "m" }"#, "remote.url"),
            (r#"{ url = "ftp://h", model = "m" }"#, "remote.url"),
            (r#"{ url = "https://u:p@h/v1", model = "m" }"#, "remote.url"),
            (
                r#"{ url = "https://h/v1?key=x", model = "m" }"#,
                "remote.url",
            ),
            (
                r#"{ url = "https://h/v1/chat/completions", model = "m" }"#,
                "remote.url",
            ),
            (r#"{ url = "https://h", model = " " }"#, "remote.model"),
            (
                r#"{ url = "https://h", model = "m", api_key_env = "sk-abc123def456ghi789jkl" }"#,
                "remote.api_key_env",
            ),
            (
                r#"{ url = "https://h", model = "m", api_key_env = "HOME" }"#,
                "remote.api_key_env",
            ),
            (
                r#"{ url = "https://h", model = "m", price_per_mtok = { input = -1, output = 1 } }"#,
                "remote.price_per_mtok.input",
            ),
            (
                r#"{ url = "https://h", model = "m", price_per_mtok = { input = 1 } }"#,
                "remote.price_per_mtok.output",
            ),
            (
                r#"{ url = "https://h", model = "m", max_concurrency = 0 }"#,
                "remote.max_concurrency",
            ),
            (
                r#"{ url = "https://h", model = "m", timeout = 0 }"#,
                "remote.timeout",
            ),
            (
                r#"{ url = "https://h", model = "m", timeout = "1m" }"#,
                "remote.timeout",
            ),
            (r#"{ url = "https://h", model = 7 }"#, "remote.model"),
            (
                r#"{ url = "https://h", model = "m", price_per_mtok = { input = "3", output = 1 } }"#,
                "remote.price_per_mtok.input",
            ),
            (
                r#"{ url = "https://h", model = "m", retries = 11 }"#,
                "remote.retries",
            ),
            (
                r#"{ url = "https://h", model = "m", api_key = "sk-1" }"#,
                "remote.api_key",
            ),
        ];
        for (text, field) in cases {
            let (got, message) = remote(text).unwrap_err();
            assert_eq!(got, field, "{text}: {message}");
            assert!(!message.is_empty());
        }
        let (_, message) = remote(
            r#"{ url = "https://h", model = "m", api_key_env = "sk-abc123def456ghi789jkl" }"#,
        )
        .unwrap_err();
        assert!(message.contains("looks like a key"), "{message}");
    }
}
