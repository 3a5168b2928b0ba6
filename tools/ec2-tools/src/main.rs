//! ec2-tools: the suite's entry point (help, completions, man pages).
common::bin!(common::cmd::suite::Suite);
