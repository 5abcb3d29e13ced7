//! The call-router test harness: a proxy over a fresh SQLite store with three subscribers,
//! small SIP user agents on UDP and calls that answer digest challenges, shared by the routing
//! tests (`routing_calls.rs`, `routing_rewrite.rs`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use proxy::location::{AddressOfRecord, Binding, BindingChanges, unix_now};
use proxy::{ProxyConfig, ProxyHandle};
use sip_core::auth::{
    ClientCredentials, DigestChallenge, RequestToSign, answer_challenge, select_challenge,
};
use sip_core::transaction::make_response;
use sip_message::{HeaderName, Message, Method};
use store::{
    AccRepository, CustomerRepository, DomainRepository, E164Number, NewCustomer, NewDomain,
    NewSubscriber, Store, SubscriberRepository, SubscriberStatus,
};
use tokio::net::UdpSocket;

pub const DOMAIN: &str = "example.org";
pub const WAIT: Duration = Duration::from_secs(5);
/// Longest a test in frozen time may take in real time: its phones' receive timeouts are in
/// tokio time, which stands still there.
pub const REAL_TIME_LIMIT: Duration = Duration::from_secs(30);

/// Runs `test` on tokio's paused clock held still: time moves only by
/// `tokio::time::advance`, so a timer fires exactly when the test says.
///
/// `start_paused` alone is not enough: whenever the runtime has nothing to do — also while
/// SQLite's worker thread answers a query or a datagram is on its way — a paused clock jumps
/// to the next timer, and the phones' receive timeouts, the transaction timers or Timer C would
/// fire at random points. A blocking task in flight keeps the clock from jumping
/// (`tokio::time::pause`, "Preventing auto-advance"); the one held here is also a real-time
/// watchdog, so a test that waits for a message that never comes fails instead of hanging.
pub async fn in_frozen_time<F: Future>(test: F) -> F::Output {
    let (finished, finished_signal) = std::sync::mpsc::channel::<()>();
    let mut watchdog =
        tokio::task::spawn_blocking(move || finished_signal.recv_timeout(REAL_TIME_LIMIT));
    tokio::select! {
        output = test => {
            drop(finished);
            let _ = watchdog.await;
            output
        }
        _ = &mut watchdog => panic!("not finished after {REAL_TIME_LIMIT:?} of real time"),
    }
}

/// A proxy over a fresh SQLite store with subscribers alice, bob (number 43111002) and carol.
pub struct Platform {
    pub store: Store,
    pub proxy: ProxyHandle,
    pub uuids: std::collections::HashMap<&'static str, String>,
    pub _directory: tempfile::TempDir,
}

impl Platform {
    pub async fn start() -> Platform {
        Platform::start_with(ProxyConfig::default()).await
    }

    pub async fn start_with(config: ProxyConfig) -> Platform {
        let directory = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            directory.path().join("voxide.db").display()
        );
        let store = Store::connect(&url).await.unwrap();
        Platform::start_on(store, config, directory).await
    }

    pub async fn start_on(
        store: Store,
        config: ProxyConfig,
        directory: tempfile::TempDir,
    ) -> Platform {
        let domain = store
            .create_domain(&NewDomain {
                domain: DOMAIN.to_owned(),
            })
            .await
            .unwrap();
        let customer = store
            .create_customer(&NewCustomer {
                name: "Customer".to_owned(),
                status: Default::default(),
                external_id: None,
            })
            .await
            .unwrap();
        let mut uuids = std::collections::HashMap::new();
        for (name, number) in [
            ("alice", E164Number::new("43", "111", "001")),
            ("bob", E164Number::new("43", "111", "002")),
            ("carol", E164Number::new("43", "111", "003")),
        ] {
            let subscriber = store
                .create_subscriber(&NewSubscriber {
                    customer_id: customer.id,
                    domain_id: domain.id,
                    username: name.to_owned(),
                    password: format!("{name}-secret"),
                    webusername: None,
                    webpassword: None,
                    display_name: None,
                    email: None,
                    external_id: None,
                    status: SubscriberStatus::Active,
                    administrative: false,
                    primary_number: Some(number),
                    alias_numbers: Vec::new(),
                })
                .await
                .unwrap();
            uuids.insert(name, subscriber.uuid);
        }
        let proxy = proxy::start(
            ProxyConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..config
            },
            store.clone(),
        )
        .await
        .unwrap();
        Platform {
            store,
            proxy,
            uuids,
            _directory: directory,
        }
    }

    /// Binds `phone` as a contact of `user`, as the registrar would after a REGISTER.
    pub async fn register(&self, user: &str, phone: &Phone) {
        self.register_with_path(user, phone, Vec::new()).await;
    }

    pub async fn register_with_path(&self, user: &str, phone: &Phone, path: Vec<String>) {
        self.bind(user, phone.contact(user), path, 1000).await;
    }

    /// Registers `phone` for `user` with q-value `q` (thousandths).
    pub async fn register_with_q(&self, user: &str, phone: &Phone, q: u16) {
        self.bind(user, phone.contact(user), Vec::new(), q).await;
    }

    pub async fn bind(&self, user: &str, contact: String, path: Vec<String>, q: u16) {
        let now = unix_now();
        let aor = AddressOfRecord::new(user, DOMAIN);
        let binding = Binding {
            call_id: format!("reg-{contact}"),
            contact,
            q,
            expires_at_unix: now + 3600,
            path,
            received: None,
            cseq: 1,
            user_agent: None,
            instance: None,
            reg_id: None,
            updated_at_unix: now,
        };
        self.proxy
            .location()
            .apply(
                &aor,
                &BindingChanges {
                    upserts: vec![binding],
                    removals: Vec::new(),
                },
            )
            .await
            .unwrap();
    }

    /// The `acc` rows of a call once the writer has written everything queued. The proxy
    /// queues a row before it sends the response the row is about, so every row of a response
    /// a phone has seen is in the database by then, and a row missing is a row never made.
    pub async fn acc(&self, call_id: &str) -> Vec<store::AccRecord> {
        self.proxy.accounting_stats().drained().await;
        self.store
            .list_acc_records_by_call_id(call_id)
            .await
            .unwrap()
    }
}

/// Each row as (method, code).
pub fn summary(rows: &[store::AccRecord]) -> Vec<(&str, i64)> {
    rows.iter()
        .map(|row| (row.method.as_str(), row.sip_code))
        .collect()
}

/// A user agent on its own UDP socket.
pub struct Phone {
    pub socket: UdpSocket,
    pub address: SocketAddr,
    pub proxy: SocketAddr,
}

impl Phone {
    pub async fn new(proxy: &ProxyHandle) -> Phone {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        Phone {
            socket,
            address,
            proxy: proxy.local_addr(),
        }
    }

    pub fn contact(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.address)
    }

    pub async fn send(&self, message: impl AsRef<[u8]>) {
        self.socket
            .send_to(message.as_ref(), self.proxy)
            .await
            .unwrap();
    }

    /// The next message, skipping 100 Trying.
    pub async fn receive(&self) -> Message {
        self.try_receive(WAIT).await.expect("a message within 5 s")
    }

    /// The next message other than 100 Trying within `wait`.
    pub async fn try_receive(&self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut buffer = vec![0u8; 65_535];
            let (length, _) = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buffer))
                .await
                .ok()?
                .unwrap();
            buffer.truncate(length);
            let message = Message::parse(Bytes::from(buffer)).unwrap();
            if message.status() != Some(100) {
                return Some(message);
            }
        }
    }

    /// The next request, which must have `method`.
    pub async fn receive_request(&self, method: Method) -> Message {
        let message = self.receive().await;
        assert_eq!(message.method(), Some(&method), "got {message}");
        message
    }

    /// The next response, which must have `status`.
    pub async fn receive_response(&self, status: u16) -> Message {
        let message = self.receive().await;
        assert_eq!(message.status(), Some(status), "got {message}");
        message
    }

    /// Answers `request` with `status`, with a Contact and the Record-Route copied
    /// (RFC 3261 §12.1.1).
    pub async fn answer(&self, request: &Message, status: u16, reason: &str, user: &str) {
        self.send(self.response(request, status, reason, user).to_bytes())
            .await;
    }

    /// Answers `request` with `status` and `sdp` as its body.
    pub async fn answer_with_sdp(&self, request: &Message, status: u16, user: &str, sdp: &str) {
        let mut response = self.response(request, status, "OK", user);
        response.add_header(HeaderName::ContentType, "application/sdp");
        response.set_body(Bytes::from(sdp.to_owned()));
        self.send(response.to_bytes()).await;
    }

    pub fn response(&self, request: &Message, status: u16, reason: &str, user: &str) -> Message {
        let mut response = make_response(request, status, reason, Some(b"callee-tag"));
        for record_route in request.header_values(&HeaderName::RecordRoute) {
            response.add_header(
                HeaderName::RecordRoute,
                Bytes::copy_from_slice(record_route),
            );
        }
        if request.method() == Some(&Method::Invite) {
            response.add_header(HeaderName::Contact, format!("<{}>", self.contact(user)));
        }
        response
    }

    /// An OPTIONS to the proxy itself, and its 200 as the next message: the proxy's one
    /// socket and one loop take messages in order, so it has taken in everything this phone
    /// sent before and sent nothing else this way meanwhile.
    pub async fn ping_proxy(&self) {
        let ping = Call::new("alice", &format!("sip:{}", self.proxy));
        self.send(ping.request("OPTIONS", &ping.branch, 1, self, None))
            .await;
        self.receive_response(200).await;
    }

    /// Fails when a message is waiting on this phone's socket.
    pub fn assert_nothing_waiting(&self) {
        let mut buffer = vec![0u8; 65_535];
        match self.socket.try_recv_from(&mut buffer) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((length, _)) => panic!(
                "{} got an unexpected message:\n{}",
                self.address,
                String::from_utf8_lossy(&buffer[..length])
            ),
            Err(error) => panic!("{error}"),
        }
    }
}

/// One out-of-dialog request from `caller` (with password `<user>-secret`).
pub struct Call {
    pub request_uri: String,
    pub from_user: &'static str,
    pub call_id: String,
    pub branch: String,
    pub cseq: u32,
    pub max_forwards: u32,
    pub authorization: Option<String>,
    /// The INVITE's SDP offer, if any.
    pub sdp: Option<String>,
}

impl Call {
    pub fn new(from_user: &'static str, request_uri: &str) -> Call {
        Call {
            request_uri: request_uri.to_owned(),
            from_user,
            call_id: format!("{}@routing-test", hex::encode(rand::random::<[u8; 8]>())),
            branch: new_branch(),
            cseq: 1,
            max_forwards: 70,
            authorization: None,
            sdp: None,
        }
    }

    pub fn invite(&self, phone: &Phone) -> String {
        self.request("INVITE", &self.branch, self.cseq, phone, None)
    }

    pub fn request(
        &self,
        method: &str,
        branch: &str,
        cseq: u32,
        phone: &Phone,
        to_tag: Option<&str>,
    ) -> String {
        let authorization = self
            .authorization
            .as_ref()
            .map(|value| format!("Proxy-Authorization: {value}\r\n"))
            .unwrap_or_default();
        let to_tag = to_tag.map(|tag| format!(";tag={tag}")).unwrap_or_default();
        let (content_type, body) = match (&self.sdp, method) {
            (Some(sdp), "INVITE") => ("Content-Type: application/sdp\r\n", sdp.as_str()),
            _ => ("", ""),
        };
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {address};branch={branch};rport\r\n\
             Max-Forwards: {max_forwards}\r\n\
             From: <sip:{from}@{DOMAIN}>;tag=caller-tag\r\n\
             To: <{uri}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <{contact}>\r\n\
             {authorization}{content_type}Content-Length: {length}\r\n\r\n{body}",
            uri = self.request_uri,
            address = phone.address,
            max_forwards = self.max_forwards,
            from = self.from_user,
            call_id = self.call_id,
            contact = phone.contact(self.from_user),
            length = body.len(),
        )
    }

    /// ACK for a non-2xx final response: same branch (RFC 3261 §17.1.1.3).
    pub fn ack_for(&self, response: &Message, phone: &Phone) -> String {
        let to_tag = response
            .to()
            .unwrap()
            .tag()
            .map(|tag| String::from_utf8_lossy(tag).into_owned());
        self.request("ACK", &self.branch, self.cseq, phone, to_tag.as_deref())
    }

    /// Sends the INVITE, takes the 407, ACKs it and sends the INVITE again with credentials of
    /// `auth_user`.
    pub async fn invite_authenticated(&mut self, phone: &Phone, auth_user: &str) {
        phone.send(self.invite(phone)).await;
        let challenge = phone.receive_response(407).await;
        phone.send(self.ack_for(&challenge, phone)).await;
        let challenges: Vec<DigestChallenge> = challenge
            .header_values(&HeaderName::ProxyAuthenticate)
            .map(|value| DigestChallenge::parse(std::str::from_utf8(value).unwrap()).unwrap())
            .collect();
        assert_eq!(challenges.len(), 1, "MD5 alone by default");
        assert_eq!(challenges[0].realm, DOMAIN);
        let chosen = select_challenge(&challenges).unwrap();
        let password = format!("{auth_user}-secret");
        let answer = answer_challenge(
            chosen,
            &ClientCredentials {
                username: auth_user,
                password: &password,
                realm: Some(DOMAIN),
            },
            &RequestToSign {
                method: "INVITE",
                uri: &self.request_uri,
                body: b"",
            },
            1,
            &mut rand::rng(),
        )
        .unwrap();
        self.authorization = Some(answer.to_header_value().unwrap());
        self.cseq += 1;
        self.branch = new_branch();
        phone.send(self.invite(phone)).await;
    }
}

pub fn new_branch() -> String {
    format!("z9hG4bK{}", hex::encode(rand::random::<[u8; 8]>()))
}

pub fn uri(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}
