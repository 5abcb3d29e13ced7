//! Round trips through the whole stack on loopback: UDP socket → parse → transaction layer →
//! application → response → socket. Sequential, so the figure is latency per transaction.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sip_core::transaction::make_response;
use sip_net::{EndpointConfig, EndpointEvent, SipEndpoint};
use tokio::net::UdpSocket;

fn options(sequence: u64) -> String {
    format!(
        "OPTIONS sip:bench@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKbench{sequence}\r\n\
Max-Forwards: 70\r\n\
From: <sip:client@127.0.0.1>;tag=c1\r\n\
To: <sip:bench@127.0.0.1>\r\n\
Call-ID: bench-{sequence}\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn udp_round_trip(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime.block_on(async {
        let mut endpoint = SipEndpoint::new(EndpointConfig::default());
        let address = endpoint
            .transports()
            .bind_udp("127.0.0.1:0".parse().expect("address"))
            .expect("bind");
        tokio::spawn(async move {
            while let Some(event) = endpoint.recv().await {
                if let EndpointEvent::Request {
                    transaction,
                    request,
                    ..
                } = event
                {
                    let response = make_response(&request, 200, "OK", Some(b"bench"));
                    let _ = endpoint.send_response(transaction, response).await;
                }
            }
        });
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
        client.connect(address).await.expect("connect");
        client
    });
    let mut sequence = 0u64;
    let mut buffer = vec![0u8; 4096];
    criterion.bench_function("endpoint_udp_options_round_trip", |bencher| {
        bencher.iter(|| {
            sequence += 1;
            let request = options(sequence);
            runtime.block_on(async {
                client.send(request.as_bytes()).await.expect("send");
                client.recv(&mut buffer).await.expect("receive")
            })
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = udp_round_trip
}
criterion_main!(benches);
