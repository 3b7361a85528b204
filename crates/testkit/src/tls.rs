//! Clients for the servers started with `--tls`: rustls for the handshake (with the
//! protocols to offer in ALPN), hyper for HTTP/1.1 and HTTP/2 requests over it, and
//! tokio-tungstenite for WebSockets over an HTTP/1.1 upgrade (`wss://`) or over an
//! HTTP/2 extended CONNECT (RFC 8441).
//!
//! [`certificate_files`] writes a certificate for `localhost` and `127.0.0.1` that a
//! test passes as `--cert`/`--key` and trusts ([`TlsClient::trusting`]);
//! [`TlsClient::recording`] accepts whatever the server presents and keeps it, to
//! compare with the fingerprint a server printed for the one it made itself.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The ALPN name of HTTP/2.
pub const HTTP2: &[u8] = b"h2";
/// The ALPN name of HTTP/1.1.
pub const HTTP1: &[u8] = b"http/1.1";

/// A certificate for `localhost` and `127.0.0.1` and its key, written as PEM files in
/// `directory`: `(cert.pem, key.pem, the certificate DER-encoded)`.
///
/// # Errors
///
/// When the files cannot be written.
pub fn certificate_files(
    directory: &Path,
) -> io::Result<(PathBuf, PathBuf, CertificateDer<'static>)> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    let cert = directory.join("cert.pem");
    let key = directory.join("key.pem");
    std::fs::write(&cert, certified.cert.pem())?;
    std::fs::write(&key, certified.signing_key.serialize_pem())?;
    Ok((cert, key, certified.cert.der().clone()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // The servers' provider (see wsse_app::tls).
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS client configuration: whom it trusts, and what it offers in ALPN per
/// connection ([`TlsClient::connect`]).
#[derive(Clone)]
pub struct TlsClient {
    config: ClientConfig,
    presented: Arc<Mutex<Option<CertificateDer<'static>>>>,
}

impl TlsClient {
    /// A client that trusts `certificate` alone.
    ///
    /// # Panics
    ///
    /// If the certificate cannot be parsed.
    pub fn trusting(certificate: CertificateDer<'static>) -> TlsClient {
        let mut roots = RootCertStore::empty();
        roots
            .add(certificate)
            .expect("a certificate rustls can parse");
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the provider's versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsClient {
            config,
            presented: Arc::default(),
        }
    }

    /// A client that accepts any certificate (its signature on the handshake still
    /// checked) and keeps the last one presented ([`TlsClient::presented`]).
    pub fn recording() -> TlsClient {
        let presented = Arc::default();
        let verifier = Recording {
            presented: Arc::clone(&presented),
            provider: provider(),
        };
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the provider's versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        TlsClient { config, presented }
    }

    /// The certificate the server presented last, with [`TlsClient::recording`].
    pub fn presented(&self) -> Option<CertificateDer<'static>> {
        self.presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A TLS connection to `addr` for the name `localhost`, offering `protocols` in
    /// ALPN.
    ///
    /// # Errors
    ///
    /// A refused connection or a failed handshake.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        protocols: &[&[u8]],
    ) -> io::Result<TlsStream<TcpStream>> {
        let mut config = self.config.clone();
        config.alpn_protocols = protocols.iter().map(|protocol| protocol.to_vec()).collect();
        let connector = TlsConnector::from(Arc::new(config));
        let stream = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("a valid name");
        connector.connect(name, stream).await
    }
}

/// The protocol ALPN chose on `stream`, if any.
pub fn negotiated(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

#[derive(Debug)]
struct Recording {
    presented: Arc<Mutex<Option<CertificateDer<'static>>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self
            .presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTP connection over TLS: HTTP/1.1 or HTTP/2, whichever ALPN chose.
pub enum HttpConnection {
    /// `http/1.1`.
    Http1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    /// `h2`.
    Http2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl HttpConnection {
    /// The HTTP layer over `stream`, its connection driven by a task of its own.
    ///
    /// # Errors
    ///
    /// A failed HTTP/2 handshake.
    pub async fn over(stream: TlsStream<TcpStream>) -> Result<HttpConnection, hyper::Error> {
        let http2 = negotiated(&stream).as_deref() == Some(HTTP2);
        let io = TokioIo::new(stream);
        if http2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(connection);
            Ok(HttpConnection::Http2(sender))
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(connection.with_upgrades());
            Ok(HttpConnection::Http1(sender))
        }
    }

    /// Sends `request` (its URI absolute for HTTP/2, a path with `Host` for HTTP/1.1).
    ///
    /// # Errors
    ///
    /// A closed connection, a refused stream.
    pub async fn send(
        &mut self,
        request: Request<Empty<Bytes>>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match self {
            HttpConnection::Http1(sender) => sender.send_request(request).await,
            HttpConnection::Http2(sender) => sender.send_request(request).await,
        }
    }

    /// `GET path` on `addr` (named `localhost`), the request built for the version.
    ///
    /// # Errors
    ///
    /// As [`HttpConnection::send`].
    pub async fn get(
        &mut self,
        addr: SocketAddr,
        path: &str,
    ) -> Result<Response<Incoming>, hyper::Error> {
        let request = match self {
            HttpConnection::Http1(_) => {
                Request::get(path).header("host", format!("localhost:{}", addr.port()))
            }
            HttpConnection::Http2(_) => {
                Request::get(format!("https://localhost:{}{path}", addr.port()))
            }
        };
        self.send(request.body(Empty::new()).expect("a valid request"))
            .await
    }
}

/// A response's whole body, for a body that ends.
///
/// # Errors
///
/// A connection that failed before the body's end.
pub async fn body_bytes(response: Response<Incoming>) -> Result<Bytes, hyper::Error> {
    Ok(response.into_body().collect().await?.to_bytes())
}

/// The next DATA of a streaming body (an event stream), or `None` at its end.
///
/// # Errors
///
/// A failed connection.
pub async fn next_data(body: &mut Incoming) -> Result<Option<Bytes>, hyper::Error> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// A WebSocket opened with an HTTP/2 extended CONNECT (RFC 8441) on `path`: the
/// request has `:protocol websocket` and `Sec-WebSocket-Version: 13`, the answer is
/// 200, and the stream becomes the socket. `Err` holds why not: the server did not
/// enable extended CONNECT, or answered with another status.
///
/// # Errors
///
/// As said.
pub async fn websocket_over_http2(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
    origin: &str,
) -> Result<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>, String> {
    let mut request = Request::connect(format!("https://localhost:{}{path}", addr.port()))
        .header("sec-websocket-version", "13")
        .header("origin", origin)
        .body(Empty::new())
        .expect("a valid request");
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("the extended CONNECT failed: {error}"))?;
    if response.status() != 200 {
        return Err(format!(
            "the extended CONNECT was answered {}",
            response.status()
        ));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|error| format!("no stream after the 200: {error}"))?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await)
}
