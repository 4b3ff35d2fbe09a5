//! CI tests of src/llm: catalog shapes, config.json parsing and errors, and the roofline counts
//! against hand computations.

use energy_fit::llm::*;

fn get(name: &str) -> LlmConfig {
    resolve_llm(name).unwrap()
}

#[test]
fn catalog_has_13_valid_entries() {
    let cat = catalog();
    assert_eq!(cat.len(), 13);
    for c in &cat {
        c.validate().unwrap();
        assert!(c.max_positions >= 8192, "{}", c.name);
    }
    assert!(resolve_llm("no-such-llm")
        .unwrap_err()
        .to_string()
        .contains("not a catalog LLM"));
}

#[test]
fn llama_1b_params_match_hand_count() {
    let c = get("llama-3.2-1b");
    // per layer: q 2048², k,v 2048·512 each, o 2048², mlp 3·2048·8192, 2 norms of 2048
    let layer = 2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192 + 2 * 2048;
    let expect = 128256 * 2048 + 16 * layer + 2048;
    assert_eq!(c.params(), expect);
    assert_eq!(expect, 1_235_814_400); // the published 1.24 B
    assert_eq!(c.kv_bytes_per_token(2), 2 * 16 * 512 * 2);
}

#[test]
fn qwen2_7b_params_with_qkv_bias_and_untied_head() {
    let c = get("qwen2-7b");
    let h = 3584;
    let layer = 2 * h * h + 2 * h * 512 + 3 * h * 18944 + (h + 2 * 512) + 2 * h;
    let expect = 2 * 152064 * h + 28 * layer + h;
    assert_eq!(c.params(), expect);
    assert_eq!(expect, 7_615_616_512); // the published 7.62 B
}

#[test]
fn prefill_and_decode_flops_and_bytes() {
    let c = get("llama-3.2-1b");
    let lin = 2.0 * 16.0 * (2.0 * 2048.0 * 2048.0 + 2.0 * 2048.0 * 512.0 + 3.0 * 2048.0 * 8192.0);
    let head = 2.0 * 2048.0 * 128256.0;
    // prefill, 3 sequences of 10 tokens: causal pairs 10·11/2 = 55 per layer
    let p = c.prefill_cost(3, 10, 2);
    let attn = 4.0 * 2048.0 * 55.0 * 16.0;
    assert_eq!(p.flops, 3.0 * (10.0 * lin + attn + head));
    let w = c.weight_read_bytes(2);
    assert_eq!(
        w,
        2.0 * (16.0 * (lin / 32.0 + 2.0 * 2048.0) + 2048.0 + 128256.0 * 2048.0)
    );
    assert_eq!(p.bytes, w + 30.0 * 2048.0 * 2.0 + 30.0 * 32768.0);
    // decode, batch 4, context 100
    let d = c.decode_cost(4, 100, 2);
    assert_eq!(d.flops, 4.0 * (lin + head + 4.0 * 2048.0 * 100.0 * 16.0));
    assert_eq!(
        d.bytes,
        w + 4.0 * 2048.0 * 2.0 + 4.0 * 2048.0 * 101.0 * 16.0
    );
}

#[test]
fn gemma_window_limits_attention() {
    let c = get("gemma-2-2b");
    assert_eq!(c.keys_attended(0, 5000), 4096);
    assert_eq!(c.keys_attended(1, 5000), 5000);
    let a = c.decode_cost(1, 5000, 2).flops - c.decode_cost(1, 4000, 2).flops;
    // only the 13 global layers grow past the window; 4 FLOPs · q_dim 2048 per key
    assert_eq!(a, 4.0 * 2048.0 * (13.0 * 1000.0 + 13.0 * 96.0));
}

const LLAMA_JSON: &str = r#"{"model_type":"llama","hidden_size":64,"num_hidden_layers":2,
 "num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":128,"vocab_size":1000,
 "max_position_embeddings":256,"rms_norm_eps":1e-5,"tie_word_embeddings":true,
 "rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":32.0,"low_freq_factor":1.0,
 "high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#;

#[test]
fn parses_llama_config_with_rope_parameters() {
    let c = parse_hf_config(LLAMA_JSON, "tiny").unwrap();
    assert_eq!((c.hidden, c.heads, c.kv_heads, c.head_dim), (64, 4, 2, 16));
    assert!(c.tied_embeddings);
    match c.positional {
        Positional::Rope {
            theta,
            scaling: Some(RopeScaling::Llama3 { factor, .. }),
        } => {
            assert_eq!((theta, factor), (500000.0, 32.0))
        }
        other => panic!("wrong positional {other:?}"),
    }
}

#[test]
fn parses_qwen2_and_granite_shapes() {
    let q = r#"{"model_type":"qwen2","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,
      "num_key_value_heads":1,"intermediate_size":96,"vocab_size":500,"max_position_embeddings":128,
      "rope_theta":1000000.0}"#;
    let c = parse_hf_config(q, "q").unwrap();
    assert!(c.qkv_bias && !c.o_bias && !c.tied_embeddings);
    assert_eq!(c.arch, Arch::Qwen2);
    let g = r#"{"model_type":"llama","hidden_size":160,"num_hidden_layers":2,"num_attention_heads":2,
      "intermediate_size":96,"vocab_size":500,"max_position_embeddings":128,"attention_bias":true,
      "mlp_bias":true,"head_dim":80}"#;
    let c = parse_hf_config(g, "g").unwrap();
    assert!(c.qkv_bias && c.o_bias && c.mlp_bias);
    assert_eq!((c.head_dim, c.kv_heads), (80, 2));
}

#[test]
fn bad_configs_are_clear_errors() {
    let e = parse_hf_config(r#"{"model_type":"mamba"}"#, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported model_type `mamba`"), "{e}");
    let e = parse_hf_config(&LLAMA_JSON.replace("\"vocab_size\":1000,", ""), "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing field `vocab_size`"), "{e}");
    let e = parse_hf_config(r#"{"hidden_size":3}"#, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("model_type"), "{e}");
    let e = parse_hf_config(
        &LLAMA_JSON.replace("\"num_key_value_heads\":2", "\"num_key_value_heads\":3"),
        "x",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a multiple"), "{e}");
    assert!(parse_hf_config("{", "x").is_err());
}

#[test]
fn parses_opt_falcon_gemma2() {
    let o = r#"{"model_type":"opt","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,
      "ffn_dim":256,"vocab_size":300,"max_position_embeddings":64,"word_embed_proj_dim":64}"#;
    let c = parse_hf_config(o, "o").unwrap();
    assert_eq!(c.positional, Positional::Learned { offset: 2 });
    assert_eq!(c.position_rows(), 66);
    let f = r#"{"model_type":"falcon","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,
      "vocab_size":300,"alibi":true,"bias":true,"multi_query":false,"parallel_attn":false}"#;
    let c = parse_hf_config(f, "f").unwrap();
    assert_eq!(
        (c.positional, c.kv_heads, c.ffn_dim),
        (Positional::Alibi, 4, 256)
    );
    let g = r#"{"model_type":"gemma2","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,
      "num_key_value_heads":2,"head_dim":32,"intermediate_size":96,"vocab_size":300,
      "max_position_embeddings":64,"attn_logit_softcapping":50.0,"final_logit_softcapping":30.0,
      "sliding_window":8,"query_pre_attn_scalar":32}"#;
    let c = parse_hf_config(g, "g").unwrap();
    assert_eq!(c.gemma.unwrap().sliding_window, 8);
    assert_eq!(c.norm, Norm::RmsNormPlusOne);
}

/// The attention part of a decode step is what `decode_cost` adds to the matrix products: scores
/// and weighted sums (4 FLOPs · q_dim per key and layer) and K/V bytes (read every attended key,
/// write the new one), so the rest is the weights, the token rows and 2 FLOPs per parameter.
#[test]
fn decode_attention_cost_is_the_attention_part() {
    let c = get("llama-3.2-1b");
    let (a, d) = (c.decode_attention_cost(4, 100, 2), c.decode_cost(4, 100, 2));
    assert_eq!(a.flops, 4.0 * 4.0 * 2048.0 * 100.0 * 16.0);
    assert_eq!(a.bytes, 4.0 * 2048.0 * 101.0 * 16.0);
    assert_eq!(d.flops - a.flops, 4.0 * c.flops_per_token());
    assert_eq!(
        d.bytes - a.bytes,
        c.weight_read_bytes(2) + 4.0 * 2048.0 * 2.0
    );
}
