//! Records the git commit the binary was built from (ENERGY_FIT_COMMIT), so every measured row
//! names the exact engine that produced it ("unknown" outside a git checkout).
use std::process::Command;

fn main() {
    let out = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output();
    let mut commit = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".to_string(),
    };
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output();
    if matches!(dirty, Ok(o) if o.status.success() && !o.stdout.is_empty()) {
        commit.push_str("-dirty");
    }
    println!("cargo:rustc-env=ENERGY_FIT_COMMIT={commit}");
    // The sources too: without them an edit after the last commit left a stale clean hash (rows
    // measured with an uncommitted tree named the commit below it without "-dirty").
    for p in [
        ".git/HEAD",
        ".git/index",
        ".git/refs/heads",
        "src",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
