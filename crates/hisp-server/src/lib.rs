//! The Hisp daemon's library: configuration now; the SMTP pipelines, queue workers and
//! tracker join it as they are built. The `hisp` binary is a thin CLI over this crate and
//! `hisp-direct`.
#![warn(missing_docs)]

pub mod config;
pub mod instance;
