//! The report's files: `summary.json` (a contract: README documents its shape),
//! `timeline.csv`, `hosts.csv`, the merged `latency.hlog`; the short table on stdout (text,
//! Markdown or JSON) and a sweep's are table.rs. Every figure is built here once, from the [`Analysis`]; the page
//! (page.rs) reads the same [`Report`]. What does not belong here: computing figures
//! (timeline.rs) or drawing (page.rs, svg.rs).

mod table;
pub use table::{sweep_table, table, Style, Sweep, SweepRun};

use super::formats::Grade;
use super::timeline::{round3, Figures, Latency};
use super::{Analysis, Host, Role};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The shape's version.
    pub version: u32,
    /// Interval length, s.
    pub interval_s: f64,
    /// The fleet's merged figures.
    pub fleet: FleetOut,
    /// Every host.
    pub hosts: Vec<HostOut>,
    /// Hosts sampled without results: the system under test.
    pub targets: Vec<TargetOut>,
    /// Files not used, and why.
    pub skipped: Vec<SkippedOut>,
    /// Clock remarks.
    pub clock: ClockOut,
    /// True when the hosts share one kernel (the local cloud): machine-wide CPU was not
    /// theirs alone, so only each job's own CPU judged client-bound.
    pub shared_kernel: bool,
}

/// The fleet's figures: the exact merge of every lossless host.
#[derive(Debug, Clone, Serialize)]
pub struct FleetOut {
    /// Always `lossless`: nothing else is merged.
    pub grade: Grade,
    /// How many hosts were merged.
    pub hosts_merged: usize,
    /// Requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Requests per second over the run.
    pub rps: f64,
    /// Seconds from the first start to the last end.
    pub duration_s: f64,
    /// Latency percentiles, ms.
    pub latency_ms: Latency,
    /// Seconds in which some client was the limit.
    pub client_bound_s: f64,
    /// The same figures without those seconds.
    pub without_client_bound: Figures,
    /// Summed iperf3 throughput, when any host ran iperf3: mean and peak bits/s.
    pub throughput_bps: Option<Bps>,
    /// Hosts whose figures are not in the merge, and why.
    pub not_merged: Vec<NotMerged>,
}

/// Summed bits per second.
#[derive(Debug, Clone, Serialize)]
pub struct Bps {
    /// Mean over the intervals.
    pub mean: f64,
    /// The best interval.
    pub max: f64,
    /// TCP retransmits, summed.
    pub retransmits: u64,
}

/// A host left out of the fleet's figures.
#[derive(Debug, Clone, Serialize)]
pub struct NotMerged {
    /// Its index.
    pub index: u32,
    /// Why.
    pub reason: String,
}

/// One host's line.
#[derive(Debug, Clone, Serialize)]
pub struct HostOut {
    /// Index.
    pub index: u32,
    /// Instance id.
    pub id: String,
    /// client, target or idle.
    pub role: Role,
    /// The format its figures come from.
    pub format: Option<&'static str>,
    /// That format's grade.
    pub grade: Option<Grade>,
    /// Requests (lossless or the tool's own count).
    pub requests: Option<u64>,
    /// Failed requests.
    pub errors: Option<u64>,
    /// Requests per second.
    pub rps: Option<f64>,
    /// Latency, ms: from the records (lossless) or as the tool printed it (summary-only; a
    /// percentile it did not print is null).
    pub latency_ms: Option<LatencyOut>,
    /// iperf3 mean bits/s.
    pub bits_per_second: Option<f64>,
    /// Seconds in which this client was the limit.
    pub client_bound_s: f64,
    /// Why, per second: `job`, `cpu` or `steal`, with the second (unix s).
    pub client_bound: Vec<(f64, super::samples::Bound)>,
    /// Its clock's measured offset from this machine, s.
    pub offset_s: Option<f64>,
    /// The files its figures come from.
    pub files: Vec<String>,
}

/// Latency figures that may be partly unknown (a summary prints what it prints).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyOut {
    /// Median.
    pub p50: Option<f64>,
    /// 90th.
    pub p90: Option<f64>,
    /// 99th.
    pub p99: Option<f64>,
    /// 99.9th.
    pub p999: Option<f64>,
    /// Max.
    pub max: Option<f64>,
}

impl From<&Latency> for LatencyOut {
    fn from(l: &Latency) -> LatencyOut {
        LatencyOut {
            p50: Some(l.p50),
            p90: Some(l.p90),
            p99: Some(l.p99),
            p999: Some(l.p999),
            max: Some(l.max),
        }
    }
}

/// A target's peak figures.
#[derive(Debug, Clone, Serialize)]
pub struct TargetOut {
    /// Index.
    pub index: u32,
    /// Instance id.
    pub id: String,
    /// Peak machine CPU busy, %.
    pub cpu_busy_max_pct: f64,
    /// Mean machine CPU busy, %.
    pub cpu_busy_mean_pct: f64,
    /// Peak memory in use, MiB.
    pub mem_used_max_mb: f64,
    /// Peak received bytes/s on any interface.
    pub rx_bytes_s_max: f64,
    /// Peak sent bytes/s on any interface.
    pub tx_bytes_s_max: f64,
    /// Its job's peak CPU, cores.
    pub job_cpu_max: f64,
}

/// A file not used.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedOut {
    /// The path.
    pub path: String,
    /// Why.
    pub reason: String,
    /// Recognised but broken (true) or unknown (false).
    pub broken: bool,
}

/// Clock remarks.
#[derive(Debug, Clone, Serialize)]
pub struct ClockOut {
    /// Hosts off by more than one interval: (index, offset s); their timestamps were corrected.
    pub skewed: Vec<(u32, f64)>,
    /// Hosts without a measured offset: their timestamps were taken as they are.
    pub unmeasured: Vec<u32>,
}

fn host_out(h: &Host, interval_s: f64) -> HostOut {
    let (requests, errors, rps, latency_ms) = match (&h.figures, &h.summary) {
        (Some(f), _) => (
            Some(f.requests),
            Some(f.errors),
            Some(f.rps),
            Some((&f.latency_ms).into()),
        ),
        (None, Some(s)) => {
            let p = |q: f64| {
                s.percentiles_ms
                    .iter()
                    .find(|(pp, _)| (*pp - q).abs() < 1e-9)
                    .map(|x| x.1)
            };
            (
                Some(s.requests),
                Some(s.errors),
                Some(s.rps),
                Some(LatencyOut {
                    p50: p(50.0),
                    p90: p(90.0),
                    p99: p(99.0),
                    p999: p(99.9),
                    max: s.max_ms,
                }),
            )
        }
        _ => (None, None, None, None),
    };
    let bits = (!h.bits.is_empty()).then(|| {
        round3(h.bits.iter().map(|b| b.bits_per_second).sum::<f64>() / h.bits.len() as f64)
    });
    HostOut {
        index: h.index,
        id: h.id.clone(),
        role: h.role,
        format: h.format.map(|f| f.name()),
        grade: h.grade,
        requests,
        errors,
        rps,
        latency_ms,
        bits_per_second: bits,
        client_bound_s: h.client_bound_s,
        client_bound: h
            .bound
            .iter()
            .map(|(k, w)| (*k as f64 * interval_s, *w))
            .collect(),
        offset_s: h.offset_s,
        files: h.files.iter().map(|f| f.0.display().to_string()).collect(),
    }
}

fn target_out(h: &Host) -> Option<TargetOut> {
    let s = h.samples.as_ref()?;
    let max = |it: &mut dyn Iterator<Item = f64>| it.fold(0.0, f64::max);
    let n = s.cpu.len().max(1) as f64;
    Some(TargetOut {
        index: h.index,
        id: h.id.clone(),
        cpu_busy_max_pct: max(&mut s.cpu.iter().map(|c| c.busy)),
        cpu_busy_mean_pct: round3(s.cpu.iter().map(|c| c.busy).sum::<f64>() / n),
        mem_used_max_mb: max(&mut s.cpu.iter().map(|c| c.mem_used_mb)),
        rx_bytes_s_max: max(&mut s.net.iter().map(|c| c.rx_bytes_s)),
        tx_bytes_s_max: max(&mut s.net.iter().map(|c| c.tx_bytes_s)),
        job_cpu_max: max(&mut s.cpu.iter().map(|c| c.job_cpu)),
    })
}

/// Every figure of the analysis, as summary.json has it.
pub fn report(a: &Analysis) -> Report {
    let interval_s = a.interval_us as f64 / 1e6;
    let all = a.figures();
    let merged = a.hosts.iter().filter(|h| h.figures.is_some()).count();
    let not_merged = a
        .hosts
        .iter()
        .filter(|h| h.figures.is_none())
        .filter_map(|h| {
            let reason = match (h.grade, h.role) {
                (Some(Grade::SummaryOnly), _) => format!(
                    "{} is summary-only: percentiles cannot be merged (averaging them is meaningless); shown per host",
                    h.format.map(|f| f.name()).unwrap_or("?")
                ),
                (Some(Grade::ThroughputOnly), _) => "iperf3: throughput only (summed in throughput_bps)".to_owned(),
                _ => return None,
            };
            Some(NotMerged { index: h.index, reason })
        })
        .collect();
    let bits = a.bits();
    let throughput_bps = (!bits.is_empty()).then(|| Bps {
        mean: round3(bits.values().sum::<f64>() / bits.len() as f64),
        max: bits.values().copied().fold(0.0, f64::max),
        retransmits: a
            .hosts
            .iter()
            .flat_map(|h| h.bits.iter())
            .map(|b| b.retransmits)
            .sum(),
    });
    Report {
        version: 1,
        interval_s,
        fleet: FleetOut {
            grade: Grade::Lossless,
            hosts_merged: merged,
            requests: all.requests,
            errors: all.errors,
            rps: all.rps,
            duration_s: all.duration_s,
            latency_ms: all.latency_ms,
            client_bound_s: a.bound.len() as f64 * interval_s,
            without_client_bound: a.figures_unbound(),
            throughput_bps,
            not_merged,
        },
        hosts: a.hosts.iter().map(|h| host_out(h, interval_s)).collect(),
        targets: a
            .hosts
            .iter()
            .filter(|h| h.role == Role::Target)
            .filter_map(target_out)
            .collect(),
        skipped: a
            .skipped
            .iter()
            .map(|s| SkippedOut {
                path: s.path.display().to_string(),
                reason: s.reason.clone(),
                broken: s.broken,
            })
            .collect(),
        clock: ClockOut {
            skewed: a.skewed.clone(),
            unmeasured: a.unmeasured.clone(),
        },
        shared_kernel: a.shared_kernel,
    }
}

fn io(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

/// Write summary.json, timeline.csv, hosts.csv and latency.hlog into `dir`.
pub fn files(a: &Analysis, r: &Report, dir: &Path) -> Result<(), String> {
    let p = dir.join("summary.json");
    let mut json = serde_json::to_string_pretty(r).expect("plain data serializes");
    json.push('\n');
    std::fs::write(&p, json).map_err(|e| io(&p, e))?;
    let p = dir.join("timeline.csv");
    std::fs::write(&p, timeline_csv(a)).map_err(|e| io(&p, e))?;
    let p = dir.join("hosts.csv");
    std::fs::write(&p, hosts_csv(r)).map_err(|e| io(&p, e))?;
    let p = dir.join("latency.hlog");
    let f = std::fs::File::create(&p).map_err(|e| io(&p, e))?;
    hlog(a, &mut std::io::BufWriter::new(f)).map_err(|e| io(&p, e))?;
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Per interval: the fleet's requests, errors, rps and percentiles, whether a client was the
/// limit, iperf3's summed bits/s, and each client's job CPU (cores) and machine busy (%).
pub fn timeline_csv(a: &Analysis) -> String {
    let iv = a.interval_us as f64 / 1e6;
    let clients: Vec<&Host> = a.clients().filter(|h| h.samples.is_some()).collect();
    let mut out = String::from(
        "t,requests,errors,rps,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,client_bound,bits_per_s",
    );
    for h in &clients {
        out.push_str(&format!(",job_cpu_{0},busy_pct_{0}", h.index));
    }
    out.push('\n');
    let bits = a.bits();
    let mut keys: std::collections::BTreeSet<i64> = a.fleet.rows().iter().map(|r| r.0).collect();
    keys.extend(bits.keys());
    let per_client: Vec<std::collections::BTreeMap<i64, (f64, f64)>> = clients
        .iter()
        .map(|h| {
            let s = h.samples.as_ref().expect("filtered");
            let half = (s.interval_s * 5e5) as i64;
            s.cpu
                .iter()
                .map(|c| {
                    (
                        (c.t_us - half).div_euclid(a.interval_us),
                        (c.job_cpu, c.busy),
                    )
                })
                .collect()
        })
        .collect();
    for k in keys {
        let b = a.fleet.buckets.get(&k);
        let l = b.map(|b| Latency::of(&b.hist));
        let (req, err) = b.map(|b| (b.requests, b.errors)).unwrap_or((0, 0));
        out.push_str(&format!(
            "{},{req},{err},{},{},{},{},{},{},{},{}",
            k as f64 * iv,
            round3(req as f64 / iv),
            opt(l.as_ref().map(|l| l.p50)),
            opt(l.as_ref().map(|l| l.p90)),
            opt(l.as_ref().map(|l| l.p99)),
            opt(l.as_ref().map(|l| l.p999)),
            opt(l.as_ref().map(|l| l.max)),
            u8::from(a.bound.contains(&k)),
            opt(bits.get(&k).copied())
        ));
        for c in &per_client {
            match c.get(&k) {
                Some((j, busy)) => out.push_str(&format!(",{j},{busy}")),
                None => out.push_str(",,"),
            }
        }
        out.push('\n');
    }
    out
}

/// One line per host.
pub fn hosts_csv(r: &Report) -> String {
    let mut out = String::from("index,id,role,format,grade,requests,errors,rps,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,bits_per_s,client_bound_s,offset_s\n");
    for h in &r.hosts {
        let l = h.latency_ms.clone().unwrap_or_default();
        let role = serde_json::to_value(h.role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{},{role},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            h.index,
            h.id,
            h.format.unwrap_or(""),
            h.grade.map(|g| g.to_string()).unwrap_or_default(),
            h.requests.map(|v| v.to_string()).unwrap_or_default(),
            h.errors.map(|v| v.to_string()).unwrap_or_default(),
            opt(h.rps),
            opt(l.p50),
            opt(l.p90),
            opt(l.p99),
            opt(l.p999),
            opt(l.max),
            opt(h.bits_per_second),
            h.client_bound_s,
            opt(h.offset_s),
        ));
    }
    out
}

/// The fleet's merged intervals as an HdrHistogram interval log (values in µs; the max column
/// in ms, HdrHistogram's convention), readable by HdrHistogram's own tools and by ec2-report.
pub fn hlog<W: Write>(a: &Analysis, w: &mut W) -> std::io::Result<()> {
    use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
    use hdrhistogram::serialization::V2DeflateSerializer;
    use std::time::{Duration, UNIX_EPOCH};
    let rows = a.fleet.rows();
    let first = rows.first().map(|r| r.0).unwrap_or(0);
    let start = UNIX_EPOCH + Duration::from_micros((first * a.interval_us).max(0) as u64);
    let mut ser = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("ec2-report: the fleet's merged latency, µs, one histogram per interval")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut *w, &mut ser)
        .map_err(std::io::Error::other)?;
    for (k, b) in rows {
        let Some(b) = b else { continue };
        log.write_histogram(
            &b.hist,
            Duration::from_micros(((k - first) * a.interval_us) as u64),
            Duration::from_micros(a.interval_us as u64),
            None,
        )
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    }
    drop(log);
    w.flush()
}
