//! The example test cases in `testcases/` are documentation that must keep working: each one
//! runs end to end on the local cloud and leaves no instance running.

use e2e::{repo_root, Case};

/// How many instance descriptors a test case's directory still holds.
fn described(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("i-")
        })
        .count()
}

fn run_testcase(name: &str) -> e2e::Run {
    let c = Case::new();
    let script = repo_root().join("testcases").join(name).join("run.sh");
    let r = c.shell(&format!("'{}' '{}'", script.display(), c.path().display()));
    assert_eq!(
        r.code,
        0,
        "unexpected exit code\n{r}{}",
        e2e::cloud().diagnostics()
    );
    let left: Vec<String> = std::fs::read_dir(c.path())
        .unwrap()
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).into_iter().flatten())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("i-"))
        .collect();
    assert!(
        left.is_empty(),
        "{name} left descriptors behind: {left:?}\n{r}"
    );
    r
}

#[test]
fn tripcom_sample_runs_end_to_end() {
    let r = run_testcase("tripcom");
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.contains("kernel up on"))
            .count(),
        2,
        "{r}"
    );
}

#[test]
fn tour_of_every_tool_runs_end_to_end() {
    let r = run_testcase("tour");
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.ends_with(": request 2 ok"))
            .count(),
        3,
        "{r}"
    );
    r.stdout_has("exited 1 as documented");
    // Every tool took part: the job listed, results fetched, disks kept or fresh as promised.
    assert_eq!(r.stdout.matches(" load running\n").count(), 3, "{r}");
    r.stdout_has("      3 request 2 ok");
    r.stdout_has("config for #1");
    r.stdout_has("#3 kept its disk");
    r.stdout_has("#1 is fresh");
}

#[test]
fn master_slaves_tells_every_slave_the_master_address() {
    let r = run_testcase("master-slaves");
    let reports: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains("slave reporting to master at 127."))
        .collect();
    assert_eq!(reports.len(), 3, "{r}");
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.ends_with("master ready"))
            .count(),
        1,
        "{r}"
    );
}

#[test]
fn baked_image_launches_a_ready_made_fleet_and_killall_images_removes_it() {
    let c = Case::new();
    let script = repo_root().join("testcases/baked/run.sh");
    let bucket = format!("baked-{}", c.name().to_lowercase());
    c.python(&["mkbucket", &bucket]);
    let r = c.shell(&format!(
        "RESULTS=s3://{bucket}/baked/ '{}' '{}'",
        script.display(),
        c.path().display()
    ));
    assert_eq!(r.code, 0, "{r}");
    // The results went to S3 too: three archives, then the manifest.
    assert_eq!(
        r.stdout.matches(&format!(" s3://{bucket}/baked/")).count(),
        3,
        "{r}"
    );
    r.stderr_has("uploaded 3 archives");
    let ran: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("tool v1 on ip-127-"))
        .collect();
    assert_eq!(ran.len(), 3, "the tool came with the image: {r}");
    let ami = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("launched 3 from "))
        .expect("the AMI")
        .to_owned();
    let left = c.run("ec2-bake", &["--list"]);
    assert!(!left.stdout.contains(&ami), "killall --images: {left}");
    assert_eq!(described(&c.path().join("baked")), 0, "{r}");
}

#[test]
fn scalability_sweeps_n_clients_and_ends_in_the_usl_curve() {
    let c = Case::new();
    let script = repo_root().join("testcases/scalability/run.sh");
    let r = c.shell(&format!(
        "STEPS='1 2 4 8' REQUESTS=300 '{}' '{}'",
        script.display(),
        c.path().display()
    ));
    assert_eq!(r.code, 0, "{r}");
    let dir = c.path().join("scalability");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sweep/summary.json")).unwrap()).unwrap();
    let runs = s["runs"].as_array().unwrap();
    let ns: Vec<f64> = runs.iter().map(|r| r["n"].as_f64().unwrap()).collect();
    assert_eq!(
        ns,
        vec![1.0, 2.0, 4.0, 8.0],
        "N from each run's clients: {s:#}"
    );
    // Each step's report merged exactly its N clients' requests (the fleet grew, reused).
    for n in [1u64, 2, 4, 8] {
        let step: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("reports/n{n}/summary.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            step["fleet"]["requests"].as_u64(),
            Some(300 * n),
            "{step:#}"
        );
        assert_eq!(
            step["targets"].as_array().unwrap().len(),
            1,
            "the server: {step:#}"
        );
    }
    let u = &s["usl"];
    assert!(u["lambda"].as_f64().unwrap() > 0.0, "{s:#}");
    assert!(
        u["sigma"].as_f64().unwrap() >= 0.0 && u["kappa"].as_f64().unwrap() >= 0.0,
        "{s:#}"
    );
    r.stderr_has("USL: sigma");
    let page = std::fs::read_to_string(dir.join("sweep/index.html")).unwrap();
    assert!(
        page.contains(r#"data-series="USL fit""#) && page.contains(r#"data-series="measured""#)
    );
    assert_eq!(described(&dir), 0, "every instance terminated\n{r}");
}
