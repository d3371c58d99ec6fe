//! Turning (system, user) messages into the prompt text a model expects.
//!
//! The GGUF's own chat template is preferred. Base models such as Gemma 3 270M ship without one,
//! and llama.cpp's template engine only recognises known template families; in both cases the
//! prompt is formatted with llama.cpp's built-in template for the model's architecture. Which one
//! was used is reported, because it changes what the model sees.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};

use crate::EngineError;

/// The prompt text and a description of the template that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormattedPrompt {
    pub text: String,
    /// "model" or "builtin:<name>".
    pub template: String,
}

/// The llama.cpp built-in template used for an architecture whose GGUF has no usable template.
pub fn builtin_template_for(architecture: Option<&str>) -> &'static str {
    match architecture {
        Some(a) if a.starts_with("gemma") => "gemma",
        Some(a) if a.starts_with("phi3") => "phi3",
        _ => "chatml",
    }
}

/// Formats `system` (when non-empty) and `user` for `model`, ending with the assistant prefix.
pub(crate) fn format_prompt(
    model: &LlamaModel,
    architecture: Option<&str>,
    system: &str,
    user: &str,
) -> Result<FormattedPrompt, EngineError> {
    let message = |role: &str, content: &str| {
        LlamaChatMessage::new(role.to_string(), content.to_string()).map_err(|e| {
            EngineError::InvalidRequest(format!("{role} message contains a NUL byte: {e}"))
        })
    };
    let mut messages = Vec::with_capacity(2);
    if !system.is_empty() {
        messages.push(message("system", system)?);
    }
    messages.push(message("user", user)?);

    if let Ok(own) = model.chat_template(None) {
        match model.apply_chat_template(&own, &messages, true) {
            Ok(text) => {
                return Ok(FormattedPrompt {
                    text,
                    template: "model".into(),
                });
            }
            // llama.cpp recognises templates by family; an unrecognised one cannot be applied.
            Err(error) => tracing::warn!(%error, "model chat template not usable, using built-in"),
        }
    }
    let name = builtin_template_for(architecture);
    let builtin = LlamaChatTemplate::new(name)
        .map_err(|e| EngineError::Llama(format!("built-in template {name}: {e}")))?;
    let text = model
        .apply_chat_template(&builtin, &messages, true)
        .map_err(|e| EngineError::Llama(format!("applying built-in template {name}: {e}")))?;
    Ok(FormattedPrompt {
        text,
        template: format!("builtin:{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_follow_the_architecture() {
        assert_eq!(builtin_template_for(Some("gemma3")), "gemma");
        assert_eq!(builtin_template_for(Some("gemma")), "gemma");
        assert_eq!(builtin_template_for(Some("phi3")), "phi3");
        assert_eq!(builtin_template_for(Some("llama")), "chatml");
        assert_eq!(builtin_template_for(None), "chatml");
    }
}
