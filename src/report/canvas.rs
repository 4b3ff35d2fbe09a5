//! One SVG figure in memory: plotters draws onto a string, text is turned into glyph outlines
//! (see `font`), and the result is written where the report wants it.

use super::font;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draw a `w`×`h` figure with `draw` and return the finished SVG text.
pub fn render(w: u32, h: u32, draw: impl FnOnce(&Area) -> Result<()>) -> Result<String> {
    font::register();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow!("drawing failed: {e:?}"))?;
        draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("drawing failed: {e:?}"))?;
    }
    Ok(font::text_to_paths(&buf))
}

/// Write an SVG to `path` (atomically, see `fsutil`).
pub fn save(svg: &str, path: &Path) -> Result<()> {
    crate::fsutil::write_atomic(path, svg.as_bytes())
}

/// plotters errors carry the backend type; flatten them into anyhow.
pub fn pe<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}
