//! The answer of a load test, from the files its hosts wrote: reading them (formats.rs, the
//! sampler's samples.rs), merging them on one clock into intervals and a fleet (timeline.rs),
//! judging whether a client was the limit, fitting the scaling curve (usl.rs), and writing
//! the figures (write.rs) and the page (page.rs, drawn by svg.rs).
//!
//! This layer is pure data in, files out: it never reaches a host or AWS. What it needs from
//! the case (each host's index, id and measured clock offset) is handed to it by `ec2-report`
//! (cmd/report.rs), which also decides what to print and the exit code.

pub mod formats;
pub mod page;
pub mod records;
pub mod samples;
pub mod summaries;
pub mod svg;
pub mod timeline;
pub mod usl;
pub mod write;

use formats::{Bits, Content, Format, Grade, Summary};
use samples::{Bound, Samples};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use timeline::{Figures, Fleet, HostAcc};

/// One host's directory of results, as ec2-get wrote it (`DIR/<index>-<id>/`).
#[derive(Debug, Clone)]
pub struct HostDir {
    /// The instance's index.
    pub index: u32,
    /// The instance's id.
    pub id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its clock's offset from this machine (s, host − here), when measured.
    pub offset_s: Option<f64>,
}

/// What the hosts were to the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// It produced results: a load generator.
    Client,
    /// It was sampled but produced no results: the system under test.
    Target,
    /// Neither results nor samples.
    Idle,
}

/// A file that could not be used, and why (one line in the report).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why: `unknown format` or the line that broke.
    pub reason: String,
    /// True when the file was recognised but broken (an error), false when unknown (a note).
    pub broken: bool,
}

/// One host's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Host {
    /// Index.
    pub index: u32,
    /// Instance id.
    pub id: String,
    /// Client, target or idle.
    pub role: Role,
    /// The format its figures come from (the first lossless one, else a summary).
    pub format: Option<Format>,
    /// That format's grade.
    pub grade: Option<Grade>,
    /// Every result file used, with its format.
    pub files: Vec<(PathBuf, Format)>,
    /// Lossless figures (merged into the fleet).
    pub figures: Option<Figures>,
    /// The generator's own figures (summary-only hosts; never merged).
    pub summary: Option<Summary>,
    /// Requests and errors per interval index.
    #[serde(skip)]
    pub counts: BTreeMap<i64, (u64, u64)>,
    /// iperf3 intervals, on this machine's clock.
    #[serde(skip)]
    pub bits: Vec<Bits>,
    /// The sampler's file, on this machine's clock.
    #[serde(skip)]
    pub samples: Option<Samples>,
    /// Its clock's measured offset, s.
    pub offset_s: Option<f64>,
    /// Interval indexes in which this client was the limit, and why.
    #[serde(skip)]
    pub bound: BTreeMap<i64, Bound>,
    /// Seconds of the run in which it was client-bound.
    pub client_bound_s: f64,
}

/// How to analyse.
#[derive(Debug, Clone)]
pub struct Options {
    /// Interval length, µs.
    pub interval_us: i64,
    /// Worker threads reading files.
    pub threads: usize,
}

/// Everything the report says.
pub struct Analysis {
    /// Interval length, µs.
    pub interval_us: i64,
    /// The hosts, by index.
    pub hosts: Vec<Host>,
    /// The lossless hosts merged.
    pub fleet: Fleet,
    /// Files that could not be used.
    pub skipped: Vec<Skipped>,
    /// Fleet interval indexes in which some client was the limit.
    pub bound: BTreeSet<i64>,
    /// True when hosts share a kernel (machine-wide CPU is not theirs alone; only the job's
    /// own CPU judged them).
    pub shared_kernel: bool,
    /// Hosts whose clock is off by more than one interval (index, offset s).
    pub skewed: Vec<(u32, f64)>,
    /// Hosts without a measured clock offset.
    pub unmeasured: Vec<u32>,
}

impl Analysis {
    /// The fleet's figures over the whole run.
    pub fn figures(&self) -> Figures {
        self.fleet.figures(&|_| false)
    }

    /// The fleet's figures without the client-bound intervals.
    pub fn figures_unbound(&self) -> Figures {
        self.fleet.figures(&|k| self.bound.contains(&k))
    }

    /// The clients.
    pub fn clients(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Client)
    }

    /// Fleet throughput (bits/s) per interval from iperf3 clients, summed.
    pub fn bits(&self) -> BTreeMap<i64, f64> {
        let mut m = BTreeMap::new();
        let iv = self.interval_us as f64;
        for h in &self.hosts {
            for b in &h.bits {
                let k = b.start_us.div_euclid(self.interval_us);
                *m.entry(k).or_insert(0.0) += b.bits_per_second * b.len_us as f64 / iv;
            }
        }
        m
    }
}

/// Every file under `dir`, sorted (so reports are reproducible).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let t = e.file_type()?;
        if t.is_dir() {
            files_under(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// Read and merge every host; `progress` is told after each host.
pub fn analyze(dirs: &[HostDir], opts: &Options, progress: &(dyn Fn() + Sync)) -> Analysis {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<(Host, Vec<Skipped>)>> = Mutex::new(Vec::new());
    // Each worker records into its own fleet (no lock per host); they are merged at the end.
    let fleets: Vec<Fleet> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..opts.threads.clamp(1, dirs.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut fleet = Fleet::new(opts.interval_us);
                    while let Some(d) =
                        dirs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        let (host, f, skipped) = read_host(d, opts.interval_us, fleet);
                        fleet = f;
                        results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((host, skipped));
                        progress();
                    }
                    fleet
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a report worker panicked"))
            .collect()
    });
    let mut fleet = Fleet::new(opts.interval_us);
    for f in fleets {
        fleet.merge(f);
    }
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(h, _)| h.index);
    let mut hosts = Vec::new();
    let mut skipped = Vec::new();
    for (h, s) in results {
        hosts.push(h);
        skipped.extend(s);
    }
    judge(hosts, fleet, skipped, opts.interval_us)
}

/// Roles, client-bound intervals, clock remarks: decisions on what was read.
fn judge(mut hosts: Vec<Host>, fleet: Fleet, skipped: Vec<Skipped>, interval_us: i64) -> Analysis {
    // The run's window: samples outside it belong to other runs.
    let window = (fleet.first_us <= fleet.last_end_us).then(|| {
        (
            fleet.first_us - interval_us,
            fleet.last_end_us + interval_us,
        )
    });
    for h in &mut hosts {
        if let (Some(s), Some((a, b))) = (h.samples.as_mut(), window) {
            s.cpu.retain(|c| c.t_us >= a && c.t_us <= b + interval_us);
            s.net.retain(|c| c.t_us >= a && c.t_us <= b + interval_us);
        }
    }
    // Hosts whose kernel another host shares: their machine-wide CPU is not theirs alone.
    let mut kernels: BTreeMap<&str, usize> = BTreeMap::new();
    for s in hosts.iter().filter_map(|h| h.samples.as_ref()) {
        if s.kernel != "0-none" && !s.kernel.is_empty() {
            *kernels.entry(s.kernel.as_str()).or_default() += 1;
        }
    }
    let shared: BTreeSet<String> = kernels
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k.to_owned())
        .collect();
    let shared_kernel = !shared.is_empty();
    let mut bound = BTreeSet::new();
    for h in &mut hosts {
        let has_results = h.figures.is_some() || h.summary.is_some() || !h.bits.is_empty();
        h.role = match (has_results, h.samples.is_some()) {
            (true, _) => Role::Client,
            (false, true) => Role::Target,
            (false, false) => Role::Idle,
        };
        if h.role != Role::Client {
            continue;
        }
        if let Some(s) = &h.samples {
            let half = (s.interval_s * 5e5) as i64;
            for c in &s.cpu {
                if let Some(why) = samples::bound(c, !shared.contains(&s.kernel)) {
                    let k = (c.t_us - half).div_euclid(interval_us);
                    h.bound.entry(k).or_insert(why);
                    bound.insert(k);
                }
            }
        }
        h.client_bound_s = h.bound.len() as f64 * interval_us as f64 / 1e6;
    }
    let skewed = hosts
        .iter()
        .filter_map(|h| {
            h.offset_s
                .filter(|o| o.abs() * 1e6 > interval_us as f64)
                .map(|o| (h.index, o))
        })
        .collect();
    let unmeasured = hosts
        .iter()
        .filter(|h| h.offset_s.is_none() && h.role != Role::Idle)
        .map(|h| h.index)
        .collect();
    Analysis {
        interval_us,
        hosts,
        fleet,
        skipped,
        bound,
        shared_kernel,
        skewed,
        unmeasured,
    }
}

/// Read one host's files, recording its requests into `fleet` (the worker's), given back.
fn read_host(d: &HostDir, interval_us: i64, fleet: Fleet) -> (Host, Fleet, Vec<Skipped>) {
    let offset_us = d.offset_s.map(|o| (o * 1e6).round() as i64).unwrap_or(0);
    let mut r = HostRead {
        host: Host {
            index: d.index,
            id: d.id.clone(),
            role: Role::Idle,
            format: None,
            grade: None,
            files: vec![],
            figures: None,
            summary: None,
            counts: BTreeMap::new(),
            bits: vec![],
            samples: None,
            offset_s: d.offset_s,
            bound: BTreeMap::new(),
            client_bound_s: 0.0,
        },
        acc: HostAcc::new(interval_us, offset_us, fleet),
        offset_us,
        lossless: false,
        samples: Vec::new(),
        skipped: Vec::new(),
    };
    let mut files = Vec::new();
    if let Err(e) = files_under(&d.dir, &mut files) {
        r.skip(&d.dir, e.to_string(), true);
    }
    for path in files {
        r.read_file(&path);
    }
    r.finish()
}

/// One host's files being read: what they gave so far, and what was skipped.
struct HostRead {
    host: Host,
    acc: HostAcc,
    offset_us: i64,
    /// Some file gave requests one by one (the host's figures come from them).
    lossless: bool,
    samples: Vec<Samples>,
    skipped: Vec<Skipped>,
}

impl HostRead {
    fn skip(&mut self, path: &Path, reason: String, broken: bool) {
        self.skipped.push(Skipped {
            path: path.to_path_buf(),
            reason,
            broken,
        });
    }

    /// One file, told by its content: sampler output, a result format, or skipped.
    fn read_file(&mut self, path: &Path) {
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return self.skip(path, e.to_string(), true),
        };
        let mut head = vec![0u8; formats::SNIFF];
        let n = read_full(&mut f, &mut head);
        head.truncate(n);
        if samples::is_samples(&head) {
            return self.read_samples(path);
        }
        let Some(fmt) = formats::detect(&head) else {
            let why = "not a format ec2-report reads (see README: Results)";
            return self.skip(path, why.into(), false);
        };
        let mut r = std::io::Read::chain(&head[..], f);
        self.acc.set_resolution(fmt.resolution_us());
        let read = formats::read(fmt, &mut r, &mut self.acc);
        self.take(path, fmt, read);
    }

    /// A sampler file, its timestamps moved onto this machine's clock.
    fn read_samples(&mut self, path: &Path) {
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| samples::parse(&t))
        {
            Ok(mut s) => {
                for c in &mut s.cpu {
                    c.t_us -= self.offset_us;
                }
                for c in &mut s.net {
                    c.t_us -= self.offset_us;
                }
                self.samples.push(s);
            }
            Err(e) => self.skip(path, e, true),
        }
    }

    /// What reading a result file gave.
    fn take(&mut self, path: &Path, fmt: Format, read: std::result::Result<Content, String>) {
        let host = &mut self.host;
        match read {
            Ok(Content::Streamed {
                broken,
                first_broken,
            }) => {
                self.lossless = true;
                host.format.get_or_insert(fmt);
                host.files.push((path.to_path_buf(), fmt));
                if broken > 0 {
                    let why = format!(
                        "{}: {broken} {} skipped (the rest counted); {}",
                        fmt.name(),
                        if broken == 1 { "line" } else { "lines" },
                        first_broken.unwrap_or_default()
                    );
                    self.skip(path, why, true);
                }
            }
            Ok(Content::Summary(s)) => {
                if host.summary.is_none() {
                    host.summary = Some(s);
                    host.files.push((path.to_path_buf(), fmt));
                }
            }
            Ok(Content::Throughput(b)) => {
                let offset_us = self.offset_us;
                host.bits.extend(b.into_iter().map(|mut b| {
                    b.start_us -= offset_us;
                    b
                }));
                host.files.push((path.to_path_buf(), fmt));
            }
            // What was read before a file broke off still counts: it is named, and exit 1.
            Err(e) => {
                if fmt.grade() == Grade::Lossless {
                    self.lossless = true;
                    host.format.get_or_insert(fmt);
                }
                self.skip(path, format!("{}: {e}", fmt.name()), true)
            }
        }
    }

    /// The host's figures (from its requests, when any file gave them one by one), its
    /// sampler file and grade; the worker's fleet given back.
    fn finish(self) -> (Host, Fleet, Vec<Skipped>) {
        let mut host = self.host;
        // The sampler file that covers most of this host's run (a host keeps every job's).
        host.samples = self.samples.into_iter().max_by_key(|s| s.cpu.len());
        let (l, fleet) = self.acc.finish();
        if self.lossless {
            host.figures = Some(Figures::of(&l.total, l.requests, l.errors, l.duration_s()));
            host.counts = l.counts;
            host.summary = None;
        }
        if host.format.is_none() {
            host.format = host.files.first().map(|f| f.1);
        }
        host.grade = host.format.map(Format::grade);
        (host, fleet, self.skipped)
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(m) => n += m,
        }
    }
    n
}
