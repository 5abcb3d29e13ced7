//! The call router over real UDP on 127.0.0.1 with SQLite in a temporary directory: small SIP
//! user agents written here (raw messages, `sip-message` to read the answers, `sip-core` to
//! answer digest challenges) call each other through a running proxy.
//!
//! Timer C and the media check run on tokio's clock held still ([`in_frozen_time`]): the test
//! moves it to the millisecond a timer is due instead of sleeping. A check that something did
//! not happen waits for the proxy to have taken in what came before ([`Phone::ping_proxy`]) or
//! for the accounting writer to drain ([`Platform::acc`]), not for a pause.

mod routing_support;

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ng_protocol::{Value, bencode, frame_reply, split_message};
use proxy::authentication::AuthenticationPolicy;
use proxy::media::MediaRelayConfig;
use proxy::{DEFAULT_MEDIA_CHECK_INTERVAL, DEFAULT_TIMER_C, ProxyConfig};
use sip_core::auth::{
    ClientCredentials, DigestAlgorithm, DigestChallenge, DigestPolicy, RequestToSign,
    answer_challenge, select_challenge,
};
use sip_message::{HeaderName, Message, Method};
use store::Store;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use routing_support::*;

#[tokio::test]
async fn alice_calls_bob_rings_answers_and_hangs_up() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    platform.register("bob", &bob).await;

    let mut call = Call::new("alice", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;

    let invite = bob.receive_request(Method::Invite).await;
    assert_eq!(
        invite.request_uri_bytes(),
        Some(bob.contact("bob").as_bytes())
    );
    assert_eq!(invite.max_forwards().unwrap(), Some(69));
    assert_eq!(invite.vias().count(), 2, "the proxy added its Via");
    assert!(
        !invite.has_header(&HeaderName::ProxyAuthorization),
        "the caller's digest answer was consumed, not forwarded to the callee"
    );
    let record_route: Vec<_> = invite.header_values(&HeaderName::RecordRoute).collect();
    let own_route = format!("<sip:{};lr>", platform.proxy.local_addr());
    assert_eq!(record_route, [own_route.as_bytes()]);

    bob.answer(&invite, 180, "Ringing", "bob").await;
    let ringing = alice.receive_response(180).await;
    assert_eq!(ringing.vias().count(), 1, "the proxy removed its Via");
    bob.answer(&invite, 200, "OK", "bob").await;
    let ok = alice.receive_response(200).await;
    assert_eq!(ok.to().unwrap().tag(), Some(&b"callee-tag"[..]));
    // bob did not see an ACK yet and retransmits: the 2xx is relayed again (RFC 6026).
    bob.answer(&invite, 200, "OK", "bob").await;
    let retransmitted = alice.receive_response(200).await;
    assert_eq!(retransmitted.call_id().unwrap(), ok.call_id().unwrap());

    // ACK and BYE follow the Record-Route: through the proxy to bob's contact.
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {address};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             Route: {own_route}\r\n\
             From: <sip:alice@{DOMAIN}>;tag=caller-tag\r\n\
             To: <sip:bob@{DOMAIN}>;tag=callee-tag\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            target = bob.contact("bob"),
            address = alice.address,
            branch = new_branch(),
            call_id = call.call_id,
        )
    };
    alice.send(in_dialog("ACK", call.cseq)).await;
    let ack = bob.receive_request(Method::Ack).await;
    assert!(
        !ack.has_header(&HeaderName::Route),
        "the proxy popped its Route"
    );

    alice.send(in_dialog("BYE", call.cseq + 1)).await;
    let bye = bob.receive_request(Method::Bye).await;
    bob.answer(&bye, 200, "OK", "bob").await;
    alice.receive_response(200).await;

    let rows = platform.acc(&call.call_id).await;
    assert_eq!(summary(&rows), [("INVITE", 200), ("BYE", 200)]);
    let start = &rows[0];
    assert_eq!(start.from_tag, "caller-tag");
    assert_eq!(start.to_tag, "callee-tag");
    assert_eq!(
        start.source_user_id.as_deref(),
        Some(platform.uuids["alice"].as_str())
    );
    assert_eq!(
        start.destination_user_id.as_deref(),
        Some(platform.uuids["bob"].as_str())
    );
    assert_eq!(start.source_ip, "127.0.0.1");
    assert_eq!(
        (
            start.destination_user.as_str(),
            start.destination_domain.as_str()
        ),
        ("bob", DOMAIN)
    );
    assert_eq!(
        rows[1].source_user_id, start.source_user_id,
        "BYE keeps the call's parties"
    );
    assert!(rows[1].time_ms >= start.time_ms);
}

#[tokio::test]
async fn a_cancelled_call_ends_with_487_and_the_callee_gets_cancel() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    platform.register("bob", &bob).await;

    let mut call = Call::new("alice", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;
    let invite = bob.receive_request(Method::Invite).await;
    bob.answer(&invite, 180, "Ringing", "bob").await;
    alice.receive_response(180).await;

    let cancel = call
        .request("CANCEL", &call.branch, call.cseq, &alice, None)
        .replace("Proxy-Authorization", "X-Ignored");
    alice.send(cancel).await;
    let mut statuses = vec![
        alice.receive().await.status().unwrap(),
        alice.receive().await.status().unwrap(),
    ];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 487],
        "200 for the CANCEL, 487 for the INVITE"
    );

    let cancel = bob.receive_request(Method::Cancel).await;
    bob.answer(&cancel, 200, "OK", "bob").await;
    bob.answer(&invite, 487, "Request Terminated", "bob").await;
    // The proxy's client transaction acknowledges the 487 (RFC 3261 §17.1.1.3).
    bob.receive_request(Method::Ack).await;

    let rows = platform.acc(&call.call_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].method.as_str(), rows[0].sip_code), ("INVITE", 487));
}

#[tokio::test]
async fn offline_and_unknown_callees_get_480_and_404() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;

    let mut offline = Call::new("alice", &uri("carol"));
    offline.invite_authenticated(&alice, "alice").await;
    let response = alice.receive_response(480).await;
    alice.send(offline.ack_for(&response, &alice)).await;

    let mut unknown = Call::new("alice", &uri("nobody"));
    unknown.invite_authenticated(&alice, "alice").await;
    let response = alice.receive_response(404).await;
    alice.send(unknown.ack_for(&response, &alice)).await;

    let rows = platform.acc(&offline.call_id).await;
    assert_eq!((rows[0].method.as_str(), rows[0].sip_code), ("INVITE", 480));
    let rows = platform.acc(&unknown.call_id).await;
    assert_eq!((rows[0].method.as_str(), rows[0].sip_code), ("INVITE", 404));
    assert_eq!(rows[0].destination_user_id, None);
}

#[tokio::test]
async fn a_call_to_a_number_reaches_its_subscriber() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    platform.register("bob", &bob).await;

    let mut call = Call::new("alice", &uri("+43111002"));
    call.invite_authenticated(&alice, "alice").await;
    let invite = bob.receive_request(Method::Invite).await;
    assert_eq!(
        invite.request_uri_bytes(),
        Some(bob.contact("bob").as_bytes())
    );
    bob.answer(&invite, 486, "Busy Here", "bob").await;
    let busy = alice.receive_response(486).await;
    alice.send(call.ack_for(&busy, &alice)).await;

    let rows = platform.acc(&call.call_id).await;
    assert_eq!((rows[0].method.as_str(), rows[0].sip_code), ("INVITE", 486));
    assert_eq!(
        rows[0].destination_user_id.as_deref(),
        Some(platform.uuids["bob"].as_str())
    );
}

#[tokio::test]
async fn forking_rings_both_contacts_and_cancels_the_one_that_did_not_answer() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let desk = Phone::new(&platform.proxy).await;
    let mobile = Phone::new(&platform.proxy).await;
    platform.register("bob", &desk).await;
    platform.register("bob", &mobile).await;

    let mut call = Call::new("alice", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;
    let desk_invite = desk.receive_request(Method::Invite).await;
    let mobile_invite = mobile.receive_request(Method::Invite).await;
    desk.answer(&desk_invite, 180, "Ringing", "bob").await;
    mobile.answer(&mobile_invite, 180, "Ringing", "bob").await;
    alice.receive_response(180).await;
    alice.receive_response(180).await;

    mobile.answer(&mobile_invite, 200, "OK", "bob").await;
    alice.receive_response(200).await;

    let cancel = desk.receive_request(Method::Cancel).await;
    desk.answer(&cancel, 200, "OK", "bob").await;
    desk.answer(&desk_invite, 487, "Request Terminated", "bob")
        .await;
    desk.receive_request(Method::Ack).await;
    // The 487 of the cancelled branch never reaches the caller.
    assert!(
        alice
            .try_receive(Duration::from_millis(300))
            .await
            .is_none()
    );

    let rows = platform.acc(&call.call_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].method.as_str(), rows[0].sip_code), ("INVITE", 200));
}

#[tokio::test]
async fn contacts_ring_in_q_order_and_the_next_q_after_the_first_fails() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let desk = Phone::new(&platform.proxy).await;
    let mobile = Phone::new(&platform.proxy).await;
    platform.register_with_q("bob", &mobile, 500).await;
    platform.register_with_q("bob", &desk, 1000).await;

    let mut call = Call::new("alice", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;
    // The desk (q=1.0) rings alone.
    let desk_invite = desk.receive_request(Method::Invite).await;
    assert!(
        mobile
            .try_receive(Duration::from_millis(300))
            .await
            .is_none(),
        "the lower q rings only after the higher one failed"
    );
    desk.answer(&desk_invite, 486, "Busy Here", "bob").await;
    desk.receive_request(Method::Ack).await;
    // Then the mobile (q=0.5); its answer reaches the caller, the desk's busy does not.
    let mobile_invite = mobile.receive_request(Method::Invite).await;
    mobile.answer(&mobile_invite, 200, "OK", "bob").await;
    let ok = alice.receive_response(200).await;
    assert_eq!(ok.to().unwrap().tag(), Some(&b"callee-tag"[..]));
    assert!(
        alice
            .try_receive(Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_6xx_from_the_first_q_ends_the_search() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let desk = Phone::new(&platform.proxy).await;
    let mobile = Phone::new(&platform.proxy).await;
    platform.register_with_q("bob", &desk, 1000).await;
    platform.register_with_q("bob", &mobile, 500).await;

    let mut call = Call::new("alice", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;
    let desk_invite = desk.receive_request(Method::Invite).await;
    desk.answer(&desk_invite, 603, "Decline", "bob").await;
    alice.receive_response(603).await;
    assert!(
        mobile
            .try_receive(Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_caller_posing_as_someone_else_gets_403() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    platform.register("bob", &bob).await;

    // From says carol, the credentials are alice's.
    let mut call = Call::new("carol", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;
    let response = alice.receive_response(403).await;
    alice.send(call.ack_for(&response, &alice)).await;
    assert!(bob.try_receive(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn max_forwards_zero_gets_483_and_foreign_callers_get_403() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;

    let mut exhausted = Call::new("alice", &uri("bob"));
    exhausted.max_forwards = 0;
    alice.send(exhausted.invite(&alice)).await;
    let response = alice.receive_response(483).await;
    alice.send(exhausted.ack_for(&response, &alice)).await;

    // A caller from a domain the platform does not serve: no open relay.
    let foreign = Call::new("mallory", &uri("bob")).invite(&alice).replace(
        &format!("From: <sip:mallory@{DOMAIN}>"),
        "From: <sip:mallory@evil.example>",
    );
    alice.send(foreign).await;
    alice.receive_response(403).await;
}

#[tokio::test]
async fn an_unauthenticated_invite_is_challenged_with_407_for_the_caller_domain() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let call = Call::new("alice", &uri("bob"));
    alice.send(call.invite(&alice)).await;
    let challenge = alice.receive_response(407).await;
    let first = challenge
        .header_values(&HeaderName::ProxyAuthenticate)
        .next()
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap();
    assert!(first.contains("algorithm=MD5"), "MD5 by default: {first}");
    assert!(first.contains(&format!("realm=\"{DOMAIN}\"")));
    alice.send(call.ack_for(&challenge, &alice)).await;
    // A challenge is no call attempt: nothing accounted. Once the proxy has taken in the ACK
    // too and the writer has drained, a row that is not there was never made.
    alice.ping_proxy().await;
    let rows = platform.acc(&call.call_id).await;
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test]
async fn a_contact_behind_a_path_is_reached_through_the_load_balancer() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    // The "load balancer" is a socket of its own; bob's contact is an address behind a NAT.
    let load_balancer = Phone::new(&platform.proxy).await;
    let path = format!(
        "<sip:{};lr;received=sip:198.51.100.7:41000%3Btransport%3Dudp>",
        load_balancer.address
    );
    platform
        .register_with_path("bob", &bob, vec![path.clone()])
        .await;

    // alice's request arrives "through the load balancer" (same host: trusted), which names
    // her real address.
    let mut call = Call::new("alice", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;
    let invite = load_balancer.receive_request(Method::Invite).await;
    assert_eq!(
        invite.request_uri_bytes(),
        Some(bob.contact("bob").as_bytes())
    );
    let routes: Vec<_> = invite.header_values(&HeaderName::Route).collect();
    assert_eq!(routes, [path.as_bytes()], "the Path is the route set");
    assert!(bob.try_receive(Duration::from_millis(200)).await.is_none());
    load_balancer.answer(&invite, 603, "Decline", "bob").await;
    let declined = alice.receive_response(603).await;
    alice.send(call.ack_for(&declined, &alice)).await;
}

#[tokio::test]
async fn the_source_named_by_a_trusted_load_balancer_is_accounted_and_not_forwarded() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    platform.register("bob", &bob).await;
    // The nonce is bound to the source IP the load balancer names, so the whole exchange
    // carries the header.
    let mut natted = Call::new("alice", &uri("bob"));
    let with_source = |text: String| {
        text.replace(
            "Content-Length: 0",
            "X-Voxide-Source: UDP 198.51.100.7:41000\r\nContent-Length: 0",
        )
    };
    alice.send(with_source(natted.invite(&alice))).await;
    let challenge = alice.receive_response(407).await;
    alice.send(natted.ack_for(&challenge, &alice)).await;
    let challenges: Vec<DigestChallenge> = challenge
        .header_values(&HeaderName::ProxyAuthenticate)
        .map(|value| DigestChallenge::parse(std::str::from_utf8(value).unwrap()).unwrap())
        .collect();
    let answer = answer_challenge(
        select_challenge(&challenges).unwrap(),
        &ClientCredentials {
            username: "alice",
            password: "alice-secret",
            realm: Some(DOMAIN),
        },
        &RequestToSign {
            method: "INVITE",
            uri: &natted.request_uri,
            body: b"",
        },
        1,
        &mut rand::rng(),
    )
    .unwrap();
    natted.authorization = Some(answer.to_header_value().unwrap());
    natted.cseq += 1;
    natted.branch = new_branch();
    alice.send(with_source(natted.invite(&alice))).await;
    let invite = bob.receive_request(Method::Invite).await;
    assert!(
        !invite.has_header(&HeaderName::from_static("X-Voxide-Source")),
        "internal headers stay inside"
    );
    bob.answer(&invite, 486, "Busy Here", "bob").await;
    let busy = alice.receive_response(486).await;
    alice.send(natted.ack_for(&busy, &alice)).await;
    bob.receive_request(Method::Ack).await;
    let rows = platform.acc(&natted.call_id).await;
    assert_eq!(rows[0].source_ip, "198.51.100.7");
}

/// Timer C at its default of 181 s, on a clock that moves only when the test says: the branch
/// is cancelled at the very millisecond, without three minutes of waiting.
#[tokio::test(start_paused = true)]
async fn timer_c_cancels_a_branch_that_rings_forever() {
    in_frozen_time(async {
        let platform = Platform::start().await;
        let alice = Phone::new(&platform.proxy).await;
        let bob = Phone::new(&platform.proxy).await;
        platform.register("bob", &bob).await;
        let mut call = Call::new("alice", &uri("bob"));
        call.invite_authenticated(&alice, "alice").await;
        let invite = bob.receive_request(Method::Invite).await;
        // The 180 (re)starts Timer C (RFC 3261 §16.7 step 2) at this instant.
        bob.answer(&invite, 180, "Ringing", "bob").await;
        alice.receive_response(180).await;

        // A millisecond before Timer C, the branch still rings.
        tokio::time::advance(DEFAULT_TIMER_C - Duration::from_millis(1)).await;
        bob.ping_proxy().await;
        bob.assert_nothing_waiting();
        alice.assert_nothing_waiting();

        // No final response from bob at 181 s: the proxy cancels the branch (§16.8).
        tokio::time::advance(Duration::from_millis(1)).await;
        let cancel = bob.receive_request(Method::Cancel).await;
        let branch = |message: &Message| message.top_via().unwrap().branch().map(<[u8]>::to_vec);
        assert_eq!(
            branch(&cancel),
            branch(&invite),
            "the CANCEL matches the INVITE"
        );
        bob.answer(&cancel, 200, "OK", "bob").await;
        bob.answer(&invite, 487, "Request Terminated", "bob").await;
        bob.receive_request(Method::Ack).await;
        // The caller did not cancel: the branch counts as timed out (§16.8), so alice hears
        // 408, the answer a no-answer call forward will hook into.
        let timed_out = alice.receive_response(408).await;
        alice.send(call.ack_for(&timed_out, &alice)).await;
        assert_eq!(
            summary(&platform.acc(&call.call_id).await),
            [("INVITE", 408)]
        );
    })
    .await;
}

/// The address the fake relay writes into every SDP it passes.
const RELAY_MEDIA_IP: &str = "127.0.0.9";

/// A media relay speaking just enough ng for the router, on 127.0.0.1: `offer` and `answer`
/// put [`RELAY_MEDIA_IP`] into the SDP, and the relay holds the call until the test drops it
/// (what a real relay's media timeout does); `query` answers for the calls it holds and
/// `Unknown call-id` for the others, and is reported to the test.
struct FakeRelay {
    address: SocketAddr,
    calls: Arc<Mutex<HashSet<String>>>,
    queries: mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeRelay {
    async fn start() -> FakeRelay {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(HashSet::new()));
        let (report, queries) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve_ng(socket, Arc::clone(&calls), report));
        FakeRelay {
            address,
            calls,
            queries,
            task,
        }
    }

    /// The relay forgets `call_id`, as after a media timeout.
    fn drop_call(&self, call_id: &str) {
        assert!(
            self.calls.lock().unwrap().remove(call_id),
            "the relay held {call_id}"
        );
    }

    /// The Call-ID of the next `query` the relay answered.
    async fn next_query(&mut self) -> String {
        self.queries.recv().await.expect("the relay runs")
    }
}

impl Drop for FakeRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_ng(
    socket: UdpSocket,
    calls: Arc<Mutex<HashSet<String>>>,
    queries: mpsc::UnboundedSender<String>,
) {
    let mut buffer = vec![0u8; 65_535];
    loop {
        let (length, peer) = socket.recv_from(&mut buffer).await.unwrap();
        let message = split_message(&buffer[..length]).unwrap();
        let request = bencode::decode(message.payload).unwrap();
        let text = |key: &str| {
            request
                .get(key)
                .and_then(Value::as_bytes)
                .map(|value| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_default()
        };
        let call_id = text("call-id");
        let command = text("command");
        let ok = ("result", Value::string("ok"));
        let entries = match command.as_str() {
            "ping" => vec![("result", Value::string("pong"))],
            "offer" | "answer" => {
                calls.lock().unwrap().insert(call_id.clone());
                let sdp: String = text("sdp")
                    .split_inclusive("\r\n")
                    .map(|line| {
                        if line.starts_with("c=") {
                            format!("c=IN IP4 {RELAY_MEDIA_IP}\r\n")
                        } else {
                            line.to_owned()
                        }
                    })
                    .collect();
                vec![ok, ("sdp", Value::string(sdp))]
            }
            "query" if calls.lock().unwrap().contains(&call_id) => vec![ok],
            "query" => vec![
                ("result", Value::string("error")),
                ("error-reason", Value::string("Unknown call-id")),
            ],
            "delete" => {
                calls.lock().unwrap().remove(&call_id);
                vec![ok]
            }
            // Refused: the proxy turns that into a SIP error the test reports.
            other => vec![
                ("result", Value::string("error")),
                (
                    "error-reason",
                    Value::string(format!("unknown command {other}")),
                ),
            ],
        };
        let reply = Value::Dict(
            entries
                .into_iter()
                .map(|(key, value)| (Cow::Borrowed(key.as_bytes()), value))
                .collect(),
        );
        socket
            .send_to(&frame_reply(message.cookie, &reply), peer)
            .await
            .unwrap();
        if command == "query" {
            let _ = queries.send(call_id);
        }
    }
}

/// An SDP offer or answer from a phone at 127.0.0.1.
fn phone_sdp(user: &str, port: u16) -> String {
    format!(
        "v=0\r\no={user} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\n"
    )
}

/// The `c=` lines of a message's SDP.
fn connection_lines(message: &Message) -> Vec<String> {
    String::from_utf8_lossy(&message.body())
        .lines()
        .filter(|line| line.starts_with("c="))
        .map(str::to_owned)
        .collect()
}

/// Alice calls `user` at `callee` with SDP, which the callee answers with SDP: both go
/// through the relay. Returns the call once confirmed and acknowledged.
async fn call_through_the_relay(
    platform: &Platform,
    alice: &Phone,
    callee: &Phone,
    user: &'static str,
) -> Call {
    let mut call = Call::new("alice", &uri(user));
    call.sdp = Some(phone_sdp("alice", 40_000));
    call.invite_authenticated(alice, "alice").await;
    let invite = callee.receive_request(Method::Invite).await;
    let relayed = [format!("c=IN IP4 {RELAY_MEDIA_IP}")];
    assert_eq!(
        connection_lines(&invite),
        relayed,
        "the offer went through the relay"
    );
    callee
        .answer_with_sdp(&invite, 200, user, &phone_sdp(user, 40_002))
        .await;
    let ok = alice.receive_response(200).await;
    assert_eq!(connection_lines(&ok), relayed, "so did the answer");
    let ack = format!(
        "ACK {contact} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {address};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:{proxy};lr>\r\n\
         From: <sip:alice@{DOMAIN}>;tag=caller-tag\r\n\
         To: <sip:{user}@{DOMAIN}>;tag=callee-tag\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} ACK\r\n\
         Content-Length: 0\r\n\r\n",
        contact = callee.contact(user),
        address = alice.address,
        branch = new_branch(),
        proxy = platform.proxy.local_addr(),
        call_id = call.call_id,
        cseq = call.cseq,
    );
    alice.send(ack).await;
    callee.receive_request(Method::Ack).await;
    call
}

/// The media check at its default interval, on a clock that moves only when the test says:
/// at the first check, the call the relay dropped (its media timeout) gets a BYE to both
/// phones and its stop record, and the call the relay still holds goes on.
#[tokio::test(start_paused = true)]
async fn a_call_the_relay_dropped_is_ended_at_the_next_media_check() {
    in_frozen_time(async {
        let mut relay = FakeRelay::start().await;
        let platform = Platform::start_with(ProxyConfig {
            media_relay: Some(MediaRelayConfig::new(relay.address)),
            ..ProxyConfig::default()
        })
        .await;
        let alice = Phone::new(&platform.proxy).await;
        let bob = Phone::new(&platform.proxy).await;
        let carol = Phone::new(&platform.proxy).await;
        platform.register("bob", &bob).await;
        platform.register("carol", &carol).await;
        // Both calls are confirmed at this instant: the first check is one interval later.
        let kept = call_through_the_relay(&platform, &alice, &bob, "bob").await;
        let dropped = call_through_the_relay(&platform, &alice, &carol, "carol").await;
        relay.drop_call(&dropped.call_id);

        // A millisecond before the interval, the relay has not been asked.
        tokio::time::advance(DEFAULT_MEDIA_CHECK_INTERVAL - Duration::from_millis(1)).await;
        alice.ping_proxy().await;
        assert!(relay.queries.try_recv().is_err(), "asked too early");

        // At the interval it is asked about both calls.
        tokio::time::advance(Duration::from_millis(1)).await;
        let mut asked = [relay.next_query().await, relay.next_query().await];
        asked.sort();
        let mut expected = [kept.call_id.clone(), dropped.call_id.clone()];
        expected.sort();
        assert_eq!(asked, expected);

        // The dropped call: a BYE to carol on alice's behalf and one to alice on carol's.
        for (phone, from_tag, to_tag) in [
            (&carol, "caller-tag", "callee-tag"),
            (&alice, "callee-tag", "caller-tag"),
        ] {
            let bye = phone.receive_request(Method::Bye).await;
            assert_eq!(bye.call_id().unwrap(), dropped.call_id.as_bytes());
            assert_eq!(bye.from().unwrap().tag(), Some(from_tag.as_bytes()));
            assert_eq!(bye.to().unwrap().tag(), Some(to_tag.as_bytes()));
            let reason: Vec<_> = bye.header_values(&HeaderName::Reason).collect();
            assert_eq!(reason, [&b"SIP;cause=200;text=\"Media Timeout\""[..]]);
            phone.answer(&bye, 200, "OK", "carol").await;
        }
        // The proxy ends the calls of one check before it takes the ping: the kept call got
        // no BYE, and the stop record is queued.
        alice.ping_proxy().await;
        bob.assert_nothing_waiting();
        let rows = platform.acc(&dropped.call_id).await;
        assert_eq!(summary(&rows), [("INVITE", 200), ("BYE", 200)]);
        assert_eq!(rows[1].sip_reason, "Media Timeout");
        assert_eq!(
            rows[1].source_user_id.as_deref(),
            Some(platform.uuids["alice"].as_str())
        );
        assert_eq!(
            summary(&platform.acc(&kept.call_id).await),
            [("INVITE", 200)]
        );
    })
    .await;
}

#[tokio::test]
async fn options_without_a_user_is_answered_by_the_proxy_itself() {
    let platform = Platform::start().await;
    let pinger = Phone::new(&platform.proxy).await;
    let ping = Call::new("alice", &format!("sip:{}", platform.proxy.local_addr()));
    pinger
        .send(ping.request("OPTIONS", &ping.branch, 1, &pinger, None))
        .await;
    pinger.receive_response(200).await;
}

/// Server the MariaDB variant talks to (loopback only).
const MARIADB_SERVER: &str = "mysql://root@127.0.0.1:3306";

#[tokio::test]
async fn accounting_records_land_in_mariadb_too() {
    if std::env::var("VOXIDE_SKIP_MARIADB").as_deref() == Ok("1") {
        return;
    }
    let url = format!("{MARIADB_SERVER}/voxide_t_{:016x}", rand::random::<u64>());
    let store = Store::connect(&url).await.unwrap_or_else(|error| {
        panic!(
            "MariaDB at {MARIADB_SERVER} is unreachable ({error}); start it or set \
             VOXIDE_SKIP_MARIADB=1 to skip the MariaDB variant"
        )
    });
    let platform =
        Platform::start_on(store, ProxyConfig::default(), tempfile::tempdir().unwrap()).await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    platform.register("bob", &bob).await;
    let mut call = Call::new("alice", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;
    let invite = bob.receive_request(Method::Invite).await;
    bob.answer(&invite, 486, "Busy Here", "bob").await;
    let busy = alice.receive_response(486).await;
    alice.send(call.ack_for(&busy, &alice)).await;
    let rows = platform.acc(&call.call_id).await;
    let Platform { store, proxy, .. } = platform;
    proxy.shutdown().await;
    store.close().await;
    <sqlx::MySql as sqlx::migrate::MigrateDatabase>::drop_database(&url)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].method.as_str(), rows[0].sip_code), ("INVITE", 486));
    assert_eq!(rows[0].sip_reason, "Busy Here");
    assert_eq!(rows[0].from_tag, "caller-tag");
}

#[tokio::test]
async fn an_in_dialog_request_not_routed_through_us_is_refused() {
    let platform = Platform::start().await;
    let mallory = Phone::new(&platform.proxy).await;
    let victim = Phone::new(&platform.proxy).await;
    // A BYE with a To tag whose Route points elsewhere: forwarding it would make us a relay.
    let bye = format!(
        "BYE {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {address};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:{target_address};lr>\r\n\
         From: <sip:mallory@{DOMAIN}>;tag=a\r\n\
         To: <sip:victim@{DOMAIN}>;tag=b\r\n\
         Call-ID: relay-attempt\r\n\
         CSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        target = victim.contact("victim"),
        target_address = victim.address,
        address = mallory.address,
        branch = new_branch(),
    );
    mallory.send(bye).await;
    mallory.receive_response(404).await;
    assert!(
        victim
            .try_receive(Duration::from_millis(200))
            .await
            .is_none()
    );
}

/// A UDP port free right now on 127.0.0.1 (SIPp must not default to 5060).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .unwrap()
        .port()
}

/// Runs SIPp with `scenario` from tests/sipp and `arguments`; panics with its errors on failure.
async fn sipp(scenario: &str, arguments: Vec<String>) {
    let scenario = format!("{}/tests/sipp/{scenario}", env!("CARGO_MANIFEST_DIR"));
    let log_dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("sipp")
        .current_dir(log_dir.path())
        .args(["-sf", &scenario, "-m", "1", "-i", "127.0.0.1"])
        .args([
            "-timeout",
            "15s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .args(arguments)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("SIPp finishes")
        .expect("SIPp runs (install sip-tester)");
    let errors = std::fs::read_dir(log_dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with("errors.log"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        output.status.success(),
        "SIPp {scenario} failed ({:?}):\n{}\n{}\n{errors}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn sipp_phones_call_each_other_through_the_proxy() {
    // SIPp 3.6 answers only MD5 and reads the first challenge: offer MD5 alone, as C5 ships.
    let platform = Platform::start_with(ProxyConfig {
        authentication: AuthenticationPolicy {
            digest: DigestPolicy {
                offered_algorithms: vec![DigestAlgorithm::Md5],
                ..DigestPolicy::default()
            },
            ..AuthenticationPolicy::default()
        },
        ..ProxyConfig::default()
    })
    .await;
    let callee_port = free_udp_port();
    platform
        .bind(
            "bob",
            format!("sip:bob@127.0.0.1:{callee_port}"),
            Vec::new(),
            1000,
        )
        .await;
    let callee = tokio::spawn(sipp(
        "callee.xml",
        vec!["-p".to_owned(), callee_port.to_string()],
    ));
    // The callee takes the INVITE once its socket is bound.
    let callee_address = SocketAddr::from(([127, 0, 0, 1], callee_port));
    tokio::task::spawn_blocking(move || {
        e2e_tests::wait_until_udp_bound(callee_address, None, Duration::from_secs(10))
    })
    .await
    .unwrap()
    .expect("SIPp binds its port");
    let call_id = format!("sipp-{:08x}", rand::random::<u32>());
    sipp(
        "caller.xml",
        vec![
            "-p".to_owned(),
            free_udp_port().to_string(),
            "-s".to_owned(),
            "bob".to_owned(),
            "-au".to_owned(),
            "alice".to_owned(),
            "-ap".to_owned(),
            "alice-secret".to_owned(),
            "-auth_uri".to_owned(),
            format!("bob@{DOMAIN}"),
            "-cid_str".to_owned(),
            call_id.clone(),
            platform.proxy.local_addr().to_string(),
        ],
    )
    .await;
    callee.await.unwrap();
    let rows = platform.acc(&call_id).await;
    assert_eq!(summary(&rows), [("INVITE", 200), ("BYE", 200)]);
}

#[tokio::test]
async fn when_every_branch_fails_the_best_response_wins() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let desk = Phone::new(&platform.proxy).await;
    let mobile = Phone::new(&platform.proxy).await;
    platform.register("bob", &desk).await;
    platform.register("bob", &mobile).await;

    let mut call = Call::new("alice", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;
    let desk_invite = desk.receive_request(Method::Invite).await;
    let mobile_invite = mobile.receive_request(Method::Invite).await;
    desk.answer(&desk_invite, 486, "Busy Here", "bob").await;
    desk.receive_request(Method::Ack).await;
    // Nothing goes upstream while a branch is still open (RFC 3261 §16.7 step 6).
    assert!(
        alice
            .try_receive(Duration::from_millis(200))
            .await
            .is_none()
    );
    mobile.answer(&mobile_invite, 603, "Decline", "bob").await;
    mobile.receive_request(Method::Ack).await;
    let declined = alice.receive_response(603).await;
    alice.send(call.ack_for(&declined, &alice)).await;

    let rows = platform.acc(&call.call_id).await;
    assert_eq!((rows[0].method.as_str(), rows[0].sip_code), ("INVITE", 603));
}
