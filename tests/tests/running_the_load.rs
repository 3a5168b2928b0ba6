//! End-to-end tests of running the load test itself: output modes, large output, timeouts and
//! interruption, background jobs, file transfer, provisioning while booting, synchronized start.

use e2e::{eventually, Case, Run};
use serde_json::Value;
use std::time::{Duration, Instant};

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Shell that exits 7 on the host whose address is `addr` (sshd tells the remote its address).
fn fail_on(addr: &str) -> String {
    format!(r#"set -- $SSH_CONNECTION; [ "$3" != "{addr}" ] || exit 7"#)
}

#[test]
fn gather_prints_each_distinct_output_once_with_its_hosts() {
    let c = Case::new();
    let hosts = c.create(6);
    let odd = &hosts[4].1;
    let script = format!(
        r#"set -- $SSH_CONNECTION; if [ "$3" = "{odd}" ]; then echo different; else uname -s; echo same; fi"#
    );
    let r = c.run("ec2-exec-remote", &["--gather", &script]);
    r.assert_code(0);
    let blocks: Vec<&str> = r
        .stdout
        .split("---------------\n")
        .filter(|b| !b.is_empty())
        .collect();
    // header, body, header, body
    assert_eq!(blocks.len(), 4, "{r}");
    assert!(
        blocks[0].ends_with("(5)\n") && blocks[0].contains('['),
        "folded host set: {r}"
    );
    assert_eq!(blocks[1], "Linux\nsame\n");
    assert_eq!(blocks[2], format!("{odd} (1)\n"));
    assert_eq!(blocks[3], "different\n");
    r.stderr_has("ok 6/6");
}

#[test]
fn out_dir_json_and_failed_to_record_every_instance() {
    let c = Case::new();
    let hosts = c.create(3);
    let bad = &hosts[2];
    let out = c.path().join("out");
    let failed = c.path().join("failed.txt");
    let script = format!("echo out-$$; echo err >&2; {}", fail_on(&bad.1));
    let r = c.run(
        "ec2-exec-remote",
        &[
            "--out-dir",
            out.to_str().unwrap(),
            "--failed-to",
            failed.to_str().unwrap(),
            "--json",
            &script,
        ],
    );
    r.assert_code(1);
    for (i, (id, _)) in hosts.iter().enumerate() {
        let base = out.join(format!("{}-{id}", i + 1));
        let so = std::fs::read_to_string(base.with_extension("stdout")).unwrap();
        assert!(so.starts_with("out-") && so.ends_with('\n'), "{so:?}");
        assert_eq!(
            std::fs::read_to_string(base.with_extension("stderr")).unwrap(),
            "err\n"
        );
        let exit = std::fs::read_to_string(base.with_extension("exit")).unwrap();
        assert_eq!(exit.trim(), if id == &bad.0 { "7" } else { "0" });
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["ok"], 2);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["hosts"].as_array().unwrap().len(), 3);
    let objs = json_lines(&r.stdout);
    assert_eq!(objs.len(), 3, "{r}");
    for o in &objs {
        for k in [
            "id",
            "index",
            "address",
            "exit",
            "error",
            "duration_s",
            "stdout_path",
            "stderr_path",
        ] {
            assert!(o.get(k).is_some(), "{k} missing in {o}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        format!("{}\n", bad.0)
    );
    assert!(
        r.stderr
            .contains(&format!("ok 2/3, failed 1 ({} {}: exit 7)", bad.0, bad.1)),
        "{r}"
    );

    // --from the failed list reruns only them; --json without --out-dir carries the output.
    let r = c.run(
        "ec2-exec-remote",
        &["--from", failed.to_str().unwrap(), "--json", "echo again"],
    );
    r.assert_code(0);
    let objs = json_lines(&r.stdout);
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["id"], bad.0.as_str());
    assert_eq!(objs[0]["stdout"], "again\n");
    assert_eq!(objs[0]["exit"], 0);
}

#[test]
fn ten_mib_on_each_stream_from_twenty_hosts_arrives_complete() {
    let c = Case::new();
    let hosts = c.create(20);
    let out = c.path().join("big");
    let mib10 = 10 * 1024 * 1024;
    let script = format!(
        "yes 0123456789abcdef | head -c {mib10} & yes fedcba9876543210 | head -c {mib10} >&2; wait"
    );
    let r = c.run(
        "ec2-exec-remote",
        &[
            "--out-dir",
            out.to_str().unwrap(),
            "--fanout",
            "20",
            &script,
        ],
    );
    r.assert_code(0);
    for (i, (id, _)) in hosts.iter().enumerate() {
        let base = out.join(format!("{}-{id}", i + 1));
        for ext in ["stdout", "stderr"] {
            let len = std::fs::metadata(base.with_extension(ext)).unwrap().len();
            assert_eq!(len, mib10 as u64, "{id} {ext}");
        }
    }
    // The same through the default prefixed mode: every line whole.
    let r = c.run(
        "ec2-exec-remote",
        &[
            "--select",
            "1-4",
            &format!("yes 0123456789abcdef | head -c {}", 2 * 1024 * 1024),
        ],
    );
    r.assert_code(0);
    let lines = r
        .stdout
        .lines()
        .filter(|l| l.ends_with(": 0123456789abcdef"))
        .count();
    assert_eq!(lines, 4 * (2 * 1024 * 1024 / 17), "{}", &r.stderr);
}

#[test]
fn timeout_kills_the_remote_process_group_not_just_the_channel() {
    let c = Case::new();
    c.create(2);
    let marker = format!("ec2-tools-marker-{}", c.name());
    // A child that would leave a mark after 3 s, and a long sleep: both must die at --command-timeout.
    let script = format!("(sleep 3; touch ~/{marker}-$$) & sleep 60");
    let r = c.run("ec2-exec-remote", &["-u", "1s", &script]);
    r.assert_code(1);
    r.within(Duration::from_secs(10));
    assert_eq!(
        r.stderr
            .matches("timed out after 1s (remote process group killed)")
            .count(),
        2,
        "{r}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let check = c.run(
        "ec2-exec-remote",
        &["--select", "1", &format!("ls ~ | grep -c {marker} || true")],
    );
    assert!(
        check.stdout.trim().ends_with(": 0"),
        "the remote child survived the timeout: {check}"
    );
}

#[test]
fn ctrl_c_kills_started_remote_groups_prints_the_summary_and_exits_130() {
    let c = Case::new();
    c.create(2);
    let tag = format!("98{}.5", std::process::id());
    let child = c
        .tool("ec2-exec-remote")
        .arg(&format!("sleep {tag}"))
        .spawn();
    // Each machine has its own process table: the count is summed over both.
    let running = || {
        let r = c.run(
            "ec2-exec-remote",
            &[&format!("pgrep -a -x sleep | grep -c -F '{tag}'")],
        );
        r.stdout
            .lines()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u32>().ok())
            .sum::<u32>()
    };
    assert!(
        eventually(Duration::from_secs(10), || running() == 2),
        "the remote sleeps did not start"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let r = Run::new(out, started.elapsed());
    r.assert_code(130);
    r.within(Duration::from_secs(10));
    r.stderr_has("ok 0/2").stderr_has("interrupted");
    assert!(
        eventually(Duration::from_secs(5), || running() == 0),
        "remote commands left running"
    );
}

#[test]
fn a_jobs_follow_ups_find_the_hosts_it_started_on_without_the_selection_again() {
    let c = Case::new();
    c.run("ec2-create", &["1", "--role", "server"]).succeeds();
    c.run("ec2-create", &["2", "--role", "client"]).succeeds();
    let job = format!("srv-{}", c.name().replace('_', "-"));
    c.run(
        "ec2-exec-remote",
        &["--role", "server", "-bg", "--job", &job, "sleep 1; exit 3"],
    )
    .succeeds();
    // Before: the clients were asked too, and failed with "no job … on this host".
    let r = c.run("ec2-exec-remote", &["--job", &job, "--status"]);
    r.succeeds();
    assert_eq!(r.stdout.lines().count(), 1, "the server only: {r}");
    let r = c.run("ec2-exec-remote", &["--job", &job, "--wait"]);
    r.assert_code(1).stderr_has("ok 0/1").stderr_lacks("no job");
    // An explicit selection wins: a client has no such job.
    let r = c.run(
        "ec2-exec-remote",
        &["--role", "client", "--job", &job, "--status"],
    );
    r.assert_code(1).stderr_has("no job");
    // Once its hosts are gone, a follow-up says so instead of asking no one.
    c.run("ec2-killall", &["--role", "server"]).succeeds();
    let r = c.run("ec2-exec-remote", &["--job", &job, "--status"]);
    r.assert_code(2).stderr_has("no longer in the case");
    c.run("ec2-killall", &[]).succeeds();
}

#[test]
fn background_jobs_can_be_watched_waited_for_and_stopped() {
    let c = Case::new();
    let hosts = c.create(2);
    let job = format!("load-{}", c.name().replace('_', "-"));
    let r = c.run("ec2-exec-remote", &["-bg", "--job", &job, "sleep 30"]);
    r.assert_code(0);
    r.stderr_has(&format!("job {job} started"));
    let r = c.run("ec2-exec-remote", &["--job", &job, "--status"]);
    r.assert_code(0);
    assert_eq!(
        r.stdout.lines().filter(|l| l.ends_with(" running")).count(),
        2,
        "{r}"
    );
    let r = c.run("ec2-exec-remote", &["--job", &job, "--stop"]);
    r.assert_code(0);
    assert_eq!(
        r.stdout.lines().filter(|l| l.ends_with(" stopped")).count(),
        2,
        "{r}"
    );
    // A stopped job says so (it said `died`, as if it had crashed).
    let r = c.run("ec2-exec-remote", &["--job", &job, "--status"]);
    assert_eq!(
        r.stdout.lines().filter(|l| l.ends_with(" stopped")).count(),
        2,
        "{r}"
    );
    // The same name cannot start twice on a host.
    c.run("ec2-exec-remote", &["-bg", "--job", &job, "true"])
        .assert_code(1);

    let job2 = format!("{job}-2");
    let cmd = format!("echo hello; sleep 1; {}", fail_on(&hosts[0].1));
    c.run("ec2-exec-remote", &["--bg", "--job", &job2, &cmd])
        .assert_code(0);
    let r = c.run("ec2-exec-remote", &["--job", &job2, "--wait"]);
    r.assert_code(1);
    assert_eq!(
        r.stdout.lines().filter(|l| l.ends_with(": hello")).count(),
        2,
        "log tails: {r}"
    );
    assert!(
        r.stderr
            .contains(&format!("{} {}: exit 7", hosts[0].0, hosts[0].1)),
        "{r}"
    );
    let r = c.run("ec2-exec-remote", &["--job", &job2, "--status"]);
    r.stdout_has("exited 7").stdout_has("exited 0");
    c.run("ec2-exec-remote", &["--job", "nosuchjob", "--status"])
        .assert_code(1);
}

#[test]
fn get_never_copies_a_remote_setuid_or_setgid_bit() {
    use std::os::unix::fs::PermissionsExt;
    let c = Case::new();
    let hosts = c.create(1);
    let remote = format!("suid-{}", c.name());
    c.run(
        "ec2-exec-remote",
        &[&format!(
            "echo x > {remote} && chmod 6755 {remote} && ls -l {remote}"
        )],
    )
    .assert_code(0);
    let local = c.path().join("fetched");
    c.run("ec2-get", &[&remote, local.to_str().unwrap()])
        .assert_code(0);
    let got = local.join(format!("1-{}", hosts[0].0)).join(&remote);
    let mode = std::fs::metadata(&got).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "{}", got.display());
    c.run("ec2-exec-remote", &[&format!("rm -f {remote}")]);
}

#[test]
fn put_and_get_copy_files_and_directories_with_their_modes() {
    use std::os::unix::fs::PermissionsExt;
    let c = Case::new();
    let hosts = c.create(2);
    let src = c.path().join("bundle");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("run.sh"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("sub/data.bin"), &big).unwrap();
    let remote = format!("put-{}", c.name());
    let r = c.run("ec2-put", &[src.to_str().unwrap(), &format!("~/{remote}")]);
    r.assert_code(0);
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.ends_with("2 files 3000019 bytes"))
            .count(),
        2,
        "{r}"
    );
    let r = c.run("ec2-exec-remote", &[&format!("{remote}/bundle/run.sh")]);
    assert_eq!(
        r.stdout.lines().filter(|l| l.ends_with(": ran")).count(),
        2,
        "mode kept: {r}"
    );

    let local = c.path().join("fetched");
    let r = c.run(
        "ec2-get",
        &[&format!("{remote}/bundle"), local.to_str().unwrap()],
    );
    r.assert_code(0);
    for (i, (id, _)) in hosts.iter().enumerate() {
        let got = local.join(format!("{}-{id}", i + 1)).join("bundle");
        assert_eq!(std::fs::read(got.join("sub/data.bin")).unwrap(), big);
        let mode = std::fs::metadata(got.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o750);
    }
    c.run("ec2-put", &["/nonexistent/file", "x"]).assert_code(2);
    c.run("ec2-get", &["no/such/remote/file", local.to_str().unwrap()])
        .assert_code(1);
    c.run(
        "ec2-exec-remote",
        &["--select", "1", &format!("rm -rf {remote}")],
    )
    .assert_code(0);
}

#[test]
fn setup_runs_on_each_instance_as_it_becomes_ready_and_min_ready_drops_failures() {
    let c = Case::new();
    let script = c.path().join("setup.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nset -- $SSH_CONNECTION\necho \"provisioned $3\"\n",
    )
    .unwrap();
    let r = c.run("ec2-create", &["3", "--setup", script.to_str().unwrap()]);
    r.assert_code(0);
    let ids: Vec<(String, String)> = r
        .stdout
        .lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.into(), b.into())
        })
        .collect();
    assert_eq!(ids.len(), 3, "stdout stays the instance list: {r}");
    for (_, addr) in &ids {
        r.stderr_has(&format!("{addr}: provisioned {addr}"));
    }

    // One instance's setup fails (the first to take the lock, in /var/tmp: a directory the
    // local cloud's machines share — each has its own home and /tmp): with --min-ready 2 the
    // create succeeds, and --drop-failed terminates the failed one.
    let d = Case::new();
    let lock = format!("ec2-tools-lock-{}", d.name());
    let failing = d.path().join("setup.sh");
    std::fs::write(&failing, format!("#!/bin/sh\nif mkdir /var/tmp/{lock} 2>/dev/null; then echo broken >&2; exit 5; fi\necho fine\n")).unwrap();
    let r = d.run(
        "ec2-create",
        &[
            "3",
            "--setup",
            failing.to_str().unwrap(),
            "--min-ready",
            "2",
            "--drop-failed",
        ],
    );
    r.assert_code(0);
    assert_eq!(r.stdout.lines().count(), 2, "{r}");
    r.stderr_has("setup exited 5")
        .stderr_has("--drop-failed: terminated");
    // Regression: the summary said "descriptors kept" of the instance it had just terminated.
    r.stderr_lacks("descriptors kept")
        .stderr_has("terminated by --drop-failed");
    assert_eq!(d.descriptors().len(), 2);
    assert_eq!(d.live_instances().len(), 2);
    d.run(
        "ec2-exec-remote",
        &["--select", "1", &format!("rmdir /var/tmp/{lock}")],
    );

    // Without --min-ready a failed setup fails the create (exit 1), descriptors kept.
    let e = Case::new();
    let lock = format!("ec2-tools-lock-{}", e.name());
    std::fs::write(
        &failing,
        format!("#!/bin/sh\nif mkdir /var/tmp/{lock} 2>/dev/null; then exit 5; fi\n"),
    )
    .unwrap();
    let r = e.run("ec2-create", &["2", "--setup", failing.to_str().unwrap()]);
    r.assert_code(1);
    assert_eq!(e.descriptors().len(), 2);
    e.run(
        "ec2-exec-remote",
        &["--select", "1", &format!("rmdir /var/tmp/{lock}")],
    );
}

#[test]
fn at_starts_every_host_at_the_same_instant_and_refuses_skewed_clocks() {
    let c = Case::new();
    c.create(4);
    let asked = std::time::SystemTime::now();
    let r = c.run("ec2-exec-remote", &["--at", "+3s", "date +%s.%N"]);
    r.assert_code(0);
    r.stderr_has("clock offsets");
    let starts: Vec<f64> = r
        .stdout
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 4);
    let (min, max) = starts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let asked = asked
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(min >= asked + 2.5, "started early: {min} vs asked {asked}");
    assert!(max - min < 0.5, "spread {:.3}s: {r}", max - min);

    let r = c.run(
        "ec2-exec-remote",
        &["--at", "+5s", "--max-skew", "0s", "true"],
    );
    r.assert_code(3);
    r.stderr_has("off by more than --max-skew");
    c.run("ec2-exec-remote", &["--at", "nonsense", "true"])
        .assert_code(2);
}

#[test]
fn exec_local_shares_the_output_modes() {
    let c = Case::new();
    let hosts = c.create(3);
    let r = c.run("ec2-exec-local", &["--gather", "echo same"]);
    r.assert_code(0);
    r.stdout_has("(3)\n---------------\nsame\n");
    let failed = c.path().join("failed-local.txt");
    let r = c.run(
        "ec2-exec-local",
        &[
            "--json",
            "--failed-to",
            failed.to_str().unwrap(),
            "echo \"#$CURRENT_AMI_INDEX\"; [ $CURRENT_AMI_INDEX != 2 ]",
        ],
    );
    r.assert_code(1);
    let objs = json_lines(&r.stdout);
    assert_eq!(objs.len(), 3);
    let second = objs.iter().find(|o| o["index"] == 2).unwrap();
    assert_eq!(second["exit"], 1);
    assert_eq!(second["stdout"], "#2\n");
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        format!("{}\n", hosts[1].0)
    );
}
