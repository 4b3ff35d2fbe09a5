//! `engine-run`'s inputs that are checked before any GPU work, so CI (no GPU) can test them.

use std::process::Command;

/// A --trace path that cannot be created fails at once, naming the flag and the path (not after
/// minutes of runs, and not as a missing-GPU error).
#[test]
fn unwritable_trace_file_is_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("no-such-folder/trace.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_energy-fit"))
        .args([
            "engine-run",
            "--llm",
            "llama-3.2-1b",
            "--trace",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(
        err.contains("--trace")
            && err.contains("no-such-folder/trace.csv")
            && err.contains("cannot create"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Tuning the GEMMs happens in place of warming them, so asking for tuning without the warm-up is
/// refused before any GPU work, naming both flags.
#[test]
fn tuning_without_the_warm_up_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_energy-fit"))
        .args([
            "engine-run",
            "--llm",
            "llama-3.2-1b",
            "--tune-gemms",
            "--no-warm-gemms",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(
        err.contains("--tune-gemms") && err.contains("--no-warm-gemms"),
        "{err}"
    );
}
