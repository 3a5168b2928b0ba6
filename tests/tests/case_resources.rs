//! The rest of a load test's life (issue 10): placement groups made, checked and deleted with
//! the case.

use e2e::Case;
use serde_json::Value;

#[test]
fn placement_cluster_launches_into_a_group_of_the_case_deleted_with_the_last_instance() {
    let c = Case::new();
    let r = c.run(
        "ec2-create",
        &["2", "--placement", "cluster", "--timeout", "60"],
    );
    r.assert_code(0);
    r.stderr_has("created cluster placement group");
    let groups: Value = serde_json::from_str(&c.python(&["placements", &c.name()])).unwrap();
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["strategy"], "cluster");
    assert_eq!(groups[0]["tags"]["ec2-tools:case"], c.name().as_str());
    let name = groups[0]["name"].as_str().unwrap();
    for d in c.descriptors().keys() {
        let i: Value = serde_json::from_str(&c.python(&["instance", d])).unwrap();
        assert_eq!(i["placement_group"], name, "{i}");
    }
    // More of the same case reuse the group; another strategy is refused before any launch.
    c.run(
        "ec2-create",
        &["3", "--placement", "cluster", "--timeout", "60"],
    )
    .assert_code(0);
    let r = c.run("ec2-create", &["4", "--placement", "spread"]);
    r.assert_code(2);
    r.stderr_has("is cluster");
    assert_eq!(c.descriptors().len(), 3, "nothing launched: {r}");

    let r = c.run("ec2-killall", &[]);
    r.assert_code(0);
    r.stderr_has("deleted placement group");
    let left: Value = serde_json::from_str(&c.python(&["placements", &c.name()])).unwrap();
    assert_eq!(left.as_array().unwrap().len(), 0, "{left}");
}

#[test]
fn a_baked_image_is_recorded_and_the_next_instances_start_from_its_disk() {
    let c = Case::new();
    c.create(1);
    c.run("ec2-exec-remote", &["echo set-up-once > marker.txt"])
        .assert_code(0);
    // The user's tags (here from the environment) go on the image at its creation.
    let r = c.run_with(
        "ec2-bake",
        &[&format!("{}-v1", c.name())],
        &[("EC2_TOOLS_TAGS", "team=load")],
    );
    r.assert_code(0);
    let ami = r.stdout.trim().to_owned();
    assert!(ami.starts_with("ami-"), "{r}");
    let images: Value = serde_json::from_str(&c.python(&["images", &c.name()])).unwrap();
    assert_eq!(images[0]["tags"]["team"], "load", "{images}");
    r.stderr_has("is available");
    // Recorded for the next ec2-create; the harness's EC2_TOOLS_AMI would win, and says so.
    r.stderr_has("EC2_TOOLS_AMI is set and wins");
    let conf: Value =
        serde_json::from_str(&std::fs::read_to_string(c.path().join("ec2-tools.json")).unwrap())
            .unwrap();
    assert_eq!(conf["ami"], ami.as_str());
    let r = c.run("ec2-bake", &["--list"]);
    r.assert_code(0);
    assert!(
        r.stdout.lines().any(|l| l.starts_with(&format!(
            "{ami} {}-v1 available {}",
            c.name(),
            c.name()
        ))),
        "{r}"
    );

    // Without the environment's AMI, the file decides: two more from the baked image, with
    // the baked disk (and only their own launch key).
    let r = c.run_without("ec2-create", &["3", "--timeout", "60"], &["EC2_TOOLS_AMI"]);
    r.assert_code(0);
    let mut baked: Vec<String> = c
        .descriptors()
        .values()
        .filter(|d| d["ami"] == ami.as_str())
        .map(|d| d["index"].to_string())
        .collect();
    baked.sort(); // descriptors come by id, not index
    assert_eq!(baked, ["2", "3"], "{r}");
    let r = c.run("ec2-exec-remote", &["--select", "2-3", "cat marker.txt"]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches(": set-up-once").count(), 2, "{r}");

    // Images outlive the case unless asked; --delete removes one and its snapshots.
    c.run("ec2-killall", &[]).assert_code(0);
    let r = c.run("ec2-bake", &["--list"]);
    assert!(r.stdout.contains(&ami), "kept after killall: {r}");
    let r = c.run("ec2-bake", &["--delete", &ami]);
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), format!("{ami} deleted"));
    let r = c.run("ec2-bake", &["--list"]);
    r.stdout_lacks(&ami);
    let r = c.run("ec2-bake", &["--delete", &ami]);
    r.assert_code(2);
}

#[test]
fn hosts_of_your_own_are_instances_to_the_ssh_tools_and_left_alone_by_the_aws_tools() {
    let c = Case::new();
    c.create(1);
    let port = c.env["EC2_TOOLS_SSH_PORT"].clone();
    let user = c.env["EC2_TOOLS_SSH_USER"].clone();
    // The local cloud's own sshd stands for two machines you already have.
    let a = format!("{user}@127.0.0.1:{port}");
    let b = format!("localhost:{port}");
    let r = c.run("ec2-hosts", &["add", "--role", "own", &a, &b, &a]);
    r.assert_code(0);
    assert_eq!(r.stdout.lines().count(), 2, "{r}");
    r.stderr_has("already described");
    let ds = c.descriptors();
    let own: Vec<&Value> = ds.values().filter(|d| d["state"] == "static").collect();
    assert_eq!(own.len(), 2);
    let mut idx: Vec<i64> = own.iter().map(|d| d["index"].as_i64().unwrap()).collect();
    idx.sort();
    assert_eq!(idx, [2, 3]);

    // Every SSH tool: exec, status --check, put, jobs.
    let r = c.run("ec2-exec-remote", &["--role", "own", "echo mine"]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches("mine").count(), 2, "{r}");
    let r = c.run("ec2-exec-remote", &["-q", "true"]);
    r.assert_code(0);
    let r = c.run("ec2-status", &["--check"]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches(" static ").count(), 2, "{r}");
    r.stderr_lacks("AWS does not know");
    std::fs::write(c.path().join("f.txt"), "x").unwrap();
    c.run("ec2-put", &["--role", "own", "f.txt", "."])
        .assert_code(0);

    // The AWS tools leave them alone: stop/start skip them, create never counts them.
    let r = c.run("ec2-stop", &[]);
    r.assert_code(0);
    r.stderr_has("skipping 2 hosts of your own");
    assert_eq!(r.stdout.lines().count(), 1, "{r}");
    c.run("ec2-start", &[]).assert_code(0);
    let r = c.run("ec2-create", &["2", "--timeout", "60"]);
    r.assert_code(0);
    r.stderr_has("launched 1 instance (#4)");

    // killall forgets them without asking AWS, and terminates the instances.
    let r = c.run("ec2-killall", &[]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches(" forgotten").count(), 2, "{r}");
    r.stderr_lacks("no longer knows");
    assert!(c.descriptors().is_empty());
}

/// A tool run in another region, with no subnet from the local cloud's environment.
fn in_region(c: &Case, region: &str, tool: &str, args: &[&str]) -> e2e::Run {
    let started = std::time::Instant::now();
    let out = c
        .cmd(tool)
        .env_remove("EC2_TOOLS_SUBNET_ID")
        .env("AWS_REGION", region)
        // One of the emulator's stock images, which every region has.
        .env("EC2_TOOLS_AMI", "ami-03cf127a")
        .args(args)
        .output()
        .unwrap();
    e2e::Run::new(out, started.elapsed())
}

#[test]
fn network_auto_builds_a_vpc_where_there_is_no_default_one_and_killall_tears_it_down() {
    let c = Case::new();
    let region = "us-west-2";
    c.python(&["drop-default-vpc", region]);
    let r = in_region(&c, region, "ec2-create", &["2"]);
    r.assert_code(2);
    r.stderr_has("no default VPC");
    assert!(c.descriptors().is_empty(), "nothing launched: {r}");

    // 127.1.0.0/16: its instances' private addresses stay on loopback.
    let r = in_region(
        &c,
        region,
        "ec2-create",
        &[
            "2",
            "--network",
            "auto",
            "--network-cidr",
            "127.1.0.0/16",
            "--tag",
            "team=load",
            "--timeout",
            "60",
        ],
    );
    r.assert_code(0);
    r.stderr_has("(127.1.0.0/16): 3 public subnets");
    assert!(r.stdout.lines().all(|l| l.contains(" 127.1.")), "{r}");
    let nets: Value = serde_json::from_str(&c.python(&["networks", &c.name(), region])).unwrap();
    let net = &nets.as_array().unwrap()[0];
    assert_eq!(net["cidr"], "127.1.0.0/16", "{nets}");
    assert_eq!(net["subnets"].as_array().unwrap().len(), 3, "{nets}");
    assert_eq!(net["gateways"], 1, "{nets}");
    assert_eq!(net["routes"], serde_json::json!(["0.0.0.0/0"]), "{nets}");
    // The user's tags are on the network from its creation (tag-enforcing policies).
    assert_eq!(net["tags"]["team"], "load", "{nets}");
    let r = in_region(&c, region, "ec2-exec-remote", &["-q", "hostname"]);
    r.assert_code(0);

    // More instances reuse the case's network; killall tears it down after the last one.
    in_region(
        &c,
        region,
        "ec2-create",
        &["3", "--network", "auto", "--timeout", "60"],
    )
    .assert_code(0);
    let nets: Value = serde_json::from_str(&c.python(&["networks", &c.name(), region])).unwrap();
    assert_eq!(nets.as_array().unwrap().len(), 1, "{nets}");
    let r = in_region(&c, region, "ec2-killall", &[]);
    r.assert_code(0);
    r.stderr_has("deleted network vpc-");
    let nets: Value = serde_json::from_str(&c.python(&["networks", &c.name(), region])).unwrap();
    assert_eq!(nets, serde_json::json!([]), "{r}");
}

#[test]
fn results_go_to_s3_compressed_per_instance_with_a_manifest_written_last() {
    let c = Case::new();
    c.create(2);
    let bucket = format!("results-{}", c.name().to_lowercase());
    // No such bucket: said before any host is contacted.
    let r = c.run("ec2-get", &["out", &format!("s3://{bucket}/run1/")]);
    r.assert_code(2);
    r.stderr_has("no such bucket");
    c.python(&["mkbucket", &bucket]);
    // Every instance writes results; #1's are large and incompressible (a multipart upload).
    c.run(
        "ec2-exec-remote",
        &["mkdir -p out && echo \"requests,$CURRENT_AMI_INDEX\" > out/results.csv"],
    )
    .assert_code(0);
    c.run(
        "ec2-exec-remote",
        &[
            "--select",
            "1",
            "head -c 12000000 /dev/urandom > out/big.bin",
        ],
    )
    .assert_code(0);
    let r = c.run("ec2-get", &["out", &format!("s3://{bucket}/run1/")]);
    r.assert_code(0);
    assert_eq!(r.stdout.lines().count(), 2, "{r}");
    let objects: Value = serde_json::from_str(&c.python(&["objects", &bucket, "run1/"])).unwrap();
    let keys: Vec<&str> = objects
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    let case = c.name();
    assert_eq!(keys.len(), 3, "{objects}");
    assert!(
        keys.contains(&format!("run1/{case}/manifest.json").as_str()),
        "{objects}"
    );
    let big = objects
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["key"]
                .as_str()
                .unwrap()
                .starts_with(&format!("run1/{case}/1-"))
        })
        .unwrap();
    assert!(
        big["size"].as_u64().unwrap() > 8 * 1024 * 1024,
        "multipart: {big}"
    );

    let manifest_file = c.path().join("manifest.json");
    c.python(&[
        "fetch",
        &bucket,
        &format!("run1/{case}/manifest.json"),
        manifest_file.to_str().unwrap(),
    ]);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_file).unwrap()).unwrap();
    assert_eq!(
        manifest["objects"].as_array().unwrap().len(),
        2,
        "{manifest}"
    );
    assert_eq!(manifest["failed"], serde_json::json!([]), "{manifest}");
    // #2's archive holds its results, byte for byte.
    let two = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["index"] == 2)
        .unwrap();
    let archive = c.path().join("two.tar.zst");
    c.python(&[
        "fetch",
        &bucket,
        two["key"].as_str().unwrap(),
        archive.to_str().unwrap(),
    ]);
    let listing = std::process::Command::new("tar")
        .args(["--use-compress-program=zstd -d", "--wildcards", "-xOf"])
        .arg(&archive)
        .arg("*out/results.csv")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "requests,2\n",
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert_eq!(two["bytes"], std::fs::metadata(&archive).unwrap().len());
}

#[test]
fn company_account_options_tag_every_resource_at_creation_and_harden_the_instances() {
    let c = Case::new();
    let profile = format!("{}-loadgen", c.name());
    let arn: String = serde_json::from_str(&c.python(&["iam-profile", &profile])).unwrap();
    let r = c
        .tool("ec2-create")
        .args(&["2", "--tag", "team=load", "--tag", "cost-center=42"])
        .args(&["--volume-size", "20", "--volume-type", "gp2"])
        .args(&["--iam-profile", &profile, "--placement", "cluster"])
        .args(&["--timeout", "60"])
        .run();
    r.succeeds();
    let want = |tags: &Value, what: &str| {
        assert_eq!(tags["team"], "load", "{what}: {tags}");
        assert_eq!(tags["cost-center"], "42", "{what}: {tags}");
    };
    let instances: Value = serde_json::from_str(&c.python(&["instances", &c.name()])).unwrap();
    assert_eq!(instances.as_array().unwrap().len(), 2, "{instances}");
    for i in instances.as_array().unwrap() {
        want(&i["tags"], "instance");
        let l: Value =
            serde_json::from_str(&c.python(&["launched", i["id"].as_str().unwrap()])).unwrap();
        // The metadata service answers session tokens only, one hop further for containers.
        assert_eq!(l["metadata"]["HttpTokens"], "required", "{l}");
        assert_eq!(l["metadata"]["HttpPutResponseHopLimit"], 2, "{l}");
        assert_eq!(l["profile"], arn.as_str(), "{l}");
        let v = &l["volumes"][0];
        assert_eq!(
            (&v["size"], &v["type"], &v["encrypted"]),
            (&Value::from(20), &Value::from("gp2"), &Value::from(true)),
            "{l}"
        );
        assert_eq!(v["delete_on_termination"], true, "{l}");
        want(&v["tags"], "volume");
        assert_eq!(v["tags"]["ec2-tools:case"], c.name().as_str(), "{l}");
    }
    let made: Value = serde_json::from_str(&c.python(&["case-tags", &c.name()])).unwrap();
    for kind in ["key_pairs", "security_groups", "placement_groups"] {
        let items = made[kind].as_array().unwrap();
        assert_eq!(items.len(), 1, "{kind}: {made}");
        want(&items[0], kind);
    }

    // Opting out, on purpose: the metadata service's v1 too, an unencrypted volume of the
    // AMI's size.
    c.tool("ec2-create")
        .args(&["1", "--add", "--imds", "v1", "--volume-encrypted", "off"])
        .args(&["--timeout", "60"])
        .run()
        .succeeds();
    let third = c
        .descriptors()
        .into_iter()
        .find(|(_, d)| d["index"] == 3)
        .unwrap()
        .0;
    let l: Value = serde_json::from_str(&c.python(&["launched", &third])).unwrap();
    assert_eq!(l["metadata"]["HttpTokens"], "optional", "{l}");
    assert_eq!(l["volumes"][0]["encrypted"], false, "{l}");
    assert_ne!(l["volumes"][0]["size"], 20, "{l}");

    // Values AWS would refuse are refused before anything is launched, naming them.
    for (args, needle) in [
        (&["1", "--add", "--tag", "aws:owner=me"][..], "aws:"),
        (&["1", "--add", "--tag", "Name=x"][..], "Name"),
        (&["1", "--add", "--tag", "novalue"][..], "KEY=VALUE"),
        (&["1", "--add", "--volume-size", "0"][..], "1 to 16384"),
        // Smaller than the AMI's root snapshot: AWS would refuse it at RunInstances.
        (
            &["1", "--add", "--volume-size", "1"][..],
            "root snapshot is",
        ),
        (&["1", "--add", "--volume-type", "ssd"][..], "gp3"),
        (&["1", "--add", "--imds", "v3"][..], "v3"),
    ] {
        let r = c.run("ec2-create", args);
        r.assert_code(2).stderr_has(needle);
        assert_eq!(r.stderr.lines().count(), 1, "{r}");
    }
    assert_eq!(
        c.descriptors().len(),
        3,
        "nothing launched by a refused value"
    );
    c.run("ec2-killall", &[]).succeeds();
}
