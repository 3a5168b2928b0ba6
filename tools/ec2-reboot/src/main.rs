//! ec2-reboot: reboot the selected instances of the case and wait for them.
common::bin!(common::cmd::lifecycle::Reboot);
