//! Habits of pdsh/clush users (issue 9): whole command lines, chaining our own output, quiet
//! runs, folded failure summaries.

use e2e::Case;

#[test]
fn every_word_after_the_command_is_the_commands_own_even_options() {
    let c = Case::new();
    c.create(2);
    let r = c.run("ec2-exec-remote", &["--json", "printf", "%s-%s", "-n", "x"]);
    r.assert_code(0);
    for l in r.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["stdout"], "-n-x", "{r}");
    }
    // TripCom's `-bg` after the command still means --bg, not a word of the command.
    let r = c.run("ec2-exec-remote", &["sleep", "1", "-bg"]);
    r.assert_code(0);
    assert_eq!(r.stdout.lines().count(), 2, "{r}");
    let r = c.run("ec2-exec-local", &["printf", "%s\\n", "-x"]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches("-x").count(), 2, "{r}");
}

#[test]
fn our_own_output_chains_into_from_and_an_empty_list_is_nothing_to_do() {
    let c = Case::new();
    c.create(3);
    let r = c.shell("ec2-status | ec2-exec-remote --from - -q hostname");
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout.lines().count(), 3, "{r}");
    assert!(
        r.stderr.is_empty(),
        "-q: no summary when all succeeded: {r}"
    );
    let r = c.shell("ec2-create 3 | ec2-exec-remote --from - -q true");
    assert_eq!(r.code, 0, "{r}");
    // A --failed-to file after a clean run is empty: rerunning it is nothing to do, exit 0.
    let r = c.shell(
        "set -e; ec2-exec-remote -q --failed-to failed.txt true; \
         ec2-exec-remote --from failed.txt true; echo still-here",
    );
    assert_eq!(r.code, 0, "{r}");
    r.stdout_has("still-here");
    r.stderr_has("nothing to do");
}

#[test]
fn many_failures_are_folded_by_reason_like_clush() {
    let c = Case::new();
    c.create(5);
    let r = c.run("ec2-exec-remote", &["exit 3"]);
    r.assert_code(1);
    let summary = r.stderr.lines().last().unwrap();
    assert!(
        summary.starts_with("ec2-exec-remote: ok 0/5, failed 5 ("),
        "{r}"
    );
    assert!(summary.contains("(5): exit 3"), "{r}");
    assert!(summary.contains(&format!("{}0.[", c.vpc_prefix())), "{r}");
    assert!(
        !summary.contains("i-"),
        "ids are in --failed-to, not the line: {r}"
    );
}

#[test]
fn remote_commands_know_which_instance_they_run_on_in_exec_bg_and_setup() {
    let c = Case::new();
    let setup = c.path().join("setup.sh");
    std::fs::write(
        &setup,
        "#!/bin/sh\necho \"setup on $CURRENT_AMI_ID #$CURRENT_AMI_INDEX role=$CURRENT_AMI_ROLE case=$CURRENT_CASE\"\n",
    )
    .unwrap();
    let r = c.run(
        "ec2-create",
        &["2", "--role", "client", "--setup", setup.to_str().unwrap()],
    );
    r.assert_code(0);
    let descs = c.descriptors();
    for (id, d) in &descs {
        let want = format!(
            "setup on {id} #{} role=client case={}",
            d["index"],
            c.name()
        );
        assert!(r.stderr.contains(&want), "{want}\n{r}");
    }
    let r = c.run(
        "ec2-exec-remote",
        &[
            "--json",
            "echo \"$CURRENT_AMI_ID $CURRENT_AMI_INDEX $CURRENT_AMI_ROLE $CURRENT_CASE\"",
        ],
    );
    r.assert_code(0);
    for l in r.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let want = format!(
            "{} {} client {}\n",
            v["id"].as_str().unwrap(),
            v["index"],
            c.name()
        );
        assert_eq!(v["stdout"], want.as_str(), "{r}");
    }
    // A detached job too (its log holds what it printed).
    let r = c.run(
        "ec2-exec-remote",
        &[
            "--bg",
            "--job",
            "who",
            "echo \"$CURRENT_AMI_ID #$CURRENT_AMI_INDEX\"",
        ],
    );
    r.assert_code(0);
    let r = c.run("ec2-exec-remote", &["--job", "who", "--wait", "--json"]);
    r.assert_code(0);
    for (id, d) in &descs {
        r.stdout_has(&format!("{id} #{}", d["index"]));
    }
}

#[test]
fn plain_ssh_scp_and_ec2_ssh_work_from_the_generated_config_and_stay_pinned() {
    let c = Case::new();
    let hosts = c.create(2);
    // OpenSSH's own tools, from a test-case script, without prompts.
    let r = c.run(
        "ec2-exec-local",
        &["ssh -F \"$CURRENT_SSH_CONFIG\" \"$CURRENT_SSH_HOST\" hostname"],
    );
    r.assert_code(0);
    for (_, addr) in &hosts {
        let name = format!("ip-{}", addr.replace('.', "-"));
        r.stdout_has(&format!("{addr}: {name}"));
    }
    std::fs::write(c.path().join("data.txt"), "payload\n").unwrap();
    let r = c.run(
        "ec2-exec-local",
        &["scp -q -F \"$CURRENT_SSH_CONFIG\" data.txt \"$CURRENT_SSH_HOST:copied.txt\""],
    );
    r.assert_code(0);
    let r = c.run("ec2-exec-remote", &["cat copied.txt"]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches("payload").count(), 2, "{r}");
    // ec2-ssh by index and by id.
    let r = c.run("ec2-ssh", &["2", "hostname"]);
    r.assert_code(0);
    assert_eq!(
        r.stdout.trim(),
        format!("ip-{}", hosts[1].1.replace('.', "-")),
        "{r}"
    );
    let r = c.run("ec2-ssh", &[&hosts[0].0, "echo", "-n", "by-id"]);
    r.assert_code(0);
    assert_eq!(r.stdout, "by-id", "{r}");
    let r = c.run("ec2-ssh", &["7", "true"]);
    r.assert_code(2);
    // The instance is rebuilt with another host key: OpenSSH refuses it too.
    let machine = std::path::Path::new(&c.env["LOCALCLOUD_STATE"])
        .join("machines")
        .join(&hosts[0].0);
    for f in ["host_key", "host_key.pub"] {
        std::fs::remove_file(machine.join(f)).unwrap();
    }
    assert!(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(machine.join("host_key"))
        .status()
        .unwrap()
        .success());
    let _ = c.run("ec2-reboot", &["--select", "1"]);
    let r = c.run("ec2-ssh", &["1", "true"]);
    assert_eq!(r.code, 255, "{r}");
    assert!(
        r.stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || r.stderr.contains("Host key verification failed"),
        "{r}"
    );
}

#[test]
fn at_with_bg_starts_the_detached_job_at_the_instant_on_every_host_and_returns_at_once() {
    let c = Case::new();
    c.create(3);
    let asked = std::time::SystemTime::now() + std::time::Duration::from_secs(4);
    let r = c.run(
        "ec2-exec-remote",
        &["--at", "+4s", "--bg", "--job", "sync", "date +%s.%N"],
    );
    r.assert_code(0);
    assert!(
        std::time::SystemTime::now() < asked,
        "returned before the instant: {r}"
    );
    let r = c.run("ec2-exec-remote", &["--job", "sync", "--wait", "--json"]);
    r.assert_code(0);
    let asked_s = asked
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let starts: Vec<f64> = r
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["stdout"]
                .as_str()
                .unwrap()
                .trim()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(starts.len(), 3, "{r}");
    for s in &starts {
        assert!(
            *s >= asked_s - 0.05 && *s < asked_s + 0.5,
            "{s} vs {asked_s}\n{r}"
        );
    }
    // `ec2-status --json` carries what a script needs.
    let r = c.run("ec2-status", &["--json"]);
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    for k in [
        "private_ip",
        "private_dns",
        "az",
        "type",
        "role",
        "index",
        "market",
    ] {
        assert!(v.get(k).is_some(), "{k}: {v}");
    }
    assert!(v["private_ip"].as_str().unwrap().starts_with("127."), "{v}");
}

#[test]
fn verbose_logs_show_aws_calls_and_ssh_phases_on_stderr_and_never_the_secret() {
    let c = Case::new();
    let secret = "SECRETMARKERzyxwvutsrqponmlkjihgfedcba987654";
    let env = [("AWS_SECRET_ACCESS_KEY", secret)];
    let r = c.run_with("ec2-create", &["-v", "2", "--timeout", "60"], &env);
    r.assert_code(0);
    assert_eq!(r.stdout.lines().count(), 2, "stdout stays data: {r}");
    r.stderr_has("aws RunInstances: HTTP 200");
    r.stderr_has("request id");
    r.stderr_has(": logged in as ");
    let cold = [env[0], ("EC2_TOOLS_PERSIST", "off")];
    let r2 = c.run_with("ec2-exec-remote", &["-vv", "--json", "echo hi"], &cold);
    r2.assert_code(0);
    assert!(r2.stderr.contains(": banner and key exchange in "), "{r2}");
    assert!(r2.stderr.contains(": exit 0 after "), "{r2}");
    assert_eq!(r2.stdout.lines().count(), 2, "{r2}");
    // Through the case's session holder (warm sessions) each host's end is logged too.
    let warm = c.run_with("ec2-exec-remote", &["-v", "echo hi"], &env);
    warm.assert_code(0);
    assert_eq!(warm.stderr.matches(": exit 0 after ").count(), 2, "{warm}");
    assert!(warm.stderr.contains("(session holder)"), "{warm}");
    let r3 = c.run_with("ec2-killall", &["-vv"], &env);
    r3.assert_code(0);
    assert!(r3.stderr.contains("aws TerminateInstances"), "{r3}");
    for run in [&r, &r2, &warm, &r3] {
        assert!(
            !run.stderr.contains(secret) && !run.stdout.contains(secret),
            "{run}"
        );
    }
    // Without -v: no log lines.
    let q = c.run("ec2-status", &[]);
    assert!(!q.stderr.contains("aws "), "{q}");
}

#[test]
fn piped_stdin_reaches_the_command_on_every_host_unless_no_stdin() {
    let c = Case::new();
    c.create(2);
    let r = c.shell("printf 'line one\\nline two\\n' | ec2-exec-remote -q cat");
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout.matches(": line one").count(), 2, "{r}");
    assert_eq!(r.stdout.matches(": line two").count(), 2, "{r}");
    let r = c.shell("echo hidden | ec2-exec-remote -q -n 'cat; echo end'");
    assert_eq!(r.code, 0, "{r}");
    r.stdout_lacks("hidden");
    assert_eq!(r.stdout.matches(": end").count(), 2, "{r}");
}

#[test]
fn every_tool_has_a_man_page_naming_each_flag_and_completions_for_three_shells() {
    let c = Case::new();
    let man = c.path().join("man");
    let r = c.run("ec2-tools", &["man", man.to_str().unwrap()]);
    r.assert_code(0);
    let tools = [
        "ec2-create",
        "ec2-exec-remote",
        "ec2-exec-local",
        "ec2-put",
        "ec2-get",
        "ec2-status",
        "ec2-ssh",
        "ec2-stop",
        "ec2-start",
        "ec2-reboot",
        "ec2-revert",
        "ec2-killall",
        "ec2-bake",
        "ec2-hosts",
    ];
    for t in tools {
        let page = std::fs::read_to_string(man.join(format!("{t}.1"))).unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH"),
            "{t}: not roff"
        );
        let help = c.run(t, &["--help"]);
        help.assert_code(0);
        let flags: std::collections::BTreeSet<&str> = help
            .stdout
            .split(|ch: char| ch.is_whitespace() || ch == ',' || ch == '[' || ch == ']')
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| {
                let end = w[2..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-'))
                    .map_or(w.len(), |i| i + 2);
                &w[..end]
            })
            .filter(|w| w.len() > 2)
            .collect();
        assert!(flags.contains("--verbose"), "{t}: {flags:?}");
        for f in flags {
            let roff = f.replace('-', "\\-");
            assert!(page.contains(&roff), "{t}: the man page does not name {f}");
        }
    }
    let r = c.run("ec2-tools", &["help"]);
    r.assert_code(0);
    for t in tools {
        assert!(r.stdout.contains(t), "{t}: {r}");
    }
    for (shell, file) in [
        ("bash", "ec2-create"),
        ("zsh", "_ec2-create"),
        ("fish", "ec2-create.fish"),
    ] {
        let dir = c.path().join(shell);
        c.run(
            "ec2-tools",
            &["completions", shell, "--dir", dir.to_str().unwrap()],
        )
        .assert_code(0);
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains("connect-timeout"), "{shell}");
    }
    let bash = c.path().join("bash/ec2-exec-remote");
    let ok = std::process::Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .status()
        .unwrap();
    assert!(ok.success(), "bash completion parses");
}

#[test]
fn help_teaches_with_a_purpose_grouped_options_and_examples_and_only_the_tools_own_flags() {
    let c = Case::new();
    let groups: &[(&str, &[&str])] = &[
        ("ec2-create", &["Launch:", "SSH:", "Test case:"]),
        (
            "ec2-exec-remote",
            &["Selection:", "SSH:", "Output:", "Test case:"],
        ),
        ("ec2-exec-local", &["Selection:", "Output:"]),
        ("ec2-put", &["Selection:", "SSH:"]),
        ("ec2-get", &["Selection:", "SSH:"]),
        ("ec2-status", &["Selection:", "SSH:"]),
        ("ec2-ssh", &["SSH:"]),
        ("ec2-stop", &["Selection:", "Test case:"]),
        ("ec2-start", &["Selection:", "SSH:"]),
        ("ec2-reboot", &["Selection:", "SSH:"]),
        ("ec2-revert", &["Launch:", "SSH:"]),
        ("ec2-killall", &["Selection:", "Test case:"]),
        ("ec2-bake", &["Selection:", "Test case:"]),
        ("ec2-hosts", &["Test case:"]),
    ];
    for (tool, headings) in groups {
        let r = c.run(tool, &["-h"]);
        r.assert_code(0);
        let purpose = r.stdout.lines().next().unwrap();
        assert!(purpose.len() > 20, "{tool}: a purpose line: {r}");
        for h in *headings {
            assert!(
                r.stdout.lines().any(|l| l == *h),
                "{tool}: no {h} group\n{r}"
            );
        }
        let examples = r.stdout.split("Examples:\n").nth(1).unwrap_or_default();
        let runs = examples
            .lines()
            .filter(|l| l.starts_with(&format!("  {tool}")))
            .count();
        assert!(runs >= 2, "{tool}: at least two examples\n{r}");
    }
    // Only the flags the tool uses: ec2-status launches nothing, ec2-stop logs in nowhere.
    let status = c.run("ec2-status", &["--help"]).stdout;
    assert!(!status.contains("--ami"), "{status}");
    let stop = c.run("ec2-stop", &["--help"]).stdout;
    for f in ["--user", "--identity", "--connect-timeout"] {
        assert!(!stop.contains(f), "{f}: {stop}");
    }
    let put = c.run("ec2-put", &["-h"]).stdout;
    assert!(
        put.contains("Usage: ec2-put [OPTIONS] LOCAL... REMOTE_DIR"),
        "{put}"
    );
    // One name per concept: the parallelism flag is -f/--fanout everywhere (pdsh -f), and
    // --timeout always means "give up waiting"; a command's limit is --command-timeout (-u).
    for tool in ["ec2-exec-remote", "ec2-exec-local", "ec2-put", "ec2-get"] {
        let h = c.run(tool, &["-h"]).stdout;
        assert!(h.contains("-f, --fanout <N>"), "{tool}: {h}");
    }
    let h = c.run("ec2-exec-remote", &["-h"]).stdout;
    assert!(h.contains("-u, --command-timeout"), "{h}");
    assert!(!h.contains("--timeout"), "{h}");
}

#[test]
fn labels_name_hosts_as_asked_and_jobs_are_listed_and_stopped_ones_say_stopped() {
    let c = Case::new();
    c.create(2);
    let r = c.run("ec2-exec-remote", &["--label", "index", "echo hi"]);
    r.assert_code(0);
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["1: hi", "2: hi"], "{r}");
    let r = c.run(
        "ec2-exec-remote",
        &["--label", "name", "--gather", "echo hi"],
    );
    r.assert_code(0);
    r.stdout_has(&format!("{}.[1-2] (2)", c.name()));
    let r = c.run("ec2-exec-local", &["-f", "2", "--label", "id", "echo hi"]);
    r.assert_code(0);
    assert!(r.stdout.lines().all(|l| l.starts_with("i-")), "{r}");

    c.run("ec2-exec-remote", &["--job", "long", "-bg", "sleep 60"])
        .assert_code(0);
    c.run("ec2-exec-remote", &["--job", "short", "-bg", "true"])
        .assert_code(0);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let r = c.run("ec2-exec-remote", &["--jobs"]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches(" long running\n").count(), 2, "{r}");
    assert_eq!(r.stdout.matches(" short exited 0\n").count(), 2, "{r}");
    c.run("ec2-exec-remote", &["--job", "long", "--stop"])
        .assert_code(0);
    let r = c.run("ec2-exec-remote", &["--job", "long", "--status"]);
    r.assert_code(0);
    assert_eq!(r.stdout.matches(" stopped\n").count(), 2, "{r}");
    let r = c.run("ec2-exec-remote", &["--job", "long", "--wait"]);
    r.assert_code(1);
    r.stderr_has("stopped (--stop)");
}

#[test]
fn a_persistently_refused_login_fails_early_with_a_hint_and_a_terminal_shows_why_live() {
    let c = Case::new();
    let grace = [("EC2_TOOLS_AUTH_GRACE", "3s")];
    let r = c.run_with("ec2-create", &["2", "--user", "nosuchuser"], &grace);
    r.assert_code(1);
    r.within(std::time::Duration::from_secs(60));
    // One folded reason for both hosts, with the hint, not a 700-character line.
    assert_eq!(r.stderr.matches("wrong user or key").count(), 1, "{r}");
    r.stderr_has("#[1-2] (2): login as nosuchuser");

    // On a terminal (a pseudo-terminal by `script`): the wait shows ready/total and each
    // pending host's last reason as it happens.
    let r =
        c.shell("EC2_TOOLS_AUTH_GRACE=4s script -qec 'ec2-create 2 --user nosuchuser' /dev/null");
    r.stdout_has("ready [");
    r.stdout_has("0/2");
    r.stdout_has("#1 127.");
    r.stdout_has("as nosuchuser");
    // Host prefixes in colour on a terminal, one per host; NO_COLOR turns colour off.
    c.create(2);
    let r = c.shell("script -qec 'ec2-exec-remote -q echo hi' /dev/null");
    let coloured: std::collections::BTreeSet<&str> = r
        .stdout
        .split("\u{1b}[")
        .filter_map(|s| s.split_once("m127.").map(|(c, _)| c))
        .collect();
    assert_eq!(coloured.len(), 2, "one colour per host: {r}");
    let r = c.shell("NO_COLOR=1 script -qec 'ec2-exec-remote -q echo hi' /dev/null");
    r.stdout_lacks("\u{1b}[3");
    assert_eq!(r.stdout.matches(": hi").count(), 2, "{r}");
}

/// Each stdout line of a `--json` run is one JSON object.
fn objects(r: &e2e::Run) -> Vec<serde_json::Value> {
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}\n{r}")))
        .collect()
}

#[test]
fn every_tool_that_prints_records_prints_json_objects_with_json() {
    let c = Case::new();
    let r = c.run("ec2-create", &["2", "--json", "--timeout", "60"]);
    r.succeeds();
    let made = objects(&r);
    assert_eq!(made.len(), 2, "{r}");
    for v in &made {
        assert!(v["id"].as_str().unwrap().starts_with("i-"), "{v}");
        assert_eq!(v["type"], "t3.micro", "{v}");
        assert_eq!(v["state"], "running", "{v}");
        assert!(
            v["address"].as_str().unwrap().starts_with(&c.vpc_prefix()),
            "{v}"
        );
    }
    std::fs::write(c.path().join("load.txt"), "12345\n").unwrap();
    let r = c.run("ec2-put", &["--json", "load.txt", "."]);
    r.succeeds();
    assert!(
        objects(&r)
            .iter()
            .all(|v| v["files"] == 1 && v["bytes"] == 6),
        "{r}"
    );
    let r = c.run("ec2-get", &["--json", "load.txt", "back"]);
    r.succeeds();
    assert!(
        objects(&r)
            .iter()
            .all(|v| v["dir"].as_str().unwrap().starts_with("back/")),
        "{r}"
    );

    // A background job's start, list, state and stop: JSON too, never text under --json.
    let r = c.run(
        "ec2-exec-remote",
        &["--json", "-bg", "--job", "j1", "sleep 60"],
    );
    r.succeeds();
    assert!(objects(&r).iter().all(|v| v["job"] == "j1"), "{r}");
    let r = c.run("ec2-exec-remote", &["--json", "--jobs"]);
    r.succeeds();
    assert!(
        objects(&r)
            .iter()
            .all(|v| v["job"] == "j1" && v["state"] == "running"),
        "{r}"
    );
    let r = c.run("ec2-exec-remote", &["--json", "--status", "--job", "j1"]);
    r.succeeds();
    assert!(objects(&r).iter().all(|v| v["state"] == "running"), "{r}");
    let r = c.run("ec2-exec-remote", &["--json", "--stop", "--job", "j1"]);
    r.succeeds();
    assert!(objects(&r).iter().all(|v| v["state"] == "stopped"), "{r}");

    let r = c.run("ec2-stop", &["--json", "--select", "1"]);
    r.succeeds();
    assert_eq!(objects(&r)[0]["state"], "stopped", "{r}");
    let r = c.run("ec2-start", &["--json", "--select", "1"]);
    r.succeeds();
    assert_eq!(objects(&r)[0]["state"], "running", "{r}");
    let r = c.run("ec2-reboot", &["--json", "--select", "2"]);
    r.succeeds();
    assert_eq!(objects(&r)[0]["index"], 2, "{r}");
    let r = c.run("ec2-revert", &["--json", "--select", "2"]);
    r.succeeds();
    let new = objects(&r);
    assert_eq!(
        (new.len(), &new[0]["index"]),
        (1, &serde_json::json!(2)),
        "{r}"
    );

    let name = format!("{}-img", c.name());
    let r = c.run(
        "ec2-bake",
        &["--json", &name, "--no-reboot", "--select", "1"],
    );
    r.succeeds();
    let ami = objects(&r)[0]["ami"].as_str().unwrap().to_owned();
    let r = c.run("ec2-bake", &["--json", "--list"]);
    r.succeeds();
    assert!(
        objects(&r)
            .iter()
            .any(|v| v["ami"] == ami.as_str() && v["name"] == name.as_str()),
        "{r}"
    );
    let r = c.run("ec2-bake", &["--json", "--delete", &ami]);
    r.succeeds();
    assert_eq!(objects(&r)[0]["state"], "deleted", "{r}");

    let r = c.run(
        "ec2-hosts",
        &["add", "--json", "--role", "mine", "127.0.0.1"],
    );
    r.succeeds();
    assert_eq!(objects(&r)[0]["host"], "127.0.0.1", "{r}");
    let r = c.run("ec2-killall", &["--json"]);
    r.succeeds();
    let gone = objects(&r);
    assert_eq!(gone.len(), 3, "{r}");
    assert_eq!(
        gone.iter().filter(|v| v["state"] == "forgotten").count(),
        1,
        "{r}"
    );
}
