//! Plain tables for the terminal and for Markdown: the MAPE table (LLMs × models with mean and
//! std rows, like the published Table 3) and anything else laid out in rows.

/// A table of text cells; the first column is left-aligned, the rest right-aligned.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: ToString>(header: &[S]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Fixed-width text.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .chain([self.header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, w)| {
                    let s = cells.get(c).map(String::as_str).unwrap_or("");
                    if c == 0 {
                        format!("{s:<w$}")
                    } else {
                        format!("{s:>w$}")
                    }
                })
                .collect();
            parts.join("  ").trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        out.push_str(&line(
            &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
        ));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    /// GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.header.join(" | "));
        let align: Vec<&str> = (0..self.header.len())
            .map(|c| if c == 0 { ":---" } else { "---:" })
            .collect();
        out.push_str(&format!("| {} |\n", align.join(" | ")));
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        out
    }
}

/// MAPE table: one row per group, one column per model, then `mean` and `std` rows over groups
/// (sample standard deviation; cells that could not be fitted are `-` and left out of both).
pub fn mape_table(models: &[&str], rows: &[(String, Vec<Option<f64>>)]) -> Table {
    let mut header = vec!["LLM".to_string()];
    header.extend(models.iter().map(|m| m.to_string()));
    let mut t = Table::new(&header);
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for (label, vals) in rows {
        let mut r = vec![label.clone()];
        r.extend(vals.iter().map(|v| cell(*v)));
        t.push(r);
    }
    if !rows.is_empty() {
        let col = |c: usize| -> Vec<f64> { rows.iter().filter_map(|(_, v)| v[c]).collect() };
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let std = |v: &[f64]| {
            (v.len() > 1).then(|| {
                let m = v.iter().sum::<f64>() / v.len() as f64;
                (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
            })
        };
        let mut mr = vec!["mean".to_string()];
        let mut sr = vec!["std".to_string()];
        for c in 0..models.len() {
            mr.push(cell(mean(&col(c))));
            sr.push(cell(std(&col(c))));
        }
        t.push(mr);
        t.push(sr);
    }
    t
}

/// Numbers as the coefficient table prints them.
pub fn sci(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        format!("{v}")
    } else {
        format!("{v:.4e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mape_table_mean_and_std() {
        let rows = vec![
            ("a".to_string(), vec![Some(1.0), Some(2.0)]),
            ("b".to_string(), vec![Some(3.0), None]),
        ];
        let t = mape_table(&["b1", "flops"], &rows);
        assert_eq!(t.rows[2], vec!["mean", "2.00", "2.00"]);
        assert_eq!(t.rows[3], vec!["std", "1.41", "-"]);
        let text = t.render();
        assert!(text.lines().next().unwrap().starts_with("LLM"));
        assert!(t.markdown().contains("| b | 3.00 | - |"));
    }
}
