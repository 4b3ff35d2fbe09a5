//! Property tests over every reader of outside input: measurement CSV and Parquet files, fit
//! files, config.json, `predict --params` and `measure --plan` files. For any input: no panic,
//! at most a second, and an error names where (the file, or the flag). Case counts are modest so
//! the suite stays fast; a failing case is printed by proptest and should become a fixed test.

use energy_fit::dataset::Dataset;
use energy_fit::fit::file::FitFile;
use energy_fit::measure::plan::PLAN_COLUMNS;
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(1);

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Run `f`, asserting it returns within the limit and that an error mentions `place`.
fn check<T>(what: &str, place: &str, f: impl FnOnce() -> anyhow::Result<T>) {
    let t = Instant::now();
    let r = f();
    assert!(t.elapsed() < LIMIT, "{what} took {:?}", t.elapsed());
    if let Err(e) = r {
        let msg = format!("{e:#}");
        assert!(
            msg.contains(place),
            "{what}: error does not name {place:?}: {msg}"
        );
    }
}

const CELLS: [&str; 20] = [
    "",
    "0",
    "1",
    "64",
    "4096",
    "-1",
    "1.5",
    "1e308",
    "1e-300",
    "NaN",
    "inf",
    "-inf",
    "abc",
    "ok",
    "skipped: out of memory",
    "\"a,b\"",
    "\"",
    "x",
    "18446744073709551616",
    " 7 ",
];
const COLS: [&str; 10] = [
    "llm",
    "input_tokens",
    "output_tokens",
    "requests",
    "energy_j",
    "status",
    "role",
    "dtype",
    "gpu",
    "extra",
];

/// CSV text from column names, cells and separators chosen from the interesting values.
fn csv_text() -> impl Strategy<Value = String> {
    let header = prop::collection::vec(prop::sample::select(&COLS[..]), 0..8);
    let cell = prop::sample::select(&CELLS[..]);
    let row = prop::collection::vec(cell, 0..9);
    let rows = prop::collection::vec(row, 0..6);
    let eol = prop::sample::select(&["\n", "\r\n", "\n\n", ""][..]);
    (header, rows, eol, any::<bool>()).prop_map(|(h, rows, eol, full)| {
        let mut h: Vec<&str> = h;
        if full {
            h = COLS[..6].to_vec();
        }
        let mut s = h.join(",") + eol;
        for r in rows {
            s.push_str(&r.join(","));
            s.push_str(eol);
        }
        s
    })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

proptest! {
    #![proptest_config(cfg(96))]

    #[test]
    fn csv_readers_never_panic_and_name_the_file(text in prop_oneof![csv_text(), "\\PC{0,300}"]) {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "m.csv", text.as_bytes());
        check("Dataset::load", "m.csv", || Dataset::load(std::slice::from_ref(&p)));
        check("read_rows", "m.csv", || energy_fit::measure::read_rows(&p));
    }

    #[test]
    fn predict_params_never_panic_and_name_the_flag(
        text in prop_oneof![
            "\\PC{0,80}",
            prop::collection::vec(
                (prop::sample::select(&["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "c0", "x", ""][..]),
                 prop::sample::select(&CELLS[..])),
                0..8,
            )
            .prop_map(|kv| kv.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")),
        ],
        model in prop::option::of(prop::sample::select(&["b1", "flops", "flops-mem", "nope"][..])),
    ) {
        let t = Instant::now();
        if let Err(e) = energy_fit::cli::predict::parse_params(&text, model) {
            let msg = format!("{e:#}");
            prop_assert!(msg.contains("--params") || msg.contains("--model"), "{msg}");
        }
        prop_assert!(t.elapsed() < LIMIT);
    }
}

/// Parquet bytes of a small valid measurement file.
fn parquet_bytes() -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let csv = write(
        d.path(),
        "a.csv",
        b"llm,input_tokens,output_tokens,requests,energy_j,status\nx,64,64,8,1.5,ok\nx,128,64,8,2.5,ok\n",
    );
    let out = d.path().join("a.parquet");
    energy_fit::measure::merge::merge_files(&[csv], &out, false).unwrap();
    std::fs::read(out).unwrap()
}

proptest! {
    #![proptest_config(cfg(64))]

    #[test]
    fn parquet_readers_never_panic_on_damaged_files(
        cut in 0usize..2000,
        flips in prop::collection::vec((0usize..2000, any::<u8>()), 0..6),
    ) {
        let mut b = parquet_bytes();
        for (at, v) in flips {
            let n = b.len();
            b[at % n] = v;
        }
        b.truncate(cut.max(1).min(b.len()));
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "m.parquet", &b);
        check("Dataset::load", "m.parquet", || Dataset::load(std::slice::from_ref(&p)));
        check("read_rows", "m.parquet", || energy_fit::measure::read_rows(&p));
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(3)),
        Just(json!(64)),
        Just(json!(4096)),
        Just(json!(1u64 << 62)),
        Just(json!(u64::MAX)),
        Just(json!(1e9)),
        Just(json!(1.5)),
        Just(json!(-2.5e300)),
        Just(json!("x")),
        Just(json!(true)),
        Just(json!([])),
        Just(json!({})),
        Just(json!([[1.0, 2.0], [3.0]])),
    ]
}

const FIT_KEYS: [&str; 12] = [
    "model",
    "coefficients",
    "value",
    "name",
    "points",
    "uncertainty",
    "covariance",
    "dof",
    "sweet_spots",
    "warnings",
    "metrics",
    "llm",
];

/// Replace the value at a random key (searched recursively) by `v`.
fn replace_key(doc: &mut serde_json::Value, key: &str, v: &serde_json::Value, nth: usize) -> bool {
    match doc {
        serde_json::Value::Object(m) => {
            if nth == 0 && m.contains_key(key) {
                m.insert(key.into(), v.clone());
                return true;
            }
            m.values_mut()
                .any(|x| replace_key(x, key, v, nth.saturating_sub(1)))
        }
        serde_json::Value::Array(a) => a.iter_mut().any(|x| replace_key(x, key, v, nth)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(cfg(96))]

    #[test]
    fn fit_file_reader_never_panics_and_names_the_file(
        edits in prop::collection::vec((prop::sample::select(&FIT_KEYS[..]), json_value(), 0usize..3), 0..4),
        cut in prop::option::of(0usize..4000),
    ) {
        let good = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fits/llama-3.2-1b.flops-mem.json"),
        )
        .unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(&good).unwrap();
        for (k, v, nth) in &edits {
            replace_key(&mut doc, k, v, *nth);
        }
        let mut text = doc.to_string();
        if let Some(c) = cut {
            let mut c = c.min(text.len());
            while !text.is_char_boundary(c) {
                c -= 1;
            }
            text.truncate(c);
        }
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "f.json", text.as_bytes());
        check("FitFile::read", "f.json", || FitFile::read(&p));
    }

    #[test]
    fn config_json_reader_never_panics_and_names_the_file(
        model_type in prop::sample::select(&["llama", "qwen2", "opt", "falcon", "RefinedWebModel", "gemma2", "gpt2"][..]),
        fields in prop::collection::vec((prop::sample::select(&[
            "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "head_dim", "intermediate_size", "ffn_dim", "vocab_size", "max_position_embeddings",
            "rope_theta", "rope_scaling", "sliding_window", "layer_types", "n_embed", "n_head",
            "n_layer", "multi_query", "parallel_attn", "word_embed_proj_dim", "rms_norm_eps",
        ][..]), json_value()), 0..12),
    ) {
        let mut doc = serde_json::json!({
            "model_type": model_type, "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 128, "ffn_dim": 128,
            "vocab_size": 256, "max_position_embeddings": 512, "parallel_attn": false,
        });
        for (k, v) in &fields {
            doc[*k] = v.clone();
        }
        let d = tempfile::tempdir().unwrap().keep();
        let dir = d.join("cfg");
        std::fs::create_dir_all(&dir).unwrap();
        let p = write(&dir, "config.json", doc.to_string().as_bytes());
        check("read_hf_config", "config.json", || {
            let c = energy_fit::llm::read_hf_config(&p)?;
            // Whatever is accepted can be counted without overflow.
            let _ = (c.params(), c.kv_bytes_per_token(4), c.prefill_cost(64, 4096, 2));
            Ok(())
        });
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn plan_reader_never_panics_and_names_the_file(
        with_role in any::<bool>(),
        rows in prop::collection::vec(prop::collection::vec(prop::sample::select(&[
            "", "0", "1", "2", "64", "-3", "bf16", "fp32", "int8", "llama-3.2-1b", "design",
            "holdout", "x", "1e3", "99999999999999999999",
        ][..]), 0..10), 0..5),
        junk in prop::option::of("\\PC{0,40}"),
    ) {
        let cols = if with_role { &PLAN_COLUMNS[..] } else { &PLAN_COLUMNS[..PLAN_COLUMNS.len() - 1] };
        let mut text = cols.join(",") + "\n";
        for r in rows {
            text.push_str(&r.join(","));
            text.push('\n');
        }
        if let Some(j) = junk {
            text.push_str(&j);
        }
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "plan.csv", text.as_bytes());
        check("read_plan", "plan.csv", || energy_fit::measure::plan_file::read_plan(&p));
    }
}
