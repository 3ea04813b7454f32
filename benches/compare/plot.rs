//! SVG charts of benchmark results, for the report in `docs/BENCHMARKS.md`: a horizontal bar
//! chart of one metric per peer, and a line chart of a metric against a load parameter. Both
//! draw the median, with the min–max spread over rounds as a whisker or an error bar.
//!
//! A chart is a standalone SVG document without external resources, byte-identical for the
//! same input.
//! No input panics: non-finite values are not drawn, and the rest is clamped to the axes.

use std::fmt::Write as _;

/// Width of every chart.
const WIDTH: f64 = 640.0;
/// Baseline of the title.
const TITLE_Y: f64 = 26.0;
/// Top of the plot area, below the title.
const PLOT_TOP: f64 = 46.0;
/// Approximate width of one character of 13 px text, for the layout.
const CHAR_WIDTH: f64 = 7.0;
/// Gap between a text and what it labels.
const GAP: f64 = 8.0;
/// Distance from the vertical centre of 13 px text to its baseline.
const BASELINE: f64 = 4.5;
/// Space under the plot area for the tick labels and the axis title.
const AXIS_SPACE: f64 = 52.0;
/// Half the length of a whisker's end caps.
const CAP: f64 = 4.0;
/// Longest bar label or series name, in characters; longer ones are shortened.
const LABEL_CHARS: usize = 32;
/// Narrowest left margin of the bar chart, which holds the labels.
const BAR_LEFT_MIN: f64 = 60.0;
/// Right margin of the bar chart, which holds the median of the longest bar.
const BAR_RIGHT: f64 = 64.0;
/// Height of one bar's row.
const BAR_ROW: f64 = 30.0;
/// Height of a bar.
const BAR_HEIGHT: f64 = 18.0;
/// Left margin of the line chart, which holds the y tick labels and the y axis title.
const LINE_LEFT: f64 = 84.0;
/// Right margin of the line chart.
const LINE_RIGHT: f64 = 24.0;
/// Height of the line chart's plot area.
const LINE_HEIGHT: f64 = 280.0;
/// Inset of the outermost x positions from the ends of the line chart's x axis.
const X_INSET: f64 = 20.0;
/// Height of one row of the legend.
const LEGEND_ROW: f64 = 22.0;
/// Colour of the highlighted bar or series (reactor).
const HIGHLIGHT: &str = "#e8590c";
/// Colour of the bars that are not highlighted.
const BAR_FILL: &str = "#8fa7c4";
/// Colours of the line chart's series that are not highlighted, in order.
const PALETTE: [&str; 8] =
    ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"];
/// Colour of the gridlines.
const GRID: &str = "#e4e4e4";
/// Colour of the axes and of the bar chart's whiskers.
const INK: &str = "#333";
/// Attributes of tick labels.
const TICK_TEXT: &str = r##" font-size="12" fill="#555""##;

/// One bar: a peer's median, with the min–max spread over rounds drawn as a whisker.
pub struct Bar {
    pub label: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub highlight: bool,
}

/// Horizontal bar chart: one bar per peer, top to bottom in the given order. `unit` is shown in
/// the axis title, e.g. "server CPU µs per request (lower is better)". The highlighted bar
/// (reactor) gets a distinct colour. Each bar is labelled at its end with the median, formatted
/// with 3 significant digits (e.g. 7.19, 0.549, 12.3, 237, 5,120), all digits from 100 up, and
/// thousands separators from 1,000 up (e.g. "12,345").
pub fn bar_chart(title: &str, unit: &str, bars: &[Bar]) -> String {
    let longest = bars.iter().map(|bar| bar.label.chars().count().min(LABEL_CHARS)).max();
    let left = (longest.unwrap_or(0) as f64 * CHAR_WIDTH + 2.0 * GAP).max(BAR_LEFT_MIN);
    let axis_y = PLOT_TOP + bars.len().max(1) as f64 * BAR_ROW;
    let mut svg = open(axis_y + AXIS_SPACE, title);
    let (top, ticks) = axis(max_finite(bars.iter().flat_map(|b| [b.median, b.min, b.max])));
    let x = Scale { lo: 0.0, hi: top, px_lo: left, px_hi: WIDTH - BAR_RIGHT, log: false };
    for (tick, label) in ticks {
        let px = x.px(tick);
        line(&mut svg, (px, PLOT_TOP), (px, axis_y), GRID, 1.0);
        text(&mut svg, (px, axis_y + 18.0), "middle", TICK_TEXT, &label);
    }
    line(&mut svg, (left, PLOT_TOP), (left, axis_y), INK, 1.0);
    line(&mut svg, (left, axis_y), (x.px_hi, axis_y), INK, 1.0);
    text(&mut svg, ((left + x.px_hi) / 2.0, axis_y + 40.0), "middle", "", unit);
    if bars.is_empty() {
        text(&mut svg, (WIDTH / 2.0, PLOT_TOP + BAR_ROW / 2.0 + BASELINE), "middle", "", "no data");
    }
    for (i, bar) in bars.iter().enumerate() {
        let mid = PLOT_TOP + (i as f64 + 0.5) * BAR_ROW;
        text(&mut svg, (left - GAP, mid + BASELINE), "end", "", &shorten(&bar.label));
        if !bar.median.is_finite() {
            continue;
        }
        let (end, top) = (x.px(bar.median), mid - BAR_HEIGHT / 2.0);
        let fill = if bar.highlight { HIGHLIGHT } else { BAR_FILL };
        let _ = writeln!(
            svg,
            "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{BAR_HEIGHT:.1}\" \
             fill=\"{fill}\"/>",
            end - left,
        );
        let mut value_x = end;
        if let Some((lo, hi)) = spread(bar.median, bar.min, bar.max) {
            whisker(&mut svg, (x.px(lo), mid), (x.px(hi), mid), (0.0, CAP), INK);
            value_x = x.px(hi);
        }
        let value = format_sig(bar.median);
        text(&mut svg, (value_x + GAP, mid + BASELINE), "start", "", &value);
    }
    svg + "</svg>\n"
}

/// One point of a series: x, and the median with the min–max spread.
pub struct Point {
    pub x: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
    pub highlight: bool,
}

/// Line chart with markers and vertical min–max error bars, a legend, a log10 x axis when `log_x`
/// (ticks at the x values of the points, e.g. 10, 100, 1,000, 10,000), a linear y axis from 0 with
/// "nice" ticks (1/2/5 × 10^k steps, 4–7 ticks), axis titles `x_label` and `y_label`.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    log_x: bool,
    series: &[Series],
) -> String {
    let points: Vec<Vec<&Point>> = series.iter().map(|s| usable(&s.points, log_x)).collect();
    let mut xs: Vec<f64> = points.iter().flatten().map(|p| p.x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (right, axis_y) = (WIDTH - LINE_RIGHT, PLOT_TOP + LINE_HEIGHT);

    // The legend, below the plot: a grid of equal cells, highlighted series first.
    let order = (0..series.len()).filter(|&i| series[i].highlight);
    let order: Vec<usize> =
        order.chain((0..series.len()).filter(|&i| !series[i].highlight)).collect();
    let longest = series.iter().map(|s| s.name.chars().count().min(LABEL_CHARS)).max();
    let cell = 50.0 + longest.unwrap_or(0) as f64 * CHAR_WIDTH;
    let columns = ((right - LINE_LEFT) / cell).max(1.0) as usize;
    let legend_top = axis_y + AXIS_SPACE;
    let height = legend_top + series.len().div_ceil(columns) as f64 * LEGEND_ROW + 8.0;
    let mut svg = open(height, title);

    // The axes: y linear from 0; x at the points' values when logarithmic, else linear from 0.
    let (top, y_ticks) = axis(max_finite(points.iter().flatten().flat_map(|p| [p.max, p.median])));
    let y = Scale { lo: 0.0, hi: top, px_lo: axis_y, px_hi: PLOT_TOP, log: false };
    for (tick, label) in y_ticks {
        let py = y.px(tick);
        line(&mut svg, (LINE_LEFT, py), (right, py), GRID, 1.0);
        text(&mut svg, (LINE_LEFT - GAP, py + BASELINE), "end", TICK_TEXT, &label);
    }
    let (lo, hi, x_ticks) = if log_x {
        let (lo, hi) =
            (xs.first().map_or(0.0, |v| v.log10()), xs.last().map_or(1.0, |v| v.log10()));
        let pad = if hi - lo < 1e-9 { 0.5 } else { 0.0 };
        (lo - pad, hi + pad, xs.iter().map(|&v| (v, format_short(v))).collect())
    } else {
        let (hi, ticks) = axis(max_finite(xs.iter().copied()));
        (0.0, hi, ticks)
    };
    let x = Scale { lo, hi, px_lo: LINE_LEFT + X_INSET, px_hi: right - X_INSET, log: log_x };
    let mut free_from = f64::NEG_INFINITY;
    for (value, label) in x_ticks {
        let (px, half) = (x.px(value), label.chars().count() as f64 * CHAR_WIDTH / 2.0);
        line(&mut svg, (px, PLOT_TOP), (px, axis_y), GRID, 1.0);
        if px - half >= free_from {
            text(&mut svg, (px, axis_y + 18.0), "middle", TICK_TEXT, &label);
            free_from = px + half + GAP;
        }
    }
    line(&mut svg, (LINE_LEFT, PLOT_TOP), (LINE_LEFT, axis_y), INK, 1.0);
    line(&mut svg, (LINE_LEFT, axis_y), (right, axis_y), INK, 1.0);
    text(&mut svg, ((LINE_LEFT + right) / 2.0, axis_y + 40.0), "middle", "", x_label);
    let (y_title_x, y_title_y) = (18.0, (PLOT_TOP + axis_y) / 2.0);
    let rotate = format!(r#" transform="rotate(-90 {y_title_x:.1} {y_title_y:.1})""#);
    text(&mut svg, (y_title_x, y_title_y), "middle", &rotate, y_label);
    if xs.is_empty() {
        text(&mut svg, ((LINE_LEFT + right) / 2.0, y.px(top / 2.0)), "middle", "", "no data");
    }

    // The series, the highlighted ones last so that they are drawn on top, then the legend.
    let styles = styles(series);
    for &i in order.iter().rev() {
        let (colour, width, radius) = styles[i];
        if points[i].len() > 1 {
            let at = |p: &&Point| format!("{:.1},{:.1}", x.px(p.x), y.px(p.median));
            let line = points[i].iter().map(at).collect::<Vec<_>>().join(" ");
            let stroke = format!(r#"stroke="{colour}" stroke-width="{width:.1}""#);
            let _ = writeln!(svg, r#"<polyline points="{line}" fill="none" {stroke}/>"#);
        }
        for p in &points[i] {
            if let Some((lo, hi)) = spread(p.median, p.min, p.max) {
                let px = x.px(p.x);
                whisker(&mut svg, (px, y.px(lo)), (px, y.px(hi)), (CAP, 0.0), colour);
            }
            marker(&mut svg, (x.px(p.x), y.px(p.median)), radius, colour);
        }
    }
    for (k, &i) in order.iter().enumerate() {
        let (colour, width, radius) = styles[i];
        let lx = LINE_LEFT + (k % columns) as f64 * cell;
        let ly = legend_top + ((k / columns) as f64 + 0.5) * LEGEND_ROW;
        line(&mut svg, (lx, ly), (lx + 24.0, ly), colour, width);
        marker(&mut svg, (lx + 12.0, ly), radius, colour);
        let weight = if series[i].highlight { r#" font-weight="bold""# } else { "" };
        text(&mut svg, (lx + 30.0, ly + BASELINE), "start", weight, &shorten(&series[i].name));
    }
    svg + "</svg>\n"
}

/// Escapes text for SVG/XML content and attributes (&, <, >, ", '). Control characters, which
/// XML cannot hold, are dropped (tabs and line breaks are kept).
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if c.is_control() => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// Maps values from `lo` to `hi` on a linear or log10 axis (`lo` and `hi` are then log10 values)
/// to pixels from `px_lo` to `px_hi`.
struct Scale {
    lo: f64,
    hi: f64,
    px_lo: f64,
    px_hi: f64,
    log: bool,
}

impl Scale {
    /// The pixel of `value`, clamped to the axis (a NaN maps to the axis' start).
    fn px(&self, value: f64) -> f64 {
        let value = if self.log { value.log10() } else { value };
        let t = ((value - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        let t = if t.is_nan() { 0.0 } else { t };
        self.px_lo + t * (self.px_hi - self.px_lo)
    }
}

/// The start of an SVG document of the chart's width and `height`, with its background and title.
fn open(height: f64, title: &str) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {WIDTH:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    text(&mut svg, (16.0, TITLE_Y), "start", r#" font-size="14" font-weight="bold""#, title);
    svg
}

/// Appends a line from `a` to `b`.
fn line(svg: &mut String, a: (f64, f64), b: (f64, f64), colour: &str, width: f64) {
    let ((x1, y1), (x2, y2)) = (a, b);
    let _ = writeln!(
        svg,
        "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" \
         stroke=\"{colour}\" stroke-width=\"{width:.1}\"/>"
    );
}

/// Appends `content` at `at`, aligned by `anchor` (start, middle or end), with extra `attributes`.
fn text(svg: &mut String, at: (f64, f64), anchor: &str, attributes: &str, content: &str) {
    let ((x, y), content) = (at, escape(content));
    let _ = writeln!(
        svg,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}"{attributes}>{content}</text>"#
    );
}

/// Appends a whisker from `a` to `b` with end caps reaching `cap` to either side of its ends.
fn whisker(svg: &mut String, a: (f64, f64), b: (f64, f64), cap: (f64, f64), colour: &str) {
    line(svg, a, b, colour, 1.5);
    for end in [a, b] {
        line(svg, (end.0 - cap.0, end.1 - cap.1), (end.0 + cap.0, end.1 + cap.1), colour, 1.5);
    }
}

/// Appends a round marker at `at`, ringed in white to stand out from lines behind it.
fn marker(svg: &mut String, at: (f64, f64), radius: f64, colour: &str) {
    let _ = writeln!(
        svg,
        r#"<circle cx="{:.1}" cy="{:.1}" r="{radius:.1}" fill="{colour}" stroke="white"/>"#,
        at.0, at.1,
    );
}

/// The colour, line width and marker radius of each series: the highlight colour and larger for
/// the highlighted ones, the palette's next colour for the others.
fn styles(series: &[Series]) -> Vec<(&'static str, f64, f64)> {
    let mut palette = PALETTE.iter().cycle();
    let mut style = |s: &Series| {
        if s.highlight {
            (HIGHLIGHT, 3.0, 4.5)
        } else {
            (*palette.next().unwrap_or(&INK), 1.8, 3.5)
        }
    };
    series.iter().map(&mut style).collect()
}

/// The points that can be drawn, in the order of x: finite, and with x > 0 on a log axis.
fn usable(points: &[Point], log_x: bool) -> Vec<&Point> {
    let mut usable: Vec<&Point> = points
        .iter()
        .filter(|p| p.x.is_finite() && p.median.is_finite() && (!log_x || p.x > 0.0))
        .collect();
    usable.sort_by(|a, b| a.x.total_cmp(&b.x));
    usable
}

/// The whisker of a finite median: from min to max, widened to include the median.
fn spread(median: f64, min: f64, max: f64) -> Option<(f64, f64)> {
    (min.is_finite() && max.is_finite()).then_some((min.min(median), max.max(median)))
}

/// The largest finite value, or 0.
fn max_finite(values: impl Iterator<Item = f64>) -> f64 {
    values.filter(|v| v.is_finite()).fold(0.0, f64::max)
}

/// The top and the ticks, with their labels, of an axis from 0 that shows `max`: the step is 1,
/// 2 or 5 × 10^k and the top a multiple of it, 3 to 6 steps up (4 to 7 ticks). A `max` that is
/// not positive gives an axis from 0 to 1.
fn axis(max: f64) -> (f64, Vec<(f64, String)>) {
    let max = if max > 0.0 && max < 1e300 { max } else { 1.0 };
    let base = 10f64.powf((max / 5.0).log10().floor());
    let m = [1.0, 2.0, 5.0].into_iter().find(|m| (max / (m * base)).ceil() <= 6.0).unwrap_or(10.0);
    let (step, steps) = (m * base, (max / (m * base)).ceil().min(10.0));
    let decimals = (-(step.log10() + 1e-9).floor()).clamp(0.0, 15.0) as usize;
    let ticks = (0..=steps as usize).map(|i| i as f64 * step);
    (steps * step, ticks.map(|tick| (tick, format_fixed(tick, decimals))).collect())
}

/// `value` with 3 significant digits, or all digits from 100 up, thousands separated.
fn format_sig(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return if value == 0.0 { "0".to_string() } else { String::new() };
    }
    let magnitude = value.abs().log10().floor() as i32;
    if !(-9..16).contains(&magnitude) {
        return format!("{value:.2e}");
    }
    let mut decimals = (2 - magnitude).clamp(0, 15);
    // Rounding can carry into another digit (9.996 -> 10.00); one decimal less then.
    let scale = 10f64.powi(decimals);
    if decimals > 0 && (value.abs() * scale).round() / scale >= 10f64.powi(magnitude + 1) {
        decimals -= 1;
    }
    format_fixed(value, decimals as usize)
}

/// `value` like [`format_sig`], without trailing zeros after the point (10, 2.5).
fn format_short(value: f64) -> String {
    let text = format_sig(value);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// `value` with `decimals` decimals, thousands separated.
fn format_fixed(value: f64, decimals: usize) -> String {
    let digits = format!("{:.*}", decimals, value.abs());
    let int_len = digits.find('.').unwrap_or(digits.len());
    let negative = value < 0.0 && digits.chars().any(|c| matches!(c, '1'..='9'));
    let mut out = String::from(if negative { "-" } else { "" });
    for (i, c) in digits[..int_len].chars().enumerate() {
        if i > 0 && (int_len - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out + &digits[int_len..]
}

/// `label`, shortened to [`LABEL_CHARS`] characters with an ellipsis if longer.
fn shorten(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_string();
    }
    label.chars().take(LABEL_CHARS - 1).chain(['…']).collect()
}
