//! flops-mem-batch: flops-mem with the costs a decode step shares among its sequences divided by
//! the number of sequences in flight.
//!
//! A decode step reads every weight once and draws static power for its duration, whatever the
//! number c of sequences it advances; each sequence pays only its own FLOPs and KV reads. Over a
//! point's run of R requests and m output tokens the engine takes about R·m/c steps, so the shared
//! cost per request is η·m/c, with η the shared energy of one step. flops-mem folds that into α·m
//! at the concurrency its grid happened to run at; here it is a term of its own:
//!
//! E(n, m) = α·m + β·n² + γ·n·m + δ·n + ε·m² + ζ + η·m/c(n, m)
//!
//! with c(n, m) the mean sequences in flight at the point (`llm::concurrency`): the batch bound,
//! the prompts one step can admit, and at long contexts the KV cache. At a fixed c the model is
//! flops-mem with α + η/c in place of α; η is identified only where c varies over the data (the KV
//! limit at long outputs, the admission ramp at long prompts, several `requests` values).

use super::{linear_energy, EnergyModel};
use crate::llm::concurrency::{concurrency, kv_capacity_tokens, Batching, PAGE_TOKENS};
use crate::llm::LlmConfig;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Mean sequences in flight at (n, m) under the data's run settings.
pub type ConcurrencyFn = Arc<dyn Fn(f64, f64) -> f64 + Send + Sync>;

/// flops-mem plus η·m/c(n, m).
pub struct FlopsMemBatch {
    concurrency: ConcurrencyFn,
}

impl FlopsMemBatch {
    pub fn new(concurrency: ConcurrencyFn) -> FlopsMemBatch {
        FlopsMemBatch { concurrency }
    }

    /// The model before it is bound to data: its name, coefficients and formula are known, its
    /// concurrency is not, so it predicts NaN (which the fitter refuses, naming the point). `fit`
    /// binds it to each group's run settings ([`BatchContext`]).
    pub fn unbound() -> FlopsMemBatch {
        FlopsMemBatch::new(Arc::new(|_, _| f64::NAN))
    }

    fn basis(&self, n: f64, m: f64) -> [f64; 7] {
        Self::basis_with(n, m, (self.concurrency)(n, m))
    }

    fn basis_with(n: f64, m: f64, c: f64) -> [f64; 7] {
        let c = c.max(1.0);
        [1.0, n * n / m, n, n / m, m, 1.0 / m, 1.0 / c]
    }

    /// The row's own concurrency where it has one, else c(n, m) of the bound settings.
    fn basis_at(&self, o: &crate::dataset::Obs) -> [f64; 7] {
        match o.concurrency {
            Some(c) => Self::basis_with(o.input_tokens, o.output_tokens, c),
            None => self.basis(o.input_tokens, o.output_tokens),
        }
    }

    /// Predicted energy per output token at concurrency `c` (whatever the bound settings say).
    pub fn energy_per_token_with(&self, coefs: &[f64], n: f64, m: f64, c: f64) -> f64 {
        linear_energy(coefs, &Self::basis_with(n, m, c))
    }
}

impl EnergyModel for FlopsMemBatch {
    fn name(&self) -> &'static str {
        "flops-mem-batch"
    }
    fn coef_names(&self) -> &'static [&'static str] {
        &["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]
    }
    fn formula(&self) -> &'static str {
        "E = alpha*m + beta*n^2 + gamma*n*m + delta*n + epsilon*m^2 + zeta + eta*m/c(n,m)"
    }
    fn energy_per_token(&self, c: &[f64], n: f64, m: f64) -> f64 {
        linear_energy(c, &self.basis(n, m))
    }
    fn gradient(&self, _c: &[f64], n: f64, m: f64, out: &mut [f64]) {
        out.copy_from_slice(&self.basis(n, m));
    }
    fn energy_per_token_at(&self, c: &[f64], o: &crate::dataset::Obs) -> f64 {
        linear_energy(c, &self.basis_at(o))
    }
    fn gradient_at(&self, _c: &[f64], o: &crate::dataset::Obs, out: &mut [f64]) {
        out.copy_from_slice(&self.basis_at(o));
    }
}

/// Run settings that decide a point's concurrency.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub requests: usize,
    pub max_batch_size: usize,
    pub max_num_tokens: usize,
    pub dtype_bytes: usize,
    pub gpu_memory_bytes: f64,
}

/// What binds the model to one group of data: the LLM (catalog name or config path) and the run
/// settings. Fit files of flops-mem-batch carry it, so predictions rebuild the same c(n, m).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchContext {
    pub llm: String,
    pub settings: Settings,
}

impl BatchContext {
    /// The model with this LLM's concurrency under these settings. Labelled synthetic data
    /// (`synthetic-<llm>`, `dataset::synthetic`) take that LLM's shape.
    pub fn model(&self) -> Result<FlopsMemBatch> {
        Ok(FlopsMemBatch::new(self.concurrency()?))
    }

    /// c(n, m) of this LLM under these settings.
    pub fn concurrency(&self) -> Result<ConcurrencyFn> {
        let shape = self.llm.strip_prefix("synthetic-").unwrap_or(&self.llm);
        let cfg = crate::llm::resolve_llm(shape)?;
        concurrency_of(&cfg, self.settings)
    }
}

/// c(n, m) of `cfg` under `s`: the mean sequences in flight of the engine's schedule
/// (`llm::concurrency`), with the KV capacity the dry run computes for that GPU memory. A point
/// that cannot run gets c = 1 (it is never measured, so never fitted).
pub fn concurrency_of(cfg: &LlmConfig, s: Settings) -> Result<ConcurrencyFn> {
    let cap = kv_capacity_tokens(
        cfg,
        s.gpu_memory_bytes,
        s.dtype_bytes,
        s.max_num_tokens,
        s.max_batch_size.min(s.requests),
    );
    if cap == 0 {
        bail!(
            "{}: no KV cache fits in {} GiB of GPU memory beside the weights and workspace",
            cfg.name,
            s.gpu_memory_bytes / (1u64 << 30) as f64
        );
    }
    Ok(concurrency_with_capacity(s, cap))
}

/// c(n, m) under `s` with a KV cache of `cap` tokens (measured, or given on the command line).
pub fn concurrency_with_capacity(s: Settings, cap: usize) -> ConcurrencyFn {
    let b = Batching {
        requests: s.requests,
        max_batch_size: s.max_batch_size,
        max_num_tokens: s.max_num_tokens,
        kv_capacity_tokens: cap,
        page_tokens: PAGE_TOKENS,
    };
    // The fitter asks for the same points at every iteration: simulate each once.
    let cache: Mutex<HashMap<(u64, u64), f64>> = Mutex::new(HashMap::new());
    Arc::new(move |n: f64, m: f64| {
        let key = (n.round() as u64, m.round() as u64);
        if let Some(&c) = cache.lock().unwrap().get(&key) {
            return c;
        }
        let c = concurrency(key.0 as usize, key.1 as usize, &b).map_or(1.0, |c| c.mean_in_flight);
        cache.lock().unwrap().insert(key, c);
        c
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytic::FlopsMem;

    /// At a fixed concurrency it is flops-mem with α + η/c.
    #[test]
    fn reduces_to_flops_mem_at_fixed_concurrency() {
        let fm = [5e-3, 1e-7, 7e-6, 2.6e-3, 3.9e-6, 0.54];
        let (eta, c) = (0.8, 250.0);
        let b = FlopsMemBatch::new(Arc::new(move |_, _| c));
        let mut with = fm.to_vec();
        with.push(eta);
        let mut folded = fm;
        folded[0] += eta / c;
        for (n, m) in [(64.0, 64.0), (512.0, 2048.0), (4096.0, 4096.0)] {
            let (x, y) = (
                b.energy_per_token(&with, n, m),
                FlopsMem.energy_per_token(&folded, n, m),
            );
            assert!((x - y).abs() <= 1e-12 * y, "{x} {y}");
        }
    }

    /// A row's own concurrency (its measured `mean_concurrency`) overrides the bound c(n, m), so
    /// rows of the same (n, m) at different requests values get different predictions.
    #[test]
    fn a_rows_own_concurrency_wins() {
        let coefs = [5e-3, 1e-7, 7e-6, 2.6e-3, 3.9e-6, 0.54, 0.8];
        let b = FlopsMemBatch::new(Arc::new(|_, _| 1000.0));
        let row = |c: Option<f64>| crate::dataset::Obs {
            input_tokens: 512.0,
            output_tokens: 256.0,
            energy_per_token_j: 1.0,
            concurrency: c,
        };
        let bound = b.energy_per_token(&coefs, 512.0, 256.0);
        assert_eq!(b.energy_per_token_at(&coefs, &row(None)), bound);
        let alone = b.energy_per_token_at(&coefs, &row(Some(1.0)));
        assert!((alone - bound - 0.8 * (1.0 - 1.0 / 1000.0)).abs() < 1e-12);
        let mut g = [0.0; 7];
        b.gradient_at(&coefs, &row(Some(4.0)), &mut g);
        assert_eq!(g[6], 0.25);
    }
}
