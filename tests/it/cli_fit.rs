//! The `fit` and `predict` commands end to end on fixtures, the shipped reference fits, and every
//! bad input (each error must name the file/row/column or flag and the value).
//! Fixtures named `synthetic-*` are generated from known coefficients, not measured.

use energy_fit::analytic::{model_by_name, EnergyModel, FlopsMem};
use energy_fit::dataset::synthetic::{grid, write_csv, GRID};
use energy_fit::fit::file::FitFile;
use std::path::{Path, PathBuf};

use crate::common::LLAMA;
pub(crate) const FALCON: [f64; 6] = [
    1.871769e-02,
    9.200243e-07,
    1.652377e-04,
    1.673305e-02,
    1.052294e-04,
    7.410144e-01,
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    crate::common::run_in(dir, args)
}

/// Run expecting failure; returns stderr, which must contain every `needles`.
pub(crate) fn fails(dir: &Path, args: &[&str], needles: &[&str]) -> String {
    let (ok, _, err) = run(dir, args);
    assert!(!ok, "{args:?} should fail");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}

#[test]
fn fit_on_synthetic_fixture_tables_json_and_files() {
    let fixture = repo().join("tests/fixtures/synthetic-two-llms.csv");
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(
        dir.path(),
        &["fit", fixture.to_str().unwrap(), "--out", "fits"],
    );
    assert!(ok, "{err}");
    for needle in [
        "In-sample MAPE (%)",
        "Cross-validated MAPE",
        "synthetic-llama",
        "synthetic-falcon",
        "mean",
        "std",
        "alpha",
        "***",
        "wrote 12 fit files",
    ] {
        assert!(out.contains(needle), "stdout lacks {needle:?}:\n{out}");
    }
    let f = FitFile::read(&dir.path().join("fits/synthetic-llama.flops-mem.json")).unwrap();
    assert_eq!(
        (f.model.as_str(), f.loss.as_str(), f.points),
        ("flops-mem", "rel", 49)
    );
    assert_eq!(f.dataset.as_ref().unwrap().sha256.len(), 64);
    assert_eq!(f.sweet_spots.len(), 7);
    // Sweet spot from the fitted coefficients is within 3 % of the generating one.
    let want = FlopsMem.closed_form_sweet_spot(&LLAMA, 64.0).unwrap();
    let got = f.sweet_spots[0].predicted_output_tokens.unwrap();
    assert!((got - want).abs() / want < 0.03, "{got} vs {want}");

    // --json: one document with the documented keys; the table's numbers are the JSON's.
    let (ok, js, _) = run(
        dir.path(),
        &[
            "fit",
            fixture.to_str().unwrap(),
            "--json",
            "--no-write",
            "--model",
            "b1,flops-mem",
        ],
    );
    assert!(ok);
    let doc: serde_json::Value = serde_json::from_str(&js).unwrap();
    let fits = doc["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 4);
    for f in fits {
        for key in [
            "llm",
            "model",
            "loss",
            "points",
            "mape_pct",
            "cv_mape_pct",
            "coefficients",
            "std_errors",
            "p_values",
        ] {
            assert!(f.get(key).is_some(), "missing {key}");
        }
    }
    let mape = |llm: &str, model: &str| {
        fits.iter()
            .find(|f| f["llm"] == llm && f["model"] == model)
            .unwrap()["mape_pct"]
            .as_f64()
            .unwrap()
    };
    assert!(mape("synthetic-llama", "flops-mem") < 2.3 && mape("synthetic-llama", "b1") > 20.0);
    let (_, table, _) = run(
        dir.path(),
        &[
            "fit",
            fixture.to_str().unwrap(),
            "--no-write",
            "--model",
            "b1,flops-mem",
            "--cv",
            "0",
        ],
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("synthetic-llama "))
        .unwrap();
    assert!(
        row.contains(&format!("{:.2}", mape("synthetic-llama", "flops-mem"))),
        "{row}"
    );
    let mean = (mape("synthetic-llama", "b1") + mape("synthetic-falcon", "b1")) / 2.0;
    let mean_row = table.lines().find(|l| l.starts_with("mean")).unwrap();
    assert!(mean_row.contains(&format!("{mean:.2}")), "{mean_row}");
}

#[test]
fn fit_by_column_and_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let fm = model_by_name("flops-mem").unwrap();
    write_csv(
        &dir.path().join("a.csv"),
        "llama",
        &grid(fm.as_ref(), &LLAMA, &GRID, &GRID, 0.01, 1),
        1000,
    )
    .unwrap();
    // Same LLM on a second "gpu" value, measured twice: two groups, the second with repeats.
    let mut text = std::fs::read_to_string(dir.path().join("a.csv"))
        .unwrap()
        .replace(",synthetic,synthetic,", ",other,synthetic,");
    let again: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    text.push_str(&again);
    std::fs::write(dir.path().join("b.csv"), text).unwrap();
    let (ok, out, err) = run(
        dir.path(),
        &[
            "fit",
            "a.csv",
            "b.csv",
            "--by",
            "gpu",
            "--model",
            "flops-mem",
            "--out",
            "f",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("synthetic-llama [gpu=other]")
            && out.contains("synthetic-llama [gpu=synthetic]"),
        "{out}"
    );
    assert!(
        out.contains("49 of 49 grid points measured more than once"),
        "{out}"
    );
    assert!(dir
        .path()
        .join("f/synthetic-llama__gpu-other.flops-mem.json")
        .exists());
    fails(
        dir.path(),
        &["fit", "a.csv", "--by", "dtype"],
        &["--by dtype", "no column 'dtype'", "a.csv"],
    );
}

#[test]
fn predict_from_reference_fit_and_params() {
    let (ok, out, err) = run(
        &repo(),
        &[
            "predict",
            "--fit",
            "fits/reference/llama-3.2-1b.flops-mem.json",
            "--input",
            "64",
            "--output",
            "256",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["input_tokens"], 64);
    assert!(
        (v["tokens_per_j"].as_f64().unwrap() - 108.76).abs() < 0.01,
        "{v}"
    );
    assert!((v["sweet_spot_output_tokens"].as_f64().unwrap() - 428.74).abs() < 0.01);
    assert!(
        (v["energy_per_token_j"].as_f64().unwrap() * v["tokens_per_j"].as_f64().unwrap() - 1.0)
            .abs()
            < 1e-12
    );
    // A baseline has no sweet spot: null in JSON, and an output length is then required.
    let (ok, out, _) = run(
        &repo(),
        &[
            "predict", "--params", "c0=0.01", "--model", "b1", "--input", "64", "--output", "128",
            "--json",
        ],
    );
    assert!(ok);
    assert!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["sweet_spot_output_tokens"]
            .is_null()
    );
    fails(
        &repo(),
        &[
            "predict", "--params", "c0=0.01", "--model", "b1", "--input", "64",
        ],
        &["no sweet spot", "--output"],
    );
    let (ok, out, _) = run(
        &repo(),
        &[
            "predict",
            "--fit",
            "fits/reference/falcon-rw-7b.flops-mem.json",
            "--input",
            "64",
        ],
    );
    assert!(
        ok && out.contains("sweet spot m*: 131.4 output tokens") && out.contains("tokens/J"),
        "{out}"
    );
}

/// All 13 shipped reference fits reproduce the published estimated sweet spots (Table 5).
#[test]
fn reference_fits_reproduce_published_sweet_spots() {
    let csv = std::fs::read_to_string(repo().join("fits/reference/sweetspot-table5.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut checked = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let llm = cells[col("llm")];
        let f =
            FitFile::read(&repo().join(format!("fits/reference/{llm}.flops-mem.json"))).unwrap();
        let n: f64 = cells[col("sweet_spot_input_tokens")].parse().unwrap();
        let published: f64 = cells[col("sweet_spot_estimated_output_tokens")]
            .parse()
            .unwrap();
        let ours = f
            .energy_model()
            .unwrap()
            .closed_form_sweet_spot(&f.values(), n)
            .unwrap();
        assert_eq!(ours.round(), published, "{llm}: {ours}");
        assert_eq!(f.values()[5], cells[col("zeta")].parse::<f64>().unwrap());
        checked += 1;
    }
    assert_eq!(checked, 13);
    // The shipped copy is the shared reference table, when that is beside the checkout.
    if let Ok(shared) =
        std::fs::read_to_string(repo().join("../shared/reference/sweetspot-table5.csv"))
    {
        assert_eq!(shared, csv);
    }
}

/// `import-reference` regenerates the shipped reference fits from the published table.
#[test]
fn import_reference_regenerates_shipped_fits() {
    let d = tempfile::tempdir().unwrap();
    let csv = repo().join("fits/reference/sweetspot-table5.csv");
    let (ok, out, err) = run(
        d.path(),
        &["import-reference", csv.to_str().unwrap(), "--out", "ref"],
    );
    assert!(ok && out.contains("wrote 13 reference fit files"), "{err}");
    for llm in ["llama-3.2-1b", "gemma-2-9b"] {
        let name = format!("{llm}.flops-mem.json");
        let new = FitFile::read(&d.path().join("ref").join(&name)).unwrap();
        let shipped = FitFile::read(&repo().join("fits/reference").join(&name)).unwrap();
        assert_eq!(new, shipped);
        let p = new.published.unwrap();
        assert_eq!(p.engine, "TensorRT-LLM 0.21");
        assert_eq!(
            new.sweet_spots[0].predicted_output_tokens.unwrap().round(),
            p.sweet_spot_estimated_output_tokens
        );
    }
    fails(d.path(), &["import-reference", "nope.csv"], &["nope.csv"]);
}

#[test]
fn bad_inputs_name_what_and_where() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let head = "llm,input_tokens,output_tokens,requests,energy_j\n";
    let f = write(
        p,
        "nocol.csv",
        "llm,input_tokens,output_tokens,requests\na,64,64,10\n",
    );
    fails(
        p,
        &["fit", &f],
        &["nocol.csv", "missing required column 'energy_j'"],
    );
    let f = write(
        p,
        "text.csv",
        &format!("{head}a,64,64,10,5.0\na,64,128,10,abc\n"),
    );
    fails(
        p,
        &["fit", &f],
        &[
            "text.csv",
            "row 2 (line 3)",
            "column 'energy_j'",
            "'abc' is not a number",
        ],
    );
    let f = write(p, "neg.csv", &format!("{head}a,64,64,10,-5\n"));
    fails(
        p,
        &["fit", &f],
        &["neg.csv", "row 1", "column 'energy_j'", "got -5"],
    );
    let f = write(p, "zero.csv", &format!("{head}a,64,0,10,5\n"));
    fails(
        p,
        &["fit", &f],
        &["zero.csv", "row 1", "column 'output_tokens'", "got 0"],
    );
    let f = write(p, "empty.csv", "");
    fails(p, &["fit", &f], &["empty.csv", "empty"]);
    let f = write(
        p,
        "nan.csv",
        &format!("{head}a,64,64,10,1\na,64,128,10,NaN\n"),
    );
    fails(
        p,
        &["fit", &f],
        &["nan.csv", "row 2 (line 3)", "column 'energy_j'", "NaN"],
    );
    fails(p, &["fit", "missing.csv"], &["missing.csv", "cannot open"]);
    let f = write(
        p,
        "few.csv",
        &format!(
            "{head}a,64,64,10,1\na,64,128,10,2\na,128,64,10,1.5\na,128,128,10,2.5\na,256,64,10,2\n"
        ),
    );
    fails(
        p,
        &["fit", &f, "--model", "flops-mem"],
        &["a (5 rows)", "flops-mem", "needs at least 7 points, got 5"],
    );
    fails(
        p,
        &["fit", &f, "--model", "flopz"],
        &["unknown model 'flopz'", "--model"],
    );
    fails(p, &["fit", &f, "--cv", "1"], &["--cv 1"]);
    let f = write(p, "data.txt", "x");
    fails(p, &["fit", &f], &["data.txt", "unknown data file type"]);
    // Skipped points are kept out of the fit, not an error.
    let f = write(p, "skip.csv", "llm,input_tokens,output_tokens,requests,energy_j,status\na,64,64,10,,skipped: out of memory\n");
    fails(p, &["fit", &f], &["skip.csv", "no row has status 'ok'"]);
    // predict --params
    fails(
        p,
        &["predict", "--params", "alpha", "--input", "64"],
        &["--params", "'alpha' is not NAME=VALUE"],
    );
    fails(
        p,
        &["predict", "--params", "alpha=1,beta=x", "--input", "64"],
        &["--params", "'beta'", "'x'"],
    );
    fails(
        p,
        &["predict", "--params", "alpha=1,zeta=2", "--input", "64"],
        &["missing coefficient(s) beta, gamma, delta, epsilon"],
    );
    fails(
        p,
        &[
            "predict",
            "--params",
            "alpha=1,omega=2,zeta=1",
            "--input",
            "64",
        ],
        &["no coefficient 'omega'"],
    );
    fails(
        p,
        &["predict", "--fit", "nofit.json", "--input", "64"],
        &["nofit.json"],
    );
    fails(p, &["predict", "--fit", "x.json"], &["--input"]);
}
