//! TLS identities and configurations (RFC 3261 §26.3.1, RFC 5630): loading a PEM certificate and
//! key, or creating a self-signed one on first start and keeping it for the next.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::CertificateError;

/// File name of the generated certificate inside the state directory.
pub const GENERATED_CERTIFICATE_FILE: &str = "sip-tls-certificate.pem";
/// File name of the generated private key inside the state directory (mode 0600).
pub const GENERATED_KEY_FILE: &str = "sip-tls-key.pem";

/// Where an identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityOrigin {
    /// Read from files given by the operator or stored by an earlier start.
    Loaded,
    /// Created now and stored for the next start.
    Generated,
}

/// A certificate chain and its private key: what a TLS server presents.
#[derive(Debug)]
pub struct TlsIdentity {
    certificate_chain: Vec<CertificateDer<'static>>,
    private_key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            certificate_chain: self.certificate_chain.clone(),
            private_key: self.private_key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(certificate: &Path, key: &Path) -> Result<Self, CertificateError> {
        let certificate_chain = CertificateDer::pem_file_iter(certificate)
            .map_err(|error| pem_error(certificate, error))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| pem_error(certificate, error))?;
        if certificate_chain.is_empty() {
            return Err(CertificateError::NoCertificate(certificate.to_path_buf()));
        }
        let private_key =
            PrivateKeyDer::from_pem_file(key).map_err(|error| CertificateError::InvalidKey {
                path: key.to_path_buf(),
                reason: error.to_string(),
            })?;
        Ok(TlsIdentity {
            certificate_chain,
            private_key,
        })
    }

    /// Loads the certificate stored in `directory` by an earlier start, or generates a
    /// self-signed one for `subject_alt_names` (DNS names or IP addresses) and stores it there,
    /// the key readable by the owner only.
    pub fn load_or_generate(
        directory: &Path,
        subject_alt_names: &[String],
    ) -> Result<(Self, IdentityOrigin), CertificateError> {
        let certificate_path = directory.join(GENERATED_CERTIFICATE_FILE);
        let key_path = directory.join(GENERATED_KEY_FILE);
        if certificate_path.exists() && key_path.exists() {
            let identity = Self::from_pem_files(&certificate_path, &key_path)?;
            return Ok((identity, IdentityOrigin::Loaded));
        }
        let generated = rcgen::generate_simple_self_signed(subject_alt_names.to_vec())?;
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CertificateError::Io { path, source }
        };
        fs::create_dir_all(directory).map_err(io_error(directory))?;
        // The key goes first and through a temporary name, so a crash never leaves a
        // certificate without its key, and the key is never readable by others, not even briefly.
        let key_temporary = directory.join(format!("{GENERATED_KEY_FILE}.tmp"));
        // A leftover from a crash might carry wider permissions, which opening would keep.
        match fs::remove_file(&key_temporary) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(CertificateError::Io {
                    path: key_temporary,
                    source: error,
                });
            }
            _ => {}
        }
        write_private(
            &key_temporary,
            generated.signing_key.serialize_pem().as_bytes(),
        )
        .map_err(io_error(&key_temporary))?;
        fs::rename(&key_temporary, &key_path).map_err(io_error(&key_path))?;
        fs::write(&certificate_path, generated.cert.pem()).map_err(io_error(&certificate_path))?;
        let identity = TlsIdentity {
            certificate_chain: vec![generated.cert.der().clone()],
            private_key: PrivateKeyDer::try_from(generated.signing_key.serialize_der()).map_err(
                |reason| CertificateError::InvalidKey {
                    path: key_path.clone(),
                    reason: reason.to_string(),
                },
            )?,
        };
        Ok((identity, IdentityOrigin::Generated))
    }

    /// The leaf certificate, e.g. for a client that should trust this self-signed server.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate_chain[0]
    }

    /// A server configuration presenting this identity, without client certificates.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, CertificateError> {
        let config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.certificate_chain.clone(), self.private_key.clone_key())?;
        Ok(Arc::new(config))
    }
}

/// A client configuration trusting exactly `trusted` (e.g. a peer's self-signed certificate or
/// an operator's CA).
pub fn client_config(
    trusted: impl IntoIterator<Item = CertificateDer<'static>>,
) -> Result<Arc<ClientConfig>, CertificateError> {
    let mut roots = RootCertStore::empty();
    for certificate in trusted {
        roots.add(certificate)?;
    }
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// ring, named explicitly so no process-wide default provider has to be installed.
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> CertificateError {
    match error {
        rustls::pki_types::pem::Error::Io(source) => CertificateError::Io {
            path: PathBuf::from(path),
            source,
        },
        other => CertificateError::InvalidKey {
            path: PathBuf::from(path),
            reason: other.to_string(),
        },
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
