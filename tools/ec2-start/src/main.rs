//! ec2-start: start the selected instances of the case and wait for them.
common::bin!(common::cmd::lifecycle::Start);
