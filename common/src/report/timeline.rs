//! Requests into intervals, hosts into a fleet: the one place figures are computed.
//!
//! A host's records are moved onto this machine's clock (its measured offset subtracted) and
//! counted into fixed intervals aligned to the epoch (so every host's interval k is the same
//! wall-clock second), each with an HdrHistogram of latency (µs, 3 significant digits). The
//! fleet's interval is the exact merge of its hosts' histograms — added, never averaged — and
//! the fleet's whole-run histogram the merge of its intervals. Percentiles are read from
//! histograms only, so p99 ≤ max always. Memory grows with hosts × intervals, never with
//! requests. What does not belong here: parsing (formats.rs), writing (write.rs, page.rs).

use super::records::{record, Sink};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// Significant digits of every histogram.
pub const SIGFIG: u8 = 3;

/// An empty latency histogram (µs; grows to whatever it records).
pub fn new_hist() -> Histogram<u64> {
    Histogram::new(SIGFIG).expect("3 significant digits is valid")
}

/// One interval's requests.
#[derive(Clone)]
pub struct Bucket {
    /// Requests started in the interval.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Their latencies, µs.
    pub hist: Histogram<u64>,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            requests: 0,
            errors: 0,
            hist: new_hist(),
        }
    }

    fn add(&mut self, o: &Bucket) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.hist
            .add(&o.hist)
            .expect("auto-resizing histograms add");
    }
}

/// One host's lossless results, as they are read: each request is recorded once into the
/// reading worker's own fleet (its interval's histogram) and once into the host's whole-run
/// histogram, so no per-host interval histograms are built and merged afterwards.
pub struct HostAcc {
    interval_us: i64,
    offset_us: i64,
    fleet: Fleet,
    /// The fleet interval being filled (records mostly arrive in time order), with this
    /// host's requests and errors in it.
    cur: Option<(i64, Bucket, u64, u64)>,
    counts: BTreeMap<i64, (u64, u64)>,
    total: Histogram<u64>,
    first_us: i64,
    last_end_us: i64,
    last_start_us: i64,
    resolution_us: i64,
}

impl HostAcc {
    /// Intervals of `interval_us`, recorded into `fleet` (the reading worker's); the host's
    /// clock is `offset_us` ahead of this machine's.
    pub fn new(interval_us: i64, offset_us: i64, fleet: Fleet) -> HostAcc {
        HostAcc {
            interval_us: interval_us.max(1),
            offset_us,
            fleet,
            cur: None,
            counts: BTreeMap::new(),
            total: new_hist(),
            first_us: i64::MAX,
            last_end_us: i64::MIN,
            last_start_us: i64::MIN,
            resolution_us: 1,
        }
    }

    /// The coarsest timestamp step of what is read (ab -g stamps whole seconds): a run's
    /// duration is then at least from the first stamp to the last stamp plus one step, so a
    /// host's rate is never inflated by stamps that round its requests together.
    pub fn set_resolution(&mut self, us: i64) {
        self.resolution_us = self.resolution_us.max(us);
    }

    fn flush(&mut self) {
        if let Some((k, b, r, e)) = self.cur.take() {
            self.fleet.buckets.insert(k, b);
            let c = self.counts.entry(k).or_insert((0, 0));
            c.0 += r;
            c.1 += e;
        }
    }

    fn bucket(&mut self, k: i64) -> &mut (i64, Bucket, u64, u64) {
        if self.cur.as_ref().map(|c| c.0) != Some(k) {
            self.flush();
            let b = self.fleet.buckets.remove(&k).unwrap_or_else(Bucket::new);
            self.cur = Some((k, b, 0, 0));
        }
        self.cur.as_mut().expect("just set")
    }

    /// The host's results, and the worker's fleet back (with this host in it).
    pub fn finish(mut self) -> (HostLatency, Fleet) {
        self.flush();
        if self.last_start_us > i64::MIN {
            self.last_end_us = self
                .last_end_us
                .max(self.last_start_us.saturating_add(self.resolution_us));
        }
        let (requests, errors) = self
            .counts
            .values()
            .fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
        if requests > 0 {
            self.fleet.first_us = self.fleet.first_us.min(self.first_us);
            self.fleet.last_end_us = self.fleet.last_end_us.max(self.last_end_us);
        }
        (
            HostLatency {
                counts: self.counts,
                total: self.total,
                requests,
                errors,
                first_us: self.first_us,
                last_end_us: self.last_end_us,
            },
            self.fleet,
        )
    }
}

impl Sink for HostAcc {
    fn request(&mut self, start_us: i64, latency_us: u64, ok: bool) {
        let t = start_us - self.offset_us;
        let k = t.div_euclid(self.interval_us);
        self.first_us = self.first_us.min(t);
        self.last_start_us = self.last_start_us.max(t);
        self.last_end_us = self
            .last_end_us
            .max(t.saturating_add(latency_us.min(i64::MAX as u64) as i64));
        record(&mut self.total, latency_us, 1);
        let c = self.bucket(k);
        c.1.requests += 1;
        c.1.errors += u64::from(!ok);
        c.2 += 1;
        c.3 += u64::from(!ok);
        record(&mut c.1.hist, latency_us, 1);
    }

    fn histogram(&mut self, start_us: i64, hist: &Histogram<u64>) {
        let t = start_us - self.offset_us;
        let k = t.div_euclid(self.interval_us);
        self.first_us = self.first_us.min(t);
        self.last_start_us = self.last_start_us.max(t);
        self.last_end_us = self.last_end_us.max(t + self.interval_us);
        self.total.add(hist).expect("auto-resizing histograms add");
        let c = self.bucket(k);
        c.1.requests += hist.len();
        c.2 += hist.len();
        c.1.hist.add(hist).expect("auto-resizing histograms add");
    }
}

/// One host's lossless results on this machine's clock.
pub struct HostLatency {
    /// Interval index (start = k × interval since the epoch) → its requests and errors.
    pub counts: BTreeMap<i64, (u64, u64)>,
    /// The whole run's latencies.
    pub total: Histogram<u64>,
    /// Requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// The first request's start, µs since the epoch.
    pub first_us: i64,
    /// The last request's end, µs since the epoch.
    pub last_end_us: i64,
}

impl HostLatency {
    /// Seconds from the first start to the last end.
    pub fn duration_s(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        (self.last_end_us - self.first_us).max(1) as f64 / 1e6
    }
}

/// The fleet: the exact merge of its hosts, interval by interval.
pub struct Fleet {
    /// Interval length, µs.
    pub interval_us: i64,
    /// Interval index → the merged interval.
    pub buckets: BTreeMap<i64, Bucket>,
    /// The first start and last end over every host.
    pub first_us: i64,
    /// See `first_us`.
    pub last_end_us: i64,
}

impl Fleet {
    /// An empty fleet with intervals of `interval_us`.
    pub fn new(interval_us: i64) -> Fleet {
        Fleet {
            interval_us,
            buckets: BTreeMap::new(),
            first_us: i64::MAX,
            last_end_us: i64::MIN,
        }
    }

    /// Merge another worker's fleet in (histograms added, interval by interval).
    pub fn merge(&mut self, o: Fleet) {
        for (k, b) in o.buckets {
            match self.buckets.entry(k) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(b);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().add(&b),
            }
        }
        self.first_us = self.first_us.min(o.first_us);
        self.last_end_us = self.last_end_us.max(o.last_end_us);
    }

    /// The whole run's figures; with `skip`, without the intervals it names (the
    /// client-bound ones): their requests and their time both leave the figures.
    pub fn figures(&self, skip: &dyn Fn(i64) -> bool) -> Figures {
        let mut total = Bucket::new();
        let mut skipped = 0i64;
        for (k, b) in &self.buckets {
            if skip(*k) {
                skipped += 1;
            } else {
                total.add(b);
            }
        }
        let span = if self.first_us <= self.last_end_us {
            (self.last_end_us - self.first_us).max(1) - skipped * self.interval_us
        } else {
            0
        };
        Figures::of(
            &total.hist,
            total.requests,
            total.errors,
            span.max(0) as f64 / 1e6,
        )
    }

    /// Every interval from the first to the last, gaps as empty intervals.
    pub fn rows(&self) -> Vec<(i64, Option<&Bucket>)> {
        let (Some(a), Some(b)) = (
            self.buckets.keys().next().copied(),
            self.buckets.keys().next_back().copied(),
        ) else {
            return vec![];
        };
        (a..=b).map(|k| (k, self.buckets.get(&k))).collect()
    }

    /// The merged histogram of the whole run.
    pub fn total(&self) -> Histogram<u64> {
        let mut t = new_hist();
        for b in self.buckets.values() {
            t.add(&b.hist).expect("auto-resizing histograms add");
        }
        t
    }
}

/// Latency percentiles, ms.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The largest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

impl Latency {
    /// From a histogram of µs; each percentile is at most the max (both are the highest value
    /// equivalent to what was recorded, so rounding never puts p99 above max).
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let max = h.max();
        let q = |q: f64| ms(h.value_at_quantile(q).min(max));
        Latency {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(max),
            mean: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
        }
    }
}

/// µs → ms, to the µs.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A run's headline figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Figures {
    /// Requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Requests per second over the run's duration.
    pub rps: f64,
    /// Seconds from the first request's start to the last one's end.
    pub duration_s: f64,
    /// Latency percentiles, ms.
    pub latency_ms: Latency,
}

impl Figures {
    /// From a histogram and counts over `duration_s`.
    pub fn of(h: &Histogram<u64>, requests: u64, errors: u64, duration_s: f64) -> Figures {
        Figures {
            requests,
            errors,
            rps: if duration_s > 0.0 {
                round3(requests as f64 / duration_s)
            } else {
                0.0
            },
            duration_s: round3(duration_s),
            latency_ms: Latency::of(h),
        }
    }
}

/// To three decimals (figures are printed, not computed further).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the truth is reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The exact percentile of sorted values, as HdrHistogram defines it: the smallest value
    /// with at least q of the values at or below it.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    #[test]
    fn merged_percentiles_equal_the_exact_percentiles_of_the_union() {
        // Shapes: uniform, exponential, log-normal-ish, bimodal; hosts skewed (one slow, one
        // with ten times the requests).
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        type Shape = Box<dyn Fn(&mut Rng) -> u64>;
        let shapes: Vec<Shape> = vec![
            Box::new(|r| 1000 + (r.next() * 9000.0) as u64),
            Box::new(|r| (-(1.0 - r.next()).ln() * 2000.0) as u64 + 50),
            Box::new(|r| ((r.next() * 4.0 + r.next() * 4.0).exp() * 10.0) as u64),
            Box::new(|r| {
                if r.next() < 0.9 {
                    500 + (r.next() * 100.0) as u64
                } else {
                    250_000 + (r.next() * 1e5) as u64
                }
            }),
        ];
        // Two workers, as analyze() runs them: hosts 0 and 2 on one, 1 and 3 on the other.
        let mut workers = [Fleet::new(1_000_000), Fleet::new(1_000_000)];
        let mut all = Vec::new();
        for (host, shape) in shapes.iter().enumerate() {
            let n = if host == 1 { 100_000 } else { 10_000 };
            let w = std::mem::replace(&mut workers[host % 2], Fleet::new(1));
            let mut acc = HostAcc::new(1_000_000, 0, w);
            for i in 0..n {
                let v = shape(&mut rng);
                all.push(v);
                acc.request(1_764_582_643_000_000 + i as i64 * 97, v, i % 50 != 0);
            }
            workers[host % 2] = acc.finish().1;
        }
        let [mut fleet, other] = workers;
        fleet.merge(other);
        all.sort_unstable();
        let merged = fleet.total();
        assert_eq!(merged.len(), all.len() as u64);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let (got, want) = (merged.value_at_quantile(q), exact(&all, q));
            assert!(
                merged.equivalent(got, want),
                "q={q}: merged {got}, exact {want}"
            );
            assert!((got as f64 - want as f64).abs() <= want as f64 * 1e-3 + 1.0);
        }
        let f = fleet.figures(&|_| false);
        assert_eq!(f.requests, 130_000);
        assert_eq!(f.errors, 2600);
        assert!(f.latency_ms.p99 <= f.latency_ms.max);
        assert!(f.latency_ms.p999 <= f.latency_ms.max);
    }

    #[test]
    fn averaging_the_hosts_percentiles_would_be_wrong_and_the_merge_is_not_that() {
        // One fast host with many requests, one slow host with few: the mean of the two p99s
        // is far from the fleet's p99.
        let mut fast = HostAcc::new(1_000_000, 0, Fleet::new(1_000_000));
        for i in 0..9900 {
            fast.request(i, 1000, true);
        }
        let (fast, fleet) = fast.finish();
        let mut slow = HostAcc::new(1_000_000, 0, fleet);
        for i in 0..100 {
            slow.request(i, 100_000, true);
        }
        let (slow, fleet) = slow.finish();
        let avg = (Latency::of(&fast.total).p99 + Latency::of(&slow.total).p99) / 2.0;
        let p99 = fleet.figures(&|_| false).latency_ms.p99;
        assert!((p99 - 1.0).abs() < 0.01, "fleet p99 {p99}");
        assert!(avg > 50.0);
    }

    #[test]
    fn a_shifted_hosts_intervals_move_back_by_its_clock_offset() {
        // The host's clock is 3.5 s ahead: its request stamped 10.2 s happened at 6.7 s here.
        let mut acc = HostAcc::new(1_000_000, 3_500_000, Fleet::new(1_000_000));
        acc.request(10_200_000, 1000, true);
        let (h, fleet) = acc.finish();
        assert_eq!(h.counts.keys().copied().collect::<Vec<_>>(), vec![6]);
        assert_eq!(fleet.buckets.keys().copied().collect::<Vec<_>>(), vec![6]);
        let mut behind = HostAcc::new(1_000_000, -2_000_000, Fleet::new(1_000_000));
        behind.request(500_000, 1000, true);
        assert_eq!(
            behind.finish().0.counts.keys().copied().collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn whole_second_stamps_never_inflate_a_hosts_rate() {
        // ab -g: 500 requests stamped in one second are 500/s at most, not 500 per 3 ms.
        let mut acc = HostAcc::new(1_000_000, 0, Fleet::new(1_000_000));
        acc.set_resolution(1_000_000);
        for _ in 0..500 {
            acc.request(5_000_000, 3000, true);
        }
        assert_eq!(acc.finish().0.duration_s(), 1.0);
    }

    #[test]
    fn skipped_intervals_leave_the_figures_with_their_time() {
        let mut acc = HostAcc::new(1_000_000, 0, Fleet::new(1_000_000));
        for s in 0..4i64 {
            for i in 0..100 {
                acc.request(
                    s * 1_000_000 + i * 10_000,
                    if s == 2 { 50_000 } else { 1000 },
                    true,
                );
            }
        }
        let fleet = acc.finish().1;
        let all = fleet.figures(&|_| false);
        let clean = fleet.figures(&|k| k == 2);
        assert_eq!((all.requests, clean.requests), (400, 300));
        assert!(all.latency_ms.max > 49.0 && clean.latency_ms.max < 1.1);
        assert!((clean.rps - 300.0 / (all.duration_s - 1.0)).abs() < 0.01);
        assert_eq!(fleet.rows().len(), 4);
    }
}
