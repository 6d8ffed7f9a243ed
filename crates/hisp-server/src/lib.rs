//! The Hisp daemon's library: configuration now; the SMTP pipelines, queue workers and
//! tracker join it as they are built. The `hisp` binary is a thin CLI over this crate and
//! `hisp-direct`.
#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod bundles;
pub mod clock;
pub mod config;
pub mod context;
pub mod daemon;
pub mod directory;
pub mod dns_server;
pub mod edge;
pub mod harvest;
pub mod http;
pub mod http_serve;
pub mod inbound;
pub mod instance;
pub mod metrics;
pub mod notify;
pub mod outbound;
mod outcome;
pub mod pair;
pub mod reload;
pub mod report;
pub mod retention;
pub mod smtp_handler;
pub mod spill;
pub mod suspend;
mod tally;
pub mod tracker;
pub mod users;
