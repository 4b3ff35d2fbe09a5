//! A sweep on the stand-in meter killed with SIGKILL at seeded random moments, again and again
//! (60 kills): after every kill the file reads, every row finished before is still there byte for
//! byte, no point is written twice, and `--resume` finally completes the grid. At most the point
//! in flight is lost, since rows only ever grow by whole lines.

use energy_fit::measure::read_rows;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const POINTS: usize = 6;

fn sweep(out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_energy-fit"));
    c.args(["measure", "--quiet", "--idle-s", "0", "--min-window-s", "0"])
        .args([
            "--sample-ms",
            "2",
            "--inputs",
            "64,128",
            "--outputs",
            "64,128,256",
        ])
        .args([
            "--requests",
            "2",
            "--resume",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("ENERGY_FIT_STANDIN", "us_per_token=40")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// The complete lines of the file rows are appended to (a CSV file itself, a Parquet journal).
fn whole_lines(journal: &Path) -> Vec<u8> {
    let b = std::fs::read(journal).unwrap_or_default();
    let keep = b.iter().rposition(|&x| x == b'\n').map_or(0, |i| i + 1);
    b[..keep].to_vec()
}

fn check_rows(out: &Path) -> usize {
    if !out.exists() {
        return 0;
    }
    let rows = read_rows(out).unwrap_or_else(|e| panic!("{} unreadable: {e:#}", out.display()));
    let mut keys: Vec<_> = rows.iter().map(|r| r.key()).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        n,
        "a point was written twice in {}",
        out.display()
    );
    assert!(n <= POINTS);
    n
}

#[test]
fn sixty_random_kills_never_lose_a_finished_row() {
    let mut rng = StdRng::seed_from_u64(35);
    let dir = tempfile::tempdir().unwrap();
    let mut kills = 0;
    // Kills that struck with part of the grid done (the case that matters).
    let mut mid_sweep = 0;
    let t0 = Instant::now();
    for trial in 0..12 {
        let (out, journal) = if trial % 3 == 2 {
            let o = dir.path().join(format!("m{trial}.parquet"));
            let j = dir.path().join(format!("m{trial}.parquet.journal.csv"));
            (o, j)
        } else {
            let o = dir.path().join(format!("m{trial}.csv"));
            (o.clone(), o)
        };
        let mut before = Vec::new();
        let mut before_rows = 0;
        for _ in 0..5 {
            let mut child = sweep(&out).spawn().unwrap();
            // Random moments after the sweep has opened its file, so a slow start on a busy
            // machine does not turn every kill into one before the first point.
            let start = Instant::now();
            while whole_lines(&journal).is_empty() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..200)));
            let _ = child.kill(); // SIGKILL; the sweep may already have finished
            child.wait().unwrap();
            kills += 1;
            let now = whole_lines(&journal);
            assert!(
                now.starts_with(&before),
                "kill {kills}: finished rows of {} changed",
                journal.display()
            );
            let n = check_rows(&out);
            if n > before_rows && n < POINTS {
                mid_sweep += 1;
            }
            before_rows = n;
            before = now;
        }
        let o = sweep(&out).status().unwrap();
        assert!(o.success(), "resume of {} failed", out.display());
        assert!(whole_lines(&journal).starts_with(&before));
        assert_eq!(check_rows(&out), POINTS, "{}", out.display());
    }
    assert!(kills >= 50);
    assert!(mid_sweep >= 5, "only {mid_sweep} kills struck mid-sweep");
    assert!(
        t0.elapsed() < Duration::from_secs(120),
        "{:?}",
        t0.elapsed()
    );
}
