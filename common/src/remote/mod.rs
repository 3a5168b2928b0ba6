//! Everything that talks to hosts: SSH sessions (ssh.rs) and the host-key checks before a
//! login (hostkey.rs), commands on them (command.rs), the
//! worker pool that runs one thing per host (fanout.rs), what becomes of each host's output
//! and result (results.rs), files copied over SFTP (sftp.rs), what one host does in a run, as
//! data (task.rs), and the per-case process that keeps sessions warm between runs (holder/).
//!
//! Takes descriptors and SSH settings from above; knows nothing of AWS. What does not belong
//! here: what a tool runs on its hosts (cmd/).

pub mod command;
pub mod failure;
pub mod fanout;
pub mod holder;
pub mod hostkey;
pub mod jump;
pub mod pool;
pub mod results;
pub mod sftp;
pub mod ssh;
pub mod sshconf;
pub mod ssm_script;
pub mod task;
