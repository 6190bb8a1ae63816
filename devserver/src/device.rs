//! The device authorization grant (RFC 8628): issuing device and user codes, the
//! user's decision, and the polling rules at `/token`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::state::{State, random_bytes, random_token};
use crate::wire::OAuthError;

/// How long a device code lives (RFC 8628 §3.2 `expires_in`).
const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(600);
/// What a `slow_down` adds to the interval (RFC 8628 §3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// Polls this much early still count as on time: a client that waits exactly the
/// interval measures from when it sent its poll, the server from when it arrived.
const POLL_SLACK: Duration = Duration::from_millis(200);

/// One pending device authorization.
pub(crate) struct DeviceGrant {
    user_code: String,
    client_id: String,
    scope: Option<String>,
    expires_at: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    decision: Decision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Pending,
    Approved,
    Denied,
}

/// What one poll gets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Poll {
    Expired,
    SlowDown,
    Pending,
    Approved,
    Denied,
}

/// The polling rules: expiry first, then the rate (a poll sooner than the interval gets
/// `slow_down` and a longer interval), then the user's decision.
pub(crate) fn poll(grant: &mut DeviceGrant, now: Instant) -> Poll {
    if now >= grant.expires_at {
        return Poll::Expired;
    }
    let too_soon = grant
        .last_poll
        .is_some_and(|last| now.duration_since(last) + POLL_SLACK < grant.interval);
    grant.last_poll = Some(now);
    if too_soon {
        grant.interval += SLOW_DOWN_STEP;
        return Poll::SlowDown;
    }
    match grant.decision {
        Decision::Pending => Poll::Pending,
        Decision::Approved => Poll::Approved,
        Decision::Denied => Poll::Denied,
    }
}

/// Starts a device authorization; the answer is the RFC 8628 §3.2 response.
pub(crate) fn start(st: &mut State, issuer: &str, client_id: &str, scope: Option<&str>) -> Value {
    // RFC 8628 §6.1: consonants only (no vowels, so no words), easy to type.
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let letters: Vec<char> = random_bytes::<8>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let user_code = format!(
        "{}-{}",
        String::from_iter(&letters[..4]),
        String::from_iter(&letters[4..])
    );
    let device_code = random_token("dc");
    let grant = DeviceGrant {
        user_code: user_code.clone(),
        client_id: client_id.to_owned(),
        scope: scope.map(Into::into),
        expires_at: Instant::now() + DEVICE_CODE_LIFETIME,
        interval: Duration::from_secs(st.device_interval),
        last_poll: None,
        decision: Decision::Pending,
    };
    st.devices.insert(device_code.clone(), grant);
    json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": format!("{issuer}/device"),
        "verification_uri_complete": format!("{issuer}/device?user_code={user_code}"),
        "expires_in": DEVICE_CODE_LIFETIME.as_secs(),
        "interval": st.device_interval,
    })
}

/// Records the user's decision; false when no live grant has that user code. Case and
/// dashes do not matter, as a person typing the code would expect.
pub(crate) fn decide(st: &mut State, user_code: &str, decision: Decision) -> bool {
    let normal = |c: &str| c.replace('-', "").to_ascii_uppercase();
    let now = Instant::now();
    st.devices
        .values_mut()
        .find(|g| normal(&g.user_code) == normal(user_code) && g.expires_at > now)
        .map(|g| g.decision = decision)
        .is_some()
}

/// One poll at `/token`: the subject and scope once approved (the device code is then
/// spent), else the RFC 8628 §3.5 error.
pub(crate) fn redeem(
    st: &mut State,
    client_id: &str,
    device_code: &str,
    now: Instant,
) -> Result<(String, Option<String>), OAuthError> {
    let grant = st
        .devices
        .get_mut(device_code)
        .filter(|g| g.client_id == client_id)
        .ok_or_else(|| OAuthError::invalid_grant("unknown device_code"))?;
    let error = |code, why: String| Err(OAuthError::new(400, code, why));
    match poll(grant, now) {
        Poll::Expired => error("expired_token", "the device code has expired".into()),
        Poll::SlowDown => error(
            "slow_down",
            format!("poll at most every {} s", grant.interval.as_secs()),
        ),
        Poll::Pending => error(
            "authorization_pending",
            "the user has not decided yet".into(),
        ),
        Poll::Denied => error("access_denied", "the user denied the request".into()),
        Poll::Approved => {
            let scope = grant.scope.clone();
            st.devices.remove(device_code);
            Ok((st.consenting_user(), scope))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(interval: u64, start: Instant) -> DeviceGrant {
        DeviceGrant {
            user_code: "BCDF-GHJK".into(),
            client_id: "c".into(),
            scope: None,
            expires_at: start + DEVICE_CODE_LIFETIME,
            interval: Duration::from_secs(interval),
            last_poll: None,
            decision: Decision::Pending,
        }
    }

    #[test]
    fn polls_at_the_interval_are_pending_until_decided() {
        let t0 = Instant::now();
        let mut g = grant(1, t0);
        assert_eq!(poll(&mut g, t0), Poll::Pending);
        assert_eq!(poll(&mut g, t0 + Duration::from_secs(1)), Poll::Pending);
        // A poll a little early (the client's clock started before ours) is still fine.
        assert_eq!(
            poll(&mut g, t0 + Duration::from_millis(1900)),
            Poll::Pending
        );
        g.decision = Decision::Approved;
        assert_eq!(poll(&mut g, t0 + Duration::from_secs(3)), Poll::Approved);
        g.decision = Decision::Denied;
        assert_eq!(poll(&mut g, t0 + Duration::from_secs(4)), Poll::Denied);
    }

    #[test]
    fn polling_too_fast_slows_down_and_lengthens_the_interval() {
        let t0 = Instant::now();
        let mut g = grant(5, t0);
        assert_eq!(poll(&mut g, t0), Poll::Pending);
        assert_eq!(poll(&mut g, t0 + Duration::from_secs(2)), Poll::SlowDown);
        assert_eq!(g.interval, Duration::from_secs(10));
        // The old interval is no longer enough.
        assert_eq!(poll(&mut g, t0 + Duration::from_secs(8)), Poll::SlowDown);
        assert_eq!(poll(&mut g, t0 + Duration::from_secs(23)), Poll::Pending);
    }

    #[test]
    fn expiry_wins_and_interval_zero_never_slows_down() {
        let t0 = Instant::now();
        let mut g = grant(0, t0);
        assert_eq!(poll(&mut g, t0), Poll::Pending);
        assert_eq!(poll(&mut g, t0), Poll::Pending);
        g.decision = Decision::Approved;
        assert_eq!(poll(&mut g, t0 + DEVICE_CODE_LIFETIME), Poll::Expired);
    }
}
