//! The `status` column: whether a row is a finished measurement. One type instead of text compared
//! to "ok" in many places; the readers parse it once and name the cell of a value it cannot be.

use std::fmt;

/// A row's status: `ok` (measured; fitted) or `skipped: <reason>` (could not be measured; kept as
/// history, never fitted). An empty or absent cell reads as `ok`, since files written by other
/// tools need not have the column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The reason, on one line (may be empty: `skipped`).
    Skipped(String),
}

impl Status {
    /// A skipped status; line breaks in the reason become spaces, so the row stays one CSV line.
    pub fn skipped(why: &str) -> Status {
        Status::Skipped(why.replace(['\n', '\r'], " "))
    }

    pub fn is_ok(&self) -> bool {
        *self == Status::Ok
    }

    /// Parse a cell. The error says what the value may be; callers add the file, row and column.
    pub fn parse(cell: &str) -> Result<Status, String> {
        let t = cell.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("ok") {
            return Ok(Status::Ok);
        }
        let head = t.get(..7).unwrap_or("");
        if head.eq_ignore_ascii_case("skipped") {
            let rest = &t[7..];
            if rest.is_empty() {
                return Ok(Status::Skipped(String::new()));
            }
            if let Some(why) = rest.strip_prefix(':') {
                return Ok(Status::Skipped(why.trim().to_string()));
            }
        }
        Err(format!(
            "status {cell:?} is neither ok, empty nor skipped: <reason>"
        ))
    }
}

/// A row not yet measured: skipped until the meter says otherwise, so a row is never `ok` by
/// accident.
impl Default for Status {
    fn default() -> Status {
        Status::Skipped("not measured".into())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Ok => f.write_str("ok"),
            Status::Skipped(why) if why.is_empty() => f.write_str("skipped"),
            Status::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_is_written_and_refuses_the_rest() {
        for s in [
            Status::Ok,
            Status::skipped("run: out of\nmemory"),
            Status::Skipped(String::new()),
        ] {
            assert_eq!(Status::parse(&s.to_string()), Ok(s.clone()), "{s}");
        }
        assert_eq!(Status::parse(""), Ok(Status::Ok));
        assert_eq!(Status::parse(" OK "), Ok(Status::Ok));
        assert_eq!(
            Status::parse("skipped: prepare: x").unwrap().to_string(),
            "skipped: prepare: x"
        );
        assert_eq!(Status::skipped("a\nb").to_string(), "skipped: a b");
        for bad in ["failed", "skippedx", "done", "0", "é"] {
            let e = Status::parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert!(!Status::default().is_ok());
    }
}
