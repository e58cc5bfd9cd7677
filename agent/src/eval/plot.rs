//! `lookout eval --plot DIR`: one SVG per file, drawn by the agent's chart code (the same as
//! the status page's): the values on top with the labelled windows shaded and the detections
//! (rows scored at or above the operating threshold) as red dots, and the anomaly score below
//! with the threshold as a dashed line; both on a UTC time axis with dates, value axes,
//! titles and legends.

use super::{EvalError, ScoredFile};
use crate::chart::{self, Band, Chart, Unit, XAxis};
use std::fmt::Write as _;
use std::path::Path;

const WIDTH: u32 = 1400;
const VALUES_HEIGHT: u32 = 340;
const SCORES_HEIGHT: u32 = 200;

/// Write `DIR/<relative path>.svg` for one scored file.
pub fn write_svg(dir: &Path, file: &ScoredFile, threshold: f64) -> Result<(), EvalError> {
    let out = dir.join(format!("{}.svg", file.rel));
    let io = |m: String| EvalError::Io(format!("{}: {m}", out.display()));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(e.to_string()))?;
    }
    std::fs::write(&out, render(file, threshold)).map_err(|e| io(e.to_string()))
}

/// The SVG document of one scored file.
pub fn render(file: &ScoredFile, threshold: f64) -> String {
    // Rows with timestamps go on a time axis; the x of row i is its timestamp.
    let times = file.timestamps.len() == file.values.len()
        && file.timestamps.windows(2).all(|w| w[1] >= w[0])
        && !file.timestamps.is_empty();
    let x = |i: usize| {
        if times {
            file.timestamps[i] as f64
        } else {
            i as f64
        }
    };
    let axis = if times { XAxis::Time } else { XAxis::Index };
    let bands: Vec<Band> = file
        .windows
        .iter()
        .filter(|(a, b)| *a < file.values.len() && a <= b)
        .map(|&(a, b)| Band {
            from: x(a),
            to: x(b.min(file.values.len().saturating_sub(1))),
        })
        .collect();
    let span = if file.values.is_empty() {
        None
    } else {
        Some((x(0), x(file.values.len() - 1)))
    };
    let detections: Vec<(f64, f64)> = file
        .scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| s >= threshold && file.values.get(i).is_some_and(|v| v.is_finite()))
        .map(|(i, _)| (x(i), file.values[i]))
        .collect();
    let n_det = detections.len();

    let mut values = Chart::new(
        format!(
            "{} — {} rows",
            file.rel,
            chart::format_value(file.values.len() as f64, Unit::Count)
        ),
        Unit::Count,
    )
    .size(WIDTH, VALUES_HEIGHT)
    .line(
        "value",
        file.values
            .iter()
            .enumerate()
            .map(|(i, &v)| (x(i), v))
            .collect(),
    );
    values.x_axis = axis;
    values.x_range = span;
    values.zero = false;
    values.bands = bands.clone();
    values.band_label = format!("labelled anomaly window ({})", file.windows.len());
    values.markers = detections;
    values.marker_label = format!("detection: score ≥ {threshold} ({n_det})");

    let mut scores = Chart::new("anomaly score", Unit::Count)
        .size(WIDTH, SCORES_HEIGHT)
        .line(
            "score",
            file.scores
                .iter()
                .enumerate()
                .map(|(i, &s)| (x(i), s))
                .collect(),
        )
        .threshold("operating threshold", threshold, true);
    scores.lines[0].color = chart::PALETTE[1];
    scores.x_axis = axis;
    scores.x_range = span;
    scores.y_range = Some((0.0, 1.0));
    scores.bands = bands;
    scores.band_label = "labelled anomaly window".into();

    let height = VALUES_HEIGHT + SCORES_HEIGHT;
    let mut svg = String::with_capacity(64 * 1024);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11" color="black"><title>{}</title><rect width="100%" height="100%" fill="white"/>"#,
        chart::escape(&file.rel)
    );
    values.render_body(&mut svg, 0.0, 0.0);
    scores.render_body(&mut svg, 0.0, f64::from(VALUES_HEIGHT));
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_has_dates_windows_threshold_and_detections() {
        let t0 = 1_430_000_000i64; // 2015-04-25
        let n = 2000;
        let file = ScoredFile {
            rel: "realKnownCause/a&b.csv".into(),
            timestamps: (0..n).map(|i| t0 + 300 * i as i64).collect(),
            values: (0..n)
                .map(|i| if i == 1500 { 90.0 } else { 10.0 })
                .collect(),
            scores: (0..n).map(|i| if i == 1500 { 0.9 } else { 0.1 }).collect(),
            windows: vec![(1400, 1600)],
            labelled: true,
            label_key: None,
        };
        let svg = render(&file, 0.6);
        assert!(
            svg.contains("realKnownCause/a&amp;b.csv — 2,000 rows"),
            "title"
        );
        assert!(svg.contains(">2015-04-26<"), "dates on the time axis");
        assert!(svg.contains(">UTC<"));
        assert!(
            svg.contains("labelled anomaly window (1)"),
            "legend names the windows"
        );
        assert!(
            svg.contains("detection: score ≥ 0.6 (1)"),
            "legend names detections"
        );
        assert!(
            svg.contains("operating threshold 0.6"),
            "threshold in the legend"
        );
        assert_eq!(
            svg.matches("<circle").count(),
            2,
            "one detection + its legend dot"
        );
        assert!(
            svg.matches(r#"fill-opacity="0.22""#).count() >= 2,
            "window shaded in both panels"
        );
    }
}
