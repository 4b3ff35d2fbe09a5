//! What the end-to-end tests share: the binary run on the stand-in meter, its output as text, and
//! the flags that make a stand-in sweep fast.
#![allow(dead_code)]

use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_energy-fit");

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
