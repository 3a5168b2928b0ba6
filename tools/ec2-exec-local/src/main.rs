//! ec2-exec-local CMD [-bg]: run `sh -c CMD` locally once per described instance.
common::bin!(common::cmd::exec_local::ExecLocal);
