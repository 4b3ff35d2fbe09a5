//! Sizes read from a config.json are checked against stated bounds and never wrap: a config with
//! 2^62 layers or a hidden size of 1e9 is refused naming the field (it used to hang `measure
//! --dry-run` and under-report the weights), and heads that do not divide the hidden size are an
//! error instead of a silently truncated head dimension.

use energy_fit::llm::{parse_hf_config, resolve_llm, MAX_HIDDEN, MAX_LAYERS};
use std::process::Command;
use std::time::{Duration, Instant};

fn llama(overrides: &[(&str, serde_json::Value)]) -> String {
    let mut v = serde_json::json!({
        "model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 8192,
        "vocab_size": 128256, "max_position_embeddings": 131072
    });
    for (k, x) in overrides {
        v[*k] = x.clone();
    }
    v.to_string()
}

fn err(text: &str) -> String {
    format!("{:#}", parse_hf_config(text, "t").unwrap_err())
}

#[test]
fn huge_sizes_are_refused_naming_the_field_and_bound() {
    let e = err(&llama(&[("num_hidden_layers", (1u64 << 62).into())]));
    assert!(
        e.contains("num_hidden_layers") && e.contains(&MAX_LAYERS.to_string()),
        "{e}"
    );
    let e = err(&llama(&[
        ("hidden_size", 1_000_000_000u64.into()),
        ("num_attention_heads", 1000u64.into()),
        ("num_key_value_heads", 1000u64.into()),
    ]));
    assert!(
        e.contains("hidden_size 1000000000") && e.contains(&MAX_HIDDEN.to_string()),
        "{e}"
    );
    for field in ["vocab_size", "intermediate_size", "max_position_embeddings"] {
        let e = err(&llama(&[(field, u64::MAX.into())]));
        assert!(e.contains(field), "{field}: {e}");
    }
    let e = err(&llama(&[("head_dim", 1_000_000u64.into())]));
    assert!(e.contains("head_dim"), "{e}");
}

#[test]
fn heads_that_do_not_divide_the_hidden_size_need_an_explicit_head_dim() {
    let e = err(&llama(&[
        ("num_attention_heads", 30u64.into()),
        ("num_key_value_heads", 10u64.into()),
    ]));
    assert!(
        e.contains("num_attention_heads") && e.contains("(30)") && e.contains("hidden_size"),
        "{e}"
    );
    let c = parse_hf_config(
        &llama(&[
            ("num_attention_heads", 30u64.into()),
            ("num_key_value_heads", 10u64.into()),
            ("head_dim", 64u64.into()),
        ]),
        "t",
    )
    .unwrap();
    assert_eq!((c.heads, c.head_dim), (30, 64));
}

#[test]
fn the_largest_accepted_config_counts_without_wrapping() {
    // At the bounds every count stays exact: the parameters grow with each size, never wrap.
    let big = parse_hf_config(
        &llama(&[
            ("hidden_size", (MAX_HIDDEN as u64).into()),
            ("num_hidden_layers", (MAX_LAYERS as u64).into()),
            ("num_attention_heads", 1024u64.into()),
            ("num_key_value_heads", 1024u64.into()),
        ]),
        "t",
    )
    .unwrap();
    let h = MAX_HIDDEN as u128;
    let layer = 4 * h * h + 3 * h * 8192 + 2 * h;
    let expect = 2 * 128256 * h + MAX_LAYERS as u128 * layer + h;
    assert_eq!(big.params() as u128, expect);
    assert_eq!(big.weight_read_bytes(2), (2 * (expect - 128256 * h)) as f64);
}

#[test]
fn closed_form_attention_counts_match_the_per_layer_sum() {
    for name in ["gemma-2-2b", "llama-3.2-1b"] {
        let c = resolve_llm(name).unwrap();
        for ctx in [1usize, 100, 4096, 5000, 8192] {
            let keys: usize = (0..c.layers).map(|l| c.keys_attended(l, ctx)).sum();
            let got = c.decode_attention_cost(1, ctx, 2).flops;
            let want = 4.0 * c.q_dim() as f64 * keys as f64;
            assert!(
                (got - want).abs() <= 1e-9 * want,
                "{name} {ctx}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn dry_run_on_an_absurd_config_returns_at_once_naming_the_field() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("huge").join("config.json");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, llama(&[("num_hidden_layers", (1u64 << 62).into())])).unwrap();
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_energy-fit"))
        .args(["measure", "--dry-run", "--llm", cfg.to_str().unwrap()])
        .args(["--out", d.path().join("o.csv").to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("measure --dry-run did not return within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("num_hidden_layers"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}
