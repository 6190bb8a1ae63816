//! Builds the guest component for `wasm32-wasip2` once, so that the host library, the
//! `gateway-auth` binary and every test embed the same `.wasm`.
//!
//! The guest gets its own target directory (`target/guest`): a nested cargo in the
//! outer one would wait forever on the outer build's lock.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("host/ sits in the workspace");
    for watched in [
        "api/src",
        "api/Cargo.toml",
        "guest/src",
        "guest/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--package",
            "gateway-auth-guest",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers (clippy, coverage) are for the host target.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        build.env_remove(var);
    }
    let status = build.status().expect("cargo runs");
    assert!(
        status.success(),
        "building the guest component failed; run `cargo build -p gateway-auth-guest --target wasm32-wasip2 --release` to see why (it needs the wasm32-wasip2 target and clang)"
    );

    let built = target_dir.join("wasm32-wasip2/release/gateway_auth_guest.wasm");
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("gateway_auth.wasm");
    std::fs::copy(&built, &out).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
}
