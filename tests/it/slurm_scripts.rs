//! scripts/slurm/ without a scheduler: bad arguments are refused before anything is submitted, and the
//! merge job script merges complete shards and refuses incomplete ones, naming them. The scripts
//! under a real Slurm (requeues, time limits, the dependency) are `tests/slurm/run.sh`, which CI runs.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_energy-fit");
const GRID: [&str; 12] = [
    "--inputs",
    "64,128,256",
    "--outputs",
    "64,128",
    "--requests",
    "10",
    "--idle-s",
    "0",
    "--min-window-s",
    "0",
    "--sample-ms",
    "5",
];

fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("bash")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts/slurm")
                .join(name),
        )
        .args(args)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .envs(env.iter().copied())
        .env("ENERGY_FIT_STANDIN", "us_per_token=1")
        .output()
        .expect("bash runs")
}

fn refused(o: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

/// Measure shard `shard` of GRID into `out` with the stand-in, all of it or (`stop`) none: a header.
fn measure_shard(out: &Path, shard: &str, stop: bool) {
    let mut c = Command::new(BIN);
    c.arg("measure")
        .args(GRID)
        .args(["--quiet", "--shard", shard, "--out", out.to_str().unwrap()])
        .env("ENERGY_FIT_STANDIN", "us_per_token=1");
    if stop {
        c.args(["--stop-after-s", "0.000001"]);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_scripts_parse_and_missing_arguments_print_the_usage() {
    for s in ["shard.sbatch", "merge.sbatch", "submit.sh"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts/slurm")
            .join(s);
        let o = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(
            o.status.success(),
            "{s}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        refused(&script(s, &[], &[]), 2, "usage:");
    }
}

#[test]
fn bad_arguments_are_refused_before_any_submission() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("sweep");
    let d = d.to_str().unwrap();
    refused(
        &script("submit.sh", &["/nonexistent/energy-fit", d, "2"], &[]),
        2,
        "BIN /nonexistent/energy-fit: not an executable file",
    );
    refused(&script("submit.sh", &[BIN, d, "0"], &[]), 2, "SHARDS 0");
    refused(
        &script("submit.sh", &[BIN, d, "2", "--out", "x.csv"], &[]),
        2,
        "measure flag --out: the jobs set it themselves",
    );
    // Seven shards of a six-point grid: refused after the plan, before sbatch.
    let args: Vec<&str> = [BIN, d, "7"].into_iter().chain(GRID).collect();
    refused(
        &script("submit.sh", &args, &[]),
        2,
        "SHARDS 7: the sweep has only 6 points",
    );
    // The array script outside an array.
    refused(
        &script("shard.sbatch", &[BIN, d, "2"], &[]),
        2,
        "SLURM_ARRAY_TASK_ID is not set",
    );
    refused(
        &script(
            "shard.sbatch",
            &[BIN, d, "2"],
            &[("SLURM_ARRAY_TASK_ID", "2")],
        ),
        2,
        "N 2: expected a shard count above the array index 2",
    );
}

#[test]
fn the_merge_job_refuses_incomplete_shards_and_merges_complete_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let merged = d.join("merged.csv");
    let run_merge = || {
        let args: Vec<&str> = [BIN, d.to_str().unwrap(), "3", merged.to_str().unwrap()]
            .into_iter()
            .chain(GRID)
            .collect();
        script("merge.sbatch", &args, &[])
    };
    measure_shard(&d.join("shard-0-of-3.csv"), "0/3", false);
    measure_shard(&d.join("shard-1-of-3.csv"), "1/3", true);
    let o = run_merge();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("shard 1/3: ") && err.contains("shard-1-of-3.csv lacks 2 of its points"),
        "{err}"
    );
    assert!(
        err.contains("shard 2/3: ") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains("shard 0/3"), "{err}");
    assert!(!merged.exists(), "an incomplete sweep was merged");

    // Completed (resumed) shards merge into the whole grid.
    for i in 1..3 {
        let out = d.join(format!("shard-{i}-of-3.csv"));
        let mut c = Command::new(BIN);
        c.arg("measure")
            .args(GRID)
            .args(["--quiet", "--resume", "--shard", &format!("{i}/3")])
            .args(["--out", out.to_str().unwrap()])
            .env("ENERGY_FIT_STANDIN", "us_per_token=1");
        assert!(c.output().unwrap().status.success());
    }
    let o = run_merge();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("no point of the sweep missing"), "{out}");
    let rows = energy_fit::measure::read_rows(&merged).unwrap();
    let mut keys: Vec<_> = rows
        .iter()
        .map(|r| (r.input_tokens, r.output_tokens))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            (64, 64),
            (64, 128),
            (128, 64),
            (128, 128),
            (256, 64),
            (256, 128)
        ]
    );
}
