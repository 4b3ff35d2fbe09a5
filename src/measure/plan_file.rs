//! Plan files: writing one (`--plan-csv` of `design` and `measure --dry-run`, atomically, never
//! over a file that is not a plan) and reading one back (`measure --plan FILE`): the points to
//! measure with their run settings and roles. A plan describes one LLM under one set of run
//! settings, except that the number of requests may differ from row to row (a design over the
//! concurrency axis); anything else in it is an error naming the file, the line and the value.

use super::plan::{
    dtype_bytes, Point, MAX_BATCH_SIZE, MAX_NUM_TOKENS, MAX_REPEATS, MAX_REQUESTS, MAX_TOKENS,
    PLAN_COLUMNS,
};
use super::rows::split_csv;
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::path::Path;

/// Roles a plan row may carry: empty (a plain grid point), `design` or `holdout`.
pub const ROLES: [&str; 3] = ["", "design", "holdout"];

/// Write plan text (`plan::plan_csv`) to `path` for `--plan-csv`: through a temporary file and a
/// rename, so a reader sees the old plan or the new one, never half; an existing file that is
/// not a plan (its first line is not the plan header) is refused, so a typo cannot replace data.
pub fn write_plan(path: &Path, text: &str) -> Result<()> {
    if path.exists() {
        let old = std::fs::read_to_string(path)
            .with_context(|| format!("--plan-csv: cannot read existing '{}'", path.display()))?;
        let first = old.lines().next().unwrap_or("");
        if !first.is_empty()
            && !first.starts_with(&PLAN_COLUMNS[..PLAN_COLUMNS.len() - 1].join(","))
        {
            bail!(
                "--plan-csv: '{}' exists and is not a plan file; refusing to overwrite it",
                path.display()
            );
        }
    }
    crate::fsutil::write_atomic(path, text.as_bytes())
        .with_context(|| format!("--plan-csv: writing {}", path.display()))
}

/// The points of a plan file, in its order, each with its role.
pub fn read_plan(path: &Path) -> Result<Vec<(Point, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--plan: cannot read '{}'", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("--plan: '{}' is empty", path.display());
    };
    let cols = split_csv(header);
    // The role column came last and is optional, so plans written before it still read.
    let with_role = cols == PLAN_COLUMNS;
    if !with_role && cols[..] != PLAN_COLUMNS[..PLAN_COLUMNS.len() - 1] {
        bail!(
            "--plan: '{}', line 1: expected the columns {} (as `measure --dry-run --plan-csv` and `design --plan-csv` write them), got {header:?}",
            path.display(),
            PLAN_COLUMNS.join(",")
        );
    }
    let mut out: Vec<(Point, String)> = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in lines {
        let at = format!("--plan: '{}', line {}", path.display(), i + 1);
        let f = split_csv(line);
        if f.len() != cols.len() {
            bail!("{at}: {} fields, the header has {}", f.len(), cols.len());
        }
        let get = |c: &str| {
            f[PLAN_COLUMNS.iter().position(|x| *x == c).unwrap()]
                .trim()
                .to_string()
        };
        // The bounds of measure's own flags (`plan::MAX_*`): a plan runs what a grid may.
        let int = |c: &str, min: u64| -> Result<u64> {
            let max = match c {
                "input_tokens" | "output_tokens" => MAX_TOKENS,
                "requests" => MAX_REQUESTS,
                "max_batch_size" => MAX_BATCH_SIZE,
                "max_num_tokens" => MAX_NUM_TOKENS,
                _ => MAX_REPEATS - 1,
            };
            let v = get(c);
            match v.parse::<u64>() {
                Ok(x) if (min..=max).contains(&x) => Ok(x),
                _ => bail!("{at}, column {c}: {v:?} is not an integer in {min}..={max}"),
            }
        };
        let llm = get("llm");
        if llm.is_empty() {
            bail!("{at}, column llm: empty");
        }
        let dtype = get("dtype");
        if dtype_bytes(&dtype).is_none() {
            bail!("{at}, column dtype: unknown dtype {dtype:?} (expected bf16, fp16 or fp32)");
        }
        let role = if with_role {
            get("role")
        } else {
            String::new()
        };
        if !ROLES.contains(&role.as_str()) {
            bail!("{at}, column role: {role:?} is not one of design, holdout or empty");
        }
        let p = Point {
            llm,
            input_tokens: int("input_tokens", 1)?,
            output_tokens: int("output_tokens", 1)?,
            requests: int("requests", 1)?,
            max_batch_size: int("max_batch_size", 1)?,
            max_num_tokens: int("max_num_tokens", 1)?,
            dtype,
            repeat: int("repeat", 0)?,
        };
        if let Some((first, _)) = out.first() {
            for (c, a, b) in [
                ("llm", &first.llm, &p.llm),
                ("dtype", &first.dtype, &p.dtype),
            ] {
                if a != b {
                    bail!("{at}, column {c}: {b:?} differs from {a:?} of the first point; a plan holds one LLM and one set of run settings");
                }
            }
            for (c, a, b) in [
                ("max_batch_size", first.max_batch_size, p.max_batch_size),
                ("max_num_tokens", first.max_num_tokens, p.max_num_tokens),
            ] {
                if a != b {
                    bail!("{at}, column {c}: {b} differs from {a} of the first point; a plan holds one LLM and one set of run settings (only requests may vary)");
                }
            }
        }
        if !seen.insert((p.input_tokens, p.output_tokens, p.requests, p.repeat)) {
            bail!(
                "{at}: input_tokens {} output_tokens {} requests {} repeat {} is planned twice",
                p.input_tokens,
                p.output_tokens,
                p.requests,
                p.repeat
            );
        }
        out.push((p, role));
    }
    if out.is_empty() {
        bail!("--plan: '{}' has a header but no points", path.display());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Vec<(Point, String)>> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("plan.csv");
        std::fs::write(&p, text).unwrap();
        read_plan(&p)
    }

    const HEAD: &str = "llm,input_tokens,output_tokens,requests,max_batch_size,max_num_tokens,dtype,repeat,fits,est_s,runs,role\n";

    #[test]
    fn reads_points_and_roles() {
        let v = plan(&format!(
            "{HEAD}llama-3.2-1b,64,128,1000,1024,8192,bf16,0,true,1.5,4,design\nllama-3.2-1b,4096,64,1000,1024,8192,bf16,0,true,9.0,1,holdout\n"
        ))
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].0.input_tokens, v[0].0.output_tokens, v[0].1.as_str()),
            (64, 128, "design")
        );
        assert_eq!(v[1].1, "holdout");
        // Without the role column (older plans): roles empty.
        let old = HEAD.replace(",role", "");
        let v = plan(&format!(
            "{old}llama-3.2-1b,64,128,1000,1024,8192,bf16,0,true,1.5,4\n"
        ))
        .unwrap();
        assert_eq!(v[0].1, "");
    }

    /// A design over the concurrency axis: the same (n, m) at several requests values.
    #[test]
    fn requests_may_vary_per_row() {
        let v = plan(&format!(
            "{HEAD}llama-3.2-1b,64,128,1,1024,8192,bf16,0,true,0.1,50,design\nllama-3.2-1b,64,128,100,1024,8192,bf16,0,true,1.5,4,design\n"
        ))
        .unwrap();
        let r: Vec<u64> = v.iter().map(|(p, _)| p.requests).collect();
        assert_eq!(r, [1, 100]);
    }

    #[test]
    fn errors_name_file_line_and_value() {
        let row = "llama-3.2-1b,64,128,1000,1024,8192,bf16,0,true,1.5,4,design\n";
        let cases = [
            (
                format!("{HEAD}{row}llama-3.1-8b,64,256,1000,1024,8192,bf16,0,true,1,1,design\n"),
                "line 3, column llm",
            ),
            (
                format!("{HEAD}{row}llama-3.2-1b,64,256,1000,512,8192,bf16,0,true,1,1,design\n"),
                "line 3, column max_batch_size: 512 differs from 1024",
            ),
            (
                format!("{HEAD}{row}{row}"),
                "line 3: input_tokens 64 output_tokens 128 requests 1000 repeat 0 is planned twice",
            ),
            (
                format!("{HEAD}llama-3.2-1b,-64,128,1000,1024,8192,bf16,0,true,1.5,4,\n"),
                "line 2, column input_tokens: \"-64\"",
            ),
            (
                format!("{HEAD}llama-3.2-1b,64,128,1000,1024,8192,int4,0,true,1.5,4,\n"),
                "column dtype: unknown dtype \"int4\"",
            ),
            (
                format!("{HEAD}llama-3.2-1b,64,128,1000,1024,8192,bf16,0,true,1.5,4,train\n"),
                "column role: \"train\"",
            ),
            (
                format!("{HEAD}llama-3.2-1b,64,128\n"),
                "line 2: 3 fields, the header has 12",
            ),
            ("llm,n,m\n".to_string(), "line 1: expected the columns"),
            (HEAD.to_string(), "no points"),
            (String::new(), "is empty"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", plan(&text).err().unwrap());
            assert!(
                err.contains(want) && err.contains("plan.csv"),
                "want {want:?} in {err}"
            );
        }
    }
}
