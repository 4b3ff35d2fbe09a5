//! `fit` reports each hold-out row's signed error, in the JSON fit files, in `--json` and in the
//! text table, on a SYNTHETIC file generated from known flops-mem coefficients: the fitted rows
//! are exact, so the fit recovers the coefficients and each hold-out's error is the known factor
//! its energy was scaled by.

use energy_fit::dataset::synthetic::{grid, write_csv, GRID};
use energy_fit::fit::file::FitFile;

use crate::cli_fit::run;
use crate::common::LLAMA;
use energy_fit::analytic::FlopsMem;

/// (n, m, measured energy ÷ the model's): the fit predicts 1/f − 1 off at each.
const HELD: [(f64, f64, f64); 3] = [
    (64.0, 2048.0, 1.05),
    (2048.0, 128.0, 0.98),
    (4096.0, 4096.0, 1.0),
];

#[test]
fn holdout_errors_are_signed_per_point() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("synthetic-held.csv");
    let obs = grid(&FlopsMem, &LLAMA, &GRID, &GRID, 0.0, 1);
    write_csv(&csv, "held", &obs, 1000).unwrap();
    // Add the role column: the HELD points are hold-outs, their energies scaled.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{},role\n", lines.next().unwrap());
    for (line, o) in lines.zip(&obs) {
        let held = HELD
            .iter()
            .find(|h| (h.0, h.1) == (o.input_tokens, o.output_tokens));
        let mut f: Vec<String> = line.split(',').map(String::from).collect();
        let role = match held {
            Some(&(_, _, k)) => {
                f[4] = format!("{:.9e}", f[4].parse::<f64>().unwrap() * k);
                "holdout"
            }
            None => "design",
        };
        out.push_str(&format!("{},{role}\n", f.join(",")));
    }
    std::fs::write(&csv, out).unwrap();

    let fit = |extra: &[&str]| {
        let mut args = vec![
            "fit",
            "synthetic-held.csv",
            "--model",
            "flops-mem",
            "--cv",
            "0",
        ];
        args.extend(extra);
        let (ok, stdout, err) = run(dir.path(), &args);
        assert!(ok, "{err}");
        stdout
    };
    let stdout = fit(&["--out", "fits"]);
    let file = FitFile::read(&dir.path().join("fits/synthetic-held.flops-mem.json")).unwrap();
    let errs = &file.metrics.holdout_errors;
    assert_eq!(errs.len(), HELD.len());
    for (e, &(n, m, k)) in errs.iter().zip(&HELD) {
        assert_eq!((e.input_tokens, e.output_tokens), (n, m));
        let want = 100.0 * (1.0 / k - 1.0);
        assert!(
            (e.error_pct - want).abs() < 1e-6,
            "{n}x{m}: {e:?}, want {want}"
        );
        let rel = (e.predicted_energy_per_token_j - e.energy_per_token_j) / e.energy_per_token_j;
        assert!((100.0 * rel - e.error_pct).abs() < 1e-9, "{e:?}");
    }
    // Their MAPE is the hold-out MAPE.
    let mape = errs.iter().map(|e| e.error_pct.abs()).sum::<f64>() / errs.len() as f64;
    assert!((file.metrics.holdout_mape_pct.unwrap() - mape).abs() < 1e-9);
    // The text table: one signed row per hold-out, (64, 2048) predicted low.
    let row = stdout
        .lines()
        .find(|l| l.starts_with("synthetic-held") && l.contains(" 2048 ") && l.contains("-4.76"))
        .unwrap_or_else(|| panic!("no (64, 2048) row:\n{stdout}"));
    assert!(row.split_whitespace().nth(1) == Some("64"), "{row}");
    assert!(stdout.contains("+2.04"), "{stdout}");

    // --json carries the same list.
    let stdout = fit(&["--no-write", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let list = v["fits"][0]["holdout_errors"].as_array().unwrap();
    assert_eq!(list.len(), HELD.len());
    assert!((list[0]["error_pct"].as_f64().unwrap() - errs[0].error_pct).abs() < 1e-12);
}
