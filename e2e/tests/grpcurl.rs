//! An outside client can use the server: grpcurl, which knows nothing of our protos, discovers the
//! services by reflection, checks health and calls the farm API. This is what an operator's tooling
//! (and any non-Rust client) relies on.
//!
//! grpcurl is found as `$GRPCURL`, else `grpcurl` on PATH, else `<workspace>/.tools/bin/grpcurl`
//! (scripts/test.sh puts it there). Without one the test is skipped, except in CI, where it fails.

use benchfarm_e2e::in_process;

use std::path::PathBuf;
use std::time::Duration;

use benchfarm_e2e::in_process::*;

/// The grpcurl binary, or `None` (test skipped) outside CI when there is none.
fn grpcurl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GRPCURL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        // Set explicitly but wrong is a mistake to report, not a reason to skip.
        assert!(path.is_file(), "GRPCURL={} is not a file", path.display());
        return Some(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("grpcurl"))
        .find(|candidate| candidate.is_file());
    if let Some(path) = on_path {
        return Some(path);
    }
    let tools = workspace().join(".tools/bin/grpcurl");
    if tools.is_file() {
        return Some(tools);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "grpcurl not found: run scripts/test.sh (it fetches .tools/bin/grpcurl) or set GRPCURL"
        );
    }
    eprintln!(
        "skipping: grpcurl not found (scripts/test.sh fetches it into .tools/bin; or set GRPCURL)"
    );
    None
}

/// The part of grpc/reflection/v1/reflection.proto that listing services needs (field numbers as
/// upstream; the fields left out are skipped on the wire).
const REFLECTION_V1_PROTO: &str = r#"
syntax = "proto3";
package grpc.reflection.v1;
service ServerReflection {
  rpc ServerReflectionInfo(stream ServerReflectionRequest) returns (stream ServerReflectionResponse);
}
message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string list_services = 7;
  }
}
message ServerReflectionResponse {
  string valid_host = 1;
  oneof message_response {
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}
message ListServiceResponse {
  repeated ServiceResponse service = 1;
}
message ServiceResponse {
  string name = 1;
}
message ErrorResponse {
  int32 error_code = 1;
  string error_message = 2;
}
"#;

/// grpcurl aimed at one plaintext server.
struct Grpcurl {
    bin: PathBuf,
    addr: String,
}

impl Grpcurl {
    /// Runs `grpcurl -plaintext [-d DATA] ADDR REST...` and returns its stdout; panics with its
    /// output when it fails. It is a child process awaited by tokio, so the in-process server keeps
    /// serving meanwhile.
    async fn run(&self, data: Option<&str>, rest: &[&str]) -> String {
        self.run_with(&[], data, rest).await
    }

    /// `run` with more flags before the address.
    async fn run_with(&self, flags: &[&str], data: Option<&str>, rest: &[&str]) -> String {
        let (ok, output) = self.attempt(flags, data, rest).await;
        assert!(ok, "grpcurl {rest:?} failed:\n{output}");
        output
    }

    /// Runs grpcurl; returns whether it succeeded, and its stdout (on success) or stdout and
    /// stderr (on failure).
    async fn attempt(&self, flags: &[&str], data: Option<&str>, rest: &[&str]) -> (bool, String) {
        let mut command = tokio::process::Command::new(&self.bin);
        // grpcurl's own limit, and ours around it in case it hangs before applying that.
        command.args(["-max-time", "20", "-plaintext"]).args(flags);
        if let Some(data) = data {
            command.args(["-d", data]);
        }
        command
            .arg(&self.addr)
            .args(rest)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(30), command.output())
            .await
            .unwrap_or_else(|_| panic!("grpcurl {rest:?} did not finish within 30 s"))
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", self.bin.display()));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            (true, stdout)
        } else {
            (false, format!("({}) {stdout}\n{stderr}", output.status))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_checks_describes_and_calls_the_server() {
    let Some(bin) = grpcurl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), Duration::from_secs(30)).await;
    let grpcurl = Grpcurl {
        bin,
        addr: server.addr.to_string(),
    };

    // Reflection as grpcurl speaks it: v1alpha for grpcurl 1.8, v1 for later ones. Each version
    // lists the other too, so both show whichever one grpcurl asked.
    let list = grpcurl.run(None, &["list"]).await;
    let services: Vec<&str> = list.lines().map(str::trim).collect();
    for service in [
        "benchfarm.v1.FarmService",
        "benchfarm.v1.WorkerService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            services.contains(&service),
            "`list` lacks {service}:\n{list}"
        );
    }

    // Reflection v1, which newer clients use, asked with its proto so that grpcurl does not need
    // reflection to call it: it must list our services and itself.
    let protos = tempfile::tempdir().unwrap();
    std::fs::write(
        protos.path().join("reflection_v1.proto"),
        REFLECTION_V1_PROTO,
    )
    .unwrap();
    let import = protos.path().to_str().unwrap();
    let v1 = grpcurl
        .run_with(
            &["-import-path", import, "-proto", "reflection_v1.proto"],
            Some(r#"{"listServices": ""}"#),
            &["grpc.reflection.v1.ServerReflection/ServerReflectionInfo"],
        )
        .await;
    for service in [
        "benchfarm.v1.FarmService",
        "benchfarm.v1.WorkerService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            v1.contains(&format!(r#""name": "{service}""#)),
            "reflection v1 does not list {service}:\n{v1}"
        );
    }

    // Health: the whole server ("") and each of our services, as load balancers and probes ask.
    for service in ["", "benchfarm.v1.FarmService", "benchfarm.v1.WorkerService"] {
        let request = format!(r#"{{"service":"{service}"}}"#);
        let health = grpcurl
            .run(Some(&request), &["grpc.health.v1.Health/Check"])
            .await;
        assert!(
            health.contains(r#""status": "SERVING""#),
            "health of {service:?}:\n{health}"
        );
    }

    let describe = grpcurl
        .run(None, &["describe", "benchfarm.v1.FarmService"])
        .await;
    assert!(
        describe.contains("SubmitRun"),
        "`describe` lacks SubmitRun:\n{describe}"
    );

    // Without a token the call is refused, while reflection and health above needed none.
    let refused = grpcurl
        .attempt(&[], Some("{}"), &["benchfarm.v1.FarmService/ListRuns"])
        .await;
    assert!(
        !refused.0 && refused.1.contains("Unauthenticated"),
        "ListRuns without a token was not refused as unauthenticated:\n{}",
        refused.1
    );

    // A real call, its request encoded by grpcurl from the reflected schema alone.
    let bearer = format!(
        "authorization: Bearer {}",
        in_process::api_token(&url(&server))
    );
    let runs = grpcurl
        .run_with(
            &["-H", &bearer],
            Some("{}"),
            &["benchfarm.v1.FarmService/ListRuns"],
        )
        .await;
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(&runs);
    assert!(
        matches!(parsed, Ok(ref v) if v.is_object()),
        "ListRuns answered:\n{runs}"
    );

    server.shutdown().await.unwrap();
}
