//! The lab's configuration, checked statically: the observability profile's third-party images
//! (OpenTelemetry Collector, Tempo, Jaeger, Prometheus, Grafana) cannot be pulled on this
//! project's machines, so what can be checked without running them is checked here — every file
//! parses, and the names and ports agree across `deploy/docker-compose.yml`, the configs under
//! `deploy/observability/`, the flags `deploy/lab.sh` gives the binaries, and `dashboards/`
//! (datasource uids, URLs and the provider's path), when this checkout has it.
//!
//! No docker needed; `docker-compose config` (the real parser) is also run when it is installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Compose's `<<: *worker` merge keys, as compose applies them.
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    value
}

fn compose() -> Value {
    yaml(&repo().join("deploy/docker-compose.yml"))
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(!s.is_null(), "compose has no service {name}");
    s
}

fn services(compose: &Value) -> BTreeSet<String> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .map(|k| k.as_str().expect("service name").to_string())
        .collect()
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `host:port` of a URL or an endpoint such as `tempo:4317` or `http://prometheus:9090`.
fn host_port(endpoint: &str) -> (String, u16) {
    let rest = endpoint.split("://").last().expect("endpoint");
    let rest = rest.split('/').next().expect("authority");
    let (host, port) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {endpoint}"));
    (
        host.to_string(),
        port.parse()
            .unwrap_or_else(|_| panic!("port of {endpoint}")),
    )
}

/// Container-side mount targets of a service's volumes, with their sources.
fn mounts(service: &Value) -> Vec<(String, String)> {
    str_list(&service["volumes"])
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

/// The value of `flag ADDR` in lab.sh's observability arguments for `binary`'s line.
fn lab_flag(var: &str, flag: &str) -> String {
    let script = std::fs::read_to_string(repo().join("deploy/lab.sh")).expect("lab.sh");
    let line = script
        .lines()
        .find(|l| l.contains(&format!("export {var}=")))
        .unwrap_or_else(|| panic!("lab.sh sets no {var}"));
    let after = line
        .split(flag)
        .nth(1)
        .unwrap_or_else(|| panic!("{var} has no {flag}"));
    after
        .split_whitespace()
        .next()
        .expect("flag value")
        .trim_matches('"')
        .to_string()
}

#[test]
fn compose_declares_the_lab_and_its_profiles() {
    let c = compose();
    assert!(
        c["version"].is_null(),
        "no version key: the Compose Specification"
    );
    let names = services(&c);
    for s in [
        "coordinator",
        "board",
        "laptop-1",
        "laptop-2",
        "bench",
        "otel-collector",
        "tempo",
        "jaeger",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(s), "no service {s}");
    }
    for (name, cpus, mem, class) in [
        ("board", 1.0, "1g", "board"),
        ("laptop-1", 2.0, "4g", "laptop"),
        ("laptop-2", 2.0, "4g", "laptop"),
    ] {
        let s = service(&c, name);
        assert_eq!(s["cpus"].as_f64(), Some(cpus), "{name}");
        assert_eq!(s["mem_limit"].as_str(), Some(mem), "{name}");
        let command = s["command"].as_str().expect("command");
        assert!(
            command.contains(&format!("--label class={class}")),
            "{name}: {command}"
        );
        assert!(
            command.contains(&format!("--name {name}")),
            "{name}: {command}"
        );
        // The health check reads this state dir (deploy/Dockerfile).
        assert!(
            command.contains("--state /var/lib/benchfarm-worker"),
            "{name}"
        );
        assert!(command.contains("--token-file /tokens/worker/worker.token"));
        assert!(
            !command.contains("--threads"),
            "{name}: threads come from its CPU limit"
        );
        // Workers get the join token's volume, never the operator's.
        let targets: Vec<String> = mounts(s).into_iter().map(|(_, t)| t).collect();
        assert!(targets.contains(&"/tokens/worker".to_string()), "{name}");
        assert!(
            !targets.iter().any(|t| t.starts_with("/tokens/api")),
            "{name}"
        );
    }
    for s in ["otel-collector", "tempo", "jaeger", "prometheus", "grafana"] {
        assert_eq!(
            str_list(&service(&c, s)["profiles"]),
            ["observability"],
            "{s}"
        );
        let image = service(&c, s)["image"].as_str().expect("image");
        assert!(
            !image.ends_with(":latest") && image.contains(':'),
            "{s}: pinned tag, got {image}"
        );
    }
    assert_eq!(str_list(&service(&c, "bench")["profiles"]), ["bench"]);
    // Our images have project tags, never latest.
    for s in ["coordinator", "board", "bench"] {
        let image = service(&c, s)["image"].as_str().expect("image");
        assert!(
            image.contains("benchfarm/") && image.contains("-lab}"),
            "{s}: {image}"
        );
    }
}

#[test]
fn the_observability_configs_parse_and_agree_with_compose_and_lab_sh() {
    let c = compose();
    let names = services(&c);
    let deploy = repo().join("deploy");

    // Every config a service mounts from deploy/ exists and parses.
    for name in &names {
        for (source, target) in mounts(service(&c, name)) {
            if let Some(rel) = source.strip_prefix("./observability/") {
                let v = yaml(&deploy.join("observability").join(rel));
                assert!(!v.is_null(), "{rel} is empty");
                assert!(target.starts_with('/'), "{name}: {target}");
            }
        }
    }

    // The binaries export to the collector's OTLP gRPC receiver.
    let collector = yaml(&deploy.join("observability/otel-collector.yaml"));
    let otlp = lab_flag("BENCHFARM_COORDINATOR_ARGS", "--otlp-endpoint");
    assert_eq!(otlp, lab_flag("BENCHFARM_WORKER_ARGS", "--otlp-endpoint"));
    let (host, port) = host_port(&otlp);
    assert!(
        names.contains(&host),
        "lab.sh exports to {host}, not a service"
    );
    let grpc = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .expect("collector grpc endpoint");
    assert_eq!(
        host_port(grpc).1,
        port,
        "collector listens where lab.sh exports"
    );
    // Its pipeline names only components it defines, and exports to services that exist.
    let pipeline = &collector["service"]["pipelines"]["traces"];
    for (kind, list) in [
        ("receivers", &pipeline["receivers"]),
        ("processors", &pipeline["processors"]),
        ("exporters", &pipeline["exporters"]),
    ] {
        for component in str_list(list) {
            assert!(
                !collector[kind][component.as_str()].is_null(),
                "{kind}.{component} undefined"
            );
        }
    }
    let tempo = yaml(&deploy.join("observability/tempo.yaml"));
    let tempo_otlp = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .expect("tempo otlp endpoint");
    for exporter in str_list(&pipeline["exporters"]) {
        let endpoint = collector["exporters"][exporter.as_str()]["endpoint"]
            .as_str()
            .expect("exporter endpoint");
        let (host, port) = host_port(endpoint);
        assert!(
            names.contains(&host),
            "{exporter} sends to {host}, not a service"
        );
        assert_eq!(port, 4317, "{exporter}: OTLP gRPC");
        if host == "tempo" {
            assert_eq!(host_port(tempo_otlp).1, port);
        }
        if host == "jaeger" {
            let env = &service(&c, "jaeger")["environment"];
            assert_eq!(env["COLLECTOR_OTLP_ENABLED"].as_str(), Some("true"));
        }
    }

    // Prometheus scrapes services that exist, on the ports lab.sh opens.
    let prometheus = yaml(&deploy.join("observability/prometheus.yml"));
    let coordinator_port = host_port(&lab_flag("BENCHFARM_COORDINATOR_ARGS", "--metrics-listen")).1;
    let worker_port = host_port(&lab_flag("BENCHFARM_WORKER_ARGS", "--metrics-listen")).1;
    let mut scraped = BTreeSet::new();
    for job in prometheus["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        for config in job["static_configs"].as_sequence().expect("static_configs") {
            for target in str_list(&config["targets"]) {
                let (host, port) = host_port(&target);
                assert!(
                    names.contains(&host),
                    "scrape target {host} is not a service"
                );
                let want = if host == "coordinator" {
                    coordinator_port
                } else {
                    worker_port
                };
                assert_eq!(port, want, "{target}");
                scraped.insert(host);
            }
        }
    }
    assert_eq!(
        scraped,
        ["board", "coordinator", "laptop-1", "laptop-2"]
            .map(String::from)
            .into(),
        "every farm member is scraped"
    );
    // A real parser where it is installed (Debian's prometheus package ships promtool).
    if let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "config", "--syntax-only"])
        .arg(deploy.join("observability/prometheus.yml"))
        .output()
    {
        assert!(
            out.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Ok(out) = std::process::Command::new("docker-compose")
        .args(["-f"])
        .arg(deploy.join("docker-compose.yml"))
        .args(["config", "-q"])
        .output()
    {
        assert!(
            out.status.success(),
            "docker-compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Grafana's provisioning (`dashboards/`, from the telemetry issue) agrees with the lab: its
/// datasource URLs name lab services and ports, the provider reads where compose mounts the
/// JSON, and every dashboard names a provisioned datasource uid.
#[test]
fn grafana_provisioning_agrees_with_the_lab() {
    let dashboards = std::env::var_os("BENCHFARM_DASHBOARDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("dashboards"));
    if !dashboards.join("provisioning").is_dir() {
        eprintln!(
            "SKIPPED: no {}/provisioning in this checkout",
            dashboards.display()
        );
        return;
    }
    let c = compose();
    let names = services(&c);
    let grafana = service(&c, "grafana");
    let grafana_mounts = mounts(grafana);
    let mounted = |source: &str| {
        grafana_mounts
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("grafana does not mount {source}"))
    };
    let json_dir = mounted("../dashboards/json");
    mounted("../dashboards/provisioning/datasources");
    mounted("../dashboards/provisioning/dashboards");

    let mut uids = BTreeSet::new();
    let prometheus_port = 9090;
    let tempo_port =
        yaml(&repo().join("deploy/observability/tempo.yaml"))["server"]["http_listen_port"]
            .as_u64()
            .expect("tempo http port") as u16;
    for entry in
        std::fs::read_dir(dashboards.join("provisioning/datasources")).expect("datasources")
    {
        let v = yaml(&entry.expect("entry").path());
        for ds in v["datasources"].as_sequence().expect("datasources") {
            uids.insert(ds["uid"].as_str().expect("fixed uid").to_string());
            let (host, port) = host_port(ds["url"].as_str().expect("url"));
            assert!(
                names.contains(&host),
                "datasource url names {host}, not a lab service"
            );
            match ds["type"].as_str() {
                Some("prometheus") => assert_eq!(port, prometheus_port),
                Some("tempo") => assert_eq!(port, tempo_port),
                Some("jaeger") => assert_eq!(port, 16686),
                other => panic!("unexpected datasource type {other:?}"),
            }
        }
    }
    for entry in std::fs::read_dir(dashboards.join("provisioning/dashboards")).expect("providers") {
        let v = yaml(&entry.expect("entry").path());
        for provider in v["providers"].as_sequence().expect("providers") {
            assert_eq!(
                provider["options"]["path"].as_str(),
                Some(json_dir.as_str())
            );
        }
    }
    // Every datasource uid a dashboard names is provisioned.
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(uid) = m
                    .get("datasource")
                    .and_then(|d| d.get("uid"))
                    .and_then(|u| u.as_str())
                {
                    out.insert(uid.to_string());
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut used = BTreeSet::new();
    for entry in std::fs::read_dir(dashboards.join("json")).expect("dashboards/json") {
        let path = entry.expect("entry").path();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
                .expect("dashboard JSON");
        walk(&v, &mut used);
    }
    used.retain(|u| !u.starts_with("${") && u != "-- Grafana --" && u != "grafana");
    assert!(!used.is_empty(), "the dashboards name no datasource uid");
    assert!(
        used.is_subset(&uids),
        "uids {used:?} not all provisioned ({uids:?})"
    );
    // Grafana's home dashboard is one of them.
    let home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .expect("home dashboard");
    let file = home
        .strip_prefix(&format!("{json_dir}/"))
        .expect("under the mounted JSON");
    assert!(dashboards.join("json").join(file).is_file(), "{home}");
}
