//! The `measure` and `merge` commands end to end: the real binary with the stand-in meter and
//! workload (hidden `ENERGY_FIT_STANDIN`), killed with SIGKILL and resumed; bad flags; merge.
//! Energies are synthetic (stand-in: constant power × sleep time).

use energy_fit::measure::read_rows;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{BIN, GRID, QUICK};

pub(crate) fn measure(args: &[&str], standin: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.arg("measure").args(QUICK).args(args);
    match standin {
        Some(s) => c.env("ENERGY_FIT_STANDIN", s),
        None => c.env_remove("ENERGY_FIT_STANDIN"),
    };
    c
}

pub(crate) fn run(mut c: impl std::borrow::BorrowMut<Command>) -> Output {
    c.borrow_mut().output().expect("spawn energy-fit")
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn check_complete(path: &Path, expect: usize) {
    let rows = read_rows(path).unwrap();
    let mut keys: Vec<_> = rows
        .iter()
        .map(|r| (r.input_tokens, r.output_tokens, r.repeat))
        .collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(
        keys.len(),
        n,
        "a point was written twice in {}",
        path.display()
    );
    assert_eq!(n, expect, "{}", path.display());
}

/// Start a sweep, SIGKILL it once `min_rows` rows are on disk (or after `after`), resume to the end.
fn kill_and_resume(out: &Path, after: Duration) {
    let spec = "us_per_token=10";
    let mut child = measure(&GRID, Some(spec))
        .args(["--out", out.to_str().unwrap()])
        .spawn()
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < after {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // The file is readable right after the kill (maybe empty of rows if killed early).
    if out.exists() {
        let rows = read_rows(out).unwrap();
        assert!(rows.len() < 25, "killed before the end");
    }
    let o = run(measure(&GRID, Some(spec)).args(["--out", out.to_str().unwrap(), "--resume"]));
    assert!(o.status.success(), "{}", stderr(&o));
    check_complete(out, 25);
}

#[test]
fn killed_csv_sweeps_resume_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    for (i, ms) in [150u64, 420, 777].iter().enumerate() {
        kill_and_resume(
            &dir.path().join(format!("m{i}.csv")),
            Duration::from_millis(*ms),
        );
    }
}

#[test]
fn killed_parquet_sweeps_resume_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    for (i, ms) in [200u64, 555].iter().enumerate() {
        kill_and_resume(
            &dir.path().join(format!("m{i}.parquet")),
            Duration::from_millis(*ms),
        );
    }
}

#[test]
fn skipped_points_are_recorded_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.csv");
    let o = run(measure(
        &[
            "--inputs",
            "64,4096",
            "--outputs",
            "64",
            "--requests",
            "2",
            "--phases",
            "--out",
            out.to_str().unwrap(),
        ],
        Some("fail_input=4096"),
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = read_rows(&out).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].status.is_ok());
    assert!(rows[0].prefill_energy_j.is_some() && rows[0].decode_energy_j.is_some());
    assert!(
        rows[1]
            .status
            .to_string()
            .starts_with("skipped: run: stand-in failure"),
        "{}",
        rows[1].status
    );
    assert!(stderr(&o).contains("1 ok, 1 skipped"), "{}", stderr(&o));
    // Resume does not redo a skipped point.
    let o = run(measure(
        &[
            "--inputs",
            "64,4096",
            "--outputs",
            "64",
            "--requests",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--resume",
        ],
        Some(""),
    ));
    assert!(
        stderr(&o).contains("2 of 2 points already"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read_rows(&out).unwrap().len(), 2);
    // --retry-skipped runs it again (the failure is gone now) and appends the ok row.
    let o = run(measure(
        &[
            "--inputs",
            "64,4096",
            "--outputs",
            "64",
            "--requests",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--resume",
            "--retry-skipped",
        ],
        Some(""),
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 of 2 points already"),
        "{}",
        stderr(&o)
    );
    let rows = read_rows(&out).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        !rows[1].status.is_ok() && rows[2].status.is_ok() && rows[2].input_tokens == 4096,
        "{rows:?}"
    );
    // Nothing left to retry: a further call runs nothing.
    let o = run(measure(
        &[
            "--inputs",
            "64,4096",
            "--outputs",
            "64",
            "--requests",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--resume",
            "--retry-skipped",
        ],
        Some(""),
    ));
    assert!(
        stderr(&o).contains("2 of 2 points already"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read_rows(&out).unwrap().len(), 3);
    // --retry-skipped without --resume is refused by the parser.
    let o = run(measure(
        &[
            "--out",
            dir.path().join("x.csv").to_str().unwrap(),
            "--retry-skipped",
        ],
        Some(""),
    ));
    assert!(
        !o.status.success() && stderr(&o).contains("--resume"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn shards_on_two_gpus_merge_into_the_full_grid() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..3 {
        let out = dir
            .path()
            .join(format!("s{i}.{}", if i == 1 { "parquet" } else { "csv" }));
        let shard = format!("{i}/3");
        let o = run(measure(
            &[
                &GRID[..],
                &[
                    "--repeats",
                    "2",
                    "--gpus",
                    "0,1",
                    "--shard",
                    &shard,
                    "--out",
                    out.to_str().unwrap(),
                ],
            ]
            .concat(),
            Some("us_per_token=0.5"),
        ));
        assert!(o.status.success(), "{}", stderr(&o));
        files.push(out);
    }
    let merged = dir.path().join("all.parquet");
    let o = Command::new(BIN)
        .arg("merge")
        .args(&files)
        .arg(files[0].to_str().unwrap())
        .args(["--out", merged.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    check_complete(&merged, 50);
    let rows = read_rows(&merged).unwrap();
    assert!(
        rows.iter().any(|r| r.gpu_index == Some(1)) || rows.iter().all(|r| r.gpu_index == Some(0))
    );
    // A conflicting shard (same point measured again) is refused, naming the point and files.
    let again = dir.path().join("again.csv");
    let o = run(measure(
        &[
            "--inputs",
            "64",
            "--outputs",
            "64",
            "--requests",
            "10",
            "--out",
            again.to_str().unwrap(),
        ],
        Some("us_per_token=3"),
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = Command::new(BIN)
        .arg("merge")
        .arg(&files[0])
        .arg(&again)
        .args(["--out", dir.path().join("x.csv").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("conflicting")
            && e.contains("input_tokens=64 output_tokens=64")
            && e.contains("s0.csv")
            && e.contains("again.csv"),
        "{e}"
    );
}

#[test]
fn bad_flags_are_clear_errors_naming_flag_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.csv");
    let o = out.to_str().unwrap();
    for (args, flag, value) in [
        (vec!["--inputs", "64,x"], "--inputs", "x"),
        (vec!["--outputs", "0"], "--outputs", "0"),
        (vec!["--requests", "-5"], "--requests", "-5"),
        (vec!["--dtype", "int4"], "--dtype", "int4"),
        (vec!["--repeats", "0"], "--repeats", "0"),
        (vec!["--shard", "4/4"], "--shard", "4/4"),
        (vec!["--gpus", "0,zero"], "--gpus", "zero"),
        (vec!["--gpus", "0,0"], "--gpus", "0,0"),
        (vec!["--gpus", "9"], "--gpus", "9"),
        (vec!["--sample-ms", "0"], "--sample-ms", "0"),
        (vec!["--min-window-s", "abc"], "--min-window-s", "abc"),
        (vec!["--llm", "gpt-17"], "--llm", "gpt-17"),
        (vec!["--max-num-tokens", "1,2"], "--max-num-tokens", "1,2"),
        // List flags: zero, absurdly large and repeated values.
        (vec!["--requests", "0"], "--requests", "'0'"),
        (
            vec!["--inputs", "64,99999999999"],
            "--inputs",
            "99999999999",
        ),
        (
            vec!["--outputs", "64,128,64"],
            "--outputs: 64 is listed twice",
            "64",
        ),
        (
            vec!["--max-batch-size", "8,8"],
            "--max-batch-size: 8 is listed twice",
            "8",
        ),
        (
            vec!["--gpus", "0,1,0"],
            "--gpus: GPU 0 is listed twice",
            "0,1,0",
        ),
        (vec!["--idle-s", "1e9"], "--idle-s", "1e9"),
        (vec!["--repeats", "5000"], "--repeats", "5000"),
    ] {
        let r = run(measure(
            &[&args[..], &["--out", o]].concat(),
            Some("gpus=2"),
        ));
        let e = stderr(&r);
        assert!(!r.status.success(), "{args:?} should fail");
        assert!(e.contains(flag) && e.contains(value), "{args:?}: {e}");
        assert!(!out.exists(), "{args:?}: nothing written before the error");
    }
    let r = run(measure(
        &["--out", dir.path().join("m.json").to_str().unwrap()],
        Some(""),
    ));
    assert!(stderr(&r).contains("--out"), "{}", stderr(&r));
    // An existing file without --resume.
    std::fs::write(&out, "llm\n").unwrap();
    let r = run(measure(&["--out", o], Some("")));
    assert!(
        !r.status.success() && stderr(&r).contains("--resume"),
        "{}",
        stderr(&r)
    );
}

#[test]
fn without_nvml_measure_stops_before_any_work() {
    // On a machine with a readable NVIDIA GPU this checks nothing about NVML; CI has none.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.csv");
    let o = run(measure(&["--out", out.to_str().unwrap()], None));
    if !o.status.success() {
        let e = stderr(&o);
        assert!(e.contains("NVML"), "{e}");
        assert!(!out.exists(), "no file created when the meter cannot start");
    } else {
        assert!(out.exists());
    }
}
