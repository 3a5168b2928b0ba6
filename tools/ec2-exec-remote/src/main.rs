//! ec2-exec-remote CMD [-bg]: run CMD on every selected instance over SSH, in parallel.
common::bin!(common::cmd::exec_remote::ExecRemote);
