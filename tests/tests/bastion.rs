//! Bastions (`--jump`, issue 9): instances reached only through one SSH session to a bastion.
//! The local cloud's own sshd (127.0.0.1) is the bastion; `EC2_TOOLS_SSH_ALLOW=127.0.0.1/32`
//! lets the tools connect to it alone, so every instance session that works went through it.

use e2e::Case;

#[test]
fn through_a_bastion_every_tool_reaches_the_instances_with_one_login_and_its_key_pinned() {
    let c = Case::new();
    let jump = format!(
        "{}@127.0.0.1:{}",
        c.env["EC2_TOOLS_SSH_USER"], c.env["EC2_TOOLS_SSH_PORT"]
    );
    let via = [
        ("EC2_TOOLS_SSH_ALLOW", "127.0.0.1/32"),
        ("EC2_TOOLS_SSH_JUMP", jump.as_str()),
    ];
    let r = c.run_with("ec2-create", &["3", "--timeout", "60"], &via);
    r.assert_code(0);
    // Without the bastion the instances are off limits: the runs below went through it.
    let r = c.run_with(
        "ec2-exec-remote",
        &["true"],
        &[("EC2_TOOLS_SSH_ALLOW", "127.0.0.1/32")],
    );
    assert_ne!(r.code, 0, "{r}");
    r.stderr_has("outside EC2_TOOLS_SSH_ALLOW");

    let r = c.run_with(
        "ec2-exec-remote",
        &["-v", "--label", "index", "hostname"],
        &via,
    );
    r.assert_code(0);
    let names: std::collections::BTreeSet<&str> = r.stdout.lines().collect();
    assert_eq!(names.len(), 3, "each instance its own machine: {r}");
    assert_eq!(
        r.stderr
            .matches("logged in; instances are reached through it")
            .count(),
        1,
        "one bastion login for three hosts: {r}"
    );
    // Files both ways, over the same channels.
    std::fs::write(c.path().join("payload.txt"), "through the bastion\n").unwrap();
    c.run_with("ec2-put", &["payload.txt", "in"], &via)
        .assert_code(0);
    let r = c.run_with("ec2-get", &["in/payload.txt", "back"], &via);
    r.assert_code(0);
    let got = std::fs::read_dir(c.path().join("back")).unwrap().count();
    assert_eq!(got, 3, "{r}");

    // The bastion's host key is pinned, and OpenSSH's own ssh goes through it by ProxyJump.
    let pin = std::fs::read_to_string(c.path().join(".ec2-tools/jump.json")).unwrap();
    assert!(pin.contains("SHA256:"), "{pin}");
    let conf = std::fs::read_to_string(c.path().join(".ec2-tools/ssh_config")).unwrap();
    assert!(conf.contains("ProxyJump ec2-tools-bastion"), "{conf}");
    let r = c.shell("ssh -F .ec2-tools/ssh_config 2 hostname");
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.starts_with("ip-127-"), "{r}");

    // A bastion that offers another key is refused, as an instance would be.
    let forged = pin.replace("SHA256:", "SHA256:x");
    std::fs::write(c.path().join(".ec2-tools/jump.json"), forged).unwrap();
    let r = c.run_with("ec2-exec-remote", &["true"], &via);
    assert_ne!(r.code, 0, "{r}");
    r.stderr_has("host key changed");
    r.stderr_has("bastion");
}
