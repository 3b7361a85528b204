//! HTTPS for the servers (`--tls`): rustls, with the `ring` provider, TLS 1.2 and 1.3.
//!
//! Browsers speak HTTP/2 only over TLS, and choose it with ALPN during the TLS
//! handshake: the server lists what it speaks (`h2`, `http/1.1`), the client picks.
//! So `--tls` is also what turns HTTP/2 on, for the servers whose HTTP layer has it.
//!
//! Without `--cert` and `--key`, [`Tls::from_config`] makes a self-signed certificate
//! for `localhost` and `127.0.0.1` at start-up: good for trying HTTPS on one machine
//! (a browser warns once, or is told to trust it by its SHA-256 fingerprint, which
//! the server prints), never for a site others visit.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::Config;

/// The ALPN name of HTTP/2 over TLS (RFC 9113, section 3.2).
pub const HTTP2: &[u8] = b"h2";
/// The ALPN name of HTTP/1.1.
pub const HTTP1: &[u8] = b"http/1.1";

/// The first byte of every TLS connection: a handshake record (RFC 8446, 5.1).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The certificate a server presents and its key, from `--cert`/`--key` or made at
/// start-up.
#[derive(Debug)]
pub struct Tls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Whether the certificate was made at start-up (self-signed).
    pub generated: bool,
}

impl Tls {
    /// `None` without `--tls`; else the files of `--cert` and `--key`, or a new
    /// self-signed certificate for `localhost` and `127.0.0.1`.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or holds no certificate or no key, named in the
    /// message.
    pub fn from_config(config: &Config) -> io::Result<Option<Tls>> {
        if !config.tls {
            return Ok(None);
        }
        match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => Tls::from_files(cert, key).map(Some),
            _ => Ok(Some(Tls::self_signed()?)),
        }
    }

    /// The chain in `cert` and the key in `key`, both PEM.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed, or an empty chain.
    pub fn from_files(cert: &Path, key: &Path) -> io::Result<Tls> {
        let bad = |path: &Path, error: &dyn std::fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {error}", path.display()),
            )
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|error| bad(cert, &error))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| bad(cert, &error))?;
        if chain.is_empty() {
            return Err(bad(cert, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|error| bad(key, &error))?;
        Ok(Tls {
            chain,
            key,
            generated: false,
        })
    }

    /// A new self-signed certificate for `localhost` and `127.0.0.1` (and `::1`).
    ///
    /// # Errors
    ///
    /// If rcgen cannot make the key pair (it does not, on a working system).
    pub fn self_signed() -> io::Result<Tls> {
        let names = ["localhost", "127.0.0.1", "::1"]
            .map(str::to_owned)
            .to_vec();
        let certified = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
        Ok(Tls {
            chain: vec![certified.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
            generated: true,
        })
    }

    /// The leaf certificate's SHA-256 fingerprint, as browsers show it:
    /// `AB:CD:...`, 32 bytes.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }

    /// The leaf certificate, DER-encoded: what a test's client trusts.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// A rustls configuration that presents this certificate and offers `protocols`
    /// in ALPN, in the server's order of preference.
    ///
    /// # Errors
    ///
    /// A key that does not match the certificate, or of a kind rustls does not sign with.
    pub fn server_config(&self, protocols: &[&[u8]]) -> io::Result<ServerConfig> {
        // ring, not rustls's default aws-lc-rs (a large C build). rustls 0.23.48
        // deprecates ring's provider because it has no post-quantum key exchange:
        // browsers then agree on X25519 alone, which is what this local server needs.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        config.alpn_protocols = protocols.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(config)
    }

    /// [`Tls::server_config`] as a tokio acceptor.
    ///
    /// # Errors
    ///
    /// As [`Tls::server_config`].
    pub fn acceptor(&self, protocols: &[&[u8]]) -> io::Result<TlsAcceptor> {
        Ok(TlsAcceptor::from(Arc::new(self.server_config(protocols)?)))
    }
}

/// A certificate's SHA-256 fingerprint, upper-case hex pairs joined by colons.
pub fn fingerprint(certificate: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

// ANCHOR: announce
/// Prints where to connect, on stdout (scripts and tests read it):
/// `listening on http://ADDR`, or with TLS `listening on https://ADDR` and the
/// certificate's fingerprint on the next line.
pub fn announce(addr: SocketAddr, tls: Option<&Tls>) {
    match tls {
        None => println!("listening on http://{addr}"),
        Some(tls) => {
            println!("listening on https://{addr}");
            let kind = if tls.generated { "self-signed " } else { "" };
            println!("{kind}certificate SHA-256 {}", tls.fingerprint());
        }
    }
}
// ANCHOR_END: announce

/// Why a connection to the TLS port did not become a TLS stream.
#[derive(Debug)]
pub enum AcceptError {
    /// The client sent plain HTTP (or anything but a TLS handshake); it was answered
    /// with a 400 that says to use `https://`.
    NotTls,
    /// Nothing within the time for a request head.
    TimedOut,
    /// The handshake failed: no common version or cipher suite, a bad record; rustls
    /// has sent the client its alert.
    Handshake(io::Error),
}

impl std::fmt::Display for AcceptError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcceptError::NotTls => write!(formatter, "plain HTTP to the TLS port"),
            AcceptError::TimedOut => write!(formatter, "no TLS handshake in time"),
            AcceptError::Handshake(error) => write!(formatter, "TLS handshake failed: {error}"),
        }
    }
}

// ANCHOR: accept
/// The TLS handshake on a new connection, within `within` (the time a client has for
/// a request head: a client that opens connections and sends nothing must not hold
/// them). A client that speaks plain HTTP to this port gets a plain-HTTP 400 saying
/// so, the way nginx answers it, rather than TLS alert bytes it cannot read.
///
/// # Errors
///
/// [`AcceptError`]: each case has been answered and the connection is done.
pub async fn accept(
    acceptor: &TlsAcceptor,
    mut stream: TcpStream,
    within: Duration,
) -> Result<TlsStream<TcpStream>, AcceptError> {
    let handshake = async {
        let mut first = [0u8; 1];
        let read = stream
            .peek(&mut first)
            .await
            .map_err(AcceptError::Handshake)?;
        if read == 1 && first[0] != TLS_HANDSHAKE_RECORD {
            let refusal = crate::refusals::plain_http_to_tls_port();
            let _ = stream.write_all(refusal.as_http1().as_bytes()).await;
            let _ = stream.shutdown().await;
            return Err(AcceptError::NotTls);
        }
        acceptor
            .accept(stream)
            .await
            .map_err(AcceptError::Handshake)
    };
    tokio::time::timeout(within, handshake)
        .await
        .unwrap_or(Err(AcceptError::TimedOut))
}
// ANCHOR_END: accept

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_and_configures_rustls_with_alpn() {
        let tls = Tls::self_signed().unwrap();
        assert!(tls.generated);
        let fingerprint = tls.fingerprint();
        assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");
        assert!(fingerprint.split(':').all(|pair| pair.len() == 2));
        // Two certificates made one after the other are not the same one.
        assert_ne!(fingerprint, Tls::self_signed().unwrap().fingerprint());
        let config = tls.server_config(&[HTTP2, HTTP1]).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn certificate_files_are_read_and_bad_ones_named_in_the_error() {
        let directory = std::env::temp_dir().join(format!("wsse-tls-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = directory.join("cert.pem");
        let key = directory.join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let tls = Tls::from_files(&cert, &key).unwrap();
        assert!(!tls.generated);
        assert_eq!(tls.certificate().as_ref(), certified.cert.der().as_ref());
        tls.server_config(&[HTTP1]).unwrap();

        let error = Tls::from_files(&key, &key).unwrap_err();
        assert!(error.to_string().contains("key.pem"), "{error}");
        let missing = directory.join("missing.pem");
        let error = Tls::from_files(&cert, &missing).unwrap_err();
        assert!(error.to_string().contains("missing.pem"), "{error}");
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
