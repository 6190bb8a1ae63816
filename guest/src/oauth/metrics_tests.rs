//! What the `metrics` export reports of the flows: token requests counted inside
//! renewals too, and open sessions by phase.

use super::testing::{FakePlatform, error_json, json, token_json, token_json_with_refresh};
use super::*;
use gateway_auth_api::*;

fn client() -> Client {
    let mut client = Client::new(
        "gw",
        ClientAuth::ClientSecretBasic(ClientSecret::new("CLIENT-SECRET")),
        TrustSpec::default(),
    );
    client.token_endpoint = Some("https://as.example/token".into());
    client
}

fn counted() -> Vec<(String, String, u64)> {
    crate::metrics::counters()
        .token_requests()
        .into_iter()
        .map(|r| (r.grant, r.outcome, r.count))
        .collect()
}

fn phases(oauth: &mut OAuth, p: &FakePlatform) -> Vec<(SessionPhase, u32)> {
    oauth
        .session_phases(p.now())
        .into_iter()
        .filter(|c| c.sessions > 0)
        .map(|c| (c.phase, c.sessions))
        .collect()
}

#[test]
fn renewals_inside_access_token_are_counted_by_the_grant_they_send() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    let rt = SessionGrant::RefreshToken(RefreshToken::new("RT-0"));
    oauth.open_session(&mut p, "k", client(), rt).unwrap();
    p.push(json(200, &token_json_with_refresh("AT-1", 3600, "RT-1")));
    oauth.access_token(&mut p, "k").unwrap();
    // A held token is served without a request, so without a count.
    oauth.access_token(&mut p, "k").unwrap();
    p.push(json(400, &error_json("invalid_client")));
    oauth
        .request_token(&mut p, &client(), Grant::ClientCredentials)
        .unwrap_err();
    assert_eq!(
        counted(),
        vec![
            ("client_credentials".into(), "protocol".into(), 1),
            ("refresh_token".into(), "ok".into(), 1),
        ]
    );
}

#[test]
fn open_sessions_are_counted_by_phase_and_closed_ones_drop_out() {
    let mut p = FakePlatform::new();
    let mut oauth = OAuth::new();
    for key in ["a", "b", "c"] {
        let grant = SessionGrant::ClientCredentials;
        oauth.open_session(&mut p, key, client(), grant).unwrap();
    }
    p.push(json(200, &token_json("AT", 3600)));
    oauth.access_token(&mut p, "a").unwrap();
    assert_eq!(
        phases(&mut oauth, &p),
        vec![(SessionPhase::Empty, 2), (SessionPhase::Valid, 1)]
    );
    // Every phase is listed, so a dashboard's series do not come and go.
    assert_eq!(oauth.session_phases(p.now()).len(), SESSION_PHASES.len());
    oauth.close_session(&mut p, "b");
    p.push(json(503, "{}"));
    p.push(json(503, "{}"));
    p.push(json(503, "{}"));
    let _ = oauth.access_token(&mut p, "c");
    assert_eq!(
        phases(&mut oauth, &p),
        vec![(SessionPhase::Valid, 1), (SessionPhase::Backoff, 1)]
    );
}
