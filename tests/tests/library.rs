//! The library from another program: `common/examples/fleet.rs` (create a fleet, run a
//! command on every host, terminate it) against the local cloud, as a user's program would
//! run it — the same settings, the same sshd, the same EC2 front as the tools.

use e2e::{bin_dir, Case};

/// The example binary, built by `cargo test --workspace` (or `cargo build --examples`).
fn example(c: &Case) -> std::process::Command {
    let exe = bin_dir().join("examples/fleet");
    assert!(
        exe.is_file(),
        "{} not built (cargo build --workspace --examples)",
        exe.display()
    );
    let mut cmd = c.cmd("examples/fleet");
    cmd.arg(c.path());
    cmd
}

#[test]
fn the_library_example_creates_a_fleet_runs_a_command_on_each_host_and_terminates_it() {
    let c = Case::new();
    let out = example(&c)
        .args(["3", "echo hello from $CURRENT_AMI_INDEX of $CURRENT_CASE"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let name = c.name();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        (1..=3)
            .map(|i| format!("{i} 0 hello from {i} of {name}"))
            .collect::<Vec<_>>(),
        "{stderr}"
    );
    assert!(stderr.contains("3 instances ready"), "{stderr}");
    assert!(stderr.contains("terminated 3 instances"), "{stderr}");
    assert!(c.descriptors().is_empty(), "descriptors left behind");
    assert!(c.live_instances().is_empty(), "instances left running");
    // Three launched, once: create reused nothing and killall terminated what it launched.
    assert_eq!(c.counters()["instances_launched"], 3);
}

#[test]
fn the_library_example_still_terminates_the_fleet_when_a_host_fails_and_exits_1() {
    let c = Case::new();
    let out = example(&c)
        .args(["2", "test \"$CURRENT_AMI_INDEX\" = 1 && echo fine"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["1 0 fine", "2 1 "],
        "{stderr}"
    );
    assert!(c.descriptors().is_empty(), "descriptors left behind");
    assert!(c.live_instances().is_empty(), "instances left running");
}

#[test]
fn a_bad_setting_stops_the_library_before_anything_is_launched_exit_2() {
    let c = Case::new();
    std::fs::write(
        c.path().join("ec2-tools.json"),
        r#"{"instance_type": "t3.micro", "ttl": "forever"}"#,
    )
    .unwrap();
    let out = example(&c).arg("2").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("fleet: ") && last.contains("ec2-tools.json: \"ttl\": invalid duration"),
        "{stderr}"
    );
    assert!(
        c.emulator_instances().is_empty(),
        "launched despite bad input"
    );
}

/// `fleet --help` once made a directory named `--help` and launched two instances in it.
#[test]
fn the_example_given_help_or_an_option_for_dir_launches_nothing() {
    let c = Case::new();
    let run = |arg: &str| {
        c.cmd("examples/fleet")
            .current_dir(c.path())
            .arg(arg)
            .output()
            .unwrap()
    };
    let help = run("--help");
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: fleet DIR"));
    let bad = run("--dir");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a directory name"));
    assert!(!c.path().join("--help").exists() && !c.path().join("--dir").exists());
    assert_eq!(c.counters()["instances_launched"].as_u64().unwrap_or(0), 0);
}
