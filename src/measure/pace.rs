//! The pace of a sweep: how long the windows already measured took against the roofline estimate
//! of the same points, and so how long the points left will take.
//!
//! The estimate is a lower bound (`cost.rs`): a real window runs longer (1.03 to 2.2 times on our
//! H100 files, 1.1 to 1.6 times per file), by how far the engine is from its floor on that LLM and
//! point, and by the card's clocks. A plan sized by the bound
//! alone under-books the GPU time it asks for; the ratio measured on the rows a file already holds
//! is the best guide to the rest of the same plan on the same kind of card.

use super::plan::PlanRow;
use super::rows::{Key, Row};
use std::collections::HashMap;
use std::fmt::Write;

/// Measured windows against their estimates over one set of rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Pace {
    /// The card's `gpu_uuid` (empty: unknown, or all cards together).
    pub card: String,
    /// Rows counted: `ok` rows of a planned point that fits, with a measured window.
    pub points: usize,
    /// Sum of the rows' `window_s`.
    pub measured_s: f64,
    /// Sum of each row's estimated seconds of one run times its `window_runs`.
    pub estimated_s: f64,
    /// Smallest and largest ratio of one row's window to its estimate.
    pub min_ratio: f64,
    pub max_ratio: f64,
}

impl Pace {
    /// Measured over estimated seconds, the sums' ratio (long windows weigh more, as they do in
    /// the time a plan takes).
    pub fn ratio(&self) -> f64 {
        self.measured_s / self.estimated_s
    }

    fn add(&mut self, measured: f64, estimated: f64) {
        let r = measured / estimated;
        if self.points == 0 {
            (self.min_ratio, self.max_ratio) = (r, r);
        }
        self.points += 1;
        self.measured_s += measured;
        self.estimated_s += estimated;
        self.min_ratio = self.min_ratio.min(r);
        self.max_ratio = self.max_ratio.max(r);
    }

    fn empty(card: &str) -> Pace {
        Pace {
            card: card.to_string(),
            points: 0,
            measured_s: 0.0,
            estimated_s: 0.0,
            min_ratio: f64::NAN,
            max_ratio: f64::NAN,
        }
    }
}

/// The pace of `rows` on the points of `plan`: all cards together first, then one `Pace` per
/// card when the counted rows come from more than one (in the order the file first names them).
/// Rows of points not in the plan, skipped rows and rows without a window are left out; empty when
/// none is left.
pub fn pace(rows: &[Row], plan: &[PlanRow]) -> Vec<Pace> {
    let est: HashMap<Key, f64> = plan
        .iter()
        .filter_map(|r| {
            let (e, _) = r.fit.as_ref().ok()?;
            let key = Key {
                llm: r.llm.clone(),
                ..r.point.clone()
            };
            Some((key, *e))
        })
        .collect();
    let mut all = Pace::empty("");
    let mut cards: Vec<Pace> = Vec::new();
    for r in rows.iter().filter(|r| r.status.is_ok()) {
        let (Some(w), Some(runs), Some(e)) = (r.window_s, r.window_runs, est.get(&r.key())) else {
            continue;
        };
        let e = e * runs as f64;
        if !(w > 0.0 && e > 0.0) {
            continue;
        }
        all.add(w, e);
        match cards.iter_mut().find(|c| c.card == r.gpu_uuid) {
            Some(c) => c.add(w, e),
            None => {
                let mut c = Pace::empty(&r.gpu_uuid);
                c.add(w, e);
                cards.push(c);
            }
        }
    }
    if all.points == 0 {
        return Vec::new();
    }
    let mut out = vec![all];
    if cards.len() > 1 {
        out.extend(cards);
    }
    out
}

/// The lines `measure --dry-run --resume` prints below its table: the pace so far in `file` and
/// the time the points left (`left_est_s` estimated seconds) take at that pace. Empty without a
/// pace.
pub fn pace_text(paces: &[Pace], file: &str, left_points: usize, left_est_s: f64) -> String {
    let Some(all) = paces.first() else {
        return String::new();
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pace so far: {} of the plan's points in {file} took {:.0} s of measured windows against \
         {:.0} s estimated, {:.2}× (per point {:.2}–{:.2}×)",
        all.points,
        all.measured_s,
        all.estimated_s,
        all.ratio(),
        all.min_ratio,
        all.max_ratio
    );
    for c in &paces[1..] {
        let card = if c.card.is_empty() {
            "a card of unknown UUID"
        } else {
            &c.card
        };
        let _ = writeln!(
            s,
            "  on {card}: {} point{}, {:.0} s against {:.0} s, {:.2}× (per point {:.2}–{:.2}×)",
            c.points,
            if c.points == 1 { "" } else { "s" },
            c.measured_s,
            c.estimated_s,
            c.ratio(),
            c.min_ratio,
            c.max_ratio
        );
    }
    if left_points > 0 {
        let _ = writeln!(
            s,
            "at that pace the {left_points} points left take about {:.0} s of measured windows \
             ({:.0} s estimated; warm-up, idle and load time not included)",
            left_est_s * all.ratio(),
            left_est_s
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::rows::parse_csv;

    /// Sums over rows, each row's estimate being its runs times the one-run estimate; the ratio of
    /// the sums, the per-row extremes; per card only when there are several; rows off the plan,
    /// skipped, without a window, or of a point that does not fit are not counted.
    #[test]
    fn pace_sums_windows_against_runs_times_estimates() {
        let rows = parse_csv(
            "llm,input_tokens,output_tokens,requests,max_batch_size,max_num_tokens,dtype,repeat,\
             window_s,window_runs,gpu_uuid,status\n\
             llama-3.2-1b,64,64,1000,1024,8192,bf16,0,9,3,A,ok\n\
             llama-3.2-1b,64,128,1000,1024,8192,bf16,0,12,1,B,ok\n\
             llama-3.2-1b,512,64,1000,1024,8192,bf16,0,50,1,B,ok\n\
             llama-3.2-1b,64,64,1000,1024,8192,bf16,1,50,1,B,ok\n\
             llama-3.2-1b,64,128,1000,1024,8192,bf16,0,99,1,A,skipped: out of memory\n\
             llama-3.2-1b,64,128,1000,1024,8192,bf16,0,,1,B,ok\n",
            "synthetic.csv",
        )
        .unwrap();
        // The plan: (64, 64) at 2 s a run, (64, 128) at 10 s; (512, 64) does not fit; the repeat
        // of (64, 64) in row 4 is not planned.
        let keys: Vec<Key> = rows[..3].iter().map(Row::key).collect();
        let fits = [Ok((2.0, 3)), Ok((10.0, 1)), Err("needs 90 GiB".to_string())];
        let plan: Vec<PlanRow> = keys
            .iter()
            .zip(fits)
            .map(|(point, fit)| PlanRow {
                point,
                llm: point.llm.clone(),
                fit,
            })
            .collect();
        // Row 1: 9 s against 2 × 3 = 6 s, 1.5×; row 2: 12 s against 10 s, 1.2×.
        let p = pace(&rows, &plan);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(
            (p[0].points, p[0].measured_s, p[0].estimated_s),
            (2, 21.0, 16.0)
        );
        assert!((p[0].ratio() - 21.0 / 16.0).abs() < 1e-12);
        assert!((p[0].min_ratio - 1.2).abs() < 1e-12 && (p[0].max_ratio - 1.5).abs() < 1e-12);
        assert_eq!(
            (p[1].card.as_str(), p[1].points, p[1].estimated_s),
            ("A", 1, 6.0)
        );
        assert_eq!(
            (p[2].card.as_str(), p[2].points, p[2].measured_s),
            ("B", 1, 12.0)
        );
        // One card: no per-card lines; nothing counted: no pace.
        assert_eq!(pace(&rows[..1], &plan).len(), 1);
        assert!(pace(&rows[2..], &plan).is_empty());
        let text = pace_text(&p, "m.csv", 4, 100.0);
        assert!(
            text.contains("2 of the plan's points in m.csv took 21 s"),
            "{text}"
        );
        assert!(text.contains("1.31× (per point 1.20–1.50×)"), "{text}");
        assert!(
            text.contains("on A: 1 point, 9 s against 6 s, 1.50×"),
            "{text}"
        );
        assert!(
            text.contains("the 4 points left take about 131 s"),
            "{text}"
        );
        assert!(pace_text(&[], "m.csv", 4, 100.0).is_empty());
        assert!(!pace_text(&p, "m.csv", 0, 0.0).contains("left"), "{text}");
    }
}
