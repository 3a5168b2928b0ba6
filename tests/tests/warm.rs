//! Warm sessions (`persist`): the case's session holder keeps logins open between runs, and a
//! dead, hung or stale holder never makes a command hang or fail. Real sshd, real holder
//! process (`ec2-tools session-holder`, started by the tools themselves).

use e2e::{eventually, Case};
use std::collections::BTreeMap;
use std::time::Duration;

/// Each host's `$PPID` (the sshd process that serves its session), by output prefix.
fn parents(r: &e2e::Run) -> BTreeMap<String, String> {
    r.stdout
        .lines()
        .map(|l| {
            let (host, pid) = l.split_once(": ").unwrap();
            (host.to_owned(), pid.trim().to_owned())
        })
        .collect()
}

fn holder_pid(c: &Case) -> Option<i32> {
    std::fs::read_to_string(c.path().join(".ec2-tools/holder.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn a_second_run_reuses_the_held_logins_and_killall_stops_the_holder() {
    let c = Case::new();
    c.create(3);
    let first = c.run("ec2-exec-remote", &["echo $PPID"]);
    first.assert_code(0);
    let second = c.run("ec2-exec-remote", &["echo $PPID"]);
    second.assert_code(0);
    assert_eq!(parents(&first).len(), 3, "{first}");
    // The same sshd session process served both runs: one login per host, not two.
    assert_eq!(parents(&first), parents(&second), "{first}\n{second}");
    assert!(!second.stderr.contains("warm sessions"), "{second}");
    let cold = c.run_with(
        "ec2-exec-remote",
        &["echo $PPID"],
        &[("EC2_TOOLS_PERSIST", "off")],
    );
    cold.assert_code(0);
    for (host, pid) in parents(&cold) {
        assert_ne!(
            parents(&first)[&host],
            pid,
            "persist off reused a login: {cold}"
        );
    }
    // The socket is the case owner's only; the holder is one process of this case.
    let sock = c.path().join(".ec2-tools/holder.sock");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    let pid = holder_pid(&c).expect("holder.pid");
    assert!(alive(pid));
    c.run("ec2-killall", &[]).assert_code(0);
    assert!(
        eventually(Duration::from_secs(5), || !alive(pid)),
        "the holder outlived the case's instances"
    );
    assert!(!sock.exists(), "socket left behind");
}

#[test]
fn a_hung_holder_never_hangs_a_command_it_falls_back_to_direct_logins_and_says_so_once() {
    let c = Case::new();
    c.create(2);
    let env = [("EC2_TOOLS_CONNECT_TIMEOUT", "2s")];
    c.run_with("ec2-exec-remote", &["true"], &env)
        .assert_code(0);
    let pid = holder_pid(&c).expect("holder.pid");
    // SAFETY: stopping (then killing) the holder this test's tools started, by pid.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let r = c.run_with("ec2-exec-remote", &["echo still-works"], &env);
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGCONT);
    }
    r.assert_code(0);
    assert_eq!(r.stdout.matches("still-works").count(), 2, "{r}");
    r.within(Duration::from_secs(10));
    assert_eq!(
        r.stderr.matches("session holder").count(),
        1,
        "said once: {r}"
    );
    r.stderr_has("went quiet");
    // A stale socket (its holder died): a new holder is started and used.
    assert!(eventually(Duration::from_secs(5), || !alive(pid)));
    let r = c.run_with("ec2-exec-remote", &["echo again"], &env);
    r.assert_code(0);
    assert_eq!(r.stdout.matches("again").count(), 2, "{r}");
    r.stderr_lacks("warm sessions");
    let new = holder_pid(&c).expect("a new holder");
    assert_ne!(new, pid);
}

#[test]
fn a_failing_host_and_output_come_back_through_the_holder_as_without_it() {
    let c = Case::new();
    c.create(3);
    let script = "echo out-$CURRENT_AMI_INDEX; echo err-$CURRENT_AMI_INDEX >&2; \
                  test $CURRENT_AMI_INDEX != 2";
    let runs: Vec<e2e::Run> = ["10m", "10m", "off"]
        .iter()
        .map(|p| {
            c.run_with(
                "ec2-exec-remote",
                &["--label", "index", script],
                &[("EC2_TOOLS_PERSIST", p)],
            )
        })
        .collect();
    for r in &runs {
        r.assert_code(1);
        let mut out: Vec<&str> = r.stdout.lines().collect();
        out.sort();
        assert_eq!(out, ["1: out-1", "2: out-2", "3: out-3"], "{r}");
        for i in 1..=3 {
            r.stderr_has(&format!("{i}: err-{i}"));
        }
        r.stderr_has("ok 2/3");
    }
    // stdin reaches every host through the holder too.
    let r = c.shell("echo piped | ec2-exec-remote cat");
    r.assert_code(0);
    assert_eq!(r.stdout.matches(": piped").count(), 3, "{r}");
}

#[test]
fn a_run_on_hosts_busy_with_a_long_command_takes_other_sessions_and_never_waits() {
    let c = Case::new();
    c.create(2);
    c.run("ec2-exec-remote", &["true"]).assert_code(0); // the holder holds one login per host
    let long = c
        .cmd("ec2-exec-remote")
        .arg("sleep 60")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let r = c.run("ec2-exec-remote", &["echo beside"]);
    // SAFETY: interrupting the tool this test started, by pid.
    unsafe { libc::kill(long.id() as i32, libc::SIGINT) };
    let out = long.wait_with_output().unwrap();
    r.assert_code(0);
    assert_eq!(r.stdout.matches("beside").count(), 2, "{r}");
    assert!(
        r.elapsed < Duration::from_secs(10),
        "waited for the busy sessions: {r}"
    );
    assert_eq!(out.status.code(), Some(130));
}

/// ec2-put, ec2-get and job control go through the held sessions too: no login of their own
/// (no key exchange in their -vv logs), every host's end logged "(session holder)", and the
/// same results as direct connections — local paths are the tool's, relative to where it runs,
/// not to where the holder was started.
#[test]
fn put_get_and_job_control_use_the_held_sessions_and_the_tools_own_paths() {
    let c = Case::new();
    c.create(2);
    c.run("ec2-exec-remote", &["true"]).assert_code(0); // the holder starts, in the case dir
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(elsewhere.path().join("bundle")).unwrap();
    std::fs::write(elsewhere.path().join("bundle/conf.txt"), "from elsewhere\n").unwrap();
    let dir = c.path().to_str().unwrap();
    let in_elsewhere = |tool: &str, args: &[&str]| {
        let mut cmd = c.cmd(tool);
        cmd.current_dir(elsewhere.path())
            .args(["-vv", "--dir", dir])
            .args(args);
        let began = std::time::Instant::now();
        e2e::Run::new(cmd.output().unwrap(), began.elapsed())
    };
    let warm = |r: &e2e::Run| {
        assert!(!r.stderr.contains("key exchange"), "logged in itself: {r}");
        assert_eq!(r.stderr.matches("(session holder)").count(), 2, "{r}");
    };
    let put = in_elsewhere("ec2-put", &["bundle", "work"]);
    put.assert_code(0);
    warm(&put);
    assert_eq!(put.stdout.matches(" 1 files 15 bytes").count(), 2, "{put}");
    let get = in_elsewhere("ec2-get", &["work/bundle/conf.txt", "out"]);
    get.assert_code(0);
    warm(&get);
    for line in get.stdout.lines() {
        let local = line.split(' ').nth(2).unwrap();
        assert!(local.starts_with("out/"), "{get}");
        let text = std::fs::read_to_string(elsewhere.path().join(local).join("conf.txt"));
        assert_eq!(text.unwrap(), "from elsewhere\n", "{get}");
    }
    assert!(
        !c.path().join("out").exists(),
        "written where the holder runs"
    );
    let start = in_elsewhere(
        "ec2-exec-remote",
        &["--job", "j1", "-bg", "cat work/bundle/conf.txt; exit 3"],
    );
    start.assert_code(0);
    warm(&start);
    let wait = in_elsewhere("ec2-exec-remote", &["--job", "j1", "--wait"]);
    wait.assert_code(1);
    warm(&wait);
    assert_eq!(wait.stdout.matches(": from elsewhere").count(), 2, "{wait}");
    assert!(wait.stderr.contains("exit 3"), "{wait}");
    let status = in_elsewhere("ec2-exec-remote", &["--job", "j1", "--status"]);
    status.assert_code(0);
    warm(&status);
    assert_eq!(status.stdout.matches(" exited 3").count(), 2, "{status}");
    let list = in_elsewhere("ec2-exec-remote", &["--jobs"]);
    list.assert_code(0);
    warm(&list);
    assert_eq!(list.stdout.matches(" j1 exited 3").count(), 2, "{list}");
    let unknown = in_elsewhere("ec2-exec-remote", &["--job", "nope", "--status"]);
    unknown.assert_code(1);
    assert!(
        unknown.stderr.contains("no job nope on this host"),
        "{unknown}"
    );
    c.run("ec2-killall", &[]).assert_code(0);
}
