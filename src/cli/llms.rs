//! `energy-fit llms`: the catalog with shapes, parameter counts, FLOPs per token and KV bytes.

use crate::llm::{catalog, DEFAULT_DTYPE_BYTES};
use anyhow::Result;

pub fn run(json: bool) -> Result<()> {
    let cat = catalog();
    if json {
        println!("{}", serde_json::to_string_pretty(&cat)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<7} {:>6} {:>6} {:>5} {:>4} {:>5} {:>6} {:>7} {:>8} {:>9} {:>12} {:>10}",
        "llm",
        "arch",
        "hidden",
        "layers",
        "heads",
        "kv",
        "hdim",
        "ffn",
        "vocab",
        "ffn_type",
        "params_B",
        "GFLOP/token",
        "KV_KiB/tok"
    );
    for c in &cat {
        println!(
            "{:<14} {:<7} {:>6} {:>6} {:>5} {:>4} {:>5} {:>6} {:>7} {:>8} {:>9.3} {:>12.3} {:>10.1}",
            c.name,
            c.arch.as_str(),
            c.hidden,
            c.layers,
            c.heads,
            c.kv_heads,
            c.head_dim,
            c.ffn_dim,
            c.vocab,
            c.ffn.label(),
            c.params() as f64 / 1e9,
            c.flops_per_token() / 1e9,
            c.kv_bytes_per_token(DEFAULT_DTYPE_BYTES) as f64 / 1024.0
        );
    }
    println!("GFLOP/token: matrix FLOPs of one token without attention (2 per multiply-add, LM head included); KV in bf16.");
    Ok(())
}
