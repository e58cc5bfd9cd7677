//! `lookout eval --plot DIR`: one SVG per file with the values (top), the anomaly score
//! (bottom, with the operating threshold as a grey line), the labelled windows (shaded) and
//! the detections (red dots on the values). Rows on the x axis.
//!
//! Drawn with plotters' SVG backend only, without text: plotters needs a font library to lay
//! out labels, and the agent must not depend on system font libraries. The file name says
//! which series it is, and the SVG carries a `<title>`.

use super::{EvalError, ScoredFile};
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 500;

/// Write `DIR/<relative path>.svg` for one scored file.
pub fn write_svg(dir: &Path, file: &ScoredFile, threshold: f64) -> Result<(), EvalError> {
    let out = dir.join(format!("{}.svg", file.rel));
    let io = |m: String| EvalError::Io(format!("{}: {m}", out.display()));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(e.to_string()))?;
    }
    let mut svg = String::new();
    draw(&mut svg, file, threshold).map_err(io)?;
    // A title for people and screen readers (plotters draws no text without a font library).
    let title = format!("<title>{}</title>", escape(&file.rel));
    if let Some(pos) = svg.find('>') {
        svg.insert_str(pos + 1, &title);
    }
    std::fs::write(&out, svg).map_err(|e| io(e.to_string()))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn draw(svg: &mut String, file: &ScoredFile, threshold: f64) -> Result<(), String> {
    let n = file.values.len().max(2) as f64;
    let finite = file.values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo - 1.0, hi + 1.0)
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    };
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (top, bottom) = root.split_vertically(HEIGHT * 2 / 3);
    let window_fill = RGBColor(255, 200, 80).mix(0.35).filled();

    let mut values = ChartBuilder::on(&top)
        .margin(8)
        .build_cartesian_2d(0.0..n, lo..hi)
        .map_err(e)?;
    values
        .draw_series(
            file.windows
                .iter()
                .map(|&(a, b)| Rectangle::new([(a as f64, lo), (b as f64, hi)], window_fill)),
        )
        .map_err(e)?;
    values
        .draw_series(LineSeries::new(
            file.values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i as f64, v)),
            &BLUE,
        ))
        .map_err(e)?;
    values
        .draw_series(
            file.scores
                .iter()
                .enumerate()
                .filter(|&(i, &s)| s >= threshold && file.values[i].is_finite())
                .map(|(i, _)| Circle::new((i as f64, file.values[i]), 4, RED.filled())),
        )
        .map_err(e)?;

    let mut scores = ChartBuilder::on(&bottom)
        .margin(8)
        .build_cartesian_2d(0.0..n, 0.0..1.05)
        .map_err(e)?;
    scores
        .draw_series(
            file.windows
                .iter()
                .map(|&(a, b)| Rectangle::new([(a as f64, 0.0), (b as f64, 1.05)], window_fill)),
        )
        .map_err(e)?;
    scores
        .draw_series(LineSeries::new(
            [(0.0, threshold), (n, threshold)],
            &RGBColor(150, 150, 150),
        ))
        .map_err(e)?;
    scores
        .draw_series(LineSeries::new(
            file.scores.iter().enumerate().map(|(i, &s)| (i as f64, s)),
            &RED,
        ))
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}
