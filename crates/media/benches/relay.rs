//! Relay throughput and CPU per packet, in process: N unidirectional streams (N/2 calls set up
//! over ng) of 172-byte packets at 50 pps each, through the relay on 127.0.0.1, for the batched
//! fast path and the simple one-syscall-per-packet path.
//!
//! `cargo bench -p media --bench relay` ; environment: `STREAMS` (1000,2000), `PPS` (50),
//! `SECS` (5), `SIZE` (172), `MODES` (batched,simple).
//!
//! Relay CPU is the data-plane thread's own CPU time (`/proc/self/task/<tid>/schedstat`), so
//! the generator in the same process is not charged to it. Like the shared driver, all call
//! legs of one side share one generator socket.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use media::{IoMode, MediaConfig, MediaRelay, THREAD_NAME};
use ng_protocol::bencode::{Value, decode};
use ng_protocol::sdp;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn relay_thread_cpu_ns() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() == THREAD_NAME {
            let schedstat = std::fs::read_to_string(path.join("schedstat")).ok()?;
            return schedstat.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

fn ng(socket: &UdpSocket, relay: SocketAddr, cookie: usize, request: &Value<'_>) -> Value<'static> {
    // Cookies must be unique across steps too: the relay replays cached replies for 30-60 s.
    let mut datagram = format!("b{}_{cookie} ", socket.local_addr().unwrap().port()).into_bytes();
    datagram.extend(request.encode());
    socket.send_to(&datagram, relay).expect("send ng");
    let mut buffer = vec![0_u8; 65_535];
    let len = socket.recv(&mut buffer).expect("ng reply");
    let space = buffer.iter().position(|&b| b == b' ').expect("cookie");
    decode(&buffer[space + 1..len])
        .expect("bencode")
        .into_owned()
}

fn dict(entries: Vec<(&'static str, Value<'static>)>) -> Value<'static> {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().into(), v))
            .collect(),
    )
}

fn body(port: u16, session: usize) -> Value<'static> {
    Value::string(format!(
        "v=0\r\no=- {session} 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=ptime:20\r\n"
    ))
}

fn relay_port(reply: &Value<'_>) -> u16 {
    let Some(text) = reply.get("sdp").and_then(Value::as_bytes) else {
        panic!("relay refused: {reply:?}");
    };
    sdp::parse(text).expect("sdp").media[0].port
}

struct StepResult {
    offered_pps: f64,
    received_pps: f64,
    loss_percent: f64,
    relay_cores: f64,
    cpu_us_per_packet: f64,
    latency_p50_us: u64,
    latency_p99_us: u64,
}

/// Drains its socket every millisecond instead of blocking in recv, so the relay's sends never
/// have to wake a sleeping receiver thread (that cost would be charged to the relay's CPU).
fn receiver(socket: UdpSocket, stop: Arc<AtomicBool>, start: Instant) -> (u64, Vec<u32>) {
    socket.set_nonblocking(true).unwrap();
    let mut buffer = [0_u8; 2048];
    let mut count = 0_u64;
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(len) = socket.recv(&mut buffer) {
            if len < 16 {
                continue;
            }
            count += 1;
            let sent_ns = u64::from_be_bytes(buffer[8..16].try_into().unwrap());
            let now_ns = start.elapsed().as_nanos() as u64;
            latencies
                .push(u32::try_from(now_ns.saturating_sub(sent_ns) / 1000).unwrap_or(u32::MAX));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (count, latencies)
}

fn run_step(relay: &MediaRelay, streams: usize, pps: u64, secs: u64, size: usize) -> StepResult {
    let control = UdpSocket::bind("127.0.0.1:0").unwrap();
    control
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let side_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let side_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    for socket in [&side_a, &side_b] {
        let _ = socket2::SockRef::from(socket).set_recv_buffer_size(4 << 20);
    }
    let (port_a, port_b) = (
        side_a.local_addr().unwrap().port(),
        side_b.local_addr().unwrap().port(),
    );
    let calls = streams / 2;
    // (sending socket is A?, relay port to send to)
    let mut targets: Vec<(bool, SocketAddr)> = Vec::with_capacity(streams);
    let mut cookie = 0;
    for call in 0..calls {
        let call_id = format!("bench-{streams}-{call}");
        cookie += 1;
        let offer = ng(
            &control,
            relay.ng_addr(),
            cookie,
            &dict(vec![
                ("command", Value::string("offer")),
                ("call-id", Value::string(call_id.clone())),
                ("from-tag", Value::string(format!("a{call}"))),
                ("sdp", body(port_a, call)),
                ("ICE", Value::string("remove")),
            ]),
        );
        cookie += 1;
        let answer = ng(
            &control,
            relay.ng_addr(),
            cookie,
            &dict(vec![
                ("command", Value::string("answer")),
                ("call-id", Value::string(call_id)),
                ("from-tag", Value::string(format!("a{call}"))),
                ("to-tag", Value::string(format!("b{call}"))),
                ("sdp", body(port_b, call)),
            ]),
        );
        targets.push((
            true,
            SocketAddr::from(([127, 0, 0, 1], relay_port(&answer))),
        ));
        targets.push((
            false,
            SocketAddr::from(([127, 0, 0, 1], relay_port(&offer))),
        ));
    }
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = [&side_a, &side_b]
        .into_iter()
        .map(|socket| {
            let socket = socket.try_clone().unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || receiver(socket, stop, start))
        })
        .collect();
    let cpu_before = relay_thread_cpu_ns().unwrap_or(0);
    let wall_before = Instant::now();
    // Every millisecond, send to the streams whose slot it is: each stream every 1000/pps ms.
    let period_ms = (1000 / pps.max(1)).max(1);
    let mut packet = vec![0_u8; size.max(16)];
    packet[0] = 0x80;
    let mut sent = 0_u64;
    for tick in 0..secs * 1000 {
        let due = wall_before + Duration::from_millis(tick);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for (index, (from_a, target)) in targets.iter().enumerate() {
            if index as u64 % period_ms != tick % period_ms {
                continue;
            }
            packet[4..8].copy_from_slice(&(index as u32).to_be_bytes());
            let now_ns = start.elapsed().as_nanos() as u64;
            packet[8..16].copy_from_slice(&now_ns.to_be_bytes());
            let socket = if *from_a { &side_a } else { &side_b };
            if socket.send_to(&packet, target).is_ok() {
                sent += 1;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let wall = wall_before.elapsed().as_secs_f64();
    let cpu_ns = relay_thread_cpu_ns()
        .unwrap_or(0)
        .saturating_sub(cpu_before);
    stop.store(true, Ordering::Relaxed);
    let mut received = 0;
    let mut latencies = Vec::new();
    for handle in receivers {
        let (count, mut lat) = handle.join().unwrap();
        received += count;
        latencies.append(&mut lat);
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let index = ((latencies.len() - 1) as f64 * p) as usize;
        u64::from(latencies[index])
    };
    for call in 0..calls {
        cookie += 1;
        let _ = ng(
            &control,
            relay.ng_addr(),
            cookie,
            &dict(vec![
                ("command", Value::string("delete")),
                ("call-id", Value::string(format!("bench-{streams}-{call}"))),
                ("delete-delay", Value::Int(0)),
            ]),
        );
    }
    let send_secs = secs as f64;
    StepResult {
        offered_pps: (streams as u64 * pps) as f64,
        received_pps: received as f64 / send_secs,
        loss_percent: if sent == 0 {
            0.0
        } else {
            100.0 * (sent.saturating_sub(received)) as f64 / sent as f64
        },
        relay_cores: cpu_ns as f64 / 1e9 / wall,
        cpu_us_per_packet: if received == 0 {
            0.0
        } else {
            cpu_ns as f64 / 1e3 / received as f64
        },
        latency_p50_us: percentile(0.5),
        latency_p99_us: percentile(0.99),
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and must not spend a
    // minute blasting packets.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let streams: Vec<usize> = env_or("STREAMS", "1000,2000")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let pps: u64 = env_or("PPS", "50").parse().unwrap_or(50);
    let secs: u64 = env_or("SECS", "5").parse().unwrap_or(5);
    let size: usize = env_or("SIZE", "172").parse().unwrap_or(172);
    let modes = env_or("MODES", "batched,simple");
    let coalesce_us: Vec<u64> = env_or("COALESCE_US", "500,0")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut out = std::io::stderr();
    use std::io::Write;
    let _ = writeln!(
        out,
        "mode     coalesce  streams  offered pps  recv pps   loss %  lat p50/p99 us   relay cores  us CPU/pkt"
    );
    for mode in modes.split(',') {
        for &coalesce in &coalesce_us {
            let io_mode = match mode.trim() {
                "simple" => IoMode::Simple,
                _ => IoMode::Batched,
            };
            let relay = runtime.block_on(MediaRelay::start(MediaConfig {
                io_mode,
                poll_coalesce: Duration::from_micros(coalesce),
                ..MediaConfig::loopback(12_000, 32_767)
            }));
            let relay = relay.expect("relay starts");
            for &n in &streams {
                let r = run_step(&relay, n, pps, secs, size);
                let _ = writeln!(
                    out,
                    "{:<8} {:>6}us {:>8} {:>12.0} {:>9.0} {:>8.3}  {:>6}/{:<8} {:>11.3} {:>11.2}",
                    mode.trim(),
                    coalesce,
                    n,
                    r.offered_pps,
                    r.received_pps,
                    r.loss_percent,
                    r.latency_p50_us,
                    r.latency_p99_us,
                    r.relay_cores,
                    r.cpu_us_per_packet
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            runtime.block_on(relay.shutdown());
        }
    }
}
