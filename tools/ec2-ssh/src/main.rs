//! ec2-ssh: an interactive login (OpenSSH, pinned host keys) on one instance of the case.
common::bin!(common::cmd::login::Login);
