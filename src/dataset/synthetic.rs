//! Synthetic measurements generated from known coefficients — for tests and demos only, never
//! shipped as data. Every generated LLM name starts with `synthetic-` so it cannot pass for a
//! measurement.

use super::Obs;
use crate::analytic::EnergyModel;
use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::path::Path;

/// The published grid: 64 … 4096 in powers of two.
pub const GRID: [f64; 7] = [64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0];

/// e(n, m) of `model` with `coefs` on `inputs × outputs`, each value multiplied by
/// (1 + noise · z), z standard normal from a seeded generator (`noise` = 0.02 for 2 %).
pub fn grid(
    model: &dyn EnergyModel,
    coefs: &[f64],
    inputs: &[f64],
    outputs: &[f64],
    noise: f64,
    seed: u64,
) -> Vec<Obs> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for &n in inputs {
        for &m in outputs {
            let e = model.energy_per_token(coefs, n, m);
            let z = normal(&mut rng);
            out.push(Obs {
                input_tokens: n,
                output_tokens: m,
                energy_per_token_j: e * (1.0 + noise * z),
                concurrency: None,
            });
        }
    }
    out
}

/// Standard normal draw (Box–Muller).
pub fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Write observations as a measurement CSV (`energy_j` = e · m · requests) for LLM
/// `synthetic-<name>`.
pub fn write_csv(path: &Path, name: &str, obs: &[Obs], requests: u64) -> Result<()> {
    let mut s =
        String::from("llm,input_tokens,output_tokens,requests,energy_j,gpu,engine,status\n");
    for o in obs {
        let energy = o.energy_per_token_j * o.output_tokens * requests as f64;
        writeln!(
            s,
            "synthetic-{name},{},{},{requests},{energy:.9e},synthetic,synthetic,ok",
            o.input_tokens, o.output_tokens
        )?;
    }
    std::fs::write(path, s)?;
    Ok(())
}
