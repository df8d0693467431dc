//! The Synap server: configuration, listeners and background tasks around the one engine.
//!
//! Layout:
//! - [`config`]  defaults, YAML file, `SYNAP_*` environment, flags
//! - [`fdlimit`] the open-file limit, raised at start, and the caps fitted under it
//! - [`server`]  binding listeners, background tasks (active expiry), orderly shutdown
//! - [`service`] the handle front ends share: execute commands, wait for durability
//! - [`http`]    REST routes and the command envelope
//! - [`resp`]    the Redis protocol front end

pub mod cluster;
pub mod config;
pub mod fdlimit;
pub mod http;
pub mod info;
pub mod metrics;
pub mod replication;
pub mod resp;
pub mod server;
pub mod service;
pub mod stats;
pub mod tls;

pub use config::{Cli, Config};
pub use server::RunningServer;
