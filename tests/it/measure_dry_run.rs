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

/// `--dry-run --resume` prints the pace of the rows --out holds: their measured windows against
/// the plan's estimate of one run times the runs each window held, over all cards and per card,
/// and the estimate of the points left scaled by it. The stand-in's file is rewritten so each
/// window is a known multiple of its estimate (1.5× on one card, 2× on another); the expected
/// numbers come from the plan file's `est_s` cells. The measuring run's last line gives the pace of
/// its own windows the same way.
#[test]
fn dry_run_with_resume_prints_the_pace_of_the_measured_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (out, plan_csv) = (dir.path().join("m.csv"), dir.path().join("plan.csv"));
    let grid = |outputs: &'static str| {
        vec![
            "--inputs",
            "64,128,256",
            "--outputs",
            outputs,
            "--requests",
            "2",
        ]
    };
    let o = run(measure(
        &[grid("64"), vec!["--out", out.to_str().unwrap()]].concat(),
        Some(""),
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let dry = |extra: &[&str]| {
        let args = [
            grid("64,128"),
            vec!["--gpu-mem-gib", "80", "--dry-run"],
            extra.to_vec(),
        ];
        let o = run(measure(&args.concat(), None));
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    dry(&["--plan-csv", plan_csv.to_str().unwrap()]);
    let plan = std::fs::read_to_string(&plan_csv).unwrap();
    let col = |head: &str, name: &str| head.split(',').position(|c| c == name).unwrap();
    let ph = plan.lines().next().unwrap();
    let est = |n: &str, m: &str| -> f64 {
        let l = plan
            .lines()
            .find(|l| l.split(',').nth(1) == Some(n) && l.split(',').nth(2) == Some(m));
        l.unwrap()
            .split(',')
            .nth(col(ph, "est_s"))
            .unwrap()
            .parse()
            .unwrap()
    };
    // Windows of n = 64 and 128 at 1.5× their estimate on card-A, n = 256's at 2× on card-B.
    let text = std::fs::read_to_string(&out).unwrap();
    let head = text.lines().next().unwrap().to_string();
    let (n_at, w_at, runs_at, card_at) = (
        col(&head, "input_tokens"),
        col(&head, "window_s"),
        col(&head, "window_runs"),
        col(&head, "gpu_uuid"),
    );
    // The run's own last line gives the same pace, from its windows as measured.
    let (mut measured, mut estimated, mut stand_in_s) = (0.0, 0.0, 0.0);
    let mut lines = vec![head.clone()];
    for l in text.lines().skip(1) {
        let mut c: Vec<String> = l.split(',').map(String::from).collect();
        let e = est(&c[n_at], "64") * c[runs_at].parse::<f64>().unwrap();
        stand_in_s += c[w_at].parse::<f64>().unwrap();
        let (k, card) = if c[n_at] == "256" {
            (2.0, "card-B")
        } else {
            (1.5, "card-A")
        };
        c[w_at] = format!("{}", k * e);
        c[card_at] = card.into();
        (measured, estimated) = (measured + k * e, estimated + e);
        lines.push(c.join(","));
    }
    let done = format!(
        "({estimated:.0} s estimated for the ok ones: pace {:.2}×)",
        stand_in_s / estimated
    );
    assert!(stderr(&o).contains(&done), "{done}\n{}", stderr(&o));
    std::fs::write(&out, lines.join("\n") + "\n").unwrap();
    let s = dry(&["--resume", "--out", out.to_str().unwrap()]);
    let ratio = measured / estimated;
    let left = ratio
        * ["64", "128", "256"]
            .iter()
            .map(|n| est(n, "128"))
            .sum::<f64>();
    for want in [
        format!(
            "pace so far: 3 of the plan's points in {} took {measured:.0} s of measured windows \
             against {estimated:.0} s estimated, {ratio:.2}× (per point 1.50–2.00×)",
            out.display()
        ),
        "  on card-A: 2 points".into(),
        "  on card-B: 1 point,".into(),
        format!("at that pace the 3 points left take about {left:.0} s of measured windows"),
    ] {
        assert!(s.contains(&want), "{want}\n{s}");
    }
    // Without --resume nothing is read, so there is no pace.
    assert!(!dry(&["--out", out.to_str().unwrap()]).contains("pace"));
}
