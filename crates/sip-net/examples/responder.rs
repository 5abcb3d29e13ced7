//! A minimal user agent server on the endpoint, for trying the stack against real peers such as
//! SIPp: answers INVITE with 200 (with a To tag), every other request with 200, ignores ACKs.
//!
//! `cargo run -p sip-net --example responder -- 127.0.0.1:5070`, then e.g.
//! `sipp -sn uac -m 100 127.0.0.1:5070` (UDP) or add `-t t1` for TCP.

use std::net::SocketAddr;

use sip_core::transaction::make_response;
use sip_net::{EndpointConfig, EndpointEvent, SipEndpoint};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5070".to_owned())
        .parse()?;
    let mut endpoint = SipEndpoint::new(EndpointConfig::default());
    let udp = endpoint.transports().bind_udp(address)?;
    let tcp = endpoint.transports().listen_tcp(address)?;
    eprintln!("answering on udp:{udp} and tcp:{tcp}");
    let mut tag = 0u64;
    while let Some(event) = endpoint.recv().await {
        match event {
            EndpointEvent::Request {
                transaction,
                request,
                ..
            }
            | EndpointEvent::Cancel {
                transaction,
                request,
                ..
            } => {
                tag += 1;
                let response =
                    make_response(&request, 200, "OK", Some(format!("r{tag}").as_bytes()));
                if let Err(error) = endpoint.send_response(transaction, response).await {
                    eprintln!("cannot answer: {error}");
                }
            }
            EndpointEvent::Rejected { flow, error, .. } => {
                eprintln!("rejected from {}: {error}", flow.remote);
            }
            _ => {}
        }
    }
    Ok(())
}
