//! Plan parsing and resolution against files in a temporary directory.

use super::*;

const ORACLE: &str = r#"
name = "oracle"
tokens_per_second = 40.0
[answers]
"parse-json" = ["jq '.a'"]
"#;

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    dir
}

#[test]
fn resolves_builtin_suite_and_scripted_model() {
    let dir = dir_with(&[("oracle.toml", ORACLE)]);
    let text = "suite = \"agent-coding\"\nrepetitions = 3\nseed = 7\n[[models]]\nscripted = \"oracle.toml\"\n";
    let plan = resolve(text, "plan.toml", dir.path()).unwrap();
    assert_eq!(plan.request.repetitions, 3);
    assert_eq!(plan.request.seed, 7);
    assert_eq!(plan.request.models[0].name, "oracle");
    assert_eq!(
        plan.request.models[0].sha256,
        benchfarm_modelfile::sha256_bytes(ORACLE.as_bytes())
    );
    assert_eq!(
        plan.suite.as_ref().map(|s| s.name.as_str()),
        Some("agent-coding")
    );
    assert_eq!(
        plan.request.suite_toml,
        benchfarm_suite::builtin_source("agent-coding").unwrap()
    );
}

#[test]
fn unknown_key_names_line_column_and_field() {
    let dir = dir_with(&[]);
    let text = "suite = \"agent-coding\"\nrepetitons = 3\n[[models]]\nscripted = \"x.toml\"\n";
    let err = resolve(text, "plan.toml", dir.path()).unwrap_err();
    assert_eq!(
        (err.file.as_str(), err.line, err.column),
        ("plan.toml", 2, 1),
        "{err}"
    );
    assert_eq!(err.field, "repetitons");
}

#[test]
fn missing_model_file_points_at_its_path() {
    let dir = dir_with(&[]);
    let text = "suite = \"agent-coding\"\n[[models]]\npath = \"models/none.gguf\"\n";
    let err = resolve(text, "plan.toml", dir.path()).unwrap_err();
    assert_eq!(
        (err.line, err.column, err.field.as_str()),
        (3, 8, "models[0].path"),
        "{err}"
    );
    assert!(err.message.contains("no such file"), "{err}");
}

#[test]
fn bad_scripted_model_and_unknown_suite_are_reported() {
    let dir = dir_with(&[("bad.toml", "name = \"x\"\nspeed = 3\n")]);
    let err = resolve(
        "suite = \"agent-coding\"\n[[models]]\nscripted = \"bad.toml\"\n",
        "p.toml",
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(err.field, "models[0].scripted");
    assert!(err.message.contains("bad.toml"), "{err}");
    let err = resolve(
        "suite = \"nope\"\n[[models]]\nscripted = \"bad.toml\"\n",
        "p.toml",
        dir.path(),
    )
    .unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (1, "suite"));
}

#[test]
fn entries_need_exactly_one_source_and_distinct_names() {
    let dir = dir_with(&[("a.toml", ORACLE)]);
    let err = resolve(
        "suite = \"agent-coding\"\n[[models]]\nname = \"x\"\n",
        "p.toml",
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(err.field, "models[0]");
    let twice = "suite = \"agent-coding\"\n[[models]]\nscripted = \"a.toml\"\n[[models]]\nscripted = \"a.toml\"\n";
    let err = resolve(twice, "p.toml", dir.path()).unwrap_err();
    assert_eq!((err.field.as_str(), err.line), ("models[1].name", 5));
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("ab", 99), (1, 3));
}

#[test]
fn placement_and_requirements_are_read_and_checked() {
    let dir = dir_with(&[("oracle.toml", ORACLE)]);
    let text = "suite = \"agent-coding\"\nplacement = \"per-class\"\nrequire = { labels = { site = \"lab\" }, min_ram_gb = 4, arch = \"aarch64\" }\n[[models]]\nscripted = \"oracle.toml\"\n";
    let plan = resolve(text, "p.toml", dir.path()).unwrap();
    assert_eq!(
        plan.request.placement(),
        benchfarm_proto::v1::Placement::PerClass
    );
    let require = plan.request.require.unwrap();
    assert_eq!(
        (
            require.labels["site"].as_str(),
            require.min_ram_gb,
            require.arch.as_str()
        ),
        ("lab", 4.0, "aarch64")
    );
    let bad = text.replace("per-class", "everywhere");
    let err = resolve(&bad, "p.toml", dir.path()).unwrap_err();
    assert_eq!(
        (err.line, err.column, err.field.as_str()),
        (2, 13, "placement"),
        "{err}"
    );
    let bad = text.replace("arch =", "cpu =");
    let err = resolve(&bad, "p.toml", dir.path()).unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (3, "cpu"), "{err}");
}

#[test]
fn a_registered_model_is_left_for_the_coordinator_to_resolve() {
    let dir = dir_with(&[]);
    let text = "suite = \"agent-coding\"\n[[models]]\nregistered = \"smol\"\n[[models]]\nregistered = \"b179c9\"\nname = \"second\"\n";
    let plan = resolve(text, "p.toml", dir.path()).unwrap();
    let m = &plan.request.models;
    assert_eq!(
        m[0].source,
        Some(pb::model_ref::Source::Registered("smol".into()))
    );
    // Named by the coordinator unless the plan names it.
    assert_eq!((m[0].name.as_str(), m[1].name.as_str()), ("", "second"));
    let empty = "suite = \"agent-coding\"\n[[models]]\nregistered = \" \"\n";
    let err = resolve(empty, "p.toml", dir.path()).unwrap_err();
    assert_eq!((err.field.as_str(), err.line), ("models[0].registered", 3));
    let both =
        "suite = \"agent-coding\"\n[[models]]\nregistered = \"smol\"\nscripted = \"a.toml\"\n";
    assert_eq!(
        resolve(both, "p.toml", dir.path()).unwrap_err().field,
        "models[0]"
    );
}

#[test]
fn remote_models_resolve_and_their_errors_name_the_field() {
    let dir = dir_with(&[]);
    let text = r#"suite = "agent-coding"
[[models]]
name = "cloud-model"
remote = { url = "https://api.example.com/v1", model = "provider/model-id", api_key_env = "PROVIDER_API_KEY",
           price_per_mtok = { input = 3.0, output = 15.0 }, max_concurrency = 2, timeout = 30, retries = 1 }
"#;
    let plan = resolve(text, "plan.toml", dir.path()).unwrap();
    let m = &plan.request.models[0];
    assert_eq!(m.name, "cloud-model");
    let Some(pb::model_ref::Source::Remote(r)) = &m.source else {
        panic!("{m:?}")
    };
    assert_eq!((r.max_concurrency, r.timeout_ms, r.retries), (2, 30_000, 1));
    assert_eq!(r.api_key_env, "PROVIDER_API_KEY");

    let bad = "suite = \"agent-coding\"\n[[models]]\npath = \"x.gguf\"\n[[models]]\nremote = { url = \"https://h/v1\", model = \"m\", max_concurrency = 0 }\n";
    let err = resolve(bad, "plan.toml", dir.path()).unwrap_err();
    // The first model's file is missing too, but its error comes first: fix that one.
    assert_eq!(err.field, "models[0].path", "{err}");
    let bad = "suite = \"agent-coding\"\n[[models]]\nremote = { url = \"https://h/v1\", model = \"m\", max_concurrency = 0 }\n";
    let err = resolve(bad, "plan.toml", dir.path()).unwrap_err();
    assert_eq!(
        (err.line, err.field.as_str()),
        (3, "models[0].remote.max_concurrency"),
        "{err}"
    );
    let both = "suite = \"agent-coding\"\n[[models]]\nscripted = \"o.toml\"\nremote = { url = \"https://h/v1\", model = \"m\" }\n";
    let err = resolve(both, "plan.toml", dir.path()).unwrap_err();
    assert_eq!(err.field, "models[0]", "{err}");
}

#[test]
fn throughput_tests_go_beside_the_suite_or_instead_of_it() {
    let dir = dir_with(&[("oracle.toml", ORACLE)]);
    let text = "suite = \"agent-coding\"\nthroughput = [\"pp512\", \"tg128\", \"pg512,128\"]\n[[models]]\nscripted = \"oracle.toml\"\n";
    let plan = resolve(text, "plan.toml", dir.path()).unwrap();
    assert_eq!(plan.request.throughput, ["pp512", "tg128", "pg512,128"]);
    assert!(plan.suite.is_some());
    // Without a suite: throughput tests alone, and no suite text is sent.
    let text = "throughput = [\"tg8\"]\n[[models]]\nscripted = \"oracle.toml\"\n";
    let plan = resolve(text, "plan.toml", dir.path()).unwrap();
    assert!(plan.suite.is_none() && plan.request.suite_toml.is_empty());
    // Neither: refused, naming the suite.
    let err = resolve(
        "[[models]]\nscripted = \"oracle.toml\"\n",
        "plan.toml",
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(err.field, "suite", "{err}");
}

#[test]
fn a_bad_throughput_entry_names_its_line_column_and_index() {
    let dir = dir_with(&[("oracle.toml", ORACLE)]);
    let text = "suite = \"agent-coding\"\nthroughput = [\"pp16\",\n  \"tg99999\"]\n[[models]]\nscripted = \"oracle.toml\"\n";
    let err = resolve(text, "plan.toml", dir.path()).unwrap_err();
    assert_eq!((err.line, err.column), (3, 3), "{err}");
    assert_eq!(err.field, "throughput[1]");
    assert!(err.message.contains("1 to 4096 tokens"), "{err}");
    let text = "suite = \"agent-coding\"\nthroughput = [\"tg8\", \"tg8\"]\n[[models]]\nscripted = \"oracle.toml\"\n";
    let err = resolve(text, "plan.toml", dir.path()).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("throughput[1]", "\"tg8\" is listed twice")
    );
}

#[test]
fn repetitions_may_be_adaptive_and_each_bound_is_checked() {
    let dir = dir_with(&[("oracle.toml", ORACLE)]);
    let plan = |reps: &str| {
        resolve(
            &format!(
                "suite = \"agent-coding\"\nrepetitions = {reps}\n[[models]]\nscripted = \"oracle.toml\"\n"
            ),
            "plan.toml",
            dir.path(),
        )
    };
    let p = plan("{ min = 3, max = 15, target_ci = 0.05, target_rsd = 0.035 }").unwrap();
    assert_eq!(p.request.repetitions, 3);
    let a = p.request.adaptive.unwrap();
    assert_eq!((a.max, a.target_ci, a.target_rsd), (15, 0.05, 0.035));
    // Targets are optional (0 on the wire: none); a plain number is fixed repetitions.
    let a = plan("{ min = 2, max = 4 }")
        .unwrap()
        .request
        .adaptive
        .unwrap();
    assert_eq!((a.target_ci, a.target_rsd), (0.0, 0.0));
    assert!(plan("5").unwrap().request.adaptive.is_none());
    for (bad, says) in [
        ("{ min = 4, max = 2 }", "max (2) must be at least min (4)"),
        ("{ min = 0, max = 2 }", "must be at least 1"),
        (
            "{ min = 1, max = 2, target_ci = 0 }",
            "target_ci must be above 0",
        ),
        (
            "{ min = 1, max = 2, target_rsd = -1 }",
            "target_rsd must be above 0",
        ),
        (
            "\"three\"",
            "a number of repetitions (3) or an adaptive rule",
        ),
        ("-1", "0 to 4294967295"),
    ] {
        let err = plan(bad).unwrap_err();
        assert_eq!(err.field, "repetitions", "{bad}: {err}");
        assert!(err.message.contains(says), "{bad}: {err}");
        assert_eq!(err.line, 2, "{bad}: {err}");
    }
    // An unknown key inside the rule is named itself, at its column.
    let err = plan("{ min = 1, max = 2, target = 1 }").unwrap_err();
    assert_eq!((err.field.as_str(), err.line), ("target", 2), "{err}");
    assert!(
        err.message
            .contains("expected one of `min`, `max`, `target_ci`, `target_rsd`")
    );
}
