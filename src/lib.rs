//! energy-fit: measure the GPU energy of LLM inference, fit analytical energy models,
//! predict each input length's most efficient output length.
//!
//! Dependencies point one way: the CPU side (`analytic`, `fit`, `sweetspot`, `dataset`,
//! `report`) never imports `engine` or `measure`; `engine` knows nothing of fitting or files.

pub mod analytic;
pub mod cli;
pub mod compare;
pub mod dataset;
pub mod design;
pub mod engine;
pub mod fit;
pub mod fsutil;
pub mod llm;
pub mod measure;
pub mod report;
pub mod sweetspot;
pub mod zeroshot;
