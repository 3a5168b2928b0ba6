//! ec2-get REMOTE_PATH LOCAL_DIR: fetch a file or directory from every selected instance.
common::bin!(common::cmd::files::Get);
