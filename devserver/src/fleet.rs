//! A fleet of upstream HTTPS servers on 127.0.0.1, each with its own CA, every few of
//! them demanding a client certificate from a CA of their own: the seed report's
//! gateway with more than a hundred upstreams, for the demo and the tests.
//!
//! Every server speaks HTTP/1.1 with keep-alive and answers any request with
//! `upstream N` (`N` its index); the fleet counts handshakes, resumed handshakes and
//! requests over all servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::HandshakeKind;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::oneshot;

/// What a gateway needs to reach one upstream of the fleet.
#[derive(Clone, Debug)]
pub struct FleetUpstream {
    /// Its port on 127.0.0.1 (also its certificate's name).
    pub port: u16,
    /// The CA that issued its certificate, PEM.
    pub ca_pem: String,
    /// The client certificate and key (PEM) it demands, if it demands one.
    pub client_identity: Option<(String, String)>,
}

/// Counts over every server of the fleet.
#[derive(Debug, Default)]
pub struct FleetCounts {
    /// Completed TLS handshakes.
    pub handshakes: AtomicU64,
    /// Of those, resumed ones.
    pub resumed: AtomicU64,
    /// HTTP requests answered.
    pub requests: AtomicU64,
}

/// The running fleet; dropping it stops every server.
pub struct Fleet {
    upstreams: Vec<FleetUpstream>,
    counts: Arc<FleetCounts>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fleet {
    /// Starts `size` servers; every `mtls_every`-th one (from the first) demands a
    /// client certificate (0: none does).
    pub fn start(size: usize, mtls_every: usize) -> anyhow::Result<Fleet> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let counts = Arc::new(FleetCounts::default());
        let mut upstreams = Vec::with_capacity(size);
        let mut listeners = Vec::with_capacity(size);
        for index in 0..size {
            let demands_client = mtls_every > 0 && index % mtls_every == 0;
            let (upstream, config, listener) = runtime
                .block_on(server(index, demands_client))
                .with_context(|| format!("upstream {index}"))?;
            upstreams.push(upstream);
            listeners.push((index, config, listener));
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = counts.clone();
        let thread = std::thread::Builder::new()
            .name("upstream-fleet".into())
            .spawn(move || {
                runtime.block_on(async move {
                    for (index, config, listener) in listeners {
                        tokio::spawn(accept(index, config, listener, serving.clone()));
                    }
                    let _ = stopped.await;
                })
            })?;
        Ok(Fleet {
            upstreams,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The servers, in order.
    pub fn upstreams(&self) -> &[FleetUpstream] {
        &self.upstreams
    }

    /// Completed handshakes, resumed handshakes and requests so far, over all servers.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.counts.handshakes.load(Ordering::SeqCst),
            self.counts.resumed.load(Ordering::SeqCst),
            self.counts.requests.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A CA: its certificate (PEM and DER) and what issues with it.
type Ca = (String, CertificateDer<'static>, Issuer<'static, KeyPair>);

fn ca(name: &str) -> anyhow::Result<Ca> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), cert.der().clone(), Issuer::new(params, key)))
}

/// A leaf for `name` from `issuer`: its PEM, DER and PKCS#8 key.
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    name: &str,
) -> anyhow::Result<(String, CertificateDer<'static>, KeyPair)> {
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), cert.der().clone(), key))
}

async fn server(
    index: usize,
    demands_client: bool,
) -> anyhow::Result<(
    FleetUpstream,
    Arc<rustls::ServerConfig>,
    tokio::net::TcpListener,
)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let (ca_pem, _, issuer) = ca(&format!("upstream {index} CA"))?;
    let (_, cert, key) = leaf(&issuer, "127.0.0.1")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let (builder, client_identity) = if demands_client {
        let (_, client_ca, client_issuer) = ca(&format!("upstream {index} client CA"))?;
        let (client_pem, _, client_key) = leaf(&client_issuer, "gateway.example")?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(client_ca)?;
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
        (
            rustls::ServerConfig::builder().with_client_cert_verifier(verifier),
            Some((client_pem, client_key.serialize_pem())),
        )
    } else {
        (rustls::ServerConfig::builder().with_no_client_auth(), None)
    };
    let mut config = builder.with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((
        FleetUpstream {
            port,
            ca_pem,
            client_identity,
        },
        Arc::new(config),
        listener,
    ))
}

async fn accept(
    index: usize,
    config: Arc<rustls::ServerConfig>,
    listener: tokio::net::TcpListener,
    counts: Arc<FleetCounts>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of descriptors, say: wait rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, counts) = (acceptor.clone(), counts.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            counts.handshakes.fetch_add(1, Ordering::SeqCst);
            if tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed) {
                counts.resumed.fetch_add(1, Ordering::SeqCst);
            }
            let service = hyper::service::service_fn(move |_: Request<hyper::body::Incoming>| {
                counts.requests.fetch_add(1, Ordering::SeqCst);
                async move {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        format!("upstream {index}"),
                    ))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
