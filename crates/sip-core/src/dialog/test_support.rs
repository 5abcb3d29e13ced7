//! Messages for the dialog unit tests, parsed from wire text.

use bytes::Bytes;
use sip_message::Message;

pub(crate) fn parse(text: &str) -> Message {
    Message::parse(Bytes::from(text.replace('\n', "\r\n"))).expect("test message parses")
}
