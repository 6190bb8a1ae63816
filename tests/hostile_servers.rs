//! Servers that misbehave the way broken and hostile ones do, through the real
//! component and host: each ends in a clear error with bounded reads, and the instance
//! goes on serving.

use gateway_auth_host::{Error, Grant, OAuthError};
use gateway_auth_tests::{TestCa, TokenServer, endless, loopback_plugin, token_server_client};

#[test]
fn a_response_that_never_ends_its_head_or_chunk_line_is_cut_off_and_the_instance_serves_on() {
    let ca = TestCa::new("hostile");
    let good = TokenServer::start(&ca, None);
    for (head, filler, error) in [
        (
            "HTTP/1.1 200 OK\r\nX: ",
            b'a',
            "response head larger than 16384 bytes",
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b'f',
            "chunk-size line longer than 1024 bytes",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n",
            b'a',
            "response body larger than 1048576 bytes",
        ),
    ] {
        let server = TokenServer::start_with(&ca, None, endless(head, filler));
        let mut plugin = loopback_plugin();
        let result =
            plugin.request_token(&token_server_client(&ca, &server), Grant::ClientCredentials);
        assert!(
            matches!(&result, Err(Error::OAuth(OAuthError::InvalidResponse(m))) if m == error),
            "{head:?}: {result:?}"
        );
        // Cut off at the bound, not read until the 20 s deadline.
        let received = plugin.transport_stats().bytes_received;
        assert!(
            received <= (1 << 20) + (64 << 10),
            "{head:?}: {received} bytes read"
        );

        let token = plugin
            .request_token(&token_server_client(&ca, &good), Grant::ClientCredentials)
            .expect("the same instance serves a normal request");
        assert!(token.access_token.secret().starts_with("tok-"));
    }
}
