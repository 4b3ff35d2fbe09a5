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
