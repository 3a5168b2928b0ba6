//! ec2-put LOCAL... REMOTE_DIR: copy files to every selected instance, in parallel.
common::bin!(common::cmd::files::Put);
