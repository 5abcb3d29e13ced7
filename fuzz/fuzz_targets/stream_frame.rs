//! Oracle: stream framing never claims more bytes than it was given, consumes keep-alives
//! only as CR/LF, and frames the same message whether the stream arrives whole or with more
//! bytes behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_message::{Frame, Limits, stream};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    match stream::frame(data, &limits) {
        Ok(Frame::Incomplete) | Err(_) => {}
        Ok(Frame::KeepAlive(count)) => {
            assert!(count > 0 && count <= data.len());
            assert!(data[..count].iter().all(|&b| b == b'\r' || b == b'\n'));
        }
        Ok(Frame::Complete(length)) => {
            assert!(length > 0 && length <= data.len());
            // Appending more stream bytes must not change where this message ends.
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"OPTIONS sip:x SIP/2.0\r\n");
            assert_eq!(stream::frame(&longer, &limits).ok(), Some(Frame::Complete(length)));
        }
    }
});
