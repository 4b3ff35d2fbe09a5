//! The CPU-side concurrency function (`llm::concurrency`) against the engine's scheduler: for
//! uniform requests both must agree on the number of iterations and the most requests in flight.

use energy_fit::engine::scheduler::{Limits, ReqLen, Scheduler, PAGE_SIZE};
use energy_fit::llm::concurrency::{concurrency, Batching, PAGE_TOKENS};

/// (iterations, max active, sequences served summed over iterations) of the engine's scheduler
/// on R identical requests.
fn engine(r: usize, n: usize, m: usize, bs: usize, t: usize, pages: usize) -> (u64, usize, usize) {
    let reqs = vec![
        ReqLen {
            input_tokens: n,
            output_tokens: m
        };
        r
    ];
    let limits = Limits {
        max_batch_size: bs,
        max_num_tokens: t,
    };
    let mut s = Scheduler::new(reqs, limits, pages).unwrap();
    let (mut its, mut max, mut served) = (0u64, 0usize, 0usize);
    while let Some(it) = s.next_iteration() {
        its += 1;
        max = max.max(it.decode.len() + it.prefill.len());
        served += it.decode.len() + it.prefill.len();
    }
    (its, max, served)
}

fn check(r: usize, n: usize, m: usize, bs: usize, t: usize, pages: usize) {
    let b = Batching {
        requests: r,
        max_batch_size: bs,
        max_num_tokens: t,
        kv_capacity_tokens: pages * PAGE_SIZE,
        page_tokens: PAGE_TOKENS,
    };
    let c = concurrency(n, m, &b).unwrap();
    let (its, max, served) = engine(r, n, m, bs, t, pages);
    let case = format!("R={r} n={n} m={m} bs={bs} T={t} pages={pages}");
    assert_eq!(c.iterations, its, "iterations, {case}");
    assert_eq!(c.max_in_flight, max, "max in flight, {case}");
    // The mean the measured rows carry (`mean_concurrency`: the engine's tokens over its
    // iterations, every sequence of an iteration yielding one) is the predictor's.
    assert_eq!(served, r * m, "tokens, {case}");
    assert!(
        (c.mean_in_flight - served as f64 / its as f64).abs() < 1e-9,
        "mean in flight, {case}"
    );
}

#[test]
fn page_size_matches_the_engine() {
    assert_eq!(PAGE_TOKENS, PAGE_SIZE);
}

#[test]
fn agrees_with_the_scheduler_on_each_limiting_resource() {
    // Nothing limits: all admitted over a few prefill iterations (token budget), one wave.
    check(1000, 64, 64, 1024, 8192, 1 << 16);
    // max_batch_size limits.
    check(300, 64, 50, 64, 8192, 1 << 16);
    // max_num_tokens limits admission: two prompts per iteration, decodes eating the budget.
    check(40, 4000, 30, 1024, 8192, 1 << 16);
    // KV capacity limits: waves of a few sequences, page rounding (n + m not a page multiple).
    check(100, 500, 300, 1024, 8192, 130);
    // Everything at once, m = 1 (prefill only).
    check(57, 100, 1, 8, 300, 40);
}

#[test]
fn agrees_with_the_scheduler_on_a_sweep() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |lo: usize, hi: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        lo + (seed % (hi - lo + 1) as u64) as usize
    };
    for _ in 0..200 {
        let (n, m) = (next(1, 600), next(1, 200));
        let t = next(n, 2000);
        let min_pages = (n + m).div_ceil(PAGE_SIZE);
        let pages = next(min_pages, min_pages * 20);
        check(next(1, 120), n, m, next(1, 64), t, pages);
    }
}
