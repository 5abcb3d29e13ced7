//! The endpoint: transports driving the sip-core transaction layer over real loopback sockets.

mod common;

use std::time::Duration;

use common::{read_until, request, text};
use sip_core::transaction::{Event, Timer, make_response};
use sip_message::{Message, ParseError};
use sip_net::{Destination, EndpointConfig, EndpointEvent, SipEndpoint, TransportProtocol};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

async fn next(endpoint: &mut SipEndpoint) -> EndpointEvent {
    tokio::time::timeout(Duration::from_secs(10), endpoint.recv())
        .await
        .expect("no endpoint event in time")
        .expect("endpoint stopped")
}

/// Skips transaction bookkeeping events (termination) the test does not look at.
async fn next_significant(endpoint: &mut SipEndpoint) -> EndpointEvent {
    loop {
        match next(endpoint).await {
            EndpointEvent::Transaction {
                event: Event::Terminated,
                ..
            } => continue,
            event => return event,
        }
    }
}

async fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buffer = vec![0u8; 65535];
    let (count, _) = tokio::time::timeout(Duration::from_secs(10), socket.recv_from(&mut buffer))
        .await
        .expect("no datagram in time")
        .unwrap();
    buffer.truncate(count);
    buffer
}

#[tokio::test]
async fn udp_request_gets_its_response_and_a_retransmission_gets_the_cached_one() {
    let mut endpoint = SipEndpoint::new(EndpointConfig::default());
    let address = endpoint
        .transports()
        .bind_udp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // RFC 3581: with rport the answer goes to the source port, not the Via port.
    let sent = request("OPTIONS", "endpoint-udp", "e1", "UDP").replace(";branch", ";rport;branch");
    client.send_to(sent.as_bytes(), address).await.unwrap();

    let EndpointEvent::Request {
        transaction,
        request,
        flow,
    } = next(&mut endpoint).await
    else {
        panic!("expected a request");
    };
    assert_eq!(flow.remote, client.local_addr().unwrap());
    let stamped = std::str::from_utf8(request.header(&sip_message::HeaderName::Via).unwrap())
        .unwrap()
        .to_owned();
    assert_eq!(
        stamped,
        format!(
            "SIP/2.0/UDP 127.0.0.1:5999;rport={};branch=z9hG4bKe1;received=127.0.0.1",
            client.local_addr().unwrap().port()
        )
    );
    let response = make_response(&request, 200, "OK", Some(b"server-tag"));
    endpoint.send_response(transaction, response).await.unwrap();
    let first = receive(&client).await;
    assert!(
        text(&first).starts_with("SIP/2.0 200 OK\r\n"),
        "{}",
        text(&first)
    );
    assert!(text(&first).contains("tag=server-tag"));

    // RFC 3261 §17.2.2: the retransmitted request is absorbed and the last response re-sent,
    // without the application seeing the request again.
    client.send_to(sent.as_bytes(), address).await.unwrap();
    let again = receive(&client).await;
    assert_eq!(again, first);
    let quiet = tokio::time::timeout(Duration::from_millis(200), endpoint.recv()).await;
    assert!(
        !matches!(quiet, Ok(Some(EndpointEvent::Request { .. }))),
        "the retransmission must not reach the application: {quiet:?}"
    );
}

#[tokio::test]
async fn tcp_client_and_server_transactions_talk_over_one_connection() {
    let mut server = SipEndpoint::new(EndpointConfig::default());
    let address = server
        .transports()
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let mut client = SipEndpoint::new(EndpointConfig::default());

    let outgoing = Message::parse(request("OPTIONS", "endpoint-tcp", "e2", "TCP").into()).unwrap();
    let client_transaction = client
        .send_request(
            outgoing,
            Destination::address(TransportProtocol::Tcp, address),
        )
        .await
        .unwrap();

    let EndpointEvent::Request {
        transaction,
        request,
        flow,
    } = next(&mut server).await
    else {
        panic!("expected a request");
    };
    assert_eq!(flow.transport, TransportProtocol::Tcp);
    server
        .send_response(transaction, make_response(&request, 200, "OK", Some(b"t2")))
        .await
        .unwrap();

    match next_significant(&mut client).await {
        EndpointEvent::Transaction {
            transaction,
            event: Event::Response(response),
        } => {
            assert_eq!(transaction, client_transaction);
            assert_eq!(response.status(), Some(200));
        }
        other => panic!("expected the 200, got {other:?}"),
    }
    assert_eq!(client.transports().connection_count(), 1);
    assert_eq!(server.transports().connection_count(), 1);
}

#[tokio::test]
async fn response_to_a_raw_tcp_peer_goes_back_on_its_connection() {
    let mut endpoint = SipEndpoint::new(EndpointConfig::default());
    let address = endpoint
        .transports()
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let mut peer = TcpStream::connect(address).await.unwrap();
    peer.write_all(request("INVITE", "endpoint-invite", "e3", "TCP").as_bytes())
        .await
        .unwrap();
    let EndpointEvent::Request {
        transaction,
        request,
        ..
    } = next(&mut endpoint).await
    else {
        panic!("expected a request");
    };
    endpoint
        .send_response(
            transaction,
            make_response(&request, 486, "Busy Here", Some(b"t3")),
        )
        .await
        .unwrap();
    // 100 Trying from the INVITE server transaction, then the 486, both on this connection.
    let received = text(&read_until(&mut peer, b"486 Busy Here").await);
    assert!(received.starts_with("SIP/2.0 100 Trying\r\n"), "{received}");
}

#[tokio::test(start_paused = true)]
async fn unanswered_udp_request_is_retransmitted_then_times_out_with_timer_f() {
    let mut endpoint = SipEndpoint::new(EndpointConfig::default());
    endpoint
        .transports()
        .bind_udp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let outgoing = Message::parse(request("OPTIONS", "silence", "e4", "UDP").into()).unwrap();
    let started = tokio::time::Instant::now();
    let transaction = endpoint
        .send_request(
            outgoing,
            Destination::address(TransportProtocol::Udp, silent.local_addr().unwrap()),
        )
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(100), endpoint.recv())
        .await
        .unwrap()
        .unwrap();
    match event {
        EndpointEvent::Transaction {
            transaction: id,
            event: Event::Timeout(Timer::F),
        } => {
            assert_eq!(id, transaction);
        }
        other => panic!("expected Timer F, got {other:?}"),
    }
    // Timer F is 64·T1 = 32 s (RFC 3261 §17.1.2.2).
    assert!(started.elapsed() >= Duration::from_secs(32));
    let mut copies = 0;
    let mut buffer = [0u8; 2048];
    while let Ok(Ok((count, _))) =
        tokio::time::timeout(Duration::from_millis(1), silent.recv_from(&mut buffer)).await
    {
        assert!(text(&buffer[..count]).contains("Call-ID: silence"));
        copies += 1;
    }
    // Timer E retransmits at 0.5, 1, 2, 4, 4 … s: at least the first send plus several copies.
    assert!(copies >= 5, "only {copies} copies arrived");
}

#[tokio::test]
async fn malformed_udp_request_is_answered_400_and_reported() {
    let mut endpoint = SipEndpoint::new(EndpointConfig::default());
    let address = endpoint
        .transports()
        .bind_udp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let broken =
        request("OPTIONS", "broken", "e5", "UDP").replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    client.send_to(broken.as_bytes(), address).await.unwrap();
    let answer = text(&receive(&client).await);
    assert!(
        answer.starts_with("SIP/2.0 400 Bad Request - malformed CSeq header\r\n"),
        "{answer}"
    );
    match next(&mut endpoint).await {
        EndpointEvent::Rejected {
            error, answered, ..
        } => {
            assert!(
                matches!(error, ParseError::InvalidHeader { .. }),
                "{error:?}"
            );
            assert!(answered);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_transaction_is_a_typed_error() {
    let mut server = SipEndpoint::new(EndpointConfig::default());
    let address = server
        .transports()
        .bind_udp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(request("OPTIONS", "twice", "e6", "UDP").as_bytes(), address)
        .await
        .unwrap();
    let EndpointEvent::Request {
        transaction,
        request,
        ..
    } = next(&mut server).await
    else {
        panic!("expected a request");
    };
    server
        .send_response(transaction, make_response(&request, 200, "OK", Some(b"t")))
        .await
        .unwrap();
    let second = server
        .send_response(
            transaction,
            make_response(&request, 500, "Server Error", Some(b"t")),
        )
        .await;
    assert!(
        matches!(second, Err(sip_net::EndpointError::Transaction(_))),
        "{second:?}"
    );
}

#[tokio::test]
async fn udp_response_without_rport_goes_to_the_via_port_rfc_3261_section_18_2_2() {
    let mut endpoint = SipEndpoint::new(EndpointConfig::default());
    let address = endpoint
        .transports()
        .bind_udp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let via_port = listener.local_addr().unwrap().port();
    let sent = request("OPTIONS", "via-port", "e7", "UDP")
        .replace("127.0.0.1:5999", &format!("127.0.0.1:{via_port}"));
    sender.send_to(sent.as_bytes(), address).await.unwrap();
    let EndpointEvent::Request {
        transaction,
        request,
        ..
    } = next(&mut endpoint).await
    else {
        panic!("expected a request");
    };
    endpoint
        .send_response(transaction, make_response(&request, 200, "OK", Some(b"t7")))
        .await
        .unwrap();
    let answer = text(&receive(&listener).await);
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
}

#[tokio::test]
async fn request_from_a_named_host_is_stamped_with_received() {
    let mut endpoint = SipEndpoint::new(EndpointConfig::default());
    let address = endpoint
        .transports()
        .bind_udp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sent =
        request("OPTIONS", "named", "e8", "UDP").replace("127.0.0.1:5999", "client.invalid:5999");
    client.send_to(sent.as_bytes(), address).await.unwrap();
    let EndpointEvent::Request { request, .. } = next(&mut endpoint).await else {
        panic!("expected a request");
    };
    let via = request.top_via().unwrap();
    assert_eq!(via.received(), Some(&b"127.0.0.1"[..]));
}

#[tokio::test]
async fn tcp_request_over_a_closed_connection_is_answered_on_a_new_one_to_the_via_address() {
    let mut endpoint = SipEndpoint::new(EndpointConfig::default());
    let address = endpoint
        .transports()
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    // The peer's own listener, named in its Via (RFC 3261 §18.2.2).
    let peer_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let via_port = peer_listener.local_addr().unwrap().port();
    let mut peer = TcpStream::connect(address).await.unwrap();
    let sent = request("OPTIONS", "reconnect", "e9", "TCP")
        .replace("127.0.0.1:5999", &format!("127.0.0.1:{via_port}"));
    peer.write_all(sent.as_bytes()).await.unwrap();
    let EndpointEvent::Request {
        transaction,
        request,
        ..
    } = next(&mut endpoint).await
    else {
        panic!("expected a request");
    };
    drop(peer);
    // Wait until the endpoint has seen the close.
    loop {
        if let EndpointEvent::ConnectionClosed { .. } = next(&mut endpoint).await {
            break;
        }
    }
    endpoint
        .send_response(transaction, make_response(&request, 200, "OK", Some(b"t9")))
        .await
        .unwrap();
    let (mut back, _) = tokio::time::timeout(Duration::from_secs(10), peer_listener.accept())
        .await
        .unwrap()
        .unwrap();
    let answer = text(&read_until(&mut back, b"\r\n\r\n").await);
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
}

#[tokio::test]
async fn request_to_an_unreachable_tcp_peer_ends_in_a_transport_error() {
    let mut endpoint = SipEndpoint::new(EndpointConfig::default());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let outgoing = Message::parse(request("OPTIONS", "unreachable", "e10", "TCP").into()).unwrap();
    let transaction = endpoint
        .send_request(
            outgoing,
            Destination::address(TransportProtocol::Tcp, closed),
        )
        .await
        .unwrap();
    match next(&mut endpoint).await {
        EndpointEvent::Transaction {
            transaction: id,
            event: Event::TransportError,
        } => {
            assert_eq!(id, transaction);
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn cancel_follows_its_invite_and_matches_the_server_transaction() {
    let mut server = SipEndpoint::new(EndpointConfig::default());
    let address = server
        .transports()
        .bind_udp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let mut client = SipEndpoint::new(EndpointConfig::default());
    let client_address = client
        .transports()
        .bind_udp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let invite = request("INVITE", "cancelled", "e11", "UDP")
        .replace("127.0.0.1:5999", &client_address.to_string());
    let invite_transaction = client
        .send_request(
            Message::parse(invite.into()).unwrap(),
            Destination::address(TransportProtocol::Udp, address),
        )
        .await
        .unwrap();
    let EndpointEvent::Request {
        transaction: server_invite,
        ..
    } = next(&mut server).await
    else {
        panic!("expected the INVITE");
    };
    // The server's automatic 100 Trying reaches the client transaction first.
    match next_significant(&mut client).await {
        EndpointEvent::Transaction {
            event: Event::Response(response),
            ..
        } => {
            assert_eq!(response.status(), Some(100));
        }
        other => panic!("expected 100 Trying, got {other:?}"),
    }
    client.send_cancel(invite_transaction).await.unwrap();
    match next_significant(&mut server).await {
        EndpointEvent::Cancel {
            invite, request, ..
        } => {
            assert_eq!(invite, Some(server_invite));
            assert_eq!(request.call_id().unwrap(), b"cancelled");
        }
        other => panic!("expected the CANCEL, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_transaction_runs_over_a_verified_connection() {
    let directory = tempfile::tempdir().unwrap();
    let names = vec!["localhost".to_owned()];
    let (identity, _) = sip_net::TlsIdentity::load_or_generate(directory.path(), &names).unwrap();
    let mut server = SipEndpoint::new(EndpointConfig::default());
    let address = server
        .transports()
        .listen_tls(
            "127.0.0.1:0".parse().unwrap(),
            identity.server_config().unwrap(),
        )
        .unwrap();
    let mut client = SipEndpoint::new(EndpointConfig::default());
    client
        .transports()
        .set_tls_client(sip_net::tls::client_config([identity.certificate().clone()]).unwrap());
    let outgoing = Message::parse(request("MESSAGE", "secure", "e12", "TLS").into()).unwrap();
    let transaction = client
        .send_request(
            outgoing,
            Destination::Address {
                transport: TransportProtocol::Tls,
                remote: address,
                server_name: Some("localhost".into()),
            },
        )
        .await
        .unwrap();
    let EndpointEvent::Request {
        transaction: incoming,
        request,
        flow,
    } = next(&mut server).await
    else {
        panic!("expected the MESSAGE");
    };
    assert_eq!(flow.transport, TransportProtocol::Tls);
    server
        .send_response(
            incoming,
            make_response(&request, 202, "Accepted", Some(b"t12")),
        )
        .await
        .unwrap();
    match next_significant(&mut client).await {
        EndpointEvent::Transaction {
            transaction: id,
            event: Event::Response(response),
        } => {
            assert_eq!(id, transaction);
            assert_eq!(response.status(), Some(202));
        }
        other => panic!("expected the 202, got {other:?}"),
    }
}
