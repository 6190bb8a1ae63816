//! `gateway-auth serve-metrics` as an operator runs it: started on a free port of
//! 127.0.0.1, scraped over plain HTTP, it serves Prometheus text whose counters move
//! between scrapes, and with `--scrapes N` it ends by itself after the Nth.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gateway_auth_devserver::defaults;
use prometheus_parse::{Scrape, Value};

/// Long enough for a first start that compiles the component.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the command may take to end after its last scrape.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The running command; killed if a test ends before it does.
struct Served {
    child: Child,
    /// `127.0.0.1:PORT`, as the command printed it.
    address: String,
}

impl Served {
    /// Starts `serve-metrics --port 0` with `args` and waits for the address it prints.
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway-auth"))
            .args(["serve-metrics", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary runs");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || forward_lines(stdout, sender));
        let deadline = Instant::now() + START_TIMEOUT;
        let mut served = Self {
            child,
            address: String::new(),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = receiver
                .recv_timeout(left)
                .expect("the command prints the address it serves");
            if let Some(url) = line.strip_prefix("serving http://") {
                let address = url.strip_suffix("/metrics").expect("a /metrics URL");
                assert!(address.starts_with("127.0.0.1:"), "{line}");
                assert_ne!(address, "127.0.0.1:0", "the bound port is printed");
                served.address = address.to_string();
                return served;
            }
        }
    }

    /// Waits at most [`EXIT_TIMEOUT`] for the command to end by itself.
    fn exit_status(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn forward_lines(stdout: ChildStdout, sender: mpsc::Sender<String>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        if sender.send(line).is_err() {
            return;
        }
    }
}

/// An HTTP answer: status line, lower-cased header names, body.
struct Answer {
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over plain HTTP/1.1, read to the end (the command closes the connection).
fn get(address: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {address}\r\naccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("a header line");
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    let answer = Answer {
        status,
        headers,
        body: body.to_string(),
    };
    if let Some(length) = answer.header("content-length") {
        assert_eq!(length.parse::<usize>().unwrap(), answer.body.len());
    }
    answer
}

/// Parses `text` with `prometheus-parse`, every sample line understood.
fn parse(text: &str) -> Scrape {
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the text is Prometheus exposition");
    // The parser skips lines it cannot read; it folds a histogram's buckets into one
    // sample per label set.
    let lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (buckets, single): (Vec<&str>, Vec<&str>) = lines.partition(|l| l.contains("_bucket{"));
    let histograms = buckets.iter().filter(|l| l.contains("le=\"+Inf\"")).count();
    assert_eq!(
        scrape.samples.len(),
        single.len() + histograms,
        "every sample parsed:\n{text}"
    );
    scrape
}

/// The value of the counter `name` with exactly `labels`.
fn counter(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| {
            s.labels.len() == labels.len() && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
        })
        .map(|s| match s.value {
            Value::Counter(v) => v,
            ref other => panic!("{name} is not a counter: {other:?}"),
        })
        .collect();
    assert_eq!(found.len(), 1, "one sample {name} {labels:?}: {found:?}");
    found[0]
}

/// A scrape of the command: a 200 in Prometheus' text format, parsed.
fn scrape(address: &str) -> (Scrape, String) {
    let answer = get(address, "/metrics");
    assert_eq!(answer.status, "HTTP/1.1 200 OK", "{}", answer.body);
    let content_type = answer.header("content-type").expect("a content type");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    (parse(&answer.body), answer.body)
}

#[test]
fn serve_metrics_serves_counters_that_move_between_scrapes_and_ends_after_the_last() {
    let mut served = Served::start(&["--scrapes", "2"]);
    let (first, first_text) = scrape(&served.address);
    let (second, second_text) = scrape(&served.address);

    let tokens = |s: &Scrape| {
        counter(
            s,
            "gateway_auth_oauth_token_requests_total",
            &[("grant", "client_credentials"), ("outcome", "ok")],
        )
    };
    let hits = |s: &Scrape| counter(s, "gateway_auth_tls_cache_gets_total", &[("result", "hit")]);
    // Each scrape runs one round of calls first, one of them a one-off token request.
    assert!(tokens(&first) >= 1.0, "{first_text}");
    assert!(
        tokens(&second) > tokens(&first),
        "{first_text}\n{second_text}"
    );
    assert!(hits(&second) > hits(&first), "{first_text}\n{second_text}");
    for text in [&first_text, &second_text] {
        assert!(!text.contains(defaults::BASIC_CLIENT_SECRET), "{text}");
        assert!(!text.contains("serve-metrics"), "a session key: {text}");
    }

    let status = served
        .exit_status()
        .expect("the command ends by itself after its last scrape");
    assert!(status.success(), "{status}");
}

#[test]
fn serve_metrics_answers_other_paths_with_404_without_counting_them_as_scrapes() {
    let mut served = Served::start(&["--scrapes", "1"]);
    // What a browser asks for next to the page.
    let answer = get(&served.address, "/favicon.ico");
    assert_eq!(answer.status, "HTTP/1.1 404 Not Found", "{}", answer.body);
    // Still serving: the one scrape it was started for is yet to come.
    let (scrape, text) = scrape(&served.address);
    assert!(
        counter(
            &scrape,
            "gateway_auth_oauth_token_requests_total",
            &[("grant", "client_credentials"), ("outcome", "ok")],
        ) >= 1.0,
        "{text}"
    );
    let status = served
        .exit_status()
        .expect("the command ends after its scrape");
    assert!(status.success(), "{status}");
}

#[test]
fn serve_metrics_drops_a_connection_that_sends_nothing_and_serves_the_next_scrape() {
    let mut served = Served::start(&["--scrapes", "1"]);
    let silent = TcpStream::connect(&served.address).unwrap();
    let started = Instant::now();
    let (scrape, text) = scrape(&served.address);
    assert!(
        counter(
            &scrape,
            "gateway_auth_tls_cache_gets_total",
            &[("result", "hit")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the scrape waited {:?} behind the silent connection",
        started.elapsed()
    );
    drop(silent);
    let status = served
        .exit_status()
        .expect("the command ends after its scrape");
    assert!(status.success(), "{status}");
}

#[test]
fn serve_metrics_refuses_zero_scrapes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway-auth"))
        .args(["serve-metrics", "--port", "0", "--scrapes", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve-metrics --scrapes 0 started serving");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));
    let mut error = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut error)
        .unwrap();
    assert!(error.contains("--scrapes"), "{error}");
}
