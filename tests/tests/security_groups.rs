//! Security groups are enforced on the local network (issue 22): a port the case's group does
//! not open to the caller times out here as on AWS, the case's instances reach each other
//! through the group's self rule, and another case's instances do not. Regression tests named
//! after what the local cloud let through before (it recorded the rules and enforced none).

use e2e::Case;

/// A TCP server on port 8080 of each selected machine, bound to the machine's own address,
/// answering `hello` (python's socket module: http.server resolves its address first, which
/// can take seconds without DNS).
const SERVER: &str = r#"set -- $SSH_CONNECTION
cat > srv.py <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(b"hello\n")
    c.close()
EOF
exec python3 srv.py "$3""#;

/// A probe of `$ADDR:8080` printing what happened: `hello`, `timed out` (dropped, as a
/// security group drops) or `refused` (reached, nothing listening).
const PROBE: &str = r#"python3 -c '
import socket, sys
try:
    print(socket.create_connection((sys.argv[1], 8080), timeout=3).recv(16).decode().strip())
except socket.timeout:
    print("timed out")
except ConnectionRefusedError:
    print("refused")
' "$ADDR""#;

/// The probe of instance #1's port 8080, run here (the caller, 127.0.0.1).
fn probe_from_the_caller(c: &Case) -> e2e::Run {
    c.tool("ec2-exec-local")
        .args(&[
            "--select",
            "1",
            &PROBE.replace("$ADDR", "$CURRENT_AMI_PRIVATE_IP"),
        ])
        .run()
}

fn address(c: &Case, index: u64) -> String {
    c.descriptors()
        .into_values()
        .find(|d| d["index"] == index)
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Starts the server on instance #1 and waits until instance #1 itself gets its answer.
fn serve_on_first(c: &Case) -> String {
    c.run(
        "ec2-exec-remote",
        &["--select", "1", "-bg", "--job", "srv", SERVER],
    )
    .succeeds();
    let addr = address(c, 1);
    let probe = PROBE.replace("$ADDR", &addr);
    let wait = format!(
        "for i in $(seq 100); do [ \"$({probe})\" = hello ] && exit 0; sleep 0.2; done; exit 1"
    );
    c.run("ec2-exec-remote", &["--select", "1", &wait])
        .succeeds();
    addr
}

#[test]
fn a_port_the_case_forgot_to_open_answered_the_caller() {
    let c = Case::new();
    c.create(2);
    let addr = serve_on_first(&c);
    // The case's other instance reaches it: the group's self rule.
    let r = c
        .tool("ec2-exec-remote")
        .args(&["--select", "2", &PROBE.replace("$ADDR", &addr)])
        .run();
    r.succeeds().stdout_has(": hello");
    // The caller does not: no `--open 8080`, so the packets are dropped (a timeout, not a
    // refusal), as AWS drops them.
    let r = probe_from_the_caller(&c);
    r.succeeds().stdout_has(": timed out");
    // Opened later (`--open` with --add authorizes it on the case's group), it answers.
    c.run("ec2-create", &["--add", "1", "--open", "8080"])
        .succeeds();
    let r = probe_from_the_caller(&c);
    r.succeeds().stdout_has(": hello");
}

#[test]
fn another_cases_instances_reached_this_cases_servers() {
    let server = Case::new();
    server.create(1);
    let addr = serve_on_first(&server);
    let other = Case::new();
    other.create(1);
    let r = other
        .tool("ec2-exec-remote")
        .args(&[&PROBE.replace("$ADDR", &addr)])
        .run();
    r.succeeds().stdout_has(": timed out");
    // Its own port 22 is not open to the other case either (only to the caller's CIDR).
    let ssh = server.env["EC2_TOOLS_SSH_PORT"].clone();
    let r = other
        .tool("ec2-exec-remote")
        .args(&[&PROBE.replace("8080", &ssh).replace("$ADDR", &addr)])
        .run();
    r.succeeds().stdout_has(": timed out");
}
