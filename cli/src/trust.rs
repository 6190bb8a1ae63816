//! Trust material as the plugin sees it: read from files, prepared through the plugin,
//! and judged by its earliest expiry (`gateway-auth prepare`, `gateway-auth tls check`,
//! `gateway-auth check`).
//!
//! The plugin builds a configuration from an expired certificate (the peer is the one
//! that refuses it, at the handshake), so the refusal of expired material is here,
//! computed from the profile's earliest `notAfter`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use gateway_auth_host::{Plugin, Profile, TrustSpec};

/// Reads a PEM file, naming it if that fails.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The trust spec of a CA bundle and an optional client certificate and key.
pub fn trust_spec(
    ca: Option<&Path>,
    certificate: Option<&Path>,
    key: Option<&Path>,
    web_roots: bool,
) -> Result<TrustSpec> {
    Ok(TrustSpec {
        ca_bundle: ca.map(read).transpose()?.unwrap_or_default(),
        client_certificate: certificate.map(read).transpose()?,
        client_key: key.map(read).transpose()?.map(Into::into),
        web_roots,
    })
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2027-01-01 00:00:00 UTC`.
pub fn date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    // Days to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// How far `then` is from `now`: `in 364 days`, `3 hours ago`.
pub fn distance(then: u64, now: u64) -> String {
    let gap = then.abs_diff(now);
    let (count, unit) = match gap {
        86_400.. => (gap / 86_400, "day"),
        3600.. => (gap / 3600, "hour"),
        60.. => (gap / 60, "minute"),
        _ => (gap, "second"),
    };
    let plural = if count == 1 { "" } else { "s" };
    if then >= now {
        format!("in {count} {unit}{plural}")
    } else {
        format!("{count} {unit}{plural} ago")
    }
}

/// The profile's earliest expiry as a date and a distance, or `-`.
pub fn expiry(profile: &Profile, now: u64) -> String {
    match profile.not_after {
        Some(t) => format!("{} ({})", date(t), distance(t, now)),
        None => "- (web roots only)".into(),
    }
}

/// Prints a profile, one field a line.
pub fn print_profile(profile: &Profile, now: u64) {
    println!("profile id:  {}", profile.id);
    println!("anchors:     {}", profile.anchors);
    println!("mutual TLS:  {}", profile.mutual_tls);
    println!("not after:   {}", expiry(profile, now));
}

/// Prepares `spec` through the plugin, as the runtime will, and refuses it when its
/// earliest certificate has expired at `now`. When it has, a second prepare of the CA
/// bundle alone tells whether the bundle or the client chain is the one.
pub fn prepare_unexpired(plugin: &mut Plugin, spec: &TrustSpec, now: u64) -> Result<Profile> {
    let profile = plugin.prepare(spec)?;
    let Some(not_after) = profile.not_after.filter(|&t| t <= now) else {
        return Ok(profile);
    };
    let which = if !profile.mutual_tls {
        "the CA bundle"
    } else {
        let bundle = TrustSpec {
            client_certificate: None,
            client_key: None,
            ..spec.clone()
        };
        match plugin.prepare(&bundle) {
            Ok(p) if p.not_after == Some(not_after) => "the CA bundle",
            _ => "the client certificate chain",
        }
    };
    Err(anyhow!(
        "{which} holds a certificate that expired on {} ({})",
        date(not_after),
        distance(not_after, now)
    ))
}

/// `gateway-auth tls check`: prepares the material, prints its profile, and fails on
/// expired or mismatched material.
pub fn check(
    plugin: &mut Plugin,
    ca: &Path,
    certificate: Option<&Path>,
    key: Option<&Path>,
) -> Result<()> {
    let spec = trust_spec(Some(ca), certificate, key, false)?;
    let now = unix_now();
    let named = [Some(ca), certificate, key]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let profile = prepare_unexpired(plugin, &spec, now).with_context(|| named)?;
    print_profile(&profile, now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_gregorian_utc() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(date(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }

    #[test]
    fn distances_say_which_way_in_the_largest_whole_unit() {
        assert_eq!(distance(1000 + 364 * 86_400 + 5, 1000), "in 364 days");
        assert_eq!(distance(1000, 1000 + 86_400), "1 day ago");
        assert_eq!(distance(1000 + 7200, 1000), "in 2 hours");
        assert_eq!(distance(1000, 1000), "in 0 seconds");
    }
}
