//! A real SIP peer (SIPp's built-in `uac` scenario: INVITE, ACK, BYE) calls through the LB to
//! an in-test proxy socket that plays the callee, over UDP and over TCP.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use lb::LbConfig;
use sip_message::{HeaderName, Message, MessageBuilder, Method};
use tokio::net::UdpSocket;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A port free right now on 127.0.0.1 (SIPp wants numbers, and must never get 5060/8888/6000).
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Plays the callee behind the LB until the BYE is answered; returns the methods seen.
async fn callee(proxy: UdpSocket, lb_internal: SocketAddr) -> Vec<Method> {
    let mut seen = Vec::new();
    let mut buffer = vec![0u8; 65_535];
    loop {
        let (length, _) = proxy.recv_from(&mut buffer).await.unwrap();
        let message = Message::parse(Bytes::copy_from_slice(&buffer[..length])).unwrap();
        let Some(method) = message.method().cloned() else {
            continue;
        };
        seen.push(method.clone());
        let answers: Vec<(u16, &str)> = match method {
            Method::Invite => vec![(180, "Ringing"), (200, "OK")],
            Method::Bye => vec![(200, "OK")],
            _ => Vec::new(),
        };
        for (status, reason) in answers {
            let mut response = MessageBuilder::response_to(&message, status, reason)
                .to_tag("callee1")
                .header(
                    HeaderName::Contact,
                    format!("<sip:callee@{}>", proxy.local_addr().unwrap()),
                );
            for record_route in message.header_values(&HeaderName::RecordRoute) {
                response = response.header(HeaderName::RecordRoute, record_route.to_vec());
            }
            proxy
                .send_to(&response.build().to_bytes(), lb_internal)
                .await
                .unwrap();
        }
        if method == Method::Bye {
            return seen;
        }
    }
}

async fn call_through_lb(transport: &str) {
    let proxy = UdpSocket::bind(loopback()).await.unwrap();
    let lb = lb::start(LbConfig {
        udp: Some(loopback()),
        tcp: Some(loopback()),
        tls: None,
        internal: loopback(),
        proxy: proxy.local_addr().unwrap(),
        domains: vec!["example.com".to_owned()],
        ..LbConfig::default()
    })
    .await
    .unwrap();
    let target = if transport == "t1" {
        lb.tcp.unwrap()
    } else {
        lb.udp.unwrap()
    };
    let callee = tokio::spawn(callee(proxy, lb.internal));
    let status = tokio::process::Command::new("sipp")
        .args(["-sn", "uac", "-m", "1", "-t", transport, "-i", "127.0.0.1"])
        .args(["-p", &free_port().to_string()])
        .args(["-cp", &free_port().to_string()])
        .args(["-mp", &free_port().to_string()])
        .args(["-timeout", "20s", "-nostdin", "-bind_local"])
        .arg(target.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .expect("sipp from Debian's sip-tester must be installed");
    assert!(
        status.success(),
        "sipp call over {transport} failed: {status}"
    );
    let seen = tokio::time::timeout(Duration::from_secs(5), callee)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, vec![Method::Invite, Method::Ack, Method::Bye]);
    lb.shutdown().await;
}

#[tokio::test]
async fn sipp_call_over_udp() {
    call_through_lb("u1").await;
}

#[tokio::test]
async fn sipp_call_over_tcp() {
    call_through_lb("t1").await;
}
