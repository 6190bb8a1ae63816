//! `gateway-auth`: run the demo, the development authorization server, benchmarks, or
//! single operations of the plugin from the command line.

use gateway_auth::commands;

use std::process::ExitCode;

use clap::Parser;

/// gateway-auth: a TLS configuration cache and OAuth 2.0 client flows in a WebAssembly
/// plugin, run by a wasmtime host.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEWAY_AUTH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match commands::run(Args::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
