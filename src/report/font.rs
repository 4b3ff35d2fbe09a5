//! The embedded font (DejaVu Sans, assets/fonts, Bitstream Vera licence) and the step that turns
//! every SVG `<text>` plotters writes into glyph outlines, so figures render identically with no
//! font installed (browsers, Inkscape, a bare CI container). plotters lays text out with the same
//! font through its ab_glyph support, so label areas are sized for what is drawn.

use ab_glyph::{Font, FontRef, OutlineCurve, Point};
use std::fmt::Write as _;
use std::sync::OnceLock;

/// DejaVu Sans 2.37, shipped in the repository; licence in assets/fonts/LICENSE-DejaVu.txt.
pub static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name figures ask plotters for.
pub const FAMILY: &str = "dejavu-sans";

fn font() -> &'static FontRef<'static> {
    static F: OnceLock<FontRef<'static>> = OnceLock::new();
    F.get_or_init(|| {
        FontRef::try_from_slice(FONT_BYTES).expect("embedded DejaVu Sans is a valid TrueType font")
    })
}

/// Register the font with plotters (idempotent).
pub fn register() {
    static R: OnceLock<()> = OnceLock::new();
    R.get_or_init(|| {
        let _ =
            plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, FONT_BYTES);
    });
}

/// Replace every `<text …>content</text>` of plotters' SVG output by glyph outlines, keeping
/// position, anchor, size, colour and rotation. Each glyph is defined once in `<defs>` (font units)
/// and placed with `<use>`; the text itself stays in an `aria-label` so figures remain searchable
/// and testable.
pub fn text_to_paths(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len() * 2);
    let mut glyphs: std::collections::BTreeMap<u16, String> = Default::default();
    let mut rest = svg;
    while let Some(start) = rest.find("<text ") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else {
            break;
        };
        let Some(close) = after.find("</text>") else {
            break;
        };
        let attrs = &after[6..open_end];
        let content = unescape(after[open_end + 1..close].trim_matches('\n'));
        if !content.trim().is_empty() {
            out.push_str(&placed_text(attrs, &content, &mut glyphs));
        }
        rest = &after[close + "</text>".len()..];
        rest = rest.strip_prefix('\n').unwrap_or(rest);
    }
    out.push_str(rest);
    // Glyph definitions right after the opening <svg …> tag.
    if let Some(i) = out
        .find("<svg")
        .and_then(|i| out[i..].find('>').map(|j| i + j + 1))
    {
        let mut defs = String::from("\n<defs>");
        for (id, d) in &glyphs {
            let _ = write!(defs, "<path id=\"g{id}\" d=\"{d}\"/>");
        }
        defs.push_str("</defs>");
        out.insert_str(i, &defs);
    }
    out
}

fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = format!(" {attrs}").find(&key)?;
    let s = &attrs[at + key.len() - 1..];
    s.find('"').map(|e| &s[..e])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Width of `text` at font size `px` (CSS pixels), as laid out by [`text_to_paths`].
pub fn text_width(text: &str, px: f32) -> f32 {
    let f = font();
    let scale = px / f.units_per_em().unwrap_or(2048.0);
    let mut w = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let g = f.glyph_id(c);
        if let Some(p) = prev {
            w += f.kern_unscaled(p, g);
        }
        w += f.h_advance_unscaled(g);
        prev = Some(g);
    }
    w * scale
}

/// Outline of one glyph in font units (y up), as SVG path data.
fn outline_d(g: ab_glyph::GlyphId) -> String {
    let mut d = String::new();
    let Some(outline) = font().outline(g) else {
        return d;
    };
    let mut cur: Option<Point> = None;
    for curve in &outline.curves {
        let (p0, end) = match curve {
            OutlineCurve::Line(a, b) => (*a, *b),
            OutlineCurve::Quad(a, _, c) => (*a, *c),
            OutlineCurve::Cubic(a, _, _, c) => (*a, *c),
        };
        if cur != Some(p0) {
            if cur.is_some() {
                d.push('Z');
            }
            let _ = write!(d, "M{} {}", p0.x, p0.y);
        }
        let _ = match curve {
            OutlineCurve::Line(_, b) => write!(d, "L{} {}", b.x, b.y),
            OutlineCurve::Quad(_, b, c) => write!(d, "Q{} {} {} {}", b.x, b.y, c.x, c.y),
            OutlineCurve::Cubic(_, b, c, e) => {
                write!(d, "C{} {} {} {} {} {}", b.x, b.y, c.x, c.y, e.x, e.y)
            }
        };
        cur = Some(end);
    }
    if cur.is_some() {
        d.push('Z');
    }
    d
}

fn placed_text(
    attrs: &str,
    text: &str,
    glyphs: &mut std::collections::BTreeMap<u16, String>,
) -> String {
    let num = |n: &str, d: f32| {
        attr(attrs, n)
            .and_then(|v| v.parse::<f32>().ok())
            .unwrap_or(d)
    };
    let (x0, y0, px) = (num("x", 0.0), num("y", 0.0), num("font-size", 12.0));
    let f = font();
    let scale = px / f.units_per_em().unwrap_or(2048.0);
    // Baseline offset of plotters' `dy`: 0.76em (top), 0.5ex (centre), -0.5ex (bottom).
    let x_height = 1120.0 / 2048.0; // DejaVu Sans
    let dy = match attr(attrs, "dy").unwrap_or("0") {
        "0.76em" => 0.76 * px,
        "0.5ex" => 0.5 * x_height * px,
        "-0.5ex" => -0.5 * x_height * px,
        _ => 0.0,
    };
    let width = text_width(text, px);
    let x_start = match attr(attrs, "text-anchor").unwrap_or("start") {
        "middle" => x0 - width / 2.0,
        "end" => x0 - width,
        _ => x0,
    };
    let fill = attr(attrs, "fill").unwrap_or("#000000");
    let opacity = attr(attrs, "opacity").unwrap_or("1");
    let transform = attr(attrs, "transform")
        .map(|t| format!(" transform=\"{t}\""))
        .unwrap_or_default();
    let mut s = format!(
        "<g class=\"label\" aria-label=\"{}\" fill=\"{fill}\" opacity=\"{opacity}\"{transform}>",
        escape(text)
    );
    let mut pen = 0.0f32;
    let mut prev = None;
    for c in text.chars() {
        let g = f.glyph_id(c);
        if let Some(p) = prev {
            pen += f.kern_unscaled(p, g);
        }
        let d = glyphs.entry(g.0).or_insert_with(|| outline_d(g));
        if !d.is_empty() {
            let _ = write!(
                s,
                "<use href=\"#g{}\" transform=\"translate({:.2} {:.2}) scale({:.5} {:.5})\"/>",
                g.0,
                x_start + pen * scale,
                y0 + dy,
                scale,
                -scale
            );
        }
        pen += f.h_advance_unscaled(g);
        prev = Some(g);
    }
    s.push_str("</g>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_becomes_a_path_with_its_label() {
        let svg = "<svg><text x=\"10\" y=\"20\" dy=\"0.76em\" text-anchor=\"middle\" font-family=\"x\" font-size=\"10\" opacity=\"1\" fill=\"#000000\">\nA &amp; B\n</text>\n</svg>";
        let out = text_to_paths(svg);
        assert!(!out.contains("<text"));
        assert!(out.contains("aria-label=\"A &amp; B\""));
        assert!(out.contains("<use href=\"#g") && out.contains("<defs><path id=\"g"));
        assert!(text_width("AB", 10.0) > text_width("A", 10.0));
    }
}
