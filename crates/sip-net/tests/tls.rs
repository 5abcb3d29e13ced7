//! TLS transport (RFC 3261 §26.2) with a self-signed certificate made on first start.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{next_event, next_message, read_to_close, request, text, torture_message};
use sip_message::ParseError;
use sip_net::tls::{GENERATED_CERTIFICATE_FILE, GENERATED_KEY_FILE, client_config};
use sip_net::{
    Destination, IdentityOrigin, TlsIdentity, TransportConfig, TransportEvent, TransportProtocol,
    Transports,
};
use tokio::io::AsyncWriteExt;

fn names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}

#[test]
fn certificate_is_generated_on_first_start_and_reused_on_the_next() {
    let directory = tempfile::tempdir().unwrap();
    let (first, origin) = TlsIdentity::load_or_generate(directory.path(), &names()).unwrap();
    assert_eq!(origin, IdentityOrigin::Generated);
    let key = directory.path().join(GENERATED_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is for the owner only");
    }
    assert!(directory.path().join(GENERATED_CERTIFICATE_FILE).exists());

    let (second, origin) = TlsIdentity::load_or_generate(directory.path(), &names()).unwrap();
    assert_eq!(origin, IdentityOrigin::Loaded);
    assert_eq!(first.certificate(), second.certificate());
}

#[test]
fn missing_or_broken_pem_files_are_typed_errors() {
    let directory = tempfile::tempdir().unwrap();
    let absent = directory.path().join("absent.pem");
    assert!(matches!(
        TlsIdentity::from_pem_files(&absent, &absent),
        Err(sip_net::CertificateError::Io { .. })
    ));
    let empty = directory.path().join("empty.pem");
    std::fs::write(&empty, "not a pem file\n").unwrap();
    assert!(matches!(
        TlsIdentity::from_pem_files(&empty, &empty),
        Err(sip_net::CertificateError::NoCertificate(_))
    ));
}

#[tokio::test]
async fn rustls_client_trusting_the_generated_certificate_exchanges_sip() {
    let directory = tempfile::tempdir().unwrap();
    let (identity, _) = TlsIdentity::load_or_generate(directory.path(), &names()).unwrap();

    let (server, mut server_events) = Transports::new(TransportConfig::default());
    let address = server
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            identity.server_config().unwrap(),
        )
        .unwrap();

    let (client, mut client_events) = Transports::new(TransportConfig::default());
    client.set_tls_client(client_config([identity.certificate().clone()]).unwrap());
    let destination = Destination::Address {
        transport: TransportProtocol::Tls,
        remote: address,
        server_name: Some("localhost".into()),
    };
    let sent = request("OPTIONS", "over-tls", "1", "TLS");
    let client_flow = client
        .send(&destination, Bytes::from(sent.clone()))
        .await
        .unwrap();
    assert_eq!(client_flow.transport, TransportProtocol::Tls);

    let (flow, message) = next_message(&mut server_events).await;
    assert_eq!(flow.transport, TransportProtocol::Tls);
    assert_eq!(message.as_bytes().as_ref(), sent.as_bytes());

    server
        .send(
            &Destination::Flow(flow),
            Bytes::from(request("NOTIFY", "tls-back", "2", "TLS")),
        )
        .await
        .unwrap();
    let (back_flow, back) = next_message(&mut client_events).await;
    assert_eq!(back.call_id().unwrap(), b"tls-back");
    assert_eq!(back_flow, client_flow);
}

#[tokio::test]
async fn client_that_does_not_trust_the_server_fails_the_handshake() {
    let directory = tempfile::tempdir().unwrap();
    let (identity, _) = TlsIdentity::load_or_generate(directory.path(), &names()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let (stranger, _) = TlsIdentity::load_or_generate(other.path(), &names()).unwrap();

    let (server, _server_events) = Transports::new(TransportConfig::default());
    let address = server
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            identity.server_config().unwrap(),
        )
        .unwrap();
    let (client, _client_events) = Transports::new(TransportConfig::default());
    client.set_tls_client(client_config([stranger.certificate().clone()]).unwrap());
    let error = client
        .send(
            &Destination::address(TransportProtocol::Tls, address),
            Bytes::from(request("OPTIONS", "untrusted", "3", "TLS")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, sip_net::SendError::TlsHandshake { .. }),
        "{error}"
    );
    assert_eq!(client.connection_count(), 0);
}

#[tokio::test]
async fn request_in_another_sip_version_over_tls_gets_505_then_a_close() {
    let directory = tempfile::tempdir().unwrap();
    let (identity, _) = TlsIdentity::load_or_generate(directory.path(), &names()).unwrap();
    let (server, mut events) = Transports::new(TransportConfig::default());
    let address = server
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            identity.server_config().unwrap(),
        )
        .unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(client_config([identity.certificate().clone()]).unwrap());
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut client = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    client.write_all(&torture_message("badvers")).await.unwrap();
    let answer = text(&read_to_close(&mut client, Duration::from_secs(10)).await);
    assert!(
        answer.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("Call-ID: badvers.31417@c.example.com\r\n"),
        "{answer}"
    );
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::UnsupportedVersion,
            answered: true,
            ..
        }
    ));
}
