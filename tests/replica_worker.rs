//! One replica process for the multi-process tests: a pool of instances on a shared
//! store running [`replica_workload`], then one line of figures on stdout: calls,
//! failed calls, and sessions not `valid` at the end.
//!
//! Arguments, all `NAME=VALUE`: `store` (a store URL), `token-endpoint`, `ca` (a PEM
//! file), `sessions`, `instances`, `threads`, `seconds`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gateway_auth_host::{EgressPolicy, PluginOptions, PluginPool, SessionPhase, open_store};
use gateway_auth_tests::{replica_client_at, replica_grant, replica_workload, runtime};

fn main() {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .map(|a| {
            let (name, value) = a
                .split_once('=')
                .unwrap_or_else(|| panic!("arguments are NAME=VALUE, not {a:?}"));
            (name.to_string(), value.to_string())
        })
        .collect();
    let arg = |name: &str| {
        args.get(name)
            .unwrap_or_else(|| panic!("missing argument {name}=..."))
            .clone()
    };
    let number =
        |name: &str| -> usize { arg(name).parse().unwrap_or_else(|e| panic!("{name}: {e}")) };

    let ca = std::fs::read_to_string(arg("ca")).expect("the CA file");
    let mut client = replica_client_at(&arg("token-endpoint"), &ca);
    if args.contains_key("skew") {
        client.refresh_skew_seconds = Some(number("skew") as u32);
    }
    if args.contains_key("timeout-ms") {
        client.timeout_ms = Some(number("timeout-ms") as u32);
    }
    let options = PluginOptions {
        egress: Arc::new(EgressPolicy::parse(["127.0.0.1"]).unwrap()),
        store: open_store(&arg("store")).expect("the store"),
        ..PluginOptions::default()
    };
    let pool = PluginPool::new(runtime(), options, number("instances")).expect("a pool");
    let sessions = number("sessions");
    for i in 0..sessions {
        pool.open_session(&format!("s{i}"), &client, &replica_grant(i))
            .expect("open-session");
    }
    // The parent starts its clock when it sees this.
    println!("ready");
    let report = replica_workload(
        &|| pool.get().unwrap(),
        sessions,
        number("threads"),
        Duration::from_secs(number("seconds") as u64),
    );
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    let mut plugin = pool.get().unwrap();
    let not_valid = (0..sessions)
        .filter(|i| {
            let status = plugin.session_status(&format!("s{i}"));
            !matches!(status, Ok(Some(s)) if s.phase == SessionPhase::Valid)
        })
        .count();
    println!(
        "calls={} failures={} not-valid={not_valid}",
        report.calls, report.failures
    );
}
