//! CI tests of the in-flight batching scheduler against an independent model of KV capacity.

use energy_fit::engine::scheduler::*;
use std::collections::HashMap;

fn uniform(r: usize, n: usize, m: usize) -> Vec<ReqLen> {
    vec![
        ReqLen {
            input_tokens: n,
            output_tokens: m
        };
        r
    ]
}

/// Runs the scheduler to completion, checking every invariant each iteration; returns iterations.
fn simulate(reqs: Vec<ReqLen>, limits: Limits, pages: usize) -> Vec<Iteration> {
    let mut s = Scheduler::new(reqs.clone(), limits, pages).unwrap();
    let mut produced: HashMap<usize, usize> = HashMap::new();
    let mut admitted_order = Vec::new();
    let mut live: HashMap<usize, usize> = HashMap::new(); // req -> pages held (model)
    let mut out = Vec::new();
    while let Some(it) = s.next_iteration() {
        for p in &it.prefill {
            admitted_order.push(p.req);
            assert_eq!(p.pages.len(), reqs[p.req].pages());
            live.insert(p.req, p.pages.len());
        }
        let held: usize = live.values().sum();
        assert!(held <= pages, "KV over capacity: {held} > {pages}");
        assert!(live.len() <= limits.max_batch_size);
        assert!(it.tokens() <= limits.max_num_tokens);
        assert!(it.tokens() > 0, "an iteration with no work");
        for d in &it.decode {
            assert!(
                live.contains_key(&d.req),
                "decode of a request not admitted"
            );
            assert_eq!(d.step, produced[&d.req], "steps in order");
            assert_eq!(d.pos, reqs[d.req].input_tokens + d.step - 1);
        }
        for p in &it.prefill {
            assert!(!produced.contains_key(&p.req));
        }
        for r in it
            .prefill
            .iter()
            .map(|p| p.req)
            .chain(it.decode.iter().map(|d| d.req))
        {
            *produced.entry(r).or_default() += 1;
        }
        for f in &it.finished {
            assert_eq!(
                produced[f], reqs[*f].output_tokens,
                "removed exactly when m tokens are out"
            );
            live.remove(f);
        }
        // nothing still live has finished
        for r in live.keys() {
            assert!(produced[r] < reqs[*r].output_tokens);
        }
        out.push(it);
    }
    assert_eq!(
        admitted_order,
        (0..reqs.len()).collect::<Vec<_>>(),
        "FIFO admission"
    );
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(produced[&i], r.output_tokens);
    }
    assert_eq!(s.free_pages(), pages, "all pages returned");
    out
}

#[test]
fn ample_capacity_runs_in_m_iterations() {
    let its = simulate(
        uniform(4, 10, 5),
        Limits {
            max_batch_size: 8,
            max_num_tokens: 100,
        },
        100,
    );
    assert_eq!(its.len(), 5);
    assert_eq!(its[0].prefill_tokens(), 40);
    assert!(its[1..]
        .iter()
        .all(|i| i.decode.len() == 4 && i.prefill.is_empty()));
}

#[test]
fn batch_size_bounds_concurrency() {
    let its = simulate(
        uniform(5, 8, 3),
        Limits {
            max_batch_size: 2,
            max_num_tokens: 1000,
        },
        1000,
    );
    // pairs run 3 iterations each; the last request alone: 3 + 3 + 3
    assert_eq!(its.len(), 9);
    assert!(its.iter().all(|i| i.prefill.len() + i.decode.len() <= 2));
}

#[test]
fn token_budget_counts_decode_tokens() {
    // 3 decoding requests leave 7 tokens: a 8-token prompt must wait.
    let mut reqs = uniform(3, 4, 10);
    reqs.push(ReqLen {
        input_tokens: 8,
        output_tokens: 2,
    });
    let its = simulate(
        reqs,
        Limits {
            max_batch_size: 10,
            max_num_tokens: 12,
        },
        100,
    );
    assert_eq!(its[0].prefill.len(), 3);
    assert!(its
        .iter()
        .take_while(|i| i.decode.len() == 3)
        .all(|i| i.prefill.iter().all(|p| p.req != 3)));
}

#[test]
fn kv_capacity_admits_only_what_fits() {
    // each request needs (40+30)/32 -> 3 pages; 7 pages hold 2 at a time
    let its = simulate(
        uniform(5, 40, 30),
        Limits {
            max_batch_size: 64,
            max_num_tokens: 8192,
        },
        7,
    );
    assert_eq!(its[0].prefill.len(), 2);
    assert_eq!(its.len(), 30 * 3);
}

#[test]
fn mixed_lengths_and_m_equal_one() {
    let reqs = vec![
        ReqLen {
            input_tokens: 33,
            output_tokens: 1,
        },
        ReqLen {
            input_tokens: 7,
            output_tokens: 17,
        },
        ReqLen {
            input_tokens: 64,
            output_tokens: 2,
        },
        ReqLen {
            input_tokens: 1,
            output_tokens: 40,
        },
    ];
    let its = simulate(
        reqs,
        Limits {
            max_batch_size: 3,
            max_num_tokens: 100,
        },
        6,
    );
    assert!(its[0].finished.contains(&0));
}

#[test]
fn impossible_requests_are_errors() {
    let l = Limits {
        max_batch_size: 4,
        max_num_tokens: 16,
    };
    let e = Scheduler::new(uniform(1, 17, 1), l, 100)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("max_num_tokens"), "{e}");
    let e = Scheduler::new(uniform(1, 16, 100), l, 3)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("too little GPU memory"), "{e}");
    assert!(Scheduler::new(uniform(1, 0, 1), l, 3).is_err());
}
