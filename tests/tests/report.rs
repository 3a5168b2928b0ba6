//! ec2-report end to end: on files written by hand (truth known), on a fleet of the local
//! cloud with the sampler running (a client made CPU-bound on purpose, an idle one), from S3,
//! and its page loaded in a real browser (Debian's chromium, installed by `make test`).

use e2e::{repo_root, Case};
use serde_json::Value;
use std::path::Path;

fn summary(dir: &Path) -> Value {
    let p = dir.join("summary.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// Every file under `dir` with its bytes, to prove nothing in an input changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn summary_only_hosts_are_shown_but_never_merged_and_broken_files_are_named() {
    let c = Case::new();
    let input = c.path().join("out");
    let host = |name: &str| {
        let d = input.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    // Two lossless hosts: 1000 requests at 1 ms and 1000 at 3 ms (and #4's one good line at
    // 12 µs); the fleet's p50 is 1 ms and its p99 3 ms, exactly (no average of percentiles
    // could give both).
    let mut a = String::from("unix_ms,latency_us,ok\n");
    let mut b = String::from("unix_ms,latency_us\n");
    for i in 0..1000u64 {
        a.push_str(&format!("{},1000,1\n", 1_764_582_643_000 + i * 2));
        b.push_str(&format!("{},3000\n", 1_764_582_643_000 + i * 2));
    }
    std::fs::write(host("1-i-aaa").join("lat.csv"), a).unwrap();
    std::fs::write(host("2-i-bbb").join("lat.csv"), b).unwrap();
    std::fs::write(
        host("3-i-ccc").join("ab.txt"),
        "This is ApacheBench, Version 2.3\nComplete requests:      5000\nFailed requests:        0\nRequests per second:    2500.00 [#/sec] (mean)\nPercentage of the requests served within a certain time (ms)\n  50%      9\n  99%     40\n 100%     90 (longest request)\n",
    )
    .unwrap();
    std::fs::write(
        host("4-i-ddd").join("broken.csv"),
        "unix_ms,latency_us\n1764582643000,12\n1764582643001,oops\n",
    )
    .unwrap();
    let before = snapshot(&input);
    let r = c.run("ec2-report", &["-o", "rep", "out"]);
    r.assert_code(1); // the broken file
    assert!(
        r.stderr.contains(
            "broken.csv: plain-csv: 1 line skipped (the rest counted); line 3: latency_us"
        ),
        "{r}"
    );
    r.stderr_has("#3: not merged: ab-text is summary-only");
    assert_eq!(snapshot(&input), before, "nothing in the input changed");
    let s = summary(&c.path().join("rep"));
    let f = &s["fleet"];
    assert_eq!(
        (f["requests"].as_u64(), f["hosts_merged"].as_u64()),
        (Some(2001), Some(3)),
        "{s:#}"
    );
    assert_eq!(f["latency_ms"]["p50"].as_f64(), Some(1.0));
    assert!(
        (f["latency_ms"]["p99"].as_f64().unwrap() - 3.0).abs() < 0.005,
        "{s:#}"
    );
    let h3 = &s["hosts"][2];
    assert_eq!(
        (h3["grade"].as_str(), h3["requests"].as_u64()),
        (Some("summary-only"), Some(5000))
    );
    assert_eq!(h3["latency_ms"]["p99"].as_f64(), Some(40.0));
    // The table: the fleet first, each figure beside its grade.
    let fleet_line = r.stdout.lines().nth(1).unwrap();
    assert!(
        fleet_line.starts_with("fleet (3 merged)") && fleet_line.contains("lossless"),
        "{r}"
    );
    for f in ["index.html", "timeline.csv", "hosts.csv", "latency.hlog"] {
        assert!(c.path().join("rep").join(f).exists(), "{f}");
    }
    // The merged interval log is itself an input ec2-report reads, with the same figures.
    std::fs::create_dir_all(c.path().join("again/1-i-merged")).unwrap();
    std::fs::copy(
        c.path().join("rep/latency.hlog"),
        c.path().join("again/1-i-merged/latency.hlog"),
    )
    .unwrap();
    let r = c.run("ec2-report", &["-o", "rep2", "--json", "again"]);
    r.assert_code(0);
    let s2: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(s2["fleet"]["requests"].as_u64(), Some(2001));
    assert_eq!(
        s2["fleet"]["latency_ms"]["p50"],
        s["fleet"]["latency_ms"]["p50"]
    );
    assert_eq!(s2["hosts"][0]["format"].as_str(), Some("hdr-log"));
    // Markdown for a wiki page.
    let r = c.run("ec2-report", &["-o", "rep3", "--markdown", "out"]);
    assert!(
        r.stdout.lines().nth(1).unwrap().starts_with("| --- |"),
        "{r}"
    );
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let c = Case::new();
    std::fs::create_dir_all(c.path().join("empty")).unwrap();
    let r = c.run("ec2-report", &["empty"]);
    r.assert_code(2);
    r.stderr_has("empty: no <index>-<id>/ directories");
    let r = c.run("ec2-report", &["missing"]);
    r.assert_code(2);
    std::fs::create_dir_all(c.path().join("out/1-i-a")).unwrap();
    let r = c.run("ec2-report", &["-o", "out/report", "out"]);
    r.assert_code(2);
    r.stderr_has("inside the input");
    assert!(!c.path().join("out/report").exists());
    let r = c.run("ec2-report", &["--interval", "0s", "out"]);
    r.assert_code(2);
    let r = c.run("ec2-report", &["--sweep", "--n", "1,2", "out"]);
    r.assert_code(2);
    r.stderr_has("--n gives 2 labels for 1 runs");
}

/// On the local cloud, with the sampler: a home-made generator pinned at one core is named
/// client-bound; an idle one beside it is not. All instances share this machine's kernel
/// here, so machine-wide CPU cannot judge them (the report says so) and the verdict rests on
/// each job's own process tree, which is per instance.
#[test]
fn a_cpu_bound_client_is_named_client_bound_and_an_idle_one_is_not() {
    let c = Case::new();
    c.create(2);
    let generator = r#"end=$(($(date +%s) + 5))
if [ "$CURRENT_AMI_INDEX" = 1 ]; then
  while [ "$(date +%s)" -lt "$end" ]; do i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo "$(date +%s%3N),1500,1"; done > lat.csv
else
  while [ "$(date +%s)" -lt "$end" ]; do echo "$(date +%s%3N),800,1"; sleep 0.2; done > lat.csv
fi"#;
    let r = c.run(
        "ec2-exec-remote",
        &["--at", "+2s", "--sample=0.5s", generator],
    );
    r.assert_code(0);
    // The offsets --at measured are kept in the case for the report.
    let clocks: Value =
        serde_json::from_slice(&std::fs::read(c.path().join(".ec2-tools/clocks.json")).unwrap())
            .unwrap();
    assert_eq!(clocks.as_object().unwrap().len(), 2, "{clocks}");
    c.run("ec2-get", &["lat.csv", "out"]).assert_code(0);
    let samples = std::fs::read_dir(c.path().join("out"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("ec2-samples").is_dir())
        .count();
    assert_eq!(samples, 2, "ec2-get brought each host's samples home");
    let r = c.run("ec2-report", &["--strict", "-o", "rep", "out"]);
    r.assert_code(1);
    let s = summary(&c.path().join("rep"));
    assert_eq!(s["shared_kernel"], Value::Bool(true), "{s:#}");
    let (busy, idle) = (&s["hosts"][0], &s["hosts"][1]);
    assert!(busy["client_bound_s"].as_f64().unwrap() >= 1.0, "{s:#}");
    assert_eq!(idle["client_bound_s"].as_f64(), Some(0.0), "{s:#}");
    assert!(
        busy["client_bound"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b[1] == "job"),
        "{s:#}"
    );
    r.stderr_has(&format!(
        "#1 {}: client-bound",
        busy["id"].as_str().unwrap()
    ));
    assert!(s["fleet"]["client_bound_s"].as_f64().unwrap() >= 1.0);
    let w = &s["fleet"]["without_client_bound"];
    assert!(
        w["requests"].as_u64().unwrap() < s["fleet"]["requests"].as_u64().unwrap(),
        "{s:#}"
    );
    // Without --strict the same run is a success that says what it found.
    c.run("ec2-report", &["-o", "rep", "out"]).assert_code(0);
    c.run("ec2-killall", &[]).assert_code(0);
}

/// What ec2-get uploaded to S3 (manifest first) is a report's input as a directory is.
#[test]
fn a_report_reads_what_ec2_get_uploaded_to_s3() {
    let c = Case::new();
    c.create(2);
    let bucket = format!("report-{}", c.name().to_lowercase());
    c.python(&["mkbucket", &bucket]);
    c.run(
        "ec2-exec-remote",
        &["for i in $(seq 1 200); do echo \"$(date +%s%3N),$((CURRENT_AMI_INDEX * 1000)),1\"; done > lat.csv"],
    )
    .assert_code(0);
    c.run("ec2-get", &["lat.csv", &format!("s3://{bucket}/run1/")])
        .assert_code(0);
    let r = c.run(
        "ec2-report",
        &["--json", "-o", "rep", &format!("s3://{bucket}/run1/")],
    );
    r.assert_code(0);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(s["fleet"]["requests"].as_u64(), Some(400), "{s:#}");
    assert_eq!(s["fleet"]["latency_ms"]["max"].as_f64(), Some(2.0));
    let r = c.run(
        "ec2-report",
        &["-o", "rep", &format!("s3://{bucket}/nothing/")],
    );
    r.assert_code(2);
    r.stderr_has("no such object");
    c.run("ec2-killall", &[]).assert_code(0);
}

/// Load `page` in headless Chromium: the DOM after load, and the browser's own log.
fn chromium(page: &Path, screenshot: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let url = format!("file://{}", page.display());
    let run = |extra: &[String]| {
        let out = std::process::Command::new("chromium")
            .args(args)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium (installed by make test: scripts/localcloud install --browser)");
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (dom, log) = run(&["--dump-dom".into()]);
    run(&[
        "--window-size=1000,4200".into(),
        format!("--screenshot={}", screenshot.display()),
    ]);
    (dom, log)
}

#[test]
fn http_load_ends_in_a_merged_graded_report_that_renders_in_a_real_browser() {
    let c = Case::new();
    let script = repo_root().join("testcases/http-load/run.sh");
    let r = c.shell(&format!(
        "CLIENTS=3 REQUESTS=500 '{}' '{}'",
        script.display(),
        c.path().display()
    ));
    assert_eq!(r.code, 0, "{r}");
    let dir = c.path().join("http-load");
    let s = summary(&dir.join("report"));
    let f = &s["fleet"];
    assert_eq!(
        (
            f["requests"].as_u64(),
            f["errors"].as_u64(),
            f["hosts_merged"].as_u64()
        ),
        (Some(1500), Some(0), Some(3)),
        "{s:#}"
    );
    let l = &f["latency_ms"];
    let q = |k: &str| l[k].as_f64().unwrap();
    assert!(
        q("p50") > 0.0
            && q("p50") <= q("p90")
            && q("p90") <= q("p99")
            && q("p99") <= q("p999")
            && q("p999") <= q("max"),
        "{s:#}"
    );
    let clients: Vec<&Value> = s["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["role"] == "client")
        .collect();
    assert_eq!(clients.len(), 3);
    for h in &clients {
        assert_eq!(
            (
                h["format"].as_str(),
                h["grade"].as_str(),
                h["requests"].as_u64()
            ),
            (Some("ab-gnuplot"), Some("lossless"), Some(500)),
            "{s:#}"
        );
    }
    // The server was sampled and produced no results: the target, charted beside the clients.
    assert_eq!(s["targets"].as_array().unwrap().len(), 1, "{s:#}");
    let timeline = std::fs::read_to_string(dir.join("report/timeline.csv")).unwrap();
    assert_eq!(
        timeline
            .lines()
            .next()
            .unwrap()
            .matches(",job_cpu_")
            .count(),
        3,
        "{timeline}"
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with("fleet (3 merged)")),
        "{r}"
    );
    // The page in a real browser: every chart drew its series, and nothing was fetched.
    let artifacts = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("http-load-report.png");
    let (dom, log) = chromium(&dir.join("report/index.html"), &shot);
    for series in [
        r#"id="throughput""#,
        r#"data-series="fleet req/s""#,
        r#"data-series="p50""#,
        r#"data-series="p99""#,
        r#"data-series="max""#,
        r#"id="spectrum""#,
        r#"id="per-host""#,
        r#"class="bar""#,
        r#"id="client-job-cpu""#,
        r#"id="target-cpu""#,
        r#"id="target-net""#,
    ] {
        assert!(dom.contains(series), "{series} missing from the page's DOM");
    }
    assert_eq!(dom.matches(r#"class="bar""#).count(), 3);
    for bad in [
        "CONSOLE",
        "Uncaught",
        "Failed to load resource",
        "net::ERR_",
    ] {
        assert!(!log.contains(bad), "the browser said {bad}: {log}");
    }
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "a real screenshot"
    );
}
