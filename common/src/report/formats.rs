//! Load generators' result files, recognised by their content (never by their name) and read
//! into one shape: per-request records or whole histograms for the lossless formats, the
//! generator's own figures for the summary-only ones, per-interval bits/s for iperf3.
//!
//! Each format is graded ([`Grade`]): only a lossless file can be merged into a fleet
//! percentile. A summary's percentiles are kept as the generator printed them, per host, and
//! never combined (averaging percentiles is meaningless, so it is refused, not approximated).
//! What does not belong here: intervals, clocks and merging (timeline.rs), the sampler's
//! files (samples.rs), anything that writes.

pub use super::records::{Bits, Content, Sink, Summary};
use super::summaries;
use std::io::Read;

/// How much a format lets the report say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grade {
    /// One record per request, or a full histogram: mergeable into exact fleet percentiles.
    Lossless,
    /// The generator's own totals and percentiles: shown per host, never merged.
    SummaryOnly,
    /// Bits per second per interval (no requests, no latency): sums across clients are valid.
    ThroughputOnly,
}

impl std::fmt::Display for Grade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Grade::Lossless => "lossless",
            Grade::SummaryOnly => "summary-only",
            Grade::ThroughputOnly => "throughput-only",
        })
    }
}

/// A format the report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `ab -g FILE`: one TSV line per request (start second, total ms).
    AbGnuplot,
    /// `vegeta encode -to csv` (or the attack's CSV): unix ns, code, latency ns, …
    VegetaCsv,
    /// `vegeta encode -to json`: one JSON result per line.
    VegetaJson,
    /// `k6 run --out json=FILE`: NDJSON points; `http_req_duration` is read.
    K6Json,
    /// JMeter's JTL as CSV with its header line (`timeStamp,elapsed,…,success,…`).
    JmeterJtl,
    /// HdrHistogram interval log (`.hlog`: wrk2, Gatling-style and HdrHistogram tools).
    HdrLog,
    /// The plain contract for home-made generators: `unix_ms,latency_us[,ok]`.
    PlainCsv,
    /// wrk's text report.
    WrkText,
    /// ab's text report.
    AbText,
    /// Locust's `--csv` `_stats.csv` (its Aggregated row).
    LocustStats,
    /// `iperf3 -J`.
    Iperf3Json,
}

impl Format {
    /// The name in reports (`ab-gnuplot`, `plain-csv`, …).
    pub fn name(self) -> &'static str {
        match self {
            Format::AbGnuplot => "ab-gnuplot",
            Format::VegetaCsv => "vegeta-csv",
            Format::VegetaJson => "vegeta-json",
            Format::K6Json => "k6-json",
            Format::JmeterJtl => "jmeter-jtl",
            Format::HdrLog => "hdr-log",
            Format::PlainCsv => "plain-csv",
            Format::WrkText => "wrk-text",
            Format::AbText => "ab-text",
            Format::LocustStats => "locust-stats",
            Format::Iperf3Json => "iperf3-json",
        }
    }

    /// The step of the format's request timestamps, µs.
    pub fn resolution_us(self) -> i64 {
        match self {
            Format::AbGnuplot => 1_000_000,
            Format::PlainCsv | Format::JmeterJtl => 1000,
            _ => 1,
        }
    }

    /// What the format lets the report say.
    pub fn grade(self) -> Grade {
        match self {
            Format::WrkText | Format::AbText | Format::LocustStats => Grade::SummaryOnly,
            Format::Iperf3Json => Grade::ThroughputOnly,
            _ => Grade::Lossless,
        }
    }
}

/// How many bytes of a file are looked at to recognise its format.
pub const SNIFF: usize = 8192;

/// The format of a file whose first bytes are `head`, if it is one this module reads.
pub fn detect(head: &[u8]) -> Option<Format> {
    let text = String::from_utf8_lossy(head);
    let first = text.lines().find(|l| !l.trim().is_empty())?.trim_end();
    if first.starts_with("starttime\tseconds\tctime\tdtime\tttime\twait") {
        return Some(Format::AbGnuplot);
    }
    if first.starts_with("timeStamp,") && first.contains(",elapsed,") {
        return Some(Format::JmeterJtl);
    }
    if first.starts_with("Type,Name,Request Count,Failure Count") {
        return Some(Format::LocustStats);
    }
    if first == "unix_ms,latency_us" || first == "unix_ms,latency_us,ok" || is_plain_row(first) {
        return Some(Format::PlainCsv);
    }
    if is_vegeta_csv_row(first) {
        return Some(Format::VegetaCsv);
    }
    if first.starts_with('{') {
        if first.contains("\"type\"")
            && (first.contains("\"Metric\"") || first.contains("\"Point\""))
        {
            return Some(Format::K6Json);
        }
        if first.contains("\"latency\"")
            && first.contains("\"timestamp\"")
            && first.contains("\"code\"")
        {
            return Some(Format::VegetaJson);
        }
        if text.contains("\"intervals\"")
            && text.contains("\"start\"")
            && text.contains("\"connected\"")
            || text.contains("\"iperf_version\"")
        {
            return Some(Format::Iperf3Json);
        }
        return None;
    }
    if text.contains("\"Interval_Compressed_Histogram\"")
        || text
            .lines()
            .any(|l| l.starts_with("#[StartTime:") || l.starts_with("#[BaseTime:"))
    {
        return Some(Format::HdrLog);
    }
    if text.contains("This is ApacheBench") && text.contains("Complete requests:") {
        return Some(Format::AbText);
    }
    if text.contains("Requests/sec:") && text.contains("Latency") && text.contains("requests in ") {
        return Some(Format::WrkText);
    }
    None
}

fn is_plain_row(l: &str) -> bool {
    let f: Vec<&str> = l.split(',').collect();
    (2..=3).contains(&f.len())
        && f[0].len() == 13
        && f[0].bytes().all(|b| b.is_ascii_digit())
        && !f[1].is_empty()
        && f[1].bytes().all(|b| b.is_ascii_digit())
        && f.get(2)
            .is_none_or(|o| ["0", "1", "true", "false"].contains(o))
}

fn is_vegeta_csv_row(l: &str) -> bool {
    let f: Vec<&str> = l.splitn(4, ',').collect();
    f.len() == 4
        && f[0].len() >= 18
        && f[0].bytes().all(|b| b.is_ascii_digit())
        && f[1].bytes().all(|b| b.is_ascii_digit())
        && !f[2].is_empty()
        && f[2].bytes().all(|b| b.is_ascii_digit())
}

/// Read a whole file of format `fmt` from `r`: requests and histograms go into `sink`.
/// An error names the line (1-based) and what was wrong with it.
pub fn read(fmt: Format, r: &mut dyn Read, sink: &mut dyn Sink) -> Result<Content, String> {
    match fmt {
        Format::AbGnuplot => lines(r, sink, ab_gnuplot_line),
        Format::PlainCsv => lines(r, sink, plain_line),
        Format::VegetaCsv => vegeta_csv(r, sink),
        Format::VegetaJson => lines(r, sink, vegeta_json_line),
        Format::K6Json => lines(r, sink, k6_line),
        Format::JmeterJtl => jtl(r, sink),
        Format::HdrLog => hdr_log(r, sink),
        Format::WrkText => Ok(Content::Summary(summaries::wrk_text(&read_text(r)?)?)),
        Format::AbText => Ok(Content::Summary(summaries::ab_text(&read_text(r)?)?)),
        Format::LocustStats => Ok(Content::Summary(summaries::locust_stats(&read_text(r)?)?)),
        Format::Iperf3Json => Ok(Content::Throughput(summaries::iperf3(&read_text(r)?)?)),
    }
}

/// Bounded: summaries and iperf3 reports are small; a large one is not what it claims.
fn read_text(r: &mut dyn Read) -> Result<String, String> {
    let mut s = String::new();
    r.take(64 << 20)
        .read_to_string(&mut s)
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// Feed every line of `r` (in 1 MiB chunks: memory stays flat whatever the file's size) to
/// `each`; header and blank lines are skipped by `each` itself. Generic, so each format's
/// line parser is inlined into the loop.
fn lines<F>(r: &mut dyn Read, sink: &mut dyn Sink, each: F) -> Result<Content, String>
where
    F: Fn(&[u8], &mut dyn Sink) -> Result<(), String>,
{
    let mut bad = Broken::default();
    for_each_line(r, |n, line| {
        if let Err(e) = each(line, sink) {
            bad.add(n, e);
        }
        Ok(())
    })?;
    Ok(bad.content())
}

/// Lines skipped while reading a lossless file.
#[derive(Default)]
struct Broken {
    count: u64,
    first: Option<String>,
}

impl Broken {
    fn add(&mut self, line: u64, e: String) {
        self.count += 1;
        self.first
            .get_or_insert_with(|| format!("line {line}: {e}"));
    }

    fn content(self) -> Content {
        Content::Streamed {
            broken: self.count,
            first_broken: self.first,
        }
    }
}

/// Call `f(line_number, line)` for every line (without its `\n` or `\r`).
pub fn for_each_line<F>(r: &mut dyn Read, mut f: F) -> Result<(), String>
where
    F: FnMut(u64, &[u8]) -> Result<(), String>,
{
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0usize;
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf[filled..]).map_err(|e| e.to_string())?;
        let end = filled + got;
        let mut start = 0;
        while let Some(nl) = memchr(b'\n', &buf[start..end]) {
            n += 1;
            let mut line = &buf[start..start + nl];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            f(n, line)?;
            start += nl + 1;
        }
        if got == 0 {
            if start < end {
                n += 1;
                f(n, &buf[start..end])?;
            }
            return Ok(());
        }
        buf.copy_within(start..end, 0);
        filled = end - start;
        if filled == buf.len() {
            let len = buf.len();
            if len >= 64 << 20 {
                return Err(format!("line {}: longer than 64 MiB", n + 1));
            }
            buf.resize(len * 2, 0);
        }
    }
}

fn memchr(c: u8, s: &[u8]) -> Option<usize> {
    memchr::memchr(c, s)
}

/// A non-negative decimal integer, whole field.
fn uint(f: &[u8]) -> Option<u64> {
    if f.is_empty() || f.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &b in f {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

/// Field `i` of a record as an unsigned integer, or why not (naming the field `what`).
fn uint_field(rec: &csv::ByteRecord, i: usize, what: &str) -> Result<u64, String> {
    let f = rec.get(i).unwrap_or_default();
    uint(f).ok_or_else(|| field_err(what, f))
}

fn field_err(what: &str, f: &[u8]) -> String {
    format!("{what}: {:?} is not a number", String::from_utf8_lossy(f))
}

/// `Tue Dec  1 09:50:43 2026<TAB>seconds<TAB>ctime<TAB>dtime<TAB>ttime<TAB>wait` — ab writes
/// the start second and whole milliseconds.
fn ab_gnuplot_line(line: &[u8], sink: &mut dyn Sink) -> Result<(), String> {
    if line.is_empty() || line.starts_with(b"starttime\t") {
        return Ok(());
    }
    // The first five tabs: date | seconds | ctime | dtime | ttime | wait.
    let mut tabs = [0usize; 5];
    let mut n = 0;
    for p in memchr::memchr_iter(b'\t', line).take(5) {
        tabs[n] = p;
        n += 1;
    }
    if n < 4 {
        return Err(format!("{} fields, ab -g writes 6", n + 1));
    }
    let secs = &line[tabs[0] + 1..tabs[1]];
    let s = uint(secs).ok_or_else(|| field_err("seconds", secs))?;
    let ttime = &line[tabs[3] + 1..if n > 4 { tabs[4] } else { line.len() }];
    let ms = uint(ttime).ok_or_else(|| field_err("ttime", ttime))?;
    sink.request(s as i64 * 1_000_000, ms * 1000, true);
    Ok(())
}

/// `unix_ms,latency_us[,ok]`: the start of the request in ms since the epoch, its latency in
/// µs, and 1/0 (or true/false) for success (default 1).
fn plain_line(line: &[u8], sink: &mut dyn Sink) -> Result<(), String> {
    if line.is_empty() || line.starts_with(b"unix_ms") {
        return Ok(());
    }
    let c1 = memchr(b',', line).ok_or("no latency_us field")?;
    let t = &line[..c1];
    let ms = uint(t).ok_or_else(|| field_err("unix_ms", t))?;
    let rest = &line[c1 + 1..];
    let (l, ok) = match memchr(b',', rest) {
        None => (rest, None),
        Some(c2) => (&rest[..c2], Some(&rest[c2 + 1..])),
    };
    let us = uint(l).ok_or_else(|| field_err("latency_us", l))?;
    let ok = match ok {
        None | Some(b"1") | Some(b"true") => true,
        Some(b"0") | Some(b"false") => false,
        Some(o) if memchr(b',', o).is_some() => {
            return Err("more than 3 fields (unix_ms,latency_us,ok)".into())
        }
        Some(o) => {
            return Err(format!(
                "ok: {:?} is not 1, 0, true or false",
                String::from_utf8_lossy(o)
            ))
        }
    };
    sink.request(ms as i64 * 1000, us, ok);
    Ok(())
}

fn csv_reader(r: &mut dyn Read, headers: bool) -> csv::Reader<&mut dyn Read> {
    csv::ReaderBuilder::new()
        .has_headers(headers)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(r)
}

/// vegeta's CSV: timestamp (unix ns), code, latency (ns), bytes out, bytes in, error, …
/// A result is a success when its code is 2xx/3xx and it has no error, as vegeta counts it.
fn vegeta_csv(r: &mut dyn Read, sink: &mut dyn Sink) -> Result<Content, String> {
    let mut rd = csv_reader(r, false);
    let mut rec = csv::ByteRecord::new();
    let mut n = 0u64;
    let mut bad = Broken::default();
    while rd.read_byte_record(&mut rec).map_err(|e| e.to_string())? {
        n += 1;
        let get = |i: usize, what: &str| uint_field(&rec, i, what);
        match (get(0, "timestamp"), get(1, "code"), get(2, "latency")) {
            (Ok(t), Ok(code), Ok(lat)) => {
                let error = rec.get(5).unwrap_or_default();
                let ok = (200..400).contains(&code) && error.is_empty();
                sink.request((t / 1000) as i64, lat / 1000, ok);
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => bad.add(n, e),
        }
    }
    Ok(bad.content())
}

/// One line of `vegeta encode -to json`.
fn vegeta_json_line(line: &[u8], sink: &mut dyn Sink) -> Result<(), String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct V<'a> {
        code: u64,
        #[serde(borrow)]
        timestamp: &'a str,
        latency: u64,
        #[serde(default)]
        error: String,
    }
    let v: V = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let t = rfc3339_us(v.timestamp).ok_or_else(|| format!("timestamp {:?}", v.timestamp))?;
    let ok = (200..400).contains(&v.code) && v.error.is_empty();
    sink.request(t, v.latency / 1000, ok);
    Ok(())
}

/// One line of k6's JSON output: `http_req_duration` points (ms, with the response's tags).
fn k6_line(line: &[u8], sink: &mut dyn Sink) -> Result<(), String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    // Most lines are other metrics: skip them before parsing.
    if !contains(line, b"\"http_req_duration\"") || !contains(line, b"\"Point\"") {
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct P<'a> {
        #[serde(borrow)]
        data: D<'a>,
    }
    #[derive(serde::Deserialize)]
    struct D<'a> {
        #[serde(borrow)]
        time: &'a str,
        value: f64,
        #[serde(default)]
        tags: std::collections::HashMap<String, String>,
    }
    let p: P = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let t = rfc3339_us(p.data.time).ok_or_else(|| format!("time {:?}", p.data.time))?;
    let ok = match p.data.tags.get("expected_response") {
        Some(v) => v == "true",
        None => p
            .data
            .tags
            .get("status")
            .and_then(|s| s.parse::<u32>().ok())
            .is_some_and(|c| (200..400).contains(&c)),
    };
    if !(p.data.value.is_finite() && p.data.value >= 0.0) {
        return Err(format!("value {}", p.data.value));
    }
    // k6 stamps a request's duration when it ends.
    let us = (p.data.value * 1000.0).round() as u64;
    sink.request(t - us as i64, us, ok);
    Ok(())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// JMeter's CSV JTL (its header line names the columns): `timeStamp` (ms, the sample's start
/// by JMeter's default), `elapsed` (ms), `success`.
fn jtl(r: &mut dyn Read, sink: &mut dyn Sink) -> Result<Content, String> {
    let mut rd = csv_reader(r, true);
    let h = rd.byte_headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| {
        h.iter()
            .position(|c| c == name.as_bytes())
            .ok_or(format!("the header has no {name} column"))
    };
    let (ts, el, su) = (col("timeStamp")?, col("elapsed")?, col("success").ok());
    let mut rec = csv::ByteRecord::new();
    let mut n = 1u64;
    let mut bad = Broken::default();
    while rd.read_byte_record(&mut rec).map_err(|e| e.to_string())? {
        n += 1;
        let get = |i: usize, what: &str| uint_field(&rec, i, what);
        match (get(ts, "timeStamp"), get(el, "elapsed")) {
            (Ok(t), Ok(e)) => {
                let ok = su.is_none_or(|i| rec.get(i) == Some(b"true"));
                sink.request(t as i64 * 1000, e * 1000, ok);
            }
            (Err(e), _) | (_, Err(e)) => bad.add(n, e),
        }
    }
    Ok(bad.content())
}

/// An HdrHistogram interval log. Values are converted to µs: the log's `Interval_Max` column
/// is in the log's max-value unit (ms by convention), so the ratio of a histogram's own max to
/// it tells whether the histogram recorded ns, µs or ms.
fn hdr_log(r: &mut dyn Read, sink: &mut dyn Sink) -> Result<Content, String> {
    use base64::Engine;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let mut base_s: Option<f64> = None;
    let mut start_s: Option<f64> = None;
    let mut de = hdrhistogram::serialization::Deserializer::new();
    let mut n = 0;
    for e in IntervalLogIterator::new(&bytes) {
        match e.map_err(|e| format!("not an interval log: {e:?}"))? {
            LogEntry::StartTime(t) => start_s = Some(t.as_secs_f64()),
            LogEntry::BaseTime(t) => base_s = Some(t.as_secs_f64()),
            LogEntry::Interval(h) => {
                n += 1;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(h.encoded_histogram())
                    .map_err(|e| format!("interval {n}: {e}"))?;
                let hist: hdrhistogram::Histogram<u64> = de
                    .deserialize(&mut raw.as_slice())
                    .map_err(|e| format!("interval {n}: {e:?}"))?;
                let ts = h.start_timestamp().as_secs_f64();
                // Timestamps are absolute when large, else relative to BaseTime/StartTime.
                let abs = if ts > 1e9 {
                    ts
                } else {
                    ts + base_s.or(start_s).unwrap_or(0.0)
                };
                let scale = unit_to_us(hist.max(), h.max());
                let mut us = hdrhistogram::Histogram::<u64>::new(3).expect("3 digits");
                for v in hist.iter_recorded() {
                    let value = (hist.median_equivalent(v.value_iterated_to()) as f64 * scale)
                        .round() as u64;
                    super::records::record(&mut us, value, v.count_at_value());
                }
                sink.histogram((abs * 1e6) as i64, &us);
            }
        }
    }
    if n == 0 {
        return Err("an interval log without intervals".into());
    }
    Ok(Content::Streamed {
        broken: 0,
        first_broken: None,
    })
}

/// Multiply raw histogram values by this to get µs, from the histogram's max and the log's
/// `Interval_Max` (ms by HdrHistogram's convention).
fn unit_to_us(raw_max: u64, interval_max_ms: f64) -> f64 {
    if raw_max == 0 || interval_max_ms <= 0.0 {
        return 1.0;
    }
    let ratio = raw_max as f64 / interval_max_ms; // raw units per ms
                                                  // The nearest of ns (1e6 per ms), µs (1e3), ms (1).
    let exp = ratio.log10().round().clamp(0.0, 6.0) as i32;
    let per_ms = 10f64.powi(3 * ((exp + 1) / 3));
    1000.0 / per_ms
}

/// RFC 3339 with any fraction and zone (`2024-01-02T03:04:05.123456789+01:00`, `…Z`), in µs
/// since the epoch.
pub fn rfc3339_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let mut i = 19;
    let mut frac_us = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        let six: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(6)
            .collect();
        frac_us = six.parse().ok()?;
    }
    let zone = &s[i..];
    let off_s = match zone {
        "Z" | "z" | "" => 0,
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            sign * (z[1..3].parse::<i64>().ok()? * 3600 + z[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86400 + h * 3600 + mi * 60 + se - off_s) * 1_000_000) + frac_us)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Rec(Vec<(i64, u64, bool)>, u64);
    impl Sink for Rec {
        fn request(&mut self, s: i64, l: u64, ok: bool) {
            self.0.push((s, l, ok));
        }
        fn histogram(&mut self, _: i64, h: &hdrhistogram::Histogram<u64>) {
            self.1 += h.len();
        }
    }

    fn read_all(text: &str) -> (Format, Rec, Content) {
        let f = detect(text.as_bytes()).expect("detected");
        let mut r = Rec::default();
        let got = read(f, &mut text.as_bytes(), &mut r).unwrap();
        (f, r, got)
    }

    #[test]
    fn each_lossless_format_is_recognised_by_content_and_read_in_microseconds() {
        let ab = "starttime\tseconds\tctime\tdtime\tttime\twait\nTue Dec  1 09:50:43 2026\t1764582643\t0\t2\t3\t2\n";
        let (f, r, _) = read_all(ab);
        assert_eq!(
            (f, r.0),
            (Format::AbGnuplot, vec![(1_764_582_643_000_000, 3000, true)])
        );

        let plain = "unix_ms,latency_us,ok\n1764582643123,1500,1\n1764582643124,900,0\n";
        let (f, r, _) = read_all(plain);
        assert_eq!(f, Format::PlainCsv);
        assert_eq!(
            r.0,
            vec![
                (1_764_582_643_123_000, 1500, true),
                (1_764_582_643_124_000, 900, false)
            ]
        );
        let (f, _, _) = read_all("1764582643123,1500\n");
        assert_eq!(f, Format::PlainCsv);

        let vegeta = "1764582643000000000,200,2500000,0,12,,,,0,GET,http://x/,\n1764582644000000000,500,1000000,0,0,\"500 Internal, Server Error\",,,1,GET,http://x/,\n";
        let (f, r, _) = read_all(vegeta);
        assert_eq!(f, Format::VegetaCsv);
        assert_eq!(
            r.0,
            vec![
                (1_764_582_643_000_000, 2500, true),
                (1_764_582_644_000_000, 1000, false)
            ]
        );

        let vj = r#"{"attack":"","seq":0,"code":200,"timestamp":"2025-12-01T09:50:43.5+01:00","latency":2000000,"bytes_out":0,"bytes_in":10,"error":"","body":null}"#;
        let (f, r, _) = read_all(vj);
        assert_eq!(f, Format::VegetaJson);
        assert_eq!(r.0, vec![(1_764_579_043_500_000, 2000, true)]);

        let k6 = concat!(
            r#"{"type":"Metric","data":{"name":"http_req_duration","type":"trend"},"metric":"http_req_duration"}"#,
            "\n",
            r#"{"type":"Point","data":{"time":"2025-12-01T09:50:43.010Z","value":10,"tags":{"status":"200","expected_response":"true"}},"metric":"http_req_duration"}"#,
            "\n",
            r#"{"type":"Point","data":{"time":"2025-12-01T09:50:43.010Z","value":1,"tags":{}},"metric":"http_reqs"}"#,
            "\n",
        );
        let (f, r, _) = read_all(k6);
        assert_eq!(f, Format::K6Json);
        assert_eq!(r.0, vec![(1_764_582_643_000_000, 10_000, true)]);

        let jtl = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes\n1764582643000,12,home,200,\"OK, fine\",t 1-1,text,true,,100\n1764582643100,30,home,500,err,t 1-1,text,false,boom,0\n";
        let (f, r, _) = read_all(jtl);
        assert_eq!(f, Format::JmeterJtl);
        assert_eq!(
            r.0,
            vec![
                (1_764_582_643_000_000, 12_000, true),
                (1_764_582_643_100_000, 30_000, false)
            ]
        );
    }

    #[test]
    fn an_interval_log_is_read_back_in_microseconds_whatever_unit_it_recorded() {
        use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
        use hdrhistogram::serialization::V2DeflateSerializer;
        for (per_us, divisor) in [(1000u64, 1e6), (1, 1e3)] {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            for v in [100u64, 2000, 35_000] {
                h.record(v * per_us).unwrap();
            }
            let mut out = Vec::new();
            let mut ser = V2DeflateSerializer::new();
            let mut w = IntervalLogWriterBuilder::new()
                .with_start_time(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_582_643),
                )
                .with_max_value_divisor(divisor)
                .begin_log_with(&mut out, &mut ser)
                .unwrap();
            w.write_histogram(
                &h,
                std::time::Duration::from_secs(2),
                std::time::Duration::from_secs(1),
                None,
            )
            .unwrap();
            drop(w);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(detect(text.as_bytes()), Some(Format::HdrLog), "{text}");
            struct H(Vec<(i64, u64, u64)>);
            impl Sink for H {
                fn request(&mut self, _: i64, _: u64, _: bool) {}
                fn histogram(&mut self, s: i64, h: &hdrhistogram::Histogram<u64>) {
                    self.0.push((s, h.len(), h.max()));
                }
            }
            let mut s = H(vec![]);
            read(Format::HdrLog, &mut text.as_bytes(), &mut s).unwrap();
            assert_eq!(s.0.len(), 1);
            assert_eq!(s.0[0].0, 1_764_582_645_000_000);
            assert_eq!(s.0[0].1, 3);
            // ns → µs through two histograms of 3 significant digits: within 0.2 %.
            assert!((s.0[0].2 as f64 - 35_000.0).abs() <= 70.0, "{:?}", s.0);
        }
    }

    #[test]
    fn summary_only_reports_keep_the_tools_own_figures() {
        let wrk = "Running 10s test @ http://127.0.0.1:8080/\n  2 threads and 10 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.20ms  300.00us  12.50ms   90.00%\n    Req/Sec     4.00k   100.00     4.20k    70.00%\n  Latency Distribution\n     50%    1.10ms\n     99%    3.00ms\n  80000 requests in 10.00s, 10.00MB read\n  Non-2xx or 3xx responses: 5\n  Socket errors: connect 0, read 2, write 0, timeout 1\nRequests/sec:   8000.00\nTransfer/sec:      1.00MB\n";
        let (f, _, got) = read_all(wrk);
        assert_eq!(f, Format::WrkText);
        let Content::Summary(s) = got else { panic!() };
        assert_eq!(
            (s.requests, s.errors, s.rps, s.max_ms),
            (80_000, 8, 8000.0, Some(12.5))
        );
        assert_eq!(s.percentiles_ms, vec![(50.0, 1.1), (99.0, 3.0)]);

        let ab = "This is ApacheBench, Version 2.3\nComplete requests:      2000\nFailed requests:        3\nRequests per second:    1500.50 [#/sec] (mean)\nPercentage of the requests served within a certain time (ms)\n  50%      5\n  99%     12\n 100%     40 (longest request)\n";
        let (f, _, got) = read_all(ab);
        assert_eq!(f, Format::AbText);
        let Content::Summary(s) = got else { panic!() };
        assert_eq!((s.requests, s.errors, s.max_ms), (2000, 3, Some(40.0)));
        assert_eq!(s.percentiles_ms, vec![(50.0, 5.0), (99.0, 12.0)]);

        let locust = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,99%,100%\nGET,/,10,1,5,6,1,50,100,2.5,0.1,5,40,50\n,Aggregated,10,1,5,6,1,50,100,2.5,0.1,5,40,50\n";
        let (f, _, got) = read_all(locust);
        assert_eq!(f, Format::LocustStats);
        let Content::Summary(s) = got else { panic!() };
        assert_eq!(
            (s.requests, s.errors, s.rps, s.max_ms),
            (10, 1, 2.5, Some(50.0))
        );
    }

    #[test]
    fn iperf3_intervals_are_stamped_from_its_start_time() {
        let j = r#"{"start":{"connected":[],"version":"iperf 3.12","timestamp":{"timesecs":1764582643}},
          "intervals":[{"streams":[],"sum":{"start":0,"end":1.0,"bits_per_second":9.5e8,"retransmits":3}},
                       {"streams":[],"sum":{"start":1.0,"end":2.0,"bits_per_second":9.0e8,"retransmits":0}}],
          "end":{}}"#;
        let (f, _, got) = read_all(j);
        assert_eq!(f, Format::Iperf3Json);
        let Content::Throughput(b) = got else {
            panic!()
        };
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].start_us, b[0].retransmits),
            (1_764_582_643_000_000, 3)
        );
        assert_eq!(b[1].bits_per_second, 9.0e8);
    }

    #[test]
    fn broken_lines_are_named_and_unknown_files_are_not_guessed() {
        let mut r = Rec::default();
        let got = read(
            Format::PlainCsv,
            &mut "1764582643123,15\n1764582643124,x\n1764582643125,16\n".as_bytes(),
            &mut r,
        )
        .unwrap();
        let Content::Streamed {
            broken,
            first_broken,
        } = got
        else {
            panic!()
        };
        assert_eq!(
            (broken, r.0.len()),
            (1, 2),
            "the broken line is skipped, the others count"
        );
        assert!(first_broken.unwrap().starts_with("line 2: latency_us"));
        assert_eq!(detect(b"hello world\n"), None);
        assert_eq!(detect(b"{\"a\": 1}\n"), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn rfc3339_takes_zones_and_any_fraction() {
        assert_eq!(rfc3339_us("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(rfc3339_us("1970-01-01T01:00:01.5+01:00"), Some(1_500_000));
        assert_eq!(
            rfc3339_us("2025-12-01T09:50:43.123456789Z"),
            Some(1_764_582_643_123_456)
        );
        assert_eq!(rfc3339_us("yesterday"), None);
    }
}
