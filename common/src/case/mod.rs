//! The test case's own state: its instance descriptors on disk, the tools' bookkeeping beside
//! them, and which of its instances a tool acts on.
//!
//! Everything here works on the test-case directory alone. What does not belong here: the
//! flags (cli/), settings, and anything that talks to AWS or to hosts — aws/ and remote/
//! take descriptors from here; nothing here reaches down to them.

pub mod clocks;
pub mod descriptor;
pub mod jobs;
pub mod select;
pub mod store;

pub use store::Store;
