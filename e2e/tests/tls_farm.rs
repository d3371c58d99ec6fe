//! A whole farm over TLS, as processes: the real `coordinator serve --tls-cert/--tls-key`, workers
//! joining with `--ca` and the shared join token, and the CLI (`--ca`, env `BENCHFARM_TOKEN`)
//! submitting, reading the report and managing tokens. The CA is made by the test (rcgen).

use benchfarm_e2e::tls;

use std::time::Duration;

use benchfarm_e2e::process::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_over_tls_with_tokens() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = tls::make(pki_dir.path());
    let mut farm = Farm::start(CoordinatorOpts {
        tls: Some(FarmTls {
            ca: pki.ca.clone(),
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
        }),
        ..CoordinatorOpts::default()
    })
    .await;
    assert!(farm.url.starts_with("https://"));
    farm.start_worker("w1", WorkerOpts::default());
    farm.start_worker("w2", WorkerOpts::default());
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["w1", "w2"]).await;

    farm.write(
        "oracle.toml",
        "name = \"oracle\"\ntokens_per_second = 100000.0\n[answers]\n\
         \"parse-json\" = [\"jq '.services[] | select(.name == \\\"db\\\") | .port' config.json\"]\n",
    );
    let plan = farm.write(
        "plan.toml",
        &plan_text("agent-coding", 2, &["oracle.toml"], ""),
    );
    let plan = plan.display().to_string();

    // The CLI, as a user runs it: --ca for the https URL, the operator token from the environment.
    let (code, stdout, stderr) = farm.cli(&["submit", &plan, "--wait", "--format", "json"]);
    assert_eq!(code, 0, "submit --wait failed:\n{stderr}");
    let run_id = stdout.lines().next().unwrap().to_string();
    let body: String = stdout.lines().skip(1).collect::<Vec<_>>().join("\n");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["jobs_total"], 20);
    assert_eq!(report["jobs_graded"], 20, "{body}");
    assert_eq!(report["models"][0]["name"], "oracle");
    // Both workers took part, over TLS.
    let (code, md, _) = farm.cli(&["report", &run_id, "--format", "jsonl"]);
    assert_eq!(code, 0);
    for name in ["w1", "w2"] {
        assert!(
            md.contains(&format!("\"worker_name\":\"{name}\"")),
            "{name} ran nothing"
        );
    }

    // Without the CA the same URL is refused; without a token, the call is.
    let mut no_ca = std::process::Command::new(bin_dir().join("coordinator"));
    let out = no_ca
        .args(["--coordinator", &farm.url, "status"])
        .env("BENCHFARM_TOKEN", farm.api_token().unwrap())
        .env_remove("BENCHFARM_CA")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ca"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _, stderr) = farm.cli_as(None, &["status"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("missing bearer token"), "{stderr}");

    // Tokens from the CLI: a submitter may read but not cancel; revoked, it may do nothing.
    let (code, token, stderr) = farm.cli(&["tokens", "add", "--role", "submitter", "--name", "ci"]);
    assert_eq!(code, 0, "{stderr}");
    let token = token.trim().to_string();
    assert!(token.starts_with("bf_"));
    let (code, listed, _) = farm.cli(&["tokens", "list"]);
    assert_eq!(code, 0);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("ci ") && l.contains("submitter")),
        "{listed}"
    );
    assert!(!listed.contains(&token), "tokens list printed a token");
    let (code, _, _) = farm.cli_as(Some(&token), &["status", &run_id]);
    assert_eq!(code, 0);
    let (code, _, stderr) = farm.cli_as(Some(&token), &["cancel", &run_id]);
    assert_ne!(code, 0);
    assert!(stderr.contains("needs the operator role"), "{stderr}");
    let (code, _, stderr) = farm.cli(&["tokens", "revoke", "ci"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = farm.cli_as(Some(&token), &["status"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("invalid or revoked token"), "{stderr}");

    // The token files the coordinator made are private.
    use std::os::unix::fs::PermissionsExt;
    for file in ["api.token", "worker.token", "tokens.json"] {
        let mode = std::fs::metadata(farm.data().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
    }
    drop(client);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
