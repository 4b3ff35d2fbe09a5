//! Zero-shot prediction: the energy surface and sweet spots of an LLM nobody measured, from its
//! shape alone, with a few constants of the GPU and engine calibrated once across measured LLMs.
//!
//! - [`model`]: the physical terms (counts from `crate::llm` and the schedule of
//!   `llm::concurrency`) and the projection of a predicted surface onto flops-mem;
//! - [`calibrate`]: the constants by least squares, with standard errors;
//! - [`loo`]: leave-one-LLM-out, the model and the baselines scored alike, and its table;
//! - [`baselines`]: the two naive predictors the zero-shot model is judged against;
//! - [`file`]: calibration files (`"kind": "calibration"`);
//! - [`source`]: the points calibrated on, from measurements or the published surfaces.
//!
//! The derivation, term by term, is in docs/zero-shot.md. Nothing here imports the engine.

pub mod baselines;
pub mod calibrate;
pub mod fewshot;
pub mod file;
pub mod loo;
pub mod model;
pub mod source;

use serde::{Deserialize, Serialize};

/// The published grid of input and output lengths (64 … 4096 in powers of two).
pub const GRID: [usize; 7] = [64, 128, 256, 512, 1024, 2048, 4096];

/// How the LLMs were run: the batching of every point and the GPU memory that bounds the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// Requests submitted at once per point (R).
    pub requests: usize,
    pub max_batch_size: usize,
    pub max_num_tokens: usize,
    /// GPU memory (GiB) shared by weights, workspace and KV cache.
    pub gpu_memory_gib: f64,
    /// Bytes per weight and KV element (2: bf16 / fp16).
    pub dtype_bytes: usize,
}

impl Default for Setting {
    /// The published methodology: 1000 requests, max_batch_size 1024, max_num_tokens 8192, an
    /// 80 GiB H100, bf16.
    fn default() -> Setting {
        Setting {
            requests: 1000,
            max_batch_size: 1024,
            max_num_tokens: 8192,
            gpu_memory_gib: 80.0,
            dtype_bytes: 2,
        }
    }
}

/// m* = √((β n² + δ n + ζ)/ε) of flops-mem coefficients; `None` where undefined (ε ≤ 0).
pub fn sweet_spot(coefs: &[f64], n: f64) -> Option<f64> {
    use crate::analytic::{EnergyModel, FlopsMem};
    FlopsMem.closed_form_sweet_spot(coefs, n)
}
