//! Degenerate data never passes as a result: a fit whose statistics are not finite or whose
//! sweet-spot coefficient is not significant carries `"warnings"` in its file and JSON, prints
//! them under the table, and `predict` from it repeats them; a non-finite residual names the
//! point. A clean fit has an empty list.

use energy_fit::analytic::model_by_name;
use energy_fit::dataset::synthetic::{grid, write_csv, GRID};
use energy_fit::fit::file::FitFile;
use std::path::Path;
use std::process::{Command, Output};

const COEFS: [f64; 6] = [
    5.005153e-03,
    1.079941e-07,
    6.825240e-06,
    2.611042e-03,
    3.852659e-06,
    5.406443e-01,
];

fn bin(dir: &Path, args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_energy-fit"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    o
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into()
}

#[test]
fn clean_fits_have_an_empty_warning_list() {
    let d = tempfile::tempdir().unwrap();
    let fm = model_by_name("flops-mem").unwrap();
    write_csv(
        &d.path().join("s.csv"),
        "ok",
        &grid(fm.as_ref(), &COEFS, &GRID, &GRID, 0.01, 1),
        64,
    )
    .unwrap();
    let o = bin(
        d.path(),
        &[
            "fit",
            "s.csv",
            "--out",
            "f",
            "--cv",
            "0",
            "--model",
            "flops-mem",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).contains("warning"), "{}", text(&o.stdout));
    let raw = std::fs::read_to_string(d.path().join("f/synthetic-ok.flops-mem.json")).unwrap();
    assert!(raw.contains("\"warnings\": []"), "{raw}");
}

#[test]
fn constant_energy_per_token_warns_that_the_sweet_spots_are_noise() {
    let d = tempfile::tempdir().unwrap();
    // e constant up to 1 % noise: ε is fitted from noise alone.
    let b1 = model_by_name("b1").unwrap();
    write_csv(
        &d.path().join("c.csv"),
        "flat",
        &grid(b1.as_ref(), &[0.5], &GRID, &GRID, 0.01, 3),
        64,
    )
    .unwrap();
    let o = bin(
        d.path(),
        &[
            "fit",
            "c.csv",
            "--out",
            "f",
            "--cv",
            "0",
            "--model",
            "flops-mem",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("warning: synthetic-flat flops-mem: sweet-spot coefficient epsilon"),
        "{out}"
    );
    let path = d.path().join("f/synthetic-flat.flops-mem.json");
    let f = FitFile::read(&path).unwrap();
    assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
    assert!(f.warnings[0].contains("not significant"));
    let o = bin(
        d.path(),
        &[
            "fit",
            "c.csv",
            "--no-write",
            "--cv",
            "0",
            "--model",
            "flops-mem",
            "--json",
        ],
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["fits"][0]["warnings"].as_array().unwrap().len(), 1);
    let o = bin(
        d.path(),
        &[
            "predict",
            "--fit",
            path.to_str().unwrap(),
            "--input",
            "512",
            "--output",
            "256",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("warning:") && text(&o.stderr).contains("not significant"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn one_absurd_energy_warns_of_non_finite_statistics() {
    let d = tempfile::tempdir().unwrap();
    let fm = model_by_name("flops-mem").unwrap();
    let p = d.path().join("s.csv");
    write_csv(
        &p,
        "big",
        &grid(fm.as_ref(), &COEFS, &GRID, &GRID, 0.01, 1),
        64,
    )
    .unwrap();
    let mut s = std::fs::read_to_string(&p).unwrap();
    s.push_str("synthetic-big,64,64,64,1e308,synthetic,synthetic,ok\n");
    std::fs::write(&p, s).unwrap();
    let o = bin(
        d.path(),
        &[
            "fit",
            "s.csv",
            "--no-write",
            "--cv",
            "0",
            "--model",
            "flops-mem",
        ],
    );
    let all = text(&o.stdout) + &text(&o.stderr);
    assert!(all.contains("not finite"), "{all}");
}

#[test]
fn a_non_finite_residual_names_the_point() {
    let d = tempfile::tempdir().unwrap();
    let fm = model_by_name("flops-mem").unwrap();
    let p = d.path().join("s.csv");
    write_csv(
        &p,
        "tiny",
        &grid(fm.as_ref(), &COEFS, &GRID, &GRID, 0.01, 1),
        64,
    )
    .unwrap();
    let mut s = std::fs::read_to_string(&p).unwrap();
    s.push_str("synthetic-tiny,128,256,64,1e-300,synthetic,synthetic,ok\n");
    std::fs::write(&p, s).unwrap();
    let o = bin(
        d.path(),
        &["fit", "s.csv", "--no-write", "--cv", "0", "--model", "b1"],
    );
    let e = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("smallest value is at input_tokens=128 output_tokens=256"),
        "{e}"
    );
}
