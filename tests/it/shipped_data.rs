//! The shipped measurements (the files of `data/`, the default data of `fit` and `report`) hold what the
//! cross-LLM tables stand on: per file one LLM, every row from one engine commit, the study's run
//! settings (bf16, 1000 requests, max_batch_size 1024, max_num_tokens 8192) on an H100 at its
//! 700 W limit, every row `ok`. A file measured from a plan (`data/plans/<file>.plan.csv`) holds
//! only that plan's points with their roles; once the plan is measured in full it has at least 15
//! distinct grid points, at least 4 hold-outs spread over n and m, and at least 2 repeated points.

use energy_fit::dataset::{read_table, Dataset};
use energy_fit::measure::plan_file::read_plan;
use energy_fit::measure::rows::{from_frame, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The commit an `engine` cell names: "energy-fit 0.1.0 (150e86f497, own CUDA engine)" →
/// "150e86f497" (a `-dirty` suffix kept: a dirty tree is another engine).
fn commit(engine: &str) -> &str {
    engine
        .split_once('(')
        .and_then(|(_, r)| r.split_once(','))
        .map(|(c, _)| c.trim())
        .unwrap_or(engine)
}

/// Every data file `fit` reads by default (`Dataset::files_in`), with its rows.
fn shipped() -> Vec<(PathBuf, Vec<Row>)> {
    Dataset::files_in(&repo("data"))
        .unwrap()
        .into_iter()
        .map(|p| {
            let at = p.display().to_string();
            let df = read_table(&p).unwrap_or_else(|e| panic!("{at}: {e:#}"));
            let (rows, _) = from_frame(&df, &at).unwrap_or_else(|e| panic!("{at}: {e:#}"));
            (p, rows)
        })
        .collect()
}

#[test]
fn every_shipped_file_is_one_llm_on_one_engine_with_the_studys_settings() {
    let files = shipped();
    assert!(files.len() >= 12, "{} files in data/", files.len());
    for (path, rows) in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(!rows.is_empty(), "{name}: no rows");
        let llm = &rows[0].llm;
        let stem = path.file_stem().unwrap().to_string_lossy();
        assert_eq!(stem, format!("{llm}-h100"), "{name}: file name and llm");
        let engines: BTreeSet<&str> = rows.iter().map(|r| commit(&r.engine)).collect();
        assert_eq!(engines.len(), 1, "{name}: rows from engines {engines:?}");
        for (i, r) in rows.iter().enumerate() {
            let at = format!("{name}, row {}", i + 1);
            assert_eq!(&r.llm, llm, "{at}: llm");
            assert_eq!(r.status.to_string(), "ok", "{at}: status");
            assert_eq!(r.dtype, "bf16", "{at}: dtype");
            assert_eq!(r.requests, 1000, "{at}: requests");
            assert_eq!(r.max_batch_size, 1024, "{at}: max_batch_size");
            assert_eq!(r.max_num_tokens, 8192, "{at}: max_num_tokens");
            assert!(r.gpu.contains("H100"), "{at}: gpu {}", r.gpu);
            assert_eq!(r.power_limit_w, Some(700.0), "{at}: power_limit_w");
            assert!(r.energy_j.is_some_and(|e| e > 0.0), "{at}: energy_j");
        }
    }
}

#[test]
fn files_measured_from_a_plan_hold_its_points_and_a_full_plan_meets_the_design_rules() {
    let mut complete = 0;
    for (path, rows) in shipped() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let stem = path.file_stem().unwrap().to_string_lossy();
        let plan_path = repo("data/plans").join(format!("{stem}.plan.csv"));
        if !plan_path.exists() {
            continue; // the two full grids, measured with --inputs/--outputs
        }
        let plan = read_plan(&plan_path).unwrap();
        let count = |pts: Vec<(u64, u64, u64, String)>| {
            let mut m: BTreeMap<(u64, u64, u64, String), usize> = BTreeMap::new();
            for p in pts {
                *m.entry(p).or_default() += 1;
            }
            m
        };
        let want = count(
            plan.iter()
                .map(|(p, role)| (p.input_tokens, p.output_tokens, p.repeat, role.clone()))
                .collect(),
        );
        let got = count(
            rows.iter()
                .map(|r| (r.input_tokens, r.output_tokens, r.repeat, r.role.clone()))
                .collect(),
        );
        for (k, n) in &got {
            assert!(
                want.get(k).is_some_and(|w| w >= n),
                "{name}: row (n, m, repeat, role) {k:?} is not a point of {}",
                plan_path.display()
            );
        }
        if rows.len() < plan.len() {
            continue; // still being measured: `measure --resume` continues it
        }
        complete += 1;
        let distinct: BTreeSet<(u64, u64)> = rows
            .iter()
            .map(|r| (r.input_tokens, r.output_tokens))
            .collect();
        let holdouts: BTreeSet<(u64, u64)> = rows
            .iter()
            .filter(|r| r.role == "holdout")
            .map(|r| (r.input_tokens, r.output_tokens))
            .collect();
        let repeated = rows.iter().filter(|r| r.repeat > 0).count();
        assert!(
            distinct.len() >= 15,
            "{name}: {} grid points",
            distinct.len()
        );
        assert!(holdouts.len() >= 4, "{name}: {} hold-outs", holdouts.len());
        let ns: BTreeSet<u64> = holdouts.iter().map(|p| p.0).collect();
        let ms: BTreeSet<u64> = holdouts.iter().map(|p| p.1).collect();
        assert!(
            ns.len() >= 3 && ms.len() >= 3,
            "{name}: hold-outs {holdouts:?} are not spread over n and m"
        );
        assert!(repeated >= 2, "{name}: {repeated} repeated rows");
    }
    assert!(complete >= 9, "{complete} plans measured in full");
}

#[test]
fn the_engine_commit_is_read_from_the_cell() {
    assert_eq!(
        commit("energy-fit 0.1.0 (150e86f497, own CUDA engine)"),
        "150e86f497"
    );
    assert_eq!(
        commit("energy-fit 0.1.0 (40c3110f03-dirty, own CUDA engine)"),
        "40c3110f03-dirty"
    );
    assert_eq!(commit("other"), "other");
}

/// The anchor files: each holds the anchor plan's points, once each, from one card (named in the
/// file name) and one engine, with the study's settings; `compare` reads them against each other.
#[test]
fn every_anchor_file_is_the_anchor_plan_on_the_card_it_names() {
    let dir = repo("data/anchors");
    let plan = read_plan(&dir.join("llama-3.2-1b-h100.plan.csv")).unwrap();
    let want: BTreeSet<(u64, u64)> = plan
        .iter()
        .map(|(p, _)| (p.input_tokens, p.output_tokens))
        .collect();
    assert_eq!(want.len(), plan.len(), "the plan's points are distinct");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(card) = name
            .strip_prefix("llama-3.2-1b-h100-")
            .and_then(|r| r.strip_suffix(".csv"))
        else {
            continue;
        };
        if card.ends_with(".plan") {
            continue;
        }
        files += 1;
        let df = read_table(&path).unwrap();
        let (rows, _) = from_frame(&df, &name).unwrap();
        let got: Vec<(u64, u64)> = rows
            .iter()
            .map(|r| (r.input_tokens, r.output_tokens))
            .collect();
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want, "{name}");
        assert_eq!(got.len(), want.len(), "{name}: each point once");
        let engines: BTreeSet<&str> = rows.iter().map(|r| commit(&r.engine)).collect();
        assert_eq!(engines.len(), 1, "{name}: engines {engines:?}");
        for r in &rows {
            assert_eq!(r.llm, "llama-3.2-1b", "{name}");
            assert!(
                r.gpu_uuid.starts_with(&format!("GPU-{card}")),
                "{name}: {}",
                r.gpu_uuid
            );
            assert!(r.gpu.contains("H100"), "{name}: {}", r.gpu);
            assert_eq!(r.status.to_string(), "ok", "{name}");
            assert_eq!(
                (r.requests, r.max_batch_size, r.max_num_tokens),
                (1000, 1024, 8192)
            );
            assert_eq!(r.power_limit_w, Some(700.0), "{name}");
        }
    }
    assert!(files >= 3, "{files} anchor files");
}
