//! The system calls of the data plane: a level-triggered epoll set with an eventfd waker, and
//! UDP receive/send either one datagram per call (`recvmsg`/`sendto`, the cheapest for a socket
//! holding one packet, which is what thousands of 50 pps streams give) or up to [`BATCH`] per
//! call (`recvmmsg`/`sendmmsg`, for a socket that stays busy). Neither std, socket2 nor mio
//! offer level-triggered epoll or the mmsg calls, hence the only unsafe code of the crate.
#![allow(
    unsafe_code,
    reason = "epoll, eventfd and the msg calls need raw libc calls; every block states its invariants"
)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A level-triggered epoll set: a socket with data left after one read is reported again by the
/// next wait, so a read never has to go on until `EAGAIN` (edge-triggered epoll needs that
/// extra, empty system call per packet).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new epoll set.
    ///
    /// # Errors
    /// `epoll_create1`'s error.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call without pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    /// Watches `fd` for readability, reporting `token`.
    ///
    /// # Errors
    /// `epoll_ctl`'s error.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        let result = unsafe {
            libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &raw mut event)
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd`.
    ///
    /// # Errors
    /// `epoll_ctl`'s error.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed since Linux 2.6.9).
        let result = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for ready descriptors (forever with `None`) and returns how many of `events` were
    /// filled.
    ///
    /// # Errors
    /// `epoll_wait`'s error (`Interrupted` on a signal).
    pub fn wait(
        &self,
        events: &mut [libc::epoll_event],
        timeout_ms: Option<i32>,
    ) -> io::Result<usize> {
        let capacity = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the kernel writes at most `capacity` events into `events`, which is exclusively
        // borrowed for the call.
        let ready = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                capacity,
                timeout_ms.unwrap_or(-1),
            )
        };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(ready).unwrap_or(0))
    }
}

/// Wakes the data plane out of `epoll_wait` from another thread (an eventfd counter).
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new, non-blocking eventfd.
    ///
    /// # Errors
    /// `eventfd`'s error.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call without pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// The descriptor to watch.
    #[must_use]
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the descriptor readable.
    ///
    /// # Errors
    /// `write`'s error (a full counter is not one: the reader is woken anyway).
    pub fn wake(&self) -> io::Result<()> {
        let one = 1_u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live local buffer.
        let result = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        if result < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::WouldBlock {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Resets the counter so the descriptor is no longer readable.
    pub fn clear(&self) {
        let mut counter = [0_u8; 8];
        // SAFETY: reads at most 8 bytes into a live local buffer; EAGAIN when already clear.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                counter.as_mut_ptr().cast(),
                counter.len(),
            )
        };
    }
}

/// Datagrams moved per system call.
pub const BATCH: usize = 64;

/// Largest datagram relayed; bigger ones arrive truncated and are dropped as errors.
pub const PACKET_CAPACITY: usize = 2048;

/// Receive buffers for one batch, reused for every socket (the relay is single-threaded per
/// data-plane thread) and sent from in place, so a packet is never copied.
pub struct Batch {
    buffers: Box<[[u8; PACKET_CAPACITY]; BATCH]>,
    lengths: [usize; BATCH],
    truncated: [bool; BATCH],
    sources: Box<[libc::sockaddr_storage; BATCH]>,
    /// Control messages of a steered receive (the datagram's original destination).
    control: Box<[[u64; CONTROL_WORDS]; BATCH]>,
    destination_ports: [Option<u16>; BATCH],
    count: usize,
}

/// Room for one `IP_ORIGDSTADDR` or `IPV6_ORIGDSTADDR` control message (u64 words keep it
/// aligned for cmsghdr).
const CONTROL_WORDS: usize = 8;

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("count", &self.count).finish()
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// Empty buffers for one batch.
    #[must_use]
    pub fn new() -> Self {
        Batch {
            buffers: Box::new([[0; PACKET_CAPACITY]; BATCH]),
            lengths: [0; BATCH],
            truncated: [false; BATCH],
            // SAFETY: sockaddr_storage is a plain C struct of integers and byte arrays; all
            // zero bytes is a valid value (family AF_UNSPEC).
            sources: Box::new(unsafe { zeroed() }),
            control: Box::new([[0; CONTROL_WORDS]; BATCH]),
            destination_ports: [None; BATCH],
            count: 0,
        }
    }

    /// Datagram `index` of the batch.
    #[must_use]
    pub fn packet(&self, index: usize) -> &[u8] {
        &self.buffers[index][..self.lengths[index]]
    }

    /// Whether datagram `index` was larger than [`PACKET_CAPACITY`].
    #[must_use]
    pub fn is_truncated(&self, index: usize) -> bool {
        self.truncated[index]
    }

    /// Source address of datagram `index` (`None` for a family other than IPv4/IPv6).
    #[must_use]
    pub fn source(&self, index: usize) -> Option<SocketAddr> {
        from_storage(&self.sources[index])
    }

    /// Destination port of datagram `index` of the last [`Batch::receive_steered`].
    #[must_use]
    pub fn destination_port(&self, index: usize) -> Option<u16> {
        self.destination_ports[index]
    }

    /// Reads up to [`BATCH`] datagrams without blocking from a socket with
    /// `IP_RECVORIGDSTADDR` (and `IPV6_RECVORIGDSTADDR`) set, recording each datagram's
    /// original destination port: the steered socket receives for many ports.
    ///
    /// # Errors
    /// The socket error; `WouldBlock` when nothing is queued.
    pub fn receive_steered(&mut self, fd: RawFd) -> io::Result<usize> {
        self.receive_into(fd, true)
    }

    /// Reads up to [`BATCH`] datagrams without blocking.
    ///
    /// # Errors
    /// The socket error; `WouldBlock` when nothing is queued.
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        self.receive_into(fd, false)
    }

    fn receive_into(&mut self, fd: RawFd, with_destination: bool) -> io::Result<usize> {
        // SAFETY: iovec and mmsghdr are plain C structs; zero (null pointers, zero lengths) is
        // valid, and every field the kernel reads is set below.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (index, (iovec, header)) in iovecs.iter_mut().zip(headers.iter_mut()).enumerate() {
            iovec.iov_base = self.buffers[index].as_mut_ptr().cast();
            iovec.iov_len = PACKET_CAPACITY;
            header.msg_hdr.msg_name = std::ptr::from_mut(&mut self.sources[index]).cast();
            header.msg_hdr.msg_namelen = socklen(size_of::<libc::sockaddr_storage>());
            header.msg_hdr.msg_iov = std::ptr::from_mut(iovec);
            header.msg_hdr.msg_iovlen = 1;
            if with_destination {
                header.msg_hdr.msg_control = self.control[index].as_mut_ptr().cast();
                header.msg_hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
            }
        }
        // SAFETY: `headers` holds BATCH valid mmsghdr whose msg_name/msg_iov point into
        // `self.sources`, `self.buffers` and `iovecs`, all alive and not otherwise borrowed for
        // the duration of the call; the kernel writes at most msg_namelen/iov_len bytes into
        // them. A null timeout is allowed.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        let received = usize::try_from(received).unwrap_or(0).min(BATCH);
        for (index, header) in headers.iter().enumerate().take(received) {
            self.lengths[index] = (header.msg_len as usize).min(PACKET_CAPACITY);
            self.truncated[index] = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            if with_destination {
                self.destination_ports[index] = original_destination_port(&header.msg_hdr);
            }
        }
        self.count = received;
        Ok(received)
    }

    /// Reads one datagram without blocking into slot 0 (`recvmsg`); returns how many were read
    /// (0 or 1), like [`Batch::receive`].
    ///
    /// # Errors
    /// The socket error; `WouldBlock` when nothing is queued.
    pub fn receive_one(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iovec = libc::iovec {
            iov_base: self.buffers[0].as_mut_ptr().cast(),
            iov_len: PACKET_CAPACITY,
        };
        // SAFETY: plain C struct, zero is valid; the fields the kernel reads are set below.
        let mut header: libc::msghdr = unsafe { zeroed() };
        header.msg_name = std::ptr::from_mut(&mut self.sources[0]).cast();
        header.msg_namelen = socklen(size_of::<libc::sockaddr_storage>());
        header.msg_iov = &raw mut iovec;
        header.msg_iovlen = 1;
        // SAFETY: `header` points at `self.sources[0]` and, through `iovec`, at
        // `self.buffers[0]`, both alive and exclusively borrowed for the call; the kernel writes
        // within msg_namelen/iov_len.
        let received = unsafe { libc::recvmsg(fd, &raw mut header, libc::MSG_DONTWAIT) };
        if received < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.lengths[0] = usize::try_from(received).unwrap_or(0).min(PACKET_CAPACITY);
        self.truncated[0] = header.msg_flags & libc::MSG_TRUNC != 0;
        self.count = 1;
        Ok(1)
    }

    /// Sends the datagrams at `indices` (from the last receive) to `destination` through `fd`.
    /// Returns how many the kernel took; the rest were refused (socket buffer full).
    ///
    /// # Errors
    /// The socket error when not even the first datagram could be sent.
    pub fn send(
        &mut self,
        fd: RawFd,
        destination: SocketAddr,
        indices: &[usize],
    ) -> io::Result<usize> {
        let (mut address, address_len) = to_storage(destination);
        if let [index] = indices {
            // One datagram: sendto costs less than a one-entry sendmmsg.
            let packet = &self.buffers[*index][..self.lengths[*index]];
            // SAFETY: `packet` and `address` are alive for the call and only read; the length
            // passed is the address's own.
            let result = unsafe {
                libc::sendto(
                    fd,
                    packet.as_ptr().cast(),
                    packet.len(),
                    libc::MSG_DONTWAIT,
                    std::ptr::from_ref(&address).cast(),
                    address_len,
                )
            };
            if result < 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok(1);
        }
        // SAFETY: plain C structs, zero is valid; fields the kernel reads are set below.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let count = indices.len().min(BATCH);
        for (slot, &index) in indices.iter().take(count).enumerate() {
            iovecs[slot].iov_base = self.buffers[index].as_mut_ptr().cast();
            iovecs[slot].iov_len = self.lengths[index];
            headers[slot].msg_hdr.msg_name = std::ptr::from_mut(&mut address).cast();
            headers[slot].msg_hdr.msg_namelen = address_len;
            headers[slot].msg_hdr.msg_iov = std::ptr::from_mut(&mut iovecs[slot]);
            headers[slot].msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: headers[sent..count] are valid mmsghdr pointing at `address`, `iovecs`
            // and `self.buffers`, which stay alive and unmoved during the call; the kernel only
            // reads them (and writes msg_len).
            let result = unsafe {
                libc::sendmmsg(
                    fd,
                    headers[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if result < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return if sent == 0 { Err(error) } else { Ok(sent) };
            }
            let result = usize::try_from(result).unwrap_or(0);
            if result == 0 {
                break;
            }
            sent += result;
        }
        Ok(sent)
    }
}

/// Receives one datagram together with the TOS byte it carried on the wire, for checking DSCP
/// marking (tests, diagnostics). The socket must have `IP_RECVTOS` set
/// (`socket2::SockRef::set_recv_tos_v4`); blocks according to the socket's mode and timeout.
///
/// # Errors
/// The socket error (`WouldBlock`/`TimedOut` when a read timeout expires).
pub fn receive_with_tos(
    fd: RawFd,
    buffer: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>, Option<u8>)> {
    // SAFETY: plain C structs, zero is valid.
    let mut source: libc::sockaddr_storage = unsafe { zeroed() };
    let mut iovec = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0_u64; 16];
    // SAFETY: plain C struct, zero is valid; the fields the kernel reads are set below.
    let mut header: libc::msghdr = unsafe { zeroed() };
    header.msg_name = std::ptr::from_mut(&mut source).cast();
    header.msg_namelen = socklen(size_of::<libc::sockaddr_storage>());
    header.msg_iov = std::ptr::from_mut(&mut iovec);
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `header` points at `source`, `iovec` (→ `buffer`) and `control`, all alive and
    // exclusively borrowed for the call; the kernel writes within the lengths given.
    let received = unsafe { libc::recvmsg(fd, &raw mut header, 0) };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut tos = None;
    // SAFETY: `header` was filled by recvmsg, so msg_control/msg_controllen describe valid
    // control messages inside `control`; CMSG_FIRSTHDR/CMSG_NXTHDR stay within that length
    // and return null at the end.
    let mut message = unsafe { libc::CMSG_FIRSTHDR(&raw const header) };
    while !message.is_null() {
        // SAFETY: non-null pointers from CMSG_FIRSTHDR/NXTHDR point at a complete cmsghdr.
        let cmsg = unsafe { &*message };
        if cmsg.cmsg_level == libc::IPPROTO_IP && cmsg.cmsg_type == libc::IP_TOS {
            // SAFETY: an IP_TOS control message carries at least one data byte.
            tos = Some(unsafe { *libc::CMSG_DATA(message) });
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        message = unsafe { libc::CMSG_NXTHDR(&raw const header, message) };
    }
    Ok((
        usize::try_from(received).unwrap_or(0),
        from_storage(&source),
        tos,
    ))
}

/// The port of an `IP_ORIGDSTADDR`/`IPV6_ORIGDSTADDR` control message in a received header.
fn original_destination_port(header: &libc::msghdr) -> Option<u16> {
    // SAFETY: `header` was filled by the kernel, so msg_control/msg_controllen describe valid
    // control messages (or none: a null msg_control gives a null first header);
    // CMSG_FIRSTHDR/CMSG_NXTHDR stay within that length and return null at the end.
    let mut message = unsafe { libc::CMSG_FIRSTHDR(header) };
    while !message.is_null() {
        // SAFETY: non-null pointers from CMSG_FIRSTHDR/NXTHDR point at a complete cmsghdr.
        let cmsg = unsafe { &*message };
        let original = (cmsg.cmsg_level == libc::IPPROTO_IP
            && cmsg.cmsg_type == libc::IP_ORIGDSTADDR)
            || (cmsg.cmsg_level == libc::IPPROTO_IPV6 && cmsg.cmsg_type == libc::IPV6_ORIGDSTADDR);
        // Both carry a sockaddr_in(6), whose port sits at bytes 2..4 in network order.
        // SAFETY: CMSG_LEN(0) is the header size; the data is read only when the message is
        // long enough to hold the port.
        if original && cmsg.cmsg_len as usize >= unsafe { libc::CMSG_LEN(4) } as usize {
            // SAFETY: the data holds at least 4 bytes (checked above).
            let data = unsafe { std::slice::from_raw_parts(libc::CMSG_DATA(message), 4) };
            return Some(u16::from_be_bytes([data[2], data[3]]));
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        message = unsafe { libc::CMSG_NXTHDR(header, message) };
    }
    None
}

/// Asks for each datagram's original destination address (`IP_ORIGDSTADDR`, and
/// `IPV6_ORIGDSTADDR` on an IPv6 socket) as a control message.
///
/// # Errors
/// `setsockopt`'s error.
pub fn set_receive_original_destination(socket: &socket2::Socket, ipv6: bool) -> io::Result<()> {
    let on: libc::c_int = 1;
    let mut options = vec![(libc::IPPROTO_IP, libc::IP_RECVORIGDSTADDR)];
    if ipv6 {
        options.push((libc::IPPROTO_IPV6, libc::IPV6_RECVORIGDSTADDR));
    }
    for (level, name) in options {
        // SAFETY: passes a live c_int and its size; the socket descriptor is valid while
        // `socket` is borrowed.
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                std::ptr::from_ref(&on).cast(),
                socklen(size_of::<libc::c_int>()),
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets the receive buffer to `bytes`, above `net.core.rmem_max` where the process may
/// (`SO_RCVBUFFORCE` needs CAP_NET_ADMIN), else as large as the limit allows.
pub fn force_receive_buffer(socket: &socket2::Socket, bytes: usize) {
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: passes a live c_int and its size on a valid descriptor.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::from_ref(&size).cast(),
            socklen(size_of::<libc::c_int>()),
        )
    };
    if result < 0 {
        let _ = socket.set_recv_buffer_size(bytes);
    }
}

fn socklen(len: usize) -> libc::socklen_t {
    libc::socklen_t::try_from(len).unwrap_or(libc::socklen_t::MAX)
}

fn from_storage(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; sockaddr_storage is
            // larger than and aligned for every sockaddr type.
            let v4 = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_storage(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: plain C struct, zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    match address {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in; we write a
            // complete sockaddr_in into its start.
            let out = unsafe { &mut *std::ptr::from_mut(&mut storage).cast::<libc::sockaddr_in>() };
            out.sin_family = libc::AF_INET as libc::sa_family_t;
            out.sin_port = v4.port().to_be();
            out.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            (storage, socklen(size_of::<libc::sockaddr_in>()))
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let out =
                unsafe { &mut *std::ptr::from_mut(&mut storage).cast::<libc::sockaddr_in6>() };
            out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            out.sin6_port = v6.port().to_be();
            out.sin6_addr.s6_addr = v6.ip().octets();
            out.sin6_flowinfo = v6.flowinfo();
            out.sin6_scope_id = v6.scope_id();
            (storage, socklen(size_of::<libc::sockaddr_in6>()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn address_conversion_round_trips() {
        for address in ["127.0.0.1:30000", "[::1]:4000", "[fe80::1%2]:5"] {
            let address: SocketAddr = address.parse().unwrap();
            let (storage, _) = to_storage(address);
            assert_eq!(from_storage(&storage), Some(address));
        }
    }

    #[test]
    fn receives_and_sends_a_batch() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        for n in 0..5_u8 {
            sender
                .send_to(&[n; 100], relay.local_addr().unwrap())
                .unwrap();
        }
        let mut batch = Batch::new();
        // Loopback delivers during send_to, so all five are queued now.
        assert_eq!(batch.receive(relay.as_raw_fd()).unwrap(), 5);
        assert_eq!(batch.source(3), Some(sender.local_addr().unwrap()));
        assert_eq!(batch.packet(4), &[4; 100]);
        let sent = batch
            .send(relay.as_raw_fd(), sink.local_addr().unwrap(), &[1, 3])
            .unwrap();
        assert_eq!(sent, 2);
        let mut buffer = [0_u8; 200];
        let (len, from) = sink.recv_from(&mut buffer).unwrap();
        assert_eq!(
            (&buffer[..len], from),
            (&[1_u8; 100][..], relay.local_addr().unwrap())
        );
        let (len, _) = sink.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..len], &[3_u8; 100]);
    }

    #[test]
    fn empty_socket_would_block() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let error = Batch::new().receive(relay.as_raw_fd()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        let error = Batch::new().receive_one(relay.as_raw_fd()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn receives_and_sends_one_datagram() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .send_to(&[7; 60], relay.local_addr().unwrap())
            .unwrap();
        sender
            .send_to(&[8; 3000], relay.local_addr().unwrap())
            .unwrap();
        let mut batch = Batch::new();
        assert_eq!(batch.receive_one(relay.as_raw_fd()).unwrap(), 1);
        assert_eq!(batch.source(0), Some(sender.local_addr().unwrap()));
        assert_eq!(batch.packet(0), &[7; 60]);
        assert!(!batch.is_truncated(0));
        let sent = batch
            .send(relay.as_raw_fd(), sink.local_addr().unwrap(), &[0])
            .unwrap();
        assert_eq!(sent, 1);
        let mut buffer = [0_u8; 100];
        let (len, from) = sink.recv_from(&mut buffer).unwrap();
        assert_eq!(
            (&buffer[..len], from),
            (&[7_u8; 60][..], relay.local_addr().unwrap())
        );
        // Larger than the buffer: flagged, so the relay drops it.
        assert_eq!(batch.receive_one(relay.as_raw_fd()).unwrap(), 1);
        assert!(batch.is_truncated(0));
    }

    #[test]
    fn epoll_reports_a_readable_socket_until_it_is_read_and_the_eventfd_wakes() {
        let epoll = Epoll::new().unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let waker = EventFd::new().unwrap();
        epoll.add(socket.as_raw_fd(), 5).unwrap();
        epoll.add(waker.raw(), 9).unwrap();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        assert_eq!(epoll.wait(&mut events, Some(0)).unwrap(), 0);
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"x", socket.local_addr().unwrap())
            .unwrap();
        // Level-triggered: reported on every wait until read.
        for _ in 0..2 {
            assert_eq!(epoll.wait(&mut events, Some(1000)).unwrap(), 1);
            assert_eq!({ events[0].u64 }, 5);
        }
        socket.recv(&mut [0; 8]).unwrap();
        assert_eq!(epoll.wait(&mut events, Some(0)).unwrap(), 0);
        waker.wake().unwrap();
        assert_eq!(epoll.wait(&mut events, Some(1000)).unwrap(), 1);
        assert_eq!({ events[0].u64 }, 9);
        waker.clear();
        assert_eq!(epoll.wait(&mut events, Some(0)).unwrap(), 0);
        epoll.delete(socket.as_raw_fd()).unwrap();
    }
}
