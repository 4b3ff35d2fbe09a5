//! The same grid points measured in several places (files, or the values of a column such as
//! `gpu_uuid`, `engine` or `driver`): each place's mean energy per token at each point they share,
//! and its difference from the first place that measured the point.
//!
//! Two cards of one GPU model spend a few per cent apart on the same points, and a file measured
//! across cards or engine commits mixes them; the points two places share are what tells how far
//! apart the places are, before any model is fitted to either.

use crate::dataset::schema::{
    is_fitted, ENERGY_PER_TOKEN_J, INPUT_TOKENS, LLM, OUTPUT_TOKENS, STATUS,
};
use crate::dataset::settings::setting_cells;
use crate::dataset::Dataset;
use crate::fit::stats::min_median_max;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// The run settings two rows must share to measure the same point (the GPU may differ: that is
/// what a comparison of cards is for).
pub const SETTINGS: [&str; 4] = ["requests", "max_batch_size", "max_num_tokens", "dtype"];

/// A grid point under its run settings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Point {
    pub llm: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The values of [`SETTINGS`], in that order, as text (a missing cell takes `measure`'s default).
    pub settings: [String; 4],
}

/// The `ok` rows of one place: each row's point and energy per token (J).
pub type Place = (String, Vec<(Point, f64)>);

/// One place's mean at a shared point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Value {
    /// Index into [`Comparison::places`].
    pub place: usize,
    pub energy_per_token_j: f64,
    /// Rows (repeats) averaged.
    pub rows: usize,
    /// Against the first place (in the order given) that measured the point, in per cent; `None`
    /// for that place itself.
    pub diff_pct: Option<f64>,
}

/// A point measured in two places or more.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shared {
    pub point: Point,
    pub values: Vec<Value>,
}

/// How far one place is from another over the points both measured (the other being the first
/// place to measure each of them).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairSummary {
    pub place: usize,
    pub against: usize,
    pub points: usize,
    pub min_pct: f64,
    pub median_pct: f64,
    pub max_pct: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub places: Vec<String>,
    pub shared: Vec<Shared>,
    pub summary: Vec<PairSummary>,
}

/// Compare `places` at every point two or more of them measured; repeats within a place are
/// averaged first.
pub fn compare(places: &[Place]) -> Comparison {
    let mut at: BTreeMap<&Point, BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    for (i, (_, rows)) in places.iter().enumerate() {
        for (p, e) in rows {
            at.entry(p).or_default().entry(i).or_default().push(*e);
        }
    }
    let mut shared = Vec::new();
    let mut diffs: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for (point, by_place) in at.into_iter().filter(|(_, v)| v.len() > 1) {
        let means: Vec<(usize, f64, usize)> = by_place
            .into_iter()
            .map(|(i, es)| (i, es.iter().sum::<f64>() / es.len() as f64, es.len()))
            .collect();
        let (first, reference, _) = means[0];
        let values = means
            .into_iter()
            .map(|(place, e, rows)| {
                let diff_pct = (place != first).then(|| 100.0 * (e / reference - 1.0));
                if let Some(d) = diff_pct {
                    diffs.entry((place, first)).or_default().push(d);
                }
                Value {
                    place,
                    energy_per_token_j: e,
                    rows,
                    diff_pct,
                }
            })
            .collect();
        shared.push(Shared {
            point: point.clone(),
            values,
        });
    }
    let summary = diffs
        .into_iter()
        .filter_map(|((place, against), d)| {
            let points = d.len();
            let (min_pct, median_pct, max_pct) = min_median_max(d)?;
            Some(PairSummary {
                place,
                against,
                points,
                min_pct,
                median_pct,
                max_pct,
            })
        })
        .collect();
    Comparison {
        places: places.iter().map(|(name, _)| name.clone()).collect(),
        shared,
        summary,
    }
}

/// The `ok` rows of `ds` (fitted rows and hold-outs alike) as places: one named `label` when `by`
/// is empty, else one per combination of the values of the columns `by`, in the order the
/// combinations first occur.
pub fn places_of(ds: &Dataset, by: &[String], label: &str) -> Result<Vec<Place>> {
    ds.require_by(by)?;
    let num = |name: &str| -> Result<Vec<Option<f64>>> {
        Ok(ds.df.column(name)?.f64()?.iter().collect())
    };
    let (n, m, e) = (
        num(INPUT_TOKENS)?,
        num(OUTPUT_TOKENS)?,
        num(ENERGY_PER_TOKEN_J)?,
    );
    let llm = ds.text_column(LLM)?;
    let status = ds
        .df
        .column(STATUS)
        .is_ok()
        .then(|| ds.text_column(STATUS))
        .transpose()?;
    let settings: Vec<Vec<String>> = SETTINGS
        .iter()
        .map(|name| setting_cells(ds, name))
        .collect::<Result<_>>()?;
    let by_cells: Vec<Vec<Option<String>>> = by
        .iter()
        .map(|c| ds.text_column(c))
        .collect::<Result<_>>()?;
    let mut places: Vec<Place> = Vec::new();
    for i in 0..ds.df.height() {
        if !is_fitted(status.as_ref().and_then(|s| s[i].as_deref())) {
            continue;
        }
        let name = if by.is_empty() {
            label.to_string()
        } else {
            let named: Vec<String> = by
                .iter()
                .zip(&by_cells)
                .map(|(col, cells)| {
                    let v = cells[i].as_deref().filter(|v| !v.trim().is_empty());
                    format!("{col}={}", v.unwrap_or("(empty)"))
                })
                .collect();
            named.join(", ")
        };
        let point = Point {
            llm: llm[i].clone().unwrap_or_default(),
            // Validated on load: every ok row has positive whole token counts and an energy.
            input_tokens: n[i].unwrap_or_default() as u64,
            output_tokens: m[i].unwrap_or_default() as u64,
            settings: std::array::from_fn(|s| settings[s][i].clone()),
        };
        let row = (point, e[i].unwrap_or(f64::NAN));
        match places.iter_mut().find(|(p, _)| *p == name) {
            Some((_, rows)) => rows.push(row),
            None => places.push((name, vec![row])),
        }
    }
    Ok(places)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(n: u64, m: u64) -> Point {
        Point {
            llm: "x".into(),
            input_tokens: n,
            output_tokens: m,
            settings: ["1000", "1024", "8192", "bf16"].map(String::from),
        }
    }

    #[test]
    fn each_place_is_compared_with_the_first_that_measured_the_point() {
        let places: Vec<Place> = vec![
            (
                "a".into(),
                vec![(point(64, 64), 1.0), (point(64, 128), 2.0)],
            ),
            // Two repeats of (64, 64): their mean, 1.03, is 3 % above a's.
            (
                "b".into(),
                vec![
                    (point(64, 64), 1.02),
                    (point(64, 64), 1.04),
                    (point(128, 64), 4.0),
                ],
            ),
            // (128, 64) was first measured by b: c is compared with b there, with a at (64, 128).
            (
                "c".into(),
                vec![(point(128, 64), 3.8), (point(64, 128), 2.2)],
            ),
        ];
        let c = compare(&places);
        assert_eq!(c.places, ["a", "b", "c"]);
        let pts: Vec<(u64, u64)> = c
            .shared
            .iter()
            .map(|s| (s.point.input_tokens, s.point.output_tokens))
            .collect();
        assert_eq!(pts, [(64, 64), (64, 128), (128, 64)]);
        let v = &c.shared[0].values;
        assert_eq!((v[0].place, v[0].diff_pct, v[0].rows), (0, None, 1));
        assert_eq!((v[1].place, v[1].rows), (1, 2));
        assert!((v[1].energy_per_token_j - 1.03).abs() < 1e-12);
        assert!((v[1].diff_pct.unwrap() - 3.0).abs() < 1e-9);
        let c_vs_b = &c.shared[2].values[1];
        assert_eq!(c_vs_b.place, 2);
        assert!((c_vs_b.diff_pct.unwrap() + 5.0).abs() < 1e-9);
        let pairs: Vec<(usize, usize, usize)> = c
            .summary
            .iter()
            .map(|s| (s.place, s.against, s.points))
            .collect();
        assert_eq!(pairs, [(1, 0, 1), (2, 0, 1), (2, 1, 1)]);
        assert!((c.summary[1].median_pct - 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_summary_takes_min_median_and_max_over_the_shared_points() {
        let a: Vec<(Point, f64)> = (1..=4).map(|k| (point(64 * k, 64), 1.0)).collect();
        let b: Vec<(Point, f64)> = [1.01, 0.98, 1.04, 1.02]
            .iter()
            .zip(1..=4)
            .map(|(e, k)| (point(64 * k, 64), *e))
            .collect();
        let c = compare(&[("a".into(), a), ("b".into(), b)]);
        let s = &c.summary[0];
        assert_eq!((s.place, s.against, s.points), (1, 0, 4));
        assert!((s.min_pct + 2.0).abs() < 1e-9);
        assert!((s.median_pct - 1.5).abs() < 1e-9, "mean of the middle two");
        assert!((s.max_pct - 4.0).abs() < 1e-9);
    }

    #[test]
    fn other_run_settings_are_other_points() {
        let mut q = point(64, 64);
        q.settings[0] = "500".into();
        let c = compare(&[
            ("a".into(), vec![(point(64, 64), 1.0)]),
            ("b".into(), vec![(q, 1.1)]),
        ]);
        assert!(c.shared.is_empty() && c.summary.is_empty());
    }
}
