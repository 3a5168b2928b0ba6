//! Load generators' result files, recognised by their content (never by their name) and read
//! into one shape: per-request records or whole histograms for the lossless formats, the
//! generator's own figures for the summary-only ones, per-interval bits/s for iperf3.
//!
//! Each format is graded ([`Grade`]): only a lossless file can be merged into a fleet
//! percentile. A summary's percentiles are kept as the generator printed them, per host, and
//! never combined (averaging percentiles is meaningless, so it is refused, not approximated).
//! Here: the formats, their grades, recognising them, and reading the summaries (summaries.rs
//! parses them). What does not belong here: the lossless formats' parsers (lossless.rs),
//! intervals, clocks and merging (timeline.rs), the sampler's files (samples.rs), anything
//! that writes.

mod lossless;

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
        Format::AbGnuplot
        | Format::PlainCsv
        | Format::VegetaCsv
        | Format::VegetaJson
        | Format::K6Json
        | Format::JmeterJtl
        | Format::HdrLog => lossless::read(fmt, r, sink),
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

#[cfg(test)]
mod tests {
    use super::lossless::rfc3339_us;
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
