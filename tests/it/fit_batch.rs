//! flops-mem-batch on labelled synthetic data (`synthetic-llama-3.1-8b`: generated from known
//! coefficients with llama-3.1-8b's concurrency, whose shape the label names): recovery of the
//! coefficients, the fit file carrying its run settings for predict, and the errors.

use crate::common::{ef, text};
use energy_fit::analytic::flops_mem_batch::{concurrency_of, FlopsMemBatch, Settings};
use energy_fit::analytic::EnergyModel;
use energy_fit::dataset::synthetic::{grid, write_csv, GRID};
use energy_fit::fit::{fit_model, FitOptions};

/// flops-mem's 8B coefficients (J/request terms) plus a shared per-step η.
const TRUE: [f64; 7] = [1.6e-2, 3.9e-7, 3.3e-5, 1.5e-2, 1.9e-5, 0.17, 2.2];

fn settings() -> Settings {
    Settings {
        requests: 1000,
        max_batch_size: 1024,
        max_num_tokens: 8192,
        dtype_bytes: 2,
        gpu_memory_bytes: 80.0 * (1u64 << 30) as f64,
    }
}

fn model() -> FlopsMemBatch {
    let cfg = energy_fit::llm::resolve_llm("llama-3.1-8b").unwrap();
    FlopsMemBatch::new(concurrency_of(&cfg, settings()).unwrap())
}

/// From the 49 points at 0.5 % noise, η comes back within 10 % and every prediction within 1 %.
#[test]
fn recovers_known_coefficients() {
    let m = model();
    let obs = grid(&m, &TRUE, &GRID, &GRID, 0.005, 3);
    let f = fit_model(&m, &obs, &FitOptions::default()).unwrap();
    let eta = f.coefficients[6].value;
    assert!((eta / TRUE[6] - 1.0).abs() < 0.1, "eta {eta}");
    assert!(f.coefficients[6].p_value < 1e-3);
    for o in &obs {
        let p = m.energy_per_token(&f.values(), o.input_tokens, o.output_tokens);
        let t = m.energy_per_token(&TRUE, o.input_tokens, o.output_tokens);
        assert!((p / t - 1.0).abs() < 0.01, "{o:?}");
    }
}

/// `fit --model flops-mem-batch` writes the run settings into the fit file, and `predict` rebuilds
/// the same concurrency from them; rows of a second requests value join the same fit (the model
/// spans requests), and its settings name the largest.
#[test]
fn fit_file_carries_the_settings_and_spans_requests() {
    let d = tempfile::tempdir().unwrap();
    let csv = d.path().join("b.csv");
    let m = model();
    write_csv(
        &csv,
        "llama-3.1-8b",
        &grid(&m, &TRUE, &GRID, &GRID, 0.005, 4),
        1000,
    )
    .unwrap();
    let out = d.path().join("fits");
    let (csv_s, out_s) = (csv.to_str().unwrap(), out.to_str().unwrap());
    let o = ef(&["fit", csv_s, "--model", "flops-mem-batch", "--out", out_s]);
    assert!(o.status.success(), "{}", text(&o));
    let file = out.join("synthetic-llama-3.1-8b.flops-mem-batch.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(v["batch"]["settings"]["requests"], 1000);
    let o = ef(&[
        "predict",
        "--fit",
        file.to_str().unwrap(),
        "--input",
        "512",
        "--output",
        "4096",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let truth = m.energy_per_token(&TRUE, 512.0, 4096.0);
    let e = p["energy_per_token_j"].as_f64().unwrap();
    assert!((e / truth - 1.0).abs() < 0.02, "{e} vs {truth}");

    // A flops-mem-batch fit file without its run settings cannot rebuild c: the error says so.
    let bare = d.path().join("bare.json");
    let mut j = v.clone();
    j.as_object_mut().unwrap().remove("batch");
    std::fs::write(&bare, serde_json::to_string(&j).unwrap()).unwrap();
    let o = ef(&["predict", "--fit", bare.to_str().unwrap(), "--input", "64"]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("carries no run settings") && t.contains("batch"),
        "{t}"
    );

    // Rows of a second requests value in the same group.
    let mixed = d.path().join("mixed.csv");
    let mut text_csv = std::fs::read_to_string(&csv).unwrap();
    let extra: String = text_csv
        .lines()
        .skip(1)
        .take(3)
        .map(|l| l.replacen(",1000,", ",100,", 1) + "\n")
        .collect();
    text_csv.push_str(&extra);
    std::fs::write(&mixed, text_csv).unwrap();
    let o = ef(&[
        "fit",
        mixed.to_str().unwrap(),
        "--model",
        "flops-mem-batch",
        "--no-write",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let fits = v["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 1, "{v}");
    assert_eq!(fits[0]["points"], 49 + 3);
    assert!(fits[0]["group"].get("requests").is_none());
}
