//! `cargo bench -p benchfarm-e2e --bench model_fetch`: the default model sent to a worker over
//! `FetchModel` on 127.0.0.1, against a plain TCP copy of the same file over 127.0.0.1, side by
//! side in one run (docs/benchmarks.md).
//!
//! The fetch is the worker's own code path (`benchfarm_worker::cache::fetch`): a real coordinator in
//! this process serves the model from `--models-dir`, and the worker writes the partial file and
//! hashes it as the chunks arrive. The TCP copy is the floor any transfer pays: one thread reads the
//! file into a socket, another writes the socket into a file, 1 MiB at a time, no hashing. The two
//! are interleaved (alternating which goes first) and repeated; the figures are medians.
//!
//! Environment: `MODEL_FETCH_REPS` (default 7), `BENCHFARM_TEST_MODEL` (default the repo's
//! `models/SmolLM2-135M-Instruct.Q4_1.gguf`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benchfarm_coordinator::grpc::server::{self, AuthMode, ModelsConfig, ServeConfig};
use benchfarm_worker::cache::fetch::{self, Source};

fn model() -> PathBuf {
    std::env::var_os("BENCHFARM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        })
}

/// One plain TCP copy of `file` into `out` over loopback; seconds.
fn tcp_copy(file: &Path, out: &Path) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let source = file.to_path_buf();
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut f = std::fs::File::open(source).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            socket.write_all(&buf[..n]).unwrap();
        }
    });
    let mut socket = TcpStream::connect(addr).unwrap();
    let mut f = std::fs::File::create(out).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = socket.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        f.write_all(&buf[..n]).unwrap();
    }
    f.sync_data().unwrap();
    sender.join().unwrap();
    started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let model = model();
    if !model.is_file() {
        eprintln!(
            "model_fetch: {} is missing (scripts/fetch-models.sh)",
            model.display()
        );
        std::process::exit(2);
    }
    let reps: usize = std::env::var("MODEL_FETCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::os::unix::fs::symlink(&model, served.join(model.file_name().unwrap())).unwrap();
    let size = std::fs::metadata(&model).unwrap().len();
    let sha256 = benchfarm_modelfile::sha256_file(&model).unwrap();

    let running = server::start(ServeConfig {
        auth: AuthMode::InsecureNoAuth,
        models: ModelsConfig {
            dir: Some(served),
            ..ModelsConfig::default()
        },
        ..ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"))
    })
    .await
    .expect("coordinator starts");
    let source = Source {
        url: format!("http://{}", running.addr),
        credentials: Default::default(),
    };
    let out = dir.path().join("received");
    // Warm the page cache and the connection paths once, unmeasured.
    tcp_copy(&model, &out);
    let mut fetch_s = Vec::new();
    let mut tcp_s = Vec::new();
    for rep in 0..reps {
        let one_fetch = async || {
            let _ = std::fs::remove_file(&out);
            let started = Instant::now();
            let got = fetch::fetch(&source, "bench", &sha256, size, &out)
                .await
                .expect("fetch");
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(got.sha256, sha256, "the fetched bytes must verify");
            assert_eq!(got.transferred, size);
            seconds
        };
        let one_tcp = || {
            let _ = std::fs::remove_file(&out);
            tcp_copy(&model, &out)
        };
        // Alternate which goes first, so neither always meets a colder or warmer machine.
        if rep % 2 == 0 {
            fetch_s.push(one_fetch().await);
            tcp_s.push(one_tcp());
        } else {
            tcp_s.push(one_tcp());
            fetch_s.push(one_fetch().await);
        }
        eprintln!(
            "rep {rep}: FetchModel {:.3} s, TCP copy {:.3} s",
            fetch_s[rep], tcp_s[rep]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (f, t) = (median(fetch_s), median(tcp_s));
    let mb = size as f64 / 1e6;
    println!(
        "model_fetch: {mb:.1} MB x {reps} interleaved; medians: FetchModel {f:.3} s ({:.0} MB/s, \
         written and sha256-verified), plain TCP copy {t:.3} s ({:.0} MB/s); FetchModel at {:.0} % \
         of the TCP copy's rate (target >= 50 %)",
        mb / f,
        mb / t,
        100.0 * t / f
    );
    running.shutdown().await.unwrap();
}
