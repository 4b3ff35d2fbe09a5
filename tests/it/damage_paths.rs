//! Paths that used to destroy good files: a merge onto its own input, fit files written in place
//! (a full disk or a failure left truncated or mixed files), one bad JSON stopping `report`,
//! and two LLM names sharing one fit file. A full disk is simulated with the hidden
//! `ENERGY_FIT_DISK_BYTES` (every write past that many bytes fails as on a full disk).

use energy_fit::analytic::model_by_name;
use energy_fit::dataset::synthetic::{grid, write_csv, GRID};
use energy_fit::fit::file::FitFile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const COEFS: [f64; 6] = [
    5.005153e-03,
    1.079941e-07,
    6.825240e-06,
    2.611042e-03,
    3.852659e-06,
    5.406443e-01,
];

fn bin(dir: &Path, args: &[&str], disk_bytes: Option<u64>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_energy-fit"));
    c.args(args).current_dir(dir);
    match disk_bytes {
        Some(b) => c.env("ENERGY_FIT_DISK_BYTES", b.to_string()),
        None => c.env_remove("ENERGY_FIT_DISK_BYTES"),
    };
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    o
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into()
}

/// Every file under `dir` (hidden ones included) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn synthetic(dir: &Path, name: &str, llm: &str, noise_seed: u64) -> String {
    let fm = model_by_name("flops-mem").unwrap();
    let obs = grid(fm.as_ref(), &COEFS, &GRID, &GRID, 0.01, noise_seed);
    write_csv(&dir.join(name), llm, &obs, 64).unwrap();
    name.into()
}

const HEAD: &str = "llm,input_tokens,output_tokens,requests,energy_j,status";

#[test]
fn merge_refuses_to_write_onto_its_own_input_however_spelled() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.csv");
    std::fs::write(&a, format!("{HEAD}\nx,64,64,8,10.5,ok\n")).unwrap();
    std::os::unix::fs::symlink(&a, d.path().join("link.csv")).unwrap();
    let before = std::fs::read(&a).unwrap();
    let abs = a.display().to_string();
    for out in ["./a.csv", abs.as_str(), "link.csv", "sub/../a.csv"] {
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        let o = bin(d.path(), &["merge", "a.csv", "--out", out, "--force"], None);
        assert!(!o.status.success(), "--out {out} should be refused");
        assert!(stderr(&o).contains("is the input"), "{out}: {}", stderr(&o));
        assert_eq!(
            std::fs::read(&a).unwrap(),
            before,
            "--out {out} changed a.csv"
        );
    }
}

#[test]
fn merge_keeps_every_column_and_writes_values_as_read() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.csv"),
        format!("{HEAD},avg_power_w,note\nx,64,64,8,10.50,ok,NaN,\"first, quoted\"\n"),
    )
    .unwrap();
    std::fs::write(
        d.path().join("b.csv"),
        format!("{HEAD},site\nx,128,64,8,1e3,ok,lab-2\n"),
    )
    .unwrap();
    let o = bin(
        d.path(),
        &["merge", "a.csv", "b.csv", "--out", "m.csv"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(d.path().join("m.csv")).unwrap();
    assert_eq!(
        text,
        format!(
            "{HEAD},avg_power_w,note,site\n\
             x,64,64,8,10.50,ok,NaN,\"first, quoted\",\n\
             x,128,64,8,1e3,ok,,,lab-2\n"
        )
    );
    // Through Parquet and back: still every column, NaN still NaN, the text column still text.
    let o = bin(
        d.path(),
        &["merge", "a.csv", "b.csv", "--out", "m.parquet"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin(d.path(), &["merge", "m.parquet", "--out", "back.csv"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = std::fs::read_to_string(d.path().join("back.csv")).unwrap();
    let mut lines = back.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("{HEAD},avg_power_w,note,site")
    );
    let first = lines.next().unwrap();
    assert!(
        first.contains("NaN") && first.contains("\"first, quoted\""),
        "{first}"
    );
    assert!(lines.next().unwrap().ends_with(",lab-2"), "{back}");
}

#[test]
fn merge_on_a_full_disk_leaves_the_old_output_whole() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.csv"), format!("{HEAD}\nx,64,64,8,1,ok\n")).unwrap();
    std::fs::write(d.path().join("m.csv"), "previous merge\n").unwrap();
    let o = bin(
        d.path(),
        &["merge", "a.csv", "--out", "m.csv", "--force"],
        Some(10),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no space left"), "{}", stderr(&o));
    let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
    assert_eq!(names.len(), 2, "a temporary was left behind");
    assert_eq!(
        std::fs::read_to_string(d.path().join("m.csv")).unwrap(),
        "previous merge\n"
    );
}

#[test]
fn a_refit_on_a_full_disk_leaves_every_previous_fit_file_whole() {
    let d = tempfile::tempdir().unwrap();
    let data = synthetic(d.path(), "s.csv", "one", 1);
    let args = ["fit", data.as_str(), "--out", "fits", "--cv", "0"];
    let o = bin(d.path(), &args, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = snapshot(&d.path().join("fits"));
    assert_eq!(before.len(), 6);
    let smallest = before.values().map(Vec::len).min().unwrap() as u64;
    // New data, then disks that fill at the first file, part way through the run and near its end.
    synthetic(d.path(), "s.csv", "one", 2);
    for bytes in [100, smallest + 10, 5 * smallest] {
        let o = bin(d.path(), &args, Some(bytes));
        assert!(
            !o.status.success(),
            "{bytes} bytes of disk should not hold six fits"
        );
        assert!(stderr(&o).contains("no space left"), "{}", stderr(&o));
        assert_eq!(
            snapshot(&d.path().join("fits")),
            before,
            "{bytes} bytes: fit files changed or temporaries left"
        );
    }
}

#[test]
fn report_skips_an_unparsable_fit_file_by_name_and_a_mistyped_folder_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let data = synthetic(d.path(), "s.csv", "one", 1);
    let o = bin(
        d.path(),
        &[
            "fit",
            data.as_str(),
            "--out",
            "fits",
            "--cv",
            "0",
            "--model",
            "flops-mem",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(d.path().join("fits/broken.json"), "{\"tool\": ").unwrap();
    let o = bin(
        d.path(),
        &["report", data.as_str(), "--fits", "fits", "--out", "r"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: skipping fits/broken.json"),
        "{}",
        stderr(&o)
    );
    let o = bin(
        d.path(),
        &["report", data.as_str(), "--fits", "fitz", "--out", "r"],
        None,
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--fits fitz") && stderr(&o).contains("not a folder"),
        "{}",
        stderr(&o)
    );
    // A report on a full disk leaves the previous report whole and no staging folder behind.
    let before = snapshot(&d.path().join("r"));
    let o = bin(
        d.path(),
        &["report", data.as_str(), "--fits", "fits", "--out", "r"],
        Some(20_000),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no space left"), "{}", stderr(&o));
    assert_eq!(snapshot(&d.path().join("r")), before);
}

#[test]
fn llm_names_that_share_a_slug_get_their_own_fit_files() {
    let d = tempfile::tempdir().unwrap();
    let fm = model_by_name("flops-mem").unwrap();
    let obs = grid(fm.as_ref(), &COEFS, &GRID, &GRID, 0.01, 1);
    write_csv(&d.path().join("a.csv"), "x/1b", &obs, 64).unwrap();
    write_csv(&d.path().join("b.csv"), "x_1b", &obs, 64).unwrap();
    let o = bin(
        d.path(),
        &[
            "fit",
            "a.csv",
            "b.csv",
            "--out",
            "fits",
            "--cv",
            "0",
            "--model",
            "flops-mem",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let files = snapshot(&d.path().join("fits"));
    assert_eq!(files.len(), 2, "{:?}", files.keys());
    let mut llms: Vec<String> = files
        .keys()
        .map(|p| FitFile::read(p).unwrap().llm)
        .collect();
    llms.sort();
    assert_eq!(llms, ["synthetic-x/1b", "synthetic-x_1b"]);
}
