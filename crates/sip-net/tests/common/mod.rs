//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use sip_net::{Flow, TransportEvent};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// A request every parser and validator accepts.
pub fn request(method: &str, call_id: &str, branch: &str, transport: &str) -> String {
    format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/{transport} 127.0.0.1:5999;branch=z9hG4bK{branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@127.0.0.1>;tag=a1\r\n\
To: <sip:bob@127.0.0.1>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 {method}\r\n\
Content-Length: 0\r\n\r\n"
    )
}

/// Same, with a body.
pub fn request_with_body(call_id: &str, branch: &str, body: &[u8]) -> Vec<u8> {
    let mut message = format!(
        "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@127.0.0.1>;tag=a1\r\n\
To: <sip:bob@127.0.0.1>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\n\
Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    message.extend_from_slice(body);
    message
}

/// The next transport event, failing the test after `limit` (of tokio time).
pub async fn next_event(
    events: &mut mpsc::Receiver<TransportEvent>,
    limit: Duration,
) -> TransportEvent {
    tokio::time::timeout(limit, events.recv())
        .await
        .expect("no transport event in time")
        .expect("transport event channel closed")
}

/// The next received message, with its flow; fails on any other event.
pub async fn next_message(
    events: &mut mpsc::Receiver<TransportEvent>,
) -> (Flow, sip_message::Message) {
    match next_event(events, Duration::from_secs(10)).await {
        TransportEvent::Message(received) => (received.flow, received.message),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Reads from a stream until `pattern` has arrived (the end of a response), failing after 10 s.
pub async fn read_until<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    pattern: &[u8],
) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !received
            .windows(pattern.len())
            .any(|window| window == pattern)
        {
            let count = stream.read(&mut chunk).await.expect("read failed");
            assert!(
                count > 0,
                "stream closed after {:?}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&chunk[..count]);
        }
    })
    .await
    .expect("nothing arrived in time");
    received
}

/// Reads until the peer closes; returns what arrived before. Reset counts as closed.
pub async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(count) => received.extend_from_slice(&chunk[..count]),
            }
        }
    })
    .await
    .expect("the connection was not closed in time");
    received
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One message of the RFC 4475 / RFC 5118 torture corpus kept in `sip-message`.
pub fn torture_message(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../sip-message/tests/torture/{name}.sip",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}
