//! `design --requests 1,10,100`: one budgeted design over input length, output length and the
//! number of requests (the concurrency axis), written as a plan and measured by `measure --plan`
//! on the stand-in meter.

use crate::common::{ef, text, QUICK};
use energy_fit::measure::read_rows;
use std::collections::BTreeSet;

const AXES: [&str; 6] = [
    "--inputs",
    "64,256,1024",
    "--outputs",
    "64,256,1024",
    "--requests",
    "1,10,100",
];

#[test]
fn a_design_over_requests_is_planned_within_budget_and_measured() {
    let d = tempfile::tempdir().unwrap();
    let plan = d.path().join("plan.csv");
    let out = d.path().join("m.csv");
    let mut args = vec![
        "design",
        "--llm",
        "llama-3.2-1b",
        "--model",
        "flops-mem-batch",
        "--budget-s",
        "20",
        "--holdouts",
        "2",
        "--min-window-s",
        "1",
        "--plan-csv",
        plan.to_str().unwrap(),
    ];
    args.extend(AXES);
    let o = ef(&args);
    let shown = text(&o);
    assert!(o.status.success(), "{shown}");
    assert!(shown.contains("requests: 1, 10, 100"), "{shown}");
    for r in [1, 10, 100] {
        assert!(
            shown.contains(&format!("sweet spots at requests {r} ")),
            "{shown}"
        );
    }
    assert!(
        shown.lines().any(|l| l.starts_with("eta ")),
        "eta's predicted error is shown: {shown}"
    );

    let planned: Vec<Vec<String>> = std::fs::read_to_string(&plan)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let requests: BTreeSet<u64> = planned.iter().map(|f| f[3].parse().unwrap()).collect();
    assert_eq!(requests, BTreeSet::from([1, 10, 100]), "{planned:?}");
    let design_s: f64 = planned
        .iter()
        .filter(|f| f[11] == "design")
        .map(|f| f[9].parse::<f64>().unwrap() * f[10].parse::<f64>().unwrap())
        .sum();
    assert!(design_s <= 20.0 + 1e-9, "design seconds {design_s}");
    assert!(planned.iter().filter(|f| f[11] == "design").count() > 7);
    assert_eq!(planned.iter().filter(|f| f[11] == "holdout").count(), 2);

    let mut m = vec![
        "measure",
        "--plan",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    m.extend(QUICK);
    let o = ef(&m);
    assert!(o.status.success(), "{}", text(&o));
    let rows = read_rows(&out).unwrap();
    assert_eq!(rows.len(), planned.len());
    for (r, f) in rows.iter().zip(&planned) {
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.requests),
            (
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap()
            )
        );
        assert_eq!(
            (r.role.as_str(), r.status.to_string()),
            (f[11].as_str(), "ok".to_string())
        );
    }

    // The JSON document carries each point's requests value.
    let mut j: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--plan-csv" && *a != plan.to_str().unwrap())
        .collect();
    j.push("--json");
    let o = ef(&j);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rs: BTreeSet<u64> = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(rs, BTreeSet::from([1, 10, 100]));
    assert!(v["coefficients"]["eta"]["rel_se_pct"].as_f64().unwrap() > 0.0);
}

/// Several requests values need a model that spans them; validation and adaptive designs stay
/// with one value.
#[test]
fn several_requests_are_refused_where_they_cannot_be_planned() {
    let mut args = vec!["design", "--llm", "llama-3.2-1b", "--budget-s", "20"];
    args.extend(AXES);
    let o = ef(&args);
    let e = text(&o);
    assert!(!o.status.success());
    for want in [
        "--requests 1,10,100",
        "model flops-mem ",
        "plan each value apart",
        "--model flops-mem-batch",
    ] {
        assert!(e.contains(want), "{want:?} not in {e}");
    }

    let o = ef(&["design", "--validate", "no-such.csv", "--requests", "1,10"]);
    assert!(
        !o.status.success() && text(&o).contains("--validate --requests 1,10"),
        "{}",
        text(&o)
    );

    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.csv");
    let mut m = vec![
        "measure",
        "--llm",
        "llama-3.2-1b",
        "--model",
        "flops-mem-batch",
        "--budget-s",
        "20",
        "--adaptive",
        "--out",
        out.to_str().unwrap(),
    ];
    m.extend(AXES);
    m.extend(QUICK);
    let o = ef(&m);
    assert!(
        !o.status.success() && text(&o).contains("--adaptive --requests 1,10,100"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
}

/// The protocol's floor: a plan over requests values carries at least 6 design rows at each
/// (the default), and says so; a budget that cannot hold the floor is an error naming the seconds
/// it needs and the flags; the floor with one requests value is refused.
#[test]
fn every_requests_value_gets_at_least_six_design_points() {
    let d = tempfile::tempdir().unwrap();
    let plan = d.path().join("plan.csv");
    let base = [
        "design",
        "--llm",
        "llama-3.2-1b",
        "--model",
        "flops-mem-batch",
        "--requests",
        "1,10,100",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--budget-s",
        "200",
        "--holdouts",
        "3",
        "--holdout-max-s",
        "30",
        "--plan-csv",
        plan.to_str().unwrap(),
    ]);
    let o = ef(&args);
    let shown = text(&o);
    assert!(o.status.success(), "{shown}");
    assert!(
        shown.contains("design points per requests value: 1: ")
            && shown.contains("(at least 6 each, --min-points-per-requests)"),
        "{shown}"
    );
    let rows: Vec<Vec<String>> = std::fs::read_to_string(&plan)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let design: Vec<&Vec<String>> = rows.iter().filter(|f| f[11] == "design").collect();
    for r in ["1", "10", "100"] {
        let n = design.iter().filter(|f| f[3] == r).count();
        assert!(n >= 6, "requests {r}: {n} design rows");
        assert!(
            shown.contains(&format!(" {r}: {n}")),
            "count of {r} printed: {shown}"
        );
    }
    let design_s: f64 = design
        .iter()
        .map(|f| f[9].parse::<f64>().unwrap() * f[10].parse::<f64>().unwrap())
        .sum();
    assert!(design_s <= 200.0 + 1e-9, "design seconds {design_s}");

    // --json carries the counts; K = 0 gives the design without a floor (R = 10 then has fewer).
    let mut j = base.to_vec();
    j.extend([
        "--budget-s",
        "200",
        "--json",
        "--min-points-per-requests",
        "0",
    ]);
    let o = ef(&j);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["min_points_per_requests"], 0);
    let at10 = &v["points_per_requests"][1];
    assert_eq!(at10["requests"], 10);
    assert!(at10["points"].as_u64().unwrap() < 6, "{v}");

    let mut small = base.to_vec();
    small.extend(["--budget-s", "30"]);
    let o = ef(&small);
    let e = text(&o);
    assert!(!o.status.success());
    for want in [
        "--budget-s 30: too small for --min-points-per-requests 6",
        "3 requests values",
        "costs 90.3 s: give --budget-s 91",
    ] {
        assert!(e.contains(want), "{want:?} not in {e}");
    }

    let o = ef(&[
        "design",
        "--llm",
        "llama-3.2-1b",
        "--budget-s",
        "100",
        "--min-points-per-requests",
        "6",
    ]);
    let e = text(&o);
    assert!(
        !o.status.success() && e.contains("needs several --requests values, got one (1000)"),
        "{e}"
    );
}

/// `measure --budget-s` over several requests values designs with the same floor.
#[test]
fn measure_budget_holds_the_floor_per_requests_value() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.csv");
    let o = ef(&[
        "measure",
        "--llm",
        "llama-3.2-1b",
        "--model",
        "flops-mem-batch",
        "--requests",
        "1,10,100",
        "--budget-s",
        "120",
        "--min-points-per-requests",
        "7",
        "--dry-run",
        "--out",
        out.to_str().unwrap(),
    ]);
    let shown = text(&o);
    assert!(o.status.success(), "{shown}");
    let line = shown
        .lines()
        .find(|l| l.starts_with("design points per requests value: "))
        .unwrap_or_else(|| panic!("no per-value counts: {shown}"));
    let counts: Vec<usize> = line
        .trim_start_matches("design points per requests value: ")
        .split(" (")
        .next()
        .unwrap()
        .split(", ")
        .map(|kv| kv.split(": ").nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 3, "{line}");
    assert!(counts.iter().all(|&n| n >= 7), "{line}");
    assert!(line.contains("at least 7 each"), "{line}");
}
