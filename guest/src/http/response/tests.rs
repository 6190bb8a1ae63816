//! The parser fed whole, byte by byte and split at every offset, and against servers
//! that never end a line.

use super::*;
use std::time::Duration;

/// Feeds `pieces` in order; the response if one completed, or what `close` says.
fn parse(pieces: &[&[u8]]) -> Result<Response, HttpError> {
    let mut parser = ResponseParser::new();
    for piece in pieces {
        if let Some(response) = parser.feed(piece)? {
            return Ok(response);
        }
    }
    parser.close()
}

/// Parses `wire` whole, byte by byte and split in two at every offset, and checks all
/// give the same answer.
fn parse_every_split(wire: &[u8]) -> Result<Response, HttpError> {
    let whole = parse(&[wire]);
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(parse(&bytes), whole, "byte by byte");
    for cut in 0..=wire.len() {
        let (a, b) = wire.split_at(cut);
        assert_eq!(parse(&[a, b]), whole, "split at {cut}");
    }
    whole
}

/// Feeds `head` then `filler` forever in 4 KiB pieces; the error and how many bytes
/// were fed before it.
fn feed_endless(head: &[u8], filler: u8) -> (HttpError, usize) {
    let mut parser = ResponseParser::new();
    let mut fed = head.len();
    if let Err(e) = parser.feed(head) {
        return (e, fed);
    }
    let piece = vec![filler; 4096];
    while fed < 64 << 20 {
        fed += piece.len();
        match parser.feed(&piece) {
            Err(e) => return (e, fed),
            Ok(Some(r)) => panic!("an endless stream completed: {r:?}"),
            Ok(None) => {}
        }
    }
    panic!("64 MiB taken without an error");
}

#[test]
fn a_content_length_response_parses_the_same_in_every_split() {
    let r = parse_every_split(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.headers[0].0, "content-type", "names are lowercased");
    assert_eq!(r.body, b"hello");
}

#[test]
fn a_chunked_response_with_extensions_and_trailers_parses_the_same_in_every_split() {
    let r = parse_every_split(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n6 \r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.body, b"hello world");
}

#[test]
fn a_close_delimited_body_ends_when_the_server_closes() {
    let r = parse_every_split(b"HTTP/1.1 500 Oops\r\n\r\nsomething broke").unwrap();
    assert_eq!((r.status, &r.body[..]), (500, &b"something broke"[..]));
}

#[test]
fn bare_line_feeds_and_leading_empty_lines_are_tolerated() {
    let r = parse_every_split(b"\r\nHTTP/1.1 200 OK\ncontent-length: 2\n\nok").unwrap();
    assert_eq!(r.body, b"ok");
}

#[test]
fn interim_responses_are_skipped_and_redirects_end_at_their_head() {
    let r = parse_every_split(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx",
    )
    .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"x"[..]));
    let mut parser = ResponseParser::new();
    let r = parser
        .feed(b"HTTP/1.1 302 Found\r\nlocation: https://a.example/\r\n\r\nbody never read")
        .unwrap()
        .unwrap();
    assert_eq!((r.status, r.body.len()), (302, 0));
}

#[test]
fn a_head_that_never_ends_is_refused_at_the_head_bound() {
    let (err, fed) = feed_endless(b"HTTP/1.1 200 OK\r\nX: ", b'a');
    assert_eq!(err, HttpError::TooLarge(Limit::Head(MAX_HEAD)));
    assert!(fed <= MAX_HEAD + 4096, "{fed} bytes fed");
    // Endless interim responses count towards the same bound.
    let mut parser = ResponseParser::new();
    let err = (0..10_000)
        .find_map(|_| parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n").err())
        .expect("an error");
    assert_eq!(err, HttpError::TooLarge(Limit::Head(MAX_HEAD)));
}

#[test]
fn endless_empty_lines_before_the_status_line_are_refused_at_the_head_bound() {
    for filler in [b'\n', b'\r'] {
        let (err, fed) = feed_endless(b"", filler);
        assert_eq!(err, HttpError::TooLarge(Limit::Head(MAX_HEAD)));
        assert!(fed <= MAX_HEAD + 4096, "{fed} bytes fed");
    }
}

#[test]
fn a_chunk_size_line_that_never_ends_is_refused_at_its_bound() {
    let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    let (err, fed) = feed_endless(head, b'0');
    assert_eq!(err, HttpError::TooLarge(Limit::ChunkLine(MAX_CHUNK_LINE)));
    assert!(fed <= head.len() + 4096, "{fed} bytes fed");
}

#[test]
fn trailers_that_never_end_are_refused_at_their_bound() {
    let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nX: ";
    let (err, _) = feed_endless(head, b'a');
    assert_eq!(err, HttpError::TooLarge(Limit::Trailers(MAX_HEAD)));
}

#[test]
fn too_many_header_fields_are_refused() {
    let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        wire.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    assert_eq!(
        parse(&[&wire]),
        Err(HttpError::TooLarge(Limit::HeaderCount(MAX_HEADERS)))
    );
}

#[test]
fn bodies_over_the_cap_are_refused_as_soon_as_their_size_is_known() {
    let body = Err(HttpError::TooLarge(Limit::Body(MAX_RESPONSE_BODY)));
    let declared = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
        MAX_RESPONSE_BODY + 1
    );
    assert_eq!(parse(&[declared.as_bytes()]), body);
    let chunk = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
        MAX_RESPONSE_BODY + 1
    );
    assert_eq!(parse(&[chunk.as_bytes()]), body);
    let (err, fed) = feed_endless(b"HTTP/1.1 200 OK\r\n\r\n", b'a');
    assert_eq!(Err(err), body);
    assert!(fed <= MAX_RESPONSE_BODY + 4096 + 64, "{fed} bytes fed");
}

#[test]
fn framing_errors_are_malformed_responses() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nab",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    ] {
        let shown = String::from_utf8_lossy(wire);
        assert!(
            matches!(parse(&[wire]), Err(HttpError::Malformed(_))),
            "{shown}: {:?}",
            parse(&[wire])
        );
    }
}

#[test]
fn a_close_before_the_framing_says_done_is_a_reset() {
    for wire in [
        &b""[..],
        b"HTTP/1.1 200 OK\r\ncontent-",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
    ] {
        assert!(
            matches!(
                parse(&[wire]),
                Err(HttpError::Transport(NetError::Reset(_)))
            ),
            "{}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn a_chunk_size_of_two_to_the_64_minus_one_is_refused_at_the_body_bound_first_or_later() {
    let body = Err(HttpError::TooLarge(Limit::Body(MAX_RESPONSE_BODY)));
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    // As a later chunk the declared size used to wrap the running body length to a
    // small number, so the parser waited for 2^64 bytes instead of refusing.
    for chunks in ["", "1\r\na\r\n", "1\r\na\r\n2\r\nbc\r\n"] {
        for size in ["ffffffffffffffff", "FFFFFFFFFFFFFFFF", "fffffffffffffffe"] {
            let wire = format!("{head}{chunks}{size}\r\n");
            assert_eq!(parse_every_split(wire.as_bytes()), body, "{wire:?}");
            // Immediately: nothing after the size line is needed to refuse it.
            let mut parser = ResponseParser::new();
            assert_eq!(parser.feed(wire.as_bytes()).err(), body.clone().err());
        }
    }
}

#[test]
fn a_chunk_size_that_does_not_fit_in_64_bits_is_refused_at_the_body_bound() {
    let body = Err(HttpError::TooLarge(Limit::Body(MAX_RESPONSE_BODY)));
    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    for chunks in ["", "1\r\na\r\n"] {
        for size in [
            "10000000000000000",
            "11111111111111111",
            "ffffffffffffffffffffffffffffffff",
            "1ffffffffffffffff;ext=1",
        ] {
            let wire = format!("{head}{chunks}{size}\r\n");
            assert_eq!(parse_every_split(wire.as_bytes()), body, "{wire:?}");
        }
    }
}

#[test]
fn a_chunk_size_with_many_leading_zeros_is_its_value() {
    let r = parse_every_split(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
          000000000000000000000005\r\nhello\r\n00000000000000000000\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.body, b"hello");
}

#[test]
fn chunks_that_add_up_to_more_than_the_body_bound_are_refused_when_declared() {
    let too_large = HttpError::TooLarge(Limit::Body(MAX_RESPONSE_BODY));
    let mut wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    let half = MAX_RESPONSE_BODY / 2;
    wire.extend_from_slice(format!("{half:x}\r\n").as_bytes());
    wire.extend(std::iter::repeat_n(b'a', half));
    wire.extend_from_slice(format!("\r\n{:x}\r\n", half + 1).as_bytes());
    let mut parser = ResponseParser::new();
    assert_eq!(parser.feed(&wire).err(), Some(too_large));
}

/// What a parser fed `wire` in two pieces (cut at `cut`) says about reusing the
/// connection once the response is complete.
fn keep_alive_after(wire: &[u8], cut: usize) -> Option<KeepAlive> {
    let mut parser = ResponseParser::new();
    let (a, b) = wire.split_at(cut);
    let first = parser.feed(a).unwrap();
    let second = if first.is_none() {
        parser.feed(b).unwrap()
    } else {
        None
    };
    assert!(first.is_some() || second.is_some(), "complete at {cut}");
    parser.keep_alive()
}

#[test]
fn a_framed_http11_answer_leaves_the_connection_reusable_with_the_servers_idle_limit() {
    let reusable = [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"[..],
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
    ];
    for wire in reusable {
        let whole = keep_alive_after(wire, wire.len());
        assert_eq!(whole, Some(KeepAlive { server_idle: None }), "{wire:?}");
        for cut in 1..wire.len() {
            assert_eq!(keep_alive_after(wire, cut), whole, "{wire:?} cut at {cut}");
        }
    }
    let announced =
        b"HTTP/1.1 200 OK\r\nKeep-Alive: max=100, timeout = 5\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(
        keep_alive_after(announced, announced.len()),
        Some(KeepAlive {
            server_idle: Some(Duration::from_secs(5))
        })
    );
}

#[test]
fn an_answer_that_closes_reads_to_the_close_or_overruns_leaves_nothing_to_reuse() {
    let not_reusable = [
        &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}"[..],
        b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        b"HTTP/1.1 302 Found\r\nlocation: /x\r\ncontent-length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",
    ];
    for wire in not_reusable {
        assert_eq!(keep_alive_after(wire, wire.len()), None, "{wire:?}");
    }
    let mut until_close = ResponseParser::new();
    assert_eq!(
        until_close.feed(b"HTTP/1.1 200 OK\r\n\r\n{}").unwrap(),
        None
    );
    until_close.close().unwrap();
    assert_eq!(until_close.keep_alive(), None);
}
