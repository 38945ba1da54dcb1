//! Small self-contained SVG charts for evaluation reports: a line chart (e.g. mean recall
//! against the cutoff k, one line per system) and a grouped bar chart with interval whiskers
//! (e.g. each metric's mean and bootstrap interval, one bar per system).
//!
//! Plain `std` only, so the tool draws its figures without a plotting dependency. Output is a
//! deterministic function of the input: the same chart always renders byte-for-byte the same.
//! Non-finite values are skipped, never drawn at a bogus position.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const MARGIN_LEFT: f64 = 72.0;
const MARGIN_RIGHT: f64 = 170.0; // room for the legend
const MARGIN_TOP: f64 = 44.0;
const MARGIN_BOTTOM: f64 = 64.0;
/// The Okabe–Ito palette, distinguishable with the common forms of colour blindness.
const COLOURS: [&str; 7] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];

/// One named line of (x, y) points, drawn in the given order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Lines over shared axes; `log_x` puts the x axis on a log₁₀ scale (points with x ≤ 0 are
/// then skipped).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub series: Vec<Series>,
}

/// One bar: its height and the interval drawn as a whisker (non-finite bounds draw none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// One system's bars, one per group of the chart, in the chart's group order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BarSeries {
    pub name: String,
    pub bars: Vec<Bar>,
}

/// Bars grouped by `groups` (e.g. metric names), each group holding one bar per series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub groups: Vec<String>,
    pub series: Vec<BarSeries>,
}

/// Text made safe for SVG element content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// Tick values covering `[lo, hi]` at a step of 1, 2 or 5 × 10ⁿ giving about `target` ticks,
/// with the outer ticks on or beyond the bounds, so the axis can span exactly the ticks.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    debug_assert!(lo.is_finite() && hi.is_finite() && lo < hi && target > 0);
    let raw_step = (hi - lo) / target as f64;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|&s| s >= raw_step).unwrap_or(10.0 * magnitude);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    // Multiplying integer counts by the step (rather than accumulating) keeps 0.1 · 3 close to
    // 0.3; the labels are rounded for display anyway.
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Decimal places that show every tick of `ticks` distinctly.
fn tick_decimals(ticks: &[f64]) -> usize {
    match ticks {
        [a, b, ..] => (-(b - a).abs().log10().floor()).clamp(0.0, 6.0) as usize,
        _ => 2,
    }
}

/// The finite range of `values`, widened when empty or a single point so an axis can be drawn.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (0.0, 1.0)
    } else if lo == hi {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.5 };
        (lo - pad, hi + pad)
    } else {
        (lo, hi)
    }
}

/// A linear map from data values to pixels.
#[derive(Clone, Copy)]
struct Scale {
    from: (f64, f64),
    to: (f64, f64),
}

impl Scale {
    fn at(self, v: f64) -> f64 {
        self.to.0 + (v - self.from.0) / (self.from.1 - self.from.0) * (self.to.1 - self.to.0)
    }
}

fn plot_left() -> f64 {
    MARGIN_LEFT
}
fn plot_right() -> f64 {
    WIDTH - MARGIN_RIGHT
}
fn plot_top() -> f64 {
    MARGIN_TOP
}
fn plot_bottom() -> f64 {
    HEIGHT - MARGIN_BOTTOM
}

/// The document header, white background and title.
fn open(svg: &mut String, title: &str) {
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        (plot_left() + plot_right()) / 2.0,
        escape(title)
    );
}

/// The y axis with grid lines at `ticks` and its rotated label.
fn y_axis(svg: &mut String, y: Scale, ticks: &[f64], label: &str) {
    let decimals = tick_decimals(ticks);
    for &t in ticks {
        let py = y.at(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e0e0e0"/>"##,
            plot_left(),
            plot_right()
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{t:.decimals$}</text>"#,
            plot_left() - 6.0,
            py + 4.0
        );
    }
    let mid = (plot_top() + plot_bottom()) / 2.0;
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 18 {mid:.1})">{}</text>"#,
        escape(label)
    );
}

/// The plot frame, the legend (one coloured swatch per name) and the closing tag.
fn close(svg: &mut String, names: &[&str]) {
    let _ = writeln!(
        svg,
        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
        plot_left(),
        plot_top(),
        plot_right() - plot_left(),
        plot_bottom() - plot_top()
    );
    for (i, name) in names.iter().enumerate() {
        let y = plot_top() + 10.0 + 20.0 * i as f64;
        let x = plot_right() + 14.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="14" height="10" fill="{}"/>"#,
            y - 5.0,
            COLOURS[i % COLOURS.len()]
        );
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x + 20.0, y + 4.0, escape(name));
    }
    svg.push_str("</svg>\n");
}

impl LineChart {
    /// The chart as a complete SVG document.
    pub fn render(&self) -> String {
        let transform = |x: f64| if self.log_x { x.log10() } else { x };
        let usable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0);
        let points = || self.series.iter().flat_map(|s| s.points.iter().filter(|p| usable(p)));
        let (x_lo, x_hi) = span(points().map(|&(x, _)| transform(x)));
        let (y_lo, y_hi) = span(points().map(|&(_, y)| y));

        let x_ticks = if self.log_x { log_ticks(x_lo, x_hi) } else { nice_ticks(x_lo, x_hi, 6) };
        let y_ticks = nice_ticks(y_lo, y_hi, 5);
        // Log ticks sit inside the data range; linear ones enclose it and become the bounds.
        let x_from = if self.log_x { (x_lo, x_hi) } else { (x_ticks[0], x_ticks[x_ticks.len() - 1]) };
        let x = Scale { from: x_from, to: (plot_left(), plot_right()) };
        let y = Scale { from: (y_ticks[0], y_ticks[y_ticks.len() - 1]), to: (plot_bottom(), plot_top()) };

        let mut svg = String::new();
        open(&mut svg, &self.title);
        y_axis(&mut svg, y, &y_ticks, &self.y_label);
        let decimals = if self.log_x { 0 } else { tick_decimals(&x_ticks) };
        for &t in &x_ticks {
            let px = x.at(t);
            let value = if self.log_x { 10f64.powf(t) } else { t };
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#e0e0e0"/>"##,
                plot_top(),
                plot_bottom()
            );
            let _ = writeln!(
                svg,
                r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                plot_bottom() + 18.0,
                format_tick(value, decimals)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (plot_left() + plot_right()) / 2.0,
            HEIGHT - 18.0,
            escape(&self.x_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let coordinates: Vec<String> = series
                .points
                .iter()
                .filter(|p| usable(p))
                .map(|&(px, py)| format!("{:.1},{:.1}", x.at(transform(px)), y.at(py)))
                .collect();
            if coordinates.is_empty() {
                continue;
            }
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
                COLOURS[i % COLOURS.len()],
                coordinates.join(" "),
                escape(&series.name)
            );
        }
        let names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
        close(&mut svg, &names);
        svg
    }
}

/// Ticks for a log₁₀ axis spanning `[lo, hi]` (in log units): 1, 2 and 5 × 10ⁿ inside the
/// range, thinned to the powers of ten when the range covers many decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mantissas: &[f64] = if hi - lo > 3.0 { &[1.0] } else { &[1.0, 2.0, 5.0] };
    let mut ticks = Vec::new();
    for decade in lo.floor() as i64..=hi.ceil() as i64 {
        for m in mantissas {
            let t = decade as f64 + m.log10();
            if t >= lo - 1e-9 && t <= hi + 1e-9 {
                ticks.push(t);
            }
        }
    }
    if ticks.is_empty() {
        ticks = vec![lo, hi];
    }
    ticks
}

/// A tick label with `decimals` places, without a "-0" for values that round to zero.
fn format_tick(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text[1..].to_string()
    } else {
        text
    }
}

impl BarChart {
    /// The chart as a complete SVG document. Bars rise from zero, so zero is always on the axis.
    pub fn render(&self) -> String {
        let values = self.series.iter().flat_map(|s| s.bars.iter()).flat_map(|b| [b.value, b.lo, b.hi]);
        let (y_lo, y_hi) = span(values.chain([0.0]));
        let y_ticks = nice_ticks(y_lo, y_hi, 5);
        let y = Scale { from: (y_ticks[0], y_ticks[y_ticks.len() - 1]), to: (plot_bottom(), plot_top()) };

        let mut svg = String::new();
        open(&mut svg, &self.title);
        y_axis(&mut svg, y, &y_ticks, &self.y_label);

        let group_width = (plot_right() - plot_left()) / self.groups.len().max(1) as f64;
        // Bars fill 80% of a group, leaving a gap between groups.
        let bar_width = group_width * 0.8 / self.series.len().max(1) as f64;
        let zero = y.at(0.0);
        for (g, group) in self.groups.iter().enumerate() {
            let group_left = plot_left() + group_width * g as f64;
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                group_left + group_width / 2.0,
                plot_bottom() + 18.0,
                escape(group)
            );
            for (s, series) in self.series.iter().enumerate() {
                let Some(bar) = series.bars.get(g) else { continue };
                let left = group_left + group_width * 0.1 + bar_width * s as f64;
                let centre = left + bar_width / 2.0;
                if bar.value.is_finite() {
                    let top = y.at(bar.value);
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{left:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                        top.min(zero),
                        bar_width * 0.92,
                        (top - zero).abs(),
                        COLOURS[s % COLOURS.len()],
                        escape(&series.name),
                        bar.value
                    );
                }
                if bar.lo.is_finite() && bar.hi.is_finite() {
                    let (lo, hi) = (y.at(bar.lo), y.at(bar.hi));
                    // Caps a fixed width at most, so a lone wide bar does not get a wide whisker.
                    let half = (bar_width * 0.2).min(8.0);
                    let _ = writeln!(
                        svg,
                        r#"<path d="M{centre:.1},{lo:.1}V{hi:.1}M{:.1},{lo:.1}H{:.1}M{:.1},{hi:.1}H{:.1}" stroke="black" fill="none"/>"#,
                        centre - half,
                        centre + half,
                        centre - half,
                        centre + half
                    );
                }
            }
        }
        if y_ticks[0] < 0.0 {
            let _ = writeln!(
                svg,
                r#"<line x1="{:.1}" y1="{zero:.1}" x2="{:.1}" y2="{zero:.1}" stroke="black"/>"#,
                plot_left(),
                plot_right()
            );
        }
        let names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
        close(&mut svg, &names);
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element opened is closed: counts `<name` against `</name>` and `/>`.
    fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
        let opened = svg.matches('<').count() - svg.matches("</").count();
        let closed = svg.matches("</").count() + svg.matches("/>").count();
        assert_eq!(opened, closed, "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    fn recall_chart() -> LineChart {
        LineChart {
            title: "Recall@k".into(),
            x_label: "k".into(),
            y_label: "mean recall".into(),
            log_x: false,
            series: vec![
                Series { name: "base".into(), points: (1..=100).map(|k| (k as f64, 0.3 + 0.005 * k as f64)).collect() },
                Series { name: "rrra".into(), points: (1..=100).map(|k| (k as f64, 0.4 + 0.005 * k as f64)).collect() },
            ],
        }
    }

    #[test]
    fn nice_ticks_use_round_steps_and_enclose_the_range() {
        let ticks = nice_ticks(0.0, 1.0, 5);
        assert_eq!(ticks.len(), 6);
        assert!(ticks.iter().enumerate().all(|(i, t)| (t - 0.2 * i as f64).abs() < 1e-12), "{ticks:?}");
        assert_eq!(nice_ticks(1.0, 100.0, 6), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let ticks = nice_ticks(0.31, 0.87, 5);
        assert!(ticks[0] <= 0.31 && *ticks.last().unwrap() >= 0.87, "{ticks:?}");
        assert_eq!(tick_decimals(&ticks), 1);
        let ticks = nice_ticks(-0.013, 0.021, 5);
        assert!(ticks[0] <= -0.013 && *ticks.last().unwrap() >= 0.021, "{ticks:?}");
        assert_eq!(tick_decimals(&ticks), 2);
    }

    #[test]
    fn log_ticks_stay_inside_the_range() {
        let ticks: Vec<f64> = log_ticks(0.0, 2.0).iter().map(|t| 10f64.powf(*t).round()).collect();
        assert_eq!(ticks, [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        assert_eq!(log_ticks(0.0, 5.0).len(), 6);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"a<b & "c" 'd'>"#), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(escape("bell\u{7}"), "bell");
        let mut chart = recall_chart();
        chart.title = "R@k <base & rrra>".into();
        let svg = chart.render();
        assert!(svg.contains("R@k &lt;base &amp; rrra&gt;"));
        assert_well_formed(&svg);
    }

    #[test]
    fn line_chart_draws_one_line_per_series() {
        let svg = recall_chart().render();
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(">base</text>") && svg.contains(">rrra</text>"));
        assert_eq!(svg, recall_chart().render());
        let mut log = recall_chart();
        log.log_x = true;
        let svg = log.render();
        assert_well_formed(&svg);
        assert!(svg.contains(">50</text>"));
    }

    #[test]
    fn non_finite_and_empty_input_draw_nothing_bogus() {
        let chart = LineChart {
            log_x: true,
            series: vec![
                Series {
                    name: "gaps".into(),
                    points: vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 0.5), (f64::INFINITY, 1.0)],
                },
                Series { name: "empty".into(), points: vec![] },
            ],
            ..LineChart::default()
        };
        let svg = chart.render();
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_well_formed(&LineChart::default().render());
        assert_well_formed(&BarChart::default().render());
    }

    #[test]
    fn bar_chart_draws_bars_and_whiskers() {
        let chart = BarChart {
            title: "Metrics with 95% intervals".into(),
            y_label: "score".into(),
            groups: vec!["R@1".into(), "MRR@10".into(), "nDCG@10".into()],
            series: vec![
                BarSeries {
                    name: "base".into(),
                    bars: vec![
                        Bar { value: 0.4, lo: 0.38, hi: 0.42 },
                        Bar { value: 0.5, lo: 0.48, hi: 0.52 },
                        Bar { value: 0.55, lo: f64::NAN, hi: f64::NAN },
                    ],
                },
                // A short series: its missing third bar is skipped.
                BarSeries {
                    name: "rrra".into(),
                    bars: vec![Bar { value: 0.45, lo: 0.43, hi: 0.47 }, Bar { value: 0.56, lo: 0.54, hi: 0.58 }],
                },
            ],
        };
        let svg = chart.render();
        assert_well_formed(&svg);
        // Two background/frame rects, two legend swatches, five bars.
        assert_eq!(svg.matches("<rect").count(), 2 + 2 + 5);
        assert_eq!(svg.matches("<path").count(), 4);
        assert!(svg.contains(">nDCG@10</text>"));
    }

    #[test]
    fn negative_bars_hang_from_a_zero_line() {
        let chart = BarChart {
            groups: vec!["Δ R@1".into()],
            series: vec![BarSeries {
                name: "rrra − base".into(),
                bars: vec![Bar { value: -0.02, lo: -0.03, hi: -0.01 }],
            }],
            ..BarChart::default()
        };
        let svg = chart.render();
        assert_well_formed(&svg);
        assert!(svg.contains(r#"stroke="black"/>"#));
        assert!(!svg.contains("height=\"-"));
    }
}
