//! The formats that are not one record per request: the summary-only reports (wrk, ab's
//! text, Locust's `_stats.csv`), kept as the tool printed them, and iperf3's throughput
//! intervals. formats.rs recognises a file and hands its text here; nothing here is merged
//! into fleet percentiles (their grades say why).

use super::records::{Bits, Summary};

/// wrk's text report: totals, `Requests/sec`, errors and the `--latency` distribution.
pub(super) fn wrk_text(t: &str) -> Result<Summary, String> {
    let mut s = Summary::default();
    let mut seen_total = false;
    let mut in_dist = false;
    for l in t.lines().map(str::trim) {
        if let Some(rest) = l
            .strip_suffix(" read")
            .and_then(|l| l.split_once(" requests in "))
        {
            s.requests = rest.0.trim().parse().map_err(|_| "requests total")?;
            seen_total = true;
        } else if let Some(v) = l.strip_prefix("Requests/sec:") {
            s.rps = v.trim().parse().map_err(|_| "Requests/sec")?;
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            s.errors += v.trim().parse::<u64>().map_err(|_| "Non-2xx")?;
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            for part in v.split(',') {
                if let Some(n) = part.split_whitespace().last() {
                    s.errors += n.parse::<u64>().unwrap_or(0);
                }
            }
        } else if l.starts_with("Latency Distribution") {
            in_dist = true;
        } else if in_dist {
            match l.split_once('%') {
                Some((p, v)) if p.trim().parse::<f64>().is_ok() => {
                    let ms = wrk_duration_ms(v.trim()).ok_or("a latency percentile")?;
                    s.percentiles_ms.push((p.trim().parse().unwrap_or(0.0), ms));
                }
                _ => in_dist = false,
            }
        } else if let Some(v) = l.strip_prefix("Latency") {
            // `Latency   1.23ms  0.40ms  12.00ms   90.00%`: avg, stdev, max, +/- stdev
            if let Some(max) = v.split_whitespace().nth(2) {
                s.max_ms = wrk_duration_ms(max);
            }
        }
    }
    if !seen_total || s.rps == 0.0 && s.requests > 0 {
        return Err("no `N requests in …` or `Requests/sec:` line".into());
    }
    Ok(s)
}

/// `1.23ms`, `450.00us`, `2.01s`, `1.50m` in ms.
fn wrk_duration_ms(v: &str) -> Option<f64> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

/// ab's text report.
pub(super) fn ab_text(t: &str) -> Result<Summary, String> {
    let mut s = Summary::default();
    let num = |prefix: &str| -> Option<f64> {
        t.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    s.requests = num("Complete requests:").ok_or("no `Complete requests:` line")? as u64;
    s.errors = num("Failed requests:").unwrap_or(0.0) as u64
        + num("Non-2xx responses:").unwrap_or(0.0) as u64;
    s.rps = num("Requests per second:").ok_or("no `Requests per second:` line")?;
    let mut dist = false;
    for l in t.lines().map(str::trim) {
        if l.starts_with("Percentage of the requests served") {
            dist = true;
        } else if dist {
            let Some((p, rest)) = l.split_once('%') else {
                continue;
            };
            let (Ok(p), Some(ms)) = (
                p.trim().parse::<f64>(),
                rest.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok()),
            ) else {
                continue;
            };
            if p >= 100.0 {
                s.max_ms = Some(ms);
            } else {
                s.percentiles_ms.push((p, ms));
            }
        }
    }
    Ok(s)
}

/// Locust's `_stats.csv`: the `Aggregated` row.
pub(super) fn locust_stats(t: &str) -> Result<Summary, String> {
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(t.as_bytes());
    let h = rd.headers().map_err(|e| e.to_string())?.clone();
    let col = |n: &str| h.iter().position(|c| c == n);
    for rec in rd.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        if col("Name").and_then(|i| rec.get(i)) != Some("Aggregated") {
            continue;
        }
        let f = |n: &str| {
            col(n)
                .and_then(|i| rec.get(i))
                .and_then(|v| v.parse::<f64>().ok())
        };
        let mut s = Summary {
            requests: f("Request Count").ok_or("no Request Count")? as u64,
            errors: f("Failure Count").unwrap_or(0.0) as u64,
            rps: f("Requests/s").ok_or("no Requests/s")?,
            percentiles_ms: vec![],
            max_ms: f("Max Response Time"),
        };
        for (i, name) in h.iter().enumerate() {
            if let Some(p) = name.strip_suffix('%').and_then(|p| p.parse::<f64>().ok()) {
                if let Some(v) = rec.get(i).and_then(|v| v.parse::<f64>().ok()) {
                    if p < 100.0 {
                        s.percentiles_ms.push((p, v));
                    }
                }
            }
        }
        return Ok(s);
    }
    Err("no Aggregated row".into())
}

/// `iperf3 -J`: each interval's sum (bits/s, retransmits), stamped from `start.timestamp`.
pub(super) fn iperf3(t: &str) -> Result<Vec<Bits>, String> {
    let v: serde_json::Value = serde_json::from_str(t).map_err(|e| e.to_string())?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(format!("iperf3 failed: {e}"));
    }
    let base = v
        .pointer("/start/timestamp/timesecs")
        .and_then(|x| x.as_f64())
        .ok_or("no start.timestamp.timesecs")?;
    let mut out = Vec::new();
    for i in v
        .get("intervals")
        .and_then(|x| x.as_array())
        .ok_or("no intervals")?
    {
        let sum = i.get("sum").ok_or("an interval without sum")?;
        let g = |k: &str| sum.get(k).and_then(|x| x.as_f64());
        let (s, e) = (g("start").ok_or("sum.start")?, g("end").ok_or("sum.end")?);
        out.push(Bits {
            start_us: ((base + s) * 1e6) as i64,
            len_us: ((e - s) * 1e6) as i64,
            bits_per_second: g("bits_per_second").ok_or("sum.bits_per_second")?,
            retransmits: g("retransmits").unwrap_or(0.0) as u64,
        });
    }
    Ok(out)
}
