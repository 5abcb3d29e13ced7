//! TLS for the API listener: a self-signed certificate made on first start (kept in the data
//! directory and reused), or operator-supplied PEM files. Crypto is rustls with the ring provider.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// File name of the generated certificate inside the data directory.
pub const SELF_SIGNED_CERT_FILE: &str = "api-cert.pem";
/// File name of the generated private key inside the data directory (mode 0600).
pub const SELF_SIGNED_KEY_FILE: &str = "api-key.pem";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// Reading or writing a certificate or key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A PEM file held no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file concerned.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("generating the self-signed certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate/key pair.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsSetupError + '_ {
    move |source| TlsSetupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Write `contents` to `path`, readable only by the owner on Unix (the file holds a secret).
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Make sure `<data_dir>/api-cert.pem` and `api-key.pem` exist, generating a self-signed pair
/// for `localhost`, `127.0.0.1` and `::1` on first start. Returns the two paths.
pub fn ensure_self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf), TlsSetupError> {
    let cert_path = data_dir.join(SELF_SIGNED_CERT_FILE);
    let key_path = data_dir.join(SELF_SIGNED_KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)?;
    write_private_file(&key_path, certified.signing_key.serialize_pem().as_bytes())
        .map_err(io_error(&key_path))?;
    std::fs::write(&cert_path, certified.cert.pem()).map_err(io_error(&cert_path))?;
    tracing::info!(cert = %cert_path.display(), "generated self-signed API certificate");
    Ok((cert_path, key_path))
}

/// Build a rustls server configuration (ring provider) from PEM files.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, TlsSetupError> {
    let pem_error = |path: &Path, reason: String| TlsSetupError::Pem {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|error| pem_error(cert_path, error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(cert_path, error.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(cert_path, "no certificate found".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|error| pem_error(key_path, error.to_string()))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = ensure_self_signed(dir.path()).expect("generate");
        let first = std::fs::read(&cert).expect("read cert");
        let (cert_again, _) = ensure_self_signed(dir.path()).expect("reuse");
        assert_eq!(first, std::fs::read(cert_again).expect("read again"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        server_config(&cert, &key).expect("rustls accepts the generated pair");
    }

    #[test]
    fn garbage_pem_is_a_typed_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not a certificate").expect("write");
        std::fs::write(&key, "not a key").expect("write");
        assert!(matches!(
            server_config(&cert, &key),
            Err(TlsSetupError::Pem { .. })
        ));
    }
}
