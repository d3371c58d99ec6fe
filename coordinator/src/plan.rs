//! The plan file: what to benchmark. Read on the client, sent to the server as content.
//!
//! ```toml
//! suite = "agent-coding"            # a built-in suite name, or a path to a suite file
//! repetitions = 3
//! seed = 42                          # optional; job seed = f(seed, task, repetition)
//! [[models]]
//! path = "models/SmolLM2-135M-Instruct.Q4_1.gguf"   # matched to workers by sha256
//! name = "SmolLM2-135M"             # optional display name (default: GGUF general.name, else file stem)
//! [[models]]
//! scripted = "oracle.toml"
//! [[models]]
//! registered = "gemma-3-270m"       # a model the coordinator holds, by name or sha256 prefix
//! [[models]]
//! name = "cloud-model"
//! remote = { url = "https://api.example.com/v1", model = "provider/model-id",
//!            api_key_env = "PROVIDER_API_KEY", price_per_mtok = { input = 3.0, output = 15.0 } }
//! ```
//! `repetitions` may be adaptive: `{ min = 3, max = 15, target_ci = 0.05, target_rsd = 0.035 }`
//! (after `min`, one more repetition of a model's tasks at a time until its targets hold, its
//! answers prove deterministic or `max` is reached; docs/report-formats.md).
//! Optional: `throughput = ["pp512", "tg128", "pg512,128"]` (llama-bench tests run as jobs beside
//! the suite's tasks, `repetitions` times per local model; with no `suite`, instead of them),
//! `placement = "spread" | "every-worker" | "per-class"` and
//! `require = { labels = { site = "lab" }, min_ram_gb = 4, arch = "aarch64" }` (which workers may run
//! the jobs), and `label` (a name to find the run by; default: the plan's path).
//! Paths are relative to the plan file. The client reads the suite and every model file (hashing GGUF
//! files, parsing scripted ones) so the server never needs the client's files, and a mistake is
//! reported here with the file, line, column and field before anything is submitted. A
//! `registered` model is resolved by the coordinator at submit (`coordinator models list` shows
//! what it holds); an unknown or ambiguous one is refused naming `models[i].registered`, and workers
//! that lack the file fetch it.

use std::ops::Range;
use std::path::Path;

use benchfarm_proto::v1 as pb;
use serde::Deserialize;
use toml::Spanned;

/// A plan error: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct PlanError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default)]
    suite: Option<Spanned<String>>,
    /// llama-bench tests run beside the suite's tasks: `["pp512", "tg128", "pg512,128"]`.
    #[serde(default)]
    throughput: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default = "one")]
    repetitions: Spanned<RepetitionsEntry>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    placement: Option<Spanned<String>>,
    #[serde(default)]
    require: Option<RequireEntry>,
    models: Spanned<Vec<ModelEntry>>,
}

/// `require = { labels = { site = "lab" }, min_ram_gb = 4, arch = "aarch64" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequireEntry {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    min_ram_gb: Option<Spanned<f64>>,
    #[serde(default)]
    arch: Option<String>,
}

fn one() -> Spanned<RepetitionsEntry> {
    Spanned::new(0..0, RepetitionsEntry::Fixed(1))
}

/// `repetitions = 3`, or adaptive: `repetitions = { min = 3, max = 15, target_ci = 0.05,
/// target_rsd = 0.035 }` (targets optional).
#[derive(Debug)]
enum RepetitionsEntry {
    Fixed(u32),
    Adaptive(AdaptiveEntry),
}

impl<'de> Deserialize<'de> for RepetitionsEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = RepetitionsEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a number of repetitions (3) or an adaptive rule ({ min = 3, max = 15, target_ci = 0.05 })",
                )
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u32::try_from(v).map(RepetitionsEntry::Fixed).map_err(|_| {
                    E::invalid_value(serde::de::Unexpected::Signed(v), &"0 to 4294967295")
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u32::try_from(v).map(RepetitionsEntry::Fixed).map_err(|_| {
                    E::invalid_value(serde::de::Unexpected::Unsigned(v), &"0 to 4294967295")
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                AdaptiveEntry::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RepetitionsEntry::Adaptive)
            }
        }
        d.deserialize_any(Entry)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdaptiveEntry {
    min: u32,
    max: u32,
    #[serde(default)]
    target_ci: Option<f64>,
    #[serde(default)]
    target_rsd: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    #[serde(default)]
    path: Option<Spanned<String>>,
    #[serde(default)]
    scripted: Option<Spanned<String>>,
    /// An OpenAI-compatible endpoint; checked in [`remote`] so errors name `remote.<field>`.
    #[serde(default)]
    remote: Option<Spanned<toml::Value>>,
    #[serde(default)]
    registered: Option<Spanned<String>>,
    #[serde(default)]
    name: Option<String>,
}

/// A plan, resolved: the suite text and every model with its identity, ready to submit.
#[derive(Debug, Clone)]
pub struct Plan {
    pub request: pb::SubmitRunRequest,
    /// `None` for a plan of throughput tests alone.
    pub suite: Option<benchfarm_suite::Suite>,
}

/// Reads and resolves the plan at `path`.
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PlanError {
        file: file.clone(),
        line: 0,
        column: 0,
        field: "(file)".into(),
        message: format!("cannot read: {e}"),
    })?;
    resolve(&text, &file, path.parent().unwrap_or(Path::new(".")))
}

/// Parses plan `text` (named `file` in errors) with paths relative to `base`.
pub fn resolve(text: &str, file: &str, base: &Path) -> Result<Plan, PlanError> {
    let at = |span: Range<usize>, field: &str, message: String| {
        let (line, column) = line_col(text, span.start);
        PlanError {
            file: file.to_string(),
            line,
            column,
            field: field.to_string(),
            message,
        }
    };
    let plan: PlanFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let field = field_of(e.message(), text, span.start);
        at(span, &field, e.message().to_string())
    })?;
    let reps_at = |message: String| at(plan.repetitions.span(), "repetitions", message);
    let (repetitions, adaptive) = match plan.repetitions.get_ref() {
        RepetitionsEntry::Fixed(n) => (*n, None),
        RepetitionsEntry::Adaptive(a) => {
            if a.max < a.min {
                return Err(reps_at(format!(
                    "max ({}) must be at least min ({})",
                    a.max, a.min
                )));
            }
            let target = |name: &str, v: Option<f64>, most: f64| match v {
                Some(v) if !v.is_finite() || v <= 0.0 || v > most => Err(reps_at(format!(
                    "{name} must be above 0 and at most {most}, got {v}"
                ))),
                v => Ok(v.unwrap_or(0.0)),
            };
            let adaptive = pb::AdaptiveRepetitions {
                max: a.max,
                target_ci: target("target_ci", a.target_ci, 1.0)?,
                target_rsd: target("target_rsd", a.target_rsd, 10.0)?,
            };
            (a.min, Some(adaptive))
        }
    };
    if repetitions == 0 {
        return Err(reps_at("must be at least 1".into()));
    }
    if plan.models.get_ref().is_empty() {
        return Err(at(
            plan.models.span(),
            "models",
            "a plan needs at least one [[models]] entry".into(),
        ));
    }

    let placement = match &plan.placement {
        Some(p) => {
            let placement: crate::records::Placement = p
                .get_ref()
                .parse()
                .map_err(|e: String| at(p.span(), "placement", e))?;
            benchfarm_proto::v1::Placement::from(placement).into()
        }
        None => benchfarm_proto::v1::Placement::Unspecified.into(),
    };
    let require = match &plan.require {
        None => None,
        Some(r) => {
            let min_ram_gb = match &r.min_ram_gb {
                Some(v) if !v.get_ref().is_finite() || *v.get_ref() < 0.0 => {
                    return Err(at(
                        v.span(),
                        "require.min_ram_gb",
                        "must be a size in GB, 0 or more".into(),
                    ));
                }
                Some(v) => *v.get_ref(),
                None => 0.0,
            };
            Some(pb::Requirements {
                labels: r.labels.clone().into_iter().collect(),
                min_ram_gb,
                arch: r.arch.clone().unwrap_or_default(),
            })
        }
    };

    let mut throughput = Vec::new();
    if let Some(entries) = &plan.throughput {
        for (i, entry) in entries.get_ref().iter().enumerate() {
            benchfarm_domain::ThroughputTest::parse(entry.get_ref())
                .map_err(|e| at(entry.span(), &format!("throughput[{i}]"), e.to_string()))?;
            if throughput.contains(entry.get_ref()) {
                return Err(at(
                    entry.span(),
                    &format!("throughput[{i}]"),
                    format!("{:?} is listed twice", entry.get_ref()),
                ));
            }
            throughput.push(entry.get_ref().clone());
        }
    }
    let (suite, suite_toml) = match &plan.suite {
        Some(suite_spanned) => {
            let (suite, text) = load_suite(suite_spanned, base, &at)?;
            (Some(suite), text)
        }
        None if !throughput.is_empty() => (None, String::new()),
        None => {
            return Err(at(
                0..0,
                "suite",
                "a plan needs a `suite` (a built-in suite name or a suite file), or `throughput` tests, or both".into(),
            ));
        }
    };

    let mut models = Vec::new();
    for (i, entry) in plan.models.get_ref().iter().enumerate() {
        let field = |f: &str| format!("models[{i}].{f}");
        let model = match (
            &entry.path,
            &entry.scripted,
            &entry.registered,
            &entry.remote,
        ) {
            (Some(p), None, None, None) => {
                gguf_model(&base.join(p.get_ref()), entry.name.as_deref())
                    .map_err(|m| at(p.span(), &field("path"), m))?
            }
            (None, Some(s), None, None) => {
                scripted_model(&base.join(s.get_ref()), entry.name.as_deref())
                    .map_err(|m| at(s.span(), &field("scripted"), m))?
            }
            (None, None, Some(r), None) => registered_model(r.get_ref(), entry.name.as_deref())
                .map_err(|m| at(r.span(), &field("registered"), m))?,
            (None, None, None, Some(r)) => {
                remote::remote_model(r.get_ref().clone(), entry.name.as_deref())
                    .map_err(|(f, m)| at(r.span(), &field(&f), m))?
            }
            _ => {
                return Err(at(
                    plan.models.span(),
                    &format!("models[{i}]"),
                    "each model needs exactly one of `path` (a GGUF file), `scripted` (a scripted model), `registered` (a model the coordinator holds) or `remote` (an OpenAI-compatible endpoint)".into(),
                ));
            }
        };
        // A registered model without a name of its own is named by the coordinator at submit,
        // which checks that names are unique once they are known.
        if let Some(prev) = models
            .iter()
            .position(|m: &pb::ModelRef| !model.name.is_empty() && m.name == model.name)
        {
            let span = entry
                .path
                .as_ref()
                .or(entry.scripted.as_ref())
                .or(entry.registered.as_ref())
                .map(|s| s.span())
                .or_else(|| entry.remote.as_ref().map(|r| r.span()))
                .unwrap_or(0..0);
            return Err(at(
                span,
                &field("name"),
                format!("{:?} is also the name of models[{prev}]", model.name),
            ));
        }
        models.push(model);
    }

    Ok(Plan {
        request: pb::SubmitRunRequest {
            suite_toml,
            models,
            repetitions,
            adaptive,
            seed: plan.seed,
            label: plan.label.unwrap_or_else(|| file.to_string()),
            placement,
            require,
            strict: false,
            throughput,
        },
        suite,
    })
}

/// The plan's suite: a built-in name, or a file relative to the plan; its text is what is sent.
fn load_suite(
    suite: &Spanned<String>,
    base: &Path,
    at: &dyn Fn(Range<usize>, &str, String) -> PlanError,
) -> Result<(benchfarm_suite::Suite, String), PlanError> {
    let suite_ref = suite.get_ref();
    Ok(match benchfarm_suite::builtin_source(suite_ref) {
        Some(source) => {
            let parsed = benchfarm_suite::Suite::parse(source, &format!("builtin:{suite_ref}"))
                .map_err(|e| at(suite.span(), "suite", e.to_string()))?;
            (parsed, source.to_string())
        }
        None => {
            let suite_path = base.join(suite_ref);
            if !suite_path.is_file() {
                let names = benchfarm_suite::builtin_names().join(", ");
                return Err(at(
                    suite.span(),
                    "suite",
                    format!(
                        "{suite_ref:?} is neither a built-in suite ({names}) nor a file ({})",
                        suite_path.display()
                    ),
                ));
            }
            let suite_text = std::fs::read_to_string(&suite_path).map_err(|e| {
                at(
                    suite.span(),
                    "suite",
                    format!("cannot read {}: {e}", suite_path.display()),
                )
            })?;
            // The suite's own errors already name its file, line and column.
            let parsed =
                benchfarm_suite::Suite::parse(&suite_text, &suite_path.display().to_string())
                    .map_err(|e| at(suite.span(), "suite", format!("invalid suite:\n{e}")))?;
            (parsed, suite_text)
        }
    })
}

/// A GGUF model: header checked, hashed, named.
fn gguf_model(path: &Path, name: Option<&str>) -> Result<pb::ModelRef, String> {
    if !path.is_file() {
        return Err(format!("no such file: {}", path.display()));
    }
    let info =
        benchfarm_modelfile::read_gguf(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sha256 = benchfarm_modelfile::sha256_file(path)
        .map_err(|e| format!("cannot hash {}: {e}", path.display()))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name
        .map(str::to_string)
        .or_else(|| info.name().map(str::to_string))
        .unwrap_or(stem);
    Ok(pb::ModelRef {
        name,
        sha256,
        size_bytes: info.file_len(),
        context_length: info.context_length().unwrap_or(0),
        source: Some(pb::model_ref::Source::Gguf(pb::GgufModel {
            file_name: path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })),
    })
}

/// A model registered on the coordinator, resolved there at submit.
fn registered_model(query: &str, name: Option<&str>) -> Result<pb::ModelRef, String> {
    if query.trim().is_empty() {
        return Err(
            "empty: give a registered name or a sha256 prefix (coordinator models list)".into(),
        );
    }
    Ok(pb::ModelRef {
        name: name.unwrap_or_default().to_string(),
        sha256: String::new(),
        size_bytes: 0,
        source: Some(pb::model_ref::Source::Registered(query.trim().to_string())),
        context_length: 0,
    })
}

/// A scripted model: parsed here so its errors point into its own file.
fn scripted_model(path: &Path, name: Option<&str>) -> Result<pb::ModelRef, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let model = benchfarm_modelfile::ScriptedModel::parse(&text, &path.display().to_string())
        .map_err(|e| e.to_string())?;
    Ok(pb::ModelRef {
        name: name.unwrap_or(model.name()).to_string(),
        sha256: benchfarm_modelfile::sha256_bytes(text.as_bytes()),
        size_bytes: 0,
        source: Some(pb::model_ref::Source::ScriptedToml(text)),
        context_length: 0,
    })
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The field a toml error is about: the key an "unknown field `x`" / "missing field `y`" message
/// names, else the key of the line the error points at (`repetitions = 99999999999` is about
/// `repetitions`, not the backquoted value in its message), else "(syntax)".
fn field_of(message: &str, text: &str, offset: usize) -> String {
    if (message.starts_with("unknown field") || message.starts_with("missing field"))
        && let Some(name) = message.split('`').nth(1)
    {
        return name.to_string();
    }
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((key, _))
            if !key.trim().is_empty()
                && key
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
        {
            key.trim().to_string()
        }
        _ => "(syntax)".to_string(),
    }
}

mod remote;

#[cfg(test)]
mod tests;
