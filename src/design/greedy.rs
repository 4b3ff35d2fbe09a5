//! Choosing the points: D-optimal under a budget of seconds.
//!
//! Maximising log det of the information under a knapsack constraint is NP-hard in general, but
//! log det is submodular in the chosen set, and for such objectives two greedy rules with a local
//! exchange are the standard near-optimal answer: add the point with the largest gain per second
//! (cheap, informative points first), or the largest gain outright (which the per-second rule can
//! starve when one expensive point is worth many cheap ones); then swap chosen for unchosen points
//! while the determinant grows and the budget holds. The better of the two is kept. A point is
//! chosen at most once: repeating a point measures its noise, not the surface.
//!
//! Before anything identifies the model the information is singular; a small ridge lets the gain
//! ln(1 + xᵀ(M + λI)⁻¹x) of the matrix determinant lemma rank points by the new directions they
//! open.

use super::{floor, Planner};
use anyhow::{bail, Result};

pub(crate) const RIDGE: f64 = 1e-6;
const MAX_SWAPS: usize = 500;

/// A chosen set of candidates.
#[derive(Clone, Debug, PartialEq)]
pub struct Design {
    /// Indices into the planner's candidates, in the order chosen.
    pub chosen: Vec<usize>,
    pub cost_s: f64,
    /// log det of the information (scaled units; comparable between designs of one planner).
    pub log_det: f64,
}

#[derive(Clone, Copy)]
enum Rule {
    PerSecond,
    Gain,
}

/// The cheapest set that identifies the model and contains `fixed` (points already measured):
/// candidates by cost, each kept when it raises the rank (the greedy rule that finds a cheapest
/// basis of a linear matroid), then the cheapest remaining one for the residual degree of freedom.
pub fn cheapest_identifying(p: &Planner, fixed: &[usize]) -> Result<Vec<usize>> {
    let mut set = fixed.to_vec();
    let mut order: Vec<usize> = (0..p.candidates.len())
        .filter(|i| !fixed.contains(i))
        .collect();
    order.sort_by(|&a, &b| p.candidates[a].cost_s.total_cmp(&p.candidates[b].cost_s));
    let mut r = p.rank(&set);
    for &j in &order {
        if r == p.k() {
            break;
        }
        set.push(j);
        let r2 = p.rank(&set);
        if r2 > r {
            r = r2;
        } else {
            set.pop();
        }
    }
    if r < p.k() {
        bail!(
            "design: the {} candidate points cannot identify model {} ({} coefficients) at all: give more input and output lengths",
            p.candidates.len(),
            p.model.name(),
            p.k()
        );
    }
    while set.len() <= p.k() {
        match order.iter().find(|j| !set.contains(j)) {
            Some(&j) => set.push(j),
            None => bail!(
                "design: model {} needs at least {} points, the grid has {}",
                p.model.name(),
                p.k() + 1,
                p.candidates.len()
            ),
        }
    }
    Ok(set)
}

/// The D-optimal design within `budget_s` seconds that contains `fixed` (their seconds count).
/// A budget below the cheapest identifying set's seconds is an error naming that budget.
pub fn plan(p: &Planner, budget_s: f64, fixed: &[usize]) -> Result<Design> {
    plan_with_floor(p, budget_s, fixed, 0)
}

/// `plan` with at least `min_per_requests` points at every requests value of the candidates
/// (`floor.rs`; 0: no floor, the same design as `plan`). A budget below the cheapest set found that
/// holds the floor and identifies the model is an error naming its seconds.
pub fn plan_with_floor(
    p: &Planner,
    budget_s: f64,
    fixed: &[usize],
    min_per_requests: usize,
) -> Result<Design> {
    let k = min_per_requests;
    let minimal = floor::minimal(p, fixed, k)?;
    let min_cost = p.cost(&minimal);
    if budget_s < min_cost && k == 0 {
        bail!(
            "--budget-s {budget_s}: too small to identify model {} (at least {} points spanning input and output lengths); the cheapest such set of these candidates costs {:.1} s: give --budget-s {}",
            p.model.name(),
            p.k() + 1,
            min_cost,
            min_cost.ceil()
        );
    }
    if budget_s < min_cost {
        let rs = p.requests_values();
        bail!(
            "--budget-s {budget_s}: too small for --min-points-per-requests {k} ({k} design points at each of the {} requests values, {} in all) and a set that identifies model {}; the cheapest such set of these candidates costs {:.1} s: give --budget-s {}, or a smaller --min-points-per-requests (0: no floor)",
            rs.len(),
            minimal.len(),
            p.model.name(),
            min_cost,
            min_cost.ceil()
        );
    }
    // The floor's seed where it fits the budget, else the cheapest set that holds the floor.
    let seed = match k {
        0 => fixed.to_vec(),
        _ => Some(floor::seed(p, fixed, k))
            .filter(|s| p.cost(s) <= budget_s)
            .unwrap_or_else(|| minimal.clone()),
    };
    let mut best: Option<Design> = None;
    for start in [
        greedy(p, budget_s, seed.clone(), Rule::PerSecond),
        greedy(p, budget_s, seed, Rule::Gain),
        greedy(p, budget_s, minimal, Rule::PerSecond),
    ] {
        let set = exchange(p, budget_s, fixed, k, start);
        let d = Design {
            log_det: p.log_det(&set),
            cost_s: p.cost(&set),
            chosen: set,
        };
        if p.identifies(&d.chosen)
            && floor::holds(p, &d.chosen, k)
            && best.as_ref().is_none_or(|b| d.log_det > b.log_det)
        {
            best = Some(d);
        }
    }
    // The third start identifies and holds the floor, and exchanges keep the determinant finite
    // and the floor, so one always does.
    best.ok_or_else(|| anyhow::anyhow!("design: no identifying design found"))
}

/// The point to measure in place of one that could not be measured: among the candidates outside
/// `set` (the design's other points) and `excluded` (points measured, planned, held out or failed)
/// that cost at most `left_s`, the one with the largest information gain per second, the step the
/// per-second greedy rule would take next (the ridge ranks points where `set` no longer identifies
/// the model). `None` when no such candidate is left.
pub fn next_best(p: &Planner, set: &[usize], excluded: &[usize], left_s: f64) -> Option<usize> {
    let inv = p.information(set, RIDGE).try_inverse()?;
    let taken: Vec<usize> = set.iter().chain(excluded).copied().collect();
    p.best_affordable(&taken, left_s, |j| {
        let x = p.row(j);
        (1.0 + (x.transpose() * &inv * x)[(0, 0)]).ln() / p.candidates[j].cost_s
    })
}

/// Add points by `rule` while the budget allows.
fn greedy(p: &Planner, budget_s: f64, mut set: Vec<usize>, rule: Rule) -> Vec<usize> {
    loop {
        let left = budget_s - p.cost(&set);
        let Some(inv) = p.information(&set, RIDGE).try_inverse() else {
            return set;
        };
        let best = p.best_affordable(&set, left, |j| {
            let x = p.row(j);
            let gain = (1.0 + (x.transpose() * &inv * x)[(0, 0)]).ln();
            match rule {
                Rule::PerSecond => gain / p.candidates[j].cost_s,
                Rule::Gain => gain,
            }
        });
        match best {
            Some(j) => set.push(j),
            None => return set,
        }
    }
}

/// Swap chosen (not fixed) points for unchosen ones while log det grows within the budget and no
/// requests value falls below `floor` points, refilling the budget a swap frees.
fn exchange(
    p: &Planner,
    budget_s: f64,
    fixed: &[usize],
    min_per_requests: usize,
    mut set: Vec<usize>,
) -> Vec<usize> {
    let mut current = p.log_det_unchecked(&set);
    for _ in 0..MAX_SWAPS {
        let cost = p.cost(&set);
        let mut improved = false;
        'outer: for pos in 0..set.len() {
            if fixed.contains(&set[pos]) {
                continue;
            }
            for j in 0..p.candidates.len() {
                if set.contains(&j)
                    || cost - p.candidates[set[pos]].cost_s + p.candidates[j].cost_s > budget_s
                    || !floor::swap_keeps(p, &set, pos, j, min_per_requests)
                {
                    continue;
                }
                let old = set[pos];
                set[pos] = j;
                let v = p.log_det_unchecked(&set);
                if v > current + 1e-9 {
                    set = greedy(p, budget_s, set, Rule::PerSecond);
                    current = p.log_det_unchecked(&set);
                    improved = true;
                    break 'outer;
                }
                set[pos] = old;
            }
        }
        if !improved {
            break;
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::super::tests::grid_candidates;
    use super::*;
    use crate::analytic::FlopsMem;

    #[test]
    fn design_respects_budget_and_identifies() {
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        let full = p.cost(&(0..49).collect::<Vec<_>>());
        for frac in [0.02, 0.05, 0.1, 0.3] {
            let d = plan(&p, frac * full, &[]).unwrap();
            assert!(
                d.cost_s <= frac * full + 1e-9,
                "{} > {}",
                d.cost_s,
                frac * full
            );
            assert!(p.identifies(&d.chosen));
            let mut u = d.chosen.clone();
            u.sort();
            u.dedup();
            assert_eq!(u.len(), d.chosen.len(), "a point chosen twice");
        }
    }

    /// A larger budget never yields a worse determinant, and the optimum beats random designs of
    /// the same cost.
    #[test]
    fn more_budget_more_information_and_better_than_random() {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        let full = p.cost(&(0..49).collect::<Vec<_>>());
        let a = plan(&p, 0.05 * full, &[]).unwrap();
        let b = plan(&p, 0.2 * full, &[]).unwrap();
        assert!(b.log_det >= a.log_det);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut idx: Vec<usize> = (0..49).collect();
            idx.shuffle(&mut rng);
            let mut set = Vec::new();
            for i in idx {
                if p.cost(&set) + p.candidates[i].cost_s <= 0.05 * full {
                    set.push(i);
                }
            }
            assert!(p.log_det(&set) <= a.log_det + 1e-9);
        }
    }

    #[test]
    fn too_small_budget_names_the_smallest_that_identifies() {
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        let min = cheapest_identifying(&p, &[]).unwrap();
        assert_eq!(min.len(), 7);
        assert!(p.identifies(&min));
        let need = p.cost(&min);
        let err = plan(&p, need * 0.9, &[]).err().unwrap().to_string();
        assert!(err.contains(&format!("{:.1} s", need)), "{err}");
        assert!(plan(&p, need, &[]).is_ok());
        // Cheapest: no identifying set of 7 found by brute force over the 20 cheapest is cheaper.
        let mut order: Vec<usize> = (0..49).collect();
        order.sort_by(|&a, &b| p.candidates[a].cost_s.total_cmp(&p.candidates[b].cost_s));
        let cheap = &order[..12];
        let mut best = f64::INFINITY;
        for mask in 0u32..(1 << cheap.len()) {
            if mask.count_ones() != 7 {
                continue;
            }
            let s: Vec<usize> = (0..cheap.len())
                .filter(|b| mask >> b & 1 == 1)
                .map(|b| cheap[b])
                .collect();
            if p.identifies(&s) {
                best = best.min(p.cost(&s));
            }
        }
        assert!(need <= best + 1e-9, "{need} > brute force {best}");
    }

    /// The replacement of a lost design point is affordable, outside the design and the excluded
    /// points, and no other such candidate gains more information per second.
    #[test]
    fn next_best_replaces_a_lost_point_by_the_best_gain_per_second() {
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        let full = p.cost(&(0..49).collect::<Vec<_>>());
        let d = plan(&p, 0.1 * full, &[]).unwrap();
        let lost = *d
            .chosen
            .iter()
            .max_by(|&&a, &&b| p.candidates[a].cost_s.total_cmp(&p.candidates[b].cost_s))
            .unwrap();
        let rest: Vec<usize> = d.chosen.iter().copied().filter(|&i| i != lost).collect();
        let left = p.candidates[lost].cost_s;
        let j = next_best(&p, &rest, &[lost], left).unwrap();
        assert!(!d.chosen.contains(&j) && p.candidates[j].cost_s <= left);
        // log det with the ridge: the gain the rule ranks by (matrix determinant lemma).
        let ld = |s: &[usize]| {
            let c = p.information(s, RIDGE).cholesky().unwrap();
            2.0 * c.l().diagonal().iter().map(|d| d.ln()).sum::<f64>()
        };
        let per_s = |k: usize| {
            let mut s = rest.clone();
            s.push(k);
            (ld(&s) - ld(&rest)) / p.candidates[k].cost_s
        };
        for k in (0..49).filter(|k| !d.chosen.contains(k) && p.candidates[*k].cost_s <= left) {
            assert!(per_s(j) >= per_s(k) - 1e-9, "{k} beats {j}");
        }
        // Nothing affordable left: no replacement.
        let all: Vec<usize> = (0..49).filter(|k| !rest.contains(k)).collect();
        assert_eq!(next_best(&p, &rest, &all, left), None);
    }

    /// Points already measured stay in the design and their seconds count.
    #[test]
    fn fixed_points_are_kept() {
        let p = Planner::new(&FlopsMem, grid_candidates()).unwrap();
        let full = p.cost(&(0..49).collect::<Vec<_>>());
        let fixed = [48usize, 0];
        let d = plan(&p, 0.3 * full, &fixed).unwrap();
        assert!(fixed.iter().all(|f| d.chosen.contains(f)));
        assert!(d.cost_s <= 0.3 * full);
    }
}
