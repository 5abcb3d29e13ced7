use super::*;

#[test]
fn commands_ride_on_a_pending_wake_up_until_the_data_plane_takes_them() {
    let signal = CommandSignal::new().unwrap();
    let poll = Epoll::new().unwrap();
    poll.add(signal.eventfd.raw(), WAKER_TOKEN).unwrap();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
    assert_eq!(poll.wait(&mut events, Some(0)).unwrap(), 0);
    signal.raise().unwrap();
    assert!(signal.pending.load(Ordering::Acquire));
    signal.raise().unwrap();
    assert_eq!(poll.wait(&mut events, Some(0)).unwrap(), 1);
    signal.take();
    assert!(!signal.pending.load(Ordering::Acquire));
    assert_eq!(poll.wait(&mut events, Some(0)).unwrap(), 0, "taken");
    // Taken: the next command writes again.
    signal.raise().unwrap();
    assert_eq!(poll.wait(&mut events, Some(1000)).unwrap(), 1);
}

/// A command queued while the data plane takes the signal is never stranded: either it
/// wakes the data plane again or the data plane sees it in the drain that follows.
#[test]
fn no_command_is_stranded_by_a_wake_up_racing_with_take() {
    const COMMANDS: u32 = 100_000;
    let signal = Arc::new(CommandSignal::new().unwrap());
    let (sender, receiver) = mpsc::channel::<u32>();
    let producer = std::thread::spawn({
        let signal = Arc::clone(&signal);
        move || {
            for n in 0..COMMANDS {
                sender.send(n).unwrap();
                signal.raise().unwrap();
            }
        }
    });
    let poll = Epoll::new().unwrap();
    poll.add(signal.eventfd.raw(), WAKER_TOKEN).unwrap();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
    let mut received = 0;
    while received < COMMANDS {
        let ready = poll.wait(&mut events, Some(2000)).unwrap();
        assert_eq!(ready, 1, "stranded after {received} commands");
        signal.take();
        while receiver.try_recv().is_ok() {
            received += 1;
        }
    }
    producer.join().unwrap();
}

/// Packets that reach a leg's own socket before the data plane steers its port (a phone of
/// the port's previous call still sending while the offer's reply is on its way) are all
/// taken when the leg is added: nothing watches that socket afterwards, so any left behind
/// would be neither relayed nor counted. Steering needs CAP_BPF + CAP_NET_ADMIN; without
/// them the socket is watched and this holds as well.
#[test]
fn every_packet_queued_before_a_port_is_steered_is_relayed() {
    use std::net::Ipv4Addr;
    const PACKETS: u8 = 5;
    // Four ports below the kernel's ephemeral range, not used by other tests.
    let mut base = 23_200_u16;
    let sockets = loop {
        let bound: Vec<UdpSocket> = (base..base + 4)
            .map_while(|port| UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).ok())
            .collect();
        if bound.len() == 4 {
            break bound;
        }
        base += 4;
    };
    for socket in &sockets {
        socket.set_nonblocking(true).unwrap();
    }
    let [near, first_in, far, first_out] = <[UdpSocket; 4]>::try_from(sockets).unwrap();
    let phone = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let plane = DataPlane::spawn(
        IoMode::Steered,
        Duration::ZERO,
        Instant::now(),
        Arc::default(),
        SteeredRange {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: base,
            port_max: base + 3,
            tos: 0,
            kernel_forwarding: false,
        },
    )
    .unwrap();
    let legs = |ids: [usize; 2], [near, far]: [UdpSocket; 2], shared: &Arc<LegShared>| {
        DataCommand::Add(vec![
            LegRegistration {
                id: ids[0],
                socket: near,
                partner: ids[1],
                destination: None,
                shared: Arc::clone(shared),
                release_port: None,
            },
            LegRegistration {
                id: ids[1],
                socket: far,
                partner: ids[0],
                destination: Some(receiver.local_addr().unwrap()),
                shared: Arc::default(),
                release_port: None,
            },
        ])
    };
    let mut buffer = [0_u8; 16];
    // A relay that has been running a while: a first call's packet went through.
    let first_in_address = first_in.local_addr().unwrap();
    plane.send(legs([0, 1], [first_in, first_out], &Arc::default()));
    phone.send_to(b"first", first_in_address).unwrap();
    let (len, _) = receiver.recv_from(&mut buffer).expect("first call relayed");
    assert_eq!(&buffer[..len], b"first");
    // Queued on the near socket before the data plane knows the leg.
    let near_address = near.local_addr().unwrap();
    for sequence in 0..PACKETS {
        phone.send_to(&[sequence], near_address).unwrap();
    }
    let shared = Arc::new(LegShared::default());
    plane.send(legs([2, 3], [near, far], &shared));
    for sequence in 0..PACKETS {
        let (len, from) = receiver
            .recv_from(&mut buffer)
            .unwrap_or_else(|error| panic!("packet {sequence} not relayed: {error}"));
        assert_eq!((&buffer[..len], from.port()), (&[sequence][..], base + 2));
    }
    let counters = shared.counters();
    assert_eq!((counters.packets, counters.errors), (u64::from(PACKETS), 0));
}

#[test]
fn a_former_peer_is_refused_until_its_time_runs_out_unless_the_sdp_names_it() {
    let old_latched: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let old_advertised: SocketAddr = "192.0.2.1:4002".parse().unwrap();
    let new_party: SocketAddr = "198.51.100.7:5000".parse().unwrap();
    let former = FormerPeer {
        endpoints: [Some(old_latched), Some(old_advertised)],
        until_ms: 30_000,
    };
    for source in [old_latched, old_advertised] {
        assert!(former.refuses(source, Some(new_party), 0));
        assert!(former.refuses(source, None, 29_999));
        assert!(!former.refuses(source, Some(new_party), 30_000), "over");
    }
    assert!(!former.refuses(new_party, Some(new_party), 10));
    assert!(!former.refuses(new_party, None, 10), "anyone else latches");
    // The new call's own SDP names the old endpoint (a phone calling again from the same
    // port): its packets are the new call's.
    assert!(!former.refuses(old_latched, Some(old_latched), 10));
}
