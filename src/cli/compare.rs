//! `energy-fit compare FILES.. [--by COLUMN]`: the energy per token of the grid points that several
//! files (or the values of a column: cards, engine commits, drivers) measured alike, and how far
//! apart they are.

use crate::compare::{compare, places_of, Comparison, Place, SETTINGS};
use crate::dataset::Dataset;
use crate::fit::table::{sci, Table};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Measurement files (.csv or .parquet). Without --by each file is one place, compared with
    /// the files before it.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Compare the values of these columns (comma-separated) over all the files' rows instead of
    /// the files (e.g. gpu_uuid: the cards; engine: the engine commits; engine,gpu_uuid: both), in
    /// the order the values first occur.
    #[arg(long, value_name = "COLUMN", value_delimiter = ',')]
    pub by: Vec<String>,
    /// Print one JSON document on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: CompareArgs) -> Result<()> {
    let places: Vec<Place> = if a.by.is_empty() {
        let mut all = Vec::new();
        for f in &a.files {
            let ds = Dataset::load(std::slice::from_ref(f))?;
            all.extend(places_of(&ds, &[], &f.display().to_string())?);
        }
        all
    } else {
        places_of(&Dataset::load(&a.files)?, &a.by, "")?
    };
    if places.len() < 2 {
        let what = if a.by.is_empty() {
            "one file".to_string()
        } else {
            format!("--by {} takes one value over the ok rows", a.by.join(","))
        };
        bail!(
            "nothing to compare: {what}; name two files, or --by columns with two values or more"
        );
    }
    let c = compare(&places);
    if c.shared.is_empty() {
        bail!(
            "no grid point (llm, input_tokens, output_tokens, {}) is measured in more than one of: {}",
            SETTINGS.join(", "),
            c.places.join(", ")
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print!("{}", render(&c));
    }
    Ok(())
}

/// The points table (one line per place at each shared point) and the summary per pair of places.
fn render(c: &Comparison) -> String {
    let varied = c
        .shared
        .iter()
        .any(|s| s.point.settings != c.shared[0].point.settings);
    let mut header = vec!["llm", "input_tokens", "output_tokens"];
    if varied {
        header.extend(SETTINGS);
    }
    header.extend(["place", "J/token", "rows", "against the first"]);
    let mut t = Table::new(&header);
    for s in &c.shared {
        for (k, v) in s.values.iter().enumerate() {
            let mut row: Vec<String> = if k == 0 {
                vec![
                    s.point.llm.clone(),
                    s.point.input_tokens.to_string(),
                    s.point.output_tokens.to_string(),
                ]
            } else {
                vec![String::new(); 3]
            };
            if varied {
                row.extend(s.point.settings.iter().map(|v| {
                    if k == 0 {
                        v.clone()
                    } else {
                        String::new()
                    }
                }));
            }
            row.extend([
                c.places[v.place].clone(),
                sci(v.energy_per_token_j),
                v.rows.to_string(),
                v.diff_pct.map_or(String::new(), |d| format!("{d:+.2} %")),
            ]);
            t.push(row);
        }
    }
    let mut out = String::from(
        "Energy per token at the grid points measured in more than one place (repeats averaged; each \
         place against the first place that measured the point)\n",
    );
    if !varied {
        let s = &c.shared[0].point.settings;
        let named: Vec<String> = SETTINGS
            .iter()
            .zip(s)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.push_str(&format!("run settings: {}\n", named.join(", ")));
    }
    out.push_str(&t.render());
    let mut sum = Table::new(&["place", "against", "points", "min", "median", "max"]);
    for p in &c.summary {
        sum.push(vec![
            c.places[p.place].clone(),
            c.places[p.against].clone(),
            p.points.to_string(),
            format!("{:+.2} %", p.min_pct),
            format!("{:+.2} %", p.median_pct),
            format!("{:+.2} %", p.max_pct),
        ]);
    }
    out.push_str("\nEnergy per token against the other place, over the points both measured\n");
    out.push_str(&sum.render());
    out
}
