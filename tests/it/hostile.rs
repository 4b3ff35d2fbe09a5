//! Malformed inputs at the edges of the batch axis (several `requests` values, the measured
//! concurrency columns, `predict`'s batch flags, config.json shapes): each is refused with an
//! error that names the file and row, or the flag, and the value, instead of being fitted or
//! predicted as if it meant something.

use crate::common::{run_in, LLAMA};
use std::path::Path;

const HEADER: &str = "llm,input_tokens,output_tokens,requests,energy_j,dtype,max_batch_size,max_num_tokens,status,mean_concurrency,kv_capacity_tokens";

/// A flops-mem surface over a 5 × 5 grid at requests 1 and 10 (plausible concurrency and KV
/// capacity), with `edit(row, cells)` applied to each data row's cells first.
fn csv_with(dir: &Path, name: &str, edit: impl Fn(usize, &mut Vec<String>)) -> String {
    let grid = [64.0, 256.0, 1024.0, 2048.0, 4096.0];
    let mut lines = vec![HEADER.to_string()];
    let mut row = 0;
    for r in [1.0, 10.0] {
        for n in grid {
            for m in grid {
                let [a, b, g, d, e, z] = LLAMA;
                let per_request = a * m + b * n * n + g * n * m + d * n + e * m * m + z + m / r;
                let mut cells: Vec<String> = vec![
                    "llama-3.1-8b".into(),
                    format!("{n}"),
                    format!("{m}"),
                    format!("{r}"),
                    format!("{}", per_request * r * (1.0 + 0.001 * (row % 3) as f64)),
                    "bf16".into(),
                    "1024".into(),
                    "8192".into(),
                    "ok".into(),
                    format!("{r}"),
                    "2000000".into(),
                ];
                row += 1;
                edit(row, &mut cells);
                lines.push(cells.join(","));
            }
        }
    }
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p.to_str().unwrap().to_string()
}

fn col(name: &str) -> usize {
    HEADER.split(',').position(|c| c == name).unwrap()
}

/// `fit --model flops-mem-batch` on a file whose data row 3 has `value` in `column`: refused,
/// naming the file, row 3 (line 4), the column and the value.
fn refused_at_row_3(column: &str, value: &str) {
    let dir = tempfile::tempdir().unwrap();
    let c = col(column);
    let f = csv_with(dir.path(), "d.csv", |row, cells| {
        if row == 3 {
            cells[c] = value.to_string();
        }
    });
    let (ok, out, err) = run_in(dir.path(), &["fit", &f, "--model", "flops-mem-batch"]);
    assert!(!ok, "{column} = {value:?} was fitted:\n{out}");
    for want in ["d.csv", "row 3 (line 4)", column] {
        assert!(
            err.contains(want),
            "{column} = {value:?}: no {want:?} in {err}"
        );
    }
}

#[test]
fn mean_concurrency_that_is_no_concurrency_is_refused_naming_the_cell() {
    for v in ["0", "-1", "NaN", "inf", "abc", "0.5", "1e308", "11"] {
        refused_at_row_3("mean_concurrency", v);
    }
}

#[test]
fn kv_capacity_that_is_no_count_is_refused_naming_the_cell() {
    for v in ["0", "-1", "nan", "inf", "abc", "2.5"] {
        refused_at_row_3("kv_capacity_tokens", v);
    }
}

#[test]
fn batch_limits_that_are_no_counts_are_refused_naming_the_cell() {
    for v in ["0", "-5", "abc", "1.5"] {
        refused_at_row_3("max_batch_size", v);
        refused_at_row_3("max_num_tokens", v);
    }
}

#[test]
fn integers_too_large_for_the_reader_name_their_row() {
    for column in ["input_tokens", "mean_concurrency", "kv_capacity_tokens"] {
        refused_at_row_3(column, "99999999999999999999");
    }
}

#[test]
fn empty_concurrency_cells_are_unknown_and_fitted() {
    let dir = tempfile::tempdir().unwrap();
    let (mc, kv) = (col("mean_concurrency"), col("kv_capacity_tokens"));
    let f = csv_with(dir.path(), "d.csv", |_, cells| {
        cells[mc].clear();
        cells[kv].clear();
    });
    let (ok, out, err) = run_in(dir.path(), &["fit", &f, "--model", "flops-mem-batch"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("flops-mem-batch"), "{out}");
}

/// A flops-mem-batch fit file written by `fit --out`, in `dir`.
fn fmb_fit(dir: &Path) -> String {
    let f = csv_with(dir, "d.csv", |_, _| {});
    let out = dir.join("fits");
    let (ok, o, e) = run_in(
        dir,
        &[
            "fit",
            &f,
            "--model",
            "flops-mem-batch",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{o}{e}");
    out.join("llama-3.1-8b.flops-mem-batch.json")
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn predict_batch_flags_outside_what_a_batch_can_be_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let fit = fmb_fit(dir.path());
    let cases: [(&[&str], &str); 5] = [
        (&["--concurrency", "0.5"], "--concurrency"),
        (&["--concurrency", "1e30"], "--concurrency"),
        (&["--requests", "100000000"], "--requests"),
        // A KV cache of 1 token holds no request: no concurrency to predict at.
        (
            &["--requests", "10", "--kv-capacity-tokens", "1"],
            "--kv-capacity-tokens",
        ),
        (
            &[
                "--requests",
                "10",
                "--kv-capacity-tokens",
                "100",
                "--output",
                "4096",
            ],
            "--kv-capacity-tokens",
        ),
    ];
    for (flags, flag) in cases {
        let mut args = vec!["predict", "--fit", &fit, "--input", "64"];
        args.extend_from_slice(flags);
        let t = std::time::Instant::now();
        let (ok, out, err) = run_in(dir.path(), &args);
        assert!(!ok, "{flags:?} predicted:\n{out}");
        assert!(err.contains(flag), "{flags:?}: no {flag} in {err}");
        assert!(
            t.elapsed().as_secs_f64() < 5.0,
            "{flags:?} took {:?}",
            t.elapsed()
        );
    }
    let (ok, out, err) = run_in(
        dir.path(),
        &[
            "predict",
            "--fit",
            &fit,
            "--input",
            "64",
            "--concurrency",
            "1",
        ],
    );
    assert!(ok && out.contains("1 sequences in flight"), "{out}{err}");
}

#[test]
fn flops_mem_batch_on_an_llm_of_no_known_shape_names_the_column_not_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let f = csv_with(dir.path(), "d.csv", |_, cells| cells[0] = "my-llm".into());
    let (ok, _, err) = run_in(dir.path(), &["fit", &f, "--model", "flops-mem-batch"]);
    assert!(!ok);
    assert!(
        err.contains("my-llm") && err.contains("column 'llm'"),
        "{err}"
    );
    assert!(
        !err.contains("--llm"),
        "names a flag that was not given: {err}"
    );
}

#[test]
fn validate_on_one_llm_of_several_requests_values_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let f = csv_with(dir.path(), "d.csv", |_, _| {});
    let (ok, _, err) = run_in(dir.path(), &["design", "--validate", &f]);
    assert!(!ok);
    assert!(!err.contains("2 LLMs"), "one LLM counted as two: {err}");
    assert!(err.contains("requests"), "{err}");
}

/// The file with its last `k` columns cut, as a version of `measure` before them wrote it.
fn without_last_columns(src: &str, dst: &Path, k: usize) {
    let text: Vec<String> = std::fs::read_to_string(src)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[..f.len() - k].join(",")
        })
        .collect();
    std::fs::write(dst, text.join("\n") + "\n").unwrap();
}

#[test]
fn merge_takes_a_copy_without_the_newer_columns_as_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let new = csv_with(dir.path(), "new.csv", |_, _| {});
    let old = dir.path().join("old.csv");
    without_last_columns(&new, &old, 2);
    let out = dir.path().join("m.csv");
    let (ok, o, e) = run_in(
        dir.path(),
        &[
            "merge",
            old.to_str().unwrap(),
            &new,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{o}{e}");
    let merged = std::fs::read_to_string(&out).unwrap();
    // Every row once, each with the copy that knows its concurrency.
    assert_eq!(merged.lines().count(), 51, "{merged}");
    assert!(
        merged.lines().skip(1).all(|l| l.ends_with(",2000000")),
        "{merged}"
    );
}

#[test]
fn merge_conflicts_name_the_column_that_differs() {
    let dir = tempfile::tempdir().unwrap();
    let a = csv_with(dir.path(), "a.csv", |_, _| {});
    let b = csv_with(dir.path(), "b.csv", |row, cells| {
        if row == 2 {
            cells[4] = "123.5".into();
        }
    });
    let out = dir.path().join("m.csv");
    let (ok, _, err) = run_in(
        dir.path(),
        &["merge", &a, &b, "--out", out.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("energy_j") && err.contains("123.5"), "{err}");
    assert!(
        !err.contains("max_num_tokens ("),
        "names a column that agrees: {err}"
    );
    assert!(!out.exists());
}

#[test]
fn calibrate_on_files_without_gpu_column_names_no_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mc) = (col("requests"), col("mean_concurrency"));
    let f = csv_with(dir.path(), "d.csv", |row, cells| {
        cells[r] = "1".into();
        cells[mc] = "1".into();
        cells[2] = format!("{}{}", cells[2], if row > 25 { "1" } else { "" });
    });
    let (ok, _, err) = run_in(dir.path(), &["calibrate", &f, "--out", "c.json"]);
    assert!(!ok, "one LLM cannot be calibrated");
    assert!(
        !err.contains("--by"),
        "names a flag that was not given: {err}"
    );
    assert!(err.contains("LLM"), "{err}");
}

#[test]
fn calibrate_refuses_rows_of_several_requests_values_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = ["llama-3.2-1b", "llama-3.2-3b", "qwen2-1.5b"]
        .iter()
        .map(|l| csv_with(dir.path(), &format!("{l}.csv"), |_, c| c[0] = l.to_string()))
        .collect();
    let mut args = vec!["calibrate"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--out", "c.json"]);
    let (ok, out, err) = run_in(dir.path(), &args);
    assert!(
        !ok,
        "rows of requests 1 and 10 pooled under one setting:\n{out}"
    );
    assert!(err.contains("'requests'"), "{err}");
    assert!(!dir.path().join("c.json").exists());
}

#[test]
fn rows_of_other_requests_values_are_not_repeats_of_a_point() {
    let dir = tempfile::tempdir().unwrap();
    let fit = fmb_fit(dir.path());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fit).unwrap()).unwrap();
    // 25 points at each of requests 1 and 10, none measured twice.
    assert_eq!(doc["repeats"]["grid_points"], 50, "{}", doc["repeats"]);
    assert_eq!(
        doc["repeats"]["points_with_repeats"], 0,
        "{}",
        doc["repeats"]
    );
    let f = dir.path().join("d.csv");
    let (ok, out, _) = run_in(
        dir.path(),
        &["fit", f.to_str().unwrap(), "--model", "flops-mem-batch"],
    );
    assert!(ok && !out.contains("repeats:"), "{out}");
}

#[test]
fn flops_mem_batch_at_one_concurrency_says_why_it_cannot_be_fitted() {
    let dir = tempfile::tempdir().unwrap();
    let f = csv_with(dir.path(), "d.csv", |_, _| {});
    let (ok, _, err) = run_in(
        dir.path(),
        &["fit", &f, "--model", "flops-mem-batch", "--by", "requests"],
    );
    assert!(!ok);
    assert!(err.contains("concurrency") && err.contains("eta"), "{err}");
    assert!(
        !err.contains("measure more input/output lengths"),
        "wrong advice: {err}"
    );
}

#[test]
fn cv_by_max_batch_size_advice_names_max_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let f = csv_with(dir.path(), "d.csv", |_, _| {});
    let (ok, _, err) = run_in(
        dir.path(),
        &[
            "fit",
            &f,
            "--model",
            "flops-mem-batch",
            "--cv-by",
            "max_batch_size",
        ],
    );
    assert!(!ok);
    assert!(err.contains("--max-batch-size"), "{err}");
}

/// A copy of the flops-mem-batch fit file of `dir` with `edit` applied to its JSON, at `name`.
fn edited_fit(dir: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    let fit = fmb_fit(dir);
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fit).unwrap()).unwrap();
    edit(&mut doc);
    let p = dir.join(name);
    std::fs::write(&p, doc.to_string()).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn fit_files_whose_batch_is_no_batch_are_refused_naming_the_field() {
    let cases: [(&str, serde_json::Value, &str); 5] = [
        ("requests", 0.into(), "batch.settings.requests"),
        ("max_batch_size", 0.into(), "batch.settings.max_batch_size"),
        ("max_num_tokens", 0.into(), "batch.settings.max_num_tokens"),
        ("dtype_bytes", 0.into(), "batch.settings.dtype_bytes"),
        (
            "gpu_memory_bytes",
            (-1.0).into(),
            "batch.settings.gpu_memory_bytes",
        ),
    ];
    for (key, value, field) in cases {
        let dir = tempfile::tempdir().unwrap();
        let f = edited_fit(dir.path(), "e.json", |d| {
            d["batch"]["settings"][key] = value.clone()
        });
        let (ok, out, err) = run_in(dir.path(), &["predict", "--fit", &f, "--input", "64"]);
        assert!(!ok, "{key} = {value} predicted:\n{out}");
        assert!(
            err.contains("e.json") && err.contains(field),
            "{key}: {err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let f = edited_fit(dir.path(), "e.json", |d| d["batch"]["llm"] = "nope".into());
    let (ok, _, err) = run_in(dir.path(), &["predict", "--fit", &f, "--input", "64"]);
    assert!(
        !ok && err.contains("batch.llm") && !err.contains("--llm"),
        "{err}"
    );
}

#[test]
fn plan_rows_beyond_measure_bounds_are_refused_naming_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let head = "llm,input_tokens,output_tokens,requests,max_batch_size,max_num_tokens,dtype,repeat,fits,est_s,runs,role";
    let ok_row = "llama-3.2-1b,64,64,10,1024,8192,bf16,0,true,0.1,1,design";
    let cases = [
        (
            "llama-3.2-1b,64,64,2000000,1024,8192,bf16,0,true,0.1,1,design",
            "requests",
        ),
        (
            "llama-3.2-1b,2000000,64,10,1024,8192,bf16,0,true,0.1,1,design",
            "input_tokens",
        ),
        (
            "llama-3.2-1b,64,2000000,10,1024,8192,bf16,0,true,0.1,1,design",
            "output_tokens",
        ),
        (
            "llama-3.2-1b,64,64,10,1024,8192,bf16,5000,true,0.1,1,design",
            "repeat",
        ),
    ];
    for (row, column) in cases {
        let plan = dir.path().join("plan.csv");
        std::fs::write(&plan, format!("{head}\n{ok_row}\n{row}\n")).unwrap();
        let out = dir.path().join("o.csv");
        let t = std::time::Instant::now();
        let o = std::process::Command::new(crate::common::BIN)
            .args([
                "measure",
                "--plan",
                plan.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .args(crate::common::QUICK)
            .env("ENERGY_FIT_STANDIN", "")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{column}: measured");
        assert!(
            err.contains("line 3") && err.contains(column),
            "{column}: {err}"
        );
        assert!(
            t.elapsed().as_secs_f64() < 5.0,
            "{column}: {:?}",
            t.elapsed()
        );
        assert!(!out.exists(), "{column}: an output file was created");
    }
}

#[test]
fn gpu_memory_too_small_for_a_kv_cache_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let f = csv_with(dir.path(), "d.csv", |_, _| {});
    let (ok, _, err) = run_in(
        dir.path(),
        &[
            "fit",
            &f,
            "--model",
            "flops-mem-batch",
            "--gpu-mem-gib",
            "0.5",
        ],
    );
    assert!(
        !ok && err.contains("--gpu-mem-gib 0.5") && err.contains("0.5 GiB"),
        "{err}"
    );
    let (ok, _, err) = run_in(
        dir.path(),
        &[
            "design",
            "--llm",
            "llama-3.2-1b",
            "--model",
            "flops-mem-batch",
            "--requests",
            "1,10",
            "--budget-s",
            "300",
            "--gpu-mem-gib",
            "1",
        ],
    );
    assert!(!ok && err.contains("--gpu-mem-gib 1"), "{err}");
}
