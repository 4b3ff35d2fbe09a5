//! The GPU-machine scripts (benches/, scripts/) refuse bad arguments before any work: a missing
//! argument prints the usage, a BIN that is not an executable names itself, and `sweep_bg.sh
//! wait` on a sweep never started says so. These paths need no GPU, so CI runs them.

use std::path::Path;
use std::process::{Command, Output};

fn run(script: &str, args: &[&str], tmp: &Path) -> Output {
    run_env(script, args, tmp, &[])
}

/// `run` with more environment settings (results under tmp/out, a sweep's copy under tmp/dir).
fn run_env(script: &str, args: &[&str], tmp: &Path, env: &[(&str, &str)]) -> Output {
    Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args)
        .env("OUT", tmp.join("out"))
        .env("DIR", tmp.join("dir"))
        .envs(env.iter().copied())
        .output()
        .expect("bash runs")
}

fn assert_refused(script: &str, args: &[&str], needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(script, args, tmp.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{script} {args:?}: exit {:?}, stderr {err}",
        o.status.code()
    );
    assert!(
        err.contains(needle),
        "{script} {args:?}: stderr {err:?} lacks {needle:?}"
    );
}

const BAD_BIN: &str = "/nonexistent/energy-fit";

/// An executable bash script `dir/name` with `body`: a stand-in for the energy-fit binary.
fn stand_in(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join(name);
    std::fs::write(&bin, format!("#!/usr/bin/env bash\n{body}")).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn missing_arguments_print_the_usage() {
    for s in [
        "scripts/dev_binary.sh",
        "benches/attn_variants.sh",
        "benches/decode_variants.sh",
        "benches/ncu_attention.sh",
        "scripts/gpu/grid_resume.sh",
        "scripts/gpu/sweep_bg.sh",
        "benches/ab_energy.sh",
        "benches/gemm_tune.sh",
    ] {
        assert_refused(s, &[], "usage:");
    }
    assert_refused(
        "scripts/gpu/sweep_bg.sh",
        &["frobnicate", "x.csv"],
        "usage:",
    );
}

#[test]
fn a_binary_that_is_not_there_is_named() {
    let want = format!("BIN {BAD_BIN}: not an executable file");
    for (s, args) in [
        ("benches/attn_variants.sh", vec![BAD_BIN]),
        ("benches/decode_variants.sh", vec![BAD_BIN]),
        ("benches/ncu_attention.sh", vec![BAD_BIN]),
        (
            "benches/ab_energy.sh",
            vec![BAD_BIN, BAD_BIN, "--llm", "llama-3.2-1b"],
        ),
        ("benches/gpu_perf.sh", vec![BAD_BIN, "bench"]),
        ("benches/gemm_tune.sh", vec![BAD_BIN]),
        ("scripts/gpu/run_checks.sh", vec![BAD_BIN]),
        (
            "scripts/gpu/grid_resume.sh",
            vec![BAD_BIN, "grid.csv", "--llm", "llama-3.2-1b"],
        ),
        (
            "scripts/gpu/sweep_bg.sh",
            vec!["start", BAD_BIN, "grid.csv", "--llm", "llama-3.2-1b"],
        ),
    ] {
        assert_refused(s, &args, &want);
    }
}

#[test]
fn waiting_on_a_sweep_never_started_says_so() {
    assert_refused(
        "scripts/gpu/sweep_bg.sh",
        &["wait", "never.csv"],
        "no sweep of never.csv was started",
    );
}

/// `sweep_bg.sh` with a stand-in for `energy-fit measure` (it writes two rows to --out, then
/// sleeps; a --dry-run prints a plan's last line): `start` leaves it running in its own session, a second `start` is refused while it
/// runs, and `wait` returns once it ends with the file copied to $OUT.
#[test]
fn sweep_bg_runs_on_between_calls_and_copies_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = stand_in(tmp.path(), "fake-measure", "case \" $* \" in *' --dry-run '*) echo '2 points, stand-in plan'; exit;; esac\nout=\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && out=$2; shift; done\nprintf 'h\\nr1\\nr2\\n' > \"$out\"\nsleep 2\necho done\n");
    let call = |args: &[&str], wait: &str| {
        let o = run_env(
            "scripts/gpu/sweep_bg.sh",
            args,
            tmp.path(),
            &[("WAIT", wait)],
        );
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

/// `attn_variants.sh` with a stand-in binary (prints one `ok` line, exits 0): every variant's
/// files get names of letters, digits, `_` and `-` only, which the GPU machine hands back ('='
/// in a name kept a variant's results on the machine once).
#[test]
fn attn_variants_names_its_files_so_they_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = stand_in(tmp.path(), "fake-energy-fit", "echo ok stand-in\n");
    let o = run(
        "benches/attn_variants.sh",
        &[bin.to_str().unwrap(), "", "-DTC_X=0", "-DA=1 -DB=2"],
        tmp.path(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want = [
        "bench-A-1__B-2.txt",
        "bench-TC_X-0.txt",
        "bench-base.txt",
        "selftest-A-1__B-2.txt",
        "selftest-TC_X-0.txt",
        "selftest-base.txt",
        "summary.txt",
    ];
    assert_eq!(names, want);
    assert!(
        names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))),
        "{names:?}"
    );
}

/// `decode_variants.sh` with a stand-in binary (selftest: two `ok` lines and one `FAIL` under the
/// variant; bench: bench's decode row and kernel-line format with made-up times): the summary has
/// each variant's step time, floor ratio and attention_tcd time, counts the selftest's lines, and
/// a failed selftest makes the script fail.
#[test]
fn decode_variants_summarises_each_decode_row() {
    let tmp = tempfile::tempdir().unwrap();
    let body = concat!(
        "case \"$1\" in\n",
        "selftest) echo 'ok   a'; echo 'ok   b'; [ -n \"$ENERGY_FIT_NVRTC_OPTS\" ] && { echo 'FAIL c'; exit 1; }; exit 0;;\n",
        "bench) printf 'decode     256   4096     13.288    12.315 bytes   1.08\\n          attention_tcd_bf16_64   11.648 ms  85.3 %% x16\\n",
        "decode    1024   2048     26.969    23.793 bytes   1.13\\n          gemm 16384x2048   0.5 ms  2 %% x16\\n          attention_tcd_bf16_64   22.721 ms  84 %% x16\\n';;\n",
        "esac\n"
    );
    let bin = stand_in(tmp.path(), "fake-energy-fit", body);
    let o = run(
        "benches/decode_variants.sh",
        &[bin.to_str().unwrap(), "", "-DTC_X=0"],
        tmp.path(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("defaults: selftest rc=0 (2 ok, 0 failed); bench rc=0; "),
        "{out}"
    );
    assert!(
        lines[0].contains(
            "256x4096: 13.288 ms (1.08x) attn 11.648  1024x2048: 26.969 ms (1.13x) attn 22.721"
        ),
        "{out}"
    );
    assert!(
        lines[1].starts_with("-DTC_X=0: selftest rc=1 (2 ok, 1 failed); bench rc=0;"),
        "{out}"
    );
    assert!(
        tmp.path().join("out/bench-TC_X-0.txt").exists()
            && tmp.path().join("out/summary.txt").exists()
    );
}

/// `LLM` reaches the binary: with an LLM that is not in the catalog, the real `energy-fit bench`
/// refuses it by name before touching a GPU, and the summary reports the failed bench.
#[test]
fn attn_variants_passes_llm_and_reports_a_bad_one() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run_env(
        "benches/attn_variants.sh",
        &[env!("CARGO_BIN_EXE_energy-fit"), ""],
        tmp.path(),
        &[("LLM", "no-such-llm")],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("defaults:") && !out.contains("bench rc=0"),
        "{out}"
    );
    let bench = std::fs::read_to_string(tmp.path().join("out/bench-base.txt")).unwrap();
    assert!(
        bench.contains("--llm no-such-llm: not a catalog LLM"),
        "{bench}"
    );
}

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
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
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
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
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

/// `vs_reference.py` names the file and the LLM when the file has no usable rows for it, asks for
/// `--llm` when the file holds several LLMs (synthetic two-row file), names a missing file, names
/// the settings column `--floor` lacks, a missing `--bin`, and a value the binary refuses.
#[test]
fn vs_reference_names_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("two.csv");
    std::fs::write(&f, "llm,input_tokens,output_tokens,requests,energy_j,generated_tokens,status\na,64,64,1,1.0,64,ok\nb,64,64,1,1.0,64,ok\n").unwrap();
    let py = |args: &[&str]| {
        let o = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/vs_reference.py"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let fs = f.to_str().unwrap();
    let (ok, err) = py(&[fs]);
    assert!(
        !ok && err.contains("two.csv has rows for 2 LLMs (a, b); name one with --llm"),
        "{err}"
    );
    let (ok, err) = py(&[fs, "--llm", "llama-3.2-1b"]);
    assert!(
        !ok && err.contains(
            "two.csv: no rows with status ok for llm llama-3.2-1b (LLMs in the file: a, b)"
        ),
        "{err}"
    );
    let (ok, err) = py(&[fs, "--llm", "a", "--fill", "/nonexistent/old.csv"]);
    assert!(
        !ok && err.contains("error: /nonexistent/old.csv: No such file or directory"),
        "{err}"
    );
    let (ok, err) = py(&[fs, "--llm", "a", "--floor", "--bin", "/bin/true"]);
    assert!(!ok && err.contains("--floor needs the columns requests, max_batch_size, max_num_tokens, dtype; a row lacks max_batch_size"), "{err}");
    // A --bin that is not there, and the binary refusing a value, are named (not a traceback).
    let (ok, err) = py(&[fs, "--llm", "a", "--bin", "/nonexistent/energy-fit"]);
    assert!(
        !ok && err.contains("error: --bin /nonexistent/energy-fit: No such file or directory"),
        "{err}"
    );
    let g = tmp.path().join("settings.csv");
    std::fs::write(&g, "llm,input_tokens,output_tokens,requests,max_batch_size,max_num_tokens,dtype,energy_j,generated_tokens,avg_power_w,status\nllama-3.2-1b,64,64,1000,1024,8192,bf16,1.0,64,100,ok\n").unwrap();
    let (ok, err) = py(&[
        g.to_str().unwrap(),
        "--floor",
        "--gpu-mem-gib",
        "abc",
        "--bin",
        env!("CARGO_BIN_EXE_energy-fit"),
    ]);
    assert!(
        !ok && err.contains("--dry-run --gpu-mem-gib abc")
            && err.contains("failed (exit 2): error: invalid value 'abc' for '--gpu-mem-gib"),
        "{err}"
    );
}

/// `vs_reference.py --fill OLD` takes only the points the file lacks from OLD and marks them;
/// `--floor` divides by the tokens/J of `measure --dry-run`'s bound at each row's power and refuses
/// rows measured with different settings (synthetic files; a stand-in `--bin` answers every
/// reference prediction with 1 token/J and writes `--plan-csv` with bounds of 2 s and 4 s, or with
/// the second point not fitting when PLAN_NOFIT is set, which `--floor` names as unbounded, or at
/// 400 s when PLAN_SLOW is set, out of the median target's reach); `--floor` also says how far
/// the median target is.
#[test]
fn vs_reference_fills_missing_points_and_bounds_them() {
    let tmp = tempfile::tempdir().unwrap();
    let head = "llm,input_tokens,output_tokens,requests,max_batch_size,max_num_tokens,dtype,energy_j,generated_tokens,avg_power_w,status\n";
    let new = tmp.path().join("new.csv");
    let old = tmp.path().join("old.csv");
    std::fs::write(
        &new,
        format!("{head}x,64,64,1,1024,8192,bf16,32.0,64,8.0,ok\n"),
    )
    .unwrap();
    std::fs::write(&old, format!("{head}x,64,64,1,1024,8192,bf16,64.0,64,8.0,ok\nx,64,128,1,1024,8192,bf16,128.0,64,1.0,ok\n")).unwrap();
    let bin = stand_in(
        tmp.path(),
        "energy-fit",
        r#"case "$1" in
predict) echo '{"tokens_per_j": 1.0}' ;;
measure) while [ $# -gt 0 ]; do [ "$1" = --plan-csv ] && plan=$2; shift; done
  echo 'the text table, which --floor no longer reads'
  last='true,4.0,2'; [ -n "$PLAN_NOFIT" ] && last='false,,'; [ -n "$PLAN_SLOW" ] && last='true,400.0,1'
  printf 'llm,input_tokens,output_tokens,requests,max_batch_size,max_num_tokens,dtype,repeat,fits,est_s,runs\nx,64,64,1,1024,8192,bf16,0,true,2.0,3\nx,64,128,1,1024,8192,bf16,0,%s\n' "$last" > "$plan" ;;
esac"#,
    );
    let py_env = |args: &[&str], env: &[(&str, &str)]| {
        let o = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/vs_reference.py"))
            .args([
                new.to_str().unwrap(),
                "--fill",
                old.to_str().unwrap(),
                "--bin",
                bin.to_str().unwrap(),
            ])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let py = |args: &[&str]| py_env(args, &[]);
    let (ok, out, err) = py(&[]);
    assert!(ok, "{out} {err}");
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let rows: Vec<_> = out
        .lines()
        .filter(|l| l.starts_with("64 "))
        .map(words)
        .collect();
    assert_eq!(rows[0], ["64", "2.00", "0.50*"], "{out}");
    assert!(out.contains("2 points: median ratio 1.25, min 0.50, max 2.00; 1 of 2 at or above the reference, 1 at 1.3x or more; * 1 from"), "{out}");

    let (ok, out, err) = py(&["--floor"]);
    assert!(ok, "{out} {err}");
    let rows: Vec<_> = out
        .lines()
        .filter(|l| l.starts_with("64 "))
        .map(words)
        .collect();
    // The bound: 64 tokens / (2 s * 8 W) = 4 tokens/J, and 64 / (4 s * 1 W) = 16 (filled).
    assert_eq!(rows[2], ["64", "4.00", "16.00*"], "{out}");
    assert_eq!(rows[3], ["64", "0.50", "0.03*"], "{out}");
    assert!(
        out.contains("at the bound: 2 points: median ratio 10.00, min 4.00, max 16.00; 2 of 2"),
        "{out}"
    );
    // A median of 1.3x needs both points there: (64, 64) is (2.0x); (64, 128) needs 1.3 / 0.5 = 2.6x
    // its tokens/J; their shares of the bound needed are 1.3 / 4 = 0.33 and 1.3 / 16.
    assert!(
        out.contains("for a median of 1.3x, 2 of 2 points must reach 1.3x; 2 can at their bound; the 2 that need the least of it need up to 0.33 of their bound and up to 160 % more tokens/J (1 already there)"),
        "{out}"
    );
    // At 400 s, (64, 128)'s bound is 64 / 400 tokens/J, 0.16x the reference: the target is out of reach.
    let (ok, out, err) = py_env(&["--floor"], &[("PLAN_SLOW", "1")]);
    assert!(
        ok && out.contains(
            "2 points must reach 1.3x; 1 can at their bound: the median target is beyond the bound"
        ),
        "{out} {err}"
    );
    let (ok, out, err) = py_env(&["--floor"], &[("PLAN_NOFIT", "1")]);
    assert!(
        !ok && err.contains("`measure --dry-run` gave no bound for [(64, 128)]"),
        "{out} {err}"
    );

    std::fs::write(
        &old,
        format!("{head}x,64,128,7,1024,8192,bf16,128.0,64,1.0,ok\n"),
    )
    .unwrap();
    let (ok, _, err) = py(&["--floor"]);
    assert!(!ok && err.contains("--floor needs one setting of requests, max_batch_size, max_num_tokens, dtype over the rows"), "{err}");
}

/// `overlap_probe.sh` names a missing compiler, and with a stand-in nvcc (which writes a stand-in
/// probe that echoes its arguments) runs the bandwidth sweep and the three stand-in steps, one
/// result file each.
#[test]
fn overlap_probe_names_a_missing_nvcc_and_runs_each_stand_in() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run_env(
        "benches/overlap_probe.sh",
        &[],
        tmp.path(),
        &[("NVCC", "/nonexistent/nvcc")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr {err}");
    assert!(err.contains("NVCC '/nonexistent/nvcc': no nvcc"), "{err}");

    let nvcc = stand_in(
        tmp.path(),
        "nvcc",
        r#"while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done
printf '#!/usr/bin/env bash\necho "probe $*"\n' > "$out"; chmod +x "$out""#,
    );
    let o = run_env(
        "benches/overlap_probe.sh",
        &[],
        tmp.path(),
        &[("NVCC", nvcc.to_str().unwrap())],
    );
    assert!(
        o.status.success(),
        "stderr {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (file, line) in [
        ("probe-bw.txt", "probe 512 537 bw"),
        ("probe-512-537.txt", "probe 512 537"),
        ("probe-512-134.txt", "probe 512 134"),
        ("probe-128-134.txt", "probe 128 134"),
    ] {
        let got = std::fs::read_to_string(tmp.path().join("out").join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got.trim(), line, "{file}");
    }
}

/// `sweep_bg.sh start` says what is left (`measure --dry-run --resume` on its copy) before it starts
/// the sweep: here the real binary with the stand-in meter and workload (synthetic energies), so no
/// GPU is used anywhere. A second start with a stale FILE keeps the machine's working copy (it has
/// more rows) and hands the first's log back; after the copy-back nothing is left.
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
            && out.contains("finished; 2 rows"),
        "{out}"
    );
}

/// A file tree under `root`: (path, contents) pairs.
fn tree(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

#[test]
fn check_layering_passes_this_tree_and_names_each_violation() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run("scripts/check_layering.sh", &[], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("layering ok"));

    let root = tmp.path().join("repo");
    tree(
        &root,
        &[
            // Allowed: the measurement side and a GPU command use the engine; comments never count;
            // the engine uses llm, which is below it.
            ("src/measure/run.rs", "use crate::engine::Engine;\n"),
            ("src/cli/bench.rs", "use crate::engine::{DType, Engine};\n"),
            (
                "src/cli/fit.rs",
                "// the fitter never touches crate::engine\n",
            ),
            ("src/engine/weights.rs", "use crate::llm::LlmConfig;\n"),
            // Violations: a CPU-side module reaching the engine, through a path and a grouped use,
            // and the engine reaching up to the fitter.
            (
                "src/report/mod.rs",
                "fn f() {\n    let _ = crate::engine::Engine::new;\n}\n",
            ),
            (
                "src/design/mod.rs",
                "use crate::{\n    engine::DType,\n};\n",
            ),
            ("src/engine/forward.rs", "use crate::{fit::Loss, llm};\n"),
        ],
    );
    let root_arg = root.to_str().unwrap();
    let o = run("scripts/check_layering.sh", &[root_arg], tmp.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    for hit in [
        "src/report/mod.rs:2:",
        "src/design/mod.rs:2:",
        "src/engine/forward.rs:1:",
    ] {
        assert!(out.contains(hit), "{hit} missing from {out}");
    }
    for clean in [
        "src/measure/run.rs",
        "src/cli/bench.rs",
        "src/cli/fit.rs",
        "src/engine/weights.rs",
    ] {
        assert!(
            !out.lines().any(|l| l.starts_with(clean)),
            "{clean} wrongly reported: {out}"
        );
    }
    assert_eq!(out.lines().count(), 3, "{out}");
}
