//! The live page in a real browser: during a scripted run, headless Chromium opens
//! `/runs/{id}` once and, without reloading, sees the done count rise and the leaderboard appear;
//! the run list and the run's HTML report are served too.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use benchfarm_e2e::browser;
use benchfarm_e2e::in_process::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_fills_in_without_a_reload() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Eight jobs of 0.4 s each on one worker: a run of about 3 s to watch.
    std::fs::write(
        dir.path().join("slow.toml"),
        "name = \"slow\"\ntokens_per_second = 2000.0\ndelay_ms = 400\n",
    )
    .unwrap();
    let request = plan(
        dir.path(),
        "suite = \"agent-coding\"\nrepetitions = 1\n[[models]]\nscripted = \"slow.toml\"\n",
    );
    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let http = server
        .http
        .as_ref()
        .expect("the test farm serves its live page");
    let base = format!("http://{}", http.addr);
    let url = url(&server);
    let w1 = start_scripted_worker(&url, "w1", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 1).await;

    // Without a token the page's data is refused, and a browser is sent to the sign-in form.
    let refused = http_get(&format!("{base}/api/runs"), None).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let redirected = http_get(&format!("{base}/runs/x"), None).await;
    assert!(
        redirected.starts_with("HTTP/1.1 303")
            && redirected.contains("location: /login?next=/runs/x"),
        "{redirected}"
    );

    // Sign in as a person would: the browser is redirected to the form, the token is typed in.
    let profile = dir.path().join("chromium");
    let chromium_path = chromium.clone();
    let token = api_token(&url);
    let base_url = base.clone();
    let mut page = tokio::task::spawn_blocking(move || {
        let mut page = browser::Page::open(&chromium_path, &profile, &format!("{base_url}/"));
        wait_for(&mut page, "location.pathname", "/login");
        page.eval(&format!(
            "document.querySelector('input[name=token]').value = {token:?}; \
             document.querySelector('form').submit(); 'sent'"
        ));
        // Signed in, the browser lands on the run list it asked for.
        wait_for(
            &mut page,
            "location.pathname + ':' + !!document.querySelector('h1')",
            "/:true",
        );
        page
    })
    .await
    .unwrap();

    let run = client.submit_run(request).await.unwrap().into_inner();
    let page_url = format!("{base}/runs/{}", run.run_id);
    // The submit's answer names the page (what `submit --wait` prints).
    assert_eq!(run.live_url, page_url);
    let (seen, rows, state) = tokio::task::spawn_blocking(move || {
        page.eval(&format!("location.href = {page_url:?}; 'going'"));
        let start = Instant::now();
        let mut state = String::new();
        while start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(250));
            state = page
                .eval("(document.getElementById('state') || {}).textContent || ''")
                .as_str()
                .unwrap_or_default()
                .to_string();
            if state == "finished" {
                break;
            }
        }
        let seen = page.eval("document.body.dataset.seen");
        let rows = page.eval(
            "Array.from(document.querySelectorAll('#leaderboard tr[data-model]')).map(r => r.dataset.model + ':' + r.dataset.n).join(',')",
        );
        (seen, rows, state)
    })
    .await
    .unwrap();
    assert_eq!(state, "finished");
    let seen: Vec<u32> = seen
        .as_str()
        .unwrap()
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        seen.len() >= 3,
        "the done count did not rise in view: {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&10));
    assert_eq!(rows.as_str().unwrap(), "slow:10");
    assert_eq!(
        http.pages_served.load(Ordering::Relaxed),
        1,
        "the page was loaded once: it updated itself"
    );

    // The run list links the run, and its HTML report is served whole.
    let bearer = api_token(&url);
    let list = http_get(&format!("{base}/"), Some(&bearer)).await;
    assert!(list.starts_with("HTTP/1.1 200"), "{list}");
    assert!(
        list.contains(&format!("href=\"/runs/{}\"", run.run_id)),
        "{list}"
    );
    let report = http_get(&format!("{base}/runs/{}/report", run.run_id), Some(&bearer)).await;
    assert!(report.starts_with("HTTP/1.1 200"), "{report}");
    assert!(report.contains("id=\"leaderboard\""));

    w1.leave().await;
    server.shutdown().await.unwrap();
}

/// Polls a JavaScript expression on the page until it gives `want` (or 30 s pass).
fn wait_for(page: &mut browser::Page, expression: &str, want: &str) {
    let start = Instant::now();
    let mut last = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(30) {
        last = page.eval(expression);
        if last.as_str() == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{expression} stayed {last}, not {want:?}");
}

/// A plain HTTP GET over a TCP stream, with a bearer token if given (the test needs no HTTP client
/// crate for a few pages); returns the whole response, status line first.
async fn http_get(url: &str, token: Option<&str>) -> String {
    let url = url.strip_prefix("http://").unwrap();
    let (host, path) = url
        .split_once('/')
        .map_or((url, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let host = host.to_string();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap()
}
