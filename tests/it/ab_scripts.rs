//! The A/B scripts (`benches/ab_energy.sh`, `benches/gemm_tune.sh`) with stand-in binaries of
//! known, synthetic energies: rounds alternate, each side gets its own flags, a failed side is
//! named, and the summary's B/A is the ratio of tokens/J.

use super::scripts_cli::{run, run_env, stand_in, stdout_with_code};
use std::path::Path;

/// `ab_energy.sh` with two stand-in binaries whose `measure` writes one row of known energy
/// (synthetic: A 100 J, B 80 J for 1000 tokens): rounds alternate the order, and the summary's
/// B/A is the ratio of tokens/J, 1.25.
#[test]
fn ab_energy_interleaves_and_reports_the_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    let body = |e: &str, who: &str| {
        format!("out=\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && out=$2; shift; done\necho {who} >> \"$(dirname \"$out\")/order\"\nprintf 'llm,input_tokens,output_tokens,energy_j,generated_tokens,status\\nx,64,256,{e},1000,ok\\n' > \"$out\"\n")
    };
    let a = stand_in(tmp.path(), "a", &body("100", "A"));
    let b = stand_in(tmp.path(), "b", &body("80", "B"));
    let line = ab_energy_row(tmp.path(), &a, &b, ("ROUNDS", "3"));
    let order = std::fs::read_to_string(tmp.path().join("out/order")).unwrap();
    assert_eq!(
        order.split_whitespace().collect::<Vec<_>>(),
        ["A", "B", "B", "A", "A", "B"]
    );
    assert!(
        line.contains("10.00 10.00 10.00")
            && line.contains("12.50 12.50 12.50")
            && line.trim_end().ends_with("1.2500"),
        "{line}"
    );
}

/// Runs `ab_energy.sh A B --llm x` with results under DIR/out and one more setting; expects it to
/// succeed and returns the summary's row for n = 64.
fn ab_energy_row(dir: &Path, a: &Path, b: &Path, setting: (&str, &str)) -> String {
    let o = run_env(
        "benches/ab_energy.sh",
        &[a.to_str().unwrap(), b.to_str().unwrap(), "--llm", "x"],
        dir,
        &[setting],
    );
    let out = stdout_with_code(&o, 0);
    out.lines()
        .find(|l| l.trim_start().starts_with("64"))
        .unwrap_or_else(|| panic!("no row for n = 64 in {out}"))
        .to_string()
}

/// `ab_energy.sh` with one stand-in binary and a flag for side B only (FLAGS_B): the stand-in
/// writes 80 J when given --tune-gemms and 100 J otherwise (synthetic), so B/A is 1.25 only if
/// the flag reaches B's runs and not A's.
#[test]
fn ab_energy_passes_side_flags_to_one_side() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "out=; e=100\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && out=$2; [ \"$1\" = --tune-gemms ] && e=80; shift; done\nprintf 'llm,input_tokens,output_tokens,energy_j,generated_tokens,status\\nx,64,256,%s,1000,ok\\n' $e > \"$out\"\n";
    let bin = stand_in(tmp.path(), "one", body);
    let line = ab_energy_row(tmp.path(), &bin, &bin, ("FLAGS_B", "--tune-gemms"));
    assert!(
        line.contains("10.00 10.00")
            && line.contains("12.50 12.50")
            && line.trim_end().ends_with("1.2500"),
        "{line}"
    );
}

/// A flag in FLAGS_B that `measure` does not know: the real binary refuses it, and the script
/// names the failed side and round and the log, which names the flag.
#[test]
fn ab_energy_names_a_bad_side_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_energy-fit");
    let o = run_env(
        "benches/ab_energy.sh",
        &[bin, bin, "--llm", "llama-3.2-1b", "--dry-run"],
        tmp.path(),
        &[("ROUNDS", "1"), ("FLAGS_B", "--no-such-flag")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("round 1 B: measure failed (see ab-B-r1.log)") && !err.contains("round 1 A:"),
        "{err}"
    );
    let log = std::fs::read_to_string(tmp.path().join("out/ab-B-r1.log")).unwrap();
    assert!(log.contains("--no-such-flag"), "{log}");
}

/// `gemm_tune.sh` with a stand-in binary (synthetic): its selftest prints two cuBLASLt checks,
/// its bench says it tuned only when given --tune-gemms, and its measure writes 80 J with
/// --tune-gemms, 100 J without. The summary must show both benches and B/A = 1.25 for the A/B.
#[test]
fn gemm_tune_runs_both_sides_of_each_step() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "cmd=$1; out=; e=100; t=\nfor a in \"$@\"; do [ \"$a\" = --tune-gemms ] && { e=80; t=1; }; done\n\
        while [ $# -gt 0 ]; do [ \"$1\" = --out ] && out=$2; shift; done\n\
        case $cmd in\n  selftest) printf 'ok   cublasLt gemm 1x64x64 algorithm 1 of 2\\nok   cublasLt gemm 1x64x64 algorithm 2 of 2\\n' ;;\n\
        bench) [ -n \"$t\" ] && echo 'GEMM shapes of {256} rows tuned in 1.0 s'; echo 'decode    256    128    9.000' ;;\n\
        measure) printf 'llm,input_tokens,output_tokens,energy_j,generated_tokens,status\\nx,64,256,%s,1000,ok\\n' $e > \"$out\" ;;\nesac\n";
    let bin = stand_in(tmp.path(), "fake", body);
    let o = run("benches/gemm_tune.sh", &[bin.to_str().unwrap()], tmp.path());
    let out = stdout_with_code(&o, 0);
    assert!(
        out.contains("selftest: 2 ok, 0 failed; cuBLASLt checks: 2"),
        "{out}"
    );
    assert!(
        out.contains("bench default: \n")
            && out.contains("bench tuned: GEMM shapes of {256} rows tuned"),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("64"))
        .unwrap_or_else(|| panic!("no A/B row in {out}"));
    assert!(row.trim_end().ends_with("1.2500"), "{row}");
}
