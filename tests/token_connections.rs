//! Connections to the token endpoint through the real component and host: kept alive
//! between requests, retired after an error, and replaced without a failed request
//! when the server closes an idle one.

use std::thread;
use std::time::Duration;

use gateway_auth_devserver::{DevServer, Misbehaviour};
use gateway_auth_host::{Error, Grant, OAuthError};
use gateway_auth_tests::{dev_basic_client, loopback_plugin};

#[test]
fn token_requests_of_a_client_share_one_kept_alive_connection() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let client = dev_basic_client(&server);
    for _ in 0..5 {
        plugin
            .request_token(&client, Grant::ClientCredentials)
            .unwrap();
    }
    assert_eq!(server.token_requests(), 5);
    assert_eq!(server.connections(), 1);
    assert_eq!(plugin.transport_stats().connections, 1);
}

#[test]
fn an_error_answer_retires_its_connection() {
    let server = DevServer::start(Default::default()).unwrap();
    let mut plugin = loopback_plugin();
    let client = dev_basic_client(&server);
    plugin
        .request_token(&client, Grant::ClientCredentials)
        .unwrap();
    server.set_misbehaviour(Some(Misbehaviour::InvalidClient), Some(1));
    let refused = plugin.request_token(&client, Grant::ClientCredentials);
    assert!(
        matches!(&refused, Err(Error::OAuth(OAuthError::Protocol(p))) if p.error == "invalid_client"),
        "{refused:?}"
    );
    plugin
        .request_token(&client, Grant::ClientCredentials)
        .unwrap();
    // The first connection carried the refusal and was closed; the third request
    // needed a new one.
    assert_eq!(server.connections(), 2);
}

#[test]
fn a_server_closing_idle_connections_costs_no_failed_request() {
    let server = DevServer::start(Default::default()).unwrap();
    server.set_idle_close(Some(Duration::from_millis(100)));
    let mut plugin = loopback_plugin();
    let client = dev_basic_client(&server);
    for _ in 0..3 {
        plugin
            .request_token(&client, Grant::ClientCredentials)
            .unwrap();
        thread::sleep(Duration::from_millis(400));
    }
    // Every request reached the server once, each on a connection of its own.
    assert_eq!(server.token_requests(), 3);
    assert_eq!(server.connections(), 3);
}
