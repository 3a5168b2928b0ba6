//! User data runs (issue 22): at its first boot each emulated machine runs the scripts and
//! `runcmd` of its user data as its own unprivileged user inside its namespaces, and the TTL
//! part's shutdown happens: an instance launched with `--ttl` terminates by itself. Regression
//! tests named after what the local cloud did before (asserted the user data, ran none).

use e2e::{eventually, Case};
use serde_json::Value;
use std::time::Duration;

fn state(c: &Case) -> Vec<String> {
    c.emulator_instances()
        .iter()
        .map(|i| i["state"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn the_ttl_shutdown_was_asserted_and_never_happened() {
    let c = Case::new();
    c.create_with(1, &["--ttl", "20s"]);
    assert_eq!(state(&c), ["running"]);
    // No tool runs from here on: the instance powers itself off after 20 s and, launched
    // with InstanceInitiatedShutdownBehavior=terminate, is terminated by EC2.
    assert!(
        eventually(Duration::from_secs(90), || state(&c) == ["terminated"]),
        "still {:?} 90 s after a 20 s TTL",
        state(&c)
    );
    let calls = &c.counters()["calls"];
    assert!(
        calls.get("TerminateInstances").is_none_or(Value::is_null),
        "no tool terminated it: {calls}"
    );
    // The tools see it gone, and clean up after it.
    let r = c.run("ec2-status", &[]);
    r.stdout_has("terminated");
    c.run("ec2-killall", &[]).succeeds();
}

#[test]
fn user_data_scripts_and_runcmd_never_ran() {
    let c = Case::new();
    let ud = c.path().join("init.yaml");
    std::fs::write(
        &ud,
        "#cloud-config\nruncmd:\n  - echo \"$(id -un) $(hostname)\" > \"$HOME/ran.txt\"\n  \
         - [sh, -c, 'echo mine > /tmp/ud-mark']\n",
    )
    .unwrap();
    c.create_with(2, &["--user-data", ud.to_str().unwrap()]);
    let probe = "cat ~/ran.txt 2>/dev/null && cat /tmp/ud-mark";
    assert!(
        eventually(Duration::from_secs(30), || c
            .run("ec2-exec-remote", &[probe])
            .code
            == 0),
        "runcmd never ran"
    );
    let r = c.run("ec2-exec-remote", &["--label", "index", probe]);
    r.succeeds();
    // As the machine's unprivileged user, on that machine (its hostname, its /tmp).
    let user = &c.env["EC2_TOOLS_SSH_USER"];
    for n in ["1", "2"] {
        let lines: Vec<&str> = r
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{n}: ")))
            .collect();
        assert_eq!(lines.len(), 2, "{r}");
        assert!(
            lines[0].starts_with(&format!("{user} ip-{}", c.vpc_prefix().replace('.', "-"))),
            "{r}"
        );
        assert_eq!(lines[1], "mine", "{r}");
    }
    assert!(
        !std::path::Path::new("/tmp/ud-mark").exists(),
        "user data wrote this host's /tmp"
    );
}

/// CI caught the front entering a machine for its user data 50 ms after starting it, while the
/// machine's setup (its own home, /tmp and hostname) could still be under way: a loaded host
/// ran the script against this host's home and /tmp, and it never showed on the machine. Many
/// machines at once, each with a script that records what it saw, widen that window.
#[test]
fn user_data_ran_before_its_machine_was_set_up() {
    let c = Case::new();
    let ud = c.path().join("seen.sh");
    std::fs::write(
        &ud,
        "#!/bin/sh\nseen=\"$(hostname) $(stat -f -c %T /tmp)\"\n\
         echo \"$seen\" > \"$HOME/seen.txt\"\necho \"$seen\" > /tmp/seen.txt\n",
    )
    .unwrap();
    c.create_with(6, &["--user-data", ud.to_str().unwrap()]);
    let probe = "cat ~/seen.txt && cat /tmp/seen.txt";
    assert!(
        eventually(Duration::from_secs(30), || c
            .run("ec2-exec-remote", &[probe])
            .code
            == 0),
        "a machine never saw its user data run: {}",
        c.run("ec2-exec-remote", &[probe])
    );
    let r = c.run("ec2-exec-remote", &["--label", "address", probe]);
    r.succeeds();
    for line in r.stdout.lines() {
        let (ip, seen) = line.split_once(": ").expect("labelled line");
        // The script ran with the machine's hostname and on the machine's own tmpfs /tmp.
        assert_eq!(seen, format!("ip-{} tmpfs", ip.replace('.', "-")), "{r}");
    }
    assert_eq!(r.stdout.lines().count(), 12, "{r}");
}
