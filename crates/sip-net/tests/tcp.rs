//! TCP transport on real loopback sockets: framing (RFC 3261 §18.3), connection reuse
//! (§18.2.2), keep-alives (RFC 5626 §4.4.1), idle timeout, bad input.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{next_event, next_message, read_to_close, read_until, request, text, torture_message};
use sip_message::ParseError;
use sip_net::{
    CloseReason, Destination, TransportConfig, TransportEvent, TransportProtocol, Transports,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn listening() -> (
    Transports,
    tokio::sync::mpsc::Receiver<TransportEvent>,
    std::net::SocketAddr,
) {
    let (transports, events) = Transports::new(TransportConfig::default());
    let address = transports
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    (transports, events, address)
}

#[tokio::test]
async fn two_messages_in_one_write_arrive_as_two() {
    let (_transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    let first = request("OPTIONS", "first", "1", "TCP");
    let second = request("OPTIONS", "second", "2", "TCP");
    client
        .write_all(format!("{first}{second}").as_bytes())
        .await
        .unwrap();
    let (flow_one, one) = next_message(&mut events).await;
    let (flow_two, two) = next_message(&mut events).await;
    assert_eq!(one.as_bytes().as_ref(), first.as_bytes());
    assert_eq!(two.as_bytes().as_ref(), second.as_bytes());
    assert_eq!(flow_one, flow_two);
    assert_eq!(flow_one.transport, TransportProtocol::Tcp);
    assert_eq!(flow_one.remote, client.local_addr().unwrap());
    assert!(flow_one.connection.is_some());
}

#[tokio::test]
async fn message_written_byte_by_byte_arrives_whole() {
    let (_transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    client.set_nodelay(true).unwrap();
    let sent = request("OPTIONS", "dribble", "3", "TCP");
    for byte in sent.as_bytes() {
        client.write_all(&[*byte]).await.unwrap();
        client.flush().await.unwrap();
    }
    let (_, message) = next_message(&mut events).await;
    assert_eq!(message.as_bytes().as_ref(), sent.as_bytes());
}

#[tokio::test]
async fn answers_and_later_requests_reuse_the_connection_the_request_came_on() {
    let (transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    client
        .write_all(request("OPTIONS", "reuse", "4", "TCP").as_bytes())
        .await
        .unwrap();
    let (flow, _) = next_message(&mut events).await;

    let response = Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        transports
            .send(&Destination::Flow(flow), response)
            .await
            .unwrap(),
        flow
    );
    assert_eq!(
        text(&read_until(&mut client, b"\r\n\r\n").await),
        "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    );

    // A new request to the client's address goes on the same connection (RFC 3261 §18.2.2
    // and RFC 5626 flows), not on a new one.
    let in_dialog = request("BYE", "reuse", "5", "TCP");
    let used = transports
        .send(
            &Destination::address(TransportProtocol::Tcp, flow.remote),
            Bytes::from(in_dialog.clone()),
        )
        .await
        .unwrap();
    assert_eq!(used, flow);
    assert_eq!(
        text(&read_until(&mut client, b"Content-Length: 0\r\n\r\n").await),
        in_dialog
    );

    client
        .write_all(request("OPTIONS", "reuse-2", "6", "TCP").as_bytes())
        .await
        .unwrap();
    let (second_flow, _) = next_message(&mut events).await;
    assert_eq!(second_flow, flow);
    assert_eq!(transports.connection_count(), 1);
}

#[tokio::test]
async fn outbound_connection_is_opened_once_and_carries_the_answer_back() {
    let (server, mut server_events, address) = listening();
    let (client, mut client_events) = Transports::new(TransportConfig::default());
    let destination = Destination::address(TransportProtocol::Tcp, address);

    let first = client
        .send(
            &destination,
            Bytes::from(request("OPTIONS", "out-1", "7", "TCP")),
        )
        .await
        .unwrap();
    let second = client
        .send(
            &destination,
            Bytes::from(request("OPTIONS", "out-2", "8", "TCP")),
        )
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(client.connection_count(), 1);

    let (inbound, one) = next_message(&mut server_events).await;
    let (inbound_again, two) = next_message(&mut server_events).await;
    assert_eq!(one.call_id().unwrap(), b"out-1");
    assert_eq!(two.call_id().unwrap(), b"out-2");
    assert_eq!(inbound, inbound_again);
    assert_eq!(inbound.remote, first.local);

    server
        .send(
            &Destination::Flow(inbound),
            Bytes::from(request("NOTIFY", "back", "9", "TCP")),
        )
        .await
        .unwrap();
    let (back_flow, back) = next_message(&mut client_events).await;
    assert_eq!(back.call_id().unwrap(), b"back");
    assert_eq!(back_flow, first);
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn double_crlf_ping_gets_a_single_crlf_pong() {
    let (_transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_until(&mut client, b"\r\n").await, b"\r\n");
    // The connection still carries messages after keep-alives.
    client
        .write_all(request("OPTIONS", "after-ping", "10", "TCP").as_bytes())
        .await
        .unwrap();
    let (_, message) = next_message(&mut events).await;
    assert_eq!(message.call_id().unwrap(), b"after-ping");
}

#[tokio::test(start_paused = true)]
async fn idle_connection_is_closed_after_the_idle_timeout() {
    let (transports, mut events, address) = listening();
    let started = tokio::time::Instant::now();
    let mut client = TcpStream::connect(address).await.unwrap();
    match next_event(&mut events, Duration::from_secs(1000)).await {
        TransportEvent::ConnectionClosed { reason, flow } => {
            assert_eq!(reason, CloseReason::IdleTimeout);
            assert_eq!(flow.remote, client.local_addr().unwrap());
        }
        other => panic!("expected the idle close, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(120));
    assert!(
        read_to_close(&mut client, Duration::from_secs(1000))
            .await
            .is_empty()
    );
    assert_eq!(transports.connection_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn content_length_beyond_the_data_waits_then_closes_when_idle() {
    let (_transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    let sent = request("OPTIONS", "waiting", "11", "TCP")
        .replace("Content-Length: 0", "Content-Length: 100");
    client.write_all(sent.as_bytes()).await.unwrap();
    client.write_all(b"only part of the body").await.unwrap();
    match next_event(&mut events, Duration::from_secs(1000)).await {
        TransportEvent::ConnectionClosed { reason, .. } => {
            assert_eq!(reason, CloseReason::IdleTimeout);
        }
        other => panic!("nothing may be delivered before the body is complete, got {other:?}"),
    }
}

#[tokio::test]
async fn endless_header_section_of_1_mb_closes_the_connection() {
    let (transports, mut events, address) = listening();
    let client = TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = client.into_split();
    let flood = tokio::spawn(async move {
        let mut chunk = b"OPTIONS sip:a@b SIP/2.0\r\nX-Flood: ".to_vec();
        chunk.resize(4096, b'f');
        for _ in 0..256 {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let limit = transports.config().limits.max_header_section_size;
    match next_event(&mut events, Duration::from_secs(10)).await {
        TransportEvent::Rejected {
            error, answered, ..
        } => {
            assert_eq!(error, ParseError::HeaderSectionTooLarge { limit });
            assert!(!answered);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::ConnectionClosed {
            reason: CloseReason::Malformed(_),
            ..
        }
    ));
    read_to_close(&mut reader, Duration::from_secs(10)).await;
    flood.await.unwrap();
    assert_eq!(transports.connection_count(), 0);
}

#[tokio::test]
async fn content_length_over_the_limit_gets_513_and_a_close() {
    let (_transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    let sent = request("MESSAGE", "huge", "12", "TCP")
        .replace("Content-Length: 0", "Content-Length: 1000000");
    client.write_all(sent.as_bytes()).await.unwrap();
    let answer = text(&read_to_close(&mut client, Duration::from_secs(10)).await);
    assert!(
        answer.starts_with("SIP/2.0 513 Message Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Call-ID: huge\r\n"));
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::MessageTooLarge { .. },
            answered: true,
            ..
        }
    ));
}

#[tokio::test]
async fn missing_content_length_gets_400_and_a_close() {
    let (_transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    let sent = request("OPTIONS", "no-length", "13", "TCP").replace("Content-Length: 0\r\n", "");
    client.write_all(sent.as_bytes()).await.unwrap();
    let answer = text(&read_to_close(&mut client, Duration::from_secs(10)).await);
    assert!(
        answer.starts_with("SIP/2.0 400 Bad Request - missing Content-Length\r\n"),
        "{answer}"
    );
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::MissingContentLength,
            answered: true,
            ..
        }
    ));
}

#[tokio::test]
async fn malformed_message_gets_400_then_the_connection_closes_rfc_4475() {
    let (transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    // RFC 4475 §3.1.2.17 style: CSeq method differs from the request method.
    let sent =
        request("OPTIONS", "mismatch", "14", "TCP").replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    let valid_after = request("OPTIONS", "never-read", "15", "TCP");
    client
        .write_all(format!("{sent}{valid_after}").as_bytes())
        .await
        .unwrap();
    let answer = text(&read_to_close(&mut client, Duration::from_secs(10)).await);
    assert!(
        answer.starts_with("SIP/2.0 400 Bad Request - CSeq method mismatch\r\n"),
        "{answer}"
    );
    assert!(answer.contains("To: <sip:bob@127.0.0.1>;tag="));
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::MethodMismatch,
            answered: true,
            ..
        }
    ));
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::ConnectionClosed {
            reason: CloseReason::Malformed(ParseError::MethodMismatch),
            ..
        }
    ));
    assert_eq!(transports.connection_count(), 0);
}

#[tokio::test]
async fn request_in_another_sip_version_gets_505_then_the_connection_closes() {
    let (transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(&torture_message("badvers")).await.unwrap();
    let answer = text(&read_to_close(&mut client, Duration::from_secs(10)).await);
    assert!(
        answer.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
        "{answer}"
    );
    assert!(answer.contains("CSeq: 1 OPTIONS\r\n"), "{answer}");
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::UnsupportedVersion,
            answered: true,
            ..
        }
    ));
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::ConnectionClosed {
            reason: CloseReason::Malformed(ParseError::UnsupportedVersion),
            ..
        }
    ));
    assert_eq!(transports.connection_count(), 0);
}

#[tokio::test]
async fn ten_thousand_headers_on_a_stream_get_400_and_a_close() {
    let (_transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    let filler = "X:1\r\n".repeat(10_000);
    let sent = request("OPTIONS", "many", "16", "TCP").replacen(
        "Content-Length",
        &format!("{filler}Content-Length"),
        1,
    );
    client.write_all(sent.as_bytes()).await.unwrap();
    let answer = text(&read_to_close(&mut client, Duration::from_secs(10)).await);
    assert!(
        answer.starts_with("SIP/2.0 400 Bad Request - too many headers\r\n"),
        "{answer}"
    );
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::TooManyHeaders { .. },
            ..
        }
    ));
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_typed_error() {
    let (transports, _events) = Transports::new(TransportConfig::default());
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = transports
        .send(
            &Destination::address(TransportProtocol::Tcp, port),
            Bytes::from_static(b"x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, sip_net::SendError::Io { .. }), "{error}");
    assert_eq!(transports.connection_count(), 0);
}

#[tokio::test]
async fn closing_a_connection_on_request_reports_it_and_the_peer_sees_the_end() {
    let (transports, mut events, address) = listening();
    let mut client = TcpStream::connect(address).await.unwrap();
    client
        .write_all(request("OPTIONS", "to-close", "17", "TCP").as_bytes())
        .await
        .unwrap();
    let (flow, _) = next_message(&mut events).await;
    let connection = flow.connection.unwrap();
    assert!(transports.is_connection_open(connection));
    transports.close(connection).await;
    assert!(
        read_to_close(&mut client, Duration::from_secs(10))
            .await
            .is_empty()
    );
    match next_event(&mut events, Duration::from_secs(10)).await {
        TransportEvent::ConnectionClosed {
            flow: closed,
            reason,
        } => {
            assert_eq!(closed, flow);
            assert_eq!(reason, CloseReason::Requested);
        }
        other => panic!("expected the close, got {other:?}"),
    }
    assert!(!transports.is_connection_open(connection));
}

#[tokio::test]
async fn tcp_over_ipv6_carries_messages_both_ways() {
    let (server, mut server_events) = Transports::new(TransportConfig::default());
    let address = server.listen_tcp("[::1]:0".parse().unwrap()).unwrap();
    let (client, mut client_events) = Transports::new(TransportConfig::default());
    let sent = client
        .send(
            &Destination::address(TransportProtocol::Tcp, address),
            Bytes::from(request("OPTIONS", "v6", "18", "TCP")),
        )
        .await
        .unwrap();
    assert!(sent.local.is_ipv6());
    let (flow, message) = next_message(&mut server_events).await;
    assert_eq!(message.call_id().unwrap(), b"v6");
    server
        .send(
            &Destination::Flow(flow),
            Bytes::from(request("NOTIFY", "v6-back", "19", "TCP")),
        )
        .await
        .unwrap();
    let (_, back) = next_message(&mut client_events).await;
    assert_eq!(back.call_id().unwrap(), b"v6-back");
}
