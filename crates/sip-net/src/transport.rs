//! The transport layer: UDP sockets, TCP and TLS listeners, outbound connections and the
//! connection table, behind one cloneable [`Transports`] handle.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TransportConfig;
use crate::connection::parse;
use crate::connection::{ConnectionCommand, ConnectionEntry, ConnectionTable, run_connection};
use crate::error::SendError;
use crate::event::{ReceivedMessage, TransportEvent};
use crate::flow::{ConnectionId, Destination, Flow, TransportProtocol};
use crate::stateless::stateless_error_response;
use sip_message::ParseError;

/// Largest UDP payload (RFC 768 length field); every datagram fits in a buffer this size.
const MAX_DATAGRAM: usize = 65_535;

/// State shared by the handle and every socket and connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: TransportConfig,
    pub(crate) events: mpsc::Sender<TransportEvent>,
    connections: Mutex<ConnectionTable>,
    next_connection: AtomicU64,
    /// Bound UDP sockets with their local addresses (kept to spare a syscall per send).
    udp_sockets: Mutex<Vec<(SocketAddr, Arc<UdpSocket>)>>,
    tls_client: Mutex<Option<Arc<rustls::ClientConfig>>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    pub(crate) fn lock_connections(&self) -> MutexGuard<'_, ConnectionTable> {
        // A panic while holding the lock cannot leave the table half-updated (each method is a
        // couple of map operations), so a poisoned lock is still usable.
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn<F>(self: &Arc<Self>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task).abort_handle();
        let mut tasks = lock(&self.tasks);
        tasks.retain(|task| !task.is_finished());
        tasks.push(handle);
    }

    fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }

    /// Enters a connection in the table and starts its task.
    fn start_connection<S>(
        self: &Arc<Self>,
        stream: S,
        id: ConnectionId,
        flow: Flow,
    ) -> mpsc::Sender<ConnectionCommand>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, receiver) = mpsc::channel(self.config.connection_queue_length);
        self.lock_connections().insert(ConnectionEntry {
            id,
            flow,
            commands: sender.clone(),
        });
        tracing::debug!(%flow.remote, connection = ?flow.connection, transport = %flow.transport, "connection open");
        self.spawn(run_connection(stream, flow, Arc::clone(self), receiver));
        sender
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Aborts every task when the last [`Transports`] handle goes away.
#[derive(Debug)]
struct ShutdownGuard(Arc<Shared>);

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        for task in lock(&self.0.tasks).drain(..) {
            task.abort();
        }
    }
}

/// Handle to the transport layer. Clones share the sockets; dropping the last clone stops every
/// socket and connection task.
#[derive(Debug, Clone)]
pub struct Transports {
    shared: Arc<Shared>,
    _guard: Arc<ShutdownGuard>,
}

impl Transports {
    /// Creates an empty transport layer and the channel on which it reports received messages
    /// and closed connections.
    pub fn new(config: TransportConfig) -> (Self, mpsc::Receiver<TransportEvent>) {
        let (events, receiver) = mpsc::channel(config.inbound_queue_length.max(1));
        let shared = Arc::new(Shared {
            config,
            events,
            connections: Mutex::default(),
            next_connection: AtomicU64::new(1),
            udp_sockets: Mutex::default(),
            tls_client: Mutex::default(),
            tasks: Mutex::default(),
        });
        let guard = Arc::new(ShutdownGuard(Arc::clone(&shared)));
        (
            Transports {
                shared,
                _guard: guard,
            },
            receiver,
        )
    }

    pub fn config(&self) -> &TransportConfig {
        &self.shared.config
    }

    /// Binds a UDP socket (IPv4 or IPv6; port 0 picks a free port) and starts receiving on it.
    /// Returns the bound address.
    pub fn bind_udp(&self, address: SocketAddr) -> io::Result<SocketAddr> {
        let config = &self.shared.config;
        let socket = Socket::new(
            Domain::for_address(address),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        socket.set_reuse_address(true)?;
        if address.is_ipv6() {
            // Keep IPv4 on its own socket so a flow's local address is always exact.
            socket.set_only_v6(true)?;
        }
        if let Some(size) = config.udp_receive_buffer_size {
            socket.set_recv_buffer_size(size)?;
        }
        if let Some(size) = config.udp_send_buffer_size {
            socket.set_send_buffer_size(size)?;
        }
        set_type_of_service(&socket, address, config.type_of_service)?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        let socket = Arc::new(UdpSocket::from_std(socket.into())?);
        let local = socket.local_addr()?;
        lock(&self.shared.udp_sockets).push((local, Arc::clone(&socket)));
        self.shared
            .spawn(receive_datagrams(socket, local, Arc::clone(&self.shared)));
        Ok(local)
    }

    /// Listens for TCP connections; each accepted connection gets its own task.
    pub fn listen_tcp(&self, address: SocketAddr) -> io::Result<SocketAddr> {
        let listener = stream_listener(address, self.shared.config.type_of_service)?;
        let local = listener.local_addr()?;
        self.shared
            .spawn(accept_connections(listener, None, Arc::clone(&self.shared)));
        Ok(local)
    }

    /// Listens for TLS connections (RFC 3261 §26.2: SIP over TLS on a stream listener).
    pub fn listen_tls(
        &self,
        address: SocketAddr,
        server: Arc<rustls::ServerConfig>,
    ) -> io::Result<SocketAddr> {
        let listener = stream_listener(address, self.shared.config.type_of_service)?;
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(server);
        self.shared.spawn(accept_connections(
            listener,
            Some(acceptor),
            Arc::clone(&self.shared),
        ));
        Ok(local)
    }

    /// Sets how outbound TLS connections verify servers.
    pub fn set_tls_client(&self, client: Arc<rustls::ClientConfig>) {
        *lock(&self.shared.tls_client) = Some(client);
    }

    /// Runs an already connected byte stream as a SIP connection (framing, keep-alives, idle
    /// timeout, connection table), e.g. a stream accepted elsewhere. Returns its flow.
    pub fn adopt_connection<S>(
        &self,
        stream: S,
        transport: TransportProtocol,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Flow
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let id = self.shared.next_connection_id();
        let flow = Flow {
            transport,
            local,
            remote,
            connection: Some(id),
        };
        self.shared.start_connection(stream, id, flow);
        flow
    }

    /// Sends one serialised message. Streams reuse an open connection to the destination (the
    /// flow's own connection first) and open one only when none is left. Returns the flow used.
    pub async fn send(&self, destination: &Destination, message: Bytes) -> Result<Flow, SendError> {
        match destination.transport() {
            TransportProtocol::Udp => self.send_datagram(destination, message).await,
            TransportProtocol::Tcp | TransportProtocol::Tls => {
                self.send_on_stream(destination, message).await
            }
        }
    }

    /// Closes a connection after the messages already queued on it are written.
    pub async fn close(&self, connection: ConnectionId) {
        let commands = self
            .shared
            .lock_connections()
            .get(connection)
            .map(|entry| entry.commands.clone());
        if let Some(commands) = commands {
            let _ = commands.send(ConnectionCommand::Close).await;
        }
    }

    /// Whether a connection is still open.
    pub fn is_connection_open(&self, connection: ConnectionId) -> bool {
        self.shared.lock_connections().get(connection).is_some()
    }

    /// Whether sending to `destination` can go out without opening a connection first: always
    /// for UDP, for streams when a connection to it (or the flow's own) is open.
    pub fn can_send_without_connecting(&self, destination: &Destination) -> bool {
        let transport = destination.transport();
        if !transport.is_stream() {
            return true;
        }
        let table = self.shared.lock_connections();
        if let Destination::Flow(Flow {
            connection: Some(id),
            ..
        }) = destination
            && table.get(*id).is_some()
        {
            return true;
        }
        table.find(transport, destination.remote()).is_some()
    }

    /// Number of open TCP and TLS connections.
    pub fn connection_count(&self) -> usize {
        self.shared.lock_connections().len()
    }

    /// Flows of all open connections.
    pub fn connections(&self) -> Vec<Flow> {
        self.shared.lock_connections().flows()
    }

    async fn send_datagram(
        &self,
        destination: &Destination,
        message: Bytes,
    ) -> Result<Flow, SendError> {
        let remote = destination.remote();
        let socket = {
            let sockets = lock(&self.shared.udp_sockets);
            let wanted_local = match destination {
                Destination::Flow(flow) => Some(flow.local),
                Destination::Address { .. } => None,
            };
            sockets
                .iter()
                .find(|(local, _)| Some(*local) == wanted_local)
                .or_else(|| {
                    sockets
                        .iter()
                        .find(|(local, _)| local.is_ipv4() == remote.is_ipv4())
                })
                .cloned()
        };
        let (local, socket) = socket.ok_or(SendError::NoSocket {
            transport: TransportProtocol::Udp,
            remote,
        })?;
        let io_error = |source| SendError::Io { remote, source };
        socket.send_to(&message, remote).await.map_err(io_error)?;
        Ok(Flow {
            transport: TransportProtocol::Udp,
            local,
            remote,
            connection: None,
        })
    }

    async fn send_on_stream(
        &self,
        destination: &Destination,
        message: Bytes,
    ) -> Result<Flow, SendError> {
        let transport = destination.transport();
        let remote = destination.remote();
        let existing = {
            let table = self.shared.lock_connections();
            let by_flow = match destination {
                Destination::Flow(flow) => flow.connection.and_then(|id| table.get(id)),
                Destination::Address { .. } => None,
            };
            by_flow
                .or_else(|| table.find(transport, remote))
                .map(|entry| (entry.id, entry.flow, entry.commands.clone()))
        };
        let mut message = message;
        if let Some((id, flow, commands)) = existing {
            match commands.send(ConnectionCommand::Send(message)).await {
                Ok(()) => return Ok(flow),
                // The connection ended meanwhile: RFC 3261 §18.2.2 says to open a new one.
                Err(mpsc::error::SendError(command)) => match command {
                    ConnectionCommand::Send(unsent) => message = unsent,
                    // Only `Send` was offered, so only `Send` comes back.
                    ConnectionCommand::Close => return Err(SendError::ConnectionClosed(id)),
                },
            }
        }
        let server_name = match destination {
            Destination::Address { server_name, .. } => server_name.clone(),
            Destination::Flow(_) => None,
        };
        let (flow, connection, commands) = self.connect(transport, remote, server_name).await?;
        commands
            .send(ConnectionCommand::Send(message))
            .await
            .map_err(|_| SendError::ConnectionClosed(connection))?;
        Ok(flow)
    }

    async fn connect(
        &self,
        transport: TransportProtocol,
        remote: SocketAddr,
        server_name: Option<String>,
    ) -> Result<(Flow, ConnectionId, mpsc::Sender<ConnectionCommand>), SendError> {
        let config = &self.shared.config;
        let io_error = |source| SendError::Io { remote, source };
        let connector = if transport == TransportProtocol::Tls {
            Some(TlsConnector::from(
                lock(&self.shared.tls_client)
                    .clone()
                    .ok_or(SendError::NoTlsClient)?,
            ))
        } else {
            None
        };
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(remote))
            .await
            .map_err(|_| SendError::ConnectTimeout { remote })?
            .map_err(io_error)?;
        stream.set_nodelay(true).map_err(io_error)?;
        let connection = self.shared.next_connection_id();
        let flow = Flow {
            transport,
            local: stream.local_addr().map_err(io_error)?,
            remote,
            connection: Some(connection),
        };
        let commands = match connector {
            None => self.shared.start_connection(stream, connection, flow),
            Some(connector) => {
                let name = match server_name {
                    Some(name) => ServerName::try_from(name.clone())
                        .map_err(|_| SendError::InvalidServerName(name))?,
                    None => ServerName::IpAddress(remote.ip().into()),
                };
                let handshake = tokio::time::timeout(
                    config.tls_handshake_timeout,
                    connector.connect(name, stream),
                )
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                .map_err(|source| SendError::TlsHandshake { remote, source })?;
                self.shared.start_connection(handshake, connection, flow)
            }
        };
        Ok((flow, connection, commands))
    }
}

fn set_type_of_service(socket: &Socket, address: SocketAddr, tos: Option<u32>) -> io::Result<()> {
    match (tos, address) {
        (None, _) => Ok(()),
        (Some(tos), SocketAddr::V4(_)) => socket.set_tos_v4(tos),
        (Some(tos), SocketAddr::V6(_)) => socket.set_tclass_v6(tos),
    }
}

fn stream_listener(address: SocketAddr, tos: Option<u32>) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    set_type_of_service(&socket, address, tos)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Receive loop of one UDP socket. RFC 3261 §18.3: a datagram is one message; its body ends at
/// `Content-Length`; a request whose body is shorter gets a 400, a broken response is dropped.
async fn receive_datagrams(socket: Arc<UdpSocket>, local: SocketAddr, shared: Arc<Shared>) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let (length, remote) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                // ICMP errors from earlier sends surface here on some systems; the socket
                // itself is still good.
                tracing::debug!(%local, %error, "UDP receive error");
                continue;
            }
        };
        // Copied out, so a message the application keeps pins only its own bytes, not a
        // 64 KiB receive buffer.
        let datagram = Bytes::copy_from_slice(&buffer[..length]);
        let flow = Flow {
            transport: TransportProtocol::Udp,
            local,
            remote,
            connection: None,
        };
        let event = match parse(datagram.clone(), &shared, remote) {
            Ok(message) => TransportEvent::Message(Box::new(ReceivedMessage { flow, message })),
            // CRLF-only datagrams are keep-alives (RFC 5626 §3.5.1 uses STUN on UDP, but
            // CRLF pings are common in the field); nothing to report.
            Err(ParseError::Empty) => continue,
            Err(error) => {
                let response = stateless_error_response(
                    &datagram,
                    error.status_code(),
                    &error.reason_phrase(),
                );
                let answered = match response {
                    Some(response) => socket.send_to(&response, remote).await.is_ok(),
                    None => false,
                };
                tracing::debug!(%remote, %error, answered, "malformed datagram");
                TransportEvent::Rejected {
                    flow,
                    error,
                    answered,
                }
            }
        };
        if shared.events.send(event).await.is_err() {
            return;
        }
    }
}

/// Accept loop of one TCP or TLS listener.
async fn accept_connections(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let transport = if tls.is_some() {
        TransportProtocol::Tls
    } else {
        TransportProtocol::Tcp
    };
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = shared.next_connection_id();
        let flow = Flow {
            transport,
            local,
            remote,
            connection: Some(id),
        };
        match &tls {
            None => {
                shared.start_connection(stream, id, flow);
            }
            Some(acceptor) => {
                // The handshake runs in its own task so one slow client cannot stall accepting.
                let acceptor = acceptor.clone();
                let handshake_shared = Arc::clone(&shared);
                shared.spawn(async move {
                    let limit = handshake_shared.config.tls_handshake_timeout;
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            handshake_shared.start_connection(stream, id, flow);
                        }
                        Ok(Err(error)) => tracing::debug!(%remote, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}
