//! A 2xx no transaction knows (the callee retransmitting its answer to a proxy that restarted
//! while the first copy was held for its accounting row): the caller gets it only once its
//! INVITE row is on disk, and the row is written once. Real UDP on 127.0.0.1, SQLite.

mod routing_support;

use routing_support::*;

#[tokio::test]
async fn a_stray_2xx_gets_its_invite_row_once_before_the_caller_sees_it() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    let proxy = platform.proxy.local_addr();
    let call_id = "stray-answer@routing-test";
    let answer = format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP {proxy};branch=z9hG4bK-vxed0000000000000000.1\r\n\
         Via: SIP/2.0/UDP {alice};branch=z9hG4bKalice1\r\n\
         From: <sip:alice@{DOMAIN}>;tag=alice-tag\r\n\
         To: <sip:bob@{DOMAIN}>;tag=bob-tag\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <{contact}>\r\n\
         Content-Length: 0\r\n\r\n",
        alice = alice.address,
        contact = bob.contact("bob"),
    );
    bob.send(&answer).await;
    let forwarded = alice.receive_response(200).await;
    assert_eq!(forwarded.vias().count(), 1, "the proxy's Via is gone");
    let rows = platform.acc(call_id).await;
    assert_eq!(summary(&rows), [("INVITE", 200)]);
    assert_eq!(rows[0].destination_user, "bob");
    assert_eq!(rows[0].source_user, "alice");
    assert_eq!(rows[0].source_user_id, None, "the parties are unknown here");

    // Retransmissions still reach the caller; the row is not doubled.
    bob.send(&answer).await;
    alice.receive_response(200).await;
    assert_eq!(summary(&platform.acc(call_id).await), [("INVITE", 200)]);
}

#[tokio::test]
async fn a_retransmitted_2xx_of_an_accounted_call_writes_no_second_row() {
    let platform = Platform::start().await;
    let alice = Phone::new(&platform.proxy).await;
    let bob = Phone::new(&platform.proxy).await;
    platform.register("bob", &bob).await;
    let mut call = Call::new("alice", &uri("bob"));
    call.invite_authenticated(&alice, "alice").await;
    let invite = bob.receive_request(sip_message::Method::Invite).await;
    let ok = bob.response(&invite, 200, "OK", "bob");
    bob.send(ok.to_bytes()).await;
    alice.receive_response(200).await;
    // The server transaction is gone once the 2xx went out (RFC 6026 keeps only the client
    // side matching it); the callee, missing its ACK, sends the 2xx again.
    bob.send(ok.to_bytes()).await;
    alice.receive_response(200).await;
    assert_eq!(
        summary(&platform.acc(&call.call_id).await),
        [("INVITE", 200)]
    );
}
