//! Host keys verified on first contact, not trusted (issue 22): the key a host offers is
//! checked against the keys cloud-init printed to its console (GetConsoleOutput, which the
//! local cloud serves for each machine's real host key), and a pin trusted before the console
//! had them is checked by the next tool. Regression tests named after what was trusted before.

use e2e::Case;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn only(c: &Case) -> Value {
    let d = c.descriptors();
    assert_eq!(d.len(), 1, "{d:?}");
    d.into_values().next().unwrap()
}

#[test]
fn a_console_that_lies_about_the_host_key_was_trusted_anyway() {
    let c = Case::new();
    c.faults(json!({"console_lie": true}));
    let r = c.run("ec2-create", &["1", "--timeout", "30"]);
    assert_ne!(r.code, 0, "{r}");
    r.stderr_has("HOST KEY MISMATCH");
    let d = only(&c);
    r.stderr_has(d["id"].as_str().unwrap());
    assert!(d["ssh"]["host_key"].is_null(), "nothing pinned: {d}");
    c.faults(json!({}));
}

#[test]
fn the_first_contact_key_is_the_one_the_console_published() {
    let c = Case::new();
    c.create(1);
    let d = only(&c);
    assert_eq!(d["ssh"]["host_key_source"], "console", "{d}");
    assert!(d["ssh"]["host_key"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));
}

#[test]
fn a_key_trusted_before_the_console_had_it_was_never_checked() {
    let c = Case::new();
    // The console prints the keys 15 s after the machine is up: first contact is earlier.
    c.faults(json!({"console_s": 15}));
    let r = c.run("ec2-create", &["1"]);
    r.assert_code(0);
    r.stderr_has("trusted on first use");
    assert_eq!(only(&c)["ssh"]["host_key_source"], "first-use");
    // The console turns out to name another key: the next tool refuses the host, loudly.
    c.faults(json!({"console_lie": true}));
    std::thread::sleep(Duration::from_secs(16)); // past the console's 15 s from launch
    let r = c.run("ec2-exec-remote", &["true"]);
    r.assert_code(1);
    r.stderr_has("HOST KEY MISMATCH");
    r.stderr_has(only(&c)["id"].as_str().unwrap());
    assert_eq!(only(&c)["ssh"]["host_key_source"], "first-use");
    // The console names the pinned key: ec2-status verifies it and records so.
    c.faults(json!({}));
    c.run("ec2-status", &[]).assert_code(0);
    assert_eq!(only(&c)["ssh"]["host_key_source"], "console");
    c.run("ec2-exec-remote", &["true"]).assert_code(0);
}

#[test]
fn host_key_check_console_waits_for_the_console_and_refuses_without_it() {
    let c = Case::new();
    c.faults(json!({"console_s": 5}));
    let strict = [("EC2_TOOLS_HOST_KEY_CHECK", "console")];
    let t = Instant::now();
    let r = c.run_with("ec2-create", &["1"], &strict);
    r.assert_code(0);
    assert!(t.elapsed() >= Duration::from_secs(5), "{r}");
    assert_eq!(only(&c)["ssh"]["host_key_source"], "console");
    // Without ec2:GetConsoleOutput: refused under `console`, trusted on first use (and said)
    // under the default.
    let c = Case::new();
    c.faults(json!({"deny": ["GetConsoleOutput"]}));
    let r = c.run_with("ec2-create", &["1", "--timeout", "30"], &strict);
    assert_ne!(r.code, 0, "{r}");
    r.stderr_has("console cannot be read");
    let r = c.run("ec2-create", &["1"]);
    r.assert_code(0);
    r.stderr_has("cannot read the instances' consoles");
    r.stderr_has("trusted on first use");
    c.faults(json!({}));
}
