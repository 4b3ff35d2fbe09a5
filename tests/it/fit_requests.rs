//! The concurrency axis end to end: labelled synthetic data of several `requests` values
//! (generated from known flops-mem-batch coefficients and the engine's batching rules), fitted
//! apart per requests value by the models of n and m, together by flops-mem-batch; leave one
//! requests value out; predict at a number of requests or a concurrency; measured rows carry
//! their concurrency.

use crate::common::{ef, text, QUICK};
use energy_fit::analytic::flops_mem_batch::{concurrency_of, FlopsMemBatch, Settings};
use energy_fit::analytic::EnergyModel;
use energy_fit::dataset::synthetic::{grid, write_csv, GRID};
use energy_fit::dataset::Obs;
use energy_fit::fit::{fit_model, FitOptions};
use std::path::PathBuf;

/// flops-mem's 8B coefficients (J/request terms) plus a shared per-step η.
const TRUE: [f64; 7] = [1.6e-2, 3.9e-7, 3.3e-5, 1.5e-2, 1.9e-5, 0.17, 2.2];
const REQUESTS: [usize; 4] = [1, 10, 100, 1000];
const LLM: &str = "llama-3.1-8b";

fn settings(requests: usize) -> Settings {
    Settings {
        requests,
        max_batch_size: 1024,
        max_num_tokens: 8192,
        dtype_bytes: 2,
        gpu_memory_bytes: 80.0 * (1u64 << 30) as f64,
    }
}

/// The truth at R requests: flops-mem-batch bound to the scheduler's concurrency under R.
fn model(requests: usize) -> FlopsMemBatch {
    let cfg = energy_fit::llm::resolve_llm(LLM).unwrap();
    FlopsMemBatch::new(concurrency_of(&cfg, settings(requests)).unwrap())
}

/// The grid at R, each row with its concurrency (as a measured row's `mean_concurrency`).
fn rows(requests: usize, seed: u64) -> Vec<Obs> {
    let m = model(requests);
    let cfg = energy_fit::llm::resolve_llm(LLM).unwrap();
    let c = concurrency_of(&cfg, settings(requests)).unwrap();
    grid(&m, &TRUE, &GRID, &GRID, 0.005, seed)
        .into_iter()
        .map(|o| Obs {
            concurrency: Some(c(o.input_tokens, o.output_tokens)),
            ..o
        })
        .collect()
}

/// One CSV per requests value, as `measure` would write them.
fn csvs(dir: &std::path::Path, values: &[usize]) -> Vec<PathBuf> {
    values
        .iter()
        .map(|&r| {
            let p = dir.join(format!("r{r}.csv"));
            write_csv(&p, LLM, &rows(r, r as u64), r as u64).unwrap();
            p
        })
        .collect()
}

fn strs(paths: &[PathBuf]) -> Vec<&str> {
    paths.iter().map(|p| p.to_str().unwrap()).collect()
}

/// Over four requests values (c from 1 to ~1000), η and every prediction come back; at one
/// requests value alone η cannot be told from α where c barely varies.
#[test]
fn recovers_eta_across_requests_values() {
    let obs: Vec<Obs> = REQUESTS
        .iter()
        .flat_map(|&r| rows(r, r as u64 + 7))
        .collect();
    let m = FlopsMemBatch::unbound();
    let f = fit_model(&m, &obs, &FitOptions::default()).unwrap();
    let eta = f.coefficients[6].value;
    assert!((eta / TRUE[6] - 1.0).abs() < 0.05, "eta {eta}");
    assert!(f.mape_pct < 1.0, "MAPE {}", f.mape_pct);
    for o in &obs {
        let (p, t) = (
            m.energy_per_token_at(&f.values(), o),
            m.energy_per_token_at(&TRUE, o),
        );
        assert!((p / t - 1.0).abs() < 0.02, "{o:?}: {p} vs {t}");
    }
}

/// `fit` splits the models of n and m by requests and fits flops-mem-batch across them; file
/// names do not collide; `--cv-by requests` scores leaving each value out.
#[test]
fn fit_groups_by_requests_and_cv_by_requests() {
    let d = tempfile::tempdir().unwrap();
    let files = csvs(d.path(), &REQUESTS);
    let out = d.path().join("fits");
    let mut args = vec!["fit"];
    args.extend(strs(&files));
    args.extend([
        "--model",
        "flops-mem,flops-mem-batch",
        "--cv",
        "0",
        "--cv-by",
        "requests",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let o = ef(&args);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let fits = v["fits"].as_array().unwrap();
    let of = |model: &str| -> Vec<&serde_json::Value> {
        fits.iter().filter(|f| f["model"] == model).collect()
    };
    let fm = of("flops-mem");
    assert_eq!(fm.len(), 4, "one flops-mem fit per requests value");
    let mut rs: Vec<&str> = fm
        .iter()
        .map(|f| f["group"]["requests"].as_str().unwrap())
        .collect();
    rs.sort();
    assert_eq!(rs, ["1", "10", "100", "1000"]);
    assert!(fm.iter().all(|f| f["cv_by_mape_pct"].is_null()));
    let b = of("flops-mem-batch");
    assert_eq!(b.len(), 1, "flops-mem-batch spans requests");
    assert!(b[0]["group"].get("requests").is_none(), "{}", b[0]["group"]);
    assert_eq!(b[0]["points"], 4 * 49);
    let eta = b[0]["coefficients"]["eta"].as_f64().unwrap();
    assert!((eta / TRUE[6] - 1.0).abs() < 0.05, "eta {eta}");
    let cv = b[0]["cv_by_mape_pct"].as_f64().unwrap();
    assert!(cv < 2.0, "leave-one-requests-out MAPE {cv}");
    // Per left-out value, and the pooled MAPE is their row-weighted mean (49 rows each here).
    let by = &b[0]["cv_by_mape_pct_by_value"];
    let per: Vec<f64> = ["1", "10", "100", "1000"]
        .iter()
        .map(|r| {
            by[r]
                .as_f64()
                .unwrap_or_else(|| panic!("requests {r} in {by}"))
        })
        .collect();
    assert!(per.iter().all(|&v| v < 3.0), "{per:?}");
    let mean = per.iter().sum::<f64>() / 4.0;
    assert!((mean - cv).abs() < 1e-9, "pooled {cv} vs mean {mean}");
    assert_eq!(b[0]["cv_by"], "requests");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "synthetic-llama-3.1-8b.flops-mem-batch.json",
            "synthetic-llama-3.1-8b__requests-1.flops-mem.json",
            "synthetic-llama-3.1-8b__requests-10.flops-mem.json",
            "synthetic-llama-3.1-8b__requests-100.flops-mem.json",
            "synthetic-llama-3.1-8b__requests-1000.flops-mem.json",
        ]
    );
}

/// With one requests value, `--cv-by requests` is an error naming the flag and the value.
#[test]
fn cv_by_requests_with_one_value_says_why() {
    let d = tempfile::tempdir().unwrap();
    let files = csvs(d.path(), &[1000]);
    let o = ef(&[
        "fit",
        files[0].to_str().unwrap(),
        "--model",
        "flops-mem-batch",
        "--cv-by",
        "requests",
        "--no-write",
    ]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("--cv-by requests") && t.contains("one requests value (1000)"),
        "{t}"
    );
}

/// `--by requests` names its groups by the integer count, as the default split does.
#[test]
fn by_requests_labels_are_counts() {
    let d = tempfile::tempdir().unwrap();
    let files = csvs(d.path(), &[1, 10]);
    let mut args = vec!["fit"];
    args.extend(strs(&files));
    args.extend(["--by", "requests", "--model", "flops-mem", "--no-write"]);
    let o = ef(&args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("[requests=10]") && !t.contains("requests=10.0"),
        "{t}"
    );
}

/// `predict --requests R` rebuilds the concurrency of R requests; `--concurrency C` sets it;
/// both need a flops-mem-batch fit.
#[test]
fn predict_at_a_number_of_requests_or_a_concurrency() {
    let d = tempfile::tempdir().unwrap();
    let files = csvs(d.path(), &REQUESTS);
    let out = d.path().join("fits");
    let mut args = vec!["fit"];
    args.extend(strs(&files));
    args.extend([
        "--model",
        "flops-mem,flops-mem-batch",
        "--cv",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ef(&args).status.success());
    let fit = out.join("synthetic-llama-3.1-8b.flops-mem-batch.json");
    let predict = |extra: &[&str]| -> serde_json::Value {
        let mut a = vec!["predict", "--fit", fit.to_str().unwrap(), "--input", "512"];
        a.extend(extra);
        a.push("--json");
        let o = ef(&a);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    for r in [1usize, 10, 100] {
        let p = predict(&["--output", "1024", "--requests", &r.to_string()]);
        let truth = model(r).energy_per_token(&TRUE, 512.0, 1024.0);
        let e = p["energy_per_token_j"].as_f64().unwrap();
        assert!((e / truth - 1.0).abs() < 0.02, "R={r}: {e} vs {truth}");
        assert!(p["concurrency"].as_f64().unwrap() <= r as f64 + 1e-9);
    }
    // At one sequence in flight every step's shared cost falls on one token: the sweet spot
    // is where it is at R = 1.
    let one = predict(&["--concurrency", "1"]);
    let r1 = predict(&["--requests", "1"]);
    let (a, b) = (
        one["sweet_spot_output_tokens"].as_f64().unwrap(),
        r1["sweet_spot_output_tokens"].as_f64().unwrap(),
    );
    assert!((a / b - 1.0).abs() < 0.01, "m* {a} vs {b}");
    let e1 = predict(&["--output", "256", "--concurrency", "1"])["energy_per_token_j"]
        .as_f64()
        .unwrap();
    let e250 = predict(&["--output", "256", "--concurrency", "250"])["energy_per_token_j"]
        .as_f64()
        .unwrap();
    assert!(
        e250 < e1,
        "batching lowers energy per token: {e250} vs {e1}"
    );
    // A model that knows nothing of the batch is refused, naming the flag.
    let plain = out.join("synthetic-llama-3.1-8b__requests-10.flops-mem.json");
    let o = ef(&[
        "predict",
        "--fit",
        plain.to_str().unwrap(),
        "--input",
        "64",
        "--requests",
        "10",
    ]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("--requests") && t.contains("flops-mem-batch"),
        "{t}"
    );
}

/// Rows written by `measure` (stand-in meter) carry mean_concurrency and kv_capacity_tokens,
/// the scheduler's mean in flight: R at ample capacity.
#[test]
fn measured_rows_carry_their_concurrency() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.csv");
    let mut args = vec!["measure"];
    args.extend(QUICK);
    args.extend([
        "--inputs",
        "64",
        "--outputs",
        "64",
        "--requests",
        "1,8",
        "--out",
        out.to_str().unwrap(),
    ]);
    let o = ef(&args);
    assert!(o.status.success(), "{}", text(&o));
    let rows = energy_fit::measure::read_rows(&out).unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let c = r.mean_concurrency.expect("mean_concurrency");
        assert!((c - r.requests as f64).abs() < 1e-9, "{r:?}");
        assert!(r.kv_capacity_tokens.unwrap() > 100_000, "{r:?}");
    }
}

/// The report draws figure 10 for an LLM measured at several requests values (a measured and a
/// model line per value, and m* against concurrency), and skips it, saying why, with one value.
#[test]
fn report_draws_efficiency_by_requests() {
    let d = tempfile::tempdir().unwrap();
    let files = csvs(d.path(), &REQUESTS);
    let ds = energy_fit::dataset::Dataset::load(&files).unwrap();
    let out = d.path().join("report");
    let r = energy_fit::report::build(Some(&ds), &[], &out).unwrap();
    let f10: Vec<_> = r.figures.iter().filter(|f| f.number == 10).collect();
    assert_eq!(f10.len(), 1);
    let file = f10[0].file.as_ref().expect(&f10[0].note);
    assert!(out.join(file).is_file());
    // Four measured and four model lines, and the m* curve.
    assert_eq!(f10[0].series, 2 * REQUESTS.len() + 1, "{}", f10[0].note);
    // The other models were fitted per requests value: one subject each.
    assert!(r.markdown.contains("requests=1000"), "report.md");

    let one = energy_fit::dataset::Dataset::load(&files[3..]).unwrap();
    let r = energy_fit::report::build(Some(&one), &[], &d.path().join("one")).unwrap();
    let f10 = r.figures.iter().find(|f| f.number == 10).unwrap();
    assert!(f10.file.is_none() && f10.note.contains("more than one requests value"));
}

/// `energy-fit report` on the default data reads data/requests/ for figure 10 alone: the figure is
/// drawn across all requests values while the tables keep the 1000-request file of data/.
#[test]
fn report_default_data_draws_requests_from_data_requests() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(data.join("requests")).unwrap();
    let files = csvs(d.path(), &REQUESTS);
    for (f, r) in files.iter().zip(REQUESTS) {
        let to = if r == 1000 {
            data.join("grid.csv")
        } else {
            data.join("requests").join(format!("r{r}.csv"))
        };
        std::fs::rename(f, to).unwrap();
    }
    let (ok, stdout, stderr) = crate::common::run_in(d.path(), &["report"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "figure 10: reports/fig10-requests-synthetic-{LLM}.svg"
        )),
        "{stdout}"
    );
    let md = std::fs::read_to_string(d.path().join("reports/report.md")).unwrap();
    assert!(
        md.contains("fitted across requests 1, 10, 100, 1000"),
        "{md}"
    );
    // The tables are the grid's alone: no group is split by requests.
    assert!(!md.contains("requests=1"), "{md}");

    // Without data/requests/ the figure is skipped, saying why.
    std::fs::remove_dir_all(data.join("requests")).unwrap();
    let (ok, stdout, stderr) = crate::common::run_in(d.path(), &["report"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("more than one requests value"), "{stdout}");
}

/// A broken file in data/requests/ stops the default report with an error naming it, and the
/// report already written stays as it was.
#[test]
fn report_default_data_names_a_broken_requests_file() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(data.join("requests")).unwrap();
    let files = csvs(d.path(), &[1000]);
    std::fs::rename(&files[0], data.join("grid.csv")).unwrap();
    let (ok, _, stderr) = crate::common::run_in(d.path(), &["report"]);
    assert!(ok, "{stderr}");
    let before = std::fs::read_to_string(d.path().join("reports/report.md")).unwrap();
    std::fs::write(
        data.join("requests/bad.csv"),
        "llm,input_tokens\nx,not-a-number\n",
    )
    .unwrap();
    let (ok, _, stderr) = crate::common::run_in(d.path(), &["report"]);
    assert!(!ok && stderr.contains("bad.csv"), "{stderr}");
    let after = std::fs::read_to_string(d.path().join("reports/report.md")).unwrap();
    assert_eq!(before, after);
}

/// The measured requests design of llama-3.2-1b holds 6 points at requests 1 and 10, fewer than
/// flops-mem's 7: those groups are named on stderr and left out of flops-mem's table while the
/// 1000-request grid and flops-mem-batch over all values are still fitted. Alone, such a group
/// is an error.
#[test]
fn groups_too_small_for_a_model_are_named_and_skipped() {
    let root = env!("CARGO_MANIFEST_DIR");
    let grid = format!("{root}/data/llama-3.2-1b-h100.csv");
    let design = format!("{root}/data/requests/llama-3.2-1b-h100-requests.csv");
    let o = ef(&[
        "fit",
        "--model",
        "flops-mem,flops-mem-batch",
        "--cv",
        "0",
        &grid,
        &design,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        err.contains(
            "not fitted: llama-3.2-1b [requests=1] (6 rows): model flops-mem has 6 coefficients"
        ),
        "{err}"
    );
    let row = |label: &str| {
        out.lines()
            .find(|l| l.starts_with(label))
            .map(str::to_owned)
    };
    let r1000 = row("llama-3.2-1b [requests=1000]").expect("1000-request row");
    assert!(
        r1000.split_whitespace().any(|v| v.parse::<f64>().is_ok()),
        "{r1000}"
    );
    let batch = row("llama-3.2-1b  ").expect("flops-mem-batch row over all requests values");
    assert!(
        batch.split_whitespace().any(|v| v.parse::<f64>().is_ok()),
        "{batch}"
    );

    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("r1.csv");
    let rows: Vec<String> = std::fs::read_to_string(&design)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0 || l.contains(",64,1,") || l.contains(",128,1,") || l.contains(",256,1,")
        })
        .map(|(_, l)| l.to_owned())
        .collect();
    std::fs::write(&small, rows.join("\n") + "\n").unwrap();
    let o = ef(&[
        "fit",
        "--model",
        "flops-mem",
        "--cv",
        "0",
        small.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("needs at least 7 points"), "{}", text(&o));
}

/// A design over requests need not measure one input length at every requests value (the
/// measured 1B design has n = 1024 at 10, 100 and 1000 but not at 1): figure 10 takes the length
/// measured at the most values, draws their points, and a model line for every value.
#[test]
fn report_draws_requests_design_without_a_common_input_length() {
    let root = env!("CARGO_MANIFEST_DIR");
    let files = [
        PathBuf::from(format!("{root}/data/llama-3.2-1b-h100.csv")),
        PathBuf::from(format!(
            "{root}/data/requests/llama-3.2-1b-h100-requests.csv"
        )),
    ];
    let ds = energy_fit::dataset::Dataset::load(&files).unwrap();
    let d = tempfile::tempdir().unwrap();
    let r = energy_fit::report::build(Some(&ds), &[], &d.path().join("r")).unwrap();
    let f10 = r.figures.iter().find(|f| f.number == 10).unwrap();
    assert!(f10.file.is_some(), "{}", f10.note);
    // Points for the three values measured at n = 1024, a model line for each of the four, m*.
    assert_eq!(f10.series, 3 + 4 + 1, "{}", f10.note);
}
