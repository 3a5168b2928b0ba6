//! End-to-end tests of the fleet lifecycle (roles, selectors, status, stop/start/reboot/revert,
//! reconcile, automatic key pair and security group, TTL, spot, config file) on the local cloud.

use e2e::Case;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

fn ids(lines: &[(String, String)]) -> Vec<String> {
    lines.iter().map(|(i, _)| i.clone()).collect()
}

fn index_of(c: &Case) -> BTreeMap<u64, Value> {
    c.descriptors()
        .into_values()
        .map(|d| (d["index"].as_u64().unwrap(), d))
        .collect()
}

/// The `ec2-status --show-config` line of one setting.
fn setting_line(r: &e2e::Run, key: &str) -> String {
    r.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no {key}: {r}"))
        .to_owned()
}

fn instance(c: &Case, id: &str) -> Value {
    serde_json::from_str(&c.python(&["instance", id])).unwrap()
}

#[test]
fn roles_get_unique_indexes_and_selectors_intersect() {
    let c = Case::new();
    let master = c.run("ec2-create", &["1", "--role", "master"]);
    master.assert_code(0);
    let slaves = c.run("ec2-create", &["2", "--role", "slave"]);
    slaves.assert_code(0);
    let by_index = index_of(&c);
    assert_eq!(by_index.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(by_index[&1]["role"], "master");
    assert_eq!(by_index[&2]["role"], "slave");
    assert_eq!(
        instance(&c, by_index[&3]["id"].as_str().unwrap())["tags"]["ec2-tools:role"],
        "slave"
    );
    assert_eq!(
        slaves.stdout.lines().count(),
        2,
        "create prints the role's instances: {slaves}"
    );

    let r = c.run("ec2-exec-remote", &["--role", "slave", "echo hi"]);
    r.assert_code(0);
    assert_eq!(r.stdout.lines().count(), 2);
    let r = c.run("ec2-exec-remote", &["--select", "1,3", "echo hi"]);
    assert_eq!(r.stdout.lines().count(), 2);
    let r = c.run(
        "ec2-exec-remote",
        &["--select", "2-3", "--role", "slave", "echo hi"],
    );
    assert_eq!(r.stdout.lines().count(), 2);
    // An empty intersection is an error, never a silent success.
    let r = c.run(
        "ec2-exec-remote",
        &["--role", "master", "--select", "2", "echo hi"],
    );
    r.assert_code(2);
    r.stderr_has("matches no instance");
    c.run("ec2-killall", &["--role", "nosuch"]).assert_code(2);
    assert_eq!(c.live_instances().len(), 3);
}

#[test]
fn create_means_ensure_n_and_starts_stopped_and_max_trims_highest_first() {
    let c = Case::new();
    let first = c.create(3);
    // Re-running the same script never grows the fleet.
    let again = c.run("ec2-create", &["3"]);
    again.assert_code(0);
    assert!(again.stderr.contains("launching none"), "{again}");
    assert_eq!(
        ids(&first),
        again
            .stdout
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    );
    assert_eq!(c.live_instances().len(), 3);

    // A stopped instance is started, not replaced.
    c.run("ec2-stop", &["--select", "2"]).assert_code(0);
    assert_eq!(index_of(&c)[&2]["state"], "stopped");
    let r = c.run("ec2-create", &["3"]);
    r.assert_code(0);
    assert_eq!(index_of(&c)[&2]["state"], "running");
    assert_eq!(c.live_instances().len(), 3);

    // --add launches more regardless; --max trims, highest index first.
    c.run("ec2-create", &["1", "--add"]).assert_code(0);
    assert_eq!(
        index_of(&c).keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let r = c.run("ec2-create", &["2", "--max", "2"]);
    r.assert_code(0);
    assert_eq!(index_of(&c).keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(c.live_instances().len(), 2, "{r}");
    c.run("ec2-create", &["3", "--max", "2"]).assert_code(2);
}

#[test]
fn a_crash_right_after_run_instances_is_recovered_without_duplicates() {
    let c = Case::new();
    let out = c
        .cmd("ec2-create")
        .arg("3")
        .env("EC2_TOOLS_FAULT", "after-run-instances")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        c.descriptors().is_empty(),
        "the crash came before any descriptor"
    );
    assert_eq!(c.live_instances().len(), 3, "the instances exist in AWS");
    let r = c.run("ec2-create", &["3"]);
    r.assert_code(0);
    r.stderr_has("adopted");
    assert_eq!(c.live_instances().len(), 3, "exactly N instances: {r}");
    assert_eq!(
        index_of(&c).keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn status_lists_instances_untracked_ones_and_checks_ssh() {
    let c = Case::new();
    let hosts = c.create(2);
    // An instance of the case that the directory does not know.
    let stray: Vec<String> =
        serde_json::from_str(&c.python(&["run", &c.name(), "1", "someone@elsewhere"])).unwrap();
    let r = c.run("ec2-status", &[]);
    r.assert_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r}");
    for (i, (id, addr)) in hosts.iter().enumerate() {
        let f: Vec<&str> = lines[i].split_whitespace().collect();
        assert_eq!(
            &f[..5],
            &[
                &(i + 1).to_string(),
                id.as_str(),
                "-",
                "running",
                addr.as_str()
            ],
            "{r}"
        );
    }
    assert!(
        lines[2].contains(&stray[0]) && lines[2].contains("untracked"),
        "{r}"
    );

    let r = c.run("ec2-status", &["--json", "--check"]);
    r.assert_code(0);
    let objs: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs[0]["ssh"], "ok");
    assert_eq!(objs[0]["tracked"], true);
    assert_eq!(objs[2]["tracked"], false);

    let port: u64 = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().into()
    };
    c.edit(&hosts[1].0, |d| d["ssh"]["port"] = Value::from(port));
    let r = c.run_without("ec2-status", &["--check"], &["EC2_TOOLS_SSH_PORT"]);
    r.assert_code(1);
    assert!(
        r.stdout.lines().nth(1).unwrap().contains("ssh-failed"),
        "{r}"
    );
}

#[test]
fn stop_start_and_reboot_wait_for_their_state_and_update_descriptors() {
    let c = Case::new();
    let hosts = c.create(2);
    let r = c.run("ec2-stop", &[]);
    r.assert_code(0);
    assert_eq!(r.stdout.lines().count(), 2);
    for (id, _) in &hosts {
        assert_eq!(instance(&c, id)["state"], "stopped");
        assert_eq!(c.descriptors()[id]["state"], "stopped");
    }
    let r = c.run("ec2-start", &["--select", "1"]);
    r.assert_code(0);
    assert_eq!(
        r.stdout.lines().next().unwrap().split(' ').next().unwrap(),
        hosts[0].0
    );
    assert_eq!(instance(&c, &hosts[0].0)["state"], "running");
    assert_eq!(instance(&c, &hosts[1].0)["state"], "stopped");
    c.run("ec2-start", &[]).assert_code(0);
    // The emulator does not really reboot: the grace period lets the unchanged boot id pass.
    let r = c.run("ec2-reboot", &["--reboot-grace", "1s"]);
    r.assert_code(0);
    assert_eq!(r.stdout.lines().count(), 2, "{r}");
    // Exec still reaches the instances afterwards.
    c.run("ec2-exec-remote", &["true"]).assert_code(0);
}

#[test]
fn revert_keeps_index_role_and_name_in_batch_and_sequential_modes() {
    let c = Case::new();
    c.run("ec2-create", &["1", "--role", "master"])
        .assert_code(0);
    c.run("ec2-create", &["2", "--role", "slave"])
        .assert_code(0);
    let before = index_of(&c);
    let r = c.run("ec2-revert", &["--select", "2-3"]);
    r.assert_code(0);
    // Regression: ec2-revert announced its launches as ec2-create.
    r.stderr_has("ec2-revert: launched")
        .stderr_lacks("ec2-create");
    let after = index_of(&c);
    assert_eq!(after.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(
        after[&1]["id"], before[&1]["id"],
        "unselected instance untouched"
    );
    for i in [2, 3] {
        assert_ne!(after[&i]["id"], before[&i]["id"]);
        assert_eq!(after[&i]["role"], "slave");
        let new = instance(&c, after[&i]["id"].as_str().unwrap());
        assert_eq!(new["tags"]["Name"], format!("{}.{i}", c.name()));
        assert_eq!(
            instance(&c, before[&i]["id"].as_str().unwrap())["state"],
            "terminated"
        );
        assert!(
            !c.path().join(before[&i]["id"].as_str().unwrap()).exists(),
            "old descriptor replaced"
        );
    }
    let r = c.run("ec2-revert", &["--sequential"]);
    r.assert_code(0);
    let seq = index_of(&c);
    assert_eq!(seq.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(seq[&1]["role"], "master");
    for i in [1, 2, 3] {
        assert_ne!(seq[&i]["id"], after[&i]["id"]);
    }
    assert_eq!(c.live_instances().len(), 3, "{r}");
}

#[test]
fn case_key_pair_and_security_group_are_made_once_and_deleted_with_the_last_instance() {
    let mut c = Case::new();
    // No identity configured: the case key is made, registered and used to log in (the
    // local cloud's instances accept only their launch key pair, as EC2's do).
    c.env.remove("EC2_TOOLS_SSH_KEY");
    let hosts = c.create(1);
    let key = c.path().join(".ec2-tools/case_key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    assert!(pubkey.starts_with("ssh-ed25519 "));
    let keypairs: Vec<String> = serde_json::from_str(&c.python(&["keypairs", &c.name()])).unwrap();
    assert_eq!(keypairs.len(), 1);
    let groups: Vec<Value> = serde_json::from_str(&c.python(&["groups", &c.name()])).unwrap();
    assert_eq!(groups.len(), 1);
    let caller = &c.env["EC2_TOOLS_SSH_CIDR"];
    assert_eq!(
        groups[0]["rules"],
        serde_json::json!([
            ["-1", null, null, [], ["self"]],
            ["tcp", 22, 22, [caller], []]
        ]),
        "SSH only from the SSH CIDR, and the case's instances reach each other"
    );
    let inst = instance(&c, &hosts[0].0);
    assert_eq!(inst["key"], keypairs[0].as_str());
    assert_eq!(inst["groups"], serde_json::json!([groups[0]["id"]]));

    // A second launch reuses them.
    c.run("ec2-create", &["1", "--add"]).assert_code(0);
    let keypairs2: Vec<String> = serde_json::from_str(&c.python(&["keypairs", &c.name()])).unwrap();
    assert_eq!(keypairs2, keypairs);

    let r = c.run("ec2-killall", &[]);
    r.assert_code(0);
    r.stderr_has("deleted security group");
    let keypairs: Vec<String> = serde_json::from_str(&c.python(&["keypairs", &c.name()])).unwrap();
    assert!(keypairs.is_empty());
    let groups: Vec<Value> = serde_json::from_str(&c.python(&["groups", &c.name()])).unwrap();
    assert!(groups.is_empty());
    assert!(!key.exists());
}

#[test]
fn no_ssh_cidr_is_refused_rather_than_opening_ssh_to_the_world() {
    let c = Case::new();
    let r = c
        .tool("ec2-create")
        .arg("1")
        .unset(&["EC2_TOOLS_SSH_CIDR"])
        .env("EC2_TOOLS_ADDRESS", "public-ip")
        .run();
    r.assert_code(2);
    r.stderr_has("--ssh-cidr");
    assert!(c.live_instances().is_empty());
}

#[test]
fn ttl_schedules_a_shutdown_that_terminates_and_expired_instances_are_swept() {
    let c = Case::new();
    let hosts = c.run("ec2-create", &["1", "--ttl", "90m"]);
    hosts.assert_code(0);
    let id = hosts.stdout.split(' ').next().unwrap().to_owned();
    let inst = instance(&c, &id);
    assert!(
        inst["user_data"]
            .as_str()
            .unwrap()
            .contains("shutdown -h +90"),
        "{inst}"
    );
    assert_eq!(inst["shutdown_behavior"], "terminate");
    let expires = inst["tags"]["ec2-tools:expires"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(expires.ends_with('Z'));

    // --ttl off: no user data, no tag.
    let d = Case::new();
    let r = d.run("ec2-create", &["1", "--ttl", "off"]);
    r.assert_code(0);
    let inst = instance(&d, r.stdout.split(' ').next().unwrap());
    assert!(
        inst["user_data"].is_null() && inst["tags"].get("ec2-tools:expires").is_none(),
        "{inst}"
    );

    // An expired instance whose own shutdown never came (the machine hung before its TTL:
    // its user data runs the shutdown otherwise) is swept from any directory.
    let e = Case::new();
    let r = e.run("ec2-create", &["1", "--ttl", "5s"]);
    r.assert_code(0);
    let expired = r.stdout.split(' ').next().unwrap().to_owned();
    e.crash_machine(&expired);
    std::thread::sleep(Duration::from_secs(6));
    let elsewhere = Case::new();
    let r = elsewhere.run("ec2-killall", &["--expired"]);
    r.assert_code(0);
    r.stdout_has(&expired);
    assert!(!r.stdout.contains(&id), "unexpired instance kept: {r}");
    assert_eq!(instance(&c, &id)["state"], "running");
}

#[test]
fn spot_launches_are_recorded_in_descriptors() {
    let c = Case::new();
    let r = c.run("ec2-create", &["1", "--spot"]);
    r.assert_code(0);
    let d = c.descriptors().into_values().next().unwrap();
    assert_eq!(d["market"], "spot");
    assert_eq!(
        instance(&c, d["id"].as_str().unwrap())["tags"]["ec2-tools:market"],
        "spot"
    );
    let r = c.run("ec2-create", &["1", "--add", "--spot=fallback"]);
    r.assert_code(0);
    let r = c.run("ec2-create", &["1", "--add"]);
    r.assert_code(0);
    let markets: Vec<String> = index_of(&c)
        .values()
        .map(|d| d["market"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(markets, vec!["spot", "spot", "on-demand"]);
}

#[test]
fn config_file_sits_below_env_and_flags_and_rejects_unknown_keys() {
    let root = tempfile::tempdir().unwrap();
    let c = Case::new();
    // The file in a parent directory applies; the nearer one wins.
    std::fs::write(
        root.path().join("ec2-tools.json"),
        r#"{"instance_type": "t3.small", "ttl": "2h"}"#,
    )
    .unwrap();
    let dir = root.path().join("case1");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("ec2-tools.json"), r#"{"ttl": "off"}"#).unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        // Options before the command: every word after it is the command's (as with ssh).
        let mut cmd = c.cmd(args[0]);
        cmd.arg("--dir")
            .arg(&dir)
            .args(&args[1..])
            .env("EC2_TOOLS_CASE", c.name());
        for (k, v) in env {
            cmd.env(k, v);
        }
        e2e::Run::new(cmd.output().unwrap(), Duration::ZERO)
    };
    let r = run(&["ec2-status", "--show-config"], &[]);
    r.assert_code(0);
    let line = |key: &str| setting_line(&r, key);
    assert!(
        line("instance_type").contains("t3.small")
            && line("instance_type").contains(&format!(
                "file {}",
                root.path().join("ec2-tools.json").display()
            )),
        "{r}"
    );
    assert!(
        line("ttl").contains("off") && line("ttl").contains("case1/ec2-tools.json"),
        "{r}"
    );
    assert!(line("ssh_port").contains("env EC2_TOOLS_SSH_PORT"), "{r}");
    assert!(line("connect_timeout").contains("default"), "{r}");

    let r2 = run(&["ec2-create", "1"], &[]);
    r2.assert_code(0);
    let id = r2.stdout.split(' ').next().unwrap().to_owned();
    assert_eq!(instance(&c, &id)["type"], "t3.small");
    // Environment beats the file, flags beat the environment.
    let r3 = run(
        &["ec2-create", "1", "--add"],
        &[("EC2_TOOLS_INSTANCE_TYPE", "t3.large")],
    );
    r3.assert_code(0);
    assert_eq!(
        instance(
            &c,
            r3.stdout.lines().last().unwrap().split(' ').next().unwrap()
        )["type"],
        "t3.large"
    );
    let r4 = run(
        &["ec2-create", "1", "--add", "--type", "t3.nano"],
        &[("EC2_TOOLS_INSTANCE_TYPE", "t3.large")],
    );
    r4.assert_code(0);
    assert_eq!(
        instance(
            &c,
            r4.stdout.lines().last().unwrap().split(' ').next().unwrap()
        )["type"],
        "t3.nano"
    );

    std::fs::write(dir.join("ec2-tools.json"), r#"{"instance_typo": "x"}"#).unwrap();
    let r = run(&["ec2-exec-remote", "true"], &[]);
    r.assert_code(2);
    r.stderr_has("unknown key \"instance_typo\"")
        .stderr_has("case1/ec2-tools.json");
    std::fs::write(dir.join("ec2-tools.json"), "{}").unwrap();
    run(&["ec2-killall"], &[]).assert_code(0);
    assert!(c.live_instances().is_empty());
}

#[test]
fn region_from_aws_region_beats_the_settings_file_and_show_config_reports_without_checking() {
    let c = Case::new();
    std::fs::write(
        c.path().join("ec2-tools.json"),
        r#"{"region": "eu-west-1", "ssh_key": "keys/missing_key"}"#,
    )
    .unwrap();
    let r = c.run_without("ec2-status", &["--show-config"], &["EC2_TOOLS_SSH_KEY"]);
    r.assert_code(0);
    let line = |key: &str| setting_line(&r, key);
    let region = c.env["AWS_REGION"].clone();
    assert_ne!(region, "eu-west-1");
    assert!(
        line("region").contains(&region) && line("region").ends_with("env AWS_REGION"),
        "{r}"
    );
    assert!(
        line("ssh_key").contains("keys/missing_key") && line("ssh_key").contains(" file "),
        "{r}"
    );
    // A tool that logs in does check it: exit 2, naming the file, before anything is launched.
    let r = c.run_without("ec2-create", &["1"], &["EC2_TOOLS_SSH_KEY"]);
    r.assert_code(2);
    r.stderr_has("keys/missing_key: not found");
    assert!(c.live_instances().is_empty());

    // The instance goes where AWS_REGION says, not where the file says.
    std::fs::write(
        c.path().join("ec2-tools.json"),
        r#"{"region": "eu-west-1"}"#,
    )
    .unwrap();
    let hosts = c.create(1);
    assert_eq!(c.descriptors()[&hosts[0].0]["region"], region.as_str());
    assert_eq!(c.live_instances(), vec![hosts[0].0.clone()]);
}

#[test]
fn a_wrong_subnet_or_ami_is_exit_2_before_any_key_pair_or_group_is_made() {
    let c = Case::new();
    for (var, value) in [
        ("EC2_TOOLS_SUBNET_ID", "subnet-0123456789abcdef0"),
        ("EC2_TOOLS_AMI", "ami-0123456789abcdef0"),
    ] {
        let r = c.run_with("ec2-create", &["1"], &[(var, value)]);
        r.assert_code(2);
        r.stderr_has(value);
        let keypairs: Vec<String> =
            serde_json::from_str(&c.python(&["keypairs", &c.name()])).unwrap();
        assert!(
            keypairs.is_empty(),
            "key pair imported before the check: {r}"
        );
        let groups: Vec<Value> = serde_json::from_str(&c.python(&["groups", &c.name()])).unwrap();
        assert!(groups.is_empty(), "{r}");
        assert!(c.live_instances().is_empty());
    }
}
