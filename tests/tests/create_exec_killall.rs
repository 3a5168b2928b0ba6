//! End-to-end tests of the four spine tools on the local cloud (moto_server + real sshd).
//! Each test has its own test-case directory and case name; names say what they guard.

use e2e::{eventually, Case};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

/// A loopback port with nothing listening: SSH there is refused.
fn dead_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
}

fn lines_with_prefix<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn create_prints_id_and_address_in_index_order_and_writes_contract_descriptors() {
    let c = Case::new();
    let lines = c.create(3);
    let ds = c.descriptors();
    assert_eq!(ds.len(), 3);
    for (i, (id, addr)) in lines.iter().enumerate() {
        let d = &ds[id];
        assert_eq!(d["index"], (i + 1) as u64, "{d}");
        assert_eq!(d["id"], id.as_str());
        assert_eq!(d["address"], addr.as_str());
        assert!(addr.starts_with(&c.vpc_prefix()), "{addr}");
        assert_eq!(d["state"], "running");
        assert_eq!(d["case"], c.name());
        assert_eq!(d["ssh"]["user"], c.env["EC2_TOOLS_SSH_USER"].as_str());
        assert_eq!(d["ssh"]["port"].to_string(), c.env["EC2_TOOLS_SSH_PORT"]);
        assert!(d["ssh"]["host_key"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:"));
        for key in [
            "region",
            "az",
            "type",
            "ami",
            "public_dns",
            "public_ip",
            "private_ip",
            "private_dns",
            "launched_at",
        ] {
            assert!(d.get(key).is_some(), "descriptor lacks {key}: {d}");
        }
        let file = std::fs::read_to_string(c.path().join(id)).unwrap();
        assert!(file.ends_with("}\n") && file.lines().count() == 1);
    }
    // Tags in the emulator, read independently (boto3).
    let inst = c.emulator_instances();
    assert_eq!(inst.len(), 3);
    for i in &inst {
        let id = i["id"].as_str().unwrap();
        let index = ds[id]["index"].as_u64().unwrap();
        assert_eq!(i["tags"]["Name"], format!("{}.{index}", c.name()));
        assert_eq!(i["tags"]["ec2-tools:case"], c.name());
        assert!(i["tags"]["ec2-tools:owner"].as_str().unwrap().contains('@'));
    }
}

#[test]
fn descriptors_exist_before_the_wait_ends_and_ctrl_c_exits_130_keeping_them() {
    let c = Case::new();
    let child = c
        .tool("ec2-create")
        .args(&["2", "--timeout", "120"])
        .env("EC2_TOOLS_SSH_PORT", &dead_port())
        .spawn();
    assert!(
        eventually(Duration::from_secs(30), || c.descriptors().len() == 2),
        "no descriptors while waiting"
    );
    let mut child = child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "ec2-create should still be waiting for SSH"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let r = e2e::Run::new(out, Duration::ZERO);
    r.assert_code(130);
    r.stderr_has("ec2-killall");
    assert_eq!(c.descriptors().len(), 2);
    assert_eq!(c.live_instances().len(), 2);
}

#[test]
fn create_timeout_exits_3_naming_the_laggards_and_keeps_descriptors() {
    let c = Case::new();
    // Nothing listens on the port, and the case's group opens it (else it would time out
    // in the group, as on AWS, rather than be refused).
    let dead = dead_port();
    let r = {
        let started = std::time::Instant::now();
        let out = c
            .cmd("ec2-create")
            .args(["2", "--timeout", "2", "--open", &dead])
            .env("EC2_TOOLS_SSH_PORT", &dead)
            .output()
            .unwrap();
        e2e::Run::new(out, started.elapsed())
    };
    r.assert_code(3);
    r.stderr_has("timed out");
    let ds = c.descriptors();
    assert_eq!(ds.len(), 2);
    for id in ds.keys() {
        assert!(
            r.stderr.contains(id.as_str()),
            "laggard {id} not named\n{r}"
        );
    }
    assert!(
        r.stderr.contains("refused"),
        "the last SSH error is reported\n{r}"
    );
    assert!(r.stdout.is_empty(), "{r}");
}

#[test]
fn create_rejects_bad_counts_with_exit_2_and_launches_nothing() {
    let c = Case::new();
    for n in ["abc", "0", "-3", "1.5"] {
        let r = c.run("ec2-create", &[n]);
        r.assert_code(2);
    }
    assert!(c.descriptors().is_empty());
    assert!(c.emulator_instances().is_empty());
}

#[test]
fn remote_exit_codes_propagate_and_streams_stay_apart() {
    let c = Case::new();
    let hosts = c.create(3);
    let bad = &hosts[1].1;
    let script = format!(
        r#"echo "out"; echo "err" >&2; set -- $SSH_CONNECTION; [ "$3" != "{bad}" ] || exit 7"#
    );
    let r = c.run("ec2-exec-remote", &[&script]);
    r.assert_code(1);
    for (_, addr) in &hosts {
        assert_eq!(
            lines_with_prefix(&r.stdout, &format!("{addr}: ")),
            vec![format!("{addr}: out")]
        );
        assert_eq!(
            lines_with_prefix(&r.stderr, &format!("{addr}: ")),
            vec![format!("{addr}: err")]
        );
    }
    r.stderr_has(&format!("{} {bad}: exit 7", hosts[1].0));
    r.stderr_has("ok 2/3");
    c.run("ec2-exec-remote", &["true"]).assert_code(0);
}

#[test]
fn a_host_that_refuses_ssh_fails_alone() {
    let c = Case::new();
    // A port nothing listens on that the case's group opens: refused, as a stopped sshd is.
    let dead = dead_port();
    let hosts = c.create_with(3, &["--open", &dead]);
    let port: u64 = dead.parse().unwrap();
    c.edit(&hosts[1].0, |d| d["ssh"]["port"] = Value::from(port));
    // The descriptor decides the port when neither flag nor environment does.
    let r = c.run_without("ec2-exec-remote", &["echo alive"], &["EC2_TOOLS_SSH_PORT"]);
    r.assert_code(1);
    let mut expected = vec![
        format!("{}: alive", hosts[0].1),
        format!("{}: alive", hosts[2].1),
    ];
    expected.sort();
    let mut got: Vec<&str> = r.stdout.lines().collect();
    got.sort();
    assert_eq!(got, expected, "{r}");
    r.stderr_has(&hosts[1].0).stderr_has("refused");
}

#[test]
fn bg_returns_before_a_3_second_job_ends_and_the_job_completes() {
    let c = Case::new();
    let hosts = c.create(2);
    // TripCom's spelling: -bg after the command.
    let r = c.run("ec2-exec-remote", &["sleep 3; echo finished", "-bg"]);
    r.assert_code(0);
    assert!(
        r.elapsed < Duration::from_secs(3),
        "-bg waited for the job: {r}"
    );
    let started: Vec<Vec<&str>> = r.stdout.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(started.len(), 2, "{r}");
    for (i, (id, _)) in hosts.iter().enumerate() {
        // Each instance is its own machine: its job's files are on it.
        let index = (i + 1).to_string();
        let line = started
            .iter()
            .find(|f| f[0] == id)
            .unwrap_or_else(|| panic!("{id} not started: {r}"));
        let log = line[2];
        assert!(log.ends_with(".log"));
        let exit_file = log.replace(".log", ".exit");
        let check = format!("cat {log} {exit_file}");
        let done = eventually(Duration::from_secs(20), || {
            let r = c.run("ec2-exec-remote", &["--select", &index, &check]);
            r.code == 0 && r.stdout.contains("finished")
        });
        assert!(done, "the background job on {id} did not complete");
        let r = c.run("ec2-exec-remote", &["--select", &index, &check]);
        assert!(
            r.stdout.lines().any(|l| l.ends_with(": 0")),
            "job exit code recorded: {r}"
        );
    }
}

#[test]
fn from_stdin_runs_only_the_listed_instances_even_in_a_pipeline() {
    let c = Case::new();
    let hosts = c.create(3);
    let mut child = c
        .cmd("ec2-exec-remote")
        .args(["--from", "-", "echo hi"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let listed = format!(
        "{} {}\n{} {}\n",
        hosts[0].0, hosts[0].1, hosts[2].0, hosts[2].1
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(listed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    got.sort();
    let mut want = vec![format!("{}: hi", hosts[0].1), format!("{}: hi", hosts[2].1)];
    want.sort();
    assert_eq!(got, want);

    // The real pipeline: the reader must wait for the producer to finish its descriptors.
    let p = Case::new();
    let r = p.shell("ec2-create 2 | ec2-exec-remote --from - 'echo piped'");
    r.assert_code(0);
    assert_eq!(
        r.stdout.lines().filter(|l| l.ends_with(": piped")).count(),
        2,
        "{r}"
    );
}

#[test]
fn malformed_descriptor_is_exit_2_naming_the_file_and_nothing_is_deleted() {
    let c = Case::new();
    let hosts = c.create(1);
    std::fs::write(c.path().join("i-0123abcd"), "{broken").unwrap();
    for (tool, args) in [
        ("ec2-exec-remote", vec!["true"]),
        ("ec2-exec-local", vec!["true"]),
        ("ec2-killall", vec![]),
        ("ec2-create", vec!["1"]),
    ] {
        let r = c.run(tool, &args);
        r.assert_code(2);
        assert!(
            r.stderr
                .starts_with(&format!("{tool}: i-0123abcd: descriptor is not valid JSON")),
            "{tool}: {r}"
        );
        assert_eq!(r.stderr.lines().count(), 1, "one-line error: {r}");
        assert!(
            c.path().join("i-0123abcd").exists(),
            "{tool} deleted the bad descriptor"
        );
        assert!(c.path().join(&hosts[0].0).exists());
    }
    assert_eq!(
        c.live_instances(),
        vec![hosts[0].0.clone()],
        "nothing launched or killed"
    );
    std::fs::remove_file(c.path().join("i-0123abcd")).unwrap();
}

#[test]
fn killall_leaves_no_running_instance_and_is_idempotent() {
    let c = Case::new();
    let hosts = c.create(3);
    let r = c.run("ec2-killall", &[]);
    r.assert_code(0);
    for (id, _) in &hosts {
        assert!(r.stdout.lines().any(|l| l.starts_with(id.as_str())), "{r}");
    }
    assert!(c.descriptors().is_empty());
    assert!(
        c.live_instances().is_empty(),
        "{:?}",
        c.emulator_instances()
    );
    c.run("ec2-killall", &[]).assert_code(0);
}

#[test]
fn killall_notes_instances_aws_no_longer_knows_and_removes_their_descriptors() {
    let c = Case::new();
    let hosts = c.create(1);
    // A descriptor for an instance AWS never heard of (e.g. long gone).
    let mut ghost: Value =
        serde_json::from_str(&std::fs::read_to_string(c.path().join(&hosts[0].0)).unwrap())
            .unwrap();
    ghost["id"] = Value::from("i-0aaaaaaaaaaaaaaa1");
    ghost["index"] = Value::from(2);
    // Launched long ago: "not found" means gone (a fresh id would be waited for).
    ghost["launched_at"] = Value::from("2020-01-01T00:00:00Z");
    std::fs::write(c.path().join("i-0aaaaaaaaaaaaaaa1"), format!("{ghost}\n")).unwrap();
    let r = c.run("ec2-killall", &[]);
    r.assert_code(0);
    assert!(
        r.stderr
            .contains("i-0aaaaaaaaaaaaaaa1: AWS no longer knows"),
        "{r}"
    );
    assert!(c.descriptors().is_empty());
    assert!(c.live_instances().is_empty());
}

#[test]
fn case_sweep_terminates_case_instances_whose_descriptors_were_lost() {
    let c = Case::new();
    let hosts = c.create(2);
    std::fs::remove_file(c.path().join(&hosts[1].0)).unwrap();
    // A plain killall kills what is described, and says (exit 1) what it could not see.
    let r = c.run("ec2-killall", &[]);
    r.assert_code(1);
    r.stderr_has(&hosts[1].0).stderr_has("--case-sweep");
    assert_eq!(
        c.live_instances(),
        vec![hosts[1].0.clone()],
        "a plain killall only kills what is described"
    );
    let r = c.run("ec2-killall", &["--case-sweep"]);
    r.assert_code(0);
    r.stdout_has(&hosts[1].0);
    assert!(c.live_instances().is_empty());
}

#[test]
fn addresses_outside_the_ssh_allow_list_are_refused_with_exit_3() {
    let c = Case::new();
    let hosts = c.create(1);
    c.edit(&hosts[0].0, |d| {
        d["address"] = Value::from("54.1.2.3");
        d["public_ip"] = Value::from("54.1.2.3");
    });
    let r = c.run_without("ec2-exec-remote", &["true"], &["EC2_TOOLS_ADDRESS"]);
    r.assert_code(3);
    r.stderr_has("54.1.2.3 is outside EC2_TOOLS_SSH_ALLOW");

    // The emulator's default VPC hands out public-looking addresses: create must not SSH there.
    let d = Case::new();
    let out = d
        .cmd("ec2-create")
        .args(["1", "--timeout", "30"])
        .env_remove("EC2_TOOLS_SUBNET_ID")
        .env("EC2_TOOLS_ADDRESS", "public-ip")
        .output()
        .unwrap();
    let r = e2e::Run::new(out, Duration::ZERO);
    r.assert_code(3);
    r.stderr_has("outside EC2_TOOLS_SSH_ALLOW");
    assert_eq!(
        d.descriptors().len(),
        1,
        "the launched instance stays findable"
    );
}

#[test]
fn exec_local_passes_instance_data_only_through_the_environment() {
    let c = Case::new();
    let hosts = c.create(2);
    // Instance data with shell syntax in it must arrive as data, never run.
    c.edit(&hosts[0].0, |d| {
        d["private_dns"] = Value::from("$(touch pwned);`touch pwned2`")
    });
    let r = c.run(
        "ec2-exec-local",
        &[r#"echo "$CURRENT_AMI_ID|$CURRENT_AMI_DNS|$CURRENT_AMI_INDEX|$CURRENT_AMI_PRIVATE_IP|$CURRENT_SSH_USER|$CURRENT_SSH_PORT|$CURRENT_SSH_KEY|$CURRENT_AMI_PRIVATE_DNS""#],
    );
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r}");
    for (i, (id, addr)) in hosts.iter().enumerate() {
        let fields: Vec<&str> = lines[i]
            .strip_prefix(&format!("{addr}: "))
            .unwrap()
            .split('|')
            .collect();
        assert_eq!(
            &fields[..7],
            &[
                id.as_str(),
                addr.as_str(),
                &(i + 1).to_string(),
                addr.as_str(),
                c.env["EC2_TOOLS_SSH_USER"].as_str(),
                c.env["EC2_TOOLS_SSH_PORT"].as_str(),
                c.env["EC2_TOOLS_SSH_KEY"].as_str(),
            ]
        );
    }
    assert!(lines[0].ends_with("|$(touch pwned);`touch pwned2`"), "{r}");
    assert!(!c.path().join("pwned").exists() && !c.path().join("pwned2").exists());

    let r = c.run("ec2-exec-local", &["exit $((CURRENT_AMI_INDEX - 1))"]);
    r.assert_code(1);
    assert!(
        r.stderr
            .contains(&format!("{} {}: exit 1", hosts[1].0, hosts[1].1)),
        "{r}"
    );
}

#[test]
fn exec_local_bg_returns_at_once_and_logs_each_instance() {
    let c = Case::new();
    let hosts = c.create(2);
    let r = c.run(
        "ec2-exec-local",
        &["-bg", "sleep 2; echo \"done $CURRENT_AMI_INDEX\""],
    );
    r.assert_code(0);
    r.within(Duration::from_secs(2));
    let logs: Vec<String> = r
        .stdout
        .lines()
        .map(|l| l.split(' ').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(logs.len(), hosts.len(), "{r}");
    for (i, log) in logs.iter().enumerate() {
        let want = format!("done {}", i + 1);
        assert!(
            eventually(Duration::from_secs(10), || std::fs::read_to_string(log)
                .is_ok_and(|s| s.contains(&want))),
            "{log} never said {want}"
        );
    }
}

#[test]
fn missing_credentials_or_region_are_said_in_words_with_exit_2() {
    let c = Case::new();
    let r = c
        .tool("ec2-create")
        .arg("1")
        .unset(&["AWS_ACCESS_KEY_ID"])
        .unset(&["AWS_SECRET_ACCESS_KEY"])
        .run();
    r.assert_code(2);
    assert!(
        r.stderr
            .starts_with("ec2-create: no usable AWS credentials"),
        "{r}"
    );
    let r = c.tool("ec2-create").arg("1").unset(&["AWS_REGION"]).run();
    r.assert_code(2);
    r.stderr_has("no AWS region");
    assert!(c.emulator_instances().is_empty());
}

#[test]
fn unreachable_ec2_endpoint_is_exit_3() {
    let c = Case::new();
    let out = c
        .cmd("ec2-create")
        .arg("1")
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", dead_port()),
        )
        .output()
        .unwrap();
    let r = e2e::Run::new(out, Duration::ZERO);
    r.assert_code(3);
    assert!(
        r.stderr.starts_with("ec2-create: ") && r.stderr.contains("cannot reach the EC2 API"),
        "{r}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert!(c.descriptors().is_empty());
}

#[test]
fn parallel_output_lines_are_never_mixed() {
    let c = Case::new();
    let hosts = c.create(3);
    let x = "x".repeat(100);
    let script = format!("i=0; while [ $i -lt 2000 ]; do echo {x}; echo {x} >&2; i=$((i+1)); done");
    let r = c.run("ec2-exec-remote", &[&script]);
    r.assert_code(0);
    for text in [&r.stdout, &r.stderr] {
        let mut per_host = std::collections::BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with("ec2-exec-remote: ok "))
        {
            let (addr, rest) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("unprefixed line {line:?}"));
            assert_eq!(rest, x, "mixed line {line:?}");
            *per_host.entry(addr.to_owned()).or_insert(0) += 1;
        }
        assert_eq!(per_host.len(), hosts.len());
        assert!(per_host.values().all(|&n| n == 2000), "{per_host:?}");
    }
}
