//! Telemetry against real receivers: the spans of a scripted run arrive at a real OTLP receiver
//! (rotel, from PyPI) and form one trace per job, coordinator and worker spans together; a real
//! Prometheus (Debian's `prometheus`) scrapes the coordinator and a worker during a run and counts
//! its jobs; the Grafana dashboards are checked against the provisioning files and a real scrape.
//!
//! rotel and Prometheus are installed by `scripts/test.sh` (rotel into `.tools/rotel`) and
//! `scripts/deps.sh`; a test whose receiver is missing fails in CI and is skipped elsewhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use benchfarm_e2e::process::*;

/// Jobs of the small run every test submits: 3 tasks × 2 repetitions.
const TASKS: usize = 3;
const REPETITIONS: u32 = 2;
const JOBS: u32 = TASKS as u32 * REPETITIONS;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lies in the workspace")
        .to_path_buf()
}

/// A tool the test needs: its path, or `None` (after saying why) to skip outside CI.
fn tool(what: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Some(found.clone());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is not installed (looked at {candidates:?}); scripts/test.sh installs it"
    );
    eprintln!("skipping: {what} not installed (scripts/test.sh installs it)");
    None
}

fn rotel_agent() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("BENCHFARM_ROTEL")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(repo_root().join(".tools/rotel/site-packages/rotel/rotel-agent"));
    tool("rotel (PyPI rotel, the OTLP receiver)", &candidates)
}

fn prometheus() -> Option<PathBuf> {
    tool(
        "prometheus (Debian package prometheus)",
        &[PathBuf::from("/usr/bin/prometheus")],
    )
}

/// A receiver process, killed when the test ends however it ends.
struct Daemon(Child);

impl Daemon {
    fn start(program: &Path, args: &[String], log: &Path) -> Daemon {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
fn wait_listening(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} not listening on {port} within 30 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (the endpoints here are all loopback and unencrypted):
/// (status code, body).
fn http_get(port: u16, path_and_query: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Submits the small scripted run and waits until all its jobs are done; returns the run id.
async fn run_small(farm: &mut Farm) -> String {
    let scripted = Scripted::new("scripted", TASKS);
    farm.write("suite.toml", &suite_toml(TASKS));
    farm.write("scripted.toml", &scripted.toml());
    let request = farm.plan(&plan_text(
        "suite.toml",
        REPETITIONS,
        &["scripted.toml"],
        "",
    ));
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["w1"]).await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, JOBS);
    wait_finished(&mut client, &run.run_id, Duration::from_secs(60), JOBS, 0).await;
    run.run_id
}

// ---------------------------------------------------------------------------------------------
// Traces

/// One span as rotel's debug exporter prints it.
#[derive(Debug, Clone, Default)]
struct Span {
    service: String,
    trace: String,
    parent: String,
    id: String,
    name: String,
    attributes: BTreeMap<String, String>,
}

/// Parses rotel's `--debug-log traces --debug-log-verbosity detailed` output: resource blocks
/// with `service.name`, then `Span #n` blocks with ids, name and attributes.
fn parse_rotel(log: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut service = String::new();
    let mut current: Option<Span> = None;
    let mut in_resource = false;
    for line in log.lines() {
        let t = line.trim();
        if t.starts_with("ResourceSpans #") {
            spans.extend(current.take());
            in_resource = true;
            continue;
        }
        if t.starts_with("ScopeSpans #") {
            in_resource = false;
            continue;
        }
        if t.starts_with("Span #") {
            spans.extend(current.take());
            current = Some(Span {
                service: service.clone(),
                ..Span::default()
            });
            continue;
        }
        if let Some(attr) = t.strip_prefix("-> ") {
            let Some((key, value)) = attr.split_once(": ") else {
                continue;
            };
            // Str(x), Int(x), Double(x), Bool(x) → x
            let value = value
                .split_once('(')
                .map(|(_, v)| v.trim_end_matches(')'))
                .unwrap_or(value)
                .to_string();
            if in_resource {
                if key == "service.name" {
                    service = value;
                }
            } else if let Some(span) = current.as_mut() {
                span.attributes.insert(key.to_string(), value);
            }
            continue;
        }
        if let (Some(span), Some((key, value))) = (current.as_mut(), t.split_once(" : ")) {
            let value = value.trim().to_string();
            match key.trim() {
                "Trace ID" => span.trace = value,
                "Parent ID" => span.parent = value,
                "ID" => span.id = value,
                "Name" => span.name = value,
                _ => {}
            }
        }
    }
    spans.extend(current);
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_is_one_trace_from_the_coordinator_into_the_worker() {
    let Some(rotel) = rotel_agent() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let log = dir.path().join("rotel.log");
    let _rotel = Daemon::start(
        &rotel,
        &[
            "start".into(),
            "--exporter".into(),
            "blackhole".into(),
            "--debug-log".into(),
            "traces".into(),
            "--debug-log-verbosity".into(),
            "detailed".into(),
            "--otlp-grpc-endpoint".into(),
            format!("127.0.0.1:{grpc}"),
            "--otlp-http-endpoint".into(),
            format!("127.0.0.1:{http}"),
            "--pid-file".into(),
            dir.path().join("rotel.pid").display().to_string(),
        ],
        &log,
    );
    wait_listening(grpc, "rotel (gRPC)", &log);
    wait_listening(http, "rotel (HTTP)", &log);

    // The coordinator exports over gRPC (the flag), the worker over HTTP/protobuf (the standard
    // variables), so one run covers both transports and the variables' precedence.
    let mut farm = Farm::start(CoordinatorOpts {
        extra: vec!["--otlp-endpoint".into(), format!("http://127.0.0.1:{grpc}")],
        ..CoordinatorOpts::default()
    })
    .await;
    farm.start_worker(
        "w1",
        WorkerOpts::default()
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &format!("http://127.0.0.1:{http}"),
            )
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_SERVICE_NAME", "benchfarm-worker-w1"),
    );
    let run_id = run_small(&mut farm).await;
    let mut client = farm.client().await;
    let jsonl = report_body(&mut client, &run_id, "jsonl").await;
    // `coordinator show JOB` of every job, while the coordinator still runs.
    let mut shown = HashMap::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let job = v["job"].as_str().unwrap().to_string();
        let (code, stdout, stderr) = farm.cli(&["show", &job]);
        assert_eq!(code, 0, "show {job}: {stderr}");
        shown.insert(job, stdout);
    }

    // Exit flushes what the batch exporters still hold: drain the worker, stop the coordinator.
    assert!(farm.worker("w1").signal("TERM"));
    assert!(
        farm.worker("w1")
            .wait_exit(Duration::from_secs(20))
            .is_some(),
        "the worker did not leave on SIGTERM"
    );
    farm.stop_and_open_store();

    // Every job: one coordinator `job` span, and worker `generate` and `grade` spans in its trace
    // whose ancestry (by parent id) reaches it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (spans, missing) = loop {
        let spans = parse_rotel(&std::fs::read_to_string(&log).unwrap());
        let missing = check_traces(&spans, &run_id);
        if missing.is_empty() || Instant::now() > deadline {
            break (spans, missing);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        missing.is_empty(),
        "{missing:#?}\n{} spans received:\n{:#?}",
        spans.len(),
        spans
            .iter()
            .map(|s| (&s.service, &s.name, &s.trace, &s.parent, &s.id))
            .collect::<Vec<_>>()
    );

    // The stored result of each job names its trace: the jsonl report and `coordinator show`.
    let job_traces: HashMap<String, String> = spans
        .iter()
        .filter(|s| s.service == "benchfarm-coordinator" && s.name == "job")
        .filter_map(|s| Some((s.attributes.get("job.id")?.clone(), s.trace.clone())))
        .collect();
    let mut lines = 0;
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let job = v["job"].as_str().unwrap();
        assert_eq!(
            v["trace_id"].as_str(),
            job_traces.get(job).map(String::as_str),
            "trace id stored with job {job}"
        );
        let trace = v["trace_id"].as_str().unwrap();
        assert!(
            shown[job].contains(&format!("trace: {trace}")),
            "coordinator show {job} does not print its trace {trace}:\n{}",
            shown[job]
        );
        lines += 1;
    }
    assert_eq!(lines, JOBS);
}

/// What is missing for each job of `run_id`; empty when every job has its complete trace.
fn check_traces(spans: &[Span], run_id: &str) -> Vec<String> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let descends_from = |span: &Span, ancestor: &str| {
        let mut at = span;
        for _ in 0..16 {
            if at.parent == ancestor {
                return true;
            }
            match by_id.get(at.parent.as_str()) {
                Some(next) => at = next,
                None => return false,
            }
        }
        false
    };
    let jobs: Vec<&Span> = spans
        .iter()
        .filter(|s| s.service == "benchfarm-coordinator" && s.name == "job")
        .filter(|s| s.attributes.get("run.id").map(String::as_str) == Some(run_id))
        .collect();
    let mut missing = Vec::new();
    let ids: BTreeSet<&str> = jobs
        .iter()
        .filter_map(|s| s.attributes.get("job.id").map(String::as_str))
        .collect();
    if ids.len() != JOBS as usize {
        missing.push(format!(
            "{} coordinator job spans for {JOBS} jobs",
            ids.len()
        ));
    }
    for job in &jobs {
        for name in ["generate", "grade"] {
            let found = spans.iter().any(|s| {
                s.service == "benchfarm-worker-w1"
                    && s.name == name
                    && s.trace == job.trace
                    && descends_from(s, &job.id)
            });
            if !found {
                missing.push(format!(
                    "job {:?}: no worker {name} span under job span {}",
                    job.attributes.get("job.id"),
                    job.id
                ));
            }
        }
        let verdict = job.attributes.get("verdict").map(String::as_str);
        if verdict != Some("pass") {
            missing.push(format!("job span {} has verdict {verdict:?}", job.id));
        }
    }
    // One trace for the whole run: the run's span is every job span's parent.
    if let Some(run) = spans
        .iter()
        .find(|s| s.name == "run" && s.attributes.get("run.id").map(String::as_str) == Some(run_id))
    {
        if let Some(stray) = jobs.iter().find(|j| j.parent != run.id) {
            missing.push(format!(
                "job span {} is not a child of the run span",
                stray.id
            ));
        }
    } else {
        missing.push("no run span".into());
    }
    missing
}

// ---------------------------------------------------------------------------------------------
// Metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_counts_the_runs_jobs() {
    let Some(prometheus) = prometheus() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (coordinator_metrics, worker_metrics, prom_port) = (free_port(), free_port(), free_port());
    let mut farm = Farm::start(CoordinatorOpts {
        extra: vec![
            "--metrics-listen".into(),
            format!("127.0.0.1:{coordinator_metrics}"),
        ],
        ..CoordinatorOpts::default()
    })
    .await;
    farm.start_worker(
        "w1",
        WorkerOpts::default().arg("--metrics-listen", &format!("127.0.0.1:{worker_metrics}")),
    );
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: coordinator\n    static_configs:\n      - targets: ['127.0.0.1:{coordinator_metrics}']\n  \
             - job_name: worker\n    static_configs:\n      - targets: ['127.0.0.1:{worker_metrics}']\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("prometheus.log");
    let _prometheus = Daemon::start(
        &prometheus,
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--log.level=warn".into(),
        ],
        &log,
    );
    wait_listening(prom_port, "prometheus", &log);
    run_small(&mut farm).await;

    let query = |expr: &str| -> Option<f64> {
        let (status, body) = http_get(prom_port, &format!("/api/v1/query?query={}", encode(expr)));
        assert_eq!(status, 200, "{expr}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
    };
    let expect = |expr: &str, want: f64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = query(expr);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus: {expr} = {got:?}, expected {want}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let jobs = f64::from(JOBS);
    expect(r#"up{job="coordinator"}"#, 1.0);
    expect(r#"up{job="worker"}"#, 1.0);
    expect(
        r#"sum(benchfarm_jobs_total{job="coordinator", state="done"})"#,
        jobs,
    );
    expect(r#"sum(benchfarm_results_total{verdict="pass"})"#, jobs);
    expect(r#"sum(benchfarm_job_duration_seconds_count)"#, jobs);
    expect(r#"sum(benchfarm_workers_connected)"#, 1.0);
    expect(r#"sum(benchfarm_jobs{state="queued"})"#, 0.0);
    expect(
        r#"sum(benchfarm_worker_jobs_total{outcome="succeeded"})"#,
        jobs,
    );
    expect(r#"benchfarm_worker_connected"#, 1.0);
}

// ---------------------------------------------------------------------------------------------
// Dashboards

/// Every string value under the key `key`, anywhere in `v`.
fn strings_under<'a>(v: &'a serde_json::Value, key: &str, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, value) in map {
                if k == key
                    && let Some(s) = value.as_str()
                {
                    out.push(s);
                }
                strings_under(value, key, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                strings_under(item, key, out);
            }
        }
        _ => {}
    }
}

/// Every datasource uid `v` names (`"datasource": {"uid": …}`).
fn datasource_uids<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, value) in map {
                if k == "datasource" {
                    match value.get("uid").and_then(|u| u.as_str()) {
                        Some(uid) => out.push(uid),
                        None => out.push("<datasource without a uid>"),
                    }
                }
                datasource_uids(value, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                datasource_uids(item, out);
            }
        }
        _ => {}
    }
}

/// The dashboards, parsed: file name → JSON.
fn dashboards() -> BTreeMap<String, serde_json::Value> {
    let dir = repo_root().join("dashboards/json");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("__inputs") && !text.contains("${DS_"),
            "{}: an import placeholder; dashboards name provisioned datasources by uid",
            path.display()
        );
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        for key in ["uid", "title", "panels"] {
            assert!(v.get(key).is_some(), "{}: no {key}", path.display());
        }
        out.insert(path.file_name().unwrap().to_string_lossy().into(), v);
    }
    assert!(
        out.len() >= 3,
        "expected at least three dashboards in {}",
        dir.display()
    );
    out
}

/// The uids the datasource provisioning file defines (`uid: …` lines of its YAML).
fn provisioned_uids() -> BTreeSet<String> {
    let path = repo_root().join("dashboards/provisioning/datasources/benchfarm.yaml");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uid:"))
        .map(|uid| uid.trim().trim_matches('"').to_string())
        .collect()
}

#[test]
fn dashboards_name_only_provisioned_datasources() {
    let provisioned = provisioned_uids();
    assert!(
        provisioned.contains("benchfarm-prometheus") && provisioned.contains("benchfarm-tempo")
    );
    let provider = std::fs::read_to_string(
        repo_root().join("dashboards/provisioning/dashboards/benchfarm.yaml"),
    )
    .unwrap();
    assert!(provider.contains("type: file") && provider.contains("path:"));
    let mut uids_seen = BTreeSet::new();
    for (name, dashboard) in dashboards() {
        let mut uids = Vec::new();
        datasource_uids(&dashboard, &mut uids);
        assert!(!uids.is_empty(), "{name}: no panel names a datasource");
        for uid in uids {
            assert!(
                provisioned.contains(uid),
                "{name}: datasource uid {uid:?} is not provisioned ({provisioned:?})"
            );
            uids_seen.insert(uid.to_string());
        }
        // Every panel has a datasource of its own.
        for panel in dashboard["panels"].as_array().unwrap() {
            assert!(
                panel.get("datasource").is_some(),
                "{name}: panel {:?} has no datasource",
                panel["title"]
            );
        }
    }
    assert_eq!(
        uids_seen, provisioned,
        "a provisioned datasource no dashboard uses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_a_dashboard_queries_is_in_a_real_scrape() {
    let (coordinator_metrics, worker_metrics) = (free_port(), free_port());
    let mut farm = Farm::start(CoordinatorOpts {
        extra: vec![
            "--metrics-listen".into(),
            format!("127.0.0.1:{coordinator_metrics}"),
        ],
        ..CoordinatorOpts::default()
    })
    .await;
    farm.start_worker(
        "w1",
        WorkerOpts::default().arg("--metrics-listen", &format!("127.0.0.1:{worker_metrics}")),
    );
    run_small(&mut farm).await;
    // The worker samples its memory every 5 s: wait for the first sample.
    let deadline = Instant::now() + Duration::from_secs(15);
    let scrape = loop {
        let (s1, coordinator) = http_get(coordinator_metrics, "/metrics");
        let (s2, worker) = http_get(worker_metrics, "/metrics");
        assert_eq!((s1, s2), (200, 200));
        let scrape = format!("{coordinator}\n{worker}");
        if scrape.contains("benchfarm_worker_resident_memory_bytes") || Instant::now() > deadline {
            break scrape;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let exposed: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let name = regex::Regex::new(r"\bbenchfarm_[a-z0-9_]+").unwrap();
    let mut queried = BTreeSet::new();
    for (file, dashboard) in dashboards() {
        let mut queries = Vec::new();
        strings_under(&dashboard, "expr", &mut queries);
        strings_under(&dashboard, "definition", &mut queries);
        for q in queries {
            for m in name.find_iter(q) {
                queried.insert((m.as_str().to_string(), file.clone()));
            }
        }
    }
    assert!(
        queried.len() > 10,
        "the dashboards query few metrics: {queried:?}"
    );
    let absent: Vec<_> = queried
        .iter()
        .filter(|(metric, _)| !exposed.contains(metric.as_str()))
        .collect();
    assert!(
        absent.is_empty(),
        "queried by a dashboard but not in a scrape: {absent:?}\nexposed: {exposed:?}"
    );
}
