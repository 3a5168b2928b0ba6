//! The short tables on stdout: one run's (the fleet, then each host, a grade beside every
//! figure) and a sweep's (one row per N, with the fitted curve's), as aligned text or
//! Markdown; and a sweep's `summary.json` shape. What does not belong here: the figures
//! (mod.rs builds the [`Report`] once).

use super::Report;
use crate::report::timeline::round3;
use crate::report::usl::Usl;
use crate::report::Role;
use serde::Serialize;

/// How the table is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Aligned columns.
    Text,
    /// A Markdown table (GitHub, Trac and MediaWiki render it, or convert it).
    Markdown,
}

/// The short table: the fleet, then each host; the grade beside every figure.
pub fn table(r: &Report, style: Style) -> String {
    let head = [
        "host", "format", "grade", "requests", "errors", "rps", "p50 ms", "p90 ms", "p99 ms",
        "p99.9 ms", "max ms", "bound s",
    ];
    let f = |v: Option<f64>| {
        v.map(|v| format!("{}", round3(v)))
            .unwrap_or_else(|| "-".into())
    };
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    let fl = &r.fleet;
    rows.push(vec![
        format!("fleet ({} merged)", fl.hosts_merged),
        "-".into(),
        fl.grade.to_string(),
        fl.requests.to_string(),
        fl.errors.to_string(),
        f(Some(fl.rps)),
        f(Some(fl.latency_ms.p50)),
        f(Some(fl.latency_ms.p90)),
        f(Some(fl.latency_ms.p99)),
        f(Some(fl.latency_ms.p999)),
        f(Some(fl.latency_ms.max)),
        f(Some(fl.client_bound_s)),
    ]);
    if fl.client_bound_s > 0.0 {
        let w = &fl.without_client_bound;
        rows.push(vec![
            "fleet, client-bound s left out".into(),
            "-".into(),
            fl.grade.to_string(),
            w.requests.to_string(),
            w.errors.to_string(),
            f(Some(w.rps)),
            f(Some(w.latency_ms.p50)),
            f(Some(w.latency_ms.p90)),
            f(Some(w.latency_ms.p99)),
            f(Some(w.latency_ms.p999)),
            f(Some(w.latency_ms.max)),
            "0".into(),
        ]);
    }
    for h in r.hosts.iter().filter(|h| h.role != Role::Idle) {
        let l = h.latency_ms.clone().unwrap_or_default();
        let role = if h.role == Role::Target {
            " (target)"
        } else {
            ""
        };
        rows.push(vec![
            format!("#{} {}{role}", h.index, h.id),
            h.format.unwrap_or("-").into(),
            h.grade.map(|g| g.to_string()).unwrap_or_else(|| "-".into()),
            h.requests
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            h.errors
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            f(h.rps),
            f(l.p50),
            f(l.p90),
            f(l.p99),
            f(l.p999),
            f(l.max),
            f(Some(h.client_bound_s)),
        ]);
    }
    render(&rows, style)
}

/// Rows (the first is the header) as aligned text or Markdown.
pub fn render(rows: &[Vec<String>], style: Style) -> String {
    let cols = rows.first().map(Vec::len).unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        match style {
            Style::Text => {
                let cells: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(c, v)| {
                        if c < 3 {
                            format!("{v:<w$}", w = width[c])
                        } else {
                            format!("{v:>w$}", w = width[c])
                        }
                    })
                    .collect();
                out.push_str(cells.join("  ").trim_end());
            }
            Style::Markdown => {
                out.push_str("| ");
                out.push_str(
                    &r.iter()
                        .map(|v| v.replace('|', "\\|"))
                        .collect::<Vec<_>>()
                        .join(" | "),
                );
                out.push_str(" |");
                if i == 0 {
                    out.push_str("\n|");
                    for c in 0..cols {
                        out.push_str(if c < 3 { " --- |" } else { " ---: |" });
                    }
                }
            }
        }
        out.push('\n');
    }
    out
}

/// One run of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRun {
    /// The run's report directory.
    pub dir: String,
    /// Its client count.
    pub n: f64,
    /// Its fleet throughput, requests/s.
    pub rps: f64,
    /// X(N) / (N · λ): 1 is perfectly linear.
    pub efficiency: Option<f64>,
    /// Its p99, ms.
    pub p99_ms: f64,
    /// Seconds in which a client was the limit.
    pub client_bound_s: f64,
}

/// A sweep's summary.json.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    /// The shape's version.
    pub version: u32,
    /// The runs, by N.
    pub runs: Vec<SweepRun>,
    /// The fit (absent when it could not be made: `usl_error` says why).
    pub usl: Option<Usl>,
    /// Why there is no fit.
    pub usl_error: Option<String>,
    /// True when some run was client-bound: the curve then measures the clients too.
    pub client_bound: bool,
}

/// A sweep's table.
pub fn sweep_table(s: &Sweep, style: Style) -> String {
    let mut rows = vec![["N", "rps", "efficiency", "p99 ms", "bound s", "model rps"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for r in &s.runs {
        rows.push(vec![
            r.n.to_string(),
            round3(r.rps).to_string(),
            r.efficiency
                .map(|e| format!("{:.3}", e))
                .unwrap_or_else(|| "-".into()),
            r.p99_ms.to_string(),
            r.client_bound_s.to_string(),
            s.usl
                .as_ref()
                .map(|u| format!("{:.1}", u.x(r.n)))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    render(&rows, style)
}
