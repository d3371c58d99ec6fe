//! The live page and the HTML reports over HTTP: `coordinator serve --http ADDR` (off by default).
//!
//! An axum server on the same tokio runtime as gRPC (axum is already in the tree under tonic).
//! Read-only: no route changes anything. Every route needs a submitter token (a sign-in at
//! `/login` sets a cookie; programs send a bearer header) unless the server runs with
//! `--insecure-no-auth` (`login.rs`).
//!
//! - `GET /`                    the run list
//! - `GET /runs/{id}`           a run's live view: counts, per-model leaderboard, who runs what;
//!   updated without a reload by polling `GET /api/runs/{id}` (plain JSON, twice a second)
//! - `GET /runs/{id}/report`    the run's self-contained HTML report
//! - `GET /api/runs`, `GET /api/runs/{id}`  the JSON the pages read
//!
//! Store reads and rendering run in `spawn_blocking`; the scheduler is asked through its handle,
//! like the gRPC services ask it. The page's script is inline: the page makes no request but to
//! this server.

mod login;
mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tracing::info;

use crate::records::RunRecord;
use crate::scheduler::{Command, SchedulerHandle};
use crate::store::Store;

#[derive(Clone)]
struct AppState {
    scheduler: SchedulerHandle,
    store: Store,
    /// Live pages served: a test proves the view updates without a reload by counting these.
    pages_served: Arc<AtomicU64>,
}

/// A running HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    pub addr: SocketAddr,
    pub pages_served: Arc<AtomicU64>,
}

/// Binds `listen` and serves until `shutdown` fires.
pub async fn start(
    listen: SocketAddr,
    scheduler: SchedulerHandle,
    store: Store,
    gate: crate::auth::Gate,
    shutdown: &broadcast::Sender<()>,
) -> std::io::Result<HttpServer> {
    let pages_served = Arc::new(AtomicU64::new(0));
    let state = AppState {
        scheduler,
        store,
        pages_served: Arc::clone(&pages_served),
    };
    let app = Router::new()
        .route("/", get(run_list))
        .route("/runs/{id}", get(live_page))
        .route("/runs/{id}/report", get(html_report))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/{id}", get(api_run))
        .with_state(state)
        .merge(
            Router::new()
                .route("/login", get(login::login_page).post(login::login))
                .with_state(gate.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(
            gate,
            login::require_reader,
        ));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let mut stop = shutdown.subscribe();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.recv().await;
            })
            .await;
    });
    info!(%addr, "live page listening");
    Ok(HttpServer { addr, pages_served })
}

/// An error page with a status: a missing run is 404, anything else 500.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

impl From<crate::scheduler::SchedulerError> for Failure {
    fn from(err: crate::scheduler::SchedulerError) -> Self {
        match err {
            crate::scheduler::SchedulerError::NoSuchRun(_) => {
                Failure(StatusCode::NOT_FOUND, err.to_string())
            }
            _ => Failure(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        }
    }
}

async fn stored_run(state: &AppState, id: &str) -> Result<RunRecord, Failure> {
    let store = state.store.clone();
    let id_owned = id.to_string();
    tokio::task::spawn_blocking(move || store.run(&id_owned))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no run {id}")))
}

async fn render(
    state: &AppState,
    run: RunRecord,
    format: benchfarm_report::Format,
) -> Result<String, Failure> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || crate::reporting::render(&store, &run, format))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn api_runs(State(state): State<AppState>) -> Result<Json<Value>, Failure> {
    let runs = state
        .scheduler
        .ask(|reply| Command::ListRuns { reply })
        .await??;
    Ok(Json(Value::Array(
        runs.into_iter()
            .map(|p| {
                json!({
                    "run": p.run_id, "state": p.state, "label": p.label, "suite": p.suite_name,
                    "total": p.total, "done": p.done, "failed": p.failed,
                    "created_unix_ms": p.created_unix_ms, "models": p.models,
                })
            })
            .collect(),
    )))
}

/// What the live view shows: the run's counts, why queued jobs wait, the leaderboard so far (the
/// report's models), and which worker holds which of the run's jobs.
async fn api_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    let run_id = id.clone();
    let p = state
        .scheduler
        .ask(|reply| Command::Progress { run_id, reply })
        .await??;
    let run = stored_run(&state, &id).await?;
    let report: Value =
        serde_json::from_str(&render(&state, run, benchfarm_report::Format::Json).await?)
            .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let workers = state
        .scheduler
        .ask(|reply| Command::ListWorkers { reply })
        .await?;
    let prefix = format!("{id}-");
    let workers: Vec<Value> = workers
        .into_iter()
        .filter(|w| w.connected)
        .map(|w| {
            let jobs: Vec<&String> = w
                .running
                .iter()
                .filter(|j| j.starts_with(&prefix))
                .collect();
            json!({ "name": w.record.name, "class": w.record.hardware_class, "running": jobs })
        })
        .collect();
    let leaderboard: Vec<Value> = report["models"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .map(|m| {
                    json!({
                        "name": m["name"], "n": m["n"], "score": m["score"],
                        "ci95": m["score_ci95"], "tg": m["gen_tokens_per_second"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({
        "run": p.run_id, "state": p.state, "label": p.label, "suite": p.suite_name,
        "total": p.total, "queued": p.queued, "running": p.running, "done": p.done,
        "failed": p.failed, "cancelled": p.cancelled, "waiting": p.waiting,
        "leaderboard": leaderboard, "workers": workers,
    })))
}

async fn run_list(State(state): State<AppState>) -> Result<Html<String>, Failure> {
    let runs = state
        .scheduler
        .ask(|reply| Command::ListRuns { reply })
        .await??;
    Ok(Html(page::run_list(&runs)))
}

async fn live_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, Failure> {
    let run = stored_run(&state, &id).await?;
    state.pages_served.fetch_add(1, Ordering::Relaxed);
    Ok(Html(page::live(&run)))
}

async fn html_report(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let run = stored_run(&state, &id).await?;
    let body = render(&state, run, benchfarm_report::Format::Html).await?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response())
}
