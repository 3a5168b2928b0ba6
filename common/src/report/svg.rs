//! Charts as inline SVG text: line charts (linear or log axes, shaded ranges) and bar charts,
//! with labelled axes, a legend, and colours from the Okabe–Ito palette (told apart by
//! readers with any common colour-vision deficiency; lines also differ by dash pattern). No
//! script, no external resource: the page works offline and without JavaScript.
//!
//! Every series is one `<path class="series" data-series="NAME">` (a bar chart's bars are
//! `<rect class="bar">`), so a browser test can check what was drawn. What does not belong
//! here: what the charts show (page.rs).

use std::fmt::Write;

/// Okabe–Ito, without its yellow (too light on white).
pub const PALETTE: [&str; 7] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
];
const DASHES: [&str; 4] = ["", "6 3", "2 2", "8 3 2 3"];

/// One line.
pub struct Series {
    /// Its legend name (also `data-series`).
    pub name: String,
    /// (x, y) points in data units; NaN y breaks the line.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
pub struct Chart<'a> {
    /// The `<svg id>`.
    pub id: &'a str,
    /// Title above the plot.
    pub title: &'a str,
    /// X axis label, with its unit.
    pub x_label: &'a str,
    /// Y axis label, with its unit.
    pub y_label: &'a str,
    /// The lines.
    pub series: Vec<Series>,
    /// X ranges shaded (client-bound seconds), with their legend name.
    pub shade: Vec<(f64, f64)>,
    /// The shading's legend name.
    pub shade_label: &'a str,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Fixed x ticks (value, label), instead of computed ones.
    pub x_ticks: Option<Vec<(f64, String)>>,
    /// Points drawn as markers too (few points, such as a sweep's).
    pub markers: bool,
    /// The x axis's range (charts over time share the run's); default: the data's.
    pub x_range: Option<(f64, f64)>,
}

const W: f64 = 900.0;
const H: f64 = 300.0;
const L: f64 = 70.0;
const R: f64 = 20.0;
const T: f64 = 34.0;
const B: f64 = 64.0;

/// Escape text for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Round ticks covering [lo, hi]: steps of 1, 2 or 5 × 10^k.
pub fn ticks(lo: f64, hi: f64, want: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / want.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = vec![];
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// A number for a tick label: no needless decimals.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}G", v / 1e9)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else if a >= 1e6 {
        format!("{:.3}M", v / 1e6).replace(".000M", "M")
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3).replace(".0k", "k")
    } else if a >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

fn header(out: &mut String, id: &str, title: &str) {
    let _ = write!(
        out,
        r##"<svg id="{}" class="chart" viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title><rect width="{W}" height="{H}" fill="#fff"/><text x="{L}" y="20" class="t">{}</text>"##,
        esc(id),
        esc(title),
        esc(title),
        esc(title)
    );
}

/// A line chart as one `<svg>` element: shading under the lines, axes, the series, legend.
pub fn line_chart(c: &Chart) -> String {
    let mut out = String::new();
    header(&mut out, c.id, c.title);
    let Some(f) = Frame::of(c) else {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="empty">no data</text></svg>"#,
            W / 2.0 - 30.0,
            H / 2.0
        );
        return out;
    };
    f.shading(&mut out, c);
    f.axes(&mut out, c);
    f.series(&mut out, c);
    legend(
        &mut out,
        c.series.iter().map(|s| s.name.as_str()),
        (!c.shade.is_empty()).then_some(c.shade_label),
    );
    out.push_str("</svg>");
    out
}

/// A line chart's data ranges and how they map to the plot: x0..x1 across, ly0..ly1 up (in
/// decades on a log scale).
struct Frame {
    x0: f64,
    x1: f64,
    ly0: f64,
    ly1: f64,
    log_y: bool,
}

impl Frame {
    /// The ranges of the finite points (None: no data), widened to `x_range` and the ticks.
    fn of(c: &Chart) -> Option<Frame> {
        let pts = c
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            if c.log_y && y <= 0.0 {
                continue;
            }
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            return None;
        }
        if let Some((a, b)) = c.x_range {
            (x0, x1) = (a, b);
        }
        if let Some(t) = &c.x_ticks {
            for (v, _) in t {
                x0 = x0.min(*v);
                x1 = x1.max(*v);
            }
        }
        if x1 == x0 {
            x1 = x0 + 1.0;
        }
        let (ly0, ly1) = if c.log_y {
            let a = y0.max(1e-3).log10().floor();
            let b = y1.max(1e-3).log10().ceil().max(a + 1.0);
            (a, b)
        } else {
            let hi = if y1 <= 0.0 { 1.0 } else { y1 * 1.08 };
            (y0.min(0.0), hi)
        };
        Some(Frame {
            x0,
            x1,
            ly0,
            ly1,
            log_y: c.log_y,
        })
    }

    fn px(&self, x: f64) -> f64 {
        L + (x - self.x0) / (self.x1 - self.x0) * (W - L - R)
    }

    fn py(&self, y: f64) -> f64 {
        let v = if self.log_y { y.max(1e-300).log10() } else { y };
        H - B - (v - self.ly0) / (self.ly1 - self.ly0) * (H - T - B)
    }

    /// The shaded spans, first (under the lines).
    fn shading(&self, out: &mut String, c: &Chart) {
        let f = self;
        // Shading first (under the lines).
        for (a, b) in &c.shade {
            let (xa, xb) = (f.px(a.max(f.x0)), f.px(b.min(f.x1)));
            if xb > xa {
                let _ = write!(
                    out,
                    r##"<rect class="shade" x="{xa:.1}" y="{T}" width="{:.1}" height="{}" fill="#E69F00" fill-opacity="0.25"/>"##,
                    xb - xa,
                    H - T - B
                );
            }
        }
    }

    /// Axes, grid and ticks.
    fn axes(&self, out: &mut String, c: &Chart) {
        let f = self;
        // Axes, grid, ticks.
        let yt: Vec<(f64, String)> = if c.log_y {
            (f.ly0 as i32..=f.ly1 as i32)
                .map(|e| (10f64.powi(e), num(10f64.powi(e))))
                .collect()
        } else {
            ticks(f.ly0, f.ly1, 5)
                .into_iter()
                .map(|v| (v, num(v)))
                .collect()
        };
        for (v, label) in &yt {
            let y = f.py(*v);
            let _ = write!(
                out,
                r##"<line f.x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" class="yt">{}</text>"##,
                W - R,
                L - 6.0,
                y + 4.0,
                esc(label)
            );
        }
        let xt: Vec<(f64, String)> = match &c.x_ticks {
            Some(t) => t.clone(),
            None => ticks(f.x0, f.x1, 8)
                .into_iter()
                .map(|v| (v, num(v)))
                .collect(),
        };
        for (v, label) in &xt {
            let x = f.px(*v);
            let _ = write!(
                out,
                r##"<line f.x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{x:.1}" y="{}" class="xt">{}</text>"##,
                H - B,
                H - B + 5.0,
                H - B + 18.0,
                esc(label)
            );
        }
        let _ = write!(
            out,
            r##"<line f.x1="{L}" x2="{L}" y1="{T}" y2="{}" stroke="#333"/><line f.x1="{L}" x2="{}" y1="{}" y2="{}" stroke="#333"/><text x="{}" y="{}" class="xl">{}</text><text transform="translate(16 {}) rotate(-90)" class="yl">{}</text>"##,
            H - B,
            W - R,
            H - B,
            H - B,
            L + (W - L - R) / 2.0,
            H - B + 36.0,
            esc(c.x_label),
            T + (H - T - B) / 2.0,
            esc(c.y_label)
        );
    }

    /// The series' lines (and markers), clipped to the plot: samples may start before the
    /// first request.
    fn series(&self, out: &mut String, c: &Chart) {
        let f = self;
        let clip = format!("clip-{}", esc(c.id));
        let _ = write!(
            out,
            r#"<clipPath id="{clip}"><rect x="{L}" y="{}" width="{}" height="{}"/></clipPath><g clip-path="url(#{clip})">"#,
            T - 4.0,
            W - L - R + 4.0,
            H - T - B + 8.0
        );
        for (i, s) in c.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let dash = DASHES[(i / PALETTE.len() + i) % DASHES.len()];
            let mut d = String::new();
            let mut pen = false;
            for &(x, y) in &s.points {
                if !(x.is_finite() && y.is_finite()) || (c.log_y && y <= 0.0) {
                    pen = false;
                    continue;
                }
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if pen { "L" } else { "M" },
                    f.px(x),
                    f.py(y)
                );
                pen = true;
            }
            let _ = write!(
                out,
                r#"<path class="series" data-series="{}" d="{}" fill="none" stroke="{colour}" stroke-width="1.8" stroke-dasharray="{dash}"/>"#,
                esc(&s.name),
                if d.is_empty() { "M0,0".into() } else { d }
            );
            if c.markers {
                for &(x, y) in s
                    .points
                    .iter()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                {
                    let _ = write!(
                        out,
                        r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"/>"#,
                        f.px(x),
                        f.py(y)
                    );
                }
            }
        }
        out.push_str("</g>");
    }
}

fn legend<'a>(out: &mut String, names: impl Iterator<Item = &'a str>, shade: Option<&str>) {
    let mut x = L;
    let y = H - 10.0;
    for (i, n) in names.enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let dash = DASHES[(i / PALETTE.len() + i) % DASHES.len()];
        let _ = write!(
            out,
            r#"<line x1="{x}" x2="{}" y1="{}" y2="{}" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{dash}"/><text x="{}" y="{y}" class="lg">{}</text>"#,
            x + 22.0,
            y - 4.0,
            y - 4.0,
            x + 26.0,
            esc(n)
        );
        x += 34.0 + 7.0 * n.chars().count() as f64;
        if x > W - 120.0 {
            break;
        }
    }
    if let Some(s) = shade {
        let _ = write!(
            out,
            r##"<rect x="{x}" y="{}" width="18" height="10" fill="#E69F00" fill-opacity="0.35"/><text x="{}" y="{y}" class="lg">{}</text>"##,
            y - 9.0,
            x + 22.0,
            esc(s)
        );
    }
}

/// A bar chart: one bar per (label, value); a hatched bar is a figure of another grade.
pub fn bar_chart(id: &str, title: &str, y_label: &str, bars: &[(String, f64, bool)]) -> String {
    let mut out = String::new();
    header(&mut out, id, title);
    out.push_str(r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#0072B2" stroke-width="3"/></pattern></defs>"##);
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    let hi = if max > 0.0 { max * 1.1 } else { 1.0 };
    let py = |v: f64| H - B - v / hi * (H - T - B);
    for v in ticks(0.0, hi, 5) {
        let y = py(v);
        let _ = write!(
            out,
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" class="yt">{}</text>"##,
            W - R,
            L - 6.0,
            y + 4.0,
            num(v)
        );
    }
    let n = bars.len().max(1) as f64;
    let slot = (W - L - R) / n;
    let bw = (slot * 0.7).min(60.0);
    for (i, (label, v, hatched)) in bars.iter().enumerate() {
        let x = L + slot * i as f64 + (slot - bw) / 2.0;
        let fill = if *hatched { "url(#hatch)" } else { PALETTE[0] };
        let _ = write!(
            out,
            r##"<rect class="bar" data-bar="{}" x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{fill}" stroke="#0072B2"><title>{}: {}</title></rect>"##,
            esc(label),
            py(*v),
            (H - B - py(*v)).max(0.0),
            esc(label),
            num(*v)
        );
        if bars.len() <= 40 {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{}" class="xt">{}</text>"#,
                x + bw / 2.0,
                H - B + 16.0,
                esc(label)
            );
        }
    }
    let _ = write!(
        out,
        r##"<line x1="{L}" x2="{L}" y1="{T}" y2="{}" stroke="#333"/><line x1="{L}" x2="{}" y1="{}" y2="{}" stroke="#333"/><text transform="translate(16 {}) rotate(-90)" class="yl">{}</text></svg>"##,
        H - B,
        W - R,
        H - B,
        H - B,
        T + (H - T - B) / 2.0,
        esc(y_label)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 0.9, 3), vec![0.0, 0.5]);
        assert_eq!(num(12_500.0), "12.5k");
        assert_eq!(num(0.25), "0.25");
    }

    #[test]
    fn every_series_is_a_named_path_and_text_is_escaped() {
        let svg = line_chart(&Chart {
            id: "c",
            title: "a <b> & c",
            x_label: "time (s)",
            y_label: "ms",
            series: vec![Series {
                name: "p99".into(),
                points: vec![(0.0, 1.0), (1.0, 2.0)],
            }],
            shade: vec![(0.5, 1.0)],
            shade_label: "client-bound",
            log_y: true,
            x_ticks: None,
            markers: false,
            x_range: None,
        });
        assert!(svg.contains(r#"data-series="p99""#));
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains(r#"class="shade""#));
    }
}
