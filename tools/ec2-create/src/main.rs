//! ec2-create N: make the case hold N instances that accept SSH; write their descriptors.
common::bin!(common::cmd::create::Create);
