//! The `gateway-auth` command's workings, as a library so that the end-to-end tests run
//! the very scenarios the demo shows.

pub mod bench;
pub mod bench_compare;
pub mod bench_scale;
pub mod bench_upstream;
pub mod commands;
pub mod config;
pub mod demo;
pub mod gateways;
pub mod hit_rates;
pub mod progress;
pub mod serve_metrics;
pub mod trust;
pub mod upstream_traffic;
