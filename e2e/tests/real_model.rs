//! The farm with the real default model through llama.cpp: 2 tasks × 1 repetition, run twice on
//! two workers. Answers are non-empty, timings positive and consistent, and the same greedy job
//! gives the same text both times.

use std::time::Duration;

use benchfarm_coordinator::records::ResultRecord;
use benchfarm_coordinator::store::Store;
use benchfarm_e2e::in_process::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_model_end_to_end_is_deterministic_and_timed() {
    let Some(model) = default_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(&model, models.join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    std::fs::write(dir.path().join("smoke.toml"), smoke_suite(48)).unwrap();
    let plan_text = smoke_plan(&models.join("SmolLM2-135M-Instruct.Q4_1.gguf"));

    let server = start_server(&dir.path().join("data"), Duration::from_secs(60)).await;
    let url = url(&server);
    let w1 = start_worker(&url, "w1", &models, &dir.path().join("w1"));
    let w2 = start_worker(&url, "w2", &models, &dir.path().join("w2"));
    let mut client = client(&url).await;
    wait_workers(&mut client, 2).await;

    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = client
            .submit_run(plan(dir.path(), &plan_text))
            .await
            .unwrap()
            .into_inner();
        let status = wait_run(&mut client, &run.run_id, Duration::from_secs(300)).await;
        assert_eq!(
            (status.state(), status.jobs_done),
            (benchfarm_proto::v1::RunState::Finished, 2),
            "{status:?}"
        );
        runs.push(run.run_id);
    }
    let report = report_json(&mut client, &runs[0]).await;
    // jsonl of a real-model run: every documented key on every line, and the ones only a real
    // model fills (its digest and size, the llama.cpp build, the build's features, the
    // model's own chat template, decode timings) filled.
    let jsonl = report_body(&mut client, &runs[0], "jsonl").await;
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{jsonl}");
    for line in &lines {
        for key in
            JSONL_KEYS
                .iter()
                .chain(&["hardware_tags", "decode_tokens", "decode_ms", "truncated"])
        {
            assert!(line.get(*key).is_some(), "jsonl line lacks {key}: {line}");
        }
        assert_eq!(
            line["model_sha256"].as_str().map(str::len),
            Some(64),
            "{line}"
        );
        assert!(
            line["model_size_bytes"].as_u64().unwrap() > 90_000_000,
            "{line}"
        );
        assert!(
            !line["llama_cpp_build"].as_str().unwrap().is_empty(),
            "{line}"
        );
        assert!(
            !line["hardware_tags"].as_array().unwrap().is_empty(),
            "{line}"
        );
        assert_eq!(line["chat_template"], "model");
        assert!(line["decode_tokens"].as_u64().unwrap() > 0, "{line}");
        assert!(
            matches!(line["stop"].as_str(), Some("eos" | "max_tokens")),
            "{line}"
        );
        assert_eq!(line["threads"], 1);
        assert!(!line["answer"].as_str().unwrap().is_empty());
    }
    // Throughput tests alone (no suite), on every worker: llama-bench's procedure in the farm.
    let bench_plan = format!(
        "throughput = [\"pp16\", \"tg8\"]\nplacement = \"every-worker\"\n[[models]]\npath = \"{}\"\nname = \"SmolLM2-135M\"\n",
        models.join("SmolLM2-135M-Instruct.Q4_1.gguf").display()
    );
    let bench_run = client
        .submit_run(plan(dir.path(), &bench_plan))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bench_run.jobs, 4, "2 tests x 2 workers");
    let status = wait_run(&mut client, &bench_run.run_id, Duration::from_secs(300)).await;
    assert_eq!(
        (status.state(), status.jobs_done),
        (benchfarm_proto::v1::RunState::Finished, 4),
        "{status:?}"
    );
    let bench_report = report_json(&mut client, &bench_run.run_id).await;
    let rows = bench_report["throughput"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "one class, one model, two tests: {rows:?}");
    for row in rows {
        assert_eq!(row["repetitions"], 2, "one per worker: {row}");
        assert!(row["avg_ts"].as_f64().unwrap() > 0.0, "{row}");
        assert!(
            row["model_n_params"].as_u64().unwrap() > 100_000_000,
            "{row}"
        );
        assert!(
            !row["build_features"].as_array().unwrap().is_empty(),
            "{row}"
        );
        assert_eq!(
            (row["backend"].as_str(), row["threads"].as_u64()),
            (Some("CPU"), Some(1))
        );
    }
    w1.leave().await;
    w2.leave().await;
    server.shutdown().await.unwrap();

    let store = Store::open_waiting(&dir.path().join("data"), Duration::from_secs(10)).unwrap();
    let answers = |run: &str| -> Vec<ResultRecord> {
        let jobs = store.jobs_of_run(run).unwrap();
        let mut results: Vec<ResultRecord> = store
            .results_of_run(run)
            .unwrap()
            .into_iter()
            .filter(|r| r.counted)
            .collect();
        results.sort_by_key(|r| jobs.iter().position(|j| j.id == r.job_id));
        results
    };
    let first = answers(&runs[0]);
    let second = answers(&runs[1]);
    assert_eq!(first.len(), 2);
    for r in first.iter().chain(&second) {
        let t = &r.timings;
        assert!(!r.answer.trim().is_empty(), "empty answer for {}", r.job_id);
        assert!(
            t.prompt_tokens > 0 && t.prompt_ms > 0.0 && t.ttft_ms > 0.0,
            "{t:?}"
        );
        assert!(
            t.gen_tokens > 0 && t.gen_ms > 0.0 && t.gen_tokens <= 48,
            "{t:?}"
        );
        assert!(
            t.wall_ms >= t.prompt_ms + t.gen_ms,
            "wall {} < prompt {} + gen {}",
            t.wall_ms,
            t.prompt_ms,
            t.gen_ms
        );
        assert_eq!(
            t.cold,
            t.load_ms > 0.0,
            "cold iff the job loaded the model: {t:?}"
        );
        assert_eq!(r.threads, 1);
        // The build's CPU features (ggml's system info, parsed) are stored with each result.
        assert!(
            !r.build_features.is_empty() && !r.cpu_features.is_empty(),
            "no build features stored: {:?} / {:?}",
            r.build_features,
            r.cpu_features
        );
        assert_eq!(
            r.chat_template, "model",
            "SmolLM2 carries its own chat template"
        );
    }
    // A worker keeps its model loaded: the second run's jobs did not load it again.
    assert!(
        second.iter().all(|r| !r.timings.cold),
        "second run reloaded the model"
    );
    // Greedy decoding is deterministic: the same job gives the same text, on whichever worker.
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.answer, b.answer);
        assert_eq!(a.timings.gen_tokens, b.timings.gen_tokens);
    }
    // The report's speed is decode speed, llama-bench's tg: the stored decoded tokens over the
    // stored seconds in llama_decode (docs/timings.md).
    assert!(
        first
            .iter()
            .all(|r| r.timings.decode_tokens > 0 && r.timings.decode_ms > 0.0)
    );
    let tokens: u32 = first.iter().map(|r| r.timings.decode_tokens).sum();
    let seconds: f64 = first.iter().map(|r| r.timings.decode_ms / 1000.0).sum();
    let reported = report["models"][0]["gen_tokens_per_second"]
        .as_f64()
        .unwrap();
    assert!(
        (reported - f64::from(tokens) / seconds).abs() < 1e-6,
        "{reported} vs {}",
        f64::from(tokens) / seconds
    );
    assert_eq!(report["models"][0]["n"], 2);
}
