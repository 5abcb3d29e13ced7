//! Errors of the transport layer.

use std::io;
use std::net::SocketAddr;

use crate::flow::{ConnectionId, TransportProtocol};

/// Why a message could not be handed to the network.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No socket of this transport is bound for the destination's address family.
    #[error("no {transport} socket bound for {remote}")]
    NoSocket {
        transport: TransportProtocol,
        remote: SocketAddr,
    },
    /// TLS was asked for but no client configuration was given.
    #[error("no TLS client configuration")]
    NoTlsClient,
    /// The TLS server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// Connecting did not finish within the configured limit.
    #[error("connecting to {remote} timed out")]
    ConnectTimeout { remote: SocketAddr },
    /// The TLS handshake failed or timed out.
    #[error("TLS handshake with {remote} failed: {source}")]
    TlsHandshake {
        remote: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The connection closed before the message could be queued.
    #[error("connection {0} is closed")]
    ConnectionClosed(ConnectionId),
    /// The operating system refused.
    #[error("I/O error sending to {remote}: {source}")]
    Io {
        remote: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Why a certificate for TLS could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no certificate in {0}")]
    NoCertificate(std::path::PathBuf),
    #[error("no usable private key in {path}: {reason}")]
    InvalidKey {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),
    #[error("TLS configuration rejected: {0}")]
    Tls(#[from] rustls::Error),
}
