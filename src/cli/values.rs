//! Value parsers of the command-line flags. clap calls one on each value (each element of a comma
//! list) and reports a failure as `invalid value 'V' for '--flag <X>': <message>`, so every bad
//! value is refused before the command starts, naming the flag and the value; the message says
//! what was expected. The bounds are the library's (e.g. `measure::plan::MAX_TOKENS`), so a grid
//! built from a plan file or a design is held to the same ones.

/// A number > 0 (and finite).
pub fn positive_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected a positive number, got {s:?}")),
    }
}

/// Most GPU memory a flag may state (GiB): far above any GPU, low enough that byte counts derived
/// from it stay exact integers.
pub const MAX_GPU_MEM_GIB: f64 = 1_048_576.0;

/// GPU memory in GiB: > 0 and at most [`MAX_GPU_MEM_GIB`].
pub fn gpu_mem_gib(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= MAX_GPU_MEM_GIB => Ok(v),
        _ => Err(format!(
            "expected GPU memory in GiB, above 0 and at most {MAX_GPU_MEM_GIB}, got {s:?}"
        )),
    }
}

/// Sequences in flight per decode step: at least one, at most the most requests a batch may hold
/// (`measure::plan::MAX_BATCH_SIZE`).
pub fn in_flight(s: &str) -> Result<f64, String> {
    let max = crate::measure::plan::MAX_BATCH_SIZE as f64;
    match s.trim().parse::<f64>() {
        Ok(v) if (1.0..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected sequences in flight from 1 to {max}, got {s:?}"
        )),
    }
}

/// A fraction in (0, 1].
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("expected a fraction in (0, 1], got {s:?}")),
    }
}

/// Seconds in 0..=`max` (0 allowed: it means "as short as possible" where a flag takes it).
pub fn seconds(max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |s: &str| match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds in 0..={max}, got {s:?}")),
    }
}

/// A whole number in `lo..=hi`.
pub fn whole(
    lo: u64,
    hi: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |s: &str| match s.trim().parse::<u64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("expected a whole number in {lo}..={hi}, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_memory_is_bounded() {
        assert_eq!(gpu_mem_gib("80"), Ok(80.0));
        for bad in ["0", "-1", "1e300", "inf", "NaN", "x"] {
            assert!(gpu_mem_gib(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn each_parser_takes_its_range_and_names_the_value_otherwise() {
        assert_eq!(positive_f64(" 2.5 "), Ok(2.5));
        for bad in ["0", "-1", "inf", "NaN", "x", ""] {
            assert!(positive_f64(bad).unwrap_err().contains(&format!("{bad:?}")));
        }
        assert_eq!(fraction("1"), Ok(1.0));
        assert!(fraction("1.01").is_err() && fraction("0").is_err());
        let s = seconds(10.0);
        assert_eq!(s("0"), Ok(0.0));
        assert!(s("10.5").unwrap_err().contains("0..=10"));
        assert!(s("-1").is_err() && s("NaN").is_err());
        let w = whole(1, 4096);
        assert_eq!(w("4096"), Ok(4096));
        for bad in ["0", "4097", "1.5", "-3", "18446744073709551616"] {
            let e = w(bad).unwrap_err();
            assert!(e.contains("1..=4096") && e.contains(bad), "{e}");
        }
    }
}
