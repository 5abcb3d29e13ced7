//! The transaction layer: owns every transaction of an endpoint, matches messages to them
//! (RFC 3261 §17.1.3, §17.2.3) and runs all their timers from one heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{Message, Method};

use super::{
    ClientInviteState, ClientInviteTransaction, ClientKey, ClientNonInviteState,
    ClientNonInviteTransaction, Event, Reliability, ServerInviteState, ServerInviteTransaction,
    ServerKey, ServerNonInviteState, ServerNonInviteTransaction, TimerConfig, TransactionError,
    Transmit, make_cancel,
};

/// Capacity an emptied output queue of the layer may keep; beyond it the buffer is freed.
const DRAINED_QUEUE_CAPACITY: usize = 64;

/// A handle on one transaction in a [`TransactionLayer`]. Ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

/// Settings of a [`TransactionLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerConfig {
    /// T1, T2, T4.
    pub timers: TimerConfig,
    /// Send 100 Trying as soon as an INVITE creates a server transaction (RFC 3261 §17.2.1).
    /// Turn off only when the TU always answers within 200 ms.
    pub send_trying: bool,
    /// Timer J for server non-INVITE transactions over unreliable transport: how long a
    /// Completed transaction stays to answer request retransmissions. `None` (the default) is
    /// RFC 3261's 64·T1. Each such transaction holds its key and last response until then, so a
    /// busy registrar may shorten it (Kamailio's tm keeps them 5 s); a retransmission arriving
    /// later creates a new transaction and reaches the TU again.
    pub timer_j: Option<Duration>,
}

impl Default for LayerConfig {
    fn default() -> Self {
        Self {
            timers: TimerConfig::default(),
            send_trying: true,
            timer_j: None,
        }
    }
}

/// What [`TransactionLayer::handle_incoming`] did with a message.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A request (not CANCEL, not ACK) created server transaction `id`; the TU answers it with
    /// [`TransactionLayer::send_response`].
    NewRequest {
        /// The new server transaction.
        id: TransactionId,
        /// The request.
        request: Message,
    },
    /// A CANCEL created its own server non-INVITE transaction `id` (RFC 3261 §9.2); `invite` is
    /// the server INVITE transaction it matches, `None` when there is none (the TU answers 481).
    Cancel {
        /// The CANCEL's own server transaction.
        id: TransactionId,
        /// The CANCEL.
        request: Message,
        /// The INVITE transaction it cancels.
        invite: Option<TransactionId>,
    },
    /// The message belongs to an existing transaction `id`, which handled it: a request
    /// retransmission (the last response was re-sent if there was one), an ACK for a non-2xx
    /// response, or an ACK for a 2xx in Accepted (delivered as [`Event::Acknowledged`]).
    Absorbed(TransactionId),
    /// An ACK that matched no server transaction: normally the ACK for a 2xx, which carries a
    /// branch of its own (RFC 3261 §13.2.2.4) and belongs to the TU's dialog; a proxy forwards
    /// it (RFC 3261 §17.2.3, RFC 6026 §6).
    UnmatchedAck(Message),
    /// A response matched client transaction `id`; what the TU must see arrives through
    /// [`TransactionLayer::poll_event`] (a retransmitted final response is absorbed there).
    Response(TransactionId),
    /// A response that matched no client transaction: a stateless proxy forwards it, a UA drops it
    /// (RFC 3261 §18.1.2).
    StrayResponse(Message),
}

/// The state of a transaction in the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// A client INVITE transaction.
    ClientInvite(ClientInviteState),
    /// A client non-INVITE transaction.
    ClientNonInvite(ClientNonInviteState),
    /// A server INVITE transaction.
    ServerInvite(ServerInviteState),
    /// A server non-INVITE transaction.
    ServerNonInvite(ServerNonInviteState),
}

// The variant names are the RFC's transaction names, shared suffix and all.
#[allow(clippy::enum_variant_names)]
#[derive(Debug)]
enum Machine {
    ClientInvite(ClientInviteTransaction),
    ClientNonInvite(ClientNonInviteTransaction),
    ServerInvite(ServerInviteTransaction),
    ServerNonInvite(ServerNonInviteTransaction),
}

impl Machine {
    fn kind(&self) -> &'static str {
        match self {
            Machine::ClientInvite(_) => "client INVITE transaction",
            Machine::ClientNonInvite(_) => "client non-INVITE transaction",
            Machine::ServerInvite(_) => "server INVITE transaction",
            Machine::ServerNonInvite(_) => "server non-INVITE transaction",
        }
    }

    fn state(&self) -> TransactionState {
        match self {
            Machine::ClientInvite(t) => TransactionState::ClientInvite(t.state()),
            Machine::ClientNonInvite(t) => TransactionState::ClientNonInvite(t.state()),
            Machine::ServerInvite(t) => TransactionState::ServerInvite(t.state()),
            Machine::ServerNonInvite(t) => TransactionState::ServerNonInvite(t.state()),
        }
    }

    fn request(&self) -> Option<&Message> {
        match self {
            Machine::ClientInvite(t) => t.request(),
            Machine::ClientNonInvite(t) => t.request(),
            Machine::ServerInvite(t) => t.request(),
            Machine::ServerNonInvite(t) => t.request(),
        }
    }

    fn handle_message(&mut self, now: Instant, message: Message) -> Result<(), TransactionError> {
        match self {
            Machine::ClientInvite(t) => t.handle_message(now, message),
            Machine::ClientNonInvite(t) => t.handle_message(now, message),
            Machine::ServerInvite(t) => t.handle_message(now, message),
            Machine::ServerNonInvite(t) => t.handle_message(now, message),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Machine::ClientInvite(t) => t.handle_timeout(now),
            Machine::ClientNonInvite(t) => t.handle_timeout(now),
            Machine::ServerInvite(t) => t.handle_timeout(now),
            Machine::ServerNonInvite(t) => t.handle_timeout(now),
        }
    }

    fn handle_transport_error(&mut self, now: Instant) {
        match self {
            Machine::ClientInvite(t) => t.handle_transport_error(now),
            Machine::ClientNonInvite(t) => t.handle_transport_error(now),
            Machine::ServerInvite(t) => t.handle_transport_error(now),
            Machine::ServerNonInvite(t) => t.handle_transport_error(now),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Machine::ClientInvite(t) => t.poll_transmit(),
            Machine::ClientNonInvite(t) => t.poll_transmit(),
            Machine::ServerInvite(t) => t.poll_transmit(),
            Machine::ServerNonInvite(t) => t.poll_transmit(),
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        match self {
            Machine::ClientInvite(t) => t.poll_event(),
            Machine::ClientNonInvite(t) => t.poll_event(),
            Machine::ServerInvite(t) => t.poll_event(),
            Machine::ServerNonInvite(t) => t.poll_event(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Machine::ClientInvite(t) => t.poll_timeout(),
            Machine::ClientNonInvite(t) => t.poll_timeout(),
            Machine::ServerInvite(t) => t.poll_timeout(),
            Machine::ServerNonInvite(t) => t.poll_timeout(),
        }
    }
}

#[derive(Debug, Clone)]
enum Key {
    Client(ClientKey),
    Server(ServerKey),
}

#[derive(Debug)]
struct Entry {
    machine: Machine,
    key: Key,
    /// The deadline this entry has in the heap; older heap items for the entry are stale.
    scheduled: Option<Instant>,
    /// Server INVITE, RFC 2543 key: the To tag of the final response sent, which the ACK
    /// must carry (RFC 3261 §17.2.3).
    response_to_tag: Option<Bytes>,
    /// Client INVITE: the CANCEL created for it, sent once a provisional response arrived
    /// (RFC 3261 §9.1).
    cancel: Option<TransactionId>,
}

/// Every transaction of one endpoint, the matching tables and one timer heap.
///
/// Inputs: [`Self::handle_incoming`] (a parsed message from the network),
/// [`Self::send_request`], [`Self::send_cancel`], [`Self::send_response`] (from the TU),
/// [`Self::handle_timeout`], [`Self::handle_transport_error`]. Outputs:
/// [`Self::poll_transmit`], [`Self::poll_event`], [`Self::poll_timeout`]. After any input,
/// drain transmits and events, then sleep until `poll_timeout`.
#[derive(Debug)]
pub struct TransactionLayer {
    config: LayerConfig,
    next_id: u64,
    // Boxed: an entry is several hundred bytes; inline, the map would keep that in every empty
    // bucket too (up to as many again as live ones) and move it all on every resize.
    transactions: HashMap<TransactionId, Box<Entry>>,
    client_index: HashMap<ClientKey, TransactionId>,
    server_index: HashMap<ServerKey, TransactionId>,
    // Min-heap of (deadline, id); an item is live only while it equals the entry's `scheduled`,
    // so rescheduling pushes a new item and never searches the heap.
    timers: BinaryHeap<Reverse<(Instant, TransactionId)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(TransactionId, Event)>,
}

impl Default for TransactionLayer {
    fn default() -> Self {
        Self::new(LayerConfig::default())
    }
}

impl TransactionLayer {
    /// An empty layer.
    pub fn new(config: LayerConfig) -> Self {
        Self {
            config,
            next_id: 0,
            transactions: HashMap::new(),
            client_index: HashMap::new(),
            server_index: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &LayerConfig {
        &self.config
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.transactions.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    /// The state of a live transaction.
    pub fn state(&self, id: TransactionId) -> Option<TransactionState> {
        self.transactions
            .get(&id)
            .map(|entry| entry.machine.state())
    }

    /// The request of a live transaction. A transaction keeps its request only until the final
    /// response (sent or received); afterwards this is `None`.
    pub fn request(&self, id: TransactionId) -> Option<&Message> {
        self.transactions
            .get(&id)
            .and_then(|entry| entry.machine.request())
    }

    /// Starts a client transaction for `request` (INVITE → client INVITE transaction, anything
    /// else but ACK → client non-INVITE transaction; RFC 3261 §17.1). The top Via must carry the
    /// branch (see [`super::new_branch`]).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Message,
        destination: SocketAddr,
        reliability: Reliability,
    ) -> Result<TransactionId, TransactionError> {
        let method = request.method().ok_or(TransactionError::WrongMessageKind {
            expected: "request",
        })?;
        if *method == Method::Ack {
            return Err(TransactionError::AckCreatesNoTransaction);
        }
        // Detached: the key outlives the request, which the transaction drops at the final
        // response.
        let key = ClientKey::from_message(&request)?.detached();
        if self.client_index.contains_key(&key) {
            return Err(TransactionError::DuplicateTransaction);
        }
        let timers = self.config.timers;
        let machine = if *method == Method::Invite {
            Machine::ClientInvite(ClientInviteTransaction::new(
                now,
                request,
                destination,
                reliability,
                timers,
            ))
        } else {
            Machine::ClientNonInvite(ClientNonInviteTransaction::new(
                now,
                request,
                destination,
                reliability,
                timers,
            ))
        };
        let id = self.insert(Key::Client(key.clone()), machine);
        self.client_index.insert(key, id);
        self.settle(id);
        Ok(id)
    }

    /// Cancels the client INVITE transaction `invite` (RFC 3261 §9.1): builds the CANCEL and runs
    /// it in its own client non-INVITE transaction, returned here. The CANCEL goes out once the
    /// INVITE has a provisional response; if a final response comes first, the CANCEL
    /// transaction ends unsent. Calling this twice returns the same CANCEL transaction.
    pub fn send_cancel(
        &mut self,
        now: Instant,
        invite: TransactionId,
    ) -> Result<TransactionId, TransactionError> {
        let entry = self
            .transactions
            .get(&invite)
            .ok_or(TransactionError::UnknownTransaction)?;
        if let Some(cancel) = entry.cancel
            && self.transactions.contains_key(&cancel)
        {
            return Ok(cancel);
        }
        let Machine::ClientInvite(transaction) = &entry.machine else {
            return Err(TransactionError::WrongTransactionKind {
                needed: "client INVITE transaction",
                actual: entry.machine.kind(),
            });
        };
        if !matches!(
            transaction.state(),
            ClientInviteState::Calling | ClientInviteState::Proceeding
        ) {
            return Err(TransactionError::NotCancellable);
        }
        // Calling and Proceeding still hold the INVITE.
        let invite_request = transaction
            .request()
            .ok_or(TransactionError::NotCancellable)?;
        let cancel = make_cancel(invite_request);
        let key = ClientKey::from_message(&cancel)?.detached();
        if self.client_index.contains_key(&key) {
            return Err(TransactionError::DuplicateTransaction);
        }
        let machine = ClientNonInviteTransaction::new_deferred(
            cancel,
            transaction.destination(),
            transaction.reliability(),
            self.config.timers,
        );
        let id = self.insert(Key::Client(key.clone()), Machine::ClientNonInvite(machine));
        self.client_index.insert(key, id);
        if let Some(entry) = self.transactions.get_mut(&invite) {
            entry.cancel = Some(id);
        }
        self.advance_cancel(now, invite);
        Ok(id)
    }

    /// Sends the TU's response through server transaction `id` (RFC 3261 §17.2.1, §17.2.2).
    pub fn send_response(
        &mut self,
        now: Instant,
        id: TransactionId,
        response: Message,
    ) -> Result<(), TransactionError> {
        let entry = self
            .transactions
            .get_mut(&id)
            .ok_or(TransactionError::UnknownTransaction)?;
        match &mut entry.machine {
            Machine::ServerInvite(transaction) => {
                // Only RFC 2543 matching needs the tag of our final response (§17.2.3).
                let to_tag = match (&entry.key, response.status()) {
                    (Key::Server(ServerKey::Rfc2543(_)), Some(200..)) => response
                        .to()
                        .ok()
                        .and_then(|to| to.tag().map(Bytes::copy_from_slice)),
                    _ => None,
                };
                transaction.send_response(now, response)?;
                if to_tag.is_some() {
                    entry.response_to_tag = to_tag;
                }
            }
            Machine::ServerNonInvite(transaction) => transaction.send_response(now, response)?,
            machine => {
                return Err(TransactionError::WrongTransactionKind {
                    needed: "server transaction",
                    actual: machine.kind(),
                });
            }
        }
        self.settle(id);
        Ok(())
    }

    /// The driver could not deliver a message of transaction `id` (RFC 3261 §17.1.4, §17.2.4).
    pub fn handle_transport_error(
        &mut self,
        now: Instant,
        id: TransactionId,
    ) -> Result<(), TransactionError> {
        let entry = self
            .transactions
            .get_mut(&id)
            .ok_or(TransactionError::UnknownTransaction)?;
        entry.machine.handle_transport_error(now);
        self.settle(id);
        self.advance_cancel(now, id);
        Ok(())
    }

    /// Matches a message from the network to a transaction, or creates a server transaction for
    /// a new request (RFC 3261 §17.1.3, §17.2.3). `source` is where it came from (responses of a
    /// server transaction go there), `reliability` the transport it came over.
    pub fn handle_incoming(
        &mut self,
        now: Instant,
        message: Message,
        source: SocketAddr,
        reliability: Reliability,
    ) -> Result<Incoming, TransactionError> {
        if message.is_request() {
            self.handle_incoming_request(now, message, source, reliability)
        } else {
            self.handle_incoming_response(now, message)
        }
    }

    fn handle_incoming_response(
        &mut self,
        now: Instant,
        response: Message,
    ) -> Result<Incoming, TransactionError> {
        super::response_status(&response)?;
        let key = match ClientKey::from_message(&response) {
            Ok(key) => key,
            // No branch: it cannot be ours, as every request we send has one.
            Err(super::KeyError::MissingBranch) => return Ok(Incoming::StrayResponse(response)),
            Err(error) => return Err(error.into()),
        };
        let Some(&id) = self.client_index.get(&key) else {
            return Ok(Incoming::StrayResponse(response));
        };
        if let Some(entry) = self.transactions.get_mut(&id) {
            entry.machine.handle_message(now, response)?;
        }
        self.settle(id);
        self.advance_cancel(now, id);
        Ok(Incoming::Response(id))
    }

    fn handle_incoming_request(
        &mut self,
        now: Instant,
        request: Message,
        source: SocketAddr,
        reliability: Reliability,
    ) -> Result<Incoming, TransactionError> {
        let key = ServerKey::from_request(&request)?;
        let is_ack = request.method() == Some(&Method::Ack);
        if is_ack {
            return match self.find_ack_transaction(&key) {
                Some(id) => {
                    if let Some(entry) = self.transactions.get_mut(&id) {
                        entry.machine.handle_message(now, request)?;
                    }
                    self.settle(id);
                    Ok(Incoming::Absorbed(id))
                }
                None => Ok(Incoming::UnmatchedAck(request)),
            };
        }
        if let Some(&id) = self.server_index.get(&key) {
            if let Some(entry) = self.transactions.get_mut(&id) {
                entry.machine.handle_message(now, request)?;
            }
            self.settle(id);
            return Ok(Incoming::Absorbed(id));
        }
        let timers = self.config.timers;
        let is_cancel = key.method() == &Method::Cancel;
        let machine = if key.method() == &Method::Invite {
            Machine::ServerInvite(ServerInviteTransaction::new(
                now,
                request.clone(),
                source,
                reliability,
                timers,
                self.config.send_trying,
            ))
        } else {
            let transaction =
                ServerNonInviteTransaction::new(now, request.clone(), source, reliability, timers);
            Machine::ServerNonInvite(match self.config.timer_j {
                Some(wait) => transaction.with_timer_j(wait),
                None => transaction,
            })
        };
        let invite = if is_cancel {
            self.server_index
                .get(&key.with_method(Method::Invite))
                .copied()
        } else {
            None
        };
        // The stored key must not pin the datagram once the transaction dropped the request.
        let key = key.detached();
        let id = self.insert(Key::Server(key.clone()), machine);
        self.server_index.insert(key, id);
        self.settle(id);
        Ok(if is_cancel {
            Incoming::Cancel {
                id,
                request,
                invite,
            }
        } else {
            Incoming::NewRequest { id, request }
        })
    }

    /// RFC 3261 §17.2.3: an ACK matches the INVITE transaction; under RFC 2543 rules its To tag
    /// must equal the tag of the response we sent, which the INVITE itself did not carry.
    fn find_ack_transaction(&self, key: &ServerKey) -> Option<TransactionId> {
        if let Some(&id) = self.server_index.get(key) {
            return Some(id);
        }
        let untagged = key.without_to_tag()?;
        let &id = self.server_index.get(&untagged)?;
        let entry = self.transactions.get(&id)?;
        (entry.response_to_tag.as_ref() == key.to_tag()).then_some(id)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((deadline, id))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.transactions.get_mut(&id) else {
                continue;
            };
            if entry.scheduled != Some(deadline) {
                continue;
            }
            entry.scheduled = None;
            entry.machine.handle_timeout(now);
            self.settle(id);
            self.advance_cancel(now, id);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.transmits.pop_front();
        if transmit.is_none() && self.transmits.capacity() > DRAINED_QUEUE_CAPACITY {
            // A burst (many timers due at once) is over: give its memory back.
            self.transmits = VecDeque::new();
        }
        transmit
    }

    /// The next event for the TU, with the transaction it concerns.
    pub fn poll_event(&mut self) -> Option<(TransactionId, Event)> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > DRAINED_QUEUE_CAPACITY {
            self.events = VecDeque::new();
        }
        event
    }

    /// When [`Self::handle_timeout`] must be called next: the earliest timer of all
    /// transactions. Takes `&mut self` to drop stale heap items on the way.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, id))) = self.timers.peek() {
            let live = self
                .transactions
                .get(&id)
                .is_some_and(|entry| entry.scheduled == Some(deadline));
            if live {
                return Some(deadline);
            }
            self.timers.pop();
        }
        None
    }

    fn insert(&mut self, key: Key, machine: Machine) -> TransactionId {
        let id = TransactionId(self.next_id);
        self.next_id += 1;
        self.transactions.insert(
            id,
            Box::new(Entry {
                machine,
                key,
                scheduled: None,
                response_to_tag: None,
                cancel: None,
            }),
        );
        id
    }

    /// Moves a transaction's outputs into the layer queues, reschedules its timer and removes it
    /// once terminated.
    fn settle(&mut self, id: TransactionId) {
        let Some(entry) = self.transactions.get_mut(&id) else {
            return;
        };
        while let Some(transmit) = entry.machine.poll_transmit() {
            self.transmits.push_back(transmit);
        }
        let mut terminated = false;
        while let Some(event) = entry.machine.poll_event() {
            terminated |= matches!(event, Event::Terminated);
            self.events.push_back((id, event));
        }
        if terminated {
            let entry = self.transactions.remove(&id);
            if let Some(entry) = entry {
                if let Some(cancel) = entry.cancel {
                    self.abandon_unsent_cancel(cancel);
                }
                match entry.key {
                    Key::Client(key) => {
                        self.client_index.remove(&key);
                    }
                    Key::Server(key) => {
                        self.server_index.remove(&key);
                    }
                }
            }
            self.shrink_after_load();
            return;
        }
        let deadline = entry.machine.poll_timeout();
        if deadline != entry.scheduled {
            entry.scheduled = deadline;
            if let Some(deadline) = deadline {
                self.timers.push(Reverse((deadline, id)));
            }
        }
    }

    /// Gives memory back once a load peak has passed: a table that is less than a quarter full
    /// is halved, so the cost is amortised over the removals that emptied it.
    fn shrink_after_load(&mut self) {
        const FLOOR: usize = 1024;
        fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
            if map.capacity() > FLOOR && map.len() < map.capacity() / 4 {
                map.shrink_to(map.len() * 2);
            }
        }
        shrink(&mut self.transactions);
        shrink(&mut self.client_index);
        shrink(&mut self.server_index);
        if self.timers.capacity() > FLOOR && self.timers.len() < self.timers.capacity() / 4 {
            self.timers.shrink_to(self.timers.len() * 2);
        }
    }

    fn abandon_unsent_cancel(&mut self, cancel: TransactionId) {
        if let Some(Entry {
            machine: Machine::ClientNonInvite(transaction),
            ..
        }) = self.transactions.get_mut(&cancel).map(Box::as_mut)
        {
            transaction.abandon();
            self.settle(cancel);
        }
    }

    /// Sends a waiting CANCEL once its INVITE is Proceeding, or drops it once the INVITE got a
    /// final response or ended (RFC 3261 §9.1).
    fn advance_cancel(&mut self, now: Instant, invite: TransactionId) {
        let (cancel, invite_state) = match self.transactions.get(&invite).map(Box::as_ref) {
            Some(Entry {
                machine: Machine::ClientInvite(transaction),
                cancel: Some(cancel),
                ..
            }) => (*cancel, Some(transaction.state())),
            // Not an INVITE with a CANCEL; an INVITE that ended dropped its CANCEL in `settle`.
            _ => return,
        };
        let Some(Entry {
            machine: Machine::ClientNonInvite(cancel_transaction),
            ..
        }) = self.transactions.get_mut(&cancel).map(Box::as_mut)
        else {
            return;
        };
        if cancel_transaction.is_started() {
            return;
        }
        match invite_state {
            Some(ClientInviteState::Proceeding) => {
                cancel_transaction.start(now);
                if let Some(Entry {
                    machine: Machine::ClientInvite(transaction),
                    ..
                }) = self.transactions.get_mut(&invite).map(Box::as_mut)
                {
                    transaction.cancel_sent(now);
                }
                self.settle(invite);
            }
            Some(ClientInviteState::Calling) => return,
            _ => cancel_transaction.abandon(),
        }
        self.settle(cancel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::make_response;
    use crate::transaction::test_support::*;

    #[test]
    fn tables_and_queues_give_their_memory_back_after_a_load_peak() {
        let base = start();
        let mut layer = TransactionLayer::default();
        for n in 0..5000 {
            let register = request("REGISTER", &format!("z9hG4bKpeak{n}"));
            let Ok(Incoming::NewRequest { id, request }) =
                layer.handle_incoming(base, register, peer(), Reliability::Unreliable)
            else {
                panic!("a new request");
            };
            let ok = make_response(&request, 200, "OK", Some(b"t"));
            layer.send_response(base, id, ok).unwrap();
        }
        assert_eq!(layer.len(), 5000);
        assert!(layer.transactions.capacity() >= 5000);
        // Every Timer J fires at once: 5000 Terminated events and no transaction left.
        layer.handle_timeout(base + Duration::from_secs(32));
        assert!(layer.is_empty());
        while layer.poll_transmit().is_some() {}
        let mut terminated = 0;
        while let Some((_, event)) = layer.poll_event() {
            terminated += usize::from(matches!(event, Event::Terminated));
        }
        assert_eq!(terminated, 5000);
        assert!(layer.transactions.capacity() <= 2048);
        assert!(layer.server_index.capacity() <= 2048);
        assert!(layer.timers.capacity() <= 2048);
        assert!(layer.events.capacity() <= DRAINED_QUEUE_CAPACITY);
        assert!(layer.transmits.capacity() <= DRAINED_QUEUE_CAPACITY);
    }
}
