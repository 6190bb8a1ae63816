//! Loads the bundled component and prepares a TLS configuration, the first thing a
//! gateway embedding `gateway-auth-host` does.

use gateway_auth_host::{PluginOptions, Runtime, TrustSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::bundled()?;
    let mut plugin = runtime.plugin(PluginOptions::default())?;
    let profile = plugin.prepare(&TrustSpec::web_roots())?;
    println!(
        "bundled component loaded: profile {} with {} anchors",
        profile.id, profile.anchors
    );
    Ok(())
}
