//! What the end-to-end tests share: the binary run on the stand-in meter, its output as text, and
//! the flags that make a stand-in sweep fast.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The published Llama-3.2-1B flops-mem coefficients (alpha … zeta): the known truth of the
/// labelled synthetic data.
pub const LLAMA: [f64; 6] = [
    5.005153e-03,
    1.079941e-07,
    6.825240e-06,
    2.611042e-03,
    3.852659e-06,
    5.406443e-01,
];

/// Runs `energy-fit args` in `dir` (no stand-in); (success, stdout, stderr).
pub fn run_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("spawn energy-fit");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

pub const BIN: &str = env!("CARGO_BIN_EXE_energy-fit");

/// A CSV line's cells, read here rather than by the crate (quoted cells may hold commas: the
/// engine column does).
pub fn csv_cells(line: &str) -> Vec<String> {
    let (mut cells, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    for ch in line.chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(ch),
        }
    }
    cells.push(cell);
    cells
}

/// Runs `energy-fit args` on the stand-in meter (no GPU).
pub fn ef(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("ENERGY_FIT_STANDIN", "")
        .output()
        .expect("spawn energy-fit")
}

/// stdout and stderr together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A 5 × 5 grid (n, m ∈ 64 … 1024) at 10 requests: small enough for the stand-in.
pub const GRID: [&str; 6] = [
    "--inputs",
    "64,128,256,512,1024",
    "--outputs",
    "64,128,256,512,1024",
    "--requests",
    "10",
];

/// No idle wait, no minimum window, fast sampling, no progress bar.
pub const QUICK: [&str; 7] = [
    "--quiet",
    "--idle-s",
    "0",
    "--min-window-s",
    "0",
    "--sample-ms",
    "5",
];
