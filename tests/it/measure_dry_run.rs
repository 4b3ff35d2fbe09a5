//! `measure --dry-run`: the plan of a sweep without a GPU, its plan file, and with `--resume` what
//! is left of a file (the real binary; nothing is measured or written but the plan).

use super::measure_cli::{measure, run, stderr};

#[test]
fn dry_run_prints_the_plan_without_a_gpu() {
    let o = run(measure(
        &[
            "--dry-run",
            "--llm",
            "llama-3.2-1b,gemma-2-9b",
            "--outputs",
            "64",
            "--gpu-mem-gib",
            "16",
        ],
        None,
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("plan: 14 points"), "{s}");
    assert!(s.contains("14 points, 7 do not fit"), "{s}");
    assert!(
        s.lines()
            .filter(|l| l.starts_with("gemma-2-9b") && l.contains("no: needs"))
            .count()
            == 7,
        "{s}"
    );
}

/// `--plan-csv` writes the plan beside the printed table (same table), and is refused without
/// `--dry-run` before anything is measured or written.
#[test]
fn dry_run_writes_the_plan_csv_and_only_with_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.csv");
    let args = [
        "--llm",
        "llama-3.2-1b,gemma-2-9b",
        "--inputs",
        "64,128",
        "--outputs",
        "64",
        "--gpu-mem-gib",
        "16",
    ];
    let o = run(measure(&args, None).args(["--dry-run", "--plan-csv", plan.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
    let without = run(measure(&args, None).arg("--dry-run"));
    assert_eq!(o.stdout, without.stdout, "the table is printed as before");
    let text = std::fs::read_to_string(&plan).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 4, "{text}");
    assert!(
        lines[0].starts_with("llm,input_tokens,output_tokens,")
            && lines[0].ends_with(",fits,est_s,runs,role"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("llama-3.2-1b,64,64,1000,1024,8192,bf16,0,true,"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("gemma-2-9b,64,64,") && lines[3].ends_with(",false,,,"),
        "{text}"
    );

    let out = dir.path().join("m.csv");
    let r = run(measure(
        &[
            "--plan-csv",
            dir.path().join("p2.csv").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Some(""),
    ));
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("--dry-run"), "{}", stderr(&r));
    assert!(
        !out.exists() && !dir.path().join("p2.csv").exists(),
        "nothing written"
    );
    // A path that cannot be written (its folder is a file) is named.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("plan.csv");
    let bad = bad.to_str().unwrap();
    let r = run(measure(&args, None).args(["--dry-run", "--plan-csv", bad]));
    assert!(
        !r.status.success() && stderr(&r).contains(&format!("--plan-csv: writing {bad}")),
        "{}",
        stderr(&r)
    );
    // The plan is replaced atomically (no temporary left beside it), a plan over a plan is
    // fine, and a file that is not a plan (measurements) is never replaced.
    let o = run(measure(&args, None).args(["--dry-run", "--plan-csv", plan.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&plan).unwrap(), text);
    let data = dir.path().join("data.csv");
    std::fs::write(
        &data,
        "llm,input_tokens,output_tokens,requests,energy_j\nx,1,1,1,1\n",
    )
    .unwrap();
    let r = run(measure(&args, None).args(["--dry-run", "--plan-csv", data.to_str().unwrap()]));
    assert!(
        !r.status.success() && stderr(&r).contains("is not a plan file"),
        "{}",
        stderr(&r)
    );
    assert!(std::fs::read_to_string(&data)
        .unwrap()
        .starts_with("llm,input_tokens,output_tokens,requests,energy_j\n"));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a-file", "data.csv", "plan.csv"],
        "temporaries left behind"
    );
}

/// `--dry-run --resume` plans only the points --out lacks, as the run would (--retry-skipped
/// included), for CSV and for Parquet's journal, and reads the file without changing it, a torn last
/// line and all; without --resume it says the file exists.
#[test]
fn dry_run_with_resume_plans_what_is_left_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (name, journal) in [("m.csv", "m.csv"), ("m.parquet", "m.parquet.journal.csv")] {
        let out = dir.path().join(name);
        let o = run(measure(
            &[
                "--inputs",
                "64,4096",
                "--outputs",
                "64",
                "--requests",
                "2",
                "--out",
                out.to_str().unwrap(),
            ],
            Some("fail_input=4096"),
        ));
        assert!(o.status.success(), "{}", stderr(&o));
        // In the file: (64, 64) ok, (4096, 64) skipped; then a torn line as a killed write leaves.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(journal))
            .unwrap();
        std::io::Write::write_all(&mut f, b"llama-3.2-1b,64,128,2").unwrap();
        let snapshot = || {
            let mut v: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|p| (p.clone(), std::fs::read(p).unwrap()))
                .collect();
            v.sort();
            v
        };
        let before = snapshot();
        let plan = |extra: &[&str]| {
            let args = [
                &[
                    "--inputs",
                    "64,4096",
                    "--outputs",
                    "64,128",
                    "--requests",
                    "2",
                    "--gpu-mem-gib",
                    "80",
                    "--dry-run",
                    "--out",
                    out.to_str().unwrap(),
                ],
                extra,
            ]
            .concat();
            let o = run(measure(&args, None));
            assert!(o.status.success(), "{}", stderr(&o));
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let points: Vec<(String, String)> = text
                .lines()
                .filter(|l| l.starts_with("llama-3.2-1b "))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .map(|f| (f[1].to_string(), f[2].to_string()))
                .collect();
            (points, text, stderr(&o))
        };
        let p = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(n, m)| (n.to_string(), m.to_string()))
                .collect::<Vec<_>>()
        };
        let (points, text, err) = plan(&["--resume"]);
        assert_eq!(
            points,
            p(&[("64", "128"), ("4096", "128")]),
            "{name}: {text}"
        );
        assert!(
            err.contains("resume: 2 of 4 points already in") && text.contains("plan: 2 points"),
            "{name}: {err} {text}"
        );
        let (points, text, err) = plan(&["--resume", "--retry-skipped"]);
        assert_eq!(
            points,
            p(&[("64", "128"), ("4096", "64"), ("4096", "128")]),
            "{name}: {text}"
        );
        assert!(
            err.contains("resume: 1 of 4 points already in"),
            "{name}: {err}"
        );
        let (points, text, err) = plan(&[]);
        assert_eq!(points.len(), 4, "{name}: {text}");
        assert!(
            err.contains(&format!(
                "note: --out {} exists; measuring these points into it needs --resume",
                out.display()
            )),
            "{name}: {err}"
        );
        assert!(snapshot() == before, "{name}: a dry run changed a file");
    }
    // A file of another tool's columns is refused, naming it, as a real resume would.
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "a,b\n1,2\n").unwrap();
    let o = run(measure(
        &[
            "--inputs",
            "64",
            "--outputs",
            "64",
            "--gpu-mem-gib",
            "80",
            "--dry-run",
            "--resume",
            "--out",
            other.to_str().unwrap(),
        ],
        None,
    ));
    assert!(
        !o.status.success()
            && stderr(&o).contains(&format!(
                "--resume: {} has columns \"a,b\"",
                other.display()
            )),
        "{}",
        stderr(&o)
    );
}
