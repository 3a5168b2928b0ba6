//! The bad-input table: each bad input gets one line on stderr naming the thing, the
//! documented exit code, and nothing launched, changed or lost. A row's failure names the row.

use e2e::{Case, Run};
use serde_json::json;
use std::collections::BTreeMap;

/// Calls that change something in AWS: none may be made for bad input.
const MUTATING: &[&str] = &[
    "RunInstances",
    "ImportKeyPair",
    "CreateSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "TerminateInstances",
    "StopInstances",
    "StartInstances",
    "CreateTags",
];

fn files(c: &Case) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(c.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Run a bad input: exit `code`, one stderr line `<tool>: …` containing `needle`, no
/// mutating AWS call, every file of the directory unchanged.
fn bad(
    c: &Case,
    row: &str,
    tool: &str,
    args: &[&str],
    env: &[(&str, &str)],
    code: i32,
    needle: &str,
) -> Run {
    let before = files(c);
    c.faults(json!({}));
    let r = c.run_with(tool, args, env);
    assert_eq!(r.code, code, "row {row:?}: exit code\n{r}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "row {row:?}: one line on stderr\n{r}");
    assert!(
        lines[0].starts_with(&format!("{tool}: ")),
        "row {row:?}: names the tool\n{r}"
    );
    assert!(
        r.stderr.contains(needle),
        "row {row:?}: wanted {needle:?}\n{r}"
    );
    assert!(r.stdout.is_empty(), "row {row:?}: no data on stdout\n{r}");
    let calls = c.counters()["calls"].clone();
    for m in MUTATING {
        assert!(
            calls.get(m).is_none(),
            "row {row:?}: made a {m} call: {calls}"
        );
    }
    assert_eq!(files(c), before, "row {row:?}: a file changed");
    r
}

const ID: &str = "i-0123456789abcdef0";

#[test]
fn broken_descriptors_are_named_and_never_deleted() {
    let c = Case::new();
    for (row, text, needle) in [
        ("empty", "", "descriptor is not valid JSON"),
        (
            "truncated",
            "{\"id\": \"i-0123456789abcdef0\", \"index\": 1",
            "descriptor is not valid JSON",
        ),
        ("not JSON", "hello\n", "descriptor is not valid JSON"),
        (
            "foreign JSON",
            "{\"foo\": 1}\n",
            "descriptor is not valid JSON",
        ),
    ] {
        std::fs::write(c.path().join(ID), text).unwrap();
        for tool in ["ec2-exec-remote", "ec2-status", "ec2-killall", "ec2-create"] {
            let args: &[&str] = match tool {
                "ec2-exec-remote" => &["true"],
                "ec2-create" => &["1"],
                _ => &[],
            };
            bad(
                &c,
                &format!("{row} / {tool}"),
                tool,
                args,
                &[],
                2,
                &format!("{ID}: {needle}"),
            );
        }
    }
}

#[test]
fn bad_counts_flags_and_selections_are_usage_errors() {
    let c = Case::new();
    for (row, tool, args, needle) in [
        ("N = 0", "ec2-create", &["0"][..], "0"),
        ("N = -1", "ec2-create", &["-1"][..], "-1"),
        ("N = abc", "ec2-create", &["abc"][..], "abc"),
        ("N = 10^9", "ec2-create", &["1000000000"][..], "1000000000"),
        (
            "unknown flag",
            "ec2-status",
            &["--frobnicate"][..],
            "--frobnicate",
        ),
        (
            "--select 99",
            "ec2-exec-remote",
            &["--select", "99", "true"][..],
            "99",
        ),
        (
            "--select garbage",
            "ec2-exec-remote",
            &["--select", "x-y", "true"][..],
            "x-y",
        ),
        (
            "--from garbage ids",
            "ec2-exec-remote",
            &["--from", "ids.txt", "true"][..],
            "not-an-id",
        ),
        (
            "--from unknown id",
            "ec2-exec-remote",
            &["--from", "unknown.txt", "true"][..],
            ID,
        ),
        (
            "--at in the past",
            "ec2-exec-remote",
            &["--at", "2001-01-01T00:00:00Z", "true"][..],
            "in the past",
        ),
        (
            "--at next week",
            "ec2-exec-remote",
            &["--at", "+8d", "true"][..],
            "away",
        ),
        (
            "--command-timeout abc",
            "ec2-exec-remote",
            &["--command-timeout", "abc", "true"][..],
            "abc",
        ),
        (
            "--open 70000",
            "ec2-create",
            &["1", "--open", "70000"][..],
            "70000",
        ),
        (
            "--type ''",
            "ec2-create",
            &["1", "--type", ","][..],
            "empty",
        ),
        // AWS would refuse these at RunInstances, after the key pair and group were made.
        (
            "--type banana",
            "ec2-create",
            &["1", "--add", "--type", "t3.micro,banana"][..],
            "banana",
        ),
        (
            "--type Graviton for an x86 AMI",
            "ec2-create",
            &["1", "--add", "--type", "c7g.large"][..],
            "--type c7g.large runs arm64, but the AMI",
        ),
        (
            "--ami banana",
            "ec2-create",
            &["1", "--ami", "banana"][..],
            "banana\": expected an AMI id",
        ),
        (
            "--region misspelt",
            "ec2-create",
            &["1", "--region", "eu-wset-1"][..],
            "the nearest is eu-west-1",
        ),
        (
            "--tag aws:",
            "ec2-create",
            &["1", "--tag", "aws:x=1"][..],
            "aws:",
        ),
        (
            "--volume-size 0",
            "ec2-create",
            &["1", "--volume-size", "0"][..],
            "1 to 16384",
        ),
    ] {
        std::fs::write(c.path().join("ids.txt"), "not-an-id 127.0.0.1\n").unwrap();
        std::fs::write(c.path().join("unknown.txt"), format!("{ID}\n")).unwrap();
        if row.starts_with("--select")
            || row.starts_with("--at")
            || row.starts_with("--command-timeout")
        {
            // A real instance, so the selection itself is what is wrong.
            if c.descriptors().is_empty() {
                c.create(1);
            }
        }
        bad(&c, row, tool, args, &[], 2, needle);
    }
}

#[test]
fn bad_identities_are_refused_once_before_anything_is_launched() {
    let c = Case::new();
    let garbage = c.path().join("garbage_key");
    std::fs::write(&garbage, "this is not a key\n").unwrap();
    let locked = c.path().join("locked_key");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "pass phrase", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(ok.success());
    let g = garbage.to_str().unwrap();
    let l = locked.to_str().unwrap();
    for (row, tool, args, needle) in [
        (
            "missing identity",
            "ec2-create",
            vec!["2", "-i", "/nonexistent/key"],
            "not found",
        ),
        (
            "a directory",
            "ec2-create",
            vec!["2", "-i", "/"],
            "identity file /",
        ),
        (
            "garbage identity",
            "ec2-create",
            vec!["2", "-i", g],
            "not a private key",
        ),
        (
            "passphrase, no agent",
            "ec2-create",
            vec!["2", "-i", l],
            "no ssh-agent",
        ),
    ] {
        bad(&c, row, tool, &args, &[], 2, needle);
    }
    // ec2-exec-remote says it once, not once per host.
    c.create(3);
    let r = bad(
        &c,
        "passphrase / exec-remote",
        "ec2-exec-remote",
        &["-i", l, "true"],
        &[],
        2,
        "no ssh-agent",
    );
    r.stderr_lacks("i-");
}

#[test]
fn bad_settings_and_aws_configuration_are_named() {
    let c = Case::new();
    for (row, file, needle) in [
        (
            "unknown key",
            r#"{"instance_typo": "t3.micro"}"#,
            "instance_typo",
        ),
        ("wrong type", r#"{"name_tags": "maybe"}"#, "name_tags"),
        ("invalid JSON", r#"{"ami": "#, "ec2-tools.json"),
    ] {
        std::fs::write(c.path().join("ec2-tools.json"), file).unwrap();
        bad(&c, row, "ec2-create", &["1"], &[], 2, needle);
    }
    std::fs::remove_file(c.path().join("ec2-tools.json")).unwrap();

    // No credentials at all: said in words (2), nothing called.
    let r = c
        .tool("ec2-status")
        .unset(&["AWS_ACCESS_KEY_ID"])
        .unset(&["AWS_SECRET_ACCESS_KEY"])
        .run();
    // With no descriptors ec2-status still asks AWS for untracked instances of the case.
    assert_eq!(r.code, 2, "{r}");
    r.stderr_has("credentials");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");

    // An endpoint refusing connections: one line, exit 3, at once (not after a minute of
    // retries: a refused connection is a wrong endpoint, not a passing fault).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{dead}");
    let r = c.run_with("ec2-create", &["1"], &[("AWS_ENDPOINT_URL", &url)]);
    r.assert_code(3);
    r.stderr_has("cannot reach the EC2 API");
    r.within(std::time::Duration::from_secs(10));
}

#[test]
fn instance_data_and_odd_commands_are_passed_exactly_and_never_executed() {
    let c = Case::new();
    c.create(1);
    let marker = c.path().join("pwned");
    // Instance data as an attacker (or a typo) could leave it: never run.
    let id = c.descriptors().keys().next().unwrap().clone();
    let evil = format!("$(touch {})", marker.display());
    c.edit(&id, |d| d["private_dns"] = json!(evil));
    let r = c.run(
        "ec2-exec-local",
        &["printf '%s\\n' \"$CURRENT_AMI_PRIVATE_DNS\""],
    );
    r.assert_code(0);
    r.stdout_has(&evil);
    assert!(!marker.exists(), "instance data was executed");

    // Quotes, newlines, $(…), unicode: the remote shell sees the command as written.
    let cmd = "printf '%s|' \"it's\" \"$(echo sub)\" 'ünïcødé ✓'; printf '\\nline2\\n'";
    let r = c.run("ec2-exec-remote", &[cmd]);
    r.assert_code(0);
    r.stdout_has("it's|sub|ünïcødé ✓|");
    r.stdout_has(": line2");

    // Binary output in --json is carried exactly, as base64.
    let r = c.run("ec2-exec-remote", &["--json", "printf '\\377\\376\\000x'"]);
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["stdout_base64"], "//4AeA==", "{r}");

    // A 10 MB line arrives whole.
    let r = c.run(
        "ec2-exec-remote",
        &["head -c 10000000 /dev/zero | tr '\\0' x; echo"],
    );
    r.assert_code(0);
    let line = r.stdout.lines().next().unwrap();
    assert_eq!(
        line.len(),
        10_000_000 + line.find('x').unwrap(),
        "prefix + 10 MB"
    );

    // A descriptor edited to an address outside EC2_TOOLS_SSH_ALLOW: refused before connecting.
    c.edit(&id, |d| d["private_ip"] = json!("192.0.2.1"));
    let r = c.run("ec2-exec-remote", &["true"]);
    assert_ne!(r.code, 0, "{r}");
    r.stderr_has("EC2_TOOLS_SSH_ALLOW");
    r.within(std::time::Duration::from_secs(3));
}

#[test]
fn a_dummy_secret_never_appears_in_any_output() {
    let c = Case::new();
    let secret = "SECRETMARKER0123456789abcdefghijklmnopqrs";
    let env = [("AWS_SECRET_ACCESS_KEY", secret)];
    let mut all = String::new();
    for (tool, args) in [
        ("ec2-create", vec!["2", "--timeout", "60"]),
        ("ec2-status", vec!["--show-config"]),
        ("ec2-status", vec!["--json", "--check"]),
        ("ec2-exec-remote", vec!["env"]),
        ("ec2-create", vec!["abc"]),
        ("ec2-killall", vec![]),
    ] {
        let r = c.run_with(tool, &args, &env);
        all.push_str(&r.stdout);
        all.push_str(&r.stderr);
    }
    assert!(!all.contains(secret), "the secret leaked");
    // Private keys the tools write are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(c.path().join(".ec2-tools")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == "case_key" {
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}

/// ec2-killall in a directory that never held a case used to leave `.ec2-tools/` behind.
#[test]
fn killall_in_an_empty_directory_leaves_it_empty() {
    let c = Case::new();
    let before = files(&c);
    c.run("ec2-killall", &[]).assert_code(0);
    let state = c.path().join(".ec2-tools");
    let left: Vec<_> = std::fs::read_dir(&state)
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !state.exists(),
        "state made in an empty directory: {left:?}"
    );
    assert_eq!(files(&c), before);
}

/// ec2-status in an empty directory exited 0 without a word, while every other tool said how
/// to start; it now says so too (exit 0: an empty listing is a true answer).
#[test]
fn status_in_an_empty_directory_says_how_to_start() {
    let c = Case::new();
    let r = c.run("ec2-status", &[]);
    r.assert_code(0);
    assert_eq!(r.stdout, "");
    r.stderr_has("no instance descriptors in")
        .stderr_has("run ec2-create there first");
}
