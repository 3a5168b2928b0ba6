//! ec2-status: one line per instance of the case, refreshed from AWS.
common::bin!(common::cmd::status::Status);
