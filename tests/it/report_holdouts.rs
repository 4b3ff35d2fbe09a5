//! Hold-out rows in fit's sweet spots and in the report, on the committed Qwen2-1.5B design (21
//! design points, 4 hold-outs, 2 repeats): never fitted, drawn apart in figures 2 and 8 and ringed
//! among the measured cells of figures 1 and 7, their MAPE in its own table, and the measured LLMs
//! beside the published fits of the study's 13. Gemma-2-2B's design measures n = 2048 at a
//! hold-out alone: its measured best and predicted m* there are printed and written, each on its
//! own input length's row.

use energy_fit::cli::report::read_fits;
use energy_fit::dataset::Dataset;
use energy_fit::fit::file::FitFile;
use energy_fit::report::build;
use std::path::{Path, PathBuf};

fn svg_of(out: &Path, r: &energy_fit::report::Report, n: u8) -> String {
    let f = r.figures.iter().find(|f| f.number == n).unwrap();
    std::fs::read_to_string(out.join(f.file.as_ref().unwrap_or_else(|| panic!("{}", f.note))))
        .unwrap()
}

/// Open rings of radius 7 (figure 8's hold-out mark; measured points are radius 5).
fn rings(svg: &str) -> usize {
    roxmltree::Document::parse(svg)
        .unwrap()
        .descendants()
        .filter(|n| {
            n.has_tag_name("circle")
                && n.attribute("r") == Some("7")
                && n.attribute("stroke") == Some("#000000")
        })
        .count()
}

fn labels(svg: &str) -> Vec<String> {
    roxmltree::Document::parse(svg)
        .unwrap()
        .descendants()
        .filter(|n| n.attribute("class") == Some("label"))
        .filter_map(|n| n.attribute("aria-label").map(str::to_string))
        .collect()
}

#[test]
fn holdouts_are_marked_and_reported_apart() {
    let data = PathBuf::from("data/qwen2-1.5b-h100.csv");
    let ds = Dataset::load(&[data]).unwrap();
    let g = &ds.groups(&[]).unwrap()[0];
    assert_eq!((g.obs.len(), g.holdouts.len()), (23, 4));
    let fits = read_fits(Path::new("fits/reference")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = build(Some(&ds), &fits, dir.path()).unwrap();
    // Four rings in figure 8 plus the legend's.
    assert_eq!(rings(&svg_of(dir.path(), &r, 8)), 5);
    // Figures 1 and 7 show every measured point, 21 design points and the 4 hold-outs, ringed.
    for n in [1, 7] {
        let f = r.figures.iter().find(|f| f.number == n).unwrap();
        assert_eq!(f.series, 25, "figure {n}");
        assert_eq!(rings(&svg_of(dir.path(), &r, n)), 5, "figure {n}");
    }
    let l = labels(&svg_of(dir.path(), &r, 2));
    assert_eq!(
        l.iter().filter(|l| *l == "hold-out (not fitted)").count(),
        1,
        "{l:?}"
    );
    let f9 = r.figures.iter().find(|f| f.number == 9).unwrap();
    assert_eq!(
        f9.series, 1,
        "one measured LLM against its published sweet spots"
    );
    let md = &r.markdown;
    let held = md.split("## Hold-out MAPE").nth(1).expect("hold-out table");
    let row = held
        .lines()
        .find(|l| l.starts_with("| qwen2-1.5b"))
        .unwrap();
    assert!(row.contains('.'), "{row}");
    let beside = md
        .split("## Beside the published fits")
        .nth(1)
        .expect("the comparison with the published fits");
    let rows: Vec<&str> = beside
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| ") && !l.starts_with("| LLM") && !l.starts_with("| :"))
        .collect();
    assert_eq!(rows.len(), 14, "13 LLMs and the mean: {rows:?}");
    assert!(rows.iter().any(|l| l.starts_with("| qwen2-1.5b | 27 |")));
}

#[test]
fn sweet_spots_cover_holdout_only_input_lengths_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = [
        "fit",
        "data/superseded/gemma-2-2b-h100-272f368358.csv",
        "--model",
        "flops-mem",
        "--out",
        out,
    ];
    let (ok, stdout, stderr) = crate::common::run_in(root, &args);
    assert!(ok, "{stderr}");
    let file = FitFile::read(&dir.path().join("gemma-2-2b.flops-mem.json")).unwrap();
    let table = stdout
        .split("gemma-2-2b — sweet spots")
        .nth(1)
        .expect("the sweet-spot table");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(3)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), file.sweet_spots.len());
    for r in &rows {
        let n: f64 = r[0].parse().unwrap();
        let s = file
            .sweet_spots
            .iter()
            .find(|s| s.input_tokens == n)
            .unwrap();
        let p = s.predicted_output_tokens.unwrap();
        assert_eq!(r[3], format!("{p:.0}"), "n = {n}: {r:?}");
        assert_eq!(r[1], format!("{}", s.measured_output_tokens.unwrap()));
    }
    // n = 2048 is measured at one hold-out, (2048, 128), and is its input length's best.
    let at = file.sweet_spots.iter().find(|s| s.input_tokens == 2048.0);
    assert_eq!(at.and_then(|s| s.measured_output_tokens), Some(128.0));
}
