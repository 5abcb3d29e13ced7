//! The registrar over real UDP sockets on 127.0.0.1: a test phone and SIPp (Debian's
//! `sip-tester`) register, refresh and unregister through a minimal receive-answer loop.

mod registrar_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proxy::authentication::AuthenticationPolicy;
use proxy::location::{AddressOfRecord, unix_now};
use proxy::registrar::RegistrarConfig;
use registrar_support::*;
use sip_core::auth::DigestAlgorithm;
use sip_message::Message;
use tokio::net::UdpSocket;

/// Answers every datagram with the registrar's response, sent back to its source.
async fn serve(fixture: Arc<Fixture>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind registrar socket");
    let address = socket.local_addr().expect("local address");
    let task = tokio::spawn(async move {
        let mut buffer = vec![0u8; 65_535];
        loop {
            let Ok((length, source)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            let Ok(request) = Message::parse(Bytes::copy_from_slice(&buffer[..length])) else {
                continue;
            };
            if request.validate().is_err() || !request.is_request() {
                continue;
            }
            let response = fixture
                .registrar
                .handle_register(&request, source, unix_now())
                .await;
            let _ = socket.send_to(&response.to_bytes(), source).await;
        }
    });
    (address, task)
}

async fn exchange(socket: &UdpSocket, registrar: SocketAddr, request: &Message) -> Message {
    socket
        .send_to(&request.to_bytes(), registrar)
        .await
        .expect("send");
    let mut buffer = vec![0u8; 65_535];
    let (length, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
        .await
        .expect("a response within 5 s")
        .expect("receive");
    Message::parse(Bytes::copy_from_slice(&buffer[..length])).expect("response parses")
}

async fn phone_registers_over_udp(db: TestDb) {
    let fixture = Arc::new(fixture(db, RegistrarConfig::default()).await);
    let (registrar, task) = serve(Arc::clone(&fixture)).await;
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind phone socket");
    let phone_address = socket.local_addr().expect("phone address");
    let contact = format!("<sip:alice@{phone_address}>");

    let mut phone = Phone::new("alice");
    let challenge = exchange(
        &socket,
        registrar,
        &phone.request(&[("Contact", &contact)], None),
    )
    .await;
    assert_eq!(challenge.status(), Some(401));
    let authorization = phone.answer(&challenge, DigestAlgorithm::Sha256);
    let ok = exchange(
        &socket,
        registrar,
        &phone.request(&[("Contact", &contact)], Some(&authorization)),
    )
    .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(contacts(&ok), vec![format!("{contact};expires=3600")]);
    let bindings = fixture
        .location
        .lookup(&AddressOfRecord::new("alice", DOMAIN))
        .await
        .expect("lookup");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].contact, format!("sip:alice@{phone_address}"));
    assert_eq!(
        bindings[0].received, None,
        "contact and source agree: no NAT"
    );
    task.abort();
}

/// A UDP port free right now on 127.0.0.1 (SIPp must not default to 5060).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("free port")
        .port()
}

async fn sipp_registers_and_unregisters(db: TestDb) {
    // SIPp 3.6 answers only MD5 (and AKA) and reads the first challenge: the registrar's
    // default (MD5 alone) is what it needs.
    provision(&db.store).await;
    let fixture = Arc::new(
        fixture_with_policy(
            db,
            RegistrarConfig::default(),
            0,
            AuthenticationPolicy::default(),
        )
        .await,
    );
    let (registrar, task) = serve(Arc::clone(&fixture)).await;
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/registrar_support/sipp_register.xml"
    );
    let log_dir = tempfile::tempdir().expect("log dir");
    let output = tokio::process::Command::new("sipp")
        .current_dir(log_dir.path())
        .args(["-sf", scenario, "-m", "1", "-i", "127.0.0.1", "-p"])
        .arg(free_udp_port().to_string())
        .args(["-au", "alice", "-ap"])
        .arg(password_of("alice"))
        .args([
            "-auth_uri",
            DOMAIN,
            "-timeout",
            "15s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .arg(registrar.to_string())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("SIPp finishes")
        .expect("SIPp runs (install sip-tester)");
    let errors = std::fs::read_dir(log_dir.path())
        .expect("log dir")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with("errors.log"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        output.status.success(),
        "SIPp failed ({:?}):\n{}\n{}\n{errors}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        fixture
            .location
            .lookup(&AddressOfRecord::new("alice", DOMAIN))
            .await
            .expect("lookup")
            .is_empty(),
        "SIPp's Contact: * removed its binding"
    );
    task.abort();
}

on_both_backends!(phone_registers_over_udp, sipp_registers_and_unregisters);
