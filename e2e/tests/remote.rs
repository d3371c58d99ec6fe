//! Remote models against a scripted endpoint of the test's own (fault injection only; the real
//! OpenAI-compatible server is llama.cpp's llama-server, in remote_llama.rs), with the real
//! coordinator and worker processes:
//! - 429 with `Retry-After: 1` twice, then an answer: one counted result, two retries recorded;
//! - always 500: a failed job whose reason is the HTTP status, after the configured attempts;
//! - the API key: only the calling worker's environment has it; the endpoint gets it, and the
//!   coordinator's store, its log and every report format never contain it;
//! - a worker that did not declare the model, or lacks its key, never gets its jobs;
//! - cost: the report's cost equals tokens × price computed by hand from the scripted usage.
//!
//! Needs the `coordinator` and `worker` binaries (see faults.rs).

use std::path::Path;
use std::time::Duration;

use benchfarm_e2e::fake_endpoint::{FakeEndpoint, Step};
use benchfarm_e2e::process::*;

const KEY_ENV: &str = "BENCHFARM_TEST_API_KEY";

/// A plan of `tasks` tasks × `reps` with the remote model `cloud` at `url` (and more `extra` keys
/// in its remote table), plus a scripted local model when `local` is set.
fn remote_plan(
    farm: &Farm,
    tasks: usize,
    reps: u32,
    url: &str,
    extra: &str,
    local: bool,
) -> String {
    farm.write("suite.toml", &suite_toml(tasks));
    let mut plan = format!("suite = \"suite.toml\"\nrepetitions = {reps}\nseed = 1\n");
    if local {
        farm.write("m.toml", &Scripted::new("local", tasks).toml());
        plan.push_str("[[models]]\nscripted = \"m.toml\"\n");
    }
    plan.push_str(&format!(
        "[[models]]\nname = \"cloud\"\nremote = {{ url = \"{url}\", model = \"provider/model-id\", api_key_env = \"{KEY_ENV}\"{extra} }}\n"
    ));
    plan
}

fn ok_stream(prompt_tokens: u32, completion_tokens: u32) -> Step {
    Step::Stream {
        content: vec!["ok".into(), " done".into()],
        prompt_tokens,
        completion_tokens,
    }
}

/// Every file under `dir`, read whole (sled's files are binary: searched as bytes).
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_retried_and_the_key_never_reaches_the_coordinator() {
    let key = format!("sk-test-{}", std::process::id()) + "-Zq9xK2vB7mLw";
    // 429 with Retry-After: 1, twice; then answers.
    let endpoint = FakeEndpoint::start(
        vec![Step::Status(429, Some(1)), Step::Status(429, Some(1))],
        ok_stream(1200, 300),
    )
    .await;
    let mut farm = Farm::start(CoordinatorOpts::default()).await;
    let request = farm.plan(&remote_plan(
        &farm,
        1,
        1,
        &endpoint.url,
        ", retries = 3",
        true,
    ));
    farm.start_worker(
        "caller",
        WorkerOpts::default()
            .arg("--remote", "cloud")
            .env(KEY_ENV, &key),
    );
    // Declares the model but has no key; and one that declares nothing: neither may get its job.
    farm.start_worker("keyless", WorkerOpts::default().arg("--remote", "cloud"));
    farm.start_worker("local-only", WorkerOpts::default());
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["caller", "keyless", "local-only"])
        .await;
    let workers = list_workers(&mut client).await;
    let caller = workers.iter().find(|w| w.name == "caller").unwrap();
    assert_eq!(caller.remotes, vec!["cloud"]);
    assert!(
        caller.remote_key_envs.contains(&KEY_ENV.to_string()),
        "{caller:?}"
    );
    let keyless = workers.iter().find(|w| w.name == "keyless").unwrap();
    assert!(!keyless.remote_key_envs.contains(&KEY_ENV.to_string()));

    let run = client.submit_run(request).await.unwrap().into_inner();
    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(60), 2, 0).await;
    let formats: Vec<String> = {
        let mut bodies = Vec::new();
        for f in ["table", "md", "csv", "json", "jsonl", "html"] {
            bodies.push(report_body(&mut client, &run.run_id, f).await);
        }
        bodies
    };

    // The endpoint got the key from the caller's environment, and the local engine's request.
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 3, "two 429s and the answer");
    for r in &requests {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {key}").as_str())
        );
        assert_eq!(r.body["stream"], true);
        assert_eq!(r.body["stream_options"]["include_usage"], true);
        assert_eq!(r.body["model"], "provider/model-id");
        assert_eq!(r.body["temperature"], 0.0);
        assert_eq!(
            r.body["messages"].as_array().unwrap().last().unwrap()["role"],
            "user"
        );
    }

    let cloud = report["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "cloud")
        .unwrap();
    assert_eq!(cloud["kind"], "remote");
    assert_eq!(cloud["n"], 1);
    let table = &formats[0];
    let row = table.lines().find(|l| l.starts_with("| cloud")).unwrap();
    assert!(row.contains("remote"), "{table}");

    let store = farm.stop_and_open_store();
    let results: Vec<_> = store
        .results_of_run(&run.run_id)
        .unwrap()
        .into_iter()
        .filter(|r| r.remote.is_some())
        .collect();
    assert_eq!(results.len(), 1, "one counted remote result");
    let r = &results[0];
    assert!(r.counted);
    assert_eq!(
        r.worker_name, "caller",
        "only the worker with the key calls"
    );
    let call = r.remote.as_ref().unwrap();
    assert_eq!((call.http_status, call.retries), (200, 2), "{call:?}");
    assert!(
        call.retry_reasons
            .iter()
            .all(|w| w.contains("HTTP 429") && w.contains("Retry-After 1 s")),
        "{call:?}"
    );
    assert!(!call.tokens_estimated);
    // Two waits of Retry-After's one second each.
    assert!(r.timings.wall_ms >= 2000.0, "{:?}", r.timings);
    assert_eq!((r.timings.prompt_tokens, r.timings.gen_tokens), (1200, 300));
    assert!(
        r.hardware_class.starts_with("remote-127-0-0-1-"),
        "{}",
        r.hardware_class
    );
    assert_eq!(r.answer, "ok done");
    drop(store);

    // The key: nowhere in the coordinator's data directory, its log or any report format.
    for (path, bytes) in files_under(&farm.data()) {
        assert!(!contains(&bytes, &key), "the key is in {}", path.display());
    }
    let log = std::fs::read(farm.path("logs/coordinator.log")).unwrap();
    assert!(!contains(&log, &key), "the key is in the coordinator's log");
    for (format, body) in ["table", "md", "csv", "json", "jsonl", "html"]
        .iter()
        .zip(&formats)
    {
        assert!(!body.contains(&key), "the key is in the {format} report");
    }
    // Nor in the calling worker's own log: it is sent as a header and nowhere else.
    let worker_log = std::fs::read(farm.path("logs/caller.log")).unwrap();
    assert!(
        !contains(&worker_log, &key),
        "the key is in the worker's log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_always_fails_fails_the_job_with_the_http_reason() {
    let endpoint = FakeEndpoint::start(vec![], Step::Status(500, None)).await;
    let mut farm = Farm::start(CoordinatorOpts {
        max_attempts: Some(2),
        ..CoordinatorOpts::default()
    })
    .await;
    let request = farm.plan(&remote_plan(
        &farm,
        1,
        1,
        &endpoint.url,
        ", retries = 1",
        false,
    ));
    farm.start_worker(
        "caller",
        WorkerOpts::default()
            .arg("--remote", &endpoint.url)
            .env(KEY_ENV, "sk-unused"),
    );
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["caller"]).await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    // Each of the 2 attempts: the request and 1 retry (1 s backoff); then the job fails.
    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(60), 0, 1).await;
    assert_eq!(
        endpoint.requests().len(),
        4,
        "2 attempts x (1 request + 1 retry)"
    );
    let reason = report["failed_jobs"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("attempt 1: HTTP 500"), "{reason}");
    assert!(reason.contains("attempt 2: HTTP 500"), "{reason}");
    assert!(reason.contains("after 1 retries"), "{reason}");
    let jsonl = report_body(&mut client, &run.run_id, "jsonl").await;
    let errors: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["verdict"] == "error")
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors
            .iter()
            .all(|e| e["hardware_class"].as_str().unwrap().starts_with("remote-"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_cost_is_tokens_times_price() {
    // A scripted usage pattern: every answer is 1,000 prompt and 250 generated tokens; 3 tasks x
    // 2 repetitions at $3 / $15 per million: 6 x (1000 x 3 + 250 x 15) / 1e6 = 6 x 0.00675 =
    // $0.0405 in all, $0.00675 a job; the local scripted model costs $0.00.
    let endpoint = FakeEndpoint::start(vec![], ok_stream(1000, 250)).await;
    let mut farm = Farm::start(CoordinatorOpts::default()).await;
    let request = farm.plan(&remote_plan(
        &farm,
        3,
        2,
        &endpoint.url,
        ", price_per_mtok = { input = 3.0, output = 15.0 }, max_concurrency = 2",
        true,
    ));
    farm.start_worker(
        "caller",
        WorkerOpts::default()
            .arg("--remote", "cloud")
            .arg("--slots", "2")
            .env(KEY_ENV, "sk-cost"),
    );
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["caller"]).await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(60), 12, 0).await;
    let model = |name: &str| {
        report["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()
            .clone()
    };
    let hand = 6.0 * (1000.0 * 3.0 + 250.0 * 15.0) / 1e6;
    let cloud = model("cloud");
    assert!(
        (cloud["cost_usd"].as_f64().unwrap() - hand).abs() < 1e-12,
        "{cloud}"
    );
    assert!((cloud["cost_per_job_usd"].as_f64().unwrap() - hand / 6.0).abs() < 1e-12);
    assert_eq!(model("local")["cost_usd"].as_f64(), Some(0.0));
    assert!((report["cost_usd"].as_f64().unwrap() - hand).abs() < 1e-12);
    let table = report_body(&mut client, &run.run_id, "table").await;
    assert!(table.lines().next().unwrap().contains(" Cost |"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap()
            .to_string()
    };
    assert!(row("cloud").contains("$0.04"), "{table}");
    assert!(row("local").contains("$0.00"), "{table}");
    let jsonl = report_body(&mut client, &run.run_id, "jsonl").await;
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["model"] == "cloud" {
            assert!(
                (v["cost_usd"].as_f64().unwrap() - hand / 6.0).abs() < 1e-12,
                "{v}"
            );
            assert_eq!(v["remote"]["http_status"], 200);
        }
    }
}
