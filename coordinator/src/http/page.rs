//! The HTML of the run list and the live view. Plain strings, escaped, with one inline script:
//! the live view polls its JSON endpoint and redraws the counts, the leaderboard and the workers,
//! so a running run fills in without a reload. Each done count it sees is appended to
//! `body[data-seen]`, which makes "the count rose without a reload" something a test can read.

use crate::records::RunRecord;
use crate::scheduler::RunProgress;

/// Text made safe for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;\
padding:16px;color:#1b1f24}table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;\
border-bottom:1px solid #d0d7de;text-align:right}th:first-child,td:first-child{text-align:left}\
.muted{color:#57606a}.counts span{margin-right:1.2em}@media (max-width:600px){body{padding:8px}}";

pub fn run_list(runs: &[RunProgress]) -> String {
    let mut rows = String::new();
    for r in runs.iter().rev() {
        rows.push_str(&format!(
            "<tr data-run=\"{id}\"><td><a href=\"/runs/{id}\">{label}</a><br><span class=\"muted\">{id}</span></td>\
             <td>{state}</td><td>{done}/{total}</td><td>{failed}</td><td>{models}</td></tr>\n",
            id = esc(&r.run_id),
            label = esc(&r.label),
            state = r.state.as_str(),
            done = r.done,
            total = r.total,
            failed = r.failed,
            models = esc(&r.models.join(", ")),
        ));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>benchfarm runs</title><style>{STYLE}</style></head><body><h1>Runs</h1>\
         <table id=\"runs\"><tr><th>run</th><th>state</th><th>done</th><th>failed</th><th>models</th></tr>\n\
         {rows}</table></body></html>"
    )
}

pub fn live(run: &RunRecord) -> String {
    let id = esc(&run.id);
    format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>benchfarm run {id}</title><style>{STYLE}</style></head>
<body data-run="{id}" data-seen="">
<h1>{label}</h1><p class="muted">run {id} · suite {suite} v{version} · {reps} reps · <a href="/runs/{id}/report">report</a> · <a href="/">all runs</a></p>
<p class="counts"><span>state <strong id="state">…</strong></span><span>done <strong id="done">0</strong>/<strong id="total">{total}</strong></span>
<span>running <strong id="running">0</strong></span><span>queued <strong id="queued">0</strong></span><span>failed <strong id="failed">0</strong></span></p>
<p id="waiting" class="muted"></p>
<h2>Leaderboard so far</h2>
<table id="leaderboard"><thead><tr><th>Model</th><th>Graded</th><th>Score</th><th>±95%</th><th>tg tok/s</th></tr></thead><tbody></tbody></table>
<h2>Workers</h2><ul id="workers"></ul>
<script>
(function () {{
  var id = document.body.dataset.run;
  function pct(x) {{ return (x == null ? "" : (100 * x).toFixed(1) + "%"); }}
  function text(t) {{ return document.createTextNode(t == null ? "" : String(t)); }}
  function cell(row, t) {{ var td = document.createElement("td"); td.appendChild(text(t)); row.appendChild(td); }}
  function draw(s) {{
    ["state", "done", "total", "running", "queued", "failed"].forEach(function (k) {{
      document.getElementById(k).textContent = s[k];
    }});
    var seen = document.body.dataset.seen ? document.body.dataset.seen.split(",") : [];
    if (seen[seen.length - 1] !== String(s.done)) {{ seen.push(String(s.done)); document.body.dataset.seen = seen.join(","); }}
    document.getElementById("waiting").textContent = (s.waiting || []).join(" · ");
    var body = document.querySelector("#leaderboard tbody");
    body.textContent = "";
    (s.leaderboard || []).forEach(function (m) {{
      var row = document.createElement("tr");
      row.dataset.model = m.name; row.dataset.n = m.n;
      cell(row, m.name); cell(row, m.n); cell(row, m.n ? pct(m.score) : "");
      cell(row, m.n && m.ci95 ? "±" + (50 * (m.ci95[1] - m.ci95[0])).toFixed(1) : "");
      cell(row, m.tg == null ? "" : Number(m.tg).toFixed(1));
      body.appendChild(row);
    }});
    var workers = document.getElementById("workers");
    workers.textContent = "";
    (s.workers || []).forEach(function (w) {{
      var li = document.createElement("li");
      li.appendChild(text(w.name + " (" + w.class + "): " + (w.running.length ? w.running.join(", ") : "idle")));
      workers.appendChild(li);
    }});
    return s.state === "running";
  }}
  function poll() {{
    fetch("/api/runs/" + encodeURIComponent(id), {{ cache: "no-store" }})
      .then(function (r) {{ return r.json(); }})
      .then(function (s) {{ if (draw(s)) setTimeout(poll, 500); }})
      .catch(function () {{ setTimeout(poll, 2000); }});
  }}
  poll();
}})();
</script></body></html>"##,
        id = id,
        label = esc(&run.label),
        suite = esc(&run.suite_name),
        version = esc(&run.suite_version),
        reps = run.repetitions,
        total = run.jobs_total,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let runs = [RunProgress {
            run_id: "r1".into(),
            label: "<script>alert(1)</script>".into(),
            ..RunProgress::default()
        }];
        let html = run_list(&runs);
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
