//! The integration tests, one binary: the real `energy-fit` binary end to end (on the stand-in
//! meter where a GPU would be needed), the library's public API, and the repository's scripts.
//! One binary instead of one per file keeps the build's link time and disk small.

mod ab_scripts;
mod cli_fit;
mod cli_fit_files;
mod cli_help;
mod cli_pipes;
mod common;
mod compare_cli;
mod concurrency;
mod config_bounds;
mod damage_paths;
mod design_cli;
mod design_requests;
mod engine_run_cli;
mod engine_scheduler;
mod fit_batch;
mod fit_holdout_errors;
mod fit_intervals;
mod fit_recovery;
mod fit_requests;
mod fit_warnings;
mod fuzz_readers;
mod hostile;
mod kill_faults;
mod llm_arch;
mod llm_config;
mod measure_adaptive;
mod measure_cards;
mod measure_cli;
mod measure_dry_run;
mod measure_meter;
mod measure_plan;
mod measure_replace;
mod measure_run;
mod measure_writer;
mod messages;
mod report_figures;
mod report_holdouts;
mod report_zero_shot;
mod scripts_cli;
mod shipped_data;
mod slurm_scripts;
mod sweep_bg;
mod vs_reference_script;
mod zeroshot;
