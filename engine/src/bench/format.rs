//! The output formats of `worker bench`, shaped like llama-bench's own (`-o md|csv|json|jsonl`)
//! so that people and tools used to llama-bench read ours unchanged: the markdown table's
//! columns, widths and cell texts (`pp512`, `3.56 GiB`, `6.74 B`, `56.76 ± 0.45`), the CSV's
//! quoted cells with `;`-joined samples, JSON as one array of records, JSONL one per line.

use super::BenchRecord;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Md,
    Csv,
    Json,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "md" => Ok(Format::Md),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "jsonl" => Ok(Format::Jsonl),
            other => Err(format!(
                "unknown format {other:?}: expected md, csv, json or jsonl"
            )),
        }
    }
}

/// All of `records` in `format`, ending in a newline.
pub fn render(records: &[BenchRecord], format: Format) -> String {
    match format {
        Format::Md => markdown(records),
        Format::Csv => csv(records),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(records).unwrap_or_else(|_| "[]".into());
            s.push('\n');
            s
        }
        Format::Jsonl => records
            .iter()
            .filter_map(|r| serde_json::to_string(r).ok())
            .map(|line| line + "\n")
            .collect(),
    }
}

/// llama-bench's size cell: MiB below 1 GiB, else GiB, two decimals.
pub fn size_cell(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes < 1 << 30 {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2} GiB", b / 1024.0 / 1024.0 / 1024.0)
    }
}

/// llama-bench's params cell: millions below 10^9, else billions, two decimals.
pub fn params_cell(n: u64) -> String {
    let n = n as f64;
    if n < 1e9 {
        format!("{:.2} M", n / 1e6)
    } else {
        format!("{:.2} B", n / 1e9)
    }
}

/// Column name, width, and whether it is right-aligned — llama-bench's for these columns.
const COLUMNS: [(&str, usize, bool); 7] = [
    ("model", 30, false),
    ("size", 10, true),
    ("params", 10, true),
    ("backend", 10, false),
    ("threads", 7, true),
    ("test", 15, true),
    ("t/s", 20, true),
];

fn markdown(records: &[BenchRecord]) -> String {
    let row = |cells: [String; 7]| {
        let mut line = String::from("|");
        for ((_, width, right), cell) in COLUMNS.iter().zip(cells) {
            if *right {
                line += &format!(" {cell:>width$} |");
            } else {
                line += &format!(" {cell:<width$} |");
            }
        }
        line + "\n"
    };
    let mut out = row(COLUMNS.map(|(name, _, _)| name.to_string()));
    out += "|";
    for (_, width, right) in COLUMNS {
        let dashes = "-".repeat(if right { width - 1 } else { width });
        out += &format!(" {dashes}{} |", if right { ":" } else { "" });
    }
    out += "\n";
    for r in records {
        out += &row([
            r.model_type.clone(),
            size_cell(r.model_size),
            params_cell(r.model_n_params),
            r.backends.clone(),
            r.n_threads.to_string(),
            r.test().name(),
            format!("{:.2} ± {:.2}", r.avg_ts, r.stddev_ts),
        ]);
    }
    if let Some(first) = records.first() {
        out += &format!("\nbuild: {}\n", first.build_commit);
        out += &format!("cpu features: {}\n", first.build_features.join(" "));
    }
    out
}

const CSV_FIELDS: [&str; 20] = [
    "build_commit",
    "cpu_info",
    "backends",
    "model_filename",
    "model_type",
    "model_size",
    "model_n_params",
    "n_batch",
    "n_ubatch",
    "n_threads",
    "n_prompt",
    "n_gen",
    "test_time",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
    "samples_ns",
    "samples_ts",
    "build_features",
];

fn csv(records: &[BenchRecord]) -> String {
    let join = |v: Vec<String>| v.join(";");
    let mut out = CSV_FIELDS.join(",") + "\n";
    for r in records {
        let cells: [String; 20] = [
            r.build_commit.clone(),
            r.cpu_info.clone(),
            r.backends.clone(),
            r.model_filename.clone(),
            r.model_type.clone(),
            r.model_size.to_string(),
            r.model_n_params.to_string(),
            r.n_batch.to_string(),
            r.n_ubatch.to_string(),
            r.n_threads.to_string(),
            r.n_prompt.to_string(),
            r.n_gen.to_string(),
            r.test_time.clone(),
            r.avg_ns.to_string(),
            r.stddev_ns.to_string(),
            format!("{:.6}", r.avg_ts),
            format!("{:.6}", r.stddev_ts),
            join(r.samples_ns.iter().map(u64::to_string).collect()),
            join(r.samples_ts.iter().map(|t| format!("{t:.6}")).collect()),
            join(r.build_features.clone()),
        ];
        let quoted: Vec<String> = cells
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        out += &(quoted.join(",") + "\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{BenchContext, ThroughputTest};
    use super::*;

    fn record(n_prompt: u32, n_gen: u32, samples_ns: Vec<u64>) -> BenchRecord {
        let ctx = BenchContext {
            build_commit: "llama-cpp-sys-2 0.1.161".into(),
            cpu_info: "AMD EPYC".into(),
            backends: "CPU".into(),
            model_filename: "models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            model_type: "llama 135M Q4_1".into(),
            model_size: 94_000_000,
            model_n_params: 134_515_008,
            n_batch: 2048,
            n_ubatch: 512,
            build_features: vec!["AVX2".into(), "OPENMP".into()],
        };
        let test = ThroughputTest { n_prompt, n_gen };
        BenchRecord::new(&ctx, test, 2, "2026-12-01T21:40:00Z".into(), samples_ns)
    }

    #[test]
    fn markdown_has_llama_bench_shape() {
        let md = render(
            &[
                record(512, 0, vec![1_000_000_000, 1_000_000_000]),
                record(0, 128, vec![1_000_000_000, 2_000_000_000]),
            ],
            Format::Md,
        );
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| model                          |       size |     params | backend    | threads |            test |                  t/s |"
        );
        assert_eq!(
            lines[1],
            "| ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: | -------------------: |"
        );
        assert_eq!(
            lines[2],
            "| llama 135M Q4_1                |  89.65 MiB |   134.52 M | CPU        |       2 |           pp512 |        512.00 ± 0.00 |"
        );
        assert!(lines[3].contains("|           tg128 |") && lines[3].contains("96.00 ± 45.25"));
        assert!(md.contains("\nbuild: llama-cpp-sys-2 0.1.161\n"), "{md}");
    }

    #[test]
    fn cells_switch_units_like_llama_bench() {
        assert_eq!(size_cell(3_822_520_320), "3.56 GiB");
        assert_eq!(size_cell(1 << 20), "1.00 MiB");
        assert_eq!(params_cell(6_738_415_616), "6.74 B");
        assert_eq!(params_cell(268_098_176), "268.10 M");
    }

    #[test]
    fn json_and_jsonl_carry_llama_bench_fields() {
        let records = [record(16, 0, vec![10, 20]), record(0, 8, vec![10, 20])];
        let json: serde_json::Value =
            serde_json::from_str(&render(&records, Format::Json)).unwrap();
        let first = &json.as_array().unwrap()[0];
        for field in [
            "model_filename",
            "model_type",
            "model_size",
            "model_n_params",
            "n_threads",
            "n_prompt",
            "n_gen",
            "test_time",
            "avg_ns",
            "stddev_ns",
            "avg_ts",
            "stddev_ts",
            "samples_ns",
            "samples_ts",
            "cpu_info",
            "backends",
            "build_commit",
        ] {
            assert!(first.get(field).is_some(), "{field} missing from {first}");
        }
        assert_eq!(first["samples_ns"], serde_json::json!([10, 20]));
        let jsonl = render(&records, Format::Jsonl);
        assert_eq!(jsonl.lines().count(), 2);
        for line in jsonl.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["avg_ts"].as_f64().unwrap() > 0.0);
        }
    }

    #[test]
    fn csv_quotes_cells_and_joins_samples() {
        let csv = render(&[record(16, 0, vec![10, 20])], Format::Csv);
        let mut lines = csv.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("build_commit,cpu_info,backends,")
        );
        let row = lines.next().unwrap();
        assert!(row.contains("\"10;20\""), "{row}");
        assert!(row.contains("\"AVX2;OPENMP\""), "{row}");
        assert_eq!(row.matches("\",\"").count(), CSV_FIELDS.len() - 1);
        assert!("xml".parse::<Format>().is_err());
        assert_eq!("jsonl".parse::<Format>(), Ok(Format::Jsonl));
    }
}
