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
