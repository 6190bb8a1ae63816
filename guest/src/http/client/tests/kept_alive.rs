//! Kept-alive connections, against a TLS server on 127.0.0.1 that serves several
//! requests per connection and answers each as the test's script says.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::*;
use crate::http::{MAX_IDLE, PER_ENDPOINT};

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

/// What the server does with one request.
#[derive(Clone, Copy)]
enum Answer {
    /// Writes this response and waits for the next request.
    Reply(&'static str),
    /// Writes this response, then closes the connection with close_notify after the
    /// pause, as a server with a short idle limit does.
    ReplyThenClose(&'static str, Duration),
    /// Closes the connection with close_notify instead of answering: a server's idle
    /// close that crossed the request.
    CloseUnanswered,
    /// Writes the start of this response, then closes the socket.
    PartThenHangUp(&'static str),
    /// Reads the request and says nothing.
    Silent,
}

/// What the server saw.
#[derive(Default)]
struct Log {
    /// The connection (numbered in the order accepted) each request came on.
    requests: Vec<usize>,
    /// Connections the client closed.
    closed_by_client: BTreeSet<usize>,
}

struct Server {
    url: String,
    log: Arc<Mutex<Log>>,
}

impl Server {
    /// Answers the n-th request with `script[n]`, and any beyond with [`OK`].
    fn start(ca: &TestCa, script: Vec<Answer>) -> Self {
        let config = server_config(ca);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}/token",
            listener.local_addr().unwrap().port()
        );
        let log = Arc::new(Mutex::new(Log::default()));
        let script = Arc::new(script);
        let server_log = log.clone();
        thread::spawn(move || {
            for (id, socket) in listener.incoming().enumerate() {
                let Ok(socket) = socket else { return };
                let (config, log, script) = (config.clone(), server_log.clone(), script.clone());
                thread::spawn(move || serve(id, socket, config, &log, &script));
            }
        });
        Self { url, log }
    }

    fn requests(&self) -> Vec<usize> {
        self.log.lock().unwrap().requests.clone()
    }

    /// Whether the client closed connection `id`, waiting a little for the close to
    /// arrive.
    fn closed_by_client(&self, id: usize) -> bool {
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if self.log.lock().unwrap().closed_by_client.contains(&id) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

fn serve(
    id: usize,
    socket: TcpStream,
    config: Arc<ServerConfig>,
    log: &Mutex<Log>,
    script: &[Answer],
) {
    socket.set_nodelay(true).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), socket);
    loop {
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request_complete(&request) {
            match tls.read(&mut buf) {
                Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
                _ => {
                    log.lock().unwrap().closed_by_client.insert(id);
                    return;
                }
            }
        }
        let answer = {
            let mut log = log.lock().unwrap();
            log.requests.push(id);
            script
                .get(log.requests.len() - 1)
                .copied()
                .unwrap_or(Answer::Reply(OK))
        };
        let close = |tls: &mut StreamOwned<ServerConnection, TcpStream>| {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        };
        match answer {
            Answer::Reply(reply) => {
                tls.write_all(reply.as_bytes()).unwrap();
                tls.flush().unwrap();
            }
            Answer::ReplyThenClose(reply, pause) => {
                tls.write_all(reply.as_bytes()).unwrap();
                tls.flush().unwrap();
                thread::sleep(pause);
                return close(&mut tls);
            }
            Answer::CloseUnanswered => return close(&mut tls),
            Answer::PartThenHangUp(part) => {
                let _ = tls.write_all(part.as_bytes());
                let _ = tls.flush();
                return;
            }
            Answer::Silent => return thread::sleep(Duration::from_secs(3)),
        }
    }
}

fn get(
    connector: &mut TcpConnector,
    idle: &mut IdleConnections<Tcp>,
    config: &Arc<ClientConfig>,
    server: &Server,
) -> Result<Response, HttpError> {
    super::super::round_trip(
        connector,
        idle,
        config.clone(),
        &Request::get(&server.url),
        2_000,
    )
}

#[test]
fn requests_that_may_be_replayed_share_one_kept_alive_connection() {
    let ca = ca("kept-alive");
    let server = Server::start(&ca, vec![]);
    let (mut connector, mut idle, config) = (
        TcpConnector::default(),
        IdleConnections::default(),
        config_for(&ca),
    );
    for _ in 0..3 {
        assert_eq!(
            get(&mut connector, &mut idle, &config, &server)
                .unwrap()
                .body,
            b"{}"
        );
    }
    assert_eq!(server.requests(), [0, 0, 0]);
    assert_eq!(idle.len(), 1);
}

#[test]
fn a_request_that_must_not_be_replayed_opens_its_own_connection_which_is_kept_after() {
    let ca = ca("not-replayed");
    let server = Server::start(&ca, vec![]);
    let (mut connector, mut idle, config) = (
        TcpConnector::default(),
        IdleConnections::default(),
        config_for(&ca),
    );
    get(&mut connector, &mut idle, &config, &server).unwrap();
    let refresh = Request::form(&server.url, &[("grant_type", "refresh_token")]);
    assert!(!refresh.replay_safe);
    super::super::round_trip(&mut connector, &mut idle, config.clone(), &refresh, 2_000).unwrap();
    assert_eq!(idle.len(), 2);
    // The connection used last is the one taken.
    get(&mut connector, &mut idle, &config, &server).unwrap();
    assert_eq!(server.requests(), [0, 1, 1]);
}

#[test]
fn a_connection_is_not_reused_after_an_error_answer() {
    let ca = ca("after-error");
    let server = Server::start(
        &ca,
        vec![
            Answer::Reply("HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"),
            Answer::Reply(OK),
            Answer::Reply(
                "HTTP/1.1 400 Bad Request\r\ncontent-length: 25\r\n\r\n{\"error\":\"invalid_grant\"}",
            ),
            Answer::Reply(OK),
        ],
    );
    let (mut connector, mut idle, config) = (
        TcpConnector::default(),
        IdleConnections::default(),
        config_for(&ca),
    );
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            get(&mut connector, &mut idle, &config, &server)
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(statuses, [500, 200, 400, 200]);
    assert_eq!(server.requests(), [0, 1, 1, 2]);
    assert!(server.closed_by_client(0) && server.closed_by_client(1));
}

#[test]
fn an_answer_that_closes_or_leaves_the_connection_out_of_step_retires_it() {
    let ca = ca("retired");
    let cases = [
        (
            "connection: close",
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
        ),
        (
            "close among other options",
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\ncontent-length: 2\r\n\r\n{}",
        ),
        ("HTTP/1.0", "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}"),
        (
            "bytes after the response",
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",
        ),
        (
            "a redirect whose body is not read",
            "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 4\r\n\r\nmove",
        ),
        (
            "a server idle limit shorter than the margin",
            "HTTP/1.1 200 OK\r\nkeep-alive: timeout=1\r\ncontent-length: 2\r\n\r\n{}",
        ),
    ];
    for (case, reply) in cases {
        let server = Server::start(&ca, vec![Answer::Reply(reply), Answer::Reply(OK)]);
        let (mut connector, mut idle, config) = (
            TcpConnector::default(),
            IdleConnections::default(),
            config_for(&ca),
        );
        get(&mut connector, &mut idle, &config, &server).unwrap();
        assert_eq!(idle.len(), 0, "{case}");
        get(&mut connector, &mut idle, &config, &server).unwrap();
        assert_eq!(server.requests(), [0, 1], "{case}");
    }
}

#[test]
fn a_connection_idle_past_its_limit_is_closed_and_not_reused() {
    let ca = ca("idle-limit");
    let server = Server::start(&ca, vec![]);
    let (mut connector, config) = (TcpConnector::default(), config_for(&ca));
    let mut idle = IdleConnections::with_idle_limit(Duration::from_millis(150));
    get(&mut connector, &mut idle, &config, &server).unwrap();
    assert_eq!(idle.len(), 1);
    thread::sleep(Duration::from_millis(300));
    get(&mut connector, &mut idle, &config, &server).unwrap();
    assert_eq!(server.requests(), [0, 1]);
    assert!(server.closed_by_client(0));
}

#[test]
fn a_server_idle_limit_announced_in_keep_alive_shortens_ours() {
    let ca = ca("server-idle-limit");
    let short = "HTTP/1.1 200 OK\r\nkeep-alive: timeout=2, max=100\r\ncontent-length: 2\r\n\r\n{}";
    let server = Server::start(&ca, vec![Answer::Reply(short), Answer::Reply(OK)]);
    let (mut connector, mut idle, config) = (
        TcpConnector::default(),
        IdleConnections::default(),
        config_for(&ca),
    );
    get(&mut connector, &mut idle, &config, &server).unwrap();
    assert_eq!(idle.len(), 1);
    // 2 s less the margin: retired after one second idle, well before ours (20 s).
    thread::sleep(Duration::from_millis(1_200));
    get(&mut connector, &mut idle, &config, &server).unwrap();
    assert_eq!(server.requests(), [0, 1]);
}

#[test]
fn a_server_that_closed_an_idle_connection_costs_no_failed_request() {
    let ca = ca("idle-closed");
    // The host looks before reusing, or cannot (and the closed connection takes the
    // request, then ends without an answer).
    for peeks in [true, false] {
        let closes = Answer::ReplyThenClose(OK, Duration::from_millis(20));
        let server = Server::start(&ca, vec![closes, Answer::Reply(OK)]);
        let (mut connector, mut idle, config) = (
            TcpConnector {
                peeks,
                ..TcpConnector::default()
            },
            IdleConnections::default(),
            config_for(&ca),
        );
        get(&mut connector, &mut idle, &config, &server).unwrap();
        thread::sleep(Duration::from_millis(200));
        let response = get(&mut connector, &mut idle, &config, &server);
        assert_eq!(response.map(|r| r.status), Ok(200), "peeks: {peeks}");
        assert_eq!(server.requests(), [0, 1], "peeks: {peeks}");
        // Two flights per connection (the hello, then the Finished with the request),
        // and, when the host cannot look first, the request lost on the closed one.
        let writes = connector.writes.lock().unwrap().len();
        assert_eq!(writes, if peeks { 4 } else { 5 }, "peeks: {peeks}");
    }
}

#[test]
fn a_close_crossing_the_request_sends_it_again_on_a_new_connection() {
    let ca = ca("close-crossing");
    let server = Server::start(
        &ca,
        vec![
            Answer::Reply(OK),
            Answer::CloseUnanswered,
            Answer::Reply(OK),
        ],
    );
    let (mut connector, mut idle, config) = (
        TcpConnector::default(),
        IdleConnections::default(),
        config_for(&ca),
    );
    get(&mut connector, &mut idle, &config, &server).unwrap();
    assert_eq!(
        get(&mut connector, &mut idle, &config, &server).map(|r| r.status),
        Ok(200)
    );
    assert_eq!(server.requests(), [0, 0, 1]);
}

#[test]
fn a_request_that_may_have_been_processed_is_not_sent_again() {
    let ca = ca("maybe-processed");
    // Silence (the server may be working on it) and a half answer both come after the
    // server took the request.
    let cases = [
        (Answer::Silent, NetError::Timeout),
        (
            Answer::PartThenHangUp("HTTP/1.1 200 OK\r\ncontent-le"),
            NetError::Reset(
                "the server closed the connection in the middle of the response head".into(),
            ),
        ),
    ];
    for (answer, expected) in cases {
        let server = Server::start(&ca, vec![Answer::Reply(OK), answer]);
        let (mut connector, mut idle, config) = (
            TcpConnector::default(),
            IdleConnections::default(),
            config_for(&ca),
        );
        get(&mut connector, &mut idle, &config, &server).unwrap();
        let err = super::super::round_trip(
            &mut connector,
            &mut idle,
            config.clone(),
            &Request::get(&server.url),
            500,
        )
        .unwrap_err();
        assert_eq!(err, HttpError::Transport(expected));
        assert!(err.may_have_reached());
        assert_eq!(server.requests(), [0, 0]);
        assert!(idle.is_empty());
    }
}

#[test]
fn a_connection_made_under_one_trust_is_never_used_under_another() {
    let ca = ca("per-trust");
    let server = Server::start(&ca, vec![]);
    let (mut connector, mut idle) = (TcpConnector::default(), IdleConnections::default());
    // Two configurations of the same material are still two: identity, not contents,
    // stands for what a connection was made with (a client certificate included).
    let (first, second) = (config_for(&ca), config_for(&ca));
    get(&mut connector, &mut idle, &first, &server).unwrap();
    get(&mut connector, &mut idle, &second, &server).unwrap();
    get(&mut connector, &mut idle, &first, &server).unwrap();
    assert_eq!(server.requests(), [0, 1, 0]);
}

#[test]
fn idle_connections_are_bounded_per_endpoint_and_in_all_oldest_closed_first() {
    let ca = ca("bounded");
    let server = Server::start(&ca, vec![]);
    let (mut connector, mut idle, config) = (
        TcpConnector::default(),
        IdleConnections::default(),
        config_for(&ca),
    );
    let refresh = Request::form(&server.url, &[("grant_type", "refresh_token")]);
    for _ in 0..PER_ENDPOINT + 1 {
        super::super::round_trip(&mut connector, &mut idle, config.clone(), &refresh, 2_000)
            .unwrap();
    }
    assert_eq!(idle.len(), PER_ENDPOINT);
    assert!(server.closed_by_client(0));

    let before = server.requests().len();
    let configs: Vec<_> = (0..MAX_IDLE).map(|_| config_for(&ca)).collect();
    for config in &configs {
        get(&mut connector, &mut idle, config, &server).unwrap();
    }
    assert_eq!(idle.len(), MAX_IDLE);
    // The first configuration's connections, idle longest, made room.
    assert!(server.closed_by_client(1) && server.closed_by_client(2));
    assert_eq!(server.requests().len(), before + MAX_IDLE);
}
