//! Batched UDP I/O: `recvmmsg(2)` and `sendmmsg(2)` move up to [`BATCH`] datagrams per system
//! call. A one-syscall-per-packet relay spends most of its CPU on syscall entry and exit, so
//! this is where the relay beats a plain recvfrom/sendto loop (and rtpengine's userspace path).
//! Neither std, socket2 nor mio wrap these calls, hence the only unsafe code of the crate.
#![allow(
    unsafe_code,
    reason = "recvmmsg/sendmmsg need raw libc calls; every block states its invariants"
)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams moved per system call.
pub const BATCH: usize = 32;

/// Largest datagram relayed; bigger ones arrive truncated and are dropped as errors.
pub const PACKET_CAPACITY: usize = 2048;

/// Receive buffers for one batch, reused for every socket (the relay is single-threaded per
/// data-plane thread) and sent from in place, so a packet is never copied.
pub struct Batch {
    buffers: Box<[[u8; PACKET_CAPACITY]; BATCH]>,
    lengths: [usize; BATCH],
    truncated: [bool; BATCH],
    sources: Box<[libc::sockaddr_storage; BATCH]>,
    count: usize,
}

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

    /// Reads up to [`BATCH`] datagrams without blocking.
    ///
    /// # Errors
    /// The socket error; `WouldBlock` when nothing is queued.
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
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
        }
        self.count = received;
        Ok(received)
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
    }
}
