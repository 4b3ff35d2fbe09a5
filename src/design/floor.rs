//! A floor on the design points of each requests value.
//!
//! A design over several requests values maximises the joint information, and the joint optimum
//! may spend almost nothing at a value whose directions the others already cover. Each value still
//! has to carry enough points to be fitted apart (flops-mem per value) and to hold data when it is
//! left out in validation (`fit --cv-by requests`), so a design may demand at least K points per
//! value. The floor enters the solver in three places: the starts are seeded with K points per
//! value, the swap search never takes a value below K, and the smallest budget is that of the
//! cheapest set found that holds the floor and identifies the model.

use super::greedy::RIDGE;
use super::Planner;
use anyhow::{bail, Result};

/// Design points per requests value when a design spans several and no floor is given: enough to
/// fit flops-mem's six coefficients at each value apart and to leave each value out in turn.
pub const DEFAULT_MIN_POINTS_PER_REQUESTS: usize = 6;

/// Chosen points per requests value, ascending by value (values without any included, as 0).
pub fn counts(p: &Planner, set: &[usize]) -> Vec<(f64, usize)> {
    p.requests_values()
        .into_iter()
        .map(|r| {
            (
                r,
                set.iter()
                    .filter(|&&i| p.candidates[i].requests == r)
                    .count(),
            )
        })
        .collect()
}

/// Whether `set` holds at least `k` points at every requests value.
pub fn holds(p: &Planner, set: &[usize], k: usize) -> bool {
    counts(p, set).iter().all(|&(_, c)| c >= k)
}

/// Whether replacing `set[pos]` by candidate `j` keeps `set[pos]`'s requests value at `k` or more.
pub(crate) fn swap_keeps(p: &Planner, set: &[usize], pos: usize, j: usize, k: usize) -> bool {
    let r = p.candidates[set[pos]].requests;
    k == 0
        || p.candidates[j].requests == r
        || set
            .iter()
            .filter(|&&i| p.candidates[i].requests == r)
            .count()
            > k
}

/// Candidates at requests value `r` outside `set`, cheapest first (ties by index).
fn free_at(p: &Planner, set: &[usize], r: f64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..p.candidates.len())
        .filter(|&i| p.candidates[i].requests == r && !set.contains(&i))
        .collect();
    v.sort_by(|&a, &b| p.candidates[a].cost_s.total_cmp(&p.candidates[b].cost_s));
    v
}

/// Refuse a floor some requests value cannot hold at all.
fn check_candidates(p: &Planner, k: usize) -> Result<()> {
    let all: Vec<usize> = (0..p.candidates.len()).collect();
    if let Some((r, c)) = counts(p, &all).into_iter().find(|&(_, c)| c < k) {
        bail!(
            "--min-points-per-requests {k}: requests value {r} has only {c} candidate points that fit; give more input and output lengths or a smaller floor"
        );
    }
    Ok(())
}

/// `set` with each requests value topped up to `k` by its cheapest free points.
fn top_up_cheapest(p: &Planner, mut set: Vec<usize>, k: usize) -> Vec<usize> {
    for (r, c) in counts(p, &set) {
        let add: Vec<usize> = free_at(p, &set, r)
            .into_iter()
            .take(k.saturating_sub(c))
            .collect();
        set.extend(add);
    }
    set
}

/// The cheapest set found that contains `fixed`, identifies the model and holds `k` points per
/// requests value: the cheaper of the cheapest identifying set topped up per value with its
/// cheapest points, and the `k` cheapest points per value extended to identify.
pub fn minimal(p: &Planner, fixed: &[usize], k: usize) -> Result<Vec<usize>> {
    let identifying = super::greedy::cheapest_identifying(p, fixed)?;
    if k == 0 {
        return Ok(identifying);
    }
    check_candidates(p, k)?;
    let a = top_up_cheapest(p, identifying, k);
    let floor = top_up_cheapest(p, fixed.to_vec(), k);
    let b = super::greedy::cheapest_identifying(p, &floor)?;
    Ok(if p.cost(&b) < p.cost(&a) { b } else { a })
}

/// The floor's seed: at each requests value, the points at that value alone (beginning with the
/// fixed ones there) grown by gain in log det per second until the value has `k`. Each value's
/// points are chosen for their own information, not the joint one, so every value can be fitted
/// apart: the joint search that follows adds what the values tell together.
pub(crate) fn seed(p: &Planner, fixed: &[usize], k: usize) -> Vec<usize> {
    let mut set = fixed.to_vec();
    for r in p.requests_values() {
        let mut own: Vec<usize> = fixed
            .iter()
            .copied()
            .filter(|&i| p.candidates[i].requests == r)
            .collect();
        while own.len() < k {
            let Some(inv) = p.information(&own, RIDGE).try_inverse() else {
                break;
            };
            let best = free_at(p, &own, r)
                .into_iter()
                .map(|j| {
                    let x = p.row(j);
                    let gain = (1.0 + (x.transpose() * &inv * x)[(0, 0)]).ln();
                    (j, gain / p.candidates[j].cost_s)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((j, _)) => {
                    own.push(j);
                    set.push(j);
                }
                None => break,
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::super::greedy::plan_with_floor;
    use super::super::tests::grid_candidates;
    use super::super::{plan, Candidate};
    use super::*;
    use crate::analytic::FlopsMem;

    /// The 7 × 7 grid at three requests values, the larger ones dearer (the same rows: flops-mem
    /// does not see R), so a design without a floor spends on the cheapest value and starves the
    /// others.
    fn three_values() -> Vec<Candidate> {
        [(1.0, 1.0), (10.0, 10.0), (100.0, 100.0)]
            .iter()
            .flat_map(|&(r, dear)| {
                grid_candidates().into_iter().map(move |c| Candidate {
                    requests: r,
                    cost_s: c.cost_s * dear,
                    ..c
                })
            })
            .collect()
    }

    fn full(p: &Planner) -> f64 {
        p.cost(&(0..p.candidates.len()).collect::<Vec<_>>())
    }

    #[test]
    fn every_requests_value_gets_its_floor_within_the_budget() {
        let p = Planner::new(&FlopsMem, three_values()).unwrap();
        let min6 = p.cost(&minimal(&p, &[], 6).unwrap());
        let starved = plan(&p, 1.5 * min6, &[]).unwrap();
        assert!(
            counts(&p, &starved.chosen).iter().any(|&(_, c)| c < 6),
            "without a floor some value should fall short: {:?}",
            counts(&p, &starved.chosen)
        );
        for k in [1, 6, 8] {
            let min = p.cost(&minimal(&p, &[], k).unwrap());
            for budget in [min, 1.5 * min, 3.0 * min, 0.2 * full(&p)] {
                let d = plan_with_floor(&p, budget, &[], k).unwrap();
                assert!(d.cost_s <= budget + 1e-9, "K={k}: {} > {budget}", d.cost_s);
                assert!(p.identifies(&d.chosen));
                for (r, c) in counts(&p, &d.chosen) {
                    assert!(c >= k, "K={k}, budget {budget}: R={r} has {c}");
                }
                let mut u = d.chosen.clone();
                u.sort();
                u.dedup();
                assert_eq!(u.len(), d.chosen.len(), "a point chosen twice");
            }
        }
    }

    #[test]
    fn a_floor_of_zero_is_the_design_without_one() {
        let p = Planner::new(&FlopsMem, three_values()).unwrap();
        for frac in [0.02, 0.05, 0.2] {
            let b = frac * full(&p);
            assert_eq!(
                plan_with_floor(&p, b, &[], 0).unwrap(),
                plan(&p, b, &[]).unwrap()
            );
        }
        assert_eq!(
            minimal(&p, &[], 0).unwrap(),
            super::super::cheapest_identifying(&p, &[]).unwrap()
        );
    }

    /// The smallest budget is the cheapest set found holding the floor: below it an error names
    /// its seconds and both flags, at it a design exists; it costs no more than the K cheapest
    /// points of every value plus what identification needs beyond them.
    #[test]
    fn too_small_a_budget_for_the_floor_names_what_it_needs() {
        let p = Planner::new(&FlopsMem, three_values()).unwrap();
        let min = minimal(&p, &[], 6).unwrap();
        assert!(holds(&p, &min, 6) && p.identifies(&min));
        let need = p.cost(&min);
        let cheapest6: f64 = p
            .requests_values()
            .iter()
            .map(|&r| p.cost(&free_at(&p, &[], r)[..6]))
            .sum();
        assert!(
            need >= cheapest6 - 1e-9 && need <= 1.2 * cheapest6,
            "{need} vs {cheapest6}"
        );
        let err = plan_with_floor(&p, 0.9 * need, &[], 6)
            .unwrap_err()
            .to_string();
        for want in [
            format!("{need:.1} s"),
            "--budget-s".into(),
            "--min-points-per-requests 6".into(),
            "3 requests values".into(),
        ] {
            assert!(err.contains(&want), "{want:?} not in {err}");
        }
        assert!(plan_with_floor(&p, need, &[], 6).is_ok());
        let err = plan_with_floor(&p, 1e9, &[], 50).unwrap_err().to_string();
        assert!(
            err.contains("requests value 1 has only 49 candidate"),
            "{err}"
        );
    }

    /// Fixed points count toward their value's floor and are never swapped out.
    #[test]
    fn fixed_points_count_toward_the_floor() {
        let p = Planner::new(&FlopsMem, three_values()).unwrap();
        let fixed = [98usize, 99, 100];
        let d = plan_with_floor(&p, 0.2 * full(&p), &fixed, 6).unwrap();
        assert!(fixed.iter().all(|f| d.chosen.contains(f)));
        assert!(holds(&p, &d.chosen, 6));
        let s = seed(&p, &fixed, 6);
        assert_eq!(counts(&p, &s), vec![(1.0, 6), (10.0, 6), (100.0, 6)]);
    }

    #[test]
    fn a_swap_never_takes_a_value_below_the_floor() {
        let p = Planner::new(&FlopsMem, three_values()).unwrap();
        // Two points at R = 1 (indices < 49), one at R = 10.
        let set = [0usize, 1, 49];
        assert!(!swap_keeps(&p, &set, 0, 50, 2), "R = 1 would fall to 1");
        assert!(swap_keeps(&p, &set, 0, 2, 2), "same value");
        assert!(swap_keeps(&p, &set, 0, 50, 1));
        assert!(swap_keeps(&p, &set, 2, 3, 0), "no floor");
    }
}
