//! What the readers of result files produce, and where it goes: the [`Sink`] a lossless
//! reader streams requests into, a summary-only tool's [`Summary`], iperf3's [`Bits`], and
//! [`Content`], what one file gave. The bottom of the report layer: formats.rs and
//! summaries.rs produce these, timeline.rs consumes them, and this module imports none of
//! them. What does not belong here: reading any format (formats.rs, summaries.rs).

use hdrhistogram::Histogram;

/// Where per-request records and whole histograms go while a file is read.
pub trait Sink {
    /// One request: its start (µs since the epoch, on the host's clock), latency, success.
    fn request(&mut self, start_us: i64, latency_us: u64, ok: bool);
    /// A whole histogram of latencies (µs) whose interval starts at `start_us`.
    fn histogram(&mut self, start_us: i64, hist: &hdrhistogram::Histogram<u64>);
}

/// A summary-only generator's own figures, as it printed them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Requests completed.
    pub requests: u64,
    /// Failed requests (non-2xx/3xx and socket errors, as the tool counts them).
    pub errors: u64,
    /// Requests per second, as the tool computed it.
    pub rps: f64,
    /// Percentiles the tool printed: (percent, milliseconds).
    pub percentiles_ms: Vec<(f64, f64)>,
    /// The maximum latency, when printed.
    pub max_ms: Option<f64>,
}

/// One iperf3 interval, summed over its streams.
#[derive(Debug, Clone, PartialEq)]
pub struct Bits {
    /// Interval start, µs since the epoch (host clock).
    pub start_us: i64,
    /// Interval length, µs.
    pub len_us: i64,
    /// Bits per second over the interval.
    pub bits_per_second: f64,
    /// TCP retransmits in the interval (sender side; 0 when not reported).
    pub retransmits: u64,
}

/// What reading a file gave, beyond what went into the [`Sink`].
#[derive(Debug)]
pub enum Content {
    /// Requests or histograms went into the sink; `broken` lines were skipped (a generator
    /// killed mid-write leaves one), the first of them described in `first_broken`.
    Streamed {
        /// Lines that could not be read (skipped; every other line counts).
        broken: u64,
        /// The first such line's number and what was wrong with it.
        first_broken: Option<String>,
    },
    /// A summary-only report.
    Summary(Summary),
    /// Throughput intervals.
    Throughput(Vec<Bits>),
}

/// Record `n` values `v` (µs), growing the histogram as needed (`saturating_record` would
/// clamp at its current top instead); only values beyond 2^62 are clamped.
pub fn record(h: &mut Histogram<u64>, v: u64, n: u64) {
    if h.record_n(v, n).is_err() {
        h.saturating_record_n(v, n);
    }
}
