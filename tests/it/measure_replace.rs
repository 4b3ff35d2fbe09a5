//! `measure --plan`: a design point that cannot run is replaced by the next-best point, once, and a
//! resumed run keeps the same design (the stand-in fails every point of one input length).

use crate::common::{text, BIN, GRID, QUICK};
use energy_fit::measure::read_rows;
use std::path::Path;
use std::process::{Command, Output};

fn failing(fail_input: u64, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("ENERGY_FIT_STANDIN", format!("fail_input={fail_input}"))
        .output()
        .expect("spawn energy-fit")
}

/// A 12 s design of the small grid with one hold-out, written to `plan`.
fn design_plan(plan: &Path) {
    let mut args = vec!["design", "--llm", "llama-3.2-1b", "--budget-s", "12"];
    args.extend(["--holdouts", "1", "--min-window-s", "1"]);
    args.extend(GRID);
    args.extend(["--plan-csv", plan.to_str().unwrap()]);
    let o = failing(0, &args);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_failed_design_point_is_replaced_by_the_next_best_once() {
    let d = tempfile::tempdir().unwrap();
    let (plan, out) = (d.path().join("plan.csv"), d.path().join("m.csv"));
    design_plan(&plan);
    let planned: Vec<(u64, u64, String)> = std::fs::read_to_string(&plan)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let role = f.last().unwrap().to_string();
            (f[1].parse().unwrap(), f[2].parse().unwrap(), role)
        })
        .collect();
    let design: Vec<(u64, u64)> = planned
        .iter()
        .filter(|p| p.2 == "design")
        .map(|p| (p.0, p.1))
        .collect();
    // Fail the input length of the design's most output-heavy point that is not n = 64.
    let lost = *design
        .iter()
        .filter(|p| p.0 > 64)
        .max_by_key(|p| (p.1, p.0))
        .unwrap();
    let lost_count = design.iter().filter(|p| p.0 == lost.0).count();

    let mut m = vec!["measure", "--plan", plan.to_str().unwrap()];
    m.extend(["--out", out.to_str().unwrap()]);
    m.extend(QUICK);
    let o = failing(lost.0, &m);
    assert!(o.status.success(), "{}", text(&o));
    let log = text(&o);
    assert!(
        log.contains(&format!(
            "design point n={} m={} skipped: replaced by",
            lost.0, lost.1
        )),
        "{log}"
    );
    let rows = read_rows(&out).unwrap();
    let ok_design: Vec<(u64, u64)> = rows
        .iter()
        .filter(|r| r.role == "design" && r.repeat == 0 && r.status.is_ok())
        .map(|r| (r.input_tokens, r.output_tokens))
        .collect();
    let skipped = rows.iter().filter(|r| !r.status.is_ok()).count();
    // The design keeps its size: each failed point (a replacement at the failing length fails
    // too, and is replaced in turn) has an ok replacement outside the plan.
    let failed = rows
        .iter()
        .filter(|r| r.role == "design" && !r.status.is_ok())
        .count();
    assert!(failed >= lost_count, "{log}");
    assert_eq!(ok_design.len(), design.len(), "{log}");
    let extra: Vec<&(u64, u64)> = ok_design.iter().filter(|p| !design.contains(p)).collect();
    assert_eq!(extra.len(), lost_count, "{log}");
    assert!(extra
        .iter()
        .all(|p| p.0 != lost.0 && !planned.iter().any(|q| (q.0, q.1) == **p)));
    assert_eq!(log.matches("replaced by").count(), failed, "{log}");
    let mut keys: Vec<(u64, u64, u64)> = rows
        .iter()
        .map(|r| (r.input_tokens, r.output_tokens, r.repeat))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), rows.len(), "a point measured twice: {log}");

    // Resumed: the failures are already replaced, so nothing more is measured.
    m.push("--resume");
    let o = failing(lost.0, &m);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("replaced by"), "{}", text(&o));
    let again = read_rows(&out).unwrap();
    assert_eq!(again.len(), rows.len());
    assert_eq!(again.iter().filter(|r| !r.status.is_ok()).count(), skipped);
}

/// A failure nothing is cheap enough to replace is said once, and the failures after it are still
/// paired with their own replacements, in the run and when it is resumed. The plan's cheapest
/// design point, (64, 64), goes first; the stand-in fails every point at n = 64.
#[test]
fn an_unreplaceable_failure_is_said_once_and_shifts_no_pairing() {
    let d = tempfile::tempdir().unwrap();
    let (plan, out) = (d.path().join("plan.csv"), d.path().join("m.csv"));
    design_plan(&plan);
    let text_of = std::fs::read_to_string(&plan).unwrap();
    let mut lines: Vec<&str> = text_of.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.contains(",64,64,") && l.ends_with(",design"))
        .expect("the design holds (64, 64)");
    let l = lines.remove(first);
    lines.insert(1, l);
    std::fs::write(&plan, lines.join("\n") + "\n").unwrap();

    let mut m = vec!["measure", "--plan", plan.to_str().unwrap()];
    m.extend(["--out", out.to_str().unwrap()]);
    m.extend(QUICK);
    let o = failing(64, &m);
    assert!(o.status.success(), "{}", text(&o));
    let log = text(&o);
    let unreplaced = "design point n=64 m=64 skipped: no point outside the design costs at most";
    assert_eq!(log.matches(unreplaced).count(), 1, "{log}");
    let failures = read_rows(&out)
        .unwrap()
        .iter()
        .filter(|r| r.role == "design" && !r.status.is_ok())
        .count();
    assert!(failures >= 2, "{log}");
    assert_eq!(log.matches("replaced by").count(), failures - 1, "{log}");

    m.push("--resume");
    let o = failing(64, &m);
    assert!(o.status.success(), "{}", text(&o));
    let log = text(&o);
    assert!(!log.contains("replaced by"), "{log}");
    assert_eq!(log.matches(unreplaced).count(), 1, "{log}");
}
