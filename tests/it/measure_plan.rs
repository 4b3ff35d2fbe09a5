//! Planning, sharding, feasibility and duration estimates of `measure` (no GPU needed).

use energy_fit::measure::cost::RooflineCost;
use energy_fit::measure::plan::{
    check_list, dry_run_table, plan_csv, plan_rows, window_runs_for, PLAN_COLUMNS,
    PUBLISHED_LENGTHS,
};
use energy_fit::measure::{CostModel, Grid, Point, Shard};
use std::collections::HashSet;

const GIB: u64 = 1 << 30;

fn point(llm: &str, n: u64, m: u64) -> Point {
    Point {
        llm: llm.into(),
        input_tokens: n,
        output_tokens: m,
        requests: 1000,
        max_batch_size: 1024,
        max_num_tokens: 8192,
        dtype: "bf16".into(),
        repeat: 0,
    }
}

#[test]
fn default_grid_is_the_published_one() {
    let g = Grid::default();
    g.validate().unwrap();
    let pts = g.points();
    assert_eq!(pts.len(), 49);
    assert_eq!(PUBLISHED_LENGTHS, [64, 128, 256, 512, 1024, 2048, 4096]);
    assert!(pts.iter().all(|p| p.requests == 1000
        && p.max_batch_size == 1024
        && p.max_num_tokens == 8192
        && p.dtype == "bf16"));
    let uniq: HashSet<_> = pts
        .iter()
        .map(|p| (p.input_tokens, p.output_tokens))
        .collect();
    assert_eq!(uniq.len(), 49);
}

#[test]
fn axes_multiply_and_repeats_are_distinct_points() {
    let g = Grid {
        llms: vec!["llama-3.2-1b".into(), "opt-1.3b".into()],
        inputs: vec![64, 128],
        outputs: vec![64],
        requests: vec![10, 100],
        max_batch_sizes: vec![8, 1024],
        max_num_tokens: 8192,
        dtypes: vec!["bf16".into(), "fp16".into()],
        repeats: 3,
    };
    let pts = g.points();
    assert_eq!(
        pts.len(),
        2 * 2 * 2 * 2 * 2 * 3 /* llms, inputs, requests, mbs, dtypes, repeats; one output */
    );
    assert_eq!(pts.iter().collect::<HashSet<_>>().len(), pts.len());
    // LLM outermost: all of the first LLM's points come first (one load per LLM).
    assert!(pts[..pts.len() / 2].iter().all(|p| p.llm == "llama-3.2-1b"));
}

#[test]
fn shards_are_disjoint_and_cover_the_plan() {
    let pts = Grid::default().points();
    let mut seen = Vec::new();
    for i in 0..3 {
        let s: Shard = format!("{i}/3").parse().unwrap();
        let part = s.take(pts.clone());
        assert!(part.len() == 16 || part.len() == 17);
        seen.extend(part);
    }
    seen.sort();
    let mut all = pts.clone();
    all.sort();
    assert_eq!(seen, all);
}

#[test]
fn bad_shard_and_lists_name_the_flag_and_value() {
    for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
        let e = bad.parse::<Shard>().unwrap_err().to_string();
        assert!(e.contains("--shard") && e.contains(bad), "{e}");
    }
    // A list flag: zero, absurdly large and repeated values each name the flag and the value.
    for (vals, needle) in [
        (&[64, 0][..], "--outputs: 0 is out of range 1..=1048576"),
        (
            &[64, 1 << 40][..],
            "--outputs: 1099511627776 is out of range",
        ),
        (&[64, 128, 64][..], "--outputs: 64 is listed twice"),
        (&[][..], "--outputs: empty list"),
    ] {
        let e = check_list("--outputs", vals, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{e}");
    }
    let g = Grid {
        requests: vec![1000, 1000],
        ..Grid::default()
    };
    let e = g.validate().unwrap_err().to_string();
    assert!(e.contains("--requests: 1000 is listed twice"), "{e}");
    let g = Grid {
        dtypes: vec!["int3".into()],
        ..Grid::default()
    };
    let e = g.validate().unwrap_err().to_string();
    assert!(e.contains("--dtype") && e.contains("int3"), "{e}");
    let g = Grid {
        repeats: 0,
        ..Grid::default()
    };
    assert!(g.validate().unwrap_err().to_string().contains("--repeats"));
}

#[test]
fn feasibility_follows_memory_and_sequence_limits() {
    let c = RooflineCost;
    // 1B in bf16 (~2.5 GB) fits an 80 GiB card but not a 2 GiB one.
    assert!(c
        .feasible(&point("llama-3.2-1b", 4096, 4096), 80 * GIB)
        .is_ok());
    let why = c
        .feasible(&point("llama-3.2-1b", 64, 64), 2 * GIB)
        .unwrap_err();
    assert!(why.contains("GiB"), "{why}");
    // gemma-2-9b (~18.5 GB of bf16 weights) does not fit 16 GiB.
    assert!(c.feasible(&point("gemma-2-9b", 64, 64), 16 * GIB).is_err());
    assert!(c.feasible(&point("gemma-2-9b", 64, 64), 80 * GIB).is_ok());
    // Sequence longer than the LLM accepts.
    let why = c
        .feasible(&point("llama-3.2-1b", 4096, 1 << 20), 80 * GIB)
        .unwrap_err();
    assert!(why.contains("max_positions"), "{why}");
    // A prompt longer than one step's token budget.
    let mut p = point("llama-3.2-1b", 4096, 64);
    p.max_num_tokens = 2048;
    assert!(c
        .feasible(&p, 80 * GIB)
        .unwrap_err()
        .contains("max_num_tokens"));
    assert_eq!(c.llm_name("LLAMA-3.2-1B").unwrap(), "llama-3.2-1b");
    assert!(c.llm_name("no-such-llm").is_err());
}

#[test]
fn roofline_estimate_grows_with_work() {
    let c = RooflineCost;
    let t = |n, m| {
        c.estimate_s(&point("llama-3.2-1b", n, m), 80 * GIB)
            .unwrap()
    };
    assert!(t(64, 64) > 0.0);
    assert!(t(64, 128) > t(64, 64));
    assert!(t(128, 64) > t(64, 64));
    assert!(
        c.estimate_s(&point("llama-3.1-8b", 64, 64), 80 * GIB)
            .unwrap()
            > t(64, 64)
    );
    // Lower bound sanity for a decode-bound point: 1000 × 64 tokens at batch 1000 needs at least
    // 63 decode steps, each reading all weights (2.47 GB) at 3 TB/s.
    assert!(t(64, 64) > 63.0 * 2.47e9 / 3.0e12);
}

#[test]
fn short_points_are_repeated_to_the_minimum_window() {
    assert_eq!(window_runs_for(0.38, 5.0), 14);
    assert_eq!(window_runs_for(5.0, 5.0), 1);
    assert_eq!(window_runs_for(7.0, 5.0), 1);
    assert_eq!(window_runs_for(0.0, 5.0), 1);
    assert_eq!(window_runs_for(1.0, 0.0), 1);
}

#[test]
fn dry_run_table_lists_every_point_and_what_does_not_fit() {
    let pts = vec![point("llama-3.2-1b", 64, 64), point("gemma-2-9b", 64, 64)];
    let t = dry_run_table(&plan_rows(&pts, &RooflineCost, 16 * GIB, 5.0).unwrap(), 5.0).unwrap();
    assert_eq!(t.lines().count(), 1 + 2 + 1);
    assert!(t.contains("no: needs"), "{t}");
    assert!(t.contains("2 points, 1 do not fit"), "{t}");
}

/// `--plan-csv`: a header and one line per point, est_s unrounded but the table's number, runs the
/// table's, and fits=false with est_s and runs empty for a point that does not fit 16 GiB.
#[test]
fn plan_csv_has_a_row_per_point_with_the_tables_estimate() {
    let pts = vec![
        point("llama-3.2-1b", 64, 64),
        point("LLAMA-3.2-1B", 4096, 128),
        point("gemma-2-9b", 64, 64),
    ];
    let rows = plan_rows(&pts, &RooflineCost, 16 * GIB, 5.0).unwrap();
    let (table, csv) = (dry_run_table(&rows, 5.0).unwrap(), plan_csv(&rows, &[]));
    let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(lines.len(), 1 + pts.len(), "{csv}");
    assert_eq!(lines[0], PLAN_COLUMNS);
    assert_eq!(
        PLAN_COLUMNS[..8],
        [
            "llm",
            "input_tokens",
            "output_tokens",
            "requests",
            "max_batch_size",
            "max_num_tokens",
            "dtype",
            "repeat"
        ]
    );
    assert!(
        PLAN_COLUMNS[..8]
            .iter()
            .all(|c| energy_fit::measure::COLUMNS.contains(c)),
        "measurement column names"
    );
    for (i, (p, l)) in pts.iter().zip(&lines[1..]).enumerate() {
        let t: Vec<&str> = table
            .lines()
            .nth(1 + i)
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            l[..8],
            t[..8],
            "llm n m R mbs mnt dtype rep\n{table}\n{csv}"
        );
        if p.llm == "gemma-2-9b" {
            assert_eq!(l[8..], ["false", "", "", ""], "{csv}");
            assert_eq!(t[8], "no:", "{table}");
            continue;
        }
        let est: f64 = l[9].parse().unwrap();
        assert_eq!(
            est,
            RooflineCost.estimate_s(p, 16 * GIB).unwrap(),
            "full precision"
        );
        assert_eq!(
            [l[8], &format!("{est:.2}"), l[10]],
            [t[8].replace("yes", "true").as_str(), t[9], t[10]],
            "{table}\n{csv}"
        );
    }
    assert_eq!(
        lines[2][0], "llama-3.2-1b",
        "the canonical name, as in the table"
    );
}
