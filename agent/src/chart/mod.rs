//! Charts as hand-written SVG, shared by the status page (`GET /`, inline in the HTML) and
//! `lookout eval --plot` (standalone `.svg` files): time and value axes with units, a title,
//! a legend, threshold lines, shaded windows and point markers; plus sparklines and small bar
//! charts for histograms.
//!
//! Pure string building: no I/O, no font library. Text is SVG `<text>` that the viewer lays
//! out with its own fonts; layout here only estimates widths (legend placement), so nothing
//! depends on font metrics. Colours of text and axes are `currentColor`, so an inline chart
//! follows the page's light or dark theme and a standalone file renders black on white.
//!
//! Times are Unix seconds and shown in UTC (an on-call engineer and the fleet's logs agree on
//! UTC; a browser's local zone would differ from host to host).

mod format;
mod ticks;

pub use format::{Unit, civil_date, format_value, utc_clock, utc_datetime};

use std::fmt::Write as _;

/// Escape text for HTML and XML (element content and quoted attribute values).
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Line colours, distinguishable in light and dark themes and by most colour-blind readers
/// (blue / orange / teal / purple / olive).
pub const PALETTE: [&str; 5] = ["#3b82f6", "#f59e0b", "#14b8a6", "#a855f7", "#84cc16"];
/// Thresholds that page (an alert fires there).
pub const ALERT_COLOR: &str = "#ef4444";
/// Limits that are not an alert's threshold.
pub const LIMIT_COLOR: &str = "#9ca3af";
/// Shaded windows (labelled anomaly windows of `eval`).
pub const WINDOW_COLOR: &str = "#f59e0b";
/// Point markers (detections).
pub const MARKER_COLOR: &str = "#dc2626";

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Line {
    pub label: String,
    /// (x, y); x is Unix seconds on a time axis, a row number on an index axis. Non-finite y
    /// values break the line.
    pub points: Vec<(f64, f64)>,
    pub color: &'static str,
}

/// A horizontal line at a value: a limit or an alert's threshold.
#[derive(Clone, Debug)]
pub struct Threshold {
    pub label: String,
    pub value: f64,
    /// Dashed red for an alert threshold, grey for other limits.
    pub alert: bool,
}

/// A shaded x range (e.g. a labelled anomaly window).
#[derive(Clone, Debug)]
pub struct Band {
    pub from: f64,
    pub to: f64,
}

/// What the x axis counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum XAxis {
    /// Unix seconds, labelled in UTC with dates.
    Time,
    /// Plain numbers (rows).
    Index,
}

/// A line chart.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    /// Where the title links to (the `/metrics` name the chart shows), if anywhere.
    pub link: Option<String>,
    pub unit: Unit,
    pub width: u32,
    pub height: u32,
    pub x_axis: XAxis,
    /// The x range; `None` = the data's.
    pub x_range: Option<(f64, f64)>,
    /// Fixed value range; `None` = the data's (with [`Chart::zero`] and the thresholds).
    pub y_range: Option<(f64, f64)>,
    /// Include 0 in the value range.
    pub zero: bool,
    pub lines: Vec<Line>,
    pub thresholds: Vec<Threshold>,
    pub bands: Vec<Band>,
    pub band_label: String,
    /// Points drawn as dots, e.g. detections.
    pub markers: Vec<(f64, f64)>,
    pub marker_label: String,
}

const FONT: f64 = 11.0;
/// Average advance of a sans-serif glyph at [`FONT`], for legend layout only.
const CHAR_W: f64 = 6.2;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 14.0;
/// Above the plot: the title row, then the legend rows.
const TITLE_ROW: f64 = 20.0;
const LEGEND_ROW: f64 = 14.0;
const BOTTOM: f64 = 34.0;

impl Chart {
    pub fn new(title: impl Into<String>, unit: Unit) -> Self {
        Self {
            title: title.into(),
            link: None,
            unit,
            width: 560,
            height: 200,
            x_axis: XAxis::Time,
            x_range: None,
            y_range: None,
            zero: true,
            lines: Vec::new(),
            thresholds: Vec::new(),
            bands: Vec::new(),
            band_label: "window".into(),
            markers: Vec::new(),
            marker_label: "detection".into(),
        }
    }

    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    pub fn line(mut self, label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        let color = PALETTE[self.lines.len() % PALETTE.len()];
        self.lines.push(Line {
            label: label.into(),
            points,
            color,
        });
        self
    }

    pub fn threshold(mut self, label: impl Into<String>, value: f64, alert: bool) -> Self {
        if value.is_finite() {
            self.thresholds.push(Threshold {
                label: label.into(),
                value,
                alert,
            });
        }
        self
    }

    pub fn link(mut self, href: impl Into<String>) -> Self {
        self.link = Some(href.into());
        self
    }

    /// The x range the chart spans.
    fn x_span(&self) -> (f64, f64) {
        if let Some((a, b)) = self.x_range
            && b > a
        {
            return (a, b);
        }
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for l in &self.lines {
            for &(x, _) in &l.points {
                lo = lo.min(x);
                hi = hi.max(x);
            }
        }
        if !lo.is_finite() {
            return (0.0, 1.0);
        }
        if hi - lo < 1e-9 {
            return (lo - 1.0, hi + 1.0);
        }
        (lo, hi)
    }

    /// The value range, and the thresholds that lie too far above the data to draw without
    /// flattening it (they are listed in the legend instead).
    fn y_span(&self, x0: f64, x1: f64) -> ((f64, f64), Vec<bool>) {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for l in &self.lines {
            for &(x, y) in &l.points {
                if y.is_finite() && x >= x0 && x <= x1 {
                    lo = lo.min(y);
                    hi = hi.max(y);
                }
            }
        }
        for &(_, y) in &self.markers {
            if y.is_finite() {
                lo = lo.min(y);
                hi = hi.max(y);
            }
        }
        let no_data = !lo.is_finite();
        if no_data {
            lo = 0.0;
            hi = 1.0;
        }
        if self.zero {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        // A threshold is drawn when it is within 4x of the data's extent from its top (a
        // limit of 127,000 threads over a line at 12 would leave the line flat on the axis).
        let extent = (hi - lo).abs().max(hi.abs());
        let drawn: Vec<bool> = self
            .thresholds
            .iter()
            .map(|t| {
                no_data
                    || extent < 1e-12
                    || (t.value <= hi + 3.0 * extent && t.value >= lo - 3.0 * extent)
            })
            .collect();
        for (t, d) in self.thresholds.iter().zip(&drawn) {
            if *d {
                lo = lo.min(t.value);
                hi = hi.max(t.value);
            }
        }
        if let Some((a, b)) = self.y_range {
            return ((a, b), drawn);
        }
        if hi - lo < 1e-12 {
            // A flat line: from 0 up for a non-negative one, else around its value.
            if self.zero && lo >= 0.0 {
                return ((0.0, if hi > 1e-12 { hi * 1.25 } else { 1.0 }), drawn);
            }
            let pad = if hi.abs() > 1e-12 {
                hi.abs() * 0.1
            } else {
                1.0
            };
            return ((lo - pad, hi + pad), drawn);
        }
        let pad = (hi - lo) * 0.06;
        let lo = if self.zero && lo >= 0.0 { lo } else { lo - pad };
        ((lo, hi + pad), drawn)
    }

    /// Append the chart as one `<svg>` element.
    pub fn render(&self, out: &mut String) {
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let _ = write!(
            out,
            r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="{FONT}" role="img"><title>{}</title>"#,
            escape(&self.title)
        );
        self.render_body(out, 0.0, 0.0);
        out.push_str("</svg>");
    }

    /// The chart's elements, offset by (`ox`, `oy`), for composing several charts in one SVG.
    pub fn render_body(&self, out: &mut String, ox: f64, oy: f64) {
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let (px0, px1) = (ox + LEFT, ox + w - RIGHT);
        let (x0, x1) = self.x_span();
        let ((y0, y1), drawn) = self.y_span(x0, x1);
        let items = self.legend_items(&drawn);
        let at = Self::legend_layout(&items, ox + 4.0, ox + w - 4.0);
        let rows = at.last().map_or(0, |(_, r)| r + 1);
        // The plot keeps at least half the height however long the legend.
        let top = (TITLE_ROW + rows as f64 * LEGEND_ROW + 10.0).min(h / 2.0);
        let (py0, py1) = (oy + top, oy + h - BOTTOM);
        let sx = |x: f64| px0 + (x - x0) / (x1 - x0) * (px1 - px0);
        let sy = |y: f64| py1 - (y - y0) / (y1 - y0) * (py1 - py0);

        // Title (linked) and legend.
        let title = escape(&self.title);
        match &self.link {
            Some(href) => {
                let _ = write!(
                    out,
                    r#"<a href="{}"><text x="{}" y="{}" font-weight="bold" fill="currentColor" text-decoration="underline">{title}</text></a>"#,
                    escape(href),
                    ox + 4.0,
                    oy + 13.0
                );
            }
            None => {
                let _ = write!(
                    out,
                    r#"<text x="{}" y="{}" font-weight="bold" fill="currentColor">{title}</text>"#,
                    ox + 4.0,
                    oy + 13.0
                );
            }
        }
        self.legend(out, &items, &at, oy + TITLE_ROW + 9.0);

        // Plot frame and bands.
        let _ = write!(
            out,
            r#"<rect x="{px0:.1}" y="{py0:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="currentColor" stroke-opacity="0.35"/>"#,
            px1 - px0,
            py1 - py0
        );
        for b in &self.bands {
            let (a, z) = (sx(b.from.max(x0)), sx(b.to.min(x1)));
            if z > a {
                let _ = write!(
                    out,
                    r#"<rect x="{a:.1}" y="{py0:.1}" width="{:.1}" height="{:.1}" fill="{WINDOW_COLOR}" fill-opacity="0.22"/>"#,
                    (z - a).max(1.0),
                    py1 - py0
                );
            }
        }

        // Value axis: grid and labels.
        let yticks = ticks::values(y0, y1, ((py1 - py0) / 28.0).max(2.0) as usize);
        let ystep = match yticks.as_slice() {
            [a, b, ..] => b - a,
            _ => y1 - y0,
        };
        for v in yticks {
            let y = sy(v);
            let _ = write!(
                out,
                r#"<line x1="{px0:.1}" x2="{px1:.1}" y1="{y:.1}" y2="{y:.1}" stroke="currentColor" stroke-opacity="0.12"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="currentColor" fill-opacity="0.8">{}</text>"#,
                px0 - 5.0,
                y + 4.0,
                escape(&self.unit.axis(v, ystep))
            );
        }
        if let Some(caption) = self.unit.caption() {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" fill="currentColor" fill-opacity="0.7" font-size="10">{}</text>"#,
                ox + 4.0,
                py0 - 3.0,
                escape(caption)
            );
        }

        // Time (or index) axis.
        let max_ticks = ((px1 - px0) / 95.0).max(2.0) as usize;
        match self.x_axis {
            XAxis::Time => {
                let (step, xs) = ticks::times(x0, x1, max_ticks);
                let mut last_day = None;
                for x in xs {
                    let px = sx(x);
                    let day = (x / 86_400.0).floor() as i64;
                    let _ = write!(
                        out,
                        r#"<line x1="{px:.1}" x2="{px:.1}" y1="{py0:.1}" y2="{py1:.1}" stroke="currentColor" stroke-opacity="0.12"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="currentColor" fill-opacity="0.8">{}</text>"#,
                        py1 + 13.0,
                        ticks::time_label(x, step)
                    );
                    // Sub-day ticks show the clock; the date goes under the first tick of
                    // each day. Day-or-longer ticks are dates already.
                    if step < 86_400.0 && last_day != Some(day) {
                        let _ = write!(
                            out,
                            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="currentColor" fill-opacity="0.6" font-size="10">{}</text>"#,
                            py1 + 25.0,
                            civil_date(x)
                        );
                        last_day = Some(day);
                    }
                }
                let _ = write!(
                    out,
                    r#"<text x="{px1:.1}" y="{:.1}" text-anchor="end" fill="currentColor" fill-opacity="0.6" font-size="10">UTC</text>"#,
                    py1 + 25.0
                );
            }
            XAxis::Index => {
                for x in ticks::values(x0, x1, max_ticks) {
                    let px = sx(x);
                    let _ = write!(
                        out,
                        r#"<line x1="{px:.1}" x2="{px:.1}" y1="{py0:.1}" y2="{py1:.1}" stroke="currentColor" stroke-opacity="0.12"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="currentColor" fill-opacity="0.8">{}</text>"#,
                        py1 + 13.0,
                        format_value(x, Unit::Count)
                    );
                }
            }
        }

        // Thresholds, then lines, then markers on top.
        for (t, d) in self.thresholds.iter().zip(&drawn) {
            if !*d || t.value < y0 || t.value > y1 {
                continue;
            }
            let y = sy(t.value);
            let color = if t.alert { ALERT_COLOR } else { LIMIT_COLOR };
            let _ = write!(
                out,
                r#"<line x1="{px0:.1}" x2="{px1:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="6 4"/>"#
            );
        }
        let clip_w = px1 - px0;
        for l in &self.lines {
            let pts = decimate(&l.points, x0, x1, (clip_w / 1.5) as usize);
            path(out, &pts, sx, sy, l.color);
        }
        for &(x, y) in &self.markers {
            if x < x0 || x > x1 || !y.is_finite() {
                continue;
            }
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{MARKER_COLOR}" stroke="white" stroke-width="0.8"/>"#,
                sx(x),
                sy(y)
            );
        }
        if self.lines.iter().all(|l| l.points.is_empty()) {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="currentColor" fill-opacity="0.6">no samples yet</text>"#,
                (px0 + px1) / 2.0,
                (py0 + py1) / 2.0
            );
        }
    }

    /// The legend's items: text, colour, kind (0 line, 1 threshold, 2 band, 3 marker).
    /// Thresholds too far above the data to draw say so with an arrow.
    fn legend_items(&self, drawn: &[bool]) -> Vec<(String, &'static str, u8)> {
        let mut items: Vec<(String, &'static str, u8)> = Vec::new();
        for l in &self.lines {
            items.push((l.label.clone(), l.color, 0));
        }
        for (t, d) in self.thresholds.iter().zip(drawn) {
            let color = if t.alert { ALERT_COLOR } else { LIMIT_COLOR };
            let arrow = if *d { "" } else { " \u{2191} off scale" };
            items.push((
                format!("{} {}{arrow}", t.label, format_value(t.value, self.unit)),
                color,
                1,
            ));
        }
        if !self.bands.is_empty() {
            items.push((self.band_label.clone(), WINDOW_COLOR, 2));
        }
        if !self.markers.is_empty() {
            items.push((self.marker_label.clone(), MARKER_COLOR, 3));
        }
        items
    }

    /// Where each legend item goes: (x, row), wrapping at `right`.
    fn legend_layout(items: &[(String, &str, u8)], left: f64, right: f64) -> Vec<(f64, usize)> {
        let mut out = Vec::with_capacity(items.len());
        let (mut x, mut row) = (left, 0);
        for (text, _, _) in items {
            let width = 22.0 + text.chars().count() as f64 * CHAR_W;
            if x + width > right && x > left {
                x = left;
                row += 1;
            }
            out.push((x, row));
            x += width + 8.0;
        }
        out
    }

    /// The legend, its first row at `y`, rows [`LEGEND_ROW`] apart.
    fn legend(&self, out: &mut String, items: &[(String, &str, u8)], at: &[(f64, usize)], y: f64) {
        for ((text, color, kind), (x, row)) in items.iter().zip(at) {
            let (x, y) = (*x, y + *row as f64 * LEGEND_ROW);
            match kind {
                0 => {
                    let _ = write!(
                        out,
                        r#"<rect x="{x:.1}" y="{:.1}" width="14" height="3" fill="{color}"/>"#,
                        y - 5.0
                    );
                }
                1 => {
                    let _ = write!(
                        out,
                        r#"<line x1="{x:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="4 2"/>"#,
                        x + 14.0,
                        y - 4.0,
                        y - 4.0
                    );
                }
                2 => {
                    let _ = write!(
                        out,
                        r#"<rect x="{x:.1}" y="{:.1}" width="14" height="9" fill="{color}" fill-opacity="0.35"/>"#,
                        y - 9.0
                    );
                }
                _ => {
                    let _ = write!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                        x + 7.0,
                        y - 4.0
                    );
                }
            }
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{y:.1}" fill="currentColor">{}</text>"#,
                x + 18.0,
                escape(text)
            );
        }
    }
}

/// Write a polyline as one `<path>`, breaking it at non-finite values and at gaps wider than
/// five times the typical step (a service that was down draws no line across its absence).
fn path(
    out: &mut String,
    pts: &[(f64, f64)],
    sx: impl Fn(f64) -> f64,
    sy: impl Fn(f64) -> f64,
    color: &str,
) {
    if pts.is_empty() {
        return;
    }
    let gap = typical_step(pts) * 5.0;
    let _ = write!(
        out,
        r#"<path fill="none" stroke="{color}" stroke-width="1.6" stroke-linejoin="round" d=""#
    );
    let mut pen_up = true;
    let mut prev_x = f64::NEG_INFINITY;
    let mut lone = None;
    for &(x, y) in pts {
        if !y.is_finite() {
            pen_up = true;
            continue;
        }
        if x - prev_x > gap {
            pen_up = true;
        }
        let (px, py) = (sx(x), sy(y));
        if pen_up {
            let _ = write!(out, "M{px:.1} {py:.1}");
            lone = Some((px, py));
        } else {
            let _ = write!(out, "L{px:.1} {py:.1}");
            lone = None;
        }
        pen_up = false;
        prev_x = x;
    }
    out.push_str("\"/>");
    // A single sample draws no visible path; show it as a dot.
    if pts.len() == 1
        && let Some((px, py)) = lone
    {
        let _ = write!(
            out,
            r#"<circle cx="{px:.1}" cy="{py:.1}" r="2" fill="{color}"/>"#
        );
    }
}

/// The median x step of a series (the sampling interval), for gap detection.
fn typical_step(pts: &[(f64, f64)]) -> f64 {
    if pts.len() < 2 {
        return f64::INFINITY;
    }
    let mut steps: Vec<f64> = pts.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let mid = steps.len() / 2;
    let (_, m, _) = steps.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    if *m > 0.0 { *m } else { f64::INFINITY }
}

/// Keep at most 2 points per column (the column's min and max, in time order): the drawn
/// shape stays the same (spikes survive), the SVG stays small for series of thousands of rows.
/// A non-finite value in a column keeps the gap.
fn decimate(pts: &[(f64, f64)], x0: f64, x1: f64, columns: usize) -> Vec<(f64, f64)> {
    let inside = pts.iter().copied().filter(|(x, _)| *x >= x0 && *x <= x1);
    let columns = columns.max(1);
    if pts.len() <= columns * 2 {
        return inside.collect();
    }
    let mut out = Vec::with_capacity(columns * 2 + 8);
    let mut col: Option<Column> = None;
    for p in inside {
        let c = (((p.0 - x0) / (x1 - x0)) * columns as f64) as usize;
        match &mut col {
            Some(cur) if cur.index == c => cur.add(p),
            _ => {
                if let Some(done) = col.take() {
                    done.flush(&mut out);
                }
                col = Some(Column::new(c, p));
            }
        }
    }
    if let Some(done) = col {
        done.flush(&mut out);
    }
    out
}

/// One column of [`decimate`]: its lowest and highest point, and whether it had a gap.
struct Column {
    index: usize,
    lo: Option<(f64, f64)>,
    hi: Option<(f64, f64)>,
    gap: Option<f64>,
}

impl Column {
    fn new(index: usize, p: (f64, f64)) -> Self {
        let mut c = Self {
            index,
            lo: None,
            hi: None,
            gap: None,
        };
        c.add(p);
        c
    }

    fn add(&mut self, p: (f64, f64)) {
        if !p.1.is_finite() {
            self.gap.get_or_insert(p.0);
            return;
        }
        if self.lo.is_none_or(|lo| p.1 < lo.1) {
            self.lo = Some(p);
        }
        if self.hi.is_none_or(|hi| p.1 > hi.1) {
            self.hi = Some(p);
        }
    }

    fn flush(self, out: &mut Vec<(f64, f64)>) {
        if let Some(x) = self.gap {
            out.push((x, f64::NAN));
        }
        if let (Some(lo), Some(hi)) = (self.lo, self.hi) {
            let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
            out.push(a);
            if b != a {
                out.push(b);
            }
        }
    }
}

/// A small line without axes for tables: the shape of the last minutes or hours, the latest
/// value as a dot, and `threshold` (if any, and in range) as a dashed line.
pub fn sparkline(
    out: &mut String,
    points: &[(f64, f64)],
    width: u32,
    height: u32,
    threshold: Option<f64>,
) {
    let (w, h) = (f64::from(width), f64::from(height));
    let _ = write!(
        out,
        r#"<svg class="spark" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" aria-hidden="true">"#
    );
    let finite: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    if let (Some(first), Some(last)) = (finite.first(), finite.last()) {
        let (x0, x1) = (first.0, last.0.max(first.0 + 1e-9));
        let mut lo = finite.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let mut hi = finite.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if let Some(t) = threshold
            && t <= hi * 1.5
            && t >= lo
        {
            hi = hi.max(t);
        }
        if hi - lo < 1e-12 {
            lo -= 1.0;
            hi += 1.0;
        }
        let sx = |x: f64| 1.0 + (x - x0) / (x1 - x0) * (w - 6.0);
        let sy = |y: f64| h - 2.0 - (y - lo) / (hi - lo) * (h - 4.0);
        if let Some(t) = threshold
            && t >= lo
            && t <= hi
        {
            let y = sy(t);
            let _ = write!(
                out,
                r#"<line x1="0" x2="{w}" y1="{y:.1}" y2="{y:.1}" stroke="{ALERT_COLOR}" stroke-dasharray="3 2"/>"#
            );
        }
        let pts = decimate(&finite, x0, x1, (width / 2) as usize);
        path(out, &pts, sx, sy, PALETTE[0]);
        let _ = write!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#,
            sx(last.0),
            sy(last.1),
            PALETTE[0]
        );
    }
    out.push_str("</svg>");
}

/// A histogram as bars, one per bucket (`(upper bound, count in the bucket)`, not cumulative),
/// labelled with the bucket's upper bound; empty leading and trailing buckets are left out.
pub fn histogram(out: &mut String, title: &str, buckets: &[(f64, u64)], unit: Unit, width: u32) {
    let first = buckets.iter().position(|b| b.1 > 0);
    let last = buckets.iter().rposition(|b| b.1 > 0);
    let h = 90.0;
    let w = f64::from(width);
    let _ = write!(
        out,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="10" role="img"><title>{}</title>"#,
        escape(title)
    );
    let (Some(a), Some(z)) = (first, last) else {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="45" text-anchor="middle" fill="currentColor" fill-opacity="0.6">no observations yet</text></svg>"#,
            w / 2.0
        );
        return;
    };
    let shown = &buckets[a..=z];
    let max = shown.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let bw = (w - 8.0) / shown.len() as f64;
    for (i, (upper, n)) in shown.iter().enumerate() {
        let x = 4.0 + i as f64 * bw;
        let bh = (*n as f64 / max) * (h - 34.0);
        let label = if upper.is_infinite() {
            "+Inf".to_string()
        } else {
            format!("≤{}", format_value(*upper, unit))
        };
        let _ = write!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} {n}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="currentColor">{n}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="currentColor" fill-opacity="0.7">{}</text>"#,
            x + 1.0,
            h - 20.0 - bh,
            (bw - 2.0).max(1.0),
            PALETTE[0],
            escape(&label),
            x + bw / 2.0,
            h - 23.0 - bh,
            x + bw / 2.0,
            h - 7.0,
            escape(&label)
        );
    }
    out.push_str("</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    #[test]
    fn a_chart_has_axes_legend_threshold_and_link() {
        let t0 = 1_700_000_000.0;
        let pts: Vec<_> = (0..600)
            .map(|i| (t0 + i as f64, 10.0 + (i % 7) as f64))
            .collect();
        let chart = Chart::new("threads of <api>", Unit::Count)
            .line("threads", pts)
            .threshold("expected", 20.0, true)
            .threshold("RLIMIT_NPROC", 1.0e6, false)
            .link("/metrics");
        let mut s = String::new();
        chart.render(&mut s);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        // Escaped title, linked.
        assert!(s.contains("threads of &lt;api&gt;"), "{s}");
        assert!(s.contains(r#"<a href="/metrics">"#));
        // The alert threshold is drawn dashed red; the far limit is in the legend only.
        assert_eq!(
            count(
                &s,
                &format!(r#"stroke="{ALERT_COLOR}" stroke-width="1.5" stroke-dasharray="6 4""#)
            ),
            1
        );
        assert_eq!(
            count(
                &s,
                &format!(r#"stroke="{LIMIT_COLOR}" stroke-width="1.5" stroke-dasharray="6 4""#)
            ),
            0
        );
        assert!(s.contains("RLIMIT_NPROC 1,000,000 ↑ off scale"), "{s}");
        // Time labels in UTC with the date once.
        assert!(s.contains(">UTC<"));
        assert_eq!(count(&s, ">2023-11-14<"), 1, "{s}");
        assert!(s.contains(">22:15<") || s.contains(">22:16<"), "{s}");
        // Value ticks reach the threshold.
        assert!(s.contains(">20<"), "{s}");
    }

    #[test]
    fn gaps_and_nan_break_the_line() {
        let mut pts: Vec<_> = (0..10).map(|i| (i as f64, 1.0)).collect();
        pts.extend((100..110).map(|i| (i as f64, 2.0)));
        pts.push((111.0, f64::NAN));
        pts.push((112.0, 3.0));
        let mut s = String::new();
        Chart::new("x", Unit::Count).line("a", pts).render(&mut s);
        let d = s.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(d.matches('M').count(), 3, "{d}");
    }

    #[test]
    fn decimation_keeps_spikes() {
        let mut pts: Vec<_> = (0..100_000).map(|i| (i as f64, 0.0)).collect();
        pts[54_321].1 = 100.0;
        let d = decimate(&pts, 0.0, 99_999.0, 500);
        assert!(d.len() <= 2000, "{}", d.len());
        assert!(d.iter().any(|p| p.1 == 100.0));
    }

    #[test]
    fn sparkline_and_histogram_render() {
        let mut s = String::new();
        sparkline(
            &mut s,
            &[(0.0, 1.0), (1.0, 2.0), (2.0, 1.5)],
            120,
            24,
            Some(1.8),
        );
        assert!(s.contains("<path") && s.contains("stroke-dasharray"));
        let mut h = String::new();
        histogram(
            &mut h,
            "cold starts",
            &[(0.5, 0), (1.0, 2), (2.0, 1), (5.0, 0)],
            Unit::Seconds,
            300,
        );
        assert_eq!(count(&h, "<rect"), 2, "{h}");
        assert!(h.contains("≤1 s") && h.contains("≤2 s"), "{h}");
        let mut e = String::new();
        histogram(&mut e, "none", &[(1.0, 0)], Unit::Seconds, 300);
        assert!(e.contains("no observations yet"));
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed(_)));
    }
}
