//! ec2-bake: an AMI from a set-up instance of the case, recorded for the next ec2-create.
common::bin!(common::cmd::bake::Bake);
