//! `index.html`: one self-contained page (inline SVG and CSS; no script, no network) that
//! answers the load test at a glance — the headline figures with their grades, throughput
//! and latency over time, the percentile spectrum, per-host throughput, each client's CPU
//! with its client-bound seconds shaded, the targets' CPU, network and memory; for a sweep,
//! the scaling curve through the measured points (sweep.rs). What does not belong here:
//! computing figures (timeline.rs, write.rs) and chart geometry (svg.rs).

mod sweep;
pub use sweep::sweep_page;

use super::svg::{bar_chart, esc, line_chart, num, Chart, Series};
use super::timeline::Latency;
use super::write::Report;
use super::{Analysis, Role};
use std::fmt::Write;

const STYLE: &str = r#"body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:960px;color:#222;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px}p.sub{color:#555;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}td,th{padding:3px 9px;border-bottom:1px solid #e4e4e4;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f4f6f8;font-weight:600}
.grade{font-size:11px;padding:1px 6px;border-radius:8px;background:#e8f1fa;color:#0b4f85;white-space:nowrap}
.grade.summary-only{background:#fdf0e6;color:#8a3b00}.grade.throughput-only{background:#eaf6f1;color:#00553d}
.note{background:#fff8e6;border-left:4px solid #E69F00;padding:6px 10px;margin:8px 0}
.ok{background:#eef7f2;border-left:4px solid #009E73;padding:6px 10px;margin:8px 0}
svg.chart{display:block;margin:6px 0 2px;border:1px solid #eee}
svg text{font:12px system-ui,sans-serif;fill:#333}svg .t{font-size:14px;font-weight:600}svg .yt{text-anchor:end}svg .xt{text-anchor:middle}svg .xl{text-anchor:middle}svg .yl{text-anchor:middle}
"#;

fn open(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    )
}

fn grade(g: &str) -> String {
    format!(r#"<span class="grade {g}">{g}</span>"#)
}

fn f(v: Option<f64>) -> String {
    v.map(|v| num((v * 1000.0).round() / 1000.0))
        .unwrap_or_else(|| "–".into())
}

/// The page of one run: headline, verdict on the clients, charts over time, per host,
/// clients' and targets' samples, files not used.
pub fn run_page(a: &Analysis, r: &Report, title: &str) -> String {
    let iv = a.interval_us as f64 / 1e6;
    let rows = a.fleet.rows();
    let t0 = rows.first().map(|r| r.0).unwrap_or(0);
    let rel = |k: i64| (k - t0) as f64 * iv;
    let shade: Vec<(f64, f64)> = a.bound.iter().map(|k| (rel(*k), rel(*k) + iv)).collect();
    // Every chart over time spans the run, so they line up one above the other.
    let span = (0.0, rows.last().map(|r| rel(r.0) + iv).unwrap_or(1.0));
    let run = Run {
        a,
        r,
        rows,
        iv,
        t0,
        shade,
        span,
    };
    let mut out = open(title);
    let _ = write!(
        out,
        "<h1>{}</h1><p class=\"sub\">{} hosts merged · {} requests over {} s · interval {} s</p>",
        esc(title),
        r.fleet.hosts_merged,
        r.fleet.requests,
        num(r.fleet.duration_s),
        num(iv)
    );
    run.headline(&mut out);
    run.verdict(&mut out);
    run.throughput(&mut out);
    run.latency(&mut out);
    run.spectrum(&mut out);
    run.per_host(&mut out);
    run.clients_cpu(&mut out);
    run.targets(&mut out);
    run.skipped(&mut out);
    out.push_str("<p class=\"sub\">Written by ec2-report. Figures and their grades are in summary.json; per interval in timeline.csv; the merged histograms in latency.hlog.</p></body></html>\n");
    out
}

/// One run's page being written: the analysis, the report, and the time axis every chart
/// over time shares (intervals from `t0`, client-bound shading, the run's span).
struct Run<'a> {
    a: &'a Analysis,
    r: &'a Report,
    rows: Vec<(i64, Option<&'a super::timeline::Bucket>)>,
    iv: f64,
    t0: i64,
    shade: Vec<(f64, f64)>,
    span: (f64, f64),
}

impl Run<'_> {
    /// Seconds into the run of interval `k`.
    fn rel(&self, k: i64) -> f64 {
        (k - self.t0) as f64 * self.iv
    }

    /// Seconds into the run of a sample taken at `t_us` (µs since the epoch).
    fn at(&self, t_us: i64) -> f64 {
        (t_us - self.t0 * self.a.interval_us) as f64 / 1e6
    }

    /// The fleet's figures, and without its client-bound seconds.
    fn headline(&self, out: &mut String) {
        let Run { r, .. } = self;
        let fl = &r.fleet;
        // Headline.
        out.push_str("<table id=\"headline\"><tr><th></th><th>grade</th><th>requests</th><th>errors</th><th>req/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>client-bound s</th></tr>");
        let line = |out: &mut String,
                    name: &str,
                    req: u64,
                    err: u64,
                    rps: f64,
                    l: &Latency,
                    b: f64| {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{req}</td><td>{err}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                grade("lossless"),
                num(rps),
                f(Some(l.p50)),
                f(Some(l.p90)),
                f(Some(l.p99)),
                f(Some(l.p999)),
                f(Some(l.max)),
                num(b)
            );
        };
        line(
            out,
            "fleet",
            fl.requests,
            fl.errors,
            fl.rps,
            &fl.latency_ms,
            fl.client_bound_s,
        );
        if fl.client_bound_s > 0.0 {
            let w = &fl.without_client_bound;
            line(
                out,
                "fleet without client-bound seconds",
                w.requests,
                w.errors,
                w.rps,
                &w.latency_ms,
                0.0,
            );
        }
        out.push_str("</table>");
        if let Some(b) = &fl.throughput_bps {
            let _ = write!(out, "<p>iperf3, summed over clients {}: mean {} bit/s, best interval {} bit/s, {} retransmits</p>", grade("throughput-only"), num(b.mean), num(b.max), b.retransmits);
        }
    }

    /// Whether a client was the limit, and the notes on merging, kernels and clocks.
    fn verdict(&self, out: &mut String) {
        let Run { a, r, .. } = self;
        let fl = &r.fleet;
        // Verdict on the clients.
        if a.bound.is_empty() {
            let sampled = a.clients().filter(|h| h.samples.is_some()).count();
            if sampled > 0 {
                let _ = write!(out, "<p class=\"ok\">No client was the limit: {sampled} sampled clients stayed under the thresholds (CPU &lt; 90 % busy, steal &lt; 10 %, the job's busy threads running or waiting to run &lt; 95 % of the time).</p>");
            } else {
                out.push_str("<p class=\"note\">The clients were not sampled (<code>ec2-exec-remote --sample</code>): whether a load generator was the limit is unknown.</p>");
            }
        } else {
            let names: Vec<String> = a
                .clients()
                .filter(|h| h.client_bound_s > 0.0)
                .map(|h| format!("#{} {} ({} s)", h.index, h.id, num(h.client_bound_s)))
                .collect();
            let _ = write!(out, "<p class=\"note\" id=\"client-bound\"><b>Client-bound:</b> {} — in {} s of the run a load generator, not the target, was the limit (shaded below). The figures without those seconds are in the second row.</p>", esc(&names.join(", ")), num(fl.client_bound_s));
        }
        for n in &fl.not_merged {
            let _ = write!(
                out,
                "<p class=\"note\">#{}: {}</p>",
                n.index,
                esc(&n.reason)
            );
        }
        if a.shared_kernel {
            out.push_str("<p class=\"note\">These hosts share one kernel (the local cloud): machine-wide CPU is the machine's, not each instance's, so only each job's own CPU judged client-bound.</p>");
        }
        for (i, o) in &a.skewed {
            let _ = write!(out, "<p class=\"note\">#{i}: its clock is {o:+.3} s off this machine's (more than one interval); its timestamps were corrected.</p>");
        }
    }

    /// Requests (and iperf3 bits) per second over time.
    fn throughput(&self, out: &mut String) {
        let Run { a, rows, shade, .. } = self;
        let iv = self.iv;
        let span = self.span;
        // Throughput over time.
        let rps = Series {
            name: "fleet req/s".into(),
            points: rows
                .iter()
                .map(|(k, b)| {
                    (
                        self.rel(*k),
                        b.map(|b| b.requests as f64 / iv).unwrap_or(0.0),
                    )
                })
                .collect(),
        };
        out.push_str("<h2>Throughput over time</h2>");
        out.push_str(&line_chart(&over_time(
            "throughput",
            "Requests per second, all clients merged",
            "requests/s",
            vec![rps],
            shade,
            span,
        )));
        let bits = a.bits();
        if !bits.is_empty() {
            out.push_str(&line_chart(&over_time(
                "bits",
                "iperf3 throughput, summed over clients",
                "bits/s",
                vec![Series {
                    name: "bits/s".into(),
                    points: bits.iter().map(|(k, v)| (self.rel(*k), *v)).collect(),
                }],
                shade,
                span,
            )));
        }
    }

    /// p50, p99 and max per interval.
    fn latency(&self, out: &mut String) {
        let Run { rows, shade, .. } = self;
        let span = self.span;
        // Latency over time.
        let pick = |q: fn(&Latency) -> f64| -> Vec<(f64, f64)> {
            rows.iter()
                .map(|(k, b)| {
                    (
                        self.rel(*k),
                        b.filter(|b| b.requests > 0)
                            .map(|b| q(&Latency::of(&b.hist)))
                            .unwrap_or(f64::NAN),
                    )
                })
                .collect()
        };
        out.push_str("<h2>Latency over time</h2>");
        out.push_str(&line_chart(&Chart {
            log_y: true,
            ..over_time(
                "latency",
                "Latency percentiles per interval, all clients merged",
                "latency (ms, log scale)",
                vec![
                    Series {
                        name: "p50".into(),
                        points: pick(|l| l.p50),
                    },
                    Series {
                        name: "p99".into(),
                        points: pick(|l| l.p99),
                    },
                    Series {
                        name: "max".into(),
                        points: pick(|l| l.max),
                    },
                ],
                shade,
                span,
            )
        }));
    }

    /// The whole run's latency by percentile.
    fn spectrum(&self, out: &mut String) {
        let Run { a, .. } = self;
        // Percentile spectrum.
        let total = a.fleet.total();
        let mut spectrum = vec![spectrum_series("fleet", &total)];
        // Hosts' own spectra are not kept (only counts): the fleet's is the merged one.
        out.push_str("<h2>Latency by percentile</h2>");
        let top = (total.len().max(10) as f64).log10().floor().min(6.0);
        out.push_str(&line_chart(&Chart {
            id: "spectrum",
            title: "Latency by percentile, the whole run merged (as HdrHistogram plots it)",
            x_label: "percentile (log scale of 1/(1−p))",
            y_label: "latency (ms)",
            series: std::mem::take(&mut spectrum),
            shade: vec![],
            shade_label: "",
            log_y: false,
            x_ticks: Some(
                (0..=top as i32)
                    .map(|e| {
                        (
                            f64::from(e),
                            ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
                                [e as usize]
                                .to_string(),
                        )
                    })
                    .collect(),
            ),
            markers: false,
            x_range: None,
        }));
    }

    /// Each client's rate, over the run and over time, and the hosts' table.
    fn per_host(&self, out: &mut String) {
        let Run {
            a, r, rows, shade, ..
        } = self;
        let iv = self.iv;
        let span = self.span;
        // Per host.
        out.push_str("<h2>Per host</h2>");
        let bars: Vec<(String, f64, bool)> = r
            .hosts
            .iter()
            .filter(|h| h.role == Role::Client && h.rps.is_some())
            .map(|h| {
                (
                    format!("#{}", h.index),
                    h.rps.unwrap_or(0.0),
                    h.grade != Some(super::formats::Grade::Lossless),
                )
            })
            .collect();
        out.push_str(&bar_chart(
            "per-host",
            "Requests per second per client (hatched: summary-only, not merged)",
            "requests/s",
            &bars,
        ));
        let host_series: Vec<Series> = a
            .clients()
            .filter(|h| !h.counts.is_empty())
            .map(|h| Series {
                name: format!("#{}", h.index),
                points: rows
                    .iter()
                    .map(|(k, _)| {
                        (
                            self.rel(*k),
                            h.counts.get(k).map(|c| c.0 as f64 / iv).unwrap_or(0.0),
                        )
                    })
                    .collect(),
            })
            .collect();
        if !host_series.is_empty() {
            out.push_str(&line_chart(&over_time(
                "per-host-time",
                "Requests per second per client over time",
                "requests/s",
                host_series,
                shade,
                span,
            )));
        }
        out.push_str(&host_table(r));
    }

    /// The clients' job and machine CPU.
    fn clients_cpu(&self, out: &mut String) {
        let Run { a, shade, .. } = self;
        let span = self.span;
        // Clients' CPU.
        let sampled: Vec<&super::Host> = a.clients().filter(|h| h.samples.is_some()).collect();
        if !sampled.is_empty() {
            out.push_str("<h2>Clients' CPU</h2>");
            out.push_str(&line_chart(&over_time("client-job-cpu", "Each client's load-generator process tree: demand per busy thread (ran or waited to run)", "share of a core (1 = saturated)", sampled
                    .iter()
                    .map(|h| Series {
                        name: format!("#{}", h.index),
                        points: h.samples.as_ref().map(|s| s.cpu.iter().map(|c| (self.at(c.t_us), if c.busy_threads > 0 { c.busy_demand / f64::from(c.busy_threads) } else { 0.0 })).collect()).unwrap_or_default(),
                    })
                    .collect(), shade, span)));
            out.push_str(&line_chart(&over_time(
                "client-machine-cpu",
                "Each client's machine CPU busy (user + system + steal)",
                "CPU busy (%)",
                sampled
                    .iter()
                    .map(|h| Series {
                        name: format!("#{}", h.index),
                        points: h
                            .samples
                            .as_ref()
                            .map(|s| s.cpu.iter().map(|c| (self.at(c.t_us), c.busy)).collect())
                            .unwrap_or_default(),
                    })
                    .collect(),
                shade,
                span,
            )));
        }
    }

    /// The targets' CPU, network and memory.
    fn targets(&self, out: &mut String) {
        let Run { a, .. } = self;
        let span = self.span;
        // Targets.
        let targets: Vec<&super::Host> =
            a.hosts.iter().filter(|h| h.role == Role::Target).collect();
        if !targets.is_empty() {
            out.push_str("<h2>Targets (sampled, no results: the system under test)</h2>");
            let chart =
                |id: &str,
                 title: &str,
                 y: &str,
                 pts: &dyn Fn(&super::samples::Samples) -> Vec<(f64, f64)>| {
                    line_chart(&over_time(
                        id,
                        title,
                        y,
                        targets
                            .iter()
                            .map(|h| Series {
                                name: format!("#{}", h.index),
                                points: h.samples.as_ref().map(pts).unwrap_or_default(),
                            })
                            .collect(),
                        &[],
                        span,
                    ))
                };
            out.push_str(&chart(
                "target-cpu",
                "Targets' CPU busy",
                "CPU busy (%)",
                &|s| s.cpu.iter().map(|c| (self.at(c.t_us), c.busy)).collect(),
            ));
            out.push_str(&chart(
                "target-net",
                "Targets' network, all interfaces",
                "received + sent (bytes/s)",
                &|s| {
                    let mut m = std::collections::BTreeMap::<i64, f64>::new();
                    for n in &s.net {
                        *m.entry(n.t_us).or_default() += n.rx_bytes_s + n.tx_bytes_s;
                    }
                    m.into_iter().map(|(t, v)| (self.at(t), v)).collect()
                },
            ));
            out.push_str(&chart(
                "target-mem",
                "Targets' memory in use",
                "memory (MiB)",
                &|s| {
                    s.cpu
                        .iter()
                        .map(|c| (self.at(c.t_us), c.mem_used_mb))
                        .collect()
                },
            ));
        }
    }

    /// Files that were not used, and why.
    fn skipped(&self, out: &mut String) {
        let Run { r, .. } = self;
        if !r.skipped.is_empty() {
            out.push_str("<h2>Files not used</h2><ul>");
            for s in &r.skipped {
                let _ = write!(
                    out,
                    "<li><code>{}</code>: {}</li>",
                    esc(&s.path),
                    esc(&s.reason)
                );
            }
            out.push_str("</ul>");
        }
    }
}

/// A chart over the run's time: every one shares the run's x axis and its client-bound
/// shading, so they line up one above the other.
fn over_time<'a>(
    id: &'a str,
    title: &'a str,
    y_label: &'a str,
    series: Vec<Series>,
    shade: &[(f64, f64)],
    span: (f64, f64),
) -> Chart<'a> {
    Chart {
        id,
        title,
        x_label: "time since the first request (s)",
        y_label,
        series,
        shade: shade.to_vec(),
        shade_label: "client-bound",
        log_y: false,
        x_ticks: None,
        markers: false,
        x_range: Some(span),
    }
}

fn host_table(r: &Report) -> String {
    let mut out = String::from("<table id=\"hosts\"><tr><th>host</th><th>format</th><th>grade</th><th>requests</th><th>errors</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>client-bound s</th></tr>");
    for h in r.hosts.iter().filter(|h| h.role != Role::Idle) {
        let l = h.latency_ms.clone().unwrap_or_default();
        let g = h
            .grade
            .map(|g| g.to_string())
            .unwrap_or_else(|| "target".into());
        let _ = write!(
            out,
            "<tr><td>#{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            h.index,
            esc(&h.id),
            h.format.unwrap_or("–"),
            grade(&g),
            h.requests.map(|v| v.to_string()).unwrap_or_else(|| "–".into()),
            h.errors.map(|v| v.to_string()).unwrap_or_else(|| "–".into()),
            f(h.rps),
            f(l.p50),
            f(l.p99),
            f(l.max),
            num(h.client_bound_s)
        );
    }
    out.push_str("</table>");
    out
}

/// The percentile spectrum of a histogram: x = log10(1/(1−q)), y = latency in ms.
fn spectrum_series(name: &str, h: &hdrhistogram::Histogram<u64>) -> Series {
    let top = (h.len().max(10) as f64).log10().min(6.0);
    let points = (0..=(top * 20.0) as i32)
        .map(|i| {
            let x = f64::from(i) / 20.0;
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q).min(h.max()) as f64 / 1000.0)
        })
        .collect();
    Series {
        name: name.into(),
        points,
    }
}
