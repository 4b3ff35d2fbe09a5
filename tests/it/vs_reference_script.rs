//! `benches/vs_reference.py`, the comparison of a measured file with the published TensorRT-LLM
//! surface: it names what is missing or refused, fills points from an older file, and bounds each
//! point by the roofline floor (synthetic files and a stand-in binary; no GPU).

use super::scripts_cli::stand_in;
use std::path::Path;
use std::process::Command;

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
