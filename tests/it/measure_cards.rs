//! Which card measured a row: `measure` writes the GPU's UUID (`gpu_uuid`), `--resume` warns when
//! it appends to rows of another card, files of an earlier `measure` without the column still
//! resume in their own columns, and `fit --by gpu_uuid` fits the cards apart. The stand-in meter
//! names its cards `stand-in-GPU-<index>`; the other cards' ids here are made up, and energies
//! are synthetic (stand-in sleep time, or generated from known coefficients).

use energy_fit::analytic::model_by_name;
use energy_fit::dataset::synthetic::{grid, write_csv, GRID};
use energy_fit::measure::writer::card_warning;
use energy_fit::measure::{read_rows, Row, COLUMNS};
use std::path::{Path, PathBuf};

use crate::common::{ef, text, LLAMA, QUICK};

const OTHER: &str = "GPU-00000000-synthetic-other-card";

/// `energy-fit measure` on the stand-in with QUICK and `args`; asserts success, returns stderr.
fn measure(args: &[&str]) -> String {
    let mut all = vec!["measure"];
    all.extend(QUICK);
    all.extend(args);
    let o = ef(&all);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn measured_rows_name_their_card() {
    let d = tempfile::tempdir().unwrap();
    for name in ["m.csv", "m.parquet"] {
        let out = d.path().join(name);
        let grid = ["--inputs", "64,128", "--outputs", "64", "--requests", "2"];
        measure(&[&grid[..], &["--gpus", "0,1", "--out", s(&out)]].concat());
        let rows = read_rows(&out).unwrap();
        assert_eq!(rows.len(), 2, "{name}");
        for r in &rows {
            let gpu = r.gpu_index.unwrap();
            assert_eq!(r.gpu_uuid, format!("stand-in-GPU-{gpu}"), "{name}: {r:?}");
        }
    }
    let header = std::fs::read_to_string(d.path().join("m.csv")).unwrap();
    assert!(header.lines().next().unwrap().ends_with(",gpu_uuid"));
}

/// Resuming rows of another card warns once, naming both cards and the file, and measures on;
/// `--plan ... --resume` warns the same; a file that holds rows of this card already does not.
#[test]
fn resuming_onto_another_card_warns() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.csv");
    let one = ["--inputs", "64", "--outputs", "64", "--requests", "2"];
    let err = measure(&[&one[..], &["--out", s(&out)]].concat());
    assert!(!err.contains("warning"), "{err}");
    // Same card: no warning.
    let two = ["--inputs", "64", "--outputs", "64,128", "--requests", "2"];
    let err = measure(&[&two[..], &["--out", s(&out), "--resume"]].concat());
    assert!(!err.contains("warning"), "{err}");

    // The file's rows measured elsewhere: rewrite their card's id.
    let before = std::fs::read_to_string(&out).unwrap();
    assert_eq!(before.matches("stand-in-GPU-0").count(), 2);
    std::fs::write(&out, before.replace("stand-in-GPU-0", OTHER)).unwrap();
    let three = [
        "--inputs",
        "64",
        "--outputs",
        "64,128,256",
        "--requests",
        "2",
    ];
    let err = measure(&[&three[..], &["--out", s(&out), "--resume"]].concat());
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    let w = warnings[0];
    for needle in [
        s(&out),
        OTHER,
        "stand-in-GPU-0",
        "several percent",
        "fit --by gpu_uuid",
    ] {
        assert!(w.contains(needle), "{w:?} lacks {needle:?}");
    }
    let rows = read_rows(&out).unwrap();
    let cards: Vec<&str> = rows.iter().map(|r| r.gpu_uuid.as_str()).collect();
    assert_eq!(cards, [OTHER, OTHER, "stand-in-GPU-0"]);

    // Once the file holds this card's rows too, this card is no news: no warning.
    let err = measure(&[&three[..], &["--out", s(&out), "--resume"]].concat());
    assert!(!err.contains("warning"), "{err}");

    // `--plan ... --resume` onto rows of the other card alone warns the same.
    let before = std::fs::read_to_string(&out).unwrap();
    std::fs::write(&out, before.replace("stand-in-GPU-0", OTHER)).unwrap();
    let plan = d.path().join("plan.csv");
    let four = [
        "--inputs",
        "64",
        "--outputs",
        "64,128,256,512",
        "--requests",
        "2",
    ];
    let mut dry = vec!["measure", "--dry-run", "--plan-csv", s(&plan)];
    dry.extend(four);
    let o = ef(&dry);
    assert!(o.status.success(), "{}", text(&o));
    let err = measure(&["--plan", s(&plan), "--out", s(&out), "--resume"]);
    assert_eq!(err.matches("warning").count(), 1, "{err}");
    assert!(
        err.contains(OTHER) && err.contains("fit --by gpu_uuid"),
        "{err}"
    );
    assert_eq!(read_rows(&out).unwrap().len(), 4);
}

fn row(uuid: &str, ok: bool) -> Row {
    Row {
        llm: "synthetic".into(),
        gpu_uuid: uuid.into(),
        status: if ok {
            energy_fit::dataset::schema::Status::Ok
        } else {
            energy_fit::dataset::schema::Status::skipped("synthetic failure")
        },
        ..Row::default()
    }
}

/// Only `ok` rows with a known card count, and only a card none of them was measured on warns.
#[test]
fn card_warning_needs_a_new_card_beside_known_ok_rows() {
    let f = Path::new("f.csv");
    let cards = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert!(card_warning(&[], &cards(&["GPU-b"]), f).is_none());
    assert!(card_warning(&[row("", true)], &cards(&["GPU-b"]), f).is_none());
    assert!(card_warning(&[row("GPU-a", false)], &cards(&["GPU-b"]), f).is_none());
    let mixed = [row("GPU-a", true), row("GPU-b", true)];
    assert!(card_warning(&mixed, &cards(&["GPU-a", "GPU-b"]), f).is_none());
    let w = card_warning(&mixed, &cards(&["GPU-b", "GPU-c"]), f).unwrap();
    assert!(
        w.starts_with("warning: f.csv: ") && w.contains("GPU-a, GPU-b") && !w.contains('\n'),
        "{w}"
    );
    assert!(w.contains("measures on GPU-c;"), "{w}");
}

/// A file written before `gpu_uuid` existed (the shipped Qwen2-7B data) resumes in its own
/// columns: its lines stay byte for byte, the new row has as many fields, nothing warns, and the
/// file still loads for `fit` and merges with a file that has the column.
#[test]
fn a_file_without_the_column_resumes_in_its_own_columns() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("qwen.csv");
    let original = std::fs::read(repo_file("data/qwen2-7b-h100.csv")).unwrap();
    std::fs::write(&out, &original).unwrap();
    let header = String::from_utf8_lossy(&original)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(!header.contains("gpu_uuid"));
    let old_width = header.split(',').count();
    assert_eq!(&COLUMNS[..old_width].join(","), &header);

    let point = ["--llm", "qwen2-7b", "--inputs", "64", "--outputs", "64"];
    let err = measure(
        &[
            &point[..],
            &["--requests", "2", "--out", s(&out), "--resume"],
        ]
        .concat(),
    );
    assert!(!err.contains("warning"), "{err}");
    assert!(err.contains("without gpu_uuid"), "{err}");
    let now = std::fs::read(&out).unwrap();
    assert_eq!(
        &now[..original.len()],
        &original[..],
        "an existing line changed"
    );
    let added = String::from_utf8_lossy(&now[original.len()..]).into_owned();
    assert_eq!(added.lines().count(), 1, "{added}");
    let rows = read_rows(&out).unwrap();
    let new = rows.last().unwrap();
    assert_eq!((new.requests, new.gpu_uuid.as_str()), (2, ""));
    assert!(new.status.is_ok(), "{new:?}");
    assert_eq!(
        energy_fit::measure::rows::split_csv(added.trim_end()).len(),
        old_width
    );

    // Beside a file that has the column, loaded for fitting or merged: the union of both
    // files' columns, empty where the old file lacks it.
    let with = d.path().join("with.csv");
    measure(&[&point[..], &["--requests", "3", "--out", s(&with)]].concat());
    let ds = energy_fit::dataset::Dataset::load(&[out.clone(), with.clone()]).unwrap();
    let col = ds.df.column("gpu_uuid").unwrap();
    assert_eq!((ds.df.height(), col.null_count()), (25, 24));
    let merged = d.path().join("merged.csv");
    let o = ef(&["merge", s(&out), s(&with), "--out", s(&merged)]);
    assert!(o.status.success(), "{}", text(&o));
    let rows = read_rows(&merged).unwrap();
    assert_eq!(rows.len(), 25);
    let cards: Vec<&str> = rows.iter().map(|r| r.gpu_uuid.as_str()).collect();
    assert!(cards[..24].iter().all(|c| c.is_empty()), "{cards:?}");
    assert_eq!(cards[24], "stand-in-GPU-0");
}

/// A Parquet file's journal of an earlier `measure` is brought to today's columns on resume (the
/// Parquet file is rewritten on every append anyway), so its new rows name their card.
#[test]
fn an_earlier_parquet_journal_gains_the_column() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m.parquet");
    let journal = d.path().join("m.parquet.journal.csv");
    let qwen = std::fs::read_to_string(repo_file("data/qwen2-7b-h100.csv")).unwrap();
    std::fs::write(
        &journal,
        qwen.lines().take(3).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let args = ["--llm", "qwen2-7b", "--inputs", "64", "--outputs", "64"];
    let err = measure(
        &[
            &args[..],
            &["--requests", "2", "--out", s(&out), "--resume"],
        ]
        .concat(),
    );
    assert!(!err.contains("warning") && !err.contains("note"), "{err}");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
    let rows = read_rows(&out).unwrap();
    let cards: Vec<&str> = rows.iter().map(|r| r.gpu_uuid.as_str()).collect();
    assert_eq!(cards, ["", "", "stand-in-GPU-0"]);
    assert_eq!(read_rows(&journal).unwrap(), rows);
}

/// `fit --by gpu_uuid` fits two cards apart: synthetic rows of one LLM, the second card drawing
/// 5 % more energy, give one fit per card whose coefficients differ by that factor; without
/// `--by` they are one fit.
#[test]
fn fit_by_gpu_uuid_fits_the_cards_apart() {
    let d = tempfile::tempdir().unwrap();
    let fm = model_by_name("flops-mem").unwrap();
    let plain = d.path().join("plain.csv");
    write_csv(
        &plain,
        "llama",
        &grid(fm.as_ref(), &LLAMA, &GRID, &GRID, 0.0, 1),
        1000,
    )
    .unwrap();
    let csv = std::fs::read_to_string(&plain).unwrap();
    let mut out = format!("{},gpu_uuid\n", csv.lines().next().unwrap());
    for (card, scale) in [("GPU-synthetic-a", 1.0), ("GPU-synthetic-b", 1.05)] {
        for l in csv.lines().skip(1) {
            let mut f: Vec<String> = l.split(',').map(String::from).collect();
            f[4] = format!("{:.9e}", f[4].parse::<f64>().unwrap() * scale);
            out.push_str(&format!("{},{card}\n", f.join(",")));
        }
    }
    let two = d.path().join("two-cards.csv");
    std::fs::write(&two, out).unwrap();
    let fit = |by: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "fit",
            s(&two),
            "--model",
            "flops-mem",
            "--no-write",
            "--json",
        ];
        args.extend(by);
        let o = ef(&args);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = fit(&["--by", "gpu_uuid"]);
    let fits = v["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 2, "{v}");
    let groups: Vec<String> = fits.iter().map(|f| f["group"].to_string()).collect();
    assert!(groups[0].contains("GPU-synthetic-a"), "{groups:?}");
    assert!(groups[1].contains("GPU-synthetic-b"), "{groups:?}");
    let alpha = |f: &serde_json::Value| f["coefficients"]["alpha"].as_f64().unwrap();
    let ratio = alpha(&fits[1]) / alpha(&fits[0]);
    assert!((ratio - 1.05).abs() < 1e-3, "alpha ratio {ratio}");
    assert_eq!(fit(&[])["fits"].as_array().unwrap().len(), 1);
}

/// A CSV whose header is not today's columns nor the first of them (columns reordered, or too few
/// to hold the required ones) is refused on resume, naming the file and its header, and left as
/// it was.
#[test]
fn resume_refuses_a_header_that_is_no_earlier_schema() {
    let d = tempfile::tempdir().unwrap();
    let mut swapped: Vec<&str> = COLUMNS.to_vec();
    swapped.swap(1, 2);
    for (name, header) in [
        ("swapped.csv", swapped.join(",")),
        ("short.csv", COLUMNS[..3].join(",")),
    ] {
        let out = d.path().join(name);
        let before = format!("{header}\n");
        std::fs::write(&out, &before).unwrap();
        let mut all = vec!["measure"];
        all.extend(QUICK);
        all.extend(["--inputs", "64", "--outputs", "64", "--requests", "2"]);
        all.extend(["--resume", "--out", s(&out)]);
        let o = ef(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name}: {}", text(&o));
        assert!(
            err.contains(name) && err.contains("has columns"),
            "{name}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), before, "{name}");
    }
}
