//! [`SipEndpoint`]: the transports plus one `sip-core` transaction layer, driven by one task.
//!
//! The task feeds received messages into the layer (RFC 3261 §17.1.3, §17.2.3 matching), sends
//! what the layer emits through the right transport and connection, sleeps until the layer's next
//! timer, and passes transaction-user events to the application over a channel.

use std::collections::HashMap;
use std::net::SocketAddr;

use sip_core::response_routing::{self, Host, ResponseTarget, TopVia, Transport};
use sip_core::transaction::{
    Event, Incoming, LayerConfig, Reliability, TransactionError, TransactionId, TransactionLayer,
};
use sip_message::{Message, ParseError};
use tokio::sync::{mpsc, oneshot};

use crate::config::TransportConfig;
use crate::error::SendError;
use crate::event::{CloseReason, ReceivedMessage, TransportEvent};
use crate::flow::{ConnectionId, Destination, Flow, TransportProtocol};
use crate::stateless::stateless_error_response;
use crate::transport::Transports;

/// Settings of a [`SipEndpoint`].
#[derive(Debug, Clone, Default)]
pub struct EndpointConfig {
    pub transport: TransportConfig,
    pub transactions: LayerConfig,
}

/// What the endpoint tells the application (the transaction user, RFC 3261 §17).
#[derive(Debug, Clone)]
pub enum EndpointEvent {
    /// A new request created server transaction `transaction`; answer it with
    /// [`SipEndpoint::send_response`].
    Request {
        transaction: TransactionId,
        request: Message,
        flow: Flow,
    },
    /// A CANCEL, in its own server transaction; `invite` is the INVITE transaction it matches
    /// (RFC 3261 §9.2), `None` when there is none (answer 481).
    Cancel {
        transaction: TransactionId,
        request: Message,
        invite: Option<TransactionId>,
        flow: Flow,
    },
    /// An event of a transaction: responses to our requests, ACK of a 2xx, timeouts, transport
    /// errors, termination.
    Transaction {
        transaction: TransactionId,
        event: Event,
    },
    /// An ACK that matched no transaction: the ACK of a 2xx after its INVITE transaction ended
    /// (RFC 3261 §17.2.3, RFC 6026); it belongs to the dialog.
    UnmatchedAck { request: Message, flow: Flow },
    /// A response that matched no client transaction (RFC 3261 §18.1.2).
    StrayResponse { response: Message, flow: Flow },
    /// A message the transaction layer could not match, e.g. a request without a usable branch
    /// or CSeq. Requests were answered with a stateless 400 when possible.
    Unmatchable { flow: Flow, error: TransactionError },
    /// Bytes from the network that are no valid message; see [`TransportEvent::Rejected`].
    Rejected {
        flow: Flow,
        error: ParseError,
        answered: bool,
    },
    /// A TCP or TLS connection closed.
    ConnectionClosed { flow: Flow, reason: CloseReason },
}

/// Why the endpoint refused a request from the application.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    #[error(transparent)]
    Send(#[from] SendError),
    /// The endpoint task has stopped.
    #[error("the endpoint has stopped")]
    Stopped,
}

type Reply<T> = oneshot::Sender<Result<T, EndpointError>>;

#[derive(Debug)]
enum Command {
    Request {
        request: Message,
        destination: Destination,
        reply: Reply<TransactionId>,
    },
    Response {
        transaction: TransactionId,
        response: Message,
        reply: Reply<()>,
    },
    Cancel {
        invite: TransactionId,
        reply: Reply<TransactionId>,
    },
}

/// A SIP endpoint: transports, the transaction layer and the task between them.
///
/// Dropping it stops the task and closes every socket and connection.
#[derive(Debug)]
pub struct SipEndpoint {
    transports: Transports,
    commands: mpsc::Sender<Command>,
    events: mpsc::UnboundedReceiver<EndpointEvent>,
}

impl SipEndpoint {
    /// Creates the endpoint and starts its task. Bind sockets through [`Self::transports`].
    pub fn new(config: EndpointConfig) -> Self {
        let queue_length = config.transport.inbound_queue_length.max(1);
        let (transports, transport_events) = Transports::new(config.transport);
        let (commands, command_receiver) = mpsc::channel(queue_length);
        // Unbounded: the application answers requests through the same task that delivers
        // events, so a full event queue could leave both waiting on each other. Backpressure
        // comes from the bounded transport queue in front of the task instead.
        let (event_sender, events) = mpsc::unbounded_channel();
        let (completions, completion_receiver) = mpsc::unbounded_channel();
        let driver = Driver {
            layer: TransactionLayer::new(config.transactions),
            transports: transports.clone(),
            events: event_sender,
            routes: HashMap::new(),
            routes_by_remote: HashMap::new(),
            completions,
        };
        tokio::spawn(driver.run(transport_events, command_receiver, completion_receiver));
        SipEndpoint {
            transports,
            commands,
            events,
        }
    }

    /// The transports, to bind sockets and listeners or to send outside any transaction.
    pub fn transports(&self) -> &Transports {
        &self.transports
    }

    /// The next event for the application; `None` once the endpoint task has stopped.
    pub async fn recv(&mut self) -> Option<EndpointEvent> {
        self.events.recv().await
    }

    /// Sends a request in a new client transaction (RFC 3261 §17.1). The top Via must carry a
    /// fresh branch and name the transport of `destination`.
    pub async fn send_request(
        &self,
        request: Message,
        destination: Destination,
    ) -> Result<TransactionId, EndpointError> {
        self.call(|reply| Command::Request {
            request,
            destination,
            reply,
        })
        .await
    }

    /// Sends a response in the server transaction of the request (RFC 3261 §17.2); it goes back
    /// the way the request came, on the same connection for TCP and TLS (§18.2.2).
    pub async fn send_response(
        &self,
        transaction: TransactionId,
        response: Message,
    ) -> Result<(), EndpointError> {
        self.call(|reply| Command::Response {
            transaction,
            response,
            reply,
        })
        .await
    }

    /// Cancels a client INVITE transaction (RFC 3261 §9.1); returns the CANCEL's transaction.
    pub async fn send_cancel(&self, invite: TransactionId) -> Result<TransactionId, EndpointError> {
        self.call(|reply| Command::Cancel { invite, reply }).await
    }

    /// Sends a message outside any transaction: the ACK of a 2xx (RFC 3261 §13.2.2.4), a
    /// stateless response or a statelessly forwarded message.
    pub async fn send_stateless(
        &self,
        message: &Message,
        destination: &Destination,
    ) -> Result<Flow, SendError> {
        self.transports.send(destination, message.to_bytes()).await
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, EndpointError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| EndpointError::Stopped)?;
        answer.await.map_err(|_| EndpointError::Stopped)?
    }
}

/// The endpoint task's state.
struct Driver {
    layer: TransactionLayer,
    transports: Transports,
    events: mpsc::UnboundedSender<EndpointEvent>,
    /// Where each live transaction's messages go.
    routes: HashMap<TransactionId, Route>,
    /// Route per address the layer knows, for retransmissions fired by timers, whose transmits
    /// do not name their transaction. Rebuilt from `routes` when it grows stale.
    routes_by_remote: HashMap<SocketAddr, Route>,
    /// Results of sends that had to open a connection, which run in their own tasks so a slow
    /// connect never stalls the other transactions.
    completions: mpsc::UnboundedSender<Completion>,
}

/// How to reach the peer of one transaction.
#[derive(Debug, Clone)]
struct Route {
    /// The address the transaction layer sends to (its `Transmit::destination`).
    layer_destination: SocketAddr,
    destination: Destination,
    /// For a response whose connection has closed: where RFC 3261 §18.2.2 says to open a new
    /// one (`received` or sent-by at the Via port).
    fallback: Option<Destination>,
}

impl Route {
    fn direct(destination: Destination) -> Self {
        Route {
            layer_destination: destination.remote(),
            destination,
            fallback: None,
        }
    }

    /// Where the responses of a server transaction go (RFC 3261 §18.2.2, RFC 3581 §4): back on
    /// the request's connection, else to the address the stamped top Via names. A Via naming a
    /// host by name falls back to the source address, as this crate does no DNS (RFC 3263).
    fn for_request(flow: Flow, request: &Message) -> Self {
        let mut route = Route::direct(Destination::Flow(flow));
        let Ok(via) = TopVia::from_message(request) else {
            return route;
        };
        let address = |target: ResponseTarget| match target {
            ResponseTarget::Address {
                host: Host::Ip(ip),
                port,
                transport,
            } => Some((SocketAddr::new(ip, port), transport)),
            ResponseTarget::Address { .. } | ResponseTarget::SameConnection => None,
        };
        if flow.transport.is_stream() {
            route.fallback = address(response_routing::response_target(&via, false)).map(
                |(remote, transport)| Destination::Address {
                    transport: match transport {
                        Transport::Tls => TransportProtocol::Tls,
                        _ => flow.transport,
                    },
                    remote,
                    server_name: None,
                },
            );
        } else if let Some((remote, _)) = address(response_routing::response_target(&via, true)) {
            // Over UDP the answer leaves from the socket the request came to.
            route.destination = Destination::Flow(Flow { remote, ..flow });
        }
        route
    }
}

/// The outcome of a send that ran in its own task.
#[derive(Debug)]
struct Completion {
    transaction: TransactionId,
    result: Result<Flow, SendError>,
}

/// `std::time::Instant` as the transaction layer wants it, taken from tokio's clock so paused
/// test time drives the transaction timers too.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn reliability(transport: TransportProtocol) -> Reliability {
    if transport.is_stream() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}

impl Driver {
    async fn run(
        mut self,
        mut transport_events: mpsc::Receiver<TransportEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut completions: mpsc::UnboundedReceiver<Completion>,
    ) {
        loop {
            let deadline = self.layer.poll_timeout();
            let timer = async {
                match deadline {
                    Some(deadline) => {
                        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = transport_events.recv() => match event {
                    Some(event) => self.handle_transport_event(event).await,
                    None => return,
                },
                command = commands.recv() => match command {
                    Some(command) => self.handle_command(command).await,
                    // The application dropped the endpoint.
                    None => return,
                },
                Some(completion) = completions.recv() => self.handle_completion(completion).await,
                () = timer => {
                    self.layer.handle_timeout(now());
                    self.flush(None).await;
                }
            }
        }
    }

    async fn handle_command(&mut self, command: Command) {
        match command {
            Command::Request {
                request,
                destination,
                reply,
            } => {
                let result = self.layer.send_request(
                    now(),
                    request,
                    destination.remote(),
                    reliability(destination.transport()),
                );
                if let Ok(id) = result {
                    self.add_route(id, Route::direct(destination));
                    self.flush(Some(id)).await;
                }
                let _ = reply.send(result.map_err(EndpointError::from));
            }
            Command::Response {
                transaction,
                response,
                reply,
            } => {
                let result = self.layer.send_response(now(), transaction, response);
                self.flush(Some(transaction)).await;
                let _ = reply.send(result.map_err(EndpointError::from));
            }
            Command::Cancel { invite, reply } => {
                let result = self.layer.send_cancel(now(), invite);
                if let Ok(cancel) = result
                    && let Some(route) = self.routes.get(&invite).cloned()
                {
                    self.add_route(cancel, route);
                }
                // The CANCEL goes to the INVITE's destination (RFC 3261 §9.1).
                self.flush(Some(invite)).await;
                let _ = reply.send(result.map_err(EndpointError::from));
            }
        }
    }

    async fn handle_transport_event(&mut self, event: TransportEvent) {
        let event = match event {
            TransportEvent::Message(received) => match self.handle_message(*received).await {
                Some(event) => event,
                None => return,
            },
            TransportEvent::Rejected {
                flow,
                error,
                answered,
            } => EndpointEvent::Rejected {
                flow,
                error,
                answered,
            },
            TransportEvent::ConnectionClosed { flow, reason } => {
                EndpointEvent::ConnectionClosed { flow, reason }
            }
        };
        self.deliver(event).await;
    }

    /// Runs a received message through the layer; returns what the application must see
    /// directly (transaction events come through `flush`).
    async fn handle_message(&mut self, received: ReceivedMessage) -> Option<EndpointEvent> {
        let ReceivedMessage { flow, message } = received;
        let bytes = message.is_request().then(|| message.as_bytes().clone());
        let incoming = match self.layer.handle_incoming(
            now(),
            message,
            flow.remote,
            reliability(flow.transport),
        ) {
            Ok(incoming) => incoming,
            Err(error) => {
                if let Some(bytes) = bytes {
                    let reason = format!("Bad Request - {error}");
                    if let Some(response) = stateless_error_response(&bytes, 400, &reason) {
                        let _ = self
                            .transports
                            .send(&Destination::Flow(flow), response)
                            .await;
                    }
                }
                return Some(EndpointEvent::Unmatchable { flow, error });
            }
        };
        let (transaction, event) = match incoming {
            Incoming::NewRequest { id, request } => (
                Some(id),
                Some(EndpointEvent::Request {
                    transaction: id,
                    request,
                    flow,
                }),
            ),
            Incoming::Cancel {
                id,
                request,
                invite,
            } => (
                Some(id),
                Some(EndpointEvent::Cancel {
                    transaction: id,
                    request,
                    invite,
                    flow,
                }),
            ),
            Incoming::Absorbed(id) | Incoming::Response(id) => (Some(id), None),
            Incoming::UnmatchedAck(request) => {
                (None, Some(EndpointEvent::UnmatchedAck { request, flow }))
            }
            Incoming::StrayResponse(response) => {
                (None, Some(EndpointEvent::StrayResponse { response, flow }))
            }
        };
        if let Some(id) = transaction
            && !self.routes.contains_key(&id)
        {
            let route = match &event {
                Some(
                    EndpointEvent::Request { request, .. } | EndpointEvent::Cancel { request, .. },
                ) => Route::for_request(flow, request),
                _ => Route::direct(Destination::Flow(flow)),
            };
            self.add_route(id, route);
        }
        // The request event goes out before the transaction's own events (e.g. its
        // termination), so the application sees them in causal order.
        if let Some(event) = event {
            self.deliver(event).await;
        }
        self.flush(transaction).await;
        None
    }

    fn add_route(&mut self, id: TransactionId, route: Route) {
        self.routes_by_remote
            .insert(route.layer_destination, route.clone());
        self.routes.insert(id, route);
    }

    /// The destination for a transmit to `layer_destination`: the route of `current` (the
    /// transaction the last input concerned) when it matches, else the last route to that
    /// address, else plain UDP.
    fn destination_for(
        &self,
        current: Option<TransactionId>,
        layer_destination: SocketAddr,
    ) -> (Option<TransactionId>, Destination) {
        let current_route = current
            .and_then(|id| self.routes.get(&id).map(|route| (id, route)))
            .filter(|(_, route)| route.layer_destination == layer_destination);
        let (id, route) = match current_route {
            Some((id, route)) => (Some(id), Some(route)),
            None => (None, self.routes_by_remote.get(&layer_destination)),
        };
        let Some(route) = route else {
            return (
                None,
                Destination::address(TransportProtocol::Udp, layer_destination),
            );
        };
        let closed = |connection: Option<ConnectionId>| {
            connection.is_some_and(|connection| !self.transports.is_connection_open(connection))
        };
        let destination = match (&route.destination, &route.fallback) {
            (Destination::Flow(flow), Some(fallback)) if closed(flow.connection) => {
                fallback.clone()
            }
            (destination, _) => destination.clone(),
        };
        (id, destination)
    }

    /// Sends every queued transmit and delivers every queued event.
    async fn flush(&mut self, current: Option<TransactionId>) {
        loop {
            while let Some(transmit) = self.layer.poll_transmit() {
                let (transaction, destination) =
                    self.destination_for(current, transmit.destination);
                if let Some(transaction) = transaction
                    && !self.transports.can_send_without_connecting(&destination)
                {
                    // Connecting may take up to the connect timeout: do it aside and hear back
                    // through `completions`.
                    let transports = self.transports.clone();
                    let completions = self.completions.clone();
                    tokio::spawn(async move {
                        let result = transports.send(&destination, transmit.payload).await;
                        let _ = completions.send(Completion {
                            transaction,
                            result,
                        });
                    });
                    continue;
                }
                let result = self.transports.send(&destination, transmit.payload).await;
                if let Some(transaction) = transaction {
                    self.record_send(transaction, result);
                } else if let Err(error) = result {
                    tracing::debug!(%error, destination = %transmit.destination, "send failed");
                }
            }
            let Some((transaction, event)) = self.layer.poll_event() else {
                break;
            };
            if matches!(event, Event::Terminated) {
                self.routes.remove(&transaction);
                if self.routes_by_remote.len() > 2 * self.routes.len() + 64 {
                    self.routes_by_remote = self
                        .routes
                        .values()
                        .map(|route| (route.layer_destination, route.clone()))
                        .collect();
                }
                // After a load peak, give the table's memory back (halving once it is less
                // than a quarter full keeps the cost amortised over the removals).
                if self.routes.capacity() > 1024 && self.routes.len() < self.routes.capacity() / 4 {
                    self.routes.shrink_to(self.routes.len() * 2);
                }
            }
            self.deliver(EndpointEvent::Transaction { transaction, event })
                .await;
        }
    }

    async fn handle_completion(&mut self, completion: Completion) {
        self.record_send(completion.transaction, completion.result);
        self.flush(Some(completion.transaction)).await;
    }

    /// After a send of `transaction`: later messages reuse the connection it went on; a failure
    /// is reported to the transaction (RFC 3261 §17.1.4, §17.2.4).
    fn record_send(&mut self, transaction: TransactionId, result: Result<Flow, SendError>) {
        match result {
            Ok(flow) => {
                if flow.connection.is_some()
                    && let Some(route) = self.routes.get_mut(&transaction)
                    && route.destination != Destination::Flow(flow)
                {
                    route.destination = Destination::Flow(flow);
                    let route = route.clone();
                    self.routes_by_remote.insert(route.layer_destination, route);
                }
            }
            Err(error) => {
                tracing::debug!(%error, ?transaction, "send failed");
                // The transaction may have ended meanwhile; then there is nobody to tell.
                let _ = self.layer.handle_transport_error(now(), transaction);
            }
        }
    }

    async fn deliver(&self, event: EndpointEvent) {
        // The application may have dropped its receiver while still sending; then nobody
        // listens and the event has nowhere to go.
        let _ = self.events.send(event);
    }
}
