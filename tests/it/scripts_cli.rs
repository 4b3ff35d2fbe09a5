//! The GPU-machine scripts (benches/, scripts/) refuse bad arguments before any work: a missing
//! argument prints the usage, a BIN that is not an executable names itself, and `sweep_bg.sh
//! wait` on a sweep never started says so. These paths need no GPU, so CI runs them.

use std::path::Path;
use std::process::{Command, Output};

pub(crate) fn run(script: &str, args: &[&str], tmp: &Path) -> Output {
    run_env(script, args, tmp, &[])
}

/// `run` with more environment settings (results under tmp/out, a sweep's copy under tmp/dir).
pub(crate) fn run_env(script: &str, args: &[&str], tmp: &Path, env: &[(&str, &str)]) -> Output {
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

/// A script's standard output, once its exit code is checked to be `code` (a mismatch shows
/// its standard output and error).
pub(crate) fn stdout_with_code(o: &Output, code: i32) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(code),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

const BAD_BIN: &str = "/nonexistent/energy-fit";

/// An executable bash script `dir/name` with `body`: a stand-in for the energy-fit binary.
pub(crate) fn stand_in(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
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
    let out = stdout_with_code(&o, 1);
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
    let out = stdout_with_code(&o, 1);
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
