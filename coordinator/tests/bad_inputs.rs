//! The bad-input table: malformed inputs of every kind the coordinator and its client read — plan
//! files, suites, scripted models, GGUF headers, command lines, gRPC requests and worker streams —
//! each with the exact error it must get (the code and the field it names), and, for everything
//! that reaches the server, proof that nothing was stored.
//!
//! One row per input; [`Input`] has a variant per kind of input and [`Call`] carries the request
//! metadata, so rows for tokens of the wrong role are a `Call` with an `authorization` header and
//! the code they must get. The server is a real one on 127.0.0.1:0 with small limits, so the limit
//! rows are cheap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use benchfarm_coordinator::auth::Role;
use benchfarm_coordinator::cli::connect::{FarmClient, Target};
use benchfarm_coordinator::grpc::server::{self, RunningServer, ServeConfig};
use benchfarm_coordinator::limits::Limits;
use benchfarm_coordinator::scheduler;
use benchfarm_coordinator::store::Store;
use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::model_service_client::ModelServiceClient;
use benchfarm_proto::v1::worker_message::Kind as Up;
use benchfarm_proto::v1::worker_service_client::WorkerServiceClient;
use benchfarm_suite::SuiteLimits;
use tonic::Code;

/// The server's limits in this test: small, so that inputs over them stay small.
const LIMITS: Limits = Limits {
    answer_bytes: 1024,
    suite: SuiteLimits {
        tasks: 20,
        checks: 50,
        regex_bytes: 64,
        regex_compiled_bytes: 100_000,
    },
    max_tokens: 4096,
    labels: 4,
    label_bytes: 32,
    name_bytes: 64,
    models_per_run: 4,
    worker_slots: 8,
    worker_in_flight: 16,
};
const MAX_JOBS_PER_RUN: u32 = 1000;

const SUITE: &str = "name = \"s\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contains = \"x\" }]\n";
const SCRIPTED: &str = "name = \"m\"\n[answers]\nt = [\"x\"]\n";

/// Which token a gRPC row sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Token {
    /// The one the call needs: the operator token for FarmService, the join token for Connect.
    #[default]
    Right,
    /// None at all.
    Missing,
    /// A token the server never made.
    Wrong,
    /// A real token of this role.
    Of(Role),
}

/// The server's tokens, once it started: operator (its api.token), join (worker.token), and a
/// submitter token added through the API.
static TOKENS: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();

/// Request metadata of a gRPC row: its token, and more headers.
#[derive(Debug, Clone, Default)]
struct Call {
    token: Token,
    metadata: Vec<(&'static str, String)>,
}

impl Call {
    fn with(token: Token) -> Call {
        Call {
            token,
            metadata: Vec::new(),
        }
    }

    /// The request, with the row's token for a call that needs `right`.
    fn request<T>(&self, message: T, right: Role) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let [operator, join, submitter] = TOKENS.get().expect("the server started");
        let token = match self.token {
            Token::Right => Some(right),
            Token::Missing | Token::Wrong => None,
            Token::Of(role) => Some(role),
        }
        .map(|role| match role {
            Role::Operator => operator.clone(),
            Role::Worker => join.clone(),
            Role::Submitter => submitter.clone(),
        })
        .or((self.token == Token::Wrong).then(|| "bf_no-such-token".to_string()));
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        for (key, value) in &self.metadata {
            request
                .metadata_mut()
                .insert(*key, value.parse().expect("metadata value"));
        }
        request
    }
}

/// One malformed input.
enum Input {
    /// A plan file's bytes, resolved as `coordinator submit` resolves it (beside the suite
    /// `s.toml` and the scripted model `m.toml`).
    Plan(Vec<u8>),
    /// A suite, loaded under the server's suite limits.
    Suite(String),
    /// A scripted model file.
    Scripted(String),
    /// A GGUF file's bytes.
    Gguf(Vec<u8>),
    /// `coordinator` command-line arguments.
    Cli(Vec<&'static str>),
    /// `FarmService.SubmitRun`.
    Submit(Call, Box<pb::SubmitRunRequest>),
    /// `FarmService.RegradeRun`.
    Regrade(Call, pb::RegradeRunRequest),
    /// `FarmService.GetReport`.
    Report(Call, pb::GetReportRequest),
    /// `WorkerService.Connect`: these messages, in order.
    Connect(Call, Vec<pb::WorkerMessage>),
    /// `ModelService.UploadModel`: these messages, in order.
    Upload(Call, Vec<pb::UploadChunk>),
    /// `ModelService.FetchModel`.
    Fetch(Call, pb::FetchModelRequest),
}

/// What a row must get.
#[derive(Debug)]
enum Expect {
    /// An error of this kind (a gRPC code, or "plan" / "suite" / "scripted" / "gguf" / "usage")
    /// naming this field (gRPC and scripted: the message starts with it; plan and suite: the
    /// error's own field; gguf and usage: the message contains it).
    Error(&'static str, &'static str),
    /// A worker stream that is not refused, but whose messages count for nothing.
    Ignored,
}

use Expect::Error;

/// What a row got.
#[derive(Debug)]
enum Got {
    /// A local parser's error: (kind, field, message).
    Local(&'static str, String, String),
    /// A gRPC status.
    Status(Code, String),
    /// A worker stream the server kept open.
    Open,
}

struct Row {
    name: &'static str,
    input: Input,
    expect: Expect,
}

fn row(name: &'static str, input: Input, expect: Expect) -> Row {
    Row {
        name,
        input,
        expect,
    }
}

fn scripted_model(text: &str) -> pb::ModelRef {
    pb::ModelRef {
        name: "m".into(),
        sha256: benchfarm_modelfile::sha256_bytes(text.as_bytes()),
        size_bytes: 0,
        source: Some(pb::model_ref::Source::ScriptedToml(text.into())),
        context_length: 0,
    }
}

fn gguf_model(name: &str, file_name: &str, context_length: u64) -> pb::ModelRef {
    pb::ModelRef {
        name: name.into(),
        sha256: "ab".repeat(32),
        size_bytes: 1000,
        source: Some(pb::model_ref::Source::Gguf(pb::GgufModel {
            file_name: file_name.into(),
        })),
        context_length,
    }
}

/// A valid submit sent with `token`.
fn submit_as(token: Token) -> Input {
    match submit(|_| {}) {
        Input::Submit(_, req) => Input::Submit(Call::with(token), req),
        _ => unreachable!(),
    }
}

/// A valid submit, changed by `f`.
fn submit(f: impl FnOnce(&mut pb::SubmitRunRequest)) -> Input {
    let mut req = pb::SubmitRunRequest {
        suite_toml: SUITE.into(),
        models: vec![scripted_model(SCRIPTED)],
        repetitions: 1,
        label: "plan.toml".into(),
        ..pb::SubmitRunRequest::default()
    };
    f(&mut req);
    Input::Submit(Call::default(), Box::new(req))
}

fn suite_with(task: &str) -> String {
    format!("name = \"s\"\nversion = \"1\"\n[[tasks]]\n{task}\n")
}

fn worker(kind: Up) -> pb::WorkerMessage {
    pb::WorkerMessage { kind: Some(kind) }
}

fn hello(id: &str) -> pb::WorkerMessage {
    worker(Up::Hello(pb::Hello {
        worker_id: id.into(),
        slots: 1,
        threads: 1,
        ..pb::Hello::default()
    }))
}

fn forged_result(job_id: &str) -> pb::WorkerMessage {
    worker(Up::Result(pb::JobResult {
        key: Some(pb::JobKey {
            job_id: job_id.into(),
            attempt: 1,
        }),
        answer: "x".into(),
        grade: Some(pb::Grade {
            verdict: pb::Verdict::Pass as i32,
            score: 1.0,
            ..pb::Grade::default()
        }),
        ..pb::JobResult::default()
    }))
}

fn gguf_header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(version.to_le_bytes());
    b.extend(tensors.to_le_bytes());
    b.extend(kvs.to_le_bytes());
    b
}

/// An upload of `data` announced as `sha256` (its own digest when `None`).
fn upload(data: &[u8], sha256: Option<&str>, f: impl FnOnce(&mut pb::UploadHeader)) -> Input {
    let mut header = pb::UploadHeader {
        name: "up".into(),
        sha256: sha256.map_or_else(|| benchfarm_modelfile::sha256_bytes(data), str::to_string),
        size_bytes: data.len() as u64,
        offset: 0,
        file_name: "up.gguf".into(),
    };
    f(&mut header);
    Input::Upload(
        Call::default(),
        vec![
            pb::UploadChunk {
                kind: Some(pb::upload_chunk::Kind::Header(header)),
            },
            pb::UploadChunk {
                kind: Some(pb::upload_chunk::Kind::Data(data.to_vec())),
            },
        ],
    )
}

fn fetch(call: Call, sha256: &str, offset: u64) -> Input {
    Input::Fetch(
        call,
        pb::FetchModelRequest {
            sha256: sha256.into(),
            offset,
        },
    )
}

fn rows() -> Vec<Row> {
    let long = "x".repeat(65);
    vec![
        // Plan files.
        // `suite` is optional beside `throughput`, so an empty plan is first missing its models.
        row("plan: empty", Input::Plan(b"".to_vec()), Error("plan", "models")),
        row("plan: neither suite nor throughput", Input::Plan(b"[[models]]\nscripted = \"m.toml\"\n".to_vec()), Error("plan", "suite")),
        row("plan: bad throughput test", Input::Plan(b"suite = \"s.toml\"\nthroughput = [\"tg8\", \"pp\"]\n[[models]]\nscripted = \"m.toml\"\n".to_vec()), Error("plan", "throughput[1]")),
        row("plan: truncated", Input::Plan(b"suite = \"s.to".to_vec()), Error("plan", "suite")),
        row("plan: wrong type", Input::Plan(b"suite = \"s.toml\"\nrepetitions = \"three\"\n[[models]]\nscripted = \"m.toml\"\n".to_vec()), Error("plan", "repetitions")),
        row("plan: unknown field", Input::Plan(b"suite = \"s.toml\"\nrepetitons = 3\n[[models]]\nscripted = \"m.toml\"\n".to_vec()), Error("plan", "repetitons")),
        row("plan: zero repetitions", Input::Plan(b"suite = \"s.toml\"\nrepetitions = 0\n[[models]]\nscripted = \"m.toml\"\n".to_vec()), Error("plan", "repetitions")),
        row("plan: repetitions over u32", Input::Plan(b"suite = \"s.toml\"\nrepetitions = 99999999999\n[[models]]\nscripted = \"m.toml\"\n".to_vec()), Error("plan", "repetitions")),
        row("plan: invalid UTF-8", Input::Plan(b"suite = \"s\xff.toml\"\n".to_vec()), Error("plan", "(file)")),
        row("plan: path traversal to a scripted model", Input::Plan(b"suite = \"s.toml\"\n[[models]]\nscripted = \"../../no/such/m.toml\"\n".to_vec()), Error("plan", "models[0].scripted")),
        row("plan: no models", Input::Plan(b"suite = \"s.toml\"\nmodels = []\n".to_vec()), Error("plan", "models")),
        row("plan: negative RAM", Input::Plan(b"suite = \"s.toml\"\nrequire = { min_ram_gb = -1 }\n[[models]]\nscripted = \"m.toml\"\n".to_vec()), Error("plan", "require.min_ram_gb")),
        row("plan: unknown placement", Input::Plan(b"suite = \"s.toml\"\nplacement = \"everywhere\"\n[[models]]\nscripted = \"m.toml\"\n".to_vec()), Error("plan", "placement")),
        row("plan: an empty registered model", Input::Plan(b"suite = \"s.toml\"\n[[models]]\nregistered = \"\"\n".to_vec()), Error("plan", "models[0].registered")),
        row("plan: a model with both path and scripted", Input::Plan(b"suite = \"s.toml\"\n[[models]]\nscripted = \"m.toml\"\npath = \"m.gguf\"\n".to_vec()), Error("plan", "models[0]")),
        // Suites.
        row("suite: empty", Input::Suite(String::new()), Error("suite", "name")),
        row("suite: duplicate task ids", Input::Suite(format!("{}[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{{ contains = \"y\" }}]\n", SUITE)), Error("suite", "tasks[t].id")),
        row("suite: wrong type", Input::Suite(suite_with("id = \"t\"\ncategory = \"c\"\nprompt = 3\npass = [{ contains = \"x\" }]")), Error("suite", "tasks[t].prompt")),
        row("suite: unknown field", Input::Suite(suite_with("id = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contains = \"x\" }]\ngrader = \"gpt\"")), Error("suite", "tasks[t].grader")),
        row("suite: huge max_tokens", Input::Suite(suite_with("id = \"t\"\ncategory = \"c\"\nprompt = \"p\"\nmax_tokens = 99999999999\npass = [{ contains = \"x\" }]")), Error("suite", "tasks[t].max_tokens")),
        row("suite: regex that does not compile", Input::Suite(suite_with("id = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ regex = \"(\" }]")), Error("suite", "tasks[t].pass[0].regex")),
        row("suite: regex over max_regex_bytes", Input::Suite(suite_with(&format!("id = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{{ regex = \"{}\" }}]", "a".repeat(65)))), Error("suite", "tasks[t].pass[0].regex")),
        row("suite: regex over max_regex_compiled_bytes", Input::Suite(suite_with("id = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ regex = '\\w{300}' }]")), Error("suite", "tasks[t].pass[0].regex")),
        row("suite: tasks over max_suite_tasks", Input::Suite((0..21).fold("name = \"s\"\nversion = \"1\"\n".to_string(), |s, i| s + &format!("[[tasks]]\nid = \"t{i}\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{{ contains = \"x\" }}]\n"))), Error("suite", "tasks")),
        row("suite: checks over max_suite_checks", Input::Suite(suite_with(&format!("id = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{}]", vec!["{ contains = \"x\" }"; 51].join(", ")))), Error("suite", "tasks[t].pass[50]")),
        row("suite: task id with a path", Input::Suite(suite_with("id = \"../etc\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contains = \"x\" }]")), Error("suite", "tasks[0].id")),
        // Scripted models.
        row("scripted: empty", Input::Scripted(String::new()), Error("scripted", "m.toml:1:1: missing field `name`")),
        row("scripted: unknown field", Input::Scripted("name = \"m\"\nfault = 1\n".into()), Error("scripted", "m.toml:2:1: unknown field `fault`")),
        row("scripted: zero speed", Input::Scripted("name = \"m\"\ntokens_per_second = 0.0\n".into()), Error("scripted", "m.toml:2:21: tokens_per_second must be a positive number")),
        row("scripted: attempt 0", Input::Scripted("name = \"m\"\n[[faults]]\ntask = \"t\"\nattempts = [0]\nkind = \"fail\"\n".into()), Error("scripted", "m.toml:4:12: fault attempts are numbered from 1")),
        row("scripted: unknown fault kind", Input::Scripted("name = \"m\"\n[[faults]]\ntask = \"t\"\nkind = \"explode\"\n".into()), Error("scripted", "m.toml:4:8: unknown variant `explode`")),
        // GGUF headers.
        row("gguf: empty", Input::Gguf(Vec::new()), Error("gguf", "truncated at byte 0")),
        row("gguf: bad magic", Input::Gguf(b"GGML\x03\0\0\0".to_vec()), Error("gguf", "bad magic")),
        row("gguf: unsupported version", Input::Gguf(gguf_header(9, 0, 0)), Error("gguf", "unsupported GGUF version 9")),
        row("gguf: absurd tensor count", Input::Gguf(gguf_header(3, u64::MAX, 0)), Error("gguf", "header claims 18446744073709551615")),
        row("gguf: truncated metadata", Input::Gguf([gguf_header(3, 0, 1), vec![5, 0, 0]].concat()), Error("gguf", "truncated at byte 24")),
        // Command lines.
        row("cli: unknown verb", Input::Cli(vec!["frobnicate"]), Error("usage", "frobnicate")),
        row("cli: a port that is not one", Input::Cli(vec!["serve", "--listen", "127.0.0.1:99999"]), Error("usage", "--listen")),
        row("cli: a negative limit", Input::Cli(vec!["serve", "--max-answer-bytes", "-1"]), Error("usage", "--max-answer-bytes")),
        row("cli: a limit that is not a number", Input::Cli(vec!["serve", "--max-suite-tasks", "many"]), Error("usage", "--max-suite-tasks")),
        row("cli: a missing plan", Input::Cli(vec!["submit"]), Error("usage", "<PLAN>")),
        // gRPC: SubmitRun.
        row("submit: empty", submit(|r| *r = pb::SubmitRunRequest::default()), Error("InvalidArgument", "suite_toml")),
        row("submit: no models", submit(|r| r.models.clear()), Error("InvalidArgument", "models")),
        row("submit: bad throughput test", submit(|r| r.throughput = vec!["tg0".into()]), Error("InvalidArgument", "throughput[0]")),
        row("submit: throughput test too long", submit(|r| r.throughput = vec!["pp99999".into()]), Error("InvalidArgument", "throughput[0]")),
        row("submit: zero repetitions", submit(|r| r.repetitions = 0), Error("InvalidArgument", "repetitions")),
        row("submit: absurd repetitions", submit(|r| r.repetitions = u32::MAX), Error("InvalidArgument", "the run expands")),
        row("submit: unknown placement", submit(|r| r.placement = 99), Error("InvalidArgument", "placement")),
        row("submit: a digest that is not one", submit(|r| r.models[0].sha256 = "zz".into()), Error("InvalidArgument", "models[0].sha256")),
        row("submit: a scripted model that is not its digest", submit(|r| r.models[0].sha256 = "0".repeat(64)), Error("InvalidArgument", "models[0].sha256")),
        row("submit: a broken scripted model", submit(|r| r.models[0] = scripted_model("name = \"m\"\n[answers]\nt = []\n")), Error("InvalidArgument", "models[0].scripted_toml:3:5")),
        row("submit: a model without a source", submit(|r| r.models[0].source = None), Error("InvalidArgument", "models[0].source")),
        row("submit: path traversal in a file name", submit(|r| r.models[0] = gguf_model("g", "../../etc/passwd", 0)), Error("InvalidArgument", "models[0].gguf.file_name")),
        row("submit: a model name over max_name_bytes", submit(|r| r.models[0].name = long.clone()), Error("InvalidArgument", "models[0].name")),
        row("submit: models over max_models_per_run", submit(|r| r.models = (0..5).map(|i| gguf_model(&format!("g{i}"), "g.gguf", 0)).collect()), Error("InvalidArgument", "models")),
        row("submit: the same model name twice", submit(|r| r.models = vec![gguf_model("g", "g.gguf", 0), gguf_model("g", "h.gguf", 0)]), Error("InvalidArgument", "models")),
        row("submit: max_tokens over the model's context", submit(|r| { r.models[0] = gguf_model("g", "g.gguf", 128); r.suite_toml = suite_with("id = \"t\"\ncategory = \"c\"\nprompt = \"p\"\nmax_tokens = 256\npass = [{ contains = \"x\" }]"); }), Error("InvalidArgument", "suite_toml: tasks[t].max_tokens")),
        row("submit: max_tokens over max_tokens_cap", submit(|r| r.suite_toml = suite_with("id = \"t\"\ncategory = \"c\"\nprompt = \"p\"\nmax_tokens = 5000\npass = [{ contains = \"x\" }]")), Error("InvalidArgument", "suite_toml: tasks[t].max_tokens")),
        row("submit: a label over max_name_bytes", submit(|r| r.label = long.clone()), Error("InvalidArgument", "label")),
        row("submit: labels over max_labels", submit(|r| r.require = Some(pb::Requirements { labels: (0..5).map(|i| (format!("k{i}"), "v".into())).collect(), ..pb::Requirements::default() })), Error("InvalidArgument", "require.labels")),
        row("submit: a label over max_label_bytes", submit(|r| r.require = Some(pb::Requirements { labels: [("k".to_string(), "v".repeat(33))].into(), ..pb::Requirements::default() })), Error("InvalidArgument", "require.labels[\"k\"]")),
        row("submit: NaN RAM", submit(|r| r.require = Some(pb::Requirements { min_ram_gb: f64::NAN, ..pb::Requirements::default() })), Error("InvalidArgument", "require.min_ram_gb")),
        row("submit: an invalid suite", submit(|r| r.suite_toml = "name = \"s\"\n".into()), Error("InvalidArgument", "suite_toml:")),
        row("submit: a registered model nobody registered", submit(|r| r.models[0].source = Some(pb::model_ref::Source::Registered("nope".into()))), Error("InvalidArgument", "models[0].registered: no model is named")),
        row("submit: a registered sha256 prefix too short to trust", submit(|r| r.models[0].source = Some(pb::model_ref::Source::Registered("abc".into()))), Error("InvalidArgument", "models[0].registered:")),
        row("submit: oversized message", submit(|r| r.label = "x".repeat(5 << 20)), Error("OutOfRange", "")),
        // gRPC: other FarmService requests.
        row("regrade: an unknown run", Input::Regrade(Call::default(), pb::RegradeRunRequest { run_id: "nope".into(), suite_toml: String::new() }), Error("NotFound", "no run nope")),
        row("regrade: a suite that does not load", Input::Regrade(Call::default(), pb::RegradeRunRequest { run_id: "nope".into(), suite_toml: "x = ".into() }), Error("InvalidArgument", "suite_toml:")),
        row("report: an unknown format", Input::Report(Call::default(), pb::GetReportRequest { run_id: "nope".into(), format: 42 }), Error("InvalidArgument", "format")),
        // gRPC: worker streams.
        // Tokens: missing, wrong, and of the wrong role, on the API and on the worker stream.
        row("submit: no token", submit_as(Token::Missing), Error("Unauthenticated", "SubmitRun: missing bearer token")),
        row("submit: a token the server never made", submit_as(Token::Wrong), Error("Unauthenticated", "SubmitRun: invalid or revoked token")),
        row("submit: a worker's token", submit_as(Token::Of(Role::Worker)), Error("PermissionDenied", "SubmitRun: needs the submitter role")),
        row("regrade: a submitter's token", Input::Regrade(Call::with(Token::Of(Role::Submitter)), pb::RegradeRunRequest { run_id: "nope".into(), suite_toml: String::new() }), Error("PermissionDenied", "RegradeRun: needs the operator role")),
        row("report: a worker's token", Input::Report(Call::with(Token::Of(Role::Worker)), pb::GetReportRequest { run_id: "nope".into(), format: pb::ReportFormat::Markdown.into() }), Error("PermissionDenied", "GetReport: needs the submitter role")),
        row("connect: no token", Input::Connect(Call::with(Token::Missing), vec![hello("w-no-token")]), Error("Unauthenticated", "Connect: missing bearer token")),
        row("connect: an operator's token", Input::Connect(Call::with(Token::Of(Role::Operator)), vec![hello("w-operator")]), Error("PermissionDenied", "Connect: needs the worker role")),
        row("connect: a hello with 40 labels", Input::Connect(Call::default(), vec![worker(Up::Hello(pb::Hello { worker_id: "w-labels".into(), labels: (0..40).map(|i| (format!("k{i}"), "v".to_string())).collect(), ..pb::Hello::default() }))]), Error("InvalidArgument", "hello.labels")),
        row("connect: no hello first", Input::Connect(Call::default(), vec![worker(Up::Heartbeat(pb::Heartbeat::default()))]), Error("InvalidArgument", "the first message on Connect must be a hello")),
        row("connect: a hello without an id", Input::Connect(Call::default(), vec![hello(" ")]), Error("InvalidArgument", "hello.worker_id")),
        row("connect: a hello listing too many jobs", Input::Connect(Call::default(), vec![worker(Up::Hello(pb::Hello { worker_id: "w".into(), running: vec![pb::JobKey::default(); 100_001], ..pb::Hello::default() }))]), Error("InvalidArgument", "hello.running + hello.unacknowledged")),
        // gRPC: model uploads and fetches. A bad upload stores nothing (checked after the rows).
        row("upload: bytes that are not their sha256", upload(&gguf_header(3, 0, 0), Some(&"ab".repeat(32)), |_| {}), Error("InvalidArgument", "header.sha256: the bytes hash to")),
        row("upload: not a GGUF file", upload(b"PK\x03\x04 a zip, not a model", None, |_| {}), Error("InvalidArgument", "data: not a GGUF file")),
        row("upload: a GGUF header cut short", upload(&[gguf_header(3, 0, 1), vec![5, 0, 0]].concat(), None, |_| {}), Error("InvalidArgument", "data: not a GGUF file")),
        row("upload: an offset the coordinator does not hold", upload(&gguf_header(3, 0, 0), None, |h| h.offset = 8), Error("FailedPrecondition", "header.offset: 8, but the coordinator holds 0 bytes")),
        row("upload: an offset past the end", upload(&gguf_header(3, 0, 0), None, |h| h.offset = 999), Error("OutOfRange", "header.offset")),
        row("upload: more bytes than announced", upload(&gguf_header(3, 0, 0), None, |h| h.size_bytes = 10), Error("InvalidArgument", "data: more than header.size_bytes")),
        row("upload: a digest that is not one", upload(&gguf_header(3, 0, 0), Some("zz"), |_| {}), Error("InvalidArgument", "header.sha256: not a sha256")),
        row("upload: a name over max_name_bytes", upload(&gguf_header(3, 0, 0), None, |h| h.name = long.clone()), Error("InvalidArgument", "header.name")),
        row("upload: data before the header", Input::Upload(Call::default(), vec![pb::UploadChunk { kind: Some(pb::upload_chunk::Kind::Data(b"GGUF".to_vec())) }]), Error("InvalidArgument", "the first message of an upload must be its header")),
        row("upload: a submitter's token", match upload(&gguf_header(3, 0, 0), None, |_| {}) { Input::Upload(_, m) => Input::Upload(Call::with(Token::Of(Role::Submitter)), m), _ => unreachable!() }, Error("PermissionDenied", "UploadModel: needs the operator role")),
        row("fetch: a model nobody registered", fetch(Call::default(), &"ab".repeat(32), 0), Error("NotFound", "sha256: no model")),
        row("fetch: a digest that is not one", fetch(Call::default(), "../../etc/passwd", 0), Error("InvalidArgument", "sha256:")),
        row("fetch: an operator's token", fetch(Call::with(Token::Of(Role::Operator)), &"ab".repeat(32), 0), Error("PermissionDenied", "FetchModel: needs the worker role")),
        row("connect: a forged result for a job never assigned", Input::Connect(Call::default(), vec![hello("forger"), forged_result("0190abcd-0000-7000-8000-000000000001-0000000000")]), Expect::Ignored),
        row("connect: a result without a key", Input::Connect(Call::default(), vec![hello("keyless"), worker(Up::Result(pb::JobResult::default()))]), Expect::Ignored),
        row("connect: a result with an unknown verdict", Input::Connect(Call::default(), vec![hello("liar"), worker(Up::Result(pb::JobResult { key: Some(pb::JobKey { job_id: "x-0000000000".into(), attempt: 1 }), grade: Some(pb::Grade { verdict: 99, ..pb::Grade::default() }), ..pb::JobResult::default() }))]), Expect::Ignored),
    ]
}

/// What a local parser said: (kind, field, message).
fn local(input: &Input, dir: &Path) -> Option<(&'static str, String, String)> {
    match input {
        Input::Plan(bytes) => {
            let path = dir.join("plan.toml");
            std::fs::write(&path, bytes).unwrap();
            let e = benchfarm_coordinator::plan::load(&path).expect_err("refused");
            Some(("plan", e.field.clone(), e.to_string()))
        }
        Input::Suite(text) => {
            let e = benchfarm_suite::Suite::parse_with_limits(text, "s.toml", LIMITS.suite)
                .expect_err("refused");
            let first = e.diagnostics().first().expect("a diagnostic");
            Some(("suite", first.field.clone(), e.to_string()))
        }
        Input::Scripted(text) => {
            let e = benchfarm_modelfile::ScriptedModel::parse(text, "m.toml").expect_err("refused");
            Some(("scripted", String::new(), e.to_string()))
        }
        Input::Gguf(bytes) => {
            let e =
                benchfarm_modelfile::parse_gguf(std::io::Cursor::new(bytes), bytes.len() as u64)
                    .expect_err("refused");
            Some(("gguf", String::new(), e.to_string()))
        }
        Input::Cli(args) => {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_coordinator"))
                .args(args)
                .output()
                .unwrap();
            // A usage error exits 2 (clap's convention); anything else is another kind of error.
            let kind = if out.status.code() == Some(2) {
                "usage"
            } else {
                "not a usage error"
            };
            Some((
                kind,
                String::new(),
                String::from_utf8_lossy(&out.stderr).into(),
            ))
        }
        _ => None,
    }
}

async fn start(data: &Path) -> RunningServer {
    // Tokens on, as in production: the token rows need them, and every other row sends the
    // right one.
    server::start(ServeConfig {
        scheduler: scheduler::Config {
            lease: Duration::from_secs(10),
            tick: Duration::from_millis(100),
            max_jobs_per_run: MAX_JOBS_PER_RUN,
            limits: LIMITS,
            ..scheduler::Config::default()
        },
        // Small, like the other limits here, so the oversized rows stay cheap.
        max_request_bytes: 1 << 20,
        ..ServeConfig::new("127.0.0.1:0".parse().unwrap(), data.to_path_buf())
    })
    .await
    .expect("server starts")
}

/// Sends a worker stream's messages and returns the status the call ended with (`Ok` when the
/// server kept the stream open).
async fn connect(
    url: &str,
    call: &Call,
    messages: Vec<pb::WorkerMessage>,
) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = WorkerServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(messages.len().max(1));
    for m in messages {
        tx.send(m).await.unwrap();
    }
    let request = call.request(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Role::Worker,
    );
    let mut inbound = client.connect(request).await?.into_inner();
    // The welcome comes first; give the rest time to be handled, then leave.
    let first = tokio::time::timeout(Duration::from_secs(5), inbound.message()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(tx);
    match first {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(status),
        Err(_) => Err(tonic::Status::deadline_exceeded("no welcome")),
    }
}

async fn remote(input: Input, url: &str, farm: &mut FarmClient) -> Result<(), tonic::Status> {
    // The raw client: each row's own token, not the operator token `farm` carries.
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = pb::farm_service_client::FarmServiceClient::new(channel.clone());
    let _ = farm;
    match input {
        Input::Submit(call, req) => raw
            .submit_run(call.request(*req, Role::Operator))
            .await
            .map(|_| ()),
        Input::Regrade(call, req) => raw
            .regrade_run(call.request(req, Role::Operator))
            .await
            .map(|_| ()),
        Input::Report(call, req) => raw
            .get_report(call.request(req, Role::Operator))
            .await
            .map(|_| ()),
        Input::Connect(call, messages) => connect(url, &call, messages).await,
        Input::Upload(call, messages) => {
            let mut models = ModelServiceClient::new(channel);
            models
                .upload_model(call.request(tokio_stream::iter(messages), Role::Operator))
                .await
                .map(|_| ())
        }
        Input::Fetch(call, req) => {
            let mut models = ModelServiceClient::new(channel);
            models
                .fetch_model(call.request(req, Role::Worker))
                .await
                .map(|_| ())
        }
        _ => unreachable!("local rows are handled by `local`"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_exact_error_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), SUITE).unwrap();
    std::fs::write(dir.path().join("m.toml"), SCRIPTED).unwrap();
    let data = dir.path().join("data");
    let server = start(&data).await;
    let url = format!("http://{}", server.addr);
    let boot = server.tokens.clone().expect("tokens are on");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap().trim().to_string();
    let operator = read(&boot.api_token_file);
    let mut farm =
        benchfarm_coordinator::cli::client::connect(&Target::with_token(&url, &operator))
            .await
            .unwrap();
    let submitter = farm
        .add_token(pb::AddTokenRequest {
            name: "reader".into(),
            role: pb::TokenRole::Submitter as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    TOKENS
        .set([operator, read(&boot.worker_token_file), submitter])
        .unwrap();
    let rows = rows();
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let mut failures = Vec::new();
    for Row {
        name,
        input,
        expect,
    } in rows
    {
        let got = match local(&input, dir.path()) {
            Some((kind, field, message)) => Got::Local(kind, field, message),
            None => match remote(input, &url, &mut farm).await {
                Ok(()) => Got::Open,
                Err(s) => Got::Status(s.code(), s.message().to_string()),
            },
        };
        let ok = match (&expect, &got) {
            (Error(kind, field), Got::Local(got_kind, got_field, message)) => {
                got_kind == kind
                    && match *kind {
                        "plan" | "suite" => got_field == field,
                        "scripted" => message.starts_with(field),
                        _ => message.contains(field),
                    }
            }
            (Error(code, field), Got::Status(got_code, message)) => {
                format!("{got_code:?}") == *code && message.starts_with(field)
            }
            // A stream the server kept open: its bad messages are dropped or counted nowhere.
            (Expect::Ignored, Got::Open) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
        // Nothing stored: no run, whatever the row.
        let runs = farm
            .list_runs(pb::ListRunsRequest {})
            .await
            .unwrap()
            .into_inner()
            .runs;
        if !runs.is_empty() {
            failures.push(format!("{name}: a run was stored: {runs:?}"));
            break;
        }
    }
    // No bad upload registered or kept anything.
    let mut models = benchfarm_coordinator::cli::connect::connect_models(&Target::with_token(
        &url,
        &TOKENS.get().unwrap()[0],
    ))
    .await
    .unwrap();
    let listed = models
        .list_models(pb::ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models;
    assert!(listed.is_empty(), "{listed:?}");
    for dir in ["models/sha256", "models/partial"] {
        let left: Vec<_> = std::fs::read_dir(data.join(dir))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir}: {left:?}");
    }
    drop(models);
    server.shutdown().await.unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And nothing in the store: no run, and no result of the forged ones (workers that said
    // hello are remembered, as any worker that joins is).
    let store = Store::open(&data).unwrap();
    assert!(store.runs().unwrap().is_empty());
    for job in [
        "0190abcd-0000-7000-8000-000000000001-0000000000",
        "x-0000000000",
    ] {
        assert!(store.results_of_job(job).unwrap().is_empty(), "{job}");
    }
}
