//! ec2-hosts: machines you already have, described in the test case beside its instances.
common::bin!(common::cmd::hosts::Hosts);
