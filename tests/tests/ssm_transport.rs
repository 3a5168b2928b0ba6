//! `--transport ssm` (issue 23): a case that no inbound port reaches, driven through Systems
//! Manager's Run Command as the local cloud's emulated agents answer it (ec2front/ssm.py).
//! Regression tests named after what would have gone wrong: a case that still needed port
//! 22, output SSM cut without a word, a command left running after a timeout or Ctrl-C, a
//! throttled poll failing the run.

use e2e::{eventually, Case};
use serde_json::Value;
use std::time::Duration;

fn ssm_case(n: u32) -> Case {
    let c = Case::new();
    c.create_with(n, &["--transport", "ssm"]);
    c
}

fn bucket(c: &Case) -> String {
    let b = format!("ssm-{}", c.name().to_lowercase().replace('_', "-"));
    c.python(&["mkbucket", &b]);
    b
}

#[test]
fn a_case_over_ssm_still_needed_an_inbound_port() {
    let c = Case::new();
    let r = c.run(
        "ec2-create",
        &["3", "--timeout", "90", "--transport", "ssm"],
    );
    r.assert_code(0)
        .stderr_has("no ingress at all")
        .stderr_has("AmazonSSMManagedInstanceCore");
    // The case's group holds no ingress rule at all; the role has SSM's policy.
    let groups: Value = serde_json::from_str(&c.python(&["groups", &c.name()])).unwrap();
    assert_eq!(groups[0]["rules"], serde_json::json!([]), "{groups}");
    let iam: Value = serde_json::from_str(&c.python(&["ssm-iam", &c.name()])).unwrap();
    assert_eq!(
        iam["roles"][0]["policies"],
        serde_json::json!(["AmazonSSMManagedInstanceCore"])
    );
    assert_eq!(iam["profiles"].as_array().unwrap().len(), 1, "{iam}");
    for d in c.descriptors().values() {
        assert_eq!(d["ssh"]["transport"], "ssm", "{d}");
    }

    // Foreground: each host's identity, output labelled, and a failing host fails alone.
    let r = c.run(
        "ec2-exec-remote",
        &["echo $CURRENT_AMI_INDEX $(hostname) $(wc -l < $CURRENT_HOSTS); [ $CURRENT_AMI_INDEX != 2 ]"],
    );
    r.assert_code(1).stderr_has("ok 2/3");
    let prefix = c.vpc_prefix();
    for i in 1..=3 {
        assert!(
            r.stdout
                .contains(&format!(" {i} ip-{}", prefix.replace('.', "-"))),
            "{r}"
        );
    }
    assert!(r.stdout.lines().all(|l| l.ends_with(" 3")), "{r}");
    let counts = c.counters();
    assert!(
        counts["calls"]["SendCommand"].as_u64().unwrap() >= 1,
        "{counts}"
    );

    // -bg, --wait; --at.
    c.run(
        "ec2-exec-remote",
        &["-bg", "--job", "j", "sleep 1; echo job-$CURRENT_AMI_INDEX"],
    )
    .succeeds();
    c.run("ec2-exec-remote", &["--job", "j", "--wait"])
        .succeeds()
        .stdout_has("job-3");
    c.run("ec2-exec-remote", &["--at", "+3s", "date +%s"])
        .succeeds()
        .stderr_has("by their own clocks");

    // Put and get through the bucket; nothing left in it.
    let b = bucket(&c);
    std::fs::create_dir_all(c.path().join("conf/sub")).unwrap();
    std::fs::write(c.path().join("conf/sub/a.txt"), "hello\n").unwrap();
    c.run("ec2-put", &["--ssm-bucket", &b, "conf", "work"])
        .succeeds()
        .stdout_has("1 files 6 bytes");
    c.run("ec2-exec-remote", &["cat work/conf/sub/a.txt > got.txt"])
        .succeeds();
    c.run("ec2-get", &["--ssm-bucket", &b, "got.txt", "out"])
        .succeeds();
    let got: Vec<_> = std::fs::read_dir(c.path().join("out"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(got.len(), 3);
    for g in got {
        assert_eq!(
            std::fs::read_to_string(g.path().join("got.txt")).unwrap(),
            "hello\n"
        );
    }
    assert_eq!(c.python(&["objects", &b, ""]).trim(), "[]");
    c.run("ec2-put", &["conf", "work"])
        .assert_code(2)
        .stderr_has("--ssm-bucket");

    // status --check over SSM; what needs a login says so in one line.
    c.run("ec2-status", &["--check"]).succeeds();
    let r = c.run("ec2-ssh", &["1"]);
    r.assert_code(2).stderr_has("reached over SSM");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    let r = c.run(
        "ec2-exec-local",
        &[
            "--select",
            "1",
            "scp -F \"$CURRENT_SSH_CONFIG\" conf/sub/a.txt \"$CURRENT_SSH_HOST:\"",
        ],
    );
    r.assert_code(1);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("is reached over SSM (transport ssm): no SSH login"),
        "{r}"
    );

    // The role and profile go with the last instance.
    c.run("ec2-killall", &[])
        .succeeds()
        .stderr_has("deleted IAM instance profile and role");
    let iam: Value = serde_json::from_str(&c.python(&["ssm-iam", &c.name()])).unwrap();
    assert_eq!(iam, serde_json::json!({"roles": [], "profiles": []}));
}

#[test]
fn output_past_ssm_inline_limit_was_cut_silently() {
    let c = ssm_case(1);
    let big = "head -c 100000 /dev/zero | tr '\\0' x; echo";
    let r = c.run("ec2-exec-remote", &["--label", "none", big]);
    r.succeeds()
        .stderr_has("stdout was cut at 24,000 characters");
    assert_eq!(r.stdout.trim_end().len(), 24_000, "{}", r.stderr);
    let b = bucket(&c);
    let r = c.run(
        "ec2-exec-remote",
        &["--label", "none", "--ssm-bucket", &b, big],
    );
    r.succeeds().stderr_lacks("was cut");
    assert_eq!(r.stdout.trim_end().len(), 100_000);
    // Input too large for a SendCommand: refused before anything runs, or carried through S3.
    let mut x: u32 = 7;
    let noise: Vec<u8> = (0..90_000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            b'a' + ((x >> 24) % 26) as u8
        })
        .collect();
    c.tool("ec2-exec-remote")
        .args(&["wc -c"])
        .stdin(noise.clone())
        .run()
        .assert_code(2)
        .stderr_has("--ssm-bucket");
    c.tool("ec2-exec-remote")
        .args(&["--label", "none", "--ssm-bucket", &b, "wc -c"])
        .stdin(noise)
        .run()
        .succeeds()
        .stdout_has("90000");
    assert_eq!(c.python(&["objects", &b, ""]).trim(), "[]");
    c.run("ec2-killall", &[]).succeeds();
}

/// `sleep 47` processes on every host, counted.
const SLEEPERS: &str = "ps -eo args | grep -c '^sleep 47$' || true";

#[test]
fn a_timed_out_or_interrupted_ssm_command_was_left_running() {
    let c = ssm_case(2);
    let r = c.run("ec2-exec-remote", &["-u", "3s", "sleep 47"]);
    r.assert_code(1)
        .stderr_has("timed out after 3s (CancelCommand sent)")
        .stderr_has("may still run it on these hosts");
    assert!(r.elapsed < Duration::from_secs(20), "{r}");
    let gone = || {
        c.run("ec2-exec-remote", &["--label", "none", SLEEPERS])
            .stdout
            == "0\n0\n"
    };
    assert!(
        eventually(Duration::from_secs(10), gone),
        "the command still runs"
    );

    let child = c.tool("ec2-exec-remote").args(&["sleep 47"]).spawn();
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted (CancelCommand sent)"),
        "{stderr}"
    );
    assert!(
        eventually(Duration::from_secs(10), gone),
        "the command still runs"
    );
    c.run("ec2-killall", &[]).succeeds();
}

#[test]
fn a_throttled_ssm_poll_failed_the_run() {
    let c = ssm_case(2);
    c.faults(serde_json::json!({
        "throttle": 0.4,
        "throttle_actions": ["ListCommandInvocations", "GetCommandInvocation"],
        "seed": 7
    }));
    let r = c.run("ec2-exec-remote", &["sleep 2; echo done"]);
    r.succeeds();
    assert_eq!(r.stdout.matches("done").count(), 2, "{r}");
    let counts = c.counters();
    assert!(
        counts["faults"]["ThrottlingException"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{counts}"
    );
    c.faults(serde_json::json!({}));
    c.run("ec2-killall", &[]).succeeds();
}

/// IAM is eventually consistent: on AWS, RunInstances refuses an instance profile made moments
/// before (`InvalidParameterValue … iamInstanceProfile.name`) for seconds, and every first
/// `ec2-create --transport ssm` failed there. The local cloud now refuses it as AWS does.
#[test]
fn a_fresh_instance_profile_refused_by_run_instances_failed_the_create() {
    let c = Case::new();
    c.faults(serde_json::json!({"iam_propagation_s": 5}));
    let r = c.run(
        "ec2-create",
        &["2", "--timeout", "90", "--transport", "ssm"],
    );
    r.assert_code(0).stderr_has("not visible to EC2 yet");
    assert_eq!(r.stderr.matches("not visible to EC2 yet").count(), 1, "{r}");
    let counts = c.counters();
    let refused = counts["faults"]["IamProfileNotVisible"]
        .as_u64()
        .unwrap_or(0);
    assert!(refused >= 2, "refused {refused} times: {counts}");
    assert_eq!(c.descriptors().len(), 2);
    // The instances have the case's profile (the one refused, then seen).
    assert_eq!(counts["instances_launched"], 2, "{counts}");
    c.run("ec2-killall", &[]).succeeds();

    // A profile the user made moments ago is waited for too (IAM has it); one IAM does not
    // have is the user's typo: refused at once, in EC2's words, nothing launched.
    let own = format!("{}-own", c.name());
    c.python(&["iam-profile", &own]);
    let r = c.run(
        "ec2-create",
        &["1", "--timeout", "60", "--iam-profile", &own],
    );
    r.assert_code(0).stderr_has("not visible to EC2 yet");
    c.run("ec2-killall", &[]).succeeds();
    let started = std::time::Instant::now();
    let r = c.run("ec2-create", &["1", "--iam-profile", "no-such-profile"]);
    r.assert_code(2)
        .stderr_has("Invalid IAM Instance Profile name");
    assert!(!r.stderr.contains("not visible to EC2 yet"), "{r}");
    assert!(started.elapsed() < Duration::from_secs(20), "waited: {r}");
    assert!(c.live_instances().is_empty(), "{r}");
    c.run("ec2-killall", &[]).succeeds();
}

/// A `-bg` job over SSM stopped for real (its processes gone, `--status` says `stopped`), and
/// a case whose directory was lost left no IAM role or profile behind: `--case-sweep` finds
/// them by the case's tag, as it finds its instances.
#[test]
fn a_lost_ssm_case_left_its_role_and_profile_and_a_stopped_job_ran_on() {
    let c = ssm_case(2);
    c.run(
        "ec2-exec-remote",
        &["-bg", "--job", "long", "sleep 300; echo never"],
    )
    .succeeds();
    c.run("ec2-exec-remote", &["--job", "long", "--stop"])
        .assert_code(0);
    let r = c.run("ec2-exec-remote", &["--job", "long", "--status"]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches(" stopped\n").count(), 2, "{r}");
    let r = c.run("ec2-exec-remote", &["pgrep -x sleep || echo none"]);
    r.succeeds();
    assert_eq!(r.stdout.matches("none").count(), 2, "{r}");

    let iam: Value = serde_json::from_str(&c.python(&["ssm-iam", &c.name()])).unwrap();
    assert_eq!(iam["profiles"].as_array().unwrap().len(), 1, "{iam}");
    std::fs::remove_dir_all(c.path().join(".ec2-tools")).unwrap();
    for id in c.descriptors().keys() {
        std::fs::remove_file(c.path().join(id)).unwrap();
    }
    let r = c.run("ec2-killall", &["--case-sweep"]);
    r.assert_code(0);
    let iam: Value = serde_json::from_str(&c.python(&["ssm-iam", &c.name()])).unwrap();
    assert_eq!(iam, serde_json::json!({"roles": [], "profiles": []}), "{r}");
    assert!(c.live_instances().is_empty(), "{r}");
}
