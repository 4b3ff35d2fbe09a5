//! CI tests of the OPT, Falcon-RW and Gemma-2 descriptions: roofline counts of one catalog entry of
//! each against hand computations, the catalog against the published config.json layouts, the
//! configs transformers writes for the tiny hf_compare checkpoints, and clear errors for
//! unsupported variants. No GPU needed.

use energy_fit::engine::forward::{positional_table, Model};
use energy_fit::llm::*;

fn get(name: &str) -> LlmConfig {
    resolve_llm(name).unwrap()
}

fn fixture(name: &str) -> LlmConfig {
    let path = format!(
        "{}/tests/fixtures/hf_configs/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    read_hf_config(std::path::Path::new(&path)).unwrap()
}

/// The catalog entry with the shape fields a config.json carries (name, max positions aside).
fn same_shape(a: &LlmConfig, b: &LlmConfig) {
    let strip = |c: &LlmConfig| LlmConfig {
        name: String::new(),
        max_positions: 0,
        ..c.clone()
    };
    assert_eq!(strip(a), strip(b));
}

#[test]
fn opt_1_3b_params_flops_bytes() {
    let c = get("opt-1.3b");
    let (h, l, f, v) = (2048usize, 24usize, 8192usize, 50272usize);
    let mats = 4 * h * h + 2 * h * f; // q, k, v, out_proj; fc1, fc2
    let small = 3 * h + h + (f + h) + 2 * 2 * h; // q/k/v, out, fc1, fc2 biases; 2 LayerNorms (w, b)
    assert_eq!((mats, small), (50_331_648, 26_624));
    // tied head; 8192 + 2 learned positions (the HF checkpoint has 2048 + 2)
    let body = v * h + l * (mats + small) + 2 * h;
    assert_eq!(c.params(), body + 8194 * h);
    assert_eq!(body + 2050 * h, 1_315_758_080); // facebook/opt-1.3b as published
                                                // prefill, 2 sequences of 10 tokens: 55 causal pairs per layer, 4 FLOPs x q_dim per pair
    let p = c.prefill_cost(2, 10, 2);
    let lin = 2.0 * (l * mats) as f64;
    assert_eq!(
        p.flops,
        2.0 * (10.0 * lin + 4.0 * 2048.0 * 55.0 * 24.0 + 2.0 * (v * h) as f64)
    );
    // decode step, batch 4, context 100: every weight once (LM head included), token + position
    // rows, KV of 100 keys read and 1 written per layer
    let d = c.decode_cost(4, 100, 2);
    let weights = 2.0 * (l * (mats + small) + 2 * h + v * h) as f64;
    assert_eq!(weights, 2_623_119_360.0);
    assert_eq!(
        d.bytes,
        weights + 4.0 * 2048.0 * 2.0 * 2.0 + 4.0 * (2.0 * 2048.0 * 2.0) * (100.0 * 24.0 + 24.0)
    );
    assert_eq!(d.bytes, 2_702_581_760.0);
}

#[test]
fn falcon_rw_7b_params_flops_bytes() {
    let c = get("falcon-rw-7b");
    let (h, l, f, v) = (4096usize, 36usize, 16384usize, 65024usize);
    let mats = 4 * h * h + 2 * h * f;
    let small = 3 * h + h + (f + h) + 2 * 2 * h;
    let expect = v * h + l * (mats + small) + 2 * h;
    assert_eq!(c.params(), expect);
    assert_eq!(expect, 7_516_020_736); // falcon-rw-7b: 7.5 B
    let p = c.prefill_cost(2, 10, 2);
    let lin = 2.0 * (l * mats) as f64;
    assert_eq!(
        p.flops,
        2.0 * (10.0 * lin + 4.0 * 4096.0 * 55.0 * 36.0 + 2.0 * (v * h) as f64)
    );
    let d = c.decode_cost(1, 2048, 2);
    assert_eq!(
        d.bytes,
        2.0 * 7_516_020_736.0 + 4096.0 * 2.0 + (2.0 * 4096.0 * 2.0) * (2048.0 * 36.0 + 36.0)
    );
    assert_eq!(d.bytes, 16_240_599_040.0);
    assert_eq!(c.kv_bytes_per_token(2), 2 * 36 * 4096 * 2);
}

#[test]
fn gemma_2_2b_params_flops_bytes() {
    let c = get("gemma-2-2b");
    let (h, l, f, v, q, kv) = (
        2304usize,
        26usize,
        9216usize,
        256000usize,
        2048usize,
        1024usize,
    );
    let mats = h * q + 2 * h * kv + q * h + 3 * h * f;
    let small = 4 * h; // input, post-attention, pre- and post-feedforward RMSNorms
    let expect = v * h + l * (mats + small) + h;
    assert_eq!(c.params(), expect);
    assert_eq!(expect, 2_614_341_888); // google/gemma-2-2b as published
                                       // prefill of 5000 tokens: the 13 global layers see n(n+1)/2 pairs, the 13 local ones (even
                                       // layers, window 4096) w(w+1)/2 + (n-w)w
    let p = c.prefill_cost(1, 5000, 2);
    let (global, local) = (
        5000.0 * 5001.0 / 2.0,
        4096.0 * 4097.0 / 2.0 + 904.0 * 4096.0,
    );
    assert_eq!((global, local), (12_502_500.0, 12_093_440.0));
    let lin = 2.0 * (l * mats) as f64;
    assert_eq!(
        p.flops,
        5000.0 * lin + 4.0 * 2048.0 * 13.0 * (global + local) + 2.0 * (v * h) as f64
    );
    // decode, batch 2, context 5000: keys 13·5000 + 13·4096 per sequence
    let d = c.decode_cost(2, 5000, 2);
    let weights = 2.0 * expect as f64;
    assert_eq!(
        d.bytes,
        weights
            + 2.0 * 2304.0 * 2.0
            + 2.0 * (2.0 * 1024.0 * 2.0) * (13.0 * 5000.0 + 13.0 * 4096.0 + 26.0)
    );
    assert_eq!(d.bytes, 6_197_593_600.0);
}

#[test]
fn gemma_local_layers_scale_and_alibi_slopes() {
    let g = get("gemma-2-9b");
    assert_eq!(
        (
            g.sliding_window(0),
            g.sliding_window(1),
            g.sliding_window(40)
        ),
        (Some(4096), None, Some(4096))
    );
    assert_eq!(g.attn_scale(), 1.0 / 16.0); // query_pre_attn_scalar 256
    assert_eq!(get("opt-2.7b").attn_scale(), 1.0 / 80f64.sqrt());
    assert_eq!(get("llama-3.2-1b").sliding_window(0), None);
    // 8 heads: 2^-1 .. 2^-8; 6 heads: 4 of the 4-head series 2^-2k, then 2^-1, 2^-3
    let s8 = alibi_slopes(8);
    assert_eq!(s8, (1..=8).map(|k| 2f64.powi(-k)).collect::<Vec<_>>());
    let s6 = alibi_slopes(6);
    let want6 = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
    for (a, b) in s6.iter().zip(want6) {
        assert!((a - b).abs() < 1e-15, "{s6:?}");
    }
    let s64 = alibi_slopes(64);
    assert!((s64[0] - 2f64.powf(-0.125)).abs() < 1e-15 && (s64[63] - 2f64.powi(-8)).abs() < 1e-15);
    // the engine's table: bf16-rounded slopes for falcon, nothing for OPT, RoPE frequencies else
    let t = positional_table(&get("falcon-rw-7b"));
    assert_eq!(t.len(), 64);
    assert_eq!(t[7], 0.5);
    assert!(positional_table(&get("opt-1.3b")).is_empty());
    assert_eq!(positional_table(&get("gemma-2-2b")).len(), 128);
}

#[test]
fn engine_supports_every_catalog_llm() {
    for c in catalog() {
        Model::check_supported(&c).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    }
}

#[test]
fn published_config_layouts_match_the_catalog() {
    // tiiuae/falcon-rw-7b's original RefinedWebModel config (n_embed-style fields, no multi_query)
    let rw = r#"{"alibi": true, "apply_residual_connection_post_layernorm": false, "attention_dropout": 0.0,
      "bias": true, "bos_token_id": 1, "eos_token_id": 2, "hidden_dropout": 0.0, "hidden_size": 4096,
      "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "RefinedWebModel", "n_head": 64,
      "n_layer": 36, "parallel_attn": false, "torch_dtype": "bfloat16", "vocab_size": 65024}"#;
    same_shape(&parse_hf_config(rw, "rw").unwrap(), &get("falcon-rw-7b"));
    // the same model in the transformers "falcon" layout
    let f = r#"{"model_type": "falcon", "alibi": true, "bias": true, "hidden_size": 4096, "num_attention_heads": 64,
      "num_hidden_layers": 36, "multi_query": false, "new_decoder_architecture": false, "parallel_attn": false,
      "vocab_size": 65024, "layer_norm_epsilon": 1e-05}"#;
    same_shape(&parse_hf_config(f, "f").unwrap(), &get("falcon-rw-7b"));
    let opt = r#"{"activation_function": "relu", "do_layer_norm_before": true, "enable_bias": true, "ffn_dim": 8192,
      "hidden_size": 2048, "max_position_embeddings": 2048, "model_type": "opt", "num_attention_heads": 32,
      "num_hidden_layers": 24, "vocab_size": 50272, "word_embed_proj_dim": 2048}"#;
    let o = parse_hf_config(opt, "o").unwrap();
    same_shape(&o, &get("opt-1.3b"));
    assert_eq!(o.position_rows(), 2050);
    let gemma = r#"{"attention_bias": false, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
      "head_dim": 256, "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
      "hidden_size": 2304, "intermediate_size": 9216, "max_position_embeddings": 8192, "model_type": "gemma2",
      "num_attention_heads": 8, "num_hidden_layers": 26, "num_key_value_heads": 4, "query_pre_attn_scalar": 256,
      "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096, "vocab_size": 256000}"#;
    same_shape(&parse_hf_config(gemma, "g").unwrap(), &get("gemma-2-2b"));
}

#[test]
fn tiny_checkpoint_configs_written_by_transformers() {
    let o = fixture("opt-hd80");
    assert_eq!(
        (o.arch, o.head_dim, o.kv_heads, o.ffn, o.norm),
        (Arch::Opt, 80, 4, Ffn::Relu, Norm::LayerNorm)
    );
    assert!(o.qkv_bias && o.o_bias && o.mlp_bias && o.tied_embeddings);
    assert_eq!(o.position_rows(), 1026);
    let f = fixture("falcon-rw-alibi");
    assert_eq!(
        (f.arch, f.heads, f.kv_heads, f.head_dim, f.ffn_dim),
        (Arch::Falcon, 6, 6, 64, 1536)
    );
    assert_eq!((f.positional, f.ffn), (Positional::Alibi, Ffn::Gelu));
    let g = fixture("gemma2-window64");
    let x = g.gemma.unwrap();
    assert_eq!(
        (
            x.sliding_window,
            x.attn_softcap,
            x.final_softcap,
            x.query_pre_attn_scalar
        ),
        (64, 5.0, 15.0, 144.0)
    );
    assert_eq!((g.head_dim, g.q_dim(), g.hidden), (256, 1024, 384));
    assert!(g.embed_scale && g.post_norms);
    assert_eq!((g.sliding_window(2), g.sliding_window(3)), (Some(64), None));
    assert_eq!(g.name, "hf_configs"); // named after the directory
}

fn err(json: &str) -> String {
    format!("{:#}", parse_hf_config(json, "x").unwrap_err())
}

#[test]
fn unsupported_variants_and_missing_fields_are_clear_errors() {
    let opt = std::fs::read_to_string(format!(
        "{}/tests/fixtures/hf_configs/opt-hd80.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let e = err(&opt.replace("\"ffn_dim\": 1280,", ""));
    assert!(e.contains("model_type opt: missing field `ffn_dim`"), "{e}");
    let e = err(&opt.replace(
        "\"do_layer_norm_before\": true",
        "\"do_layer_norm_before\": false",
    ));
    assert!(e.contains("do_layer_norm_before"), "{e}");
    let e = err(&opt.replace(
        "\"activation_function\": \"relu\"",
        "\"activation_function\": \"gelu\"",
    ));
    assert!(e.contains("activation_function `gelu`"), "{e}");

    let falcon = std::fs::read_to_string(format!(
        "{}/tests/fixtures/hf_configs/falcon-rw-alibi.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let e = err(&falcon.replace("\"vocab_size\": 1100", "\"vocab\": 1100"));
    assert!(
        e.contains("model_type falcon: missing field `vocab_size`"),
        "{e}"
    );
    let e = err(&falcon.replace("\"hidden_size\": 384,", ""));
    assert!(e.contains("missing field `hidden_size`"), "{e}");
    let e = err(&falcon.replace("\"parallel_attn\": false", "\"parallel_attn\": true"));
    assert!(e.contains("parallel_attn=true is unsupported"), "{e}");
    let e = err(&falcon.replace(
        "\"new_decoder_architecture\": false",
        "\"new_decoder_architecture\": true",
    ));
    assert!(e.contains("new_decoder_architecture"), "{e}");
    let e = err(&falcon.replace("\"activation\": \"gelu\"", "\"activation\": \"relu\""));
    assert!(e.contains("activation `relu`"), "{e}");
    let e = err(&falcon
        .replace(
            "\"model_type\": \"falcon\"",
            "\"model_type\": \"RefinedWeb\"",
        )
        .replace("\"new_decoder_architecture\": false,", ""));
    assert!(
        e.contains("model_type RefinedWeb: new_decoder_architecture"),
        "{e}"
    );
    // multi_query falcon (falcon-7b style, but sequential blocks): one K/V head
    let mq = parse_hf_config(
        &falcon.replace("\"multi_query\": false", "\"multi_query\": true"),
        "mq",
    )
    .unwrap();
    assert_eq!(mq.kv_heads, 1);

    let gemma = std::fs::read_to_string(format!(
        "{}/tests/fixtures/hf_configs/gemma2-window64.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let e = err(&gemma.replace("\"intermediate_size\": 768,", ""));
    assert!(
        e.contains("model_type gemma2: missing field `intermediate_size`"),
        "{e}"
    );
    let swapped = gemma.replacen(
        "\"sliding_attention\",\n    \"full_attention\"",
        "\"full_attention\",\n    \"sliding_attention\"",
        1,
    );
    assert_ne!(swapped, gemma);
    let e = err(&swapped);
    assert!(e.contains("layer_types[0]"), "{e}");
    let e = err(&gemma.replace("gelu_pytorch_tanh", "relu"));
    assert!(e.contains("hidden_activation `relu`"), "{e}");

    let e = err(r#"{"model_type": "mistral", "hidden_size": 64}"#);
    assert!(e.contains("unsupported model_type `mistral`"), "{e}");
}
