//! Messages that used to leave the user guessing: each names the file, line, flag or field and
//! says what to do; blank lines at the end of a data file are not rows.

use std::path::Path;
use std::process::{Command, Output};

fn bin(dir: &Path, args: &[&str], standin: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_energy-fit"));
    c.args(args).current_dir(dir);
    if standin {
        c.env("ENERGY_FIT_STANDIN", "us_per_token=0.01");
    } else {
        c.env_remove("ENERGY_FIT_STANDIN");
    }
    let o = c.output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    o
}

fn fails(dir: &Path, args: &[&str], needles: &[&str]) {
    let o = bin(dir, args, false);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} should fail");
    for n in needles {
        assert!(e.contains(n), "{args:?}: stderr lacks {n:?}:\n{e}");
    }
}

const ROWS: &str = "llm,input_tokens,output_tokens,requests,energy_j,status\n\
                    x,64,64,8,1,ok\nx,64,128,8,2.1,ok\nx,128,64,8,3,ok\nx,128,128,8,4.4,ok\n";

#[test]
fn data_file_errors_name_the_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("folder.csv")).unwrap();
    fails(
        d.path(),
        &["fit", "folder.csv"],
        &["folder.csv: is a folder"],
    );
    let ragged = ROWS.replace("x,64,128,8,2.1,ok", "x,64,128,8,2.1");
    std::fs::write(d.path().join("short.csv"), ragged).unwrap();
    fails(
        d.path(),
        &["fit", "short.csv"],
        &["short.csv: line 3: 5 fields, the header has 6"],
    );
    let long = ROWS.replace("x,128,64,8,3,ok", "x,128,64,8,3,ok,extra");
    std::fs::write(d.path().join("long.csv"), long).unwrap();
    fails(
        d.path(),
        &["fit", "long.csv"],
        &["long.csv: line 4: 7 fields, the header has 6"],
    );
}

/// A status that is neither ok, empty nor skipped is refused by every reader of measurements,
/// naming the file, the row, the column and the value.
#[test]
fn unknown_status_names_file_row_column_and_value() {
    let d = tempfile::tempdir().unwrap();
    let bad = ROWS.replace("x,128,64,8,3,ok", "x,128,64,8,3,failed");
    std::fs::write(d.path().join("st.csv"), &bad).unwrap();
    fails(
        d.path(),
        &["fit", "st.csv"],
        &["st.csv, row 3 (line 4), column 'status'", "\"failed\""],
    );
    // merge reads through measure's rows: the same cell, named by its line.
    fails(
        d.path(),
        &["merge", "st.csv", "--out", "m.csv"],
        &["st.csv: line 4: column status", "\"failed\""],
    );
    assert!(!d.path().join("m.csv").exists());
}

#[test]
fn blank_lines_at_the_end_are_not_rows() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("b.csv"), format!("{ROWS}\n\r\n  \n")).unwrap();
    let o = bin(
        d.path(),
        &["fit", "b.csv", "--no-write", "--cv", "0", "--model", "b1"],
        false,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("dataset: 4 rows"));
}

#[test]
fn negative_numbers_to_count_flags_say_the_flag_wants_a_positive_number() {
    let d = tempfile::tempdir().unwrap();
    fails(
        d.path(),
        &["fit", "--cv", "-3"],
        &["--cv: wants a positive number, got -3"],
    );
    fails(
        d.path(),
        &["predict", "--params", "c0=1", "--model", "b1", "--input=-5"],
        &["--input: wants a positive number, got -5"],
    );
}

#[test]
fn measure_refuses_at_planning_what_every_point_would_skip() {
    let d = tempfile::tempdir().unwrap();
    fails(
        d.path(),
        &[
            "measure",
            "--dry-run",
            "--dtype",
            "fp32",
            "--outputs",
            "64",
            "--out",
            "o.csv",
        ],
        &["--dtype fp32: the engine runs bf16 and fp16 only"],
    );
    let llm = d.path().join("tiny");
    std::fs::create_dir(&llm).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf_configs/opt-hd80.json"),
        llm.join("config.json"),
    )
    .unwrap();
    fails(
        d.path(),
        &[
            "measure",
            "--dry-run",
            "--llm",
            "tiny",
            "--outputs",
            "64",
            "--out",
            "o.csv",
        ],
        &[
            "--llm tiny: the folder has no *.safetensors weights",
            "tiny/config.json",
        ],
    );
    // The config.json itself plans (random weights).
    let o = bin(
        d.path(),
        &[
            "measure",
            "--dry-run",
            "--llm",
            "tiny/config.json",
            "--outputs",
            "64",
            "--out",
            "o.csv",
            "--gpu-mem-gib",
            "80",
        ],
        false,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn resume_into_a_file_of_other_llms_is_refused_unless_forced() {
    let d = tempfile::tempdir().unwrap();
    let base = [
        "measure",
        "--quiet",
        "--idle-s",
        "0",
        "--min-window-s",
        "0",
        "--sample-ms",
        "5",
        "--inputs",
        "64",
        "--outputs",
        "64",
        "--requests",
        "2",
        "--out",
        "m.csv",
    ];
    let o = bin(
        d.path(),
        &[&base[..], &["--llm", "llama-3.2-1b"]].concat(),
        true,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = std::fs::read(d.path().join("m.csv")).unwrap();
    let other = [&base[..], &["--llm", "qwen2-1.5b", "--resume"]].concat();
    let o = bin(d.path(), &other, true);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("holds rows of llama-3.2-1b") && e.contains("--force"),
        "{e}"
    );
    assert_eq!(std::fs::read(d.path().join("m.csv")).unwrap(), before);
    let o = bin(d.path(), &[&other[..], &["--force"]].concat(), true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(d.path().join("m.csv")).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
}
