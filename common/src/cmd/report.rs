//! ec2-report DIR: the answer of a load test — what `ec2-get` brought home (or the S3 prefix
//! it wrote), merged across every load generator, graded, judged for client-bound seconds,
//! written as summary.json, CSVs, the merged interval log and one page of charts; with
//! `--sweep`, the runs' reports fitted to the Universal Scalability Law.
//!
//! Here: the command line, finding the inputs (local or S3) and each host's clock offset in
//! the case, the exit code. The reading, merging and drawing are the report layer's
//! (report/). What does not belong here: any figure's arithmetic.

use crate::case::clocks;
use crate::case::store::STATE_DIR;
use crate::cli::HostArgs;
use crate::config::parse_duration;
use crate::error::{Code, Error, Result};
use crate::output;
use crate::report::write::{self as out, Style, Sweep, SweepRun};
use crate::report::{self, HostDir};
use crate::tool::Tool;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The command line of `ec2-report` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Merge a load test's results across every load generator into one \
answer: fleet throughput and exact latency percentiles per interval (HdrHistogram), each figure \
graded by its source format, client-bound seconds named, and a one-page report with charts \
(REPORT_DIR/index.html); a short table on stdout",
    after_help = "Formats (found by content): lossless — ab -g TSV, vegeta CSV/JSON, k6 --out json, \
JMeter JTL CSV, HdrHistogram .hlog, plain CSV `unix_ms,latency_us[,ok]`; summary-only (shown per \
host, never merged) — wrk, ab text, Locust _stats.csv; throughput-only — iperf3 -J.

Examples:
  ec2-get results.csv out && ec2-report out       report/index.html, report/summary.json
  ec2-report --markdown out                       the table for a wiki page
  ec2-report --strict out                         exit 1 if a client was the limit
  ec2-report s3://my-results/run-42/              what `ec2-get … s3://` uploaded
  ec2-report -o sweep --sweep n1/report n2/report n4/report   throughput against N, USL fit"
)]
pub struct Cli {
    /// What ec2-get wrote (`DIR/<index>-<id>/…`, several DIRs merge) or `s3://BUCKET/PREFIX/`;
    /// with --sweep, the report directories of the runs
    #[arg(value_name = "INPUT", required = true, num_args = 1..)]
    inputs: Vec<String>,
    /// Where the report goes (created; never inside an input)
    #[arg(short = 'o', long, value_name = "REPORT_DIR", default_value = "report")]
    out: PathBuf,
    /// Interval of the timeline
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    interval: Duration,
    /// Print summary.json on stdout instead of the table
    #[arg(long)]
    json: bool,
    /// Print the table as Markdown
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
    /// Exit 1 when some client was the limit (client-bound seconds)
    #[arg(long)]
    strict: bool,
    /// The inputs are report directories of runs at different client counts: fit throughput
    /// against N (Universal Scalability Law)
    #[arg(long)]
    sweep: bool,
    /// With --sweep: each run's N, in the order of the inputs (default: its client count)
    #[arg(long, value_name = "N,…", value_delimiter = ',', requires = "sweep")]
    n: Vec<f64>,
    /// Measure the hosts' clocks now (over SSH) instead of using the last measurement kept in
    /// the case (`--at` keeps one)
    #[arg(long)]
    measure_clocks: bool,
    /// The page's title
    #[arg(long, value_name = "TEXT")]
    title: Option<String>,
    #[command(flatten)]
    hosts: HostArgs,
}

fn parse_interval(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
        return Err(format!("{s:?}: the interval must be between 1ms and 1h"));
    }
    Ok(d)
}

/// The `ec2-report` tool.
pub struct Report;

impl Tool for Report {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        let style = if cli.markdown {
            Style::Markdown
        } else {
            Style::Text
        };
        refuse_out_inside_inputs(&cli.out, &cli.inputs)?;
        if cli.sweep {
            return sweep(&cli, style);
        }
        let case_dir = cli
            .hosts
            .dir
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        // Inputs first (bad input is found before any host is touched).
        let tmp = tempfile::tempdir().map_err(|e| Error::infra(format!("temp directory: {e}")))?;
        let mut dirs = Vec::new();
        for (i, input) in cli.inputs.iter().enumerate() {
            match crate::aws::s3::parse_url(input) {
                Some(url) => {
                    let (bucket, prefix) = url.map_err(Error::input)?;
                    let into = tmp.path().join(i.to_string());
                    dirs.extend(from_s3(&cli, &bucket, &prefix, &into)?);
                }
                None => dirs.extend(host_dirs(Path::new(input))?),
            }
        }
        if cli.measure_clocks {
            let (ssh, store, hosts) = super::selected_hosts(&cli.hosts)?;
            let state = store.state_dir()?;
            super::start_at::measure(
                &ssh,
                &hosts,
                crate::cli::DEFAULT_FANOUT as usize,
                Some(&state),
            )?;
        }
        let clocks = clocks::load(&case_dir.join(STATE_DIR))?;
        for d in &mut dirs {
            d.offset_s = clocks.get(&d.id).map(|c| c.offset_s);
        }
        let bar = output::progress(dirs.len() as u64, "reading");
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let opts = report::Options {
            interval_us: cli.interval.as_micros() as i64,
            threads,
        };
        let a = report::analyze(&dirs, &opts, &|| bar.inc(1));
        drop(bar);
        let r = out::report(&a);
        std::fs::create_dir_all(&cli.out)
            .map_err(|e| Error::input(format!("{}: {e}", cli.out.display())))?;
        out::files(&a, &r, &cli.out).map_err(Error::infra)?;
        let title = cli
            .title
            .clone()
            .unwrap_or_else(|| format!("Load test: {}", cli.inputs.join(", ")));
        let page = cli.out.join("index.html");
        std::fs::write(&page, report::page::run_page(&a, &r, &title))
            .map_err(|e| Error::infra(format!("{}: {e}", page.display())))?;
        if cli.json {
            output::data(serde_json::to_string_pretty(&r).expect("plain data serializes"));
        } else {
            output::data(out::table(&r, style).trim_end());
        }
        notes(&a, &r);
        output::note(format!("the report: {}", page.display()));
        verdict(&a, &r, cli.strict)
    }
}

/// The report may not be written into what it reads.
fn refuse_out_inside_inputs(out: &Path, inputs: &[String]) -> Result<()> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let o = abs(out);
    for i in inputs.iter().filter(|i| !i.starts_with("s3://")) {
        if o.starts_with(abs(Path::new(i))) {
            return Err(Error::input(format!(
                "-o {}: inside the input {i} (nothing in an input is changed): write the report elsewhere",
                out.display()
            )));
        }
    }
    Ok(())
}

/// `DIR/<index>-<id>/` directories, by index.
fn host_dirs(dir: &Path) -> Result<Vec<HostDir>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::input(format!("{}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((index, id)) = name.split_once('-') else {
            continue;
        };
        let (Ok(index), true) = (index.parse::<u32>(), e.path().is_dir()) else {
            continue;
        };
        if id.is_empty() {
            continue;
        }
        out.push(HostDir {
            index,
            id: id.to_owned(),
            dir: e.path(),
            offset_s: None,
        });
    }
    if out.is_empty() {
        return Err(Error::input(format!(
            "{}: no <index>-<id>/ directories in it (what ec2-get writes)",
            dir.display()
        )));
    }
    out.sort_by_key(|d| d.index);
    Ok(out)
}

/// What `ec2-get … s3://BUCKET/PREFIX/` wrote: its manifest (at PREFIX/ or PREFIX/<case>/),
/// then each host's archive, checked against the manifest's SHA-256 and unpacked into `into`.
fn from_s3(cli: &Cli, bucket: &str, prefix: &str, into: &Path) -> Result<Vec<HostDir>> {
    let settings = cli.hosts.dir.settings()?;
    let case = crate::cli::resolve_case(&settings, &Default::default(), &Default::default()).ok();
    let rt = crate::aws::runtime()?;
    std::fs::create_dir_all(into).map_err(|e| Error::infra(format!("{}: {e}", into.display())))?;
    let manifest_path = into.join("manifest.json");
    let join = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_owned()
        } else {
            format!("{a}/{b}")
        }
    };
    let mut keys = vec![join(prefix, "manifest.json")];
    if let Some(c) = &case {
        keys.push(join(&join(prefix, &c.case), "manifest.json"));
    }
    let s3 = rt.block_on(crate::aws::s3::connect(
        case.as_ref().and_then(|c| c.region.as_deref()),
    ))?;
    let m = fetch_manifest(&rt, &s3, bucket, &keys, &manifest_path)?;
    let mut out = Vec::new();
    for o in m
        .get("objects")
        .and_then(|o| o.as_array())
        .into_iter()
        .flatten()
    {
        out.push(unpack_host(&rt, &s3, bucket, o, into)?);
    }
    for f in m
        .get("failed")
        .and_then(|o| o.as_array())
        .into_iter()
        .flatten()
    {
        output::note(format!(
            "the upload had failed for {f}: that host is not in the report"
        ));
    }
    if out.is_empty() {
        return Err(Error::input(format!(
            "s3://{bucket}/{prefix}: the manifest lists no objects"
        )));
    }
    out.sort_by_key(|d| d.index);
    Ok(out)
}

/// The first of `keys` that downloads to `to` as a manifest, parsed.
fn fetch_manifest(
    rt: &tokio::runtime::Runtime,
    s3: &crate::aws::s3::S3,
    bucket: &str,
    keys: &[String],
    to: &Path,
) -> Result<serde_json::Value> {
    let mut last = None;
    let mut found = None;
    for k in keys {
        match rt.block_on(s3.download_file(bucket, k, to)) {
            Ok(_) => {
                found = Some(k);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(found) = found else {
        return Err(last.unwrap_or_else(|| Error::input("no manifest")));
    };
    std::fs::read(to)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Error::input(format!("s3://{bucket}/{found}: not a manifest")))
}

/// One manifest object: the host's archive downloaded, checked against its SHA-256 and
/// unpacked into `<into>/<index>-<id>`.
fn unpack_host(
    rt: &tokio::runtime::Runtime,
    s3: &crate::aws::s3::S3,
    bucket: &str,
    o: &serde_json::Value,
    into: &Path,
) -> Result<HostDir> {
    let (Some(id), Some(index), Some(key)) = (
        o.get("id").and_then(|v| v.as_str()),
        o.get("index").and_then(|v| v.as_u64()),
        o.get("key").and_then(|v| v.as_str()),
    ) else {
        return Err(Error::input(format!(
            "s3://{bucket}: a manifest object without id, index or key: {o}"
        )));
    };
    let archive = into.join(format!("{index}-{id}.tar.zst"));
    let sha = rt.block_on(s3.download_file(bucket, key, &archive))?;
    if let Some(want) = o.get("sha256").and_then(|v| v.as_str()) {
        if want != sha {
            return Err(Error::infra(format!(
                "s3://{bucket}/{key}: SHA-256 {sha}, the manifest says {want}"
            )));
        }
    }
    let dir = into.join(format!("{index}-{id}"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::infra(format!("{}: {e}", dir.display())))?;
    let f = std::fs::File::open(&archive)
        .map_err(|e| Error::infra(format!("{}: {e}", archive.display())))?;
    let z = zstd::stream::read::Decoder::new(f)
        .map_err(|e| Error::infra(format!("{}: {e}", archive.display())))?;
    tar::Archive::new(z)
        .unpack(&dir)
        .map_err(|e| Error::input(format!("s3://{bucket}/{key}: {e}")))?;
    let _ = std::fs::remove_file(&archive);
    Ok(HostDir {
        index: index as u32,
        id: id.to_owned(),
        dir,
        offset_s: None,
    })
}

/// One line on stderr per thing the reader should know.
fn notes(a: &report::Analysis, r: &out::Report) {
    for s in &r.skipped {
        output::note(format!("{}: {}", s.path, s.reason));
    }
    for n in &r.fleet.not_merged {
        output::note(format!("#{}: not merged: {}", n.index, n.reason));
    }
    for h in a.clients().filter(|h| h.client_bound_s > 0.0) {
        let why: std::collections::BTreeSet<String> = h
            .bound
            .values()
            .map(|b| {
                serde_json::to_value(b)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        output::note(format!(
            "#{} {}: client-bound for {} s ({}): the load generator, not the target, was the limit then",
            h.index,
            h.id,
            h.client_bound_s,
            why.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if a.shared_kernel {
        output::note("the hosts share one kernel (the local cloud): machine-wide CPU is not theirs alone; only each job's own CPU judged client-bound");
    }
    for (i, o) in &a.skewed {
        output::note(format!("#{i}: its clock is {o:+.3} s off this machine's, more than one interval; its timestamps were corrected"));
    }
    if !a.unmeasured.is_empty() {
        output::note(format!(
            "no clock offset kept for {} (run with --at, or ec2-report --measure-clocks): their timestamps are taken as they are",
            a.unmeasured.iter().map(|i| format!("#{i}")).collect::<Vec<_>>().join(", ")
        ));
    }
}

fn verdict(a: &report::Analysis, r: &out::Report, strict: bool) -> Result<Code> {
    if a.hosts.iter().all(|h| h.role == report::Role::Idle) {
        return Err(Error::input(
            "no results and no samples in the input: nothing to report",
        ));
    }
    let broken = r.skipped.iter().filter(|s| s.broken).count();
    if broken > 0 {
        output::note(format!(
            "{} could not be read (named above)",
            output::count(broken, "file")
        ));
        return Ok(Code::Partial);
    }
    if strict && r.fleet.client_bound_s > 0.0 {
        output::note("--strict: some client was the limit");
        return Ok(Code::Partial);
    }
    Ok(Code::Ok)
}

/// The runs' summary.json files → throughput against N and the USL fit.
fn sweep(cli: &Cli, style: Style) -> Result<Code> {
    if !cli.n.is_empty() && cli.n.len() != cli.inputs.len() {
        return Err(Error::input(format!(
            "--n gives {} labels for {} runs",
            cli.n.len(),
            cli.inputs.len()
        )));
    }
    let runs = cli
        .inputs
        .iter()
        .enumerate()
        .map(|(i, dir)| sweep_run(dir, cli.n.get(i).copied()))
        .collect::<Result<Vec<_>>>()?;
    let s = fit_sweep(runs);
    write_sweep(cli, &s)?;
    if cli.json {
        output::data(serde_json::to_string_pretty(&s).expect("plain data serializes"));
    } else {
        output::data(out::sweep_table(&s, style).trim_end());
    }
    sweep_notes(&s);
    output::note(format!(
        "the report: {}",
        cli.out.join("index.html").display()
    ));
    Ok(if cli.strict && s.client_bound {
        Code::Partial
    } else {
        Code::Ok
    })
}

/// One run of a sweep, from its report directory's summary.json; N is `n` (`--n`), else
/// its number of clients.
fn sweep_run(dir: &str, n: Option<f64>) -> Result<SweepRun> {
    let p = Path::new(dir).join("summary.json");
    let v: serde_json::Value = std::fs::read(&p)
        .map_err(|e| {
            Error::input(format!(
                "{}: {e} (a run's report directory has summary.json)",
                p.display()
            ))
        })
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| Error::input(format!("{}: not valid JSON: {e}", p.display())))
        })?;
    let fleet = v
        .get("fleet")
        .ok_or_else(|| Error::input(format!("{}: no fleet", p.display())))?;
    let num = |k: &str| fleet.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
    let clients = v
        .get("hosts")
        .and_then(|h| h.as_array())
        .map(|h| {
            h.iter()
                .filter(|h| h.get("role").and_then(|r| r.as_str()) == Some("client"))
                .count()
        })
        .unwrap_or(0) as f64;
    let n = n.unwrap_or(clients);
    let rps = num("rps");
    if n < 1.0 || rps <= 0.0 {
        return Err(Error::input(format!(
            "{}: N {n}, {rps} req/s: a sweep's run needs clients and requests",
            p.display()
        )));
    }
    Ok(SweepRun {
        dir: dir.to_owned(),
        n,
        rps,
        efficiency: None,
        p99_ms: fleet
            .pointer("/latency_ms/p99")
            .and_then(|x| x.as_f64())
            .unwrap_or(0.0),
        client_bound_s: num("client_bound_s"),
    })
}

/// The runs in order of N, fitted to the USL; efficiency against λ (else the N = 1 run).
fn fit_sweep(mut runs: Vec<SweepRun>) -> Sweep {
    runs.sort_by(|a, b| a.n.total_cmp(&b.n));
    let points: Vec<(f64, f64)> = runs.iter().map(|r| (r.n, r.rps)).collect();
    let (usl, usl_error) = match report::usl::fit(&points) {
        Ok(u) => (Some(u), None),
        Err(e) => (None, Some(e)),
    };
    let lambda = usl
        .as_ref()
        .map(|u| u.lambda)
        .or_else(|| runs.iter().find(|r| r.n == 1.0).map(|r| r.rps));
    for r in &mut runs {
        r.efficiency = lambda.map(|l| (r.rps / (r.n * l) * 1000.0).round() / 1000.0);
    }
    Sweep {
        version: 1,
        client_bound: runs.iter().any(|r| r.client_bound_s > 0.0),
        runs,
        usl,
        usl_error,
    }
}

/// summary.json, sweep.csv and index.html in `--output`.
fn write_sweep(cli: &Cli, s: &Sweep) -> Result<()> {
    std::fs::create_dir_all(&cli.out)
        .map_err(|e| Error::input(format!("{}: {e}", cli.out.display())))?;
    let write = |name: &str, text: String| {
        let p = cli.out.join(name);
        std::fs::write(&p, text).map_err(|e| Error::infra(format!("{}: {e}", p.display())))
    };
    write(
        "summary.json",
        serde_json::to_string_pretty(&s).expect("plain data serializes") + "\n",
    )?;
    let mut csv = String::from("n,rps,efficiency,p99_ms,client_bound_s,model_rps,dir\n");
    for r in &s.runs {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.n,
            r.rps,
            r.efficiency.map(|e| e.to_string()).unwrap_or_default(),
            r.p99_ms,
            r.client_bound_s,
            s.usl
                .as_ref()
                .map(|u| format!("{:.3}", u.x(r.n)))
                .unwrap_or_default(),
            r.dir
        ));
    }
    write("sweep.csv", csv)?;
    let title = cli
        .title
        .clone()
        .unwrap_or_else(|| "Scalability: throughput against clients".into());
    write("index.html", report::page::sweep_page(s, &title))
}

/// The fit, and whether the curve measures the load generators too, on stderr.
fn sweep_notes(s: &Sweep) {
    match (&s.usl, &s.usl_error) {
        (Some(u), _) => output::note(format!(
            "USL: sigma {:.4}, kappa {:.6}, lambda {:.1} req/s (relative RMSE {:.1} %){}",
            u.sigma,
            u.kappa,
            u.lambda,
            u.rel_rmse * 100.0,
            match u.n_peak {
                Some(n) if n < 1e4 => format!("; peak at N ≈ {n:.1}"),
                _ => "; no peak in sight (κ ≈ 0)".into(),
            }
        )),
        (None, Some(e)) => output::note(format!("no USL fit: {e}")),
        _ => {}
    }
    if s.client_bound {
        output::note("some runs were client-bound: the curve measures the load generators as well as the target");
    }
}
