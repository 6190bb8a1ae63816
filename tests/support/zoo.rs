//! A zoo of hostile TLS servers on 127.0.0.1: each reads one request, then misbehaves
//! in one way a broken or malicious peer does (a dripped answer, silence, bytes after
//! close_notify, chunk sizes built to overflow a counter).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::{TestCa, complete, der, token_reply};

/// How long a hostile server holds a silent connection open at most, waiting for the
/// client to give up: far beyond any deadline under test.
const HOLD: Duration = Duration::from_secs(30);

/// The bytes written after close_notify in the cases that send some.
pub const GARBAGE_BYTES: usize = 8 * 1024;

/// What a [`HostileServer`] does once it has read a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// A valid token answer, one byte per TLS record, `every` apart: it would take
    /// far longer than any deadline under test.
    Drip {
        /// The wait between two bytes.
        every: Duration,
    },
    /// The ClientHello is read, and never answered.
    SilenceInHandshake,
    /// A response head with a content-length, then nothing.
    SilenceAfterHead,
    /// Nothing at all once the handshake is done.
    SilenceAfterHandshake,
    /// The answer (or not), close_notify and [`GARBAGE_BYTES`] of garbage, all in one
    /// TCP write.
    CloseNotifyAndGarbage {
        /// Whether a complete token answer precedes close_notify.
        answer: bool,
    },
    /// The answer (or not) and close_notify in one write, then more bytes in a
    /// separate write 200 ms later.
    CloseNotifyThenMore {
        /// Whether a complete token answer precedes close_notify.
        answer: bool,
    },
    /// A chunked head, then a chunk-size line of `f` that never ends.
    EndlessChunkSizeLine,
    /// A chunk of 1 byte, then the size line `ffffffffffffffff`: the sum of the sizes
    /// wraps a 64-bit counter to 0. Then silence: only a parser that refuses the size
    /// at once answers before the deadline.
    WrappedChunkSize,
    /// `ffffffffffffffff` (2^64 - 1) as the first chunk size, then silence.
    MaxChunk,
    /// `ffffffffffffffff` as the first chunk size, then filler without end.
    MaxChunkThenFiller,
}

impl Hostile {
    /// Every behaviour of the zoo, in the order of its table.
    pub const ALL: [Hostile; 13] = [
        Hostile::Drip {
            every: Duration::from_millis(80),
        },
        // A byte just before a 1.5 s deadline, the next one long after it: a read
        // given the whole deadline instead of the time left overstays.
        Hostile::Drip {
            every: Duration::from_millis(1_200),
        },
        Hostile::SilenceInHandshake,
        Hostile::SilenceAfterHead,
        Hostile::SilenceAfterHandshake,
        Hostile::CloseNotifyAndGarbage { answer: true },
        Hostile::CloseNotifyAndGarbage { answer: false },
        Hostile::CloseNotifyThenMore { answer: true },
        Hostile::CloseNotifyThenMore { answer: false },
        Hostile::EndlessChunkSizeLine,
        Hostile::WrappedChunkSize,
        Hostile::MaxChunk,
        Hostile::MaxChunkThenFiller,
    ];

    /// A short name for tables.
    pub fn name(self) -> String {
        match self {
            Hostile::Drip { every } => format!("drip, a byte every {} ms", every.as_millis()),
            Hostile::SilenceInHandshake => "silence in the handshake".into(),
            Hostile::SilenceAfterHead => "silence after the head".into(),
            Hostile::SilenceAfterHandshake => "silence after the handshake".into(),
            Hostile::CloseNotifyAndGarbage { answer: true } => {
                "answer + close_notify + 8 KiB, one write".into()
            }
            Hostile::CloseNotifyAndGarbage { answer: false } => {
                "close_notify + 8 KiB, one write".into()
            }
            Hostile::CloseNotifyThenMore { answer: true } => {
                "answer + close_notify, 4 KiB 200 ms later".into()
            }
            Hostile::CloseNotifyThenMore { answer: false } => {
                "close_notify, 4 KiB 200 ms later".into()
            }
            Hostile::EndlessChunkSizeLine => "endless chunk-size line".into(),
            Hostile::WrappedChunkSize => "chunk of 1, then 2^64-1, then silence".into(),
            Hostile::MaxChunk => "chunk of 2^64-1, then silence".into(),
            Hostile::MaxChunkThenFiller => "chunk of 2^64-1, then filler".into(),
        }
    }
}

/// A TLS server on 127.0.0.1 that misbehaves as its [`Hostile`] says on every
/// connection; it stops when dropped.
pub struct HostileServer {
    port: u16,
    /// TCP connections accepted.
    pub accepted: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
}

impl HostileServer {
    /// Serves with a certificate for 127.0.0.1 issued by `ca`.
    pub fn start(ca: &TestCa, how: Hostile) -> Self {
        let config = server_config(ca);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicBool::new(true));
        let (accepted2, running2) = (accepted.clone(), running.clone());
        thread::spawn(move || {
            for socket in listener.incoming() {
                if !running2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(socket) = socket else { continue };
                accepted2.fetch_add(1, Ordering::SeqCst);
                let config = config.clone();
                thread::spawn(move || serve(socket, config, how));
            }
        });
        Self {
            port,
            accepted,
            running,
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:PORT/token`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/token", self.port)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A server configuration with a certificate for 127.0.0.1 issued by `ca`.
pub fn server_config(ca: &TestCa) -> Arc<ServerConfig> {
    let (cert, key) = ca.issue("127.0.0.1");
    Arc::new(
        ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![der(&cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    )
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

fn serve(socket: TcpStream, config: Arc<ServerConfig>, how: Hostile) {
    let _ = socket.set_nodelay(true);
    let _ = socket.set_read_timeout(Some(HOLD));
    let _ = socket.set_write_timeout(Some(HOLD));
    let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), socket);
    if how == Hostile::SilenceInHandshake {
        return hold(&mut tls);
    }
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !complete(&request) {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let mut answer = Vec::new();
    token_reply(&mut answer, 1);
    const CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    match how {
        Hostile::Drip { every } => {
            for byte in answer {
                if tls.write_all(&[byte]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
                thread::sleep(every);
            }
            close(&mut tls);
        }
        Hostile::SilenceAfterHead => {
            let head =
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 80\r\n\r\n";
            if tls.write_all(head).and_then(|()| tls.flush()).is_ok() {
                hold(&mut tls);
            }
        }
        Hostile::SilenceInHandshake => unreachable!("answered above"),
        Hostile::SilenceAfterHandshake => hold(&mut tls),
        Hostile::CloseNotifyAndGarbage { answer: with } => {
            let mut out = sealed(&mut tls, with.then_some(&answer[..]));
            out.extend(garbage(GARBAGE_BYTES));
            if tls.sock.write_all(&out).is_ok() {
                hold(&mut tls);
            }
        }
        Hostile::CloseNotifyThenMore { answer: with } => {
            let out = sealed(&mut tls, with.then_some(&answer[..]));
            if tls.sock.write_all(&out).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(200));
            if tls.sock.write_all(&garbage(4096)).is_ok() {
                hold(&mut tls);
            }
        }
        Hostile::EndlessChunkSizeLine => pour(&mut tls, CHUNKED, b'f'),
        Hostile::WrappedChunkSize => {
            let start = [CHUNKED, b"1\r\na\r\nffffffffffffffff\r\n"].concat();
            if tls.write_all(&start).and_then(|()| tls.flush()).is_ok() {
                hold(&mut tls);
            }
        }
        Hostile::MaxChunk => {
            let start = [CHUNKED, b"ffffffffffffffff\r\n"].concat();
            if tls.write_all(&start).and_then(|()| tls.flush()).is_ok() {
                hold(&mut tls);
            }
        }
        Hostile::MaxChunkThenFiller => {
            let start = [CHUNKED, b"ffffffffffffffff\r\n"].concat();
            pour(&mut tls, &start, b'a');
        }
    }
}

/// The TLS bytes of `answer` (if any) and close_notify, not yet written.
fn sealed(tls: &mut Tls, answer: Option<&[u8]>) -> Vec<u8> {
    if let Some(answer) = answer {
        tls.conn.writer().write_all(answer).unwrap();
    }
    tls.conn.send_close_notify();
    let mut out = Vec::new();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut out).unwrap();
    }
    out
}

/// Bytes that are no TLS record: what an attacker on the path can inject.
pub fn garbage(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ 0x5a).collect()
}

/// Writes `start`, then `filler` without end (until the client hangs up, or 256 MiB).
fn pour(tls: &mut Tls, start: &[u8], filler: u8) {
    if tls.write_all(start).is_err() {
        return;
    }
    let piece = [filler; 16 * 1024];
    for _ in 0..(256 << 20) / piece.len() {
        if tls.write_all(&piece).and_then(|()| tls.flush()).is_err() {
            return;
        }
    }
}

/// Keeps the connection open without a word until the client closes it (or [`HOLD`]).
fn hold(tls: &mut Tls) {
    let mut sink = [0u8; 4096];
    // Each read waits at most HOLD; the bound keeps a chatty client from holding us.
    for _ in 0..1024 {
        match tls.sock.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// close_notify, flushed.
fn close(tls: &mut Tls) {
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
