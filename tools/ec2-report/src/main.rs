//! ec2-report INPUT: merge a load test's results into one graded answer and a page of charts.
common::bin!(common::cmd::report::Report);
