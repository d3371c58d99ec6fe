//! A `SubmitRunRequest` turned into a validated [`RunRecord`], under the coordinator's [`Limits`].
//!
//! Everything a submit carries is checked here, before the scheduler sees it, so a refused submit
//! stores nothing: the suite (parsed under the suite limits), every model (its name, its digest,
//! a scripted model's TOML parsed with its own line and column), the repetitions, the placement,
//! the requirements, the label, and each task's `max_tokens` against the absolute cap and the
//! context length of every GGUF model that declares one. Each error is `InvalidArgument` naming
//! the field and, for a limit, the limit. Pure (the caller gives the id and the time), which is
//! also what the fuzz target and the bad-input table call.

use benchfarm_proto::v1 as pb;
use tonic::Status;

use super::convert;
use crate::limits::{Limits, check_labels, check_len};
use crate::records::{ModelKind, Placement, RunRecord, RunState, RunTask, UnixMs};

fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

/// Replaces every `registered = "..."` model of `req` with the registered GGUF it names (its
/// digest, size, file name and context length; its registered name unless the plan gave one). An
/// unknown or ambiguous name or prefix is `InvalidArgument` naming `models[i].registered`.
pub fn resolve_registered(
    req: &mut pb::SubmitRunRequest,
    catalog: &crate::models::Catalog,
) -> Result<(), Status> {
    for (i, m) in req.models.iter_mut().enumerate() {
        let Some(pb::model_ref::Source::Registered(query)) = &m.source else {
            continue;
        };
        let entry = catalog
            .resolve(query)
            .map_err(|e| invalid(format!("models[{i}].registered: {e}")))?;
        if m.name.trim().is_empty() {
            m.name = entry.name.clone();
        }
        m.sha256 = entry.sha256.clone();
        m.size_bytes = entry.size_bytes;
        m.context_length = entry.context_length;
        m.source = Some(pb::model_ref::Source::Gguf(pb::GgufModel {
            file_name: entry.file_name.clone(),
        }));
    }
    Ok(())
}

/// The run `req` asks for, or the first thing wrong with it.
pub fn run_record(
    req: pb::SubmitRunRequest,
    limits: &Limits,
    id: String,
    now: UnixMs,
) -> Result<RunRecord, Status> {
    let throughput = throughput_tests(&req.throughput)?;
    let adaptive = adaptive_rule(req.repetitions, req.adaptive)?;
    // No suite is a run of throughput tests alone.
    let suite = if req.suite_toml.is_empty() && !throughput.is_empty() {
        None
    } else {
        Some(
            benchfarm_suite::Suite::parse_with_limits(&req.suite_toml, "suite_toml", limits.suite)
                .map_err(|e| invalid(e.to_string()))?,
        )
    };
    let suite_tasks = suite.as_ref().map_or(&[][..], |s| &s.tasks[..]);
    if req.models.is_empty() {
        return Err(invalid("models: a run needs at least one model"));
    }
    if req.models.len() > limits.models_per_run {
        return Err(invalid(format!(
            "models: {} models, over the limit max_models_per_run = {}",
            req.models.len(),
            limits.models_per_run
        )));
    }
    if req.repetitions == 0 {
        return Err(invalid("repetitions: must be at least 1"));
    }
    let placement: Placement = super::enums::placement_from_wire(req.placement)
        .map_err(|e| invalid(format!("placement: {e}")))?;
    check_len("label", &req.label, limits.name_bytes, "max_name_bytes").map_err(invalid)?;
    let mut contexts = Vec::with_capacity(req.models.len());
    let mut models = Vec::with_capacity(req.models.len());
    for (i, m) in req.models.into_iter().enumerate() {
        check_len(
            &format!("models[{i}].name"),
            &m.name,
            limits.name_bytes,
            "max_name_bytes",
        )
        .map_err(invalid)?;
        contexts.push((i, m.context_length));
        let model = convert::run_model(m, i)?;
        if let ModelKind::Gguf { file_name } = &model.kind {
            check_len(
                &format!("models[{i}].gguf.file_name"),
                file_name,
                limits.name_bytes,
                "max_name_bytes",
            )
            .map_err(invalid)?;
            // A name the worker could resolve outside its models directory is refused, though
            // workers match models by sha256: the name is shown, and nothing should look like it.
            let plain = std::path::Path::new(file_name)
                .file_name()
                .is_some_and(|f| f == file_name.as_str())
                && !file_name.contains(['/', '\\'])
                && !file_name.chars().any(char::is_control);
            if !plain {
                return Err(invalid(format!(
                    "models[{i}].gguf.file_name: {file_name:?} is not a plain file name"
                )));
            }
        }
        if let ModelKind::Scripted { toml } = &model.kind {
            // Parsed here, so a broken scripted model is refused at submit with its own line and
            // column rather than failing (and quarantining) workers one job at a time.
            benchfarm_modelfile::ScriptedModel::parse(toml, &format!("models[{i}].scripted_toml"))
                .map_err(|e| invalid(e.to_string()))?;
            if benchfarm_modelfile::sha256_bytes(toml.as_bytes()) != model.sha256 {
                return Err(invalid(format!(
                    "models[{i}].sha256: not the sha256 of its scripted_toml"
                )));
            }
        }
        models.push(model);
    }
    let mut names = std::collections::HashSet::new();
    if let Some(dup) = models.iter().find(|m| !names.insert(m.name.as_str())) {
        return Err(invalid(format!(
            "models: the name {:?} is used twice",
            dup.name
        )));
    }
    for task in suite_tasks {
        let field = format!("suite_toml: tasks[{}].max_tokens", task.id);
        if task.max_tokens > limits.max_tokens {
            return Err(invalid(format!(
                "{field}: {}, over the limit max_tokens_cap = {}",
                task.max_tokens, limits.max_tokens
            )));
        }
        // The known context of a model bounds what it can be asked to generate.
        if let Some((i, context)) = contexts
            .iter()
            .find(|(_, c)| *c > 0 && u64::from(task.max_tokens) > *c)
        {
            return Err(invalid(format!(
                "{field}: {} tokens, over models[{i}]'s context length of {context} tokens",
                task.max_tokens
            )));
        }
        check_len(
            &format!("suite_toml: tasks[{}].id", task.id),
            &task.id,
            limits.name_bytes,
            "max_name_bytes",
        )
        .map_err(invalid)?;
    }
    for test in &throughput {
        if let Some((i, context)) = contexts
            .iter()
            .find(|(_, c)| *c > 0 && u64::from(test.n_tokens()) > *c)
        {
            return Err(invalid(format!(
                "throughput: {test} needs a context of {} tokens, over models[{i}]'s context length of {context} tokens",
                test.n_tokens()
            )));
        }
    }
    let require = convert::requirements(req.require)?;
    check_labels("require.labels", require.labels.iter(), limits).map_err(invalid)?;
    if let Some(arch) = &require.arch {
        check_len("require.arch", arch, limits.name_bytes, "max_name_bytes").map_err(invalid)?;
    }
    Ok(RunRecord {
        id,
        created_unix_ms: now,
        label: req.label,
        suite_name: suite.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
        suite_version: suite
            .as_ref()
            .map(|s| s.version.clone())
            .unwrap_or_default(),
        suite_toml: req.suite_toml,
        models,
        tasks: suite_tasks
            .iter()
            .map(|t| RunTask {
                id: t.id.clone(),
                category: t.category.clone(),
                max_tokens: t.max_tokens,
            })
            .collect(),
        throughput,
        repetitions: req.repetitions,
        adaptive,
        model_repetitions: Vec::new(),
        stop_reasons: Vec::new(),
        seed: req.seed,
        placement,
        require,
        jobs_total: 0,
        state: RunState::Running,
        finished_unix_ms: None,
        suite_history: Vec::new(),
        counts: None,
        // Set by the caller, which opens the run's span.
        trace_parent: String::new(),
    })
}

/// The most repetitions an adaptive rule may grow a model to.
pub const MAX_ADAPTIVE_REPETITIONS: u32 = 1_000;

/// The adaptive rule of a submit, `repetitions` being its minimum; each bound checked.
fn adaptive_rule(
    min: u32,
    adaptive: Option<pb::AdaptiveRepetitions>,
) -> Result<Option<crate::records::AdaptiveRule>, Status> {
    let Some(a) = adaptive else {
        return Ok(None);
    };
    if a.max < min || a.max > MAX_ADAPTIVE_REPETITIONS {
        return Err(invalid(format!(
            "adaptive.max: {} must be from repetitions (the minimum, {min}) to {MAX_ADAPTIVE_REPETITIONS}",
            a.max
        )));
    }
    let target = |field: &str, v: f64, most: f64| -> Result<Option<f64>, Status> {
        if !v.is_finite() || !(0.0..=most).contains(&v) {
            return Err(invalid(format!(
                "adaptive.{field}: {v} must be from 0 (no target) to {most}"
            )));
        }
        Ok((v > 0.0).then_some(v))
    };
    Ok(Some(crate::records::AdaptiveRule {
        min,
        max: a.max,
        target_ci: target("target_ci", a.target_ci, 1.0)?,
        target_rsd: target("target_rsd", a.target_rsd, 10.0)?,
    }))
}

/// The most throughput tests one run may ask for.
pub const MAX_THROUGHPUT_TESTS: usize = 64;

/// `throughput[i]` parsed (llama-bench's names, within the token limits), duplicates refused.
fn throughput_tests(entries: &[String]) -> Result<Vec<benchfarm_domain::ThroughputTest>, Status> {
    if entries.len() > MAX_THROUGHPUT_TESTS {
        return Err(invalid(format!(
            "throughput: {} tests, over the limit of {MAX_THROUGHPUT_TESTS}",
            entries.len()
        )));
    }
    let mut tests = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let test = benchfarm_domain::ThroughputTest::parse(entry)
            .map_err(|e| invalid(format!("throughput[{i}]: {e}")))?;
        if tests.contains(&test) {
            return Err(invalid(format!(
                "throughput[{i}]: {test} is asked for twice"
            )));
        }
        tests.push(test);
    }
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = "name = \"s\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\nmax_tokens = 512\npass = [{ contains = \"x\" }]\n";

    fn scripted(text: &str) -> pb::ModelRef {
        pb::ModelRef {
            name: "m".into(),
            sha256: benchfarm_modelfile::sha256_bytes(text.as_bytes()),
            size_bytes: 0,
            source: Some(pb::model_ref::Source::ScriptedToml(text.into())),
            context_length: 0,
        }
    }

    fn request(models: Vec<pb::ModelRef>) -> pb::SubmitRunRequest {
        pb::SubmitRunRequest {
            suite_toml: SUITE.into(),
            models,
            repetitions: 1,
            ..pb::SubmitRunRequest::default()
        }
    }

    fn refused(req: pb::SubmitRunRequest, limits: &Limits) -> String {
        let status = run_record(req, limits, "r".into(), 0).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        status.message().to_string()
    }

    #[test]
    fn a_valid_request_becomes_a_run() {
        let run = run_record(
            request(vec![scripted("name = \"m\"")]),
            &Limits::DEFAULT,
            "r".into(),
            7,
        )
        .expect("valid");
        assert_eq!((run.id.as_str(), run.created_unix_ms), ("r", 7));
        assert_eq!(run.tasks[0].max_tokens, 512);
    }

    #[test]
    fn a_broken_scripted_model_is_refused_with_its_line() {
        let e = refused(
            request(vec![scripted("name = \"m\"\ntokens_per_second = -1\n")]),
            &Limits::DEFAULT,
        );
        assert!(
            e.starts_with("models[0].scripted_toml:2:21: tokens_per_second"),
            "{e}"
        );
    }

    #[test]
    fn max_tokens_is_capped_absolutely_and_by_a_known_context() {
        let limits = Limits {
            max_tokens: 100,
            ..Limits::DEFAULT
        };
        let e = refused(request(vec![scripted("name = \"m\"")]), &limits);
        assert_eq!(
            e,
            "suite_toml: tasks[t].max_tokens: 512, over the limit max_tokens_cap = 100"
        );
        let mut small = pb::ModelRef {
            name: "g".into(),
            sha256: "a".repeat(64),
            source: Some(pb::model_ref::Source::Gguf(pb::GgufModel {
                file_name: "g.gguf".into(),
            })),
            context_length: 256,
            ..pb::ModelRef::default()
        };
        let e = refused(request(vec![small.clone()]), &Limits::DEFAULT);
        assert_eq!(
            e,
            "suite_toml: tasks[t].max_tokens: 512 tokens, over models[0]'s context length of 256 tokens"
        );
        small.context_length = 0; // unknown: only the absolute cap applies
        assert!(run_record(request(vec![small]), &Limits::DEFAULT, "r".into(), 0).is_ok());
    }

    #[test]
    fn throughput_tests_are_parsed_beside_the_suite_or_instead_of_it() {
        let mut req = request(vec![scripted("name = \"m\"")]);
        req.throughput = vec!["pp16".into(), "tg8".into(), "pg4,2".into()];
        let run = run_record(req.clone(), &Limits::DEFAULT, "r".into(), 0).expect("valid");
        assert_eq!(
            run.throughput.iter().map(|t| t.name()).collect::<Vec<_>>(),
            ["pp16", "tg8", "pp4+tg2"]
        );
        assert_eq!((run.tasks.len(), run.suite_name.as_str()), (1, "s"));
        // No suite: a run of throughput tests alone.
        req.suite_toml.clear();
        let run = run_record(req.clone(), &Limits::DEFAULT, "r".into(), 0).expect("valid");
        assert!(run.tasks.is_empty() && run.suite_name.is_empty());
        assert_eq!(run.throughput.len(), 3);
        // ... but a run needs one or the other.
        req.throughput.clear();
        assert!(refused(req, &Limits::DEFAULT).starts_with("suite_toml:"));
    }

    #[test]
    fn bad_throughput_tests_are_refused_naming_the_entry() {
        let with = |tests: &[&str], model: pb::ModelRef| {
            let mut req = request(vec![model]);
            req.throughput = tests.iter().map(|t| t.to_string()).collect();
            refused(req, &Limits::DEFAULT)
        };
        let m = || scripted("name = \"m\"");
        assert!(
            with(&["pp16", "tg"], m())
                .starts_with("throughput[1]: \"tg\" is not a throughput test")
        );
        assert_eq!(
            with(&["tg0"], m()),
            "throughput[0]: \"tg0\": the generation must be 1 to 4096 tokens"
        );
        assert_eq!(
            with(&["tg8", "tg8"], m()),
            "throughput[1]: tg8 is asked for twice"
        );
        let many: Vec<String> = (1..=65).map(|n| format!("tg{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            with(&many, m()),
            "throughput: 65 tests, over the limit of 64"
        );
        let small = pb::ModelRef {
            name: "g".into(),
            sha256: "a".repeat(64),
            source: Some(pb::model_ref::Source::Gguf(pb::GgufModel {
                file_name: "g.gguf".into(),
            })),
            context_length: 1024,
            ..pb::ModelRef::default()
        };
        let mut req = request(vec![small]);
        req.suite_toml.clear();
        req.throughput = vec!["pp512".into(), "pg1024,128".into()];
        assert_eq!(
            refused(req, &Limits::DEFAULT),
            "throughput: pp1024+tg128 needs a context of 1152 tokens, over models[0]'s context length of 1024 tokens"
        );
    }
}
