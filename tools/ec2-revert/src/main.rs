//! ec2-revert: replace the selected instances with fresh ones from the AMI.
common::bin!(common::cmd::lifecycle::Revert);
