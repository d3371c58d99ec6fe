//! A real headless Chromium for the report tests, with every request it makes counted.
//!
//! The browser is Debian's `chromium-headless-shell` (Chromium's headless mode as its own binary:
//! unlike the full `chromium --headless`, it runs no background services of its own, no clock or
//! update pings, so every request it makes is the page's doing). It is pointed at a tiny HTTP proxy
//! of the test's own on 127.0.0.1: the page is served from `http://report.invalid/` through it,
//! and any other request — a CDN script over http, a web font over https (a `CONNECT`) — reaches
//! the proxy, is recorded, and goes nowhere. `--dump-dom` gives the DOM after the page's scripts
//! ran; `--screenshot` a PNG a person can look at.
//!
//! scripts/deps.sh installs the browser. Without it a test skips with a message, except under
//! CI=true, where it fails.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where the proxy serves the page.
pub const PAGE_URL: &str = "http://report.invalid/";

/// The browser to use, or `None` (with the reason printed) when the test should skip.
pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium-headless-shell"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium-headless-shell is not installed; scripts/deps.sh installs it");
        }
        eprintln!(
            "skipping the browser check: chromium-headless-shell is not installed (scripts/deps.sh installs it)"
        );
    }
    found
}

/// The proxy: serves `html` at [`PAGE_URL`] and records the request line of everything else.
pub struct CountingProxy {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    pub fn start(html: String) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok() && !header.trim().is_empty() {
                    header.clear();
                }
                let line = line.trim().to_string();
                let page = line.starts_with(&format!("GET {PAGE_URL} "));
                seen.lock().expect("lock").push(line);
                let (status, body) = if page {
                    ("200 OK", html.as_bytes())
                } else {
                    ("404 Not Found", &b""[..])
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(body);
            }
        });
        CountingProxy { port, requests }
    }

    /// Every request but the page itself.
    pub fn requests_beyond_the_page(&self) -> Vec<String> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| !l.starts_with(&format!("GET {PAGE_URL} ")))
            .cloned()
            .collect()
    }

    /// Whether the page itself was fetched (the browser went through the proxy at all).
    pub fn served_the_page(&self) -> bool {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l.starts_with(&format!("GET {PAGE_URL} ")))
    }

    fn browser(&self, chromium: &Path, profile: &Path, width: u32) -> std::process::Command {
        let mut c = std::process::Command::new(chromium);
        c.args([
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--proxy-server=http://127.0.0.1:{}", self.port))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},2000"));
        c
    }

    /// The DOM of the page after its scripts ran.
    pub fn dump_dom(&self, chromium: &Path, profile: &Path) -> String {
        let out = self
            .browser(chromium, profile, 1280)
            .arg("--dump-dom")
            .arg(PAGE_URL)
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A screenshot of the page, `width` pixels wide, into `png`.
    pub fn screenshot(&self, chromium: &Path, profile: &Path, width: u32, png: &Path) {
        let out = self
            .browser(chromium, profile, width)
            .arg(format!("--screenshot={}", png.display()))
            .arg(PAGE_URL)
            .output()
            .expect("run chromium");
        assert!(
            out.status.success() && png.exists(),
            "chromium screenshot failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A headless Chromium with a page open, driven over the DevTools protocol: the page lives in
/// real time (no virtual clock), and [`Page::eval`] reads it while it runs.
pub struct Page {
    child: std::process::Child,
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
}

impl Page {
    /// Opens `url` (on 127.0.0.1: no proxy) in a fresh profile.
    pub fn open(chromium: &Path, profile: &Path, url: &str) -> Page {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new(chromium)
            // Its own process group: Debian's chromium-headless-shell is a shell script that starts
            // the browser as a child, so only killing the group ends the browser too.
            .process_group(0)
            .args(["--no-sandbox", "--disable-gpu", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().expect("stderr");
        let mut port = None;
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("chromium stderr");
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                port = rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
                break;
            }
        }
        let port = port.expect("chromium printed its DevTools address");
        // The page target's own websocket, from the DevTools HTTP endpoint.
        let list = http_get(port, "/json/list");
        let targets: serde_json::Value = serde_json::from_str(&list).expect("target list");
        let ws = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (socket, _) = tungstenite::connect(ws).expect("devtools websocket");
        Page {
            child,
            socket,
            next_id: 1,
        }
    }

    /// Evaluates `expression` in the page and returns its value.
    pub fn eval(&mut self, expression: &str) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "returnByValue": true },
        });
        self.socket
            .send(tungstenite::Message::Text(request.to_string().into()))
            .expect("send");
        loop {
            let message = self.socket.read().expect("read");
            let tungstenite::Message::Text(text) = message else {
                continue;
            };
            let reply: serde_json::Value = serde_json::from_str(&text).expect("json");
            if reply["id"] == id {
                return reply["result"]["result"]["value"].clone();
            }
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(port: u16, path: &str) -> String {
    for _ in 0..50 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            // DevTools' server keeps the connection open (and answers HTTP/1.0 with nothing): read
            // the headers, then exactly Content-Length bytes.
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            );
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && !line.trim().is_empty() {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; length];
            if std::io::Read::read_exact(&mut reader, &mut body).is_ok() {
                let body = String::from_utf8_lossy(&body).into_owned();
                if body.contains("webSocketDebuggerUrl") {
                    return body;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no DevTools target list on port {port}");
}
