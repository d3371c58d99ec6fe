//! The two rules about remote models that the client, the coordinator and the worker must apply
//! alike: a remote model's identity, and which environment variable names may hold its API key.

/// A remote model's identity in the farm (its "sha256"): a digest of the endpoint and the model
/// id, so the same endpoint and model in two plans is one model.
pub fn remote_identity(url: &str, model: &str) -> String {
    crate::sha256_bytes(format!("remote\n{url}\n{model}").as_bytes())
}

/// Whether `var` may name an API key: `[A-Z_][A-Z0-9_]*` ending in `_KEY` or `_TOKEN`
/// (PROVIDER_API_KEY, HF_TOKEN). A worker tells the coordinator which such variables it has set
/// — names only, never values, and none of the rest of its environment — so a plan's
/// `api_key_env` must be one of these names to ever match a worker.
pub fn is_key_env_name(var: &str) -> bool {
    let mut chars = var.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && (var.ends_with("_KEY") || var.ends_with("_TOKEN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_env_names() {
        for ok in ["OPENAI_API_KEY", "HF_TOKEN", "_X_KEY", "P2_KEY"] {
            assert!(is_key_env_name(ok), "{ok}");
        }
        for bad in [
            "",
            "KEY",
            "openai_api_key",
            "PATH",
            "A-B_KEY",
            "X_KEYS",
            "sk-abc_KEY",
        ] {
            assert!(!is_key_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn identities_differ_by_url_and_model() {
        assert_eq!(remote_identity("u", "m"), remote_identity("u", "m"));
        assert_ne!(remote_identity("u", "m"), remote_identity("u", "n"));
        assert_ne!(remote_identity("u", "m"), remote_identity("v", "m"));
        assert_eq!(remote_identity("u", "m").len(), 64);
    }
}
