//! Where `fit` writes its files (fits/ for the default data, exactly --out otherwise, nothing
//! for named files), a missing data folder, and Parquet input (synthetic fixtures from known
//! coefficients).

use super::cli_fit::{fails, run, FALCON};
use crate::common::LLAMA;
use energy_fit::analytic::model_by_name;
use energy_fit::dataset::synthetic::{grid, write_csv, GRID};

/// Without --out, fitting the default data/ writes fits/; fitting named files (inside data/ or
/// not) prints and writes nothing, so no folder appears where the command runs and the shipped
/// fits are never touched; with --out they go exactly there. Synthetic data.
#[test]
fn fit_files_are_written_for_the_default_data_or_where_out_says() {
    let d = tempfile::tempdir().unwrap();
    let fm = model_by_name("flops-mem").unwrap();
    std::fs::create_dir(d.path().join("data")).unwrap();
    // Different noise seeds: a side fit written over the main one would change its bytes.
    write_csv(
        &d.path().join("data/main.csv"),
        "llama",
        &grid(fm.as_ref(), &LLAMA, &GRID, &GRID, 0.01, 1),
        1000,
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let side = elsewhere.path().join("side.csv");
    write_csv(
        &side,
        "llama",
        &grid(fm.as_ref(), &LLAMA, &GRID, &GRID, 0.01, 2),
        1000,
    )
    .unwrap();
    let (ok, out, err) = run(d.path(), &["fit", "--model", "flops-mem", "--cv", "0"]);
    assert!(ok, "{err}");
    assert!(out.contains("wrote 1 fit files to fits/"), "{out}");
    let main = d.path().join("fits/synthetic-llama.flops-mem.json");
    let before = std::fs::read(&main).unwrap();
    let listing = |p: &std::path::Path| {
        let mut v: Vec<_> = walk(p);
        v.sort();
        v
    };
    let (cwd0, beside0) = (listing(d.path()), listing(elsewhere.path()));
    let side_s = side.to_str().unwrap();
    for args in [
        &["fit", side_s, "--model", "flops-mem", "--cv", "0"][..],
        &["fit", "data/main.csv", "--model", "flops-mem", "--cv", "0"][..],
        &[
            "fit",
            side_s,
            "data/main.csv",
            "--model",
            "flops-mem",
            "--cv",
            "0",
        ][..],
    ] {
        let (ok, out, err) = run(d.path(), args);
        assert!(ok, "{args:?}: {err}");
        assert!(out.contains("flops-mem"), "{args:?}: no tables\n{out}");
        assert!(
            out.contains("fit files not written") && out.contains("--out DIR"),
            "{args:?}: {out}"
        );
        assert_eq!(
            listing(d.path()),
            cwd0,
            "{args:?} wrote in the working folder"
        );
        assert_eq!(
            listing(elsewhere.path()),
            beside0,
            "{args:?} wrote beside the file"
        );
    }
    assert_eq!(
        std::fs::read(&main).unwrap(),
        before,
        "the default data's fit file changed"
    );
    // --out: exactly there, and nowhere else.
    let (ok, out, err) = run(
        d.path(),
        &[
            "fit",
            side_s,
            "--model",
            "flops-mem",
            "--cv",
            "0",
            "--out",
            "mine",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("wrote 1 fit files to mine/"), "{out}");
    let written = std::fs::read(d.path().join("mine/synthetic-llama.flops-mem.json")).unwrap();
    assert_ne!(
        written, before,
        "the two fits should differ (different data)"
    );
    assert_eq!(std::fs::read(&main).unwrap(), before);
    assert_eq!(listing(elsewhere.path()), beside0);
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn no_data_in_default_folder_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("data")).unwrap();
    fails(d.path(), &["fit"], &["data/", "energy-fit measure"]);
}

#[test]
fn parquet_round_trip_and_unknown_columns_kept() {
    use energy_fit::dataset::{write_table, Dataset};
    let d = tempfile::tempdir().unwrap();
    let fm = model_by_name("flops-mem").unwrap();
    let csv = d.path().join("s.csv");
    write_csv(
        &csv,
        "llama",
        &grid(fm.as_ref(), &LLAMA, &GRID, &GRID, 0.0, 1),
        1000,
    )
    .unwrap();
    let mut ds = Dataset::load(std::slice::from_ref(&csv)).unwrap();
    assert!(ds.df.column("gpu").is_ok() && ds.df.column("tokens_per_j").is_ok());
    let pq = d.path().join("s.parquet");
    write_table(&mut ds.df, &pq).unwrap();
    let back = Dataset::load(&[pq]).unwrap();
    assert_eq!(back.df.height(), 49);
    let g = back.groups(&[]).unwrap();
    let fit = energy_fit::fit::fit_model(fm.as_ref(), &g[0].obs, &Default::default()).unwrap();
    assert!((fit.values()[5] - LLAMA[5]).abs() < 1e-6 * LLAMA[5]);
    // Files with different extra columns stack.
    write_csv(
        &d.path().join("t.csv"),
        "falcon",
        &grid(fm.as_ref(), &FALCON, &GRID, &GRID, 0.0, 2),
        1000,
    )
    .unwrap();
    let t = std::fs::read_to_string(d.path().join("t.csv"))
        .unwrap()
        .replace("status\n", "status,extra\n")
        .replace(",ok\n", ",ok,1\n");
    std::fs::write(d.path().join("t.csv"), t).unwrap();
    let both = Dataset::load(&[csv, d.path().join("t.csv")]).unwrap();
    assert_eq!(both.df.height(), 98);
    assert_eq!(both.df.column("extra").unwrap().null_count(), 49);
    assert_eq!(both.groups(&[]).unwrap().len(), 2);
}
