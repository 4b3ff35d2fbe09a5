//! Measurement: NVML energy meter, sweep planning, the run loop with resume, multi-GPU workers,
//! sharding and merging of measurement files.

pub mod cost;
mod csv_text;
pub mod engine_workload;
pub mod merge;
pub mod meter;
pub mod pace;
pub mod plan;
pub mod plan_file;
pub mod rows;
pub mod run;
pub mod standin;
pub mod writer;

pub use meter::{EnergyMeter, GpuInfo, NvmlMeter, Reading, Sample, Window};
pub use plan::{CostModel, Grid, Point, Shard};
pub use rows::{Key, Row, COLUMNS};
pub use run::{run_source, run_sweep, FixedPoints, PointSource, RunOpts, Summary, Workload};
pub use writer::{read_rows, Writer};
