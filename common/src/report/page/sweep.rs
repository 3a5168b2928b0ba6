//! A sweep's page: throughput against N through the measured points, the fitted scaling
//! curve (USL) and its parameters, and one row per run. What does not belong here: the fit
//! (usl.rs), one run's page (mod.rs).

use super::{f, open};
use crate::report::svg::{esc, line_chart, num, Chart, Series};
use crate::report::write::Sweep;
use std::fmt::Write;

/// The page of a sweep: throughput against N with the fitted curve.
pub fn sweep_page(s: &Sweep, title: &str) -> String {
    let mut out = open(title);
    let _ = write!(
        out,
        "<h1>{}</h1><p class=\"sub\">{} runs</p>",
        esc(title),
        s.runs.len()
    );
    usl_line(&mut out, s);
    if s.client_bound {
        out.push_str("<p class=\"note\">Some runs were client-bound: the curve measures the load generators as well as the target.</p>");
    }
    out.push_str(&line_chart(&Chart {
        id: "usl-curve",
        title: "Throughput against the number of clients",
        x_label: "clients (N)",
        y_label: "requests/s",
        series: sweep_series(s),
        shade: vec![],
        shade_label: "",
        log_y: false,
        x_ticks: None,
        markers: true,
        x_range: None,
    }));
    runs_table(&mut out, s);
    out.push_str("</table></body></html>\n");
    out
}

/// The fit's parameters with their standard errors, and its peak (or why no fit).
fn usl_line(out: &mut String, s: &Sweep) {
    match (&s.usl, &s.usl_error) {
        (Some(u), _) => {
            let se = |i: usize| {
                u.stderr
                    .map(|e| format!(" ± {}", num(e[i])))
                    .unwrap_or_default()
            };
            let _ = write!(
                out,
                "<p id=\"usl\">Universal Scalability Law X(N) = λN / (1 + σ(N−1) + κN(N−1)): σ = {}{}, κ = {}{}, λ = {}{} req/s; fit relative RMSE {:.1} %, R² {:.4}. {}</p>",
                num(u.sigma), se(0), num(u.kappa), se(1), num(u.lambda), se(2), u.rel_rmse * 100.0, u.r2,
                match (u.n_peak, u.x_peak) {
                    (Some(n), Some(x)) => format!("Peak throughput {} req/s at N ≈ {:.1}.", num(x), n),
                    _ => "No peak: with κ = 0 throughput never falls, it only levels off.".into(),
                }
            );
        }
        (None, Some(e)) => {
            let _ = write!(out, "<p class=\"note\">No fit: {}</p>", esc(e));
        }
        _ => {}
    }
}

/// The measured points, the USL curve past the last N (to its peak, if near), and λN.
fn sweep_series(s: &Sweep) -> Vec<Series> {
    let measured = Series {
        name: "measured".into(),
        points: s.runs.iter().map(|r| (r.n, r.rps)).collect(),
    };
    let mut series = vec![measured];
    if let Some(u) = &s.usl {
        let hi = s.runs.iter().map(|r| r.n).fold(1.0, f64::max).max(
            u.n_peak
                .unwrap_or(0.0)
                .min(4.0 * s.runs.iter().map(|r| r.n).fold(1.0, f64::max)),
        ) * 1.25;
        series.push(Series {
            name: "USL fit".into(),
            points: (0..=100)
                .map(|i| {
                    let n = 1.0 + (hi - 1.0) * f64::from(i) / 100.0;
                    (n, u.x(n))
                })
                .collect(),
        });
        series.push(Series {
            name: "linear (λN)".into(),
            points: vec![(1.0, u.lambda), (hi, u.lambda * hi)],
        });
    }
    series
}

/// One row per run.
fn runs_table(out: &mut String, s: &Sweep) {
    out.push_str("<table id=\"runs\"><tr><th>N</th><th>req/s</th><th>efficiency</th><th>p99 ms</th><th>client-bound s</th><th>run</th></tr>");
    for r in &s.runs {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            num(r.n),
            num(r.rps),
            f(r.efficiency),
            f(Some(r.p99_ms)),
            num(r.client_bound_s),
            esc(&r.dir)
        );
    }
}
