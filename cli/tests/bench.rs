//! `gateway-auth bench --json`: one JSON object on standard output with every figure
//! the benchmark reports, each ratio from interleaved rounds.

use std::process::Command;

mod common;

#[test]
fn bench_json_reports_every_comparison_with_its_spread_and_the_hit_rates_of_every_policy() {
    let output = Command::new(env!("CARGO_BIN_EXE_gateway-auth"))
        .args([
            "bench",
            "--json",
            "--rounds",
            "1",
            "--scale",
            "50",
            "--largest-cache",
            "100",
        ])
        .output()
        .expect("the command runs");
    assert!(output.status.success(), "{:?}", common::errors(&output));
    let report: serde_json::Value =
        serde_json::from_str(&common::stdout(&output)).expect("stdout is one JSON object");
    for ratio in [
        "tls_miss_speedup_vs_python",
        "tls_miss_vs_native",
        "tls_hit_vs_python",
        "tls_hit_vs_native",
        "token_hot_vs_native",
        "exchange_vs_oauth2_rs",
        "exchange_speedup_vs_httpx",
        "handshake_full_vs_native",
        "handshake_resumed_vs_native",
        "bulk_vs_native",
    ] {
        let field = &report[ratio];
        let value = field["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{ratio}: {field}"));
        assert!(value > 0.0, "{ratio}: {field}");
        assert!(field["min"].as_f64().unwrap() <= value, "{ratio}: {field}");
        assert!(field["max"].as_f64().unwrap() >= value, "{ratio}: {field}");
        assert_eq!(field["rounds"], 1, "{ratio}");
    }
    for figure in [
        "instantiate_ms",
        "first_token_ms",
        "bytes_per_tls_profile",
        "bytes_per_session",
        "pool_speedup",
    ] {
        let value = report[figure]
            .as_f64()
            .unwrap_or_else(|| panic!("{figure}"));
        assert!(value > 0.0, "{figure}: {value}");
    }
    let rates = report["hit_rates"].as_object().expect("hit_rates");
    for trace in [
        "round_robin_101_c100",
        "zipf_1.2_10000_c100",
        "seed_scenario_c100",
    ] {
        for policy in ["full_wipe", "lru", "tiny_lfu", "optimal"] {
            let rate = rates[trace][policy].as_f64().expect("a rate");
            assert!((0.0..=1.0).contains(&rate), "{trace} {policy}: {rate}");
        }
    }
    // The seed's complaint, in one row: LRU hits nothing on a round-robin just over
    // the capacity; the admission filter keeps nearly all of it.
    assert_eq!(rates["round_robin_101_c100"]["lru"], 0.0);
    assert!(rates["round_robin_101_c100"]["tiny_lfu"].as_f64().unwrap() > 0.9);
}
