//! `scripts/gpu/sweep_bg.sh`: a sweep that outlives the command that started it, its copy-back,
//! and the queue of sweeps on one machine. Stand-ins replace the GPU: a fake `measure`, or the real
//! binary with the stand-in meter and workload.

use crate::scripts_cli::{run_env, stand_in, stdout_with_code};
use std::path::Path;
use std::process::Output;

/// A stand-in for `energy-fit measure` under `sweep_bg.sh`: a --dry-run prints `plan` (a plan's
/// last line); otherwise `body` runs with `$out` set to the --out path.
fn fake_measure(dir: &Path, plan: &str, body: &str) -> std::path::PathBuf {
    stand_in(
        dir,
        "fake-measure",
        &format!("case \" $* \" in *' --dry-run '*) echo '{plan}'; exit;; esac\nout=\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && out=$2; shift; done\n{body}"),
    )
}

/// `sweep_bg.sh ARGS` with WAIT=`wait`, results under tmp/out.
fn sweep_bg(tmp: &Path, args: &[&str], wait: &str) -> Output {
    run_env("scripts/gpu/sweep_bg.sh", args, tmp, &[("WAIT", wait)])
}

/// `sweep_bg.sh` with a stand-in for `energy-fit measure` (it writes two rows to --out, then
/// sleeps; a --dry-run prints a plan's last line): `start` leaves it running in its own session, a
/// second `start` is refused while it runs, and `wait` returns once it ends with the file copied to
/// $OUT.
#[test]
fn sweep_bg_runs_on_between_calls_and_copies_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = fake_measure(
        tmp.path(),
        "2 points, stand-in plan",
        "printf 'h\\nr1\\nr2\\n' > \"$out\"\nsleep 2\necho done\n",
    );
    let call = |args: &[&str], wait: &str| {
        let o = sweep_bg(tmp.path(), args, wait);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let b = bin.to_str().unwrap();
    let (rc, out, _) = call(&["start", b, "grid.csv", "--llm", "x"], "0");
    assert_eq!(rc, Some(0));
    assert!(
        out.contains("left: 2 points, stand-in plan") && out.contains("still running"),
        "{out}"
    );
    let (rc, _, err) = call(&["start", b, "grid.csv", "--llm", "x"], "0");
    assert_eq!(rc, Some(1));
    assert!(err.contains("already running"), "{err}");
    let (rc, out, _) = call(&["wait", "grid.csv"], "60");
    assert_eq!(rc, Some(0));
    assert!(
        out.contains("grid.csv: finished; 2 rows; last log line: done"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/grid.csv")).unwrap(),
        "h\nr1\nr2\n"
    );
}

/// Two sweeps started one after the other on one machine never run at once: the second queues
/// behind the first (its stand-in logs when it starts and ends, in nanoseconds), and `wait` on the
/// second returns once both are done, each file complete.
#[test]
fn sweep_bg_queues_a_second_file_behind_the_running_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = fake_measure(
        tmp.path(),
        "1 point, stand-in plan",
        "echo \"start $(date +%s%N)\"\nsleep 2\nprintf 'h\\nr1\\n' > \"$out\"\necho \"end $(date +%s%N)\"\n",
    );
    let b = bin.to_str().unwrap();
    let call = |args: &[&str], wait: &str| stdout_with_code(&sweep_bg(tmp.path(), args, wait), 0);
    let first = call(&["start", b, "a.csv", "--llm", "x"], "0");
    assert!(!first.contains("queued behind"), "{first}");
    let second = call(&["start", b, "b.csv", "--llm", "y"], "60");
    assert!(
        second.contains("queued behind pid") && second.contains("b.csv: finished; 1 rows"),
        "{second}"
    );
    let first = call(&["wait", "a.csv"], "0");
    assert!(first.contains("a.csv: finished; 1 rows"), "{first}");
    let stamp = |name: &str, what: &str| -> u128 {
        let log = std::fs::read_to_string(tmp.path().join("out").join(name)).unwrap();
        let line = log
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("{name} has no {what} line: {log}"));
        line[what.len() + 1..].parse().unwrap()
    };
    assert!(
        stamp("b.csv.log", "start") >= stamp("a.csv.log", "end"),
        "the second sweep started before the first ended"
    );
    for f in ["a.csv", "b.csv"] {
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("out").join(f)).unwrap(),
            "h\nr1\n"
        );
    }
}

/// `sweep_bg.sh start` says what is left (`measure --dry-run --resume` on its copy) before it starts
/// the sweep: here the real binary with the stand-in meter and workload (synthetic energies), so no
/// GPU is used anywhere. A second start with a stale FILE keeps the machine's working copy (it has
/// more rows) and hands the first's log back; after the copy-back nothing is left, and the pace of
/// the rows measured is printed.
#[test]
fn sweep_bg_start_says_what_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("g.csv");
    let args = [
        "--llm",
        "llama-3.2-1b",
        "--inputs",
        "64",
        "--outputs",
        "64,128",
        "--requests",
        "2",
        "--min-window-s",
        "0",
        "--idle-s",
        "0",
        "--sample-ms",
        "5",
    ];
    let start = || {
        let a = [
            &[
                "start",
                env!("CARGO_BIN_EXE_energy-fit"),
                file.to_str().unwrap(),
            ],
            &args[..],
        ]
        .concat();
        let o = run_env(
            "scripts/gpu/sweep_bg.sh",
            &a,
            tmp.path(),
            &[("ENERGY_FIT_STANDIN", "us_per_token=10"), ("WAIT", "60")],
        );
        assert!(
            o.status.success(),
            "stderr {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = start();
    assert!(
        out.contains("left: 2 points, 0 do not fit; estimated measured time")
            && out.contains("g.csv: finished; 2 rows"),
        "{out}"
    );
    // The tree's copy as a later command begins: fewer rows than the machine's (here its header only).
    let header = std::fs::read_to_string(tmp.path().join("out/g.csv"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&file, header + "\n").unwrap();
    let out = start();
    assert!(
        out.contains("keeping ")
            && out.contains("g.csv: 2 rows, more than ")
            && out.contains("left: 0 points"),
        "{out}"
    );
    let log = std::fs::read_to_string(tmp.path().join("out/g.csv.before-start.log")).unwrap();
    assert!(log.contains("done: 2 ok, 0 skipped"), "{log}");
    std::fs::copy(tmp.path().join("out/g.csv"), &file).unwrap();
    let out = start();
    assert!(
        out.contains("left: 0 points, 0 do not fit; estimated measured time 0 s")
            && out.contains("pace so far: 2 of the plan's points in ")
            && out.contains("finished; 2 rows"),
        "{out}"
    );
}
