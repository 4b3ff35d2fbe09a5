//! CI tests of zero-shot prediction (src/zeroshot): calibration recovers the constants of a
//! synthetic LLM family, leave-one-LLM-out reaches the noise floor on it, and configs and
//! calibration files that are wrong are errors naming the field.

use energy_fit::llm::{catalog, parse_hf_config, LlmConfig};
use energy_fit::zeroshot::calibrate::{calibrate, prepare, LlmPoints, Prepared};
use energy_fit::zeroshot::file::CalibrationFile;
use energy_fit::zeroshot::loo::{in_sample, leave_one_out, score};
use energy_fit::zeroshot::model::{batching, energy_per_token, grid_counts, project, K};
use energy_fit::zeroshot::{Setting, GRID};
use nalgebra::DMatrix;
use std::process::Command;

/// Constants of a made-up GPU and engine, of the magnitudes a real one has.
const TRUE: [f64; K] = [
    1.1e-12, 1.0e-12, 3.0e-12, 2.0e-10, 1.3e-10, 7.0e-2, 1.0e-3, 0.35, 4.5e-11,
];

/// The catalog's 13 shapes, renamed as a synthetic family.
fn family() -> Vec<LlmConfig> {
    catalog()
        .into_iter()
        .map(|mut c| {
            c.name = format!("synthetic-{}", c.name);
            c
        })
        .collect()
}

/// Deterministic multiplicative noise in [-amp, amp] (xorshift), so the test never flakes.
fn noise(amp: f64) -> impl FnMut() -> f64 {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        amp * (2.0 * (s >> 11) as f64 / (1u64 << 53) as f64 - 1.0)
    }
}

/// The family's 7 × 7 grids generated from `TRUE`, with relative noise up to `amp`.
fn synthetic(amp: f64) -> Vec<Prepared> {
    let s = Setting::default();
    let mut eps = noise(amp);
    let data: Vec<LlmPoints> = family()
        .into_iter()
        .map(|cfg| {
            let counts = grid_counts(&cfg, &s, &GRID).unwrap();
            let pts = GRID.iter().flat_map(|&n| GRID.iter().map(move |&m| (n, m)));
            let points = pts
                .zip(&counts)
                .map(|((n, m), c)| (n, m, energy_per_token(&TRUE, c) * (1.0 + eps())))
                .collect();
            LlmPoints { cfg, points }
        })
        .collect();
    prepare(&data, &s).unwrap()
}

#[test]
fn calibration_recovers_the_constants_of_a_synthetic_family() {
    let c = calibrate(&synthetic(0.0)).unwrap();
    for (j, (got, want)) in c.values.iter().zip(TRUE).enumerate() {
        assert!(
            (got / want - 1.0).abs() < 1e-6,
            "constant {j}: {got} vs {want}"
        );
    }
    assert!(c.mape_pct < 1e-6);
    // With 2 % noise every constant stays within four standard errors of the truth.
    let c = calibrate(&synthetic(0.02)).unwrap();
    for (j, want) in TRUE.iter().enumerate() {
        let z = (c.values[j] - want) / c.std_errors[j];
        assert!(
            z.abs() < 4.0,
            "constant {j}: {} ± {} vs {want}",
            c.values[j],
            c.std_errors[j]
        );
        assert!(c.std_errors[j] > 0.0);
    }
}

#[test]
fn leave_one_out_reaches_the_noise_floor_on_a_synthetic_family() {
    let data = synthetic(0.02);
    let s = Setting::default();
    let loo = leave_one_out(&data, &s).unwrap();
    // The floor: each LLM scored with the true constants, through the same flops-mem summary.
    let zero = DMatrix::zeros(K, K);
    let floor: f64 = data
        .iter()
        .map(|d| {
            let p = project(&d.cfg, &s, &GRID, &TRUE, &zero).unwrap();
            score(&d.cfg.name, &d.points, &p.coefs, &p.coefs).mape_pct
        })
        .sum::<f64>()
        / data.len() as f64;
    let got = loo.zero_shot.mean_mape_pct;
    assert!(floor > 0.5, "the noise is visible: floor {floor}");
    assert!(
        got < floor * 1.1 + 0.05,
        "leave-one-out {got} % vs floor {floor} %"
    );
    assert!(got < loo.params_proportional.mean_mape_pct);
    assert!(got < loo.nearest_llm.mean_mape_pct);
    assert_eq!(loo.zero_shot.llms.len(), 13);
}

#[test]
fn in_sample_scores_reach_the_floor_without_noise_and_beat_leave_one_out_with_it() {
    let s = Setting::default();
    let data = synthetic(0.0);
    let own = in_sample(&data, &s, &calibrate(&data).unwrap()).unwrap();
    assert_eq!(own.llms.len(), 13);
    // Without noise the calibration is the truth, so each LLM scores what the truth scores through
    // the flops-mem summary of the prediction, and its sweet spots are exact.
    let zero = DMatrix::zeros(K, K);
    for (r, d) in own.llms.iter().zip(&data) {
        let p = project(&d.cfg, &s, &GRID, &TRUE, &zero).unwrap();
        let floor = score(&d.cfg.name, &d.points, &p.coefs, &p.coefs).mape_pct;
        assert!(
            (r.mape_pct - floor).abs() < 1e-6,
            "{}: {} vs {floor}",
            r.llm,
            r.mape_pct
        );
        for (n, e) in &r.sweet_spot_error_pct.0 {
            assert!(e.unwrap().abs() < 1e-6, "{} m* at n = {n}: {e:?}", r.llm);
        }
    }
    // With noise, the LLMs seen by the calibration are followed at least as well as left out.
    let data = synthetic(0.02);
    let own = in_sample(&data, &s, &calibrate(&data).unwrap()).unwrap();
    let loo = leave_one_out(&data, &s).unwrap();
    assert!(own.mean_mape_pct > 0.5, "the noise is visible");
    assert!(own.mean_mape_pct <= loo.zero_shot.mean_mape_pct + 1e-9);
}

#[test]
fn too_few_llms_are_refused_with_the_number_needed() {
    let data = synthetic(0.0);
    let e = calibrate(&data[..2]).unwrap_err().to_string();
    assert!(e.contains("at least 3 distinct LLMs"), "{e}");
}

const LLAMA: &str = r#"{"model_type":"llama","hidden_size":4096,"num_hidden_layers":32,
 "num_attention_heads":32,"num_key_value_heads":8,"intermediate_size":14336,"vocab_size":128256,
 "max_position_embeddings":8192,"rms_norm_eps":1e-5,"rope_theta":500000.0}"#;

#[test]
fn configs_that_cannot_be_predicted_name_the_field() {
    let err = |text: &str| parse_hf_config(text, "x").unwrap_err().to_string();
    let e = err(&LLAMA.replace("\"llama\"", "\"rwkv\""));
    assert!(e.contains("model_type") && e.contains("rwkv"), "{e}");
    let e = err(&LLAMA.replace("\"intermediate_size\":14336,", ""));
    assert!(e.contains("intermediate_size"), "{e}");
    let e = err(&LLAMA.replace("\"hidden_size\":4096", "\"hidden_size\":4096000000"));
    assert!(
        e.contains("hidden_size") && e.contains("implausibly large"),
        "{e}"
    );
    // A valid shape too large for the GPU: no KV cache left, named with the LLM.
    let big = parse_hf_config(
        &LLAMA.replace("\"num_hidden_layers\":32", "\"num_hidden_layers\":400"),
        "huge",
    )
    .unwrap();
    let e = batching(&big, &Setting::default()).unwrap_err().to_string();
    assert!(e.contains("huge") && e.contains("no KV cache"), "{e}");
}

/// A valid calibration file (from the synthetic family) as JSON text.
fn calibration_json() -> serde_json::Value {
    let c = calibrate(&synthetic(0.01)).unwrap();
    let f = CalibrationFile::new(
        &c,
        "gpu",
        "engine",
        "synthetic",
        Setting::default(),
        &GRID,
        None,
    );
    serde_json::to_value(&f).unwrap()
}

#[test]
fn calibration_files_round_trip_and_malformed_ones_name_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cal.json");
    let good = calibration_json();
    std::fs::write(&path, good.to_string()).unwrap();
    let f = CalibrationFile::read(&path).unwrap();
    assert_eq!(f.kind, "calibration");
    assert!(energy_fit::zeroshot::file::is_calibration_file(&path));
    assert!(!energy_fit::zeroshot::file::is_calibration_file(
        std::path::Path::new("fits/reference/llama-3.2-1b.flops-mem.json")
    ));
    let check = |v: serde_json::Value, field: &str| {
        std::fs::write(&path, v.to_string()).unwrap();
        let e = format!("{:#}", CalibrationFile::read(&path).unwrap_err());
        assert!(e.contains("cal.json") && e.contains(field), "{field}: {e}");
    };
    let mut v = good.clone();
    v["kind"] = "fit".into();
    check(v, "kind");
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("kind");
    check(v, "kind");
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("gpu");
    check(v, "gpu");
    let mut v = good.clone();
    v["covariance"] = serde_json::json!([[1.0]]);
    check(v, "covariance");
    let mut v = good.clone();
    v["constants"][0]["name"] = "other".into();
    check(v, "constants");
    let mut v = good;
    v["setting"]["requests"] = 0.into();
    check(v, "setting");
    // A published reference fit is not a calibration file.
    let e = format!(
        "{:#}",
        CalibrationFile::read(std::path::Path::new(
            "fits/reference/llama-3.2-1b.flops-mem.json"
        ))
        .unwrap_err()
    );
    assert!(
        e.contains("llama-3.2-1b.flops-mem.json") && e.contains("kind"),
        "{e}"
    );
}

fn energy_fit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_energy-fit"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn calibrate_reference_leave_one_out_json_and_zero_shot_predict() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ref.json");
    let o = energy_fit(&[
        "calibrate",
        "--reference",
        "--leave-one-out",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let llms = v["llms"].as_array().unwrap();
    assert_eq!(llms.len(), 13);
    for r in llms {
        assert!(r["llm"].is_string() && r["mape_pct"].is_f64() && r["max_error_pct"].is_f64());
        assert_eq!(r["sweet_spot_error_pct"].as_object().unwrap().len(), 7);
        assert!(r["sweet_spot_error_pct"]["64"].is_f64());
    }
    // The targets this model reaches on the published surfaces (docs/zero-shot.md).
    let mean = v["mean_mape_pct"].as_f64().unwrap();
    assert!(mean <= 6.0, "mean {mean}");
    assert!(llms.iter().all(|r| r["mape_pct"].as_f64().unwrap() <= 12.0));
    // m* at n = 64: within 20 % for every LLM and 15 % for all but the two the calibration that
    // includes them misses by more than 15 % too (docs/zero-shot.md).
    let m64 = |r: &serde_json::Value| r["sweet_spot_error_pct"]["64"].as_f64().unwrap().abs();
    assert!(llms.iter().all(|r| m64(r) <= 20.0));
    assert!(llms.iter().filter(|r| m64(r) > 15.0).count() <= 2);
    let own = v["in_sample"]["llms"].as_array().unwrap();
    assert_eq!(own.len(), 13);
    for r in llms.iter().filter(|r| m64(r) > 15.0) {
        let same = own.iter().find(|o| o["llm"] == r["llm"]).unwrap();
        assert!(m64(same) > 15.0, "{} is followed in sample", r["llm"]);
    }
    for b in ["params_proportional", "nearest_llm"] {
        assert!(
            mean < v["baselines"][b]["mean_mape_pct"].as_f64().unwrap(),
            "{b}"
        );
    }
    // Zero-shot predict from that calibration keeps predict's keys and says where it comes from.
    let o = energy_fit(&[
        "predict",
        "--llm",
        "llama-3.2-3b",
        "--input",
        "64",
        "--calibration",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "input_tokens",
        "output_tokens",
        "energy_per_token_j",
        "tokens_per_j",
        "sweet_spot_output_tokens",
    ] {
        assert!(!p[k].is_null(), "{k}");
    }
    assert_eq!(p["source"], "zero-shot");
    assert_eq!(p["gpu"], "H100");
    assert_eq!(p["engine"], "TensorRT-LLM 0.21");
    let ci = p["energy_per_token_j_ci95"].as_array().unwrap();
    let e = p["energy_per_token_j"].as_f64().unwrap();
    assert!(ci[0].as_f64().unwrap() < e && e < ci[1].as_f64().unwrap());
    // A fit reader given the calibration says what it is instead of failing obscurely.
    let o = energy_fit(&["predict", "--fit", out.to_str().unwrap(), "--input", "64"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("calibration file"));
}

#[test]
fn few_shot_with_the_zero_shot_prior_fits_five_measured_points() {
    // Corners and centre of the grid; the committed full grids score the fits on their other 44.
    let o = energy_fit(&[
        "fit",
        "--prior",
        "fits/calibration/h100-reference.json",
        "--points",
        "64x64,64x4096,4096x64,4096x4096,512x512",
        "data/llama-3.2-1b-h100.csv",
        "data/llama-3.1-8b-h100.csv",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let fits = v["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 2);
    for f in fits {
        assert_eq!(f["fitted_points"], 5);
        assert!(f["other_points"].as_u64().unwrap() >= 40);
        let others = f["mape_others_pct"].as_f64().unwrap();
        // Reached on the committed data (docs/zero-shot.md): 1.4 % and 2.3 %.
        assert!(others < 2.5, "{}: {others}", f["llm"]);
        assert!(f["sweet_spots"][0]["predicted_output_tokens_ci95"].is_array());
    }
    let e = energy_fit(&[
        "fit",
        "--prior",
        "fits/calibration/h100-reference.json",
        "--points",
        "64y64",
    ]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("--points: '64y64'"));
}

/// Five points chosen by the prior's own design, before the data is looked at, fit both committed
/// grids within the few-shot target (2 % on the other 44 points).
#[test]
fn few_shot_on_five_designed_points_meets_two_percent() {
    let o = energy_fit(&[
        "fit",
        "--prior",
        "fits/calibration/h100-reference.json",
        "--design-points",
        "5",
        "data/llama-3.2-1b-h100.csv",
        "data/llama-3.1-8b-h100.csv",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for f in v["fits"].as_array().unwrap() {
        assert_eq!(f["fitted_points"], 5);
        assert_eq!(f["designed_points"].as_array().unwrap().len(), 5);
        let others = f["mape_others_pct"].as_f64().unwrap();
        // Reached on the committed data (docs/zero-shot.md): 1.36 % and 1.97 %.
        assert!(others <= 2.0, "{}: {others}", f["llm"]);
    }
    let e = energy_fit(&[
        "fit",
        "--prior",
        "fits/calibration/h100-reference.json",
        "--design-points",
        "5",
        "--points",
        "64x64",
    ]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("--design-points"));
}
