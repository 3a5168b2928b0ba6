//! ec2-stop: stop the selected instances of the case and wait for them.
common::bin!(common::cmd::lifecycle::Stop);
