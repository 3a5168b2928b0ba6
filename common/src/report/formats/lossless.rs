//! The lossless formats' parsers: one record per request (ab's gnuplot file, plain CSV,
//! vegeta's CSV and JSON, k6's JSON, JMeter's JTL) or whole histograms (HdrHistogram interval
//! logs), streamed line by line in bounded memory, each broken line named, every time in µs.
//! What does not belong here: recognising a format, grading it (mod.rs).

use super::{Content, Format, Sink};
use std::io::Read;

/// Read a whole lossless file of format `fmt` (mod.rs reads the others).
pub(super) fn read(fmt: Format, r: &mut dyn Read, sink: &mut dyn Sink) -> Result<Content, String> {
    match fmt {
        Format::AbGnuplot => lines(r, sink, ab_gnuplot_line),
        Format::PlainCsv => lines(r, sink, plain_line),
        Format::VegetaCsv => vegeta_csv(r, sink),
        Format::VegetaJson => lines(r, sink, vegeta_json_line),
        Format::K6Json => lines(r, sink, k6_line),
        Format::JmeterJtl => jtl(r, sink),
        Format::HdrLog => hdr_log(r, sink),
        other => Err(format!("{}: not a lossless format", other.name())),
    }
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
                    crate::report::records::record(&mut us, value, v.count_at_value());
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
