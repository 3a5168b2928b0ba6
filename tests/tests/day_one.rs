//! Day one on a real AWS account (issue 21): an image by name with nothing configured, quotas
//! and cost before anything is made, the user's own user data beside the tools' TTL part.

use e2e::Case;
use serde_json::Value;

fn launched(c: &Case, id: &str) -> Value {
    serde_json::from_str(&c.python(&["launched", id])).unwrap()
}

fn by_role(c: &Case, role: &str) -> Vec<(String, Value)> {
    c.descriptors()
        .into_iter()
        .filter(|(_, d)| d["role"] == role)
        .collect()
}

#[test]
fn with_no_ami_configured_each_type_launches_the_ubuntu_alias_for_its_architecture() {
    let c = Case::new();
    // Nothing configured: the latest Ubuntu LTS, from Canonical's public SSM parameter, for
    // the x86 default type — and for a Graviton type, its arm64 build.
    let r = c
        .tool("ec2-create")
        .args(&["1", "--role", "x86", "--timeout", "60"])
        .unset(&["EC2_TOOLS_AMI"])
        .run();
    r.succeeds()
        .stderr_has("--ami ubuntu (x86_64): ami-")
        .stderr_has("ubuntu-noble-24.04-amd64-server");
    let r = c
        .tool("ec2-create")
        .args(&[
            "1",
            "--role",
            "arm",
            "--type",
            "c7g.large",
            "--timeout",
            "60",
        ])
        .unset(&["EC2_TOOLS_AMI"])
        .run();
    r.succeeds().stderr_has("--ami ubuntu (arm64): ami-");
    for (role, arch, deb) in [("x86", "x86_64", "amd64"), ("arm", "arm64", "arm64")] {
        let hosts = by_role(&c, role);
        assert_eq!(hosts.len(), 1, "{role}");
        let (id, d) = &hosts[0];
        let l = launched(&c, id);
        assert_eq!(l["image"]["architecture"], arch, "{l}");
        assert_eq!(l["image"]["owner"], "099720109477", "Canonical's: {l}");
        let name = l["image"]["name"].as_str().unwrap();
        assert!(name.contains(&format!("24.04-{deb}")), "{l}");
        // The resolved id and name are recorded in the descriptor.
        assert_eq!(d["ami"], l["image"]["id"], "{d}");
        assert_eq!(d["ami_name"], name, "{d}");
    }

    // The other aliases and the parameter form, each for its architecture.
    for (ami, itype, piece, arch) in [
        ("al2023", "c7g.large", "al2023-ami-", "arm64"),
        ("debian-12", "t3.micro", "debian-12-amd64", "x86_64"),
        (
            "ubuntu-22.04",
            "t4g.micro",
            "ubuntu-jammy-22.04-arm64",
            "arm64",
        ),
        (
            "resolve:ssm:/aws/service/debian/release/12/latest/arm64",
            "c7g.large",
            "debian-12-arm64",
            "arm64",
        ),
    ] {
        let r = c
            .tool("ec2-create")
            .args(&["1", "--add", "--role", "alias", "--ami", ami])
            .args(&["--type", itype, "--timeout", "60"])
            .run();
        r.succeeds().stderr_has(piece);
        let newest = by_role(&c, "alias")
            .into_iter()
            .max_by_key(|(_, d)| d["index"].as_u64())
            .unwrap();
        let l = launched(&c, &newest.0);
        assert_eq!(l["image"]["architecture"], arch, "{ami}: {l}");
        assert_eq!(l["type"], itype, "{ami}: {l}");
    }

    // An AMI id for the wrong architecture, and a parameter that does not exist: refused
    // before anything is made, naming them.
    let before = c.descriptors().len();
    let x86 = by_role(&c, "x86")[0].1["ami"].as_str().unwrap().to_owned();
    let r = c.run(
        "ec2-create",
        &["1", "--add", "--ami", &x86, "--type", "c7g.large"],
    );
    r.assert_code(2)
        .stderr_has("runs arm64, but the AMI")
        .stderr_has("--ami ubuntu picks it");
    let r = c.run(
        "ec2-create",
        &[
            "1",
            "--add",
            "--ami",
            "resolve:ssm:/aws/service/nothing/here",
        ],
    );
    r.assert_code(2)
        .stderr_has("/aws/service/nothing/here: not found");
    assert_eq!(c.descriptors().len(), before, "nothing launched");
    c.run("ec2-killall", &[]).succeeds();
}

#[test]
fn a_launch_past_the_vcpu_quota_is_refused_before_any_resource_is_made() {
    let c = Case::new();
    // The account's standard on-demand quota: 4 vCPUs; t3.micro has 2.
    c.faults(serde_json::json!({"quotas": {"L-1216C47A": 4}}));
    let r = c.run("ec2-create", &["3", "--timeout", "60"]);
    r.assert_code(2)
        .stderr_has("quota L-1216C47A (Running On-Demand Standard")
        .stderr_has("need 6 vCPUs")
        .stderr_has("aws service-quotas request-service-quota-increase")
        .stderr_has("--min-ready");
    assert!(c.descriptors().is_empty(), "{r}");
    let made: Value = serde_json::from_str(&c.python(&["case-tags", &c.name()])).unwrap();
    for kind in ["key_pairs", "security_groups"] {
        assert!(made[kind].as_array().unwrap().is_empty(), "{kind}: {made}");
    }
    let calls = c.counters()["calls"].clone();
    assert!(calls.get("RunInstances").is_none(), "{calls}");
    assert_eq!(calls["GetServiceQuota"], 1, "{calls}");

    // Graviton spot counts against the spot quota, which has room.
    c.faults(serde_json::json!({"quotas": {"L-1216C47A": 4}}));
    c.run(
        "ec2-create",
        &["1", "--spot", "--type", "c7g.large", "--ami", "ubuntu"],
    )
    .succeeds();

    // Without permission to read quotas: said once, and the launch goes on.
    c.faults(serde_json::json!({"deny": ["GetServiceQuota"]}));
    let r = c.run("ec2-create", &["2", "--add", "--timeout", "60"]);
    r.succeeds()
        .stderr_has("the vCPU quota is not checked before launching");
    assert_eq!(c.descriptors().len(), 3);
    c.run("ec2-killall", &[]).succeeds();
}

#[test]
fn cost_is_said_before_during_and_after_and_max_hourly_cost_refuses_before_anything() {
    let c = Case::new();
    // The local cloud's price table: t3.micro on-demand $0.0104/h (ec2front/catalog.py).
    let r = c.run("ec2-create", &["2", "--ttl", "2h", "--timeout", "60"]);
    r.succeeds()
        .stderr_has("cost: 2 × t3.micro on-demand at $0.0104/h; the case $0.0208/h")
        .stderr_has("at most $0.0416 by the TTL (2h)");
    // The price is cached in the case for a day: the next tools do not ask again.
    let prices: Value = serde_json::from_str(
        &std::fs::read_to_string(c.path().join(".ec2-tools/prices.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        prices["prices"]["us-east-1/t3.micro/on-demand"]["usd_per_hour"],
        0.0104
    );
    // Above the limit, counting what the case already runs: refused before anything.
    let r = c.run("ec2-create", &["1", "--add", "--max-hourly-cost", "0.03"]);
    r.assert_code(2).stderr_has(
        "the case would cost $0.0312/h after this launch, above --max-hourly-cost $0.0300",
    );
    assert_eq!(c.descriptors().len(), 2, "nothing launched: {r}");
    // A price that cannot be had is said, never invented; under a limit it refuses.
    c.faults(serde_json::json!({"deny": ["GetProducts"]}));
    let r = c.run(
        "ec2-create",
        &["1", "--add", "--type", "t3.small", "--max-hourly-cost", "5"],
    );
    r.assert_code(2)
        .stderr_has("unknown (t3.small on-demand: GetProducts: AccessDeniedException")
        .stderr_has("not launching");
    // Only the price not cached was asked for.
    assert_eq!(c.counters()["calls"]["GetProducts"], 1);
    c.faults(serde_json::json!({}));

    // During: each instance's price and cost so far, and the case's.
    let status = c.run("ec2-status", &["--json"]);
    status.succeeds().stderr_lacks("cost so far");
    // On a terminal, the case's too (a pipeline's stderr stays quiet).
    let r = c.shell("script -qec ec2-status /dev/null");
    r.succeeds()
        .stdout_has("cost so far: $0.0")
        .stdout_has("now $0.0208/h");
    for line in status.stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["usd_per_hour"], 0.0104, "{v}");
        assert!(v["cost_usd"].as_f64().unwrap() > 0.0, "{v}");
    }
    // After: the instance-hours and what they cost.
    let r = c.run("ec2-killall", &[]);
    r.succeeds()
        .stderr_has("the case ran 2 instances for 0.0")
        .stderr_has("instance-hours: $0.0");
    assert!(c.counters()["calls"].get("GetProducts").is_none(), "cached");
}

#[test]
fn the_users_user_data_is_merged_with_the_ttl_part_and_recorded_for_the_case() {
    let c = Case::new();
    let init = c.path().join("init.yaml");
    std::fs::write(
        &init,
        "#cloud-config\npackages: [wrk]\nruncmd:\n  - sysctl -w net.core.somaxconn=4096\n",
    )
    .unwrap();
    c.tool("ec2-create")
        .args(&["1", "--ttl", "1h", "--timeout", "60"])
        .arg("--user-data")
        .arg(init.to_str().unwrap())
        .run()
        .succeeds();
    let ud = |id: &str| -> Value { serde_json::from_str(&c.python(&["instance", id])).unwrap() };
    let first = c.descriptors().into_keys().next().unwrap();
    let i = ud(&first);
    let text = i["user_data"].as_str().unwrap();
    // One MIME multipart archive, as cloud-init merges: both parts, the TTL's intact.
    assert!(
        text.starts_with("Content-Type: multipart/mixed; boundary="),
        "{text}"
    );
    assert!(text.contains("Content-Type: text/x-shellscript"), "{text}");
    assert!(
        text.contains("shutdown -h +60 'ec2-tools: TTL reached'"),
        "{text}"
    );
    assert!(text.contains("Content-Type: text/cloud-config"), "{text}");
    assert!(text.contains("net.core.somaxconn=4096"), "{text}");
    assert_eq!(i["shutdown_behavior"], "terminate", "{i}");
    assert_eq!(i["user_data_gzipped"], false);

    // Recorded in the case: the next launch of it, without the flag, sends the same.
    c.run(
        "ec2-create",
        &["1", "--add", "--ttl", "1h", "--timeout", "60"],
    )
    .succeeds();
    let second = c
        .descriptors()
        .into_iter()
        .find(|(_, d)| d["index"] == 2)
        .unwrap()
        .0;
    assert_eq!(ud(&second)["user_data"], i["user_data"]);

    // Past AWS's 16 KB: gzipped, which cloud-init reads.
    let big = c.path().join("big.sh");
    let mut script = String::from("#!/bin/sh\n");
    for n in 0..1500 {
        script.push_str(&format!("echo setting up step {n}\n"));
    }
    std::fs::write(&big, &script).unwrap();
    c.tool("ec2-create")
        .args(&["1", "--add", "--timeout", "60"])
        .arg("--user-data")
        .arg(big.to_str().unwrap())
        .run()
        .succeeds();
    let third = c
        .descriptors()
        .into_iter()
        .find(|(_, d)| d["index"] == 3)
        .unwrap()
        .0;
    let i = ud(&third);
    assert_eq!(i["user_data_gzipped"], true, "{}", i["user_data_bytes"]);
    assert!(i["user_data_bytes"].as_u64().unwrap() <= 16384);
    assert!(i["user_data"]
        .as_str()
        .unwrap()
        .contains("echo setting up step 1499"));

    // What cloud-init would ignore, and a file that is not there: refused before anything.
    let notes = c.path().join("notes.txt");
    std::fs::write(&notes, "install wrk\n").unwrap();
    for (file, needle) in [
        (notes.to_str().unwrap(), "cloud-init would ignore it"),
        ("/nonexistent/init.yaml", "/nonexistent/init.yaml"),
    ] {
        let r = c.run("ec2-create", &["1", "--add", "--user-data", file]);
        r.assert_code(2).stderr_has(needle);
        assert_eq!(r.stderr.lines().count(), 1, "{r}");
    }
    assert_eq!(c.descriptors().len(), 3);
    c.run("ec2-killall", &[]).succeeds();
}

#[test]
fn remote_commands_get_the_case_host_list_and_scripts_get_a_field_printer() {
    let c = Case::new();
    c.run("ec2-create", &["1", "--role", "server", "--timeout", "60"])
        .succeeds();
    c.run("ec2-create", &["2", "--role", "client", "--timeout", "60"])
        .succeeds();
    let r = c.run("ec2-status", &["--role", "server", "--field", "private_ip"]);
    r.succeeds();
    let server = r.stdout.trim().to_owned();
    assert!(
        server.starts_with(&c.vpc_prefix()) && r.stdout.lines().count() == 1,
        "{r}"
    );
    // The clients find the server in $CURRENT_HOSTS: no JSON parser, no exec-local + put.
    let r = c.run(
        "ec2-exec-remote",
        &[
            "--role",
            "client",
            "awk '$3 == \"server\" { print $4 }' \"$CURRENT_HOSTS\"",
        ],
    );
    r.succeeds();
    let found = r
        .stdout
        .lines()
        .filter(|l| l.ends_with(&format!(": {server}")))
        .count();
    assert_eq!(found, 2, "{r}");
    // The whole case, in index order: index, id, role, private and public address.
    let r = c.run(
        "ec2-exec-remote",
        &["--select", "2", "cat \"$CURRENT_HOSTS\""],
    );
    r.succeeds();
    let lines: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_once(": ").unwrap().1.split(' ').collect())
        .collect();
    assert_eq!(lines.len(), 3, "{r}");
    for (n, l) in lines.iter().enumerate() {
        assert_eq!(l.len(), 5, "{l:?}");
        assert_eq!(l[0], (n + 1).to_string());
        assert!(l[1].starts_with("i-"), "{l:?}");
        assert_eq!(l[2], if n == 0 { "server" } else { "client" });
        assert!(l[3].starts_with(&c.vpc_prefix()), "{l:?}");
        assert_eq!(l[4], "-", "no public address here: {l:?}");
    }
    // Background jobs get it too.
    c.run(
        "ec2-exec-remote",
        &[
            "-bg",
            "--job",
            "h",
            "--select",
            "3",
            "wc -l < \"$CURRENT_HOSTS\"",
        ],
    )
    .succeeds();
    let r = c.run("ec2-exec-remote", &["--wait", "--job", "h"]);
    r.succeeds().stdout_has(": 3");
    let r = c.run("ec2-status", &["--field", "banana"]);
    r.assert_code(2).stderr_has("private_ip");
    c.run("ec2-killall", &[]).succeeds();
}

#[test]
fn several_roles_come_up_in_one_create_and_the_quota_counts_them_all_first() {
    let c = Case::new();
    let r = c.run(
        "ec2-create",
        &["1", "--role", "server", "3", "--role", "client", "--json"],
    );
    r.succeeds()
        .stderr_has("launched 1 instance (#1)")
        .stderr_has("launched 3 instances (#2-#4)");
    let up: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let roles: Vec<(&str, u64)> = up
        .iter()
        .map(|v| (v["role"].as_str().unwrap(), v["index"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        roles,
        vec![("server", 1), ("client", 2), ("client", 3), ("client", 4)],
        "{r}"
    );
    // The same again, in the other spelling: the case already holds it.
    let r = c.run("ec2-create", &["--roles", "server=1,client=3"]);
    r.succeeds()
        .stderr_has("the case already has 1 instance of role server")
        .stderr_has("the case already has 3 instances of role client");
    assert_eq!(c.descriptors().len(), 4);
    assert_eq!(r.stdout.lines().count(), 4, "{r}");
    c.run("ec2-killall", &[]).succeeds();

    // Two roles that fit the quota alone but not together: refused before anything is made.
    let d = Case::new();
    d.faults(serde_json::json!({"quotas": {"L-1216C47A": 6}}));
    let r = d.run("ec2-create", &["--roles", "server=1,client=3"]);
    r.assert_code(2)
        .stderr_has("4 instances of 2 vCPUs need 8 vCPUs");
    assert!(d.descriptors().is_empty(), "{r}");
    let made: Value = serde_json::from_str(&d.python(&["case-tags", &d.name()])).unwrap();
    assert!(made["key_pairs"].as_array().unwrap().is_empty(), "{made}");
}
