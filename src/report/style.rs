//! Shared look of every figure: colour-blind-safe palettes (Okabe–Ito for series, viridis,
//! cividis and magma for colour scales), text styles in the embedded font, and log2 axis helpers
//! that put ticks exactly on the grid's lengths (64, 128, … 4096).

use super::font::FAMILY;
use plotters::prelude::*;

/// Okabe & Ito (2008), ordered for lines on white (yellow last: weakest contrast).
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xF0, 0xE4, 0x42),
];

/// Colour of series `i` (cycles after eight).
pub fn series_color(i: usize) -> RGBColor {
    OKABE_ITO[i % OKABE_ITO.len()]
}

/// Perceptually uniform colour maps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColorMap {
    Viridis,
    Cividis,
    /// Magma from light (low) to dark (high): for uncertainty, where dark is least known.
    MagmaReversed,
}

const VIRIDIS: [(u8, u8, u8); 9] = [
    (0x44, 0x01, 0x54),
    (0x47, 0x2d, 0x7b),
    (0x3b, 0x52, 0x8b),
    (0x2c, 0x72, 0x8e),
    (0x21, 0x91, 0x8c),
    (0x28, 0xae, 0x80),
    (0x5e, 0xc9, 0x62),
    (0xad, 0xdc, 0x30),
    (0xfd, 0xe7, 0x25),
];
const CIVIDIS: [(u8, u8, u8); 9] = [
    (0x00, 0x22, 0x4e),
    (0x12, 0x35, 0x70),
    (0x3b, 0x49, 0x6c),
    (0x57, 0x5d, 0x6d),
    (0x70, 0x71, 0x73),
    (0x8a, 0x87, 0x79),
    (0xa6, 0x9d, 0x75),
    (0xc4, 0xb5, 0x6c),
    (0xfe, 0xe8, 0x38),
];

const MAGMA_REVERSED: [(u8, u8, u8); 9] = [
    (0xfc, 0xfd, 0xbf),
    (0xfe, 0xc2, 0x87),
    (0xfb, 0x87, 0x61),
    (0xe5, 0x50, 0x64),
    (0xb5, 0x36, 0x7a),
    (0x81, 0x25, 0x81),
    (0x4f, 0x12, 0x7b),
    (0x1c, 0x10, 0x44),
    (0x00, 0x00, 0x04),
];

impl ColorMap {
    /// Colour at t ∈ [0, 1] (clamped; NaN gives the low end).
    pub fn at(self, t: f64) -> RGBColor {
        let table = match self {
            ColorMap::Viridis => &VIRIDIS,
            ColorMap::Cividis => &CIVIDIS,
            ColorMap::MagmaReversed => &MAGMA_REVERSED,
        };
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let x = t * (table.len() - 1) as f64;
        let i = (x.floor() as usize).min(table.len() - 2);
        let f = x - i as f64;
        let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
        let (a, b) = (table[i], table[i + 1]);
        RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }
}

/// Black or white, whichever reads better on `bg`.
pub fn ink_on(bg: RGBColor) -> RGBColor {
    let l = 0.2126 * bg.0 as f64 + 0.7152 * bg.1 as f64 + 0.0722 * bg.2 as f64;
    if l > 140.0 {
        BLACK
    } else {
        WHITE
    }
}

/// Text in the embedded font.
pub fn text(px: f64) -> TextStyle<'static> {
    (FAMILY, px).into_font().into()
}

/// Tick positions (log2 of each value) and the axis range padded by `pad` (in log2 units).
pub fn log2_axis(values: &[f64], pad: f64) -> (Vec<f64>, std::ops::Range<f64>) {
    let mut ticks: Vec<f64> = values
        .iter()
        .filter(|v| **v > 0.0)
        .map(|v| v.log2())
        .collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let lo = ticks.first().copied().unwrap_or(0.0) - pad;
    let hi = ticks.last().copied().unwrap_or(1.0) + pad;
    (ticks, lo..hi.max(lo + 1e-9))
}

/// Label of a log2 tick: the length itself (64, 128, …).
pub fn log2_label(v: &f64) -> String {
    let x = 2f64.powf(*v);
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", x.round())
    } else {
        format!("{x:.0}")
    }
}

/// Number formatting for axis values that may span orders of magnitude.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(0.01..1000.0).contains(&a) {
        format!("{v:.1e}")
    } else if (v - v.round()).abs() < 1e-9 * a.max(1.0) {
        format!("{}", v.round())
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
