//! The route set of a dialog and where its requests go (RFC 3261 §12.1.1, §12.1.2, §12.2.1.1).

use bytes::Bytes;
use sip_message::{HeaderName, Message, NameAddr, Uri};

use super::DialogError;

/// The Record-Route values of the dialog-creating exchange, in the order requests must visit
/// them. Each entry is kept as received (name-addr with URI and header parameters), as the
/// Route headers must copy them (§12.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RouteSet {
    entries: Vec<Bytes>,
}

/// Request-URI and Route values of a request in the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Destination {
    pub(super) request_uri: Bytes,
    pub(super) routes: Vec<Bytes>,
}

impl RouteSet {
    /// The Record-Route values of `message`, top first; `reverse` for the UAC, which reads them
    /// from the response (§12.1.2), not for the UAS, which reads them from the request (§12.1.1).
    pub(super) fn from_record_route(message: &Message, reverse: bool) -> Result<Self, DialogError> {
        let mut entries = Vec::new();
        for value in message.header_values(&HeaderName::RecordRoute) {
            NameAddr::parse(value, &HeaderName::RecordRoute)
                .map_err(|_| DialogError::Missing("a valid Record-Route"))?;
            entries.push(Bytes::copy_from_slice(value));
        }
        if reverse {
            entries.reverse();
        }
        Ok(RouteSet { entries })
    }

    pub(super) fn entries(&self) -> &[Bytes] {
        &self.entries
    }

    /// The URI of the first entry (the next hop), if any.
    fn first_uri(&self) -> Option<Bytes> {
        let first = self.entries.first()?;
        let address = NameAddr::parse(first, &HeaderName::Route).ok()?;
        Some(Bytes::copy_from_slice(address.uri.raw))
    }

    /// Where a request goes (§12.2.1.1). Without a route set: to the remote target. When the
    /// first entry is a loose router (`lr`): Request-URI the remote target, Route the whole set.
    /// Else the first entry is a strict router: it becomes the Request-URI (minus parameters a
    /// Request-URI may not carry), Route is the rest of the set followed by the remote target.
    pub(super) fn destination(&self, remote_target: &Bytes) -> Destination {
        let Some(first) = self.entries.first() else {
            return Destination {
                request_uri: remote_target.clone(),
                routes: Vec::new(),
            };
        };
        let strict_uri = NameAddr::parse(first, &HeaderName::Route)
            .ok()
            .filter(|address| !address.uri.is_loose_route())
            .map(|address| request_uri_form(&address.uri));
        match strict_uri {
            None => Destination {
                request_uri: remote_target.clone(),
                routes: self.entries.clone(),
            },
            Some(request_uri) => {
                let mut routes: Vec<Bytes> = self.entries[1..].to_vec();
                let mut target = Vec::with_capacity(remote_target.len() + 2);
                target.push(b'<');
                target.extend_from_slice(remote_target);
                target.push(b'>');
                routes.push(Bytes::from(target));
                Destination {
                    request_uri,
                    routes,
                }
            }
        }
    }

    /// The URI the request is sent to (§8.1.2): the first route, else the remote target. The
    /// same for loose and strict routing.
    pub(super) fn next_hop(&self, remote_target: &Bytes) -> Bytes {
        self.first_uri().unwrap_or_else(|| remote_target.clone())
    }
}

/// `uri` as a Request-URI may carry it: without the `method` parameter and the headers
/// component, which RFC 3261 §19.1.1 (Table 1) allows only outside a Request-URI.
fn request_uri_form(uri: &Uri<'_>) -> Bytes {
    if !uri.is_sip() || (uri.headers.is_none() && !uri.params.contains(b"method")) {
        return Bytes::copy_from_slice(uri.raw);
    }
    let base = uri.raw.as_ptr() as usize;
    let offset_of = |part: &[u8]| part.as_ptr() as usize - base;
    let params = uri.params.as_bytes();
    // Everything up to the `;` before the parameters, or the `?` before the headers.
    let end = if !params.is_empty() {
        offset_of(params) - 1
    } else {
        uri.headers
            .map_or(uri.raw.len(), |headers| offset_of(headers) - 1)
    };
    let mut out = uri.raw[..end].to_vec();
    for (name, value) in uri.params.iter() {
        if name.eq_ignore_ascii_case(b"method") {
            continue;
        }
        out.push(b';');
        out.extend_from_slice(name);
        if let Some(value) = value {
            out.push(b'=');
            out.extend_from_slice(value);
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str]) -> RouteSet {
        RouteSet {
            entries: values
                .iter()
                .map(|value| Bytes::copy_from_slice(value.as_bytes()))
                .collect(),
        }
    }

    fn target() -> Bytes {
        Bytes::from_static(b"sip:bob@192.0.2.4:5070;transport=tcp")
    }

    #[test]
    fn an_empty_route_set_sends_to_the_remote_target() {
        let destination = set(&[]).destination(&target());
        assert_eq!(destination.request_uri, target());
        assert!(destination.routes.is_empty());
        assert_eq!(set(&[]).next_hop(&target()), target());
    }

    #[test]
    fn a_loose_first_route_keeps_the_target_and_every_route() {
        let routes = set(&["<sip:p1.example.com;lr>;x=1", "<sip:p2.example.com>"]);
        let destination = routes.destination(&target());
        assert_eq!(destination.request_uri, target());
        assert_eq!(destination.routes, routes.entries);
        assert_eq!(
            routes.next_hop(&target()),
            Bytes::from_static(b"sip:p1.example.com;lr")
        );
    }

    #[test]
    fn a_strict_first_route_becomes_the_request_uri_and_the_target_goes_last() {
        let routes = set(&[
            "<sip:strict.example.com;method=INVITE;maddr=192.0.2.9?Subject=x>",
            "<sip:p2.example.com;lr>",
        ]);
        let destination = routes.destination(&target());
        assert_eq!(
            destination.request_uri,
            Bytes::from_static(b"sip:strict.example.com;maddr=192.0.2.9")
        );
        assert_eq!(
            destination.routes,
            [
                Bytes::from_static(b"<sip:p2.example.com;lr>"),
                Bytes::from_static(b"<sip:bob@192.0.2.4:5070;transport=tcp>"),
            ]
        );
    }

    #[test]
    fn request_uri_form_drops_only_what_a_request_uri_may_not_carry() {
        let plain = Uri::parse(b"sip:a;b@host.example.com:5060;transport=udp").unwrap();
        assert_eq!(request_uri_form(&plain), Bytes::from_static(plain.raw));
        let headers_only = Uri::parse(b"sip:host.example.com?Subject=hi").unwrap();
        assert_eq!(
            request_uri_form(&headers_only),
            Bytes::from_static(b"sip:host.example.com")
        );
        let method_only = Uri::parse(b"sip:u@h;method=BYE").unwrap();
        assert_eq!(
            request_uri_form(&method_only),
            Bytes::from_static(b"sip:u@h")
        );
    }

    #[test]
    fn record_route_is_reversed_only_for_the_uac() {
        let message = crate::dialog::test_support::parse(
            "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1
Record-Route: <sip:p3.example.com;lr>, <sip:p2.example.com;lr>
Record-Route: <sip:p1.example.com;lr>
From: <sip:a@example.com>;tag=1
To: <sip:b@example.com>;tag=2
Call-ID: c
CSeq: 1 INVITE
Content-Length: 0

",
        );
        let uac = RouteSet::from_record_route(&message, true).unwrap();
        let uas = RouteSet::from_record_route(&message, false).unwrap();
        let hosts = |routes: &RouteSet| -> Vec<String> {
            routes
                .entries()
                .iter()
                .map(|entry| String::from_utf8_lossy(entry).into_owned())
                .collect()
        };
        assert_eq!(
            hosts(&uac),
            [
                "<sip:p1.example.com;lr>",
                "<sip:p2.example.com;lr>",
                "<sip:p3.example.com;lr>"
            ]
        );
        assert_eq!(
            hosts(&uas),
            [
                "<sip:p3.example.com;lr>",
                "<sip:p2.example.com;lr>",
                "<sip:p1.example.com;lr>"
            ]
        );
    }
}
