//! Failure handling against real parts that misbehave: an sshd that drops connections under
//! load (OpenSSH MaxStartups throttling).

use e2e::Case;

#[test]
fn connections_dropped_by_a_throttling_sshd_are_retried_with_backoff() {
    // An sshd that admits only 2 unauthenticated connections at a time and drops the rest
    // before the banner, as a busy sshd does.
    let cloud =
        e2e::start_cloud_with(&[("LOCALCLOUD_MAX_STARTUPS", "2")]).expect("throttled cloud");
    let c = Case::in_cloud(&cloud);
    c.create(12);
    for _ in 0..3 {
        let r = c.run("ec2-exec-remote", &["--fanout", "12", "echo ok"]);
        r.assert_code(0);
        assert_eq!(
            r.stdout.lines().filter(|l| l.ends_with(": ok")).count(),
            12,
            "{r}"
        );
    }
    c.run("ec2-killall", &[]).assert_code(0);
}
