//! `energy-fit report` on labelled synthetic data (generated from the published flops-mem
//! coefficients, LLM names prefixed `synthetic-`) and on degenerate inputs: every SVG parses as
//! XML and holds the expected number of series; figures that cannot be drawn are skipped with a
//! reason, never a panic. Intervals: figure 2's bands, figure 8 on a partial grid, and fit files
//! written before intervals existed.

use energy_fit::analytic::FlopsMem;
use energy_fit::cli::report::read_fits;
use energy_fit::dataset::synthetic::{grid, write_csv, GRID};
use energy_fit::dataset::{Dataset, Obs};
use energy_fit::fit::file::{file_name, FitFile};
use energy_fit::fit::{fit_model, FitOptions};
use energy_fit::report::assemble::Figure;
use energy_fit::report::build;
use std::path::{Path, PathBuf};

fn reference() -> Vec<FitFile> {
    read_fits(Path::new("fits/reference")).expect("shipped reference fits")
}

fn coefs(fits: &[FitFile], llm: &str) -> Vec<f64> {
    fits.iter().find(|f| f.llm == llm).unwrap().values()
}

/// Synthetic: e = published flops-mem prediction × `scale`, 2 % noise.
fn synth(
    dir: &Path,
    file: &str,
    llm: &str,
    coefs: &[f64],
    scale: f64,
    requests: u64,
    seed: u64,
) -> PathBuf {
    let obs: Vec<Obs> = grid(&FlopsMem, coefs, &GRID, &GRID, 0.02, seed)
        .into_iter()
        .map(|o| Obs {
            energy_per_token_j: o.energy_per_token_j * scale,
            ..o
        })
        .collect();
    let p = dir.join(file);
    write_csv(&p, llm, &obs, requests).unwrap();
    p
}

fn svg(out: &Path, f: &Figure) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(out.join(f.file.as_ref().unwrap())).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{:?} is not XML: {e}", f.file));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(!text.contains("<text"), "text must be outlines, not <text>");
    let labels = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("label"))
        .filter_map(|n| n.attribute("aria-label").map(str::to_string))
        .collect();
    (text, labels)
}

fn count(text: &str, f: impl Fn(roxmltree::Node) -> bool) -> usize {
    roxmltree::Document::parse(text)
        .unwrap()
        .descendants()
        .filter(|n| f(*n))
        .count()
}

fn figs(r: &[Figure], n: u8) -> Vec<&Figure> {
    r.iter().filter(|f| f.number == n).collect()
}

/// Light fills (a band around a curve) in a figure.
fn bands(text: &str) -> usize {
    count(text, |n| {
        n.has_tag_name("polygon")
            && n.attribute("opacity")
                .and_then(|o| o.parse::<f64>().ok())
                .is_some_and(|o| o < 1.0)
    })
}

/// Measured-point dots of a heatmap: one black ring each.
fn dots(text: &str) -> usize {
    count(text, |n| {
        n.has_tag_name("circle") && n.attribute("stroke") == Some("#000000")
    })
}

/// 15 of the 49 grid points (n = 64, 256, 1024; m = 64 … 1024), two of them measured twice.
fn partial_grid(dir: &Path) -> PathBuf {
    let llama = coefs(&reference(), "llama-3.2-1b");
    let mut obs = grid(
        &FlopsMem,
        &llama,
        &[64.0, 256.0, 1024.0],
        &GRID[..5],
        0.02,
        7,
    );
    obs.extend(grid(&FlopsMem, &llama, &[256.0], &[128.0, 512.0], 0.02, 8));
    let p = dir.join("partial.csv");
    write_csv(&p, "llama-3.2-1b", &obs, 1000).unwrap();
    p
}

#[test]
fn synthetic_report_has_every_figure_with_expected_series() {
    let dir = tempfile::tempdir().unwrap();
    let refs = reference();
    let llama = coefs(&refs, "llama-3.2-1b");
    let opt = coefs(&refs, "opt-1.3b");
    // synthetic-llama-3.2-1b spends 1.25× the published energy → ratio to the reference ≈ 0.8.
    let files = vec![
        synth(dir.path(), "a.csv", "llama-3.2-1b", &llama, 1.25, 1000, 1),
        synth(dir.path(), "b.csv", "llama-3.2-1b", &llama, 1.40, 256, 2),
        synth(dir.path(), "c.csv", "opt-1.3b", &opt, 1.0, 1000, 3),
    ];
    let ds = Dataset::load(&files).unwrap();
    let out = dir.path().join("report");
    let r = build(Some(&ds), &refs, &out).unwrap();
    for n in 1..=8u8 {
        assert!(
            figs(&r.figures, n).iter().any(|f| f.file.is_some()),
            "figure {n} missing: {:?}",
            figs(&r.figures, n)
                .iter()
                .map(|f| &f.note)
                .collect::<Vec<_>>()
        );
    }
    // Figure 1: 49 cells (+120 colour-bar steps) and 7 marked sweet spots.
    for f in figs(&r.figures, 1) {
        let (text, _) = svg(&out, f);
        let filled = count(&text, |n| {
            n.has_tag_name("rect")
                && n.attribute("stroke") == Some("none")
                && n.attribute("fill") != Some("#FFFFFF")
        });
        assert_eq!(filled, 49 + 120, "{:?}", f.file);
        assert_eq!(f.series, 49);
        assert_eq!(
            count(&text, |n| n.has_tag_name("rect")
                && n.attribute("stroke") == Some("#000000")),
            7 + 1,
            "7 marks + legend box"
        );
    }
    // Figure 2: one legend entry per input length, six models and the measured points.
    for f in figs(&r.figures, 2) {
        let (text, labels) = svg(&out, f);
        for n in GRID {
            assert!(
                labels.contains(&format!("n = {n}")),
                "{:?} lacks n = {n}",
                f.file
            );
        }
        for m in [
            "b1",
            "b2",
            "b3",
            "b4",
            "flops",
            "flops-mem",
            "measured",
            "predicted m*",
        ] {
            assert!(
                labels.iter().any(|l| l == m),
                "{:?} lacks legend {m}",
                f.file
            );
        }
        // Left: 7 point sets + 7 curves + crosses; right: measured + 6 models.
        assert!(f.series >= 7 + 7 + 1 + 6, "{}", f.series);
        let circles = count(&text, |n| n.has_tag_name("circle"));
        assert_eq!(
            circles,
            49 + 7 + 7 + 1,
            "points: 49 measured + 7 at n=512 + legend dots"
        );
        // The fit's 95 % band: one light fill per input length.
        assert_eq!(bands(&text), 7, "{:?}", f.file);
        assert!(labels.iter().any(|l| l == "95 % band of the fit"));
        assert!(labels.iter().any(|l| l == "95 % interval of m*"));
    }
    // Figure 8: every cell of the 7 × 7 grid and a dot per measured point (+ the legend's). The
    // two llama files differ in requests, so each is its own subject (not repeats of each other).
    let f8 = figs(&r.figures, 8);
    assert_eq!(f8.len(), 3);
    assert!(f8.iter().any(|f| f.title.contains("requests=256")));
    for f in f8 {
        let (text, labels) = svg(&out, f);
        assert_eq!(f.series, 49);
        assert_eq!(dots(&text), 49 + 1, "{:?}", f.file);
        assert_eq!(labels.iter().filter(|l| *l == "×2").count(), 0);
    }
    assert!(r.markdown.contains("## Where the fit is least sure"));
    assert!(r.markdown.contains("every grid point is measured"));
    // Figure 4: 3 subjects (llama at two requests values, opt) × 6 models × 2 panels
    // (in-sample, CV) bars + 6 legend swatches.
    let f4 = figs(&r.figures, 4)[0];
    let (text, labels) = svg(&out, f4);
    assert_eq!(f4.series, 36);
    let bars = count(&text, |n| {
        n.has_tag_name("rect")
            && n.attribute("stroke") == Some("none")
            && n.attribute("fill") != Some("#FFFFFF")
    });
    assert_eq!(bars, 36 + 6);
    assert!(labels.iter().any(|l| l == "synthetic-opt-1.3b"));
    // Figure 5: every row twice (against n and against m) + a legend dot per subject and panel.
    let f5 = figs(&r.figures, 5)[0];
    let (text, _) = svg(&out, f5);
    assert_eq!(
        count(&text, |n| n.has_tag_name("circle")),
        2 * 3 * 49 + 2 * 3
    );
    // Figure 6: llama has requests 256 and 1000 → two panels of seven lines.
    let f6: Vec<_> = figs(&r.figures, 6)
        .into_iter()
        .filter(|f| f.file.is_some())
        .collect();
    assert_eq!(f6.len(), 1, "only requests varies, only for llama");
    let (_, labels) = svg(&out, f6[0]);
    assert!(
        labels.contains(&"requests = 256".to_string())
            && labels.contains(&"requests = 1000".to_string())
    );
    assert_eq!(f6[0].series, 14);
    // Figure 7: ratio near 1/1.40 for llama at requests 256 (the second file, its own subject).
    let f7: Vec<_> = figs(&r.figures, 7)
        .into_iter()
        .filter(|f| f.file.is_some())
        .collect();
    assert_eq!(f7.len(), 3, "both synthetic LLMs are in the reference set");
    let (_, labels) = svg(
        &out,
        f7.iter()
            .find(|f| f.title.contains("requests=256"))
            .unwrap(),
    );
    // Cell labels (2 decimals) near 0.714; colour-bar ticks are few.
    let cells: Vec<f64> = labels
        .iter()
        .filter_map(|l| l.parse::<f64>().ok())
        .filter(|v| (0.65..0.77).contains(v))
        .collect();
    assert!(cells.len() >= 49, "{labels:?}");
    let mean = cells.iter().sum::<f64>() / cells.len() as f64;
    assert!((mean - 1.0 / 1.40).abs() < 0.02, "mean ratio {mean}");
    // report.md holds the tables and embeds every written figure.
    for h in [
        "## Dataset",
        "## In-sample MAPE",
        "## Cross-validated MAPE",
        "## flops-mem coefficients",
        "## Sweet spots",
    ] {
        assert!(r.markdown.contains(h), "report.md lacks {h}");
    }
    assert!(
        r.markdown.contains(r"\*\*\*"),
        "escaped stars in the coefficient table"
    );
    for f in r.figures.iter().filter_map(|f| f.file.as_ref()) {
        assert!(r.markdown.contains(&format!("]({f})")));
    }
    // To look at this labelled synthetic report: ENERGY_FIT_REPORT_DEMO=/tmp/demo cargo test --test it report_figures
    if let Ok(d) = std::env::var("ENERGY_FIT_REPORT_DEMO") {
        build(Some(&ds), &refs, Path::new(&d)).unwrap();
    }
}

#[test]
fn reference_fits_alone() {
    let dir = tempfile::tempdir().unwrap();
    let r = build(None, &reference(), dir.path()).unwrap();
    assert_eq!(
        figs(&r.figures, 1)
            .iter()
            .filter(|f| f.file.is_some())
            .count(),
        13
    );
    let f4 = figs(&r.figures, 4)[0];
    assert_eq!(f4.series, 13 * 6);
    svg(dir.path(), f4);
    assert!(r
        .markdown
        .contains("published TensorRT-LLM reference fits alone"));
    assert!(figs(&r.figures, 5)[0].file.is_none());
    // Published fits carry no covariance: no bands, no figure 8.
    for f in figs(&r.figures, 2) {
        assert_eq!(
            bands(&std::fs::read_to_string(dir.path().join(f.file.as_ref().unwrap())).unwrap()),
            0
        );
    }
    assert!(figs(&r.figures, 8).iter().all(|f| f.file.is_none()));
}

fn csv(dir: &Path, rows: &[(&str, u32, u32, f64)]) -> PathBuf {
    let mut s = String::from("llm,input_tokens,output_tokens,requests,energy_j\n");
    for (l, n, m, e) in rows {
        s.push_str(&format!("{l},{n},{m},10,{e}\n"));
    }
    let p = dir.join("d.csv");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn one_point_per_llm_skips_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let p = csv(
        dir.path(),
        &[
            ("synthetic-a", 64, 64, 100.0),
            ("synthetic-b", 128, 64, 200.0),
        ],
    );
    let ds = Dataset::load(&[p]).unwrap();
    let r = build(Some(&ds), &[], &dir.path().join("out")).unwrap();
    for f in figs(&r.figures, 1) {
        assert!(
            f.file.is_none() && f.note.contains("fewer than two grid points"),
            "{}",
            f.note
        );
    }
    for f in figs(&r.figures, 2) {
        assert!(
            f.file.is_none() && f.note.contains("no flops-mem fit"),
            "{}",
            f.note
        );
    }
    assert!(figs(&r.figures, 3)[0].note.contains("at least two LLMs"));
    assert!(figs(&r.figures, 5)[0].file.is_none());
    assert!(r.markdown.contains("skipped"));
}

#[test]
fn one_input_length_draws_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<(&str, u32, u32, f64)> = [64u32, 128, 256, 512, 1024]
        .iter()
        .map(|&m| {
            (
                "synthetic-a",
                512,
                m,
                10.0 * m as f64 * (0.05 + 1e-5 * m as f64),
            )
        })
        .collect();
    let ds = Dataset::load(&[csv(dir.path(), &rows)]).unwrap();
    let out = dir.path().join("out");
    let r = build(Some(&ds), &[], &out).unwrap();
    let f1 = figs(&r.figures, 1)[0];
    assert_eq!(f1.series, 5);
    svg(&out, f1);
    let f2 = figs(&r.figures, 2)[0];
    assert!(
        f2.file.is_none() && f2.note.contains("flops-mem"),
        "{}",
        f2.note
    );
}

#[test]
fn no_data_and_no_fits() {
    let dir = tempfile::tempdir().unwrap();
    let r = build(None, &[], dir.path()).unwrap();
    assert!(r.figures.iter().all(|f| f.file.is_none()));
    assert!(r.markdown.contains("no data and no fits"));
}

#[test]
fn partial_grid_maps_where_the_fit_is_least_sure() {
    let dir = tempfile::tempdir().unwrap();
    let ds = Dataset::load(&[partial_grid(dir.path())]).unwrap();
    let out = dir.path().join("out");
    let r = build(Some(&ds), &[], &out).unwrap();
    let f8 = figs(&r.figures, 8);
    assert_eq!(f8.len(), 1);
    let f8 = f8[0];
    assert_eq!(
        f8.file.as_deref(),
        Some("fig8-design-synthetic-llama-3.2-1b.svg"),
        "{}",
        f8.note
    );
    let (text, labels) = svg(&out, f8);
    // The whole published grid is coloured, measured or not.
    assert_eq!(f8.series, 49);
    assert_eq!(dots(&text), 15 + 1, "15 distinct measured points + legend");
    assert_eq!(labels.iter().filter(|l| *l == "×2").count(), 2);
    // Extrapolating to n = 4096 is far less sure than the measured points.
    let line = r
        .markdown
        .lines()
        .find(|l| l.starts_with("- synthetic-llama-3.2-1b:"))
        .expect("a line on figure 8 in report.md");
    assert!(
        line.contains("widest of the 34 unmeasured points: n = 4096"),
        "{line}"
    );
    assert!(r
        .markdown
        .contains("](fig8-design-synthetic-llama-3.2-1b.svg)"));
    // Figure 2 still draws a band for each of the three input lengths, and m*'s intervals.
    let f2 = figs(&r.figures, 2)[0];
    let (text, _) = svg(&out, f2);
    assert_eq!(bands(&text), 3);
    assert!(r.markdown.contains("[95 % interval]"));
    assert!(
        r.markdown
            .lines()
            .any(|l| l.starts_with("| synthetic-llama-3.2-1b | 64 |")
                && l.contains(" [")
                && l.contains("] |")),
        "m* with its interval in the sweet-spot table"
    );
}

#[test]
fn fit_file_without_covariance_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    let ds = Dataset::load(&[partial_grid(dir.path())]).unwrap();
    let g = ds.groups(&[]).unwrap().remove(0);
    let fit = fit_model(&FlopsMem, &g.obs, &FitOptions::default()).unwrap();
    // As written before intervals existed: no covariance, no interval keys.
    let mut old = FitFile::from_fit(&fit, &FlopsMem, &g, &ds, Some(5));
    old.uncertainty = None;
    old.coefficients.iter_mut().for_each(|c| c.ci95 = None);
    old.sweet_spots
        .iter_mut()
        .for_each(|s| s.predicted_output_tokens_ci95 = None);
    let fits_dir = dir.path().join("fits");
    old.write(&fits_dir.join(file_name(&g, "flops-mem")))
        .unwrap();
    let text = std::fs::read_to_string(fits_dir.join(file_name(&g, "flops-mem"))).unwrap();
    assert!(!text.contains("uncertainty") && !text.contains("ci95"));
    let fits = read_fits(&fits_dir).unwrap();
    let out = dir.path().join("out");
    let r = build(Some(&ds), &fits, &out).unwrap();
    // The file was used (flops-mem is not refitted), without intervals.
    let here = r
        .markdown
        .lines()
        .find(|l| l.starts_with("No matching fit file for:"))
        .unwrap();
    assert!(
        here.contains("(b1, b2, b3, b4, flops)"),
        "only the five models without a file are fitted: {here}"
    );
    let f2 = figs(&r.figures, 2)[0];
    assert!(f2.file.is_some(), "{}", f2.note);
    assert!(f2.note.contains("no covariance"), "{}", f2.note);
    let (text, labels) = svg(&out, f2);
    assert_eq!(bands(&text), 0);
    assert!(!labels.iter().any(|l| l == "95 % band of the fit"));
    let f8 = figs(&r.figures, 8)[0];
    assert!(
        f8.file.is_none() && f8.note.contains("no covariance"),
        "{}",
        f8.note
    );
    assert!(!r.markdown.contains("## Where the fit is least sure"));
    assert!(r
        .markdown
        .contains("skipped: the flops-mem fit file carries no covariance"));
    let row = r
        .markdown
        .lines()
        .find(|l| l.starts_with("| synthetic-llama-3.2-1b | 64 |"))
        .unwrap();
    assert!(!row.contains(" ["), "m* alone without a covariance: {row}");
}

/// A budgeted design (15 of 49 points) beside a full grid: figure 3 averages them over the whole
/// grid, the design through its flops-mem fit, and says so, instead of shrinking to the cells both
/// measured.
#[test]
fn aggregate_takes_designs_through_their_fits() {
    let dir = tempfile::tempdir().unwrap();
    let refs = reference();
    let opt = coefs(&refs, "opt-1.3b");
    let files = vec![
        partial_grid(dir.path()),
        synth(dir.path(), "c.csv", "opt-1.3b", &opt, 1.0, 1000, 3),
    ];
    let ds = Dataset::load(&files).unwrap();
    let out = dir.path().join("out");
    let r = build(Some(&ds), &[], &out).unwrap();
    let f3 = figs(&r.figures, 3)[0];
    assert!(f3.file.is_some(), "{}", f3.note);
    assert_eq!(f3.series, 49, "{}", f3.title);
    assert!(
        f3.title
            .contains("mean over 2 LLMs (1 through their flops-mem fits)"),
        "{}",
        f3.title
    );
}
