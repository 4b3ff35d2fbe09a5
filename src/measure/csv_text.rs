//! CSV text as `measure` writes and reads it: quoting a field, splitting a record, splitting a
//! file into its header and records. Hand-written because a row must reach the file as one
//! complete line (see `writer.rs`); measurement rows, plan files and `merge` share these rules.

use anyhow::{bail, Result};

/// One CSV field, quoted (RFC 4180) where it holds a comma, quote or line break.
pub fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Split one CSV record (RFC 4180 quoting; the record holds no raw newline since we never write one
/// unquoted and `quote` keeps it inside quotes — callers split on lines first, so rows with quoted
/// newlines are not supported, and `measure` never writes them: reasons are single-line).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => out.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The header and the records (with their 1-based line numbers) of CSV text. Blank lines are not
/// records; a record whose field count differs from the header's is an error naming its line.
pub type Records = (Vec<String>, Vec<(usize, Vec<String>)>);

/// Split CSV text into its header and records (see [`Records`]).
pub fn csv_records(text: &str, file: &str) -> Result<Records> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let names: Vec<String> = split_csv(header)
        .into_iter()
        .map(|s| s.trim().to_string())
        .collect();
    let mut records = Vec::new();
    for (i, line) in lines {
        let vals = split_csv(line);
        if vals.len() != names.len() {
            bail!(
                "{file}: line {}: {} fields, header has {}",
                i + 1,
                vals.len(),
                names.len()
            );
        }
        records.push((i + 1, vals));
    }
    Ok((names, records))
}
