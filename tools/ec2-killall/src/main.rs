//! ec2-killall: terminate every described instance, then remove its descriptor.
common::bin!(common::cmd::killall::Killall);
