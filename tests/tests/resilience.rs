//! Failure handling against real parts that misbehave: an sshd that drops connections under
//! load (OpenSSH MaxStartups throttling).

use e2e::Case;

#[test]
fn connections_dropped_by_a_throttling_sshd_are_retried_with_backoff() {
    // An sshd that admits only 2 unauthenticated connections at a time and drops the rest
    // before the banner, as a busy sshd does.
    let cloud =
        e2e::start_cloud_with(&[("LOCALCLOUD_MAX_STARTUPS", "2")]).expect("throttled cloud");
    let c = Case::in_cloud(&cloud);
    c.create(12);
    for _ in 0..2 {
        let r = c.run("ec2-exec-remote", &["--fanout", "12", "echo ok"]);
        r.assert_code(0);
        assert_eq!(
            r.stdout.lines().filter(|l| l.ends_with(": ok")).count(),
            12,
            "{r}"
        );
    }
    c.run("ec2-killall", &[]).assert_code(0);
}

/// Drops every packet to and from one loopback address while alive.
struct Blackhole(String);

impl Blackhole {
    fn new(addr: &str) -> Blackhole {
        for dir in ["-d", "-s"] {
            let ok = std::process::Command::new("iptables")
                .args(["-I", "OUTPUT", dir, addr, "-j", "DROP"])
                .status()
                .expect("iptables (scripts/localcloud install provides it; the test needs root)")
                .success();
            assert!(ok, "iptables refused to add a rule");
        }
        Blackhole(addr.to_owned())
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        for dir in ["-d", "-s"] {
            let _ = std::process::Command::new("iptables")
                .args(["-D", "OUTPUT", dir, &self.0, "-j", "DROP"])
                .status();
        }
    }
}

#[test]
fn a_host_that_vanishes_mid_command_fails_within_a_minute_and_alone() {
    let c = Case::new();
    let hosts = c.create(2);
    let child = c
        .cmd("ec2-exec-remote")
        .args(["--json", "sleep 70; echo done"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let hole = Blackhole::new(&hosts[1].1);
    let out = child.wait_with_output().unwrap();
    drop(hole);
    let r = e2e::Run::new(out, std::time::Duration::ZERO);
    r.assert_code(1);
    let objs: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let alive = objs
        .iter()
        .find(|o| o["id"] == hosts[0].0.as_str())
        .unwrap();
    let dead = objs
        .iter()
        .find(|o| o["id"] == hosts[1].0.as_str())
        .unwrap();
    assert_eq!(alive["exit"], 0);
    assert_eq!(
        alive["stdout"], "done\n",
        "the live host's output is intact"
    );
    assert!(
        dead["exit"].is_null() && dead["error"].is_string(),
        "{dead}"
    );
    // Vanished 3 s in; detected within a minute of that, long before the command would end.
    let secs = dead["duration_s"].as_f64().unwrap();
    eprintln!(
        "the vanished host failed after {secs:.1}s: {}",
        dead["error"]
    );
    assert!(
        secs < 3.0 + 60.0,
        "took {secs}s to notice the dead host: {r}"
    );
}
