//! Each emulated machine is a machine of its own (issue 22): its own `/tmp` and process table,
//! and nothing of it outlives it. Regression tests named after what the local cloud let
//! through before.

use e2e::Case;
use std::time::{Duration, Instant};

/// Processes on this host whose command line is exactly `argv` (read from /proc).
fn running(argv: &[&str]) -> usize {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| *c == want)
        .count()
}

#[test]
fn tmp_and_the_process_table_were_shared_between_machines_and_a_bg_job_outlived_its_machine() {
    let c = Case::new();
    c.create(2);
    // /tmp is each machine's own.
    c.run(
        "ec2-exec-remote",
        &["--select", "1", "echo one > /tmp/mark"],
    )
    .succeeds();
    let r = c.run(
        "ec2-exec-remote",
        &["--select", "2", "cat /tmp/mark 2>/dev/null || echo none"],
    );
    r.succeeds().stdout_has(": none");
    // pkill on one machine cannot touch another's processes; ps shows only its own.
    c.run(
        "ec2-exec-remote",
        &["-bg", "--job", "s", "exec sleep 121.5"],
    )
    .succeeds();
    let t = Instant::now();
    while running(&["sleep", "121.5"]) < 2 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(running(&["sleep", "121.5"]), 2);
    c.run(
        "ec2-exec-remote",
        &[
            "--select",
            "1",
            "pkill -x sleep; ps -e | grep -c sleep || true",
        ],
    )
    .succeeds();
    let id = |index: u64| {
        c.descriptors()
            .into_iter()
            .find(|(_, d)| d["index"] == index)
            .unwrap()
            .0
    };
    let r = c.run("ec2-exec-remote", &["--status", "--job", "s"]);
    let state = |index| {
        let id = id(index);
        r.stdout
            .lines()
            .find(|l| l.starts_with(&id))
            .unwrap_or_else(|| panic!("{id}: {r}"))
            .to_owned()
    };
    assert!(!state(1).ends_with(" running"), "{}", state(1));
    assert!(state(2).ends_with(" running"), "{}", state(2));
    // Terminated, a machine's processes end with it, detached jobs included.
    c.run("ec2-killall", &[]).succeeds();
    let t = Instant::now();
    while running(&["sleep", "121.5"]) > 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        running(&["sleep", "121.5"]),
        0,
        "a job outlived its machine"
    );
}
