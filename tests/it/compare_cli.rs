//! `energy-fit compare`: the points several files or cards share, each place's energy per token
//! and its difference from the first place that measured the point, checked on labelled
//! synthetic files of known ratios and on the shipped anchor files against their cells.

use super::common::{csv_cells as split, run_in, BIN};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const HEADER: &str = "llm,input_tokens,output_tokens,requests,energy_j,gpu_uuid,status";

/// A labelled synthetic file: per row (n, m, energy per token, gpu_uuid, status), 1000 requests.
fn write(dir: &Path, name: &str, rows: &[(u64, u64, f64, &str, &str)]) {
    let mut s = format!("{HEADER}\n");
    for (n, m, e, gpu, status) in rows {
        let energy_j = e * 1000.0 * *m as f64;
        s.push_str(&format!(
            "synthetic-a,{n},{m},1000,{energy_j},{gpu},{status}\n"
        ));
    }
    std::fs::write(dir.join(name), s).unwrap();
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let (ok, out, err) = run_in(dir, args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn files_are_compared_at_the_points_they_share_with_repeats_averaged() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.csv",
        &[
            (64, 64, 0.010, "GPU-1", "ok"),
            (64, 128, 0.008, "GPU-1", "ok"),
            (128, 64, 0.020, "GPU-1", "ok"),
            (4096, 64, 0.5, "GPU-1", "ok"),
        ],
    );
    // 2 % more at (64, 64) as the mean of two repeats, 1 % less at (64, 128); (128, 64) is
    // skipped here and (256, 64) only here: neither is shared.
    write(
        dir.path(),
        "b.csv",
        &[
            (64, 64, 0.0101, "GPU-2", "ok"),
            (64, 64, 0.0103, "GPU-2", "ok"),
            (64, 128, 0.00792, "GPU-2", "ok"),
            (128, 64, 0.0, "GPU-2", "skipped: out of memory"),
            (256, 64, 0.04, "GPU-2", "ok"),
        ],
    );
    let c = json(dir.path(), &["compare", "a.csv", "b.csv", "--json"]);
    assert_eq!(c["places"], serde_json::json!(["a.csv", "b.csv"]));
    let shared = c["shared"].as_array().unwrap();
    let at: Vec<(u64, u64)> = shared
        .iter()
        .map(|s| {
            let p = &s["point"];
            (
                p["input_tokens"].as_u64().unwrap(),
                p["output_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(at, [(64, 64), (64, 128)]);
    let b = &shared[0]["values"][1];
    assert_eq!(b["rows"], 2);
    assert!((b["energy_per_token_j"].as_f64().unwrap() - 0.0102).abs() < 1e-12);
    assert!((b["diff_pct"].as_f64().unwrap() - 2.0).abs() < 1e-9, "{b}");
    assert!(shared[0]["values"][0]["diff_pct"].is_null());
    let s = &c["summary"][0];
    assert_eq!(
        (
            s["place"].as_u64(),
            s["against"].as_u64(),
            s["points"].as_u64()
        ),
        (Some(1), Some(0), Some(2))
    );
    assert!((s["min_pct"].as_f64().unwrap() + 1.0).abs() < 1e-9);
    assert!((s["median_pct"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert!((s["max_pct"].as_f64().unwrap() - 2.0).abs() < 1e-9);

    // The same rows in one file, told apart by their card.
    let a = std::fs::read_to_string(dir.path().join("a.csv")).unwrap();
    let b = std::fs::read_to_string(dir.path().join("b.csv")).unwrap();
    let both = a + b.split_once('\n').unwrap().1;
    std::fs::write(dir.path().join("both.csv"), both).unwrap();
    let c = json(
        dir.path(),
        &["compare", "--by", "gpu_uuid", "both.csv", "--json"],
    );
    assert_eq!(
        c["places"],
        serde_json::json!(["gpu_uuid=GPU-1", "gpu_uuid=GPU-2"])
    );
    assert!((c["summary"][0]["median_pct"].as_f64().unwrap() - 0.5).abs() < 1e-9);

    // The table says the same.
    let (ok, out, err) = run_in(dir.path(), &["compare", "a.csv", "b.csv"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("run settings: requests 1000, max_batch_size 1024"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.split_whitespace().take(2).eq(["b.csv", "a.csv"]))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.ends_with("2  -1.00 %  +0.50 %  +2.00 %"), "{line}");
}

#[test]
fn bad_input_and_nothing_to_compare_are_errors_that_name_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", &[(64, 64, 0.01, "GPU-1", "ok")]);
    write(dir.path(), "b.csv", &[(128, 64, 0.02, "GPU-1", "ok")]);
    std::fs::write(
        dir.path().join("c.csv"),
        format!("{HEADER}\nsynthetic-a,64,64,1000,abc,GPU-1,ok\n"),
    )
    .unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["compare", "a.csv", "c.csv"], "c.csv, row 1 (line 2), column 'energy_j': 'abc' is not a number"),
        (&["compare", "a.csv", "b.csv"], "no grid point (llm, input_tokens, output_tokens, requests, max_batch_size, max_num_tokens, dtype) is measured in more than one of: a.csv, b.csv"),
        (&["compare", "--by", "engine", "a.csv"], "--by engine: no column 'engine' in a.csv"),
        (&["compare", "--by", "gpu_uuid", "a.csv", "b.csv"], "--by gpu_uuid takes one value"),
    ];
    for (args, want) in cases {
        let (ok, _, err) = run_in(dir.path(), args);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// Energy per token of each ok row of a measurement CSV, read here from the cells (energy_j /
/// requests / output_tokens), keyed by (n, m).
fn cells(path: &Path) -> Vec<((u64, u64), f64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let head = split(lines.next().unwrap());
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (n, m, r, e, st) = (
        col("input_tokens"),
        col("output_tokens"),
        col("requests"),
        col("energy_j"),
        col("status"),
    );
    lines
        .map(split)
        .filter(|c| c[st] == "ok")
        .map(|c| {
            let f = |i: usize| c[i].parse::<f64>().unwrap();
            ((f(n) as u64, f(m) as u64), f(e) / f(r) / f(m))
        })
        .collect()
}

#[test]
fn the_shipped_anchor_files_compare_as_their_cells_say() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut anchors: Vec<String> = std::fs::read_dir(data.join("anchors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("llama-3.2-1b-h100-") && n.ends_with(".csv"))
        .map(|n| format!("anchors/{n}"))
        .collect();
    anchors.sort();
    assert!(anchors.len() >= 2, "{anchors:?}");
    let mut args = vec!["compare", "llama-3.2-1b-h100.csv"];
    args.extend(anchors.iter().map(String::as_str));
    args.push("--json");
    let out = Command::new(BIN)
        .args(&args)
        .current_dir(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    let grid = cells(&data.join("llama-3.2-1b-h100.csv"));
    let shared = c["shared"].as_array().unwrap();
    assert_eq!(shared.len(), 3, "the three anchor points");
    for s in shared {
        let key = (
            s["point"]["input_tokens"].as_u64().unwrap(),
            s["point"]["output_tokens"].as_u64().unwrap(),
        );
        let reference = grid.iter().find(|(k, _)| *k == key).unwrap().1;
        let values = s["values"].as_array().unwrap();
        assert_eq!(
            values.len(),
            1 + anchors.len(),
            "{key:?}: every anchor file measured it"
        );
        for v in &values[1..] {
            let file = &anchors[v["place"].as_u64().unwrap() as usize - 1];
            let own = cells(&data.join(file))
                .iter()
                .find(|(k, _)| *k == key)
                .unwrap()
                .1;
            assert!((v["energy_per_token_j"].as_f64().unwrap() - own).abs() <= 1e-12 * own);
            let want = 100.0 * (own / reference - 1.0);
            assert!(
                (v["diff_pct"].as_f64().unwrap() - want).abs() < 1e-9,
                "{file} {key:?}"
            );
        }
    }
}
