//! `measure --budget-s S --adaptive` end to end on the stand-in meter: an initial design, then
//! points chosen one at a time within the budget; resumable without measuring anything twice.

use crate::common::{ef, text, QUICK};
use energy_fit::measure::read_rows;
use std::collections::{HashMap, HashSet};

const GRID: [&str; 8] = [
    "--llm",
    "llama-3.2-1b",
    "--inputs",
    "64,128,256,512",
    "--outputs",
    "64,128,256,512",
    "--requests",
    "10",
];
const BUDGET: f64 = 2.0;

/// Estimated seconds (est_s × runs) of every grid point, from the dry run's plan CSV.
fn estimates(dir: &std::path::Path) -> HashMap<(u64, u64), f64> {
    let plan = dir.join("grid.plan.csv");
    let mut a = vec!["measure", "--dry-run", "--min-window-s", "0"];
    a.extend(GRID);
    a.extend(["--plan-csv", plan.to_str().unwrap()]);
    let o = ef(&a);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::read_to_string(&plan)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let est: f64 = f[9].parse().unwrap();
            let runs: f64 = f[10].parse().unwrap();
            ((f[1].parse().unwrap(), f[2].parse().unwrap()), est * runs)
        })
        .collect()
}

/// Every point once, all `design` and ok, their estimated seconds within the budget, and the
/// budget spent: no unmeasured point fits in what is left.
fn check_spent(rows: &[energy_fit::measure::Row], est: &HashMap<(u64, u64), f64>) {
    let keys: HashSet<(u64, u64)> = rows
        .iter()
        .map(|r| (r.input_tokens, r.output_tokens))
        .collect();
    assert_eq!(keys.len(), rows.len(), "a point measured twice");
    assert!(rows.iter().all(|r| r.role == "design" && r.status.is_ok()));
    let spent: f64 = keys.iter().map(|k| est[k]).sum();
    assert!(spent <= BUDGET + 1e-9, "{spent} s > {BUDGET} s");
    assert!(est
        .iter()
        .filter(|(k, _)| !keys.contains(k))
        .all(|(_, s)| *s > BUDGET - spent));
}

fn adaptive(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let budget = BUDGET.to_string();
    let mut a = vec![
        "measure",
        "--budget-s",
        &budget,
        "--adaptive",
        "--initial-fraction",
        "0.4",
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend(GRID);
    a.extend(QUICK.iter().filter(|f| **f != "--quiet"));
    a.extend(extra);
    ef(&a)
}

/// The initial design is followed by adaptive points; every point once, all `design`, and the
/// estimated seconds of what was measured within the budget.
#[test]
fn adaptive_measures_beyond_the_initial_design_within_budget() {
    let d = tempfile::tempdir().unwrap();
    let est = estimates(d.path());
    let out = d.path().join("a.csv");
    let o = adaptive(&out, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let initial: usize = t
        .split("adaptive design: initial ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no initial design line in {t}"));
    let rows = read_rows(&out).unwrap();
    assert!(
        rows.len() > initial,
        "{} rows, {initial} initial",
        rows.len()
    );
    assert!(rows.len() < est.len(), "the budget should not buy the grid");
    assert_eq!(t.matches("adaptive: next").count(), rows.len() - initial);
    check_spent(&rows, &est);

    // Resuming a finished design measures nothing and leaves the file as it was.
    let before = std::fs::read(&out).unwrap();
    let o = adaptive(&out, &["--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

/// Interrupted after a few rows, `--resume` completes the design with the rows kept byte for byte
/// and nothing measured twice.
#[test]
fn adaptive_resumes_after_an_interruption() {
    let d = tempfile::tempdir().unwrap();
    let est = estimates(d.path());
    let out = d.path().join("a.csv");
    assert!(adaptive(&out, &[]).status.success());
    let full = std::fs::read_to_string(&out).unwrap();
    let kept: String = full.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(&out, &kept).unwrap();
    let o = adaptive(&out, &["--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    let after = std::fs::read_to_string(&out).unwrap();
    assert!(after.starts_with(&kept));
    let rows = read_rows(&out).unwrap();
    assert!(rows.len() > 4);
    check_spent(&rows, &est);
}

/// `--adaptive` needs a budget and does not shard (each point depends on the ones before); its
/// initial share is a fraction.
#[test]
fn adaptive_flag_errors() {
    for (args, says) in [
        (&["--adaptive"][..], "--budget-s"),
        (
            &["--budget-s", "60", "--adaptive", "--shard", "1/2"][..],
            "--shard",
        ),
        (
            &[
                "--budget-s",
                "60",
                "--adaptive",
                "--initial-fraction",
                "1.5",
            ][..],
            "fraction",
        ),
    ] {
        let mut a = vec!["measure", "--dry-run"];
        a.extend(args);
        let o = ef(&a);
        assert!(
            !o.status.success() && text(&o).contains(says),
            "{args:?}: {}",
            text(&o)
        );
    }
}
