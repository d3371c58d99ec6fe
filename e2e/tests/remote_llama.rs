//! A remote model against a real OpenAI-compatible server: llama.cpp's own `llama-server`
//! (built by scripts/llama-server.sh from the llama-cpp-python sdist's tools/server sources,
//! linked against the llama.cpp our test build compiled) serving the default model on 127.0.0.1.
//!
//! One run with the GGUF as a local model and the same GGUF behind llama-server as a remote model,
//! the smoke suite's two greedy tasks: both are graded; the remote answers equal the local ones
//! (same weights, same chat template — the suite has a system message, so the model's Jinja
//! template and llama.cpp's built-in ChatML render the same prompt — greedy sampling, one thread
//! on both sides, so the same float reductions); the prompt token counts agree; TTFT and tok/s
//! are positive, fit in the wall time, and the two decode speeds are of one order.
//!
//! `$BENCHFARM_LLAMA_SERVER` names the binary (scripts/test.sh sets it); without it the test is
//! skipped outside CI and fails in CI.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use benchfarm_e2e::process::*;

/// The llama-server binary, or `None` (skipped) outside CI.
fn llama_server() -> Option<PathBuf> {
    match std::env::var_os("BENCHFARM_LLAMA_SERVER").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            assert!(
                std::env::var_os("CI").is_none(),
                "BENCHFARM_LLAMA_SERVER={other:?} is not a llama-server binary: scripts/test.sh builds it with scripts/llama-server.sh"
            );
            eprintln!(
                "skipping: set BENCHFARM_LLAMA_SERVER (scripts/llama-server.sh prints the path)"
            );
            None
        }
    }
}

/// A llama-server child, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Status of `GET path` on 127.0.0.1:port, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_server_answers_as_the_local_engine_does() {
    let Some(model) = default_model() else { return };
    let Some(binary) = llama_server() else { return };
    let mut farm = Farm::start(CoordinatorOpts::default()).await;
    let models = farm.path("models");
    std::fs::create_dir_all(&models).unwrap();
    let gguf = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::os::unix::fs::symlink(&model, &gguf).unwrap();

    let port = free_port();
    let log = std::fs::File::create(farm.path("logs/llama-server.log")).unwrap();
    let _server = Server(
        Command::new(&binary)
            .args([
                "-m",
                &gguf.display().to_string(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args([
                "-t",
                "1",
                "-c",
                "2048",
                "-np",
                "1",
                "--no-ui",
                "--no-warmup",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while http_status(port, "/health") != Some(200) {
        assert!(
            Instant::now() < deadline,
            "llama-server not healthy within 120 s:\n{}",
            log_tail(&farm.path("logs/llama-server.log"), 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    farm.write("smoke.toml", &smoke_suite(48));
    let url = format!("http://127.0.0.1:{port}/v1");
    let plan = format!(
        "{}[[models]]\nname = \"SmolLM2-135M-server\"\nremote = {{ url = \"{url}\", model = \"SmolLM2-135M\", max_concurrency = 1, timeout = 120, retries = 1 }}\n",
        smoke_plan(&gguf)
    );
    let request = farm.plan(&plan);
    // One worker, one thread for its local jobs: the server runs with one thread too.
    farm.start_worker(
        "w1",
        WorkerOpts::default()
            .models(&models)
            .arg("--remote", &format!("http://127.0.0.1:{port}")),
    );
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["w1"]).await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(600), 4, 0).await;
    for m in report["models"].as_array().unwrap() {
        assert_eq!(m["n"], 2, "both models graded: {m}");
    }
    let classes: Vec<&str> = report["hardware"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["class"].as_str().unwrap())
        .collect();
    assert!(
        classes.contains(&format!("remote-127-0-0-1-{port}-smollm2-135m").as_str()),
        "{classes:?}"
    );

    let store = farm.stop_and_open_store();
    let results = store.results_of_run(&run.run_id).unwrap();
    let jobs = store.jobs_of_run(&run.run_id).unwrap();
    let task_of = |job_id: &str| {
        jobs.iter()
            .find(|j| j.id == job_id)
            .unwrap()
            .task_id
            .clone()
    };
    for task in ["list-files", "count-lines"] {
        let of = |remote: bool| {
            results
                .iter()
                .find(|r| r.counted && task_of(&r.job_id) == task && r.remote.is_some() == remote)
                .unwrap_or_else(|| {
                    panic!(
                        "no {} result for {task}",
                        if remote { "remote" } else { "local" }
                    )
                })
        };
        let (local, remote) = (of(false), of(true));
        assert_eq!(
            remote.answer, local.answer,
            "{task}: greedy decoding of the same model and prompt gives the same answer"
        );
        let (l, t) = (&local.timings, &remote.timings);
        assert_eq!(
            t.prompt_tokens, l.prompt_tokens,
            "{task}: the same prompt, token for token"
        );
        assert_eq!(t.gen_tokens, l.gen_tokens, "{task}: {t:?} vs {l:?}");
        let call = remote.remote.as_ref().unwrap();
        assert_eq!(
            (call.http_status, call.retries, call.tokens_estimated),
            (200, 0, false)
        );
        assert!(
            t.ttft_ms > 0.0 && t.gen_ms > 0.0 && t.decode_tokens > 0,
            "{t:?}"
        );
        assert!(t.wall_ms >= t.ttft_ms + t.gen_ms, "{t:?}");
        assert!(
            t.prompt_ms > 0.0,
            "llama-server reports its prompt time: {t:?}"
        );
        let remote_tps = f64::from(t.decode_tokens) / (t.decode_ms / 1000.0);
        let local_tps = f64::from(l.decode_tokens) / (l.decode_ms / 1000.0);
        eprintln!(
            "{task}: local {local_tps:.1} tok/s, ttft {:.0} ms, wall {:.0} ms; remote {remote_tps:.1} tok/s, ttft {:.0} ms, wall {:.0} ms; {} prompt + {} generated tokens",
            l.ttft_ms, l.wall_ms, t.ttft_ms, t.wall_ms, t.prompt_tokens, t.gen_tokens
        );
        // The same llama.cpp on the same CPU with one thread: one order of magnitude, whatever
        // the machine's load (HTTP and streaming overhead only lower the remote figure).
        assert!(
            remote_tps > local_tps / 10.0 && remote_tps < local_tps * 3.0,
            "{task}: remote {remote_tps:.1} tok/s vs local {local_tps:.1} tok/s"
        );
    }
}
