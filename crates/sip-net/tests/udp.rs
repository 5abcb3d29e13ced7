//! UDP transport on real loopback sockets (RFC 3261 §18.3 datagram rules).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{next_event, next_message, request, request_with_body, text, torture_message};
use sip_message::ParseError;
use sip_net::{Destination, TransportConfig, TransportEvent, TransportProtocol, Transports};
use tokio::net::UdpSocket;

async fn receive(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buffer = vec![0u8; 65535];
    let (count, from) =
        tokio::time::timeout(Duration::from_secs(10), socket.recv_from(&mut buffer))
            .await
            .expect("no datagram in time")
            .unwrap();
    buffer.truncate(count);
    (buffer, from)
}

async fn round_trip_on(address: &str) {
    let (transports, mut events) = Transports::new(TransportConfig::default());
    let server = transports.bind_udp(address.parse().unwrap()).unwrap();
    let client = UdpSocket::bind(address).await.unwrap();
    let sent = request("OPTIONS", "udp-1", "1", "UDP");
    client.send_to(sent.as_bytes(), server).await.unwrap();

    let (flow, message) = next_message(&mut events).await;
    assert_eq!(flow.transport, TransportProtocol::Udp);
    assert_eq!(flow.remote, client.local_addr().unwrap());
    assert_eq!(flow.local, server);
    assert_eq!(flow.connection, None);
    assert_eq!(message.call_id().unwrap(), b"udp-1");
    assert_eq!(message.as_bytes().as_ref(), sent.as_bytes());

    let answer = bytes::Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    let used = transports
        .send(&Destination::Flow(flow), answer.clone())
        .await
        .unwrap();
    assert_eq!(used, flow);
    let (received, from) = receive(&client).await;
    assert_eq!(received, answer);
    assert_eq!(from, server);
}

#[tokio::test]
async fn datagram_over_ipv4_arrives_parsed_with_its_flow_and_the_answer_goes_back() {
    round_trip_on("127.0.0.1:0").await;
}

#[tokio::test]
async fn datagram_over_ipv6_arrives_parsed_with_its_flow_and_the_answer_goes_back() {
    round_trip_on("[::1]:0").await;
}

#[tokio::test]
async fn body_shorter_than_content_length_gets_400_rfc_3261_section_18_3() {
    let (transports, mut events) = Transports::new(TransportConfig::default());
    let server = transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut message = request_with_body("short-body", "2", b"0123456789");
    message.truncate(message.len() - 4);
    client.send_to(&message, server).await.unwrap();

    let (response, _) = receive(&client).await;
    let response = text(&response);
    assert!(
        response.starts_with("SIP/2.0 400 Bad Request - body shorter than Content-Length\r\n"),
        "{response}"
    );
    assert!(response.contains("Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK2\r\n"));
    assert!(response.contains("Call-ID: short-body\r\n"));
    match next_event(&mut events, Duration::from_secs(10)).await {
        TransportEvent::Rejected {
            error, answered, ..
        } => {
            assert_eq!(
                error,
                ParseError::BodyTruncated {
                    declared: 10,
                    available: 6
                }
            );
            assert!(answered);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn largest_datagram_is_received_whole() {
    let (transports, mut events) = Transports::new(TransportConfig::default());
    let server = transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let header_length = request_with_body("big", "3", b"").len();
    // 65507 is the largest IPv4 UDP payload; Content-Length grows by a digit or so.
    let body = vec![b'x'; 65507 - header_length - 5];
    let message = request_with_body("big", "3", &body);
    assert!(message.len() > 65000 && message.len() <= 65507);
    client.send_to(&message, server).await.unwrap();
    let (_, received) = next_message(&mut events).await;
    assert_eq!(received.body().len(), body.len());
    assert_eq!(received.as_bytes().len(), message.len());
}

#[tokio::test]
async fn datagram_over_the_size_limit_gets_513() {
    let mut config = TransportConfig::default();
    config.limits.max_message_size = 8192;
    let (transports, mut events) = Transports::new(config);
    let server = transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(&request_with_body("too-big", "4", &[b'y'; 10_000]), server)
        .await
        .unwrap();
    let (response, _) = receive(&client).await;
    assert!(text(&response).starts_with("SIP/2.0 513 Message Too Large\r\n"));
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::MessageTooLarge { limit: 8192, .. },
            answered: true,
            ..
        }
    ));
}

#[tokio::test]
async fn garbage_datagram_of_64_kib_is_dropped_and_the_socket_keeps_working() {
    let (transports, mut events) = Transports::new(TransportConfig::default());
    let server = transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(&vec![0xA5u8; 65507], server).await.unwrap();
    match next_event(&mut events, Duration::from_secs(10)).await {
        TransportEvent::Rejected {
            answered, error, ..
        } => {
            assert!(!answered, "nothing routable, nothing answered");
            assert!(
                matches!(
                    error,
                    ParseError::Unterminated | ParseError::MalformedStartLine { .. }
                ),
                "{error:?}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    client
        .send_to(
            request("OPTIONS", "after-garbage", "5", "UDP").as_bytes(),
            server,
        )
        .await
        .unwrap();
    let (_, message) = next_message(&mut events).await;
    assert_eq!(message.call_id().unwrap(), b"after-garbage");
}

#[tokio::test]
async fn header_name_of_10_kb_gets_400_naming_the_fault() {
    let (transports, mut events) = Transports::new(TransportConfig::default());
    let server = transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let normal = request("OPTIONS", "long-name", "6", "UDP");
    let long_name = format!("X-{}: 1\r\n", "N".repeat(10_000));
    let message = normal.replacen("Content-Length", &format!("{long_name}Content-Length"), 1);
    client.send_to(message.as_bytes(), server).await.unwrap();
    let (response, _) = receive(&client).await;
    assert!(text(&response).starts_with("SIP/2.0 400 Bad Request - header name too long\r\n"));
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::HeaderNameTooLong { length: 10_002, .. },
            answered: true,
            ..
        }
    ));
}

#[tokio::test]
async fn ten_thousand_headers_get_400_naming_the_fault() {
    let (transports, mut events) = Transports::new(TransportConfig::default());
    let server = transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let normal = request("OPTIONS", "many-headers", "7", "UDP");
    let filler = "X:1\r\n".repeat(10_000);
    let message = normal.replacen("Content-Length", &format!("{filler}Content-Length"), 1);
    assert!(message.len() < 65507);
    client.send_to(message.as_bytes(), server).await.unwrap();
    let (response, _) = receive(&client).await;
    assert!(text(&response).starts_with("SIP/2.0 400 Bad Request - too many headers\r\n"));
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::TooManyHeaders { .. },
            answered: true,
            ..
        }
    ));
}

#[tokio::test]
async fn broken_response_is_dropped_without_answer() {
    let (transports, mut events) = Transports::new(TransportConfig::default());
    let server = transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKr\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>\r\nCall-ID: r\r\nCSeq: 1 OPTIONS\r\nContent-Length: 50\r\n\r\nshort";
    client.send_to(response.as_bytes(), server).await.unwrap();
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::BodyTruncated { .. },
            answered: false,
            ..
        }
    ));
    let mut buffer = [0u8; 100];
    let silence =
        tokio::time::timeout(Duration::from_millis(200), client.recv_from(&mut buffer)).await;
    assert!(
        silence.is_err(),
        "responses are never answered (RFC 3261 §18.1.2)"
    );
}

#[tokio::test]
async fn request_in_another_sip_version_gets_505_rfc_4475_badvers() {
    let (transports, mut events) = Transports::new(TransportConfig::default());
    let server = transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(&torture_message("badvers"), server)
        .await
        .unwrap();
    let (response, from) = receive(&client).await;
    assert_eq!(from, server);
    let response = text(&response);
    assert!(
        response.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
        "{response}"
    );
    assert!(response.contains("Via: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n"));
    assert!(response.contains("Call-ID: badvers.31417@c.example.com\r\n"));
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::UnsupportedVersion,
            answered: true,
            ..
        }
    ));
}

#[tokio::test]
async fn request_line_with_trailing_white_space_gets_400_rfc_4475_trws() {
    let (transports, mut events) = Transports::new(TransportConfig::default());
    let server = transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(&torture_message("trws"), server)
        .await
        .unwrap();
    let (response, _) = receive(&client).await;
    let response = text(&response);
    assert!(
        response.starts_with("SIP/2.0 400 Bad Request - malformed start line\r\n"),
        "{response}"
    );
    assert!(response.contains("Call-ID: trws.oicu34958239neffasdhr2345r\r\n"));
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)).await,
        TransportEvent::Rejected {
            error: ParseError::MalformedStartLine { .. },
            answered: true,
            ..
        }
    ));
}

#[tokio::test]
async fn sending_without_a_socket_of_that_family_is_a_typed_error() {
    let (transports, _events) = Transports::new(TransportConfig::default());
    transports.bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let error = transports
        .send(
            &Destination::address(TransportProtocol::Udp, "[::1]:5999".parse().unwrap()),
            bytes::Bytes::from_static(b"x"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, sip_net::SendError::NoSocket { .. }),
        "{error}"
    );
}
