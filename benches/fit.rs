//! Fitting speed (criterion): one fit of each model on a 49-point grid, and the full
//! 13-LLM × 6-model table with 5-fold cross-validation. Data are SYNTHETIC, generated from the 13
//! published flops-mem coefficient sets with 2 % noise. Targets (2-core CI machine): < 1 ms per
//! fit, < 200 ms for the table.

use criterion::{criterion_group, criterion_main, Criterion};
use energy_fit::analytic::{all_models, FlopsMem};
use energy_fit::dataset::synthetic::{grid, GRID};
use energy_fit::fit::file::FitFile;
use energy_fit::fit::{fit_model, FitOptions, Loss};
use std::hint::black_box;
use std::path::Path;

fn reference_grids() -> Vec<Vec<energy_fit::dataset::Obs>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fits/reference");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .enumerate()
        .map(|(i, p)| {
            grid(
                &FlopsMem,
                &FitFile::read(p).unwrap().values(),
                &GRID,
                &GRID,
                0.02,
                i as u64,
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let grids = reference_grids();
    assert_eq!(grids.len(), 13);
    let single = FitOptions {
        loss: Loss::Rel,
        cv_folds: None,
        seed: 0,
    };
    for model in all_models() {
        c.bench_function(&format!("fit 49 points {}", model.name()), |b| {
            b.iter(|| fit_model(model.as_ref(), black_box(&grids[0]), &single).unwrap())
        });
    }
    let table = FitOptions {
        loss: Loss::Rel,
        cv_folds: Some(5),
        seed: 42,
    };
    let models = all_models();
    c.bench_function("table 13 LLMs x 6 models, 5-fold CV", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for g in &grids {
                for m in &models {
                    sum += fit_model(m.as_ref(), black_box(g), &table)
                        .unwrap()
                        .mape_pct;
                }
            }
            sum
        })
    });
}

/// `design` on the 7 × 7 grid of llama-3.1-8b at 10 % of its estimated seconds, as the command
/// does it: roofline costs of every point, the prior fit, then the D-optimal plan.
fn bench_design(c: &mut Criterion) {
    use energy_fit::design::{plan, Candidate, Planner};
    use energy_fit::measure::cost::RooflineCost;
    use energy_fit::measure::plan::{plan_rows, Grid};
    let g = Grid {
        llms: vec!["llama-3.1-8b".into()],
        ..Grid::default()
    };
    c.bench_function("design llama-3.1-8b 7x7 at 10 %", |b| {
        b.iter(|| {
            let points = g.points();
            let rows = plan_rows(&points, &RooflineCost, 80 << 30, 5.0).unwrap();
            let cands: Vec<Candidate> = rows
                .iter()
                .map(|r| {
                    let (est, runs) = r.fit.clone().unwrap();
                    let (n, m) = (r.point.input_tokens as f64, r.point.output_tokens as f64);
                    Candidate {
                        input_tokens: n,
                        output_tokens: m,
                        requests: r.point.requests as f64,
                        cost_s: est * runs as f64,
                        prior_e: est / (r.point.requests as f64 * m),
                        concurrency: None,
                    }
                })
                .collect();
            let p = Planner::new(&FlopsMem, cands).unwrap();
            let all: Vec<usize> = (0..p.candidates.len()).collect();
            black_box(plan(&p, 0.1 * p.cost(&all), &[]).unwrap())
        })
    });
}

criterion_group!(benches, bench, bench_design);
criterion_main!(benches);
