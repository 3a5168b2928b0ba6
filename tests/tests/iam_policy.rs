//! The IAM policy `ec2-tools iam-policy` prints, proven (issue 21): a test case's whole life
//! runs as an IAM user allowed exactly its actions, with the emulator enforcing IAM on every
//! call; without one of them the run fails naming the action. A test binary of its own:
//! enforcement is the whole emulator's, and every other test's key would be refused.
//!
//! What moto checks: each call's signature and action against the user's policy. It evaluates
//! neither resources nor conditions, so the user is given the policy's actions on every
//! resource; the tag conditions are AWS's to check (README, "Known differences").

use e2e::Case;
use serde_json::Value;

#[test]
fn a_test_case_runs_under_exactly_the_printed_policy_and_fails_naming_a_missing_action() {
    let c = Case::new();
    let r = c.run("ec2-tools", &["iam-policy"]);
    r.succeeds();
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["Version"], "2012-10-17");
    let policy = c.path().join("policy.json");
    std::fs::write(&policy, &r.stdout).unwrap();
    let policy = policy.to_str().unwrap();
    let user = |name: &str, drop: &[&str]| -> (String, String) {
        let mut args = vec!["iam-user", name, policy];
        args.extend(drop);
        let v: Value = serde_json::from_str(&c.python(&args)).unwrap();
        (
            v["key"].as_str().unwrap().to_owned(),
            v["secret"].as_str().unwrap().to_owned(),
        )
    };
    let full = user(&format!("{}-full", c.name()), &[]);
    let short = user(&format!("{}-short", c.name()), &["ec2:RunInstances"]);
    c.python(&["enforce-iam", "-"]);
    let env = |k: &(String, String)| {
        vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), k.0.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), k.1.clone()),
        ]
    };
    let as_user = |k: &(String, String), tool: &str, args: &[&str]| {
        let env = env(k);
        let env: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        c.tool(tool).args(args).envs(&env).run()
    };

    // Not allowed: refused by the emulator, as AWS would, before a key the test made works.
    let r = c.run("ec2-status", &[]);
    assert_ne!(r.code, 0, "enforcing: {r}");

    // The tour, as the user with the printed policy.
    std::fs::write(
        c.path().join("load.sh"),
        "#!/bin/sh\necho served > out.txt\n",
    )
    .unwrap();
    as_user(&full, "ec2-create", &["2", "--timeout", "60"]).succeeds();
    as_user(&full, "ec2-put", &["load.sh", "."]).succeeds();
    as_user(&full, "ec2-exec-remote", &["sh load.sh"]).succeeds();
    as_user(&full, "ec2-get", &["out.txt", "results"]).succeeds();
    as_user(&full, "ec2-status", &["--check"]).succeeds();
    as_user(&full, "ec2-stop", &["--select", "2"]).succeeds();
    as_user(&full, "ec2-start", &["--select", "2"]).succeeds();
    as_user(&full, "ec2-reboot", &["--select", "1"]).succeeds();
    as_user(&full, "ec2-killall", &[]).succeeds();
    assert!(c.descriptors().is_empty());

    // One action less: the run fails, naming it; what it made is cleaned up by the other.
    let r = as_user(&short, "ec2-create", &["1", "--timeout", "60"]);
    assert_ne!(r.code, 0, "{r}");
    r.stderr_has("RunInstances").stderr_has("ec2:RunInstances");
    as_user(&full, "ec2-killall", &[]).succeeds();
}
