//! Edits of a parsed message (recorded in the header index, untouched bytes kept) and
//! printing it back with the edits applied.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;

impl Message {
    /// Replaces the Request-URI (ignored on responses).
    pub fn set_request_uri(&mut self, new_uri: impl Into<Bytes>) {
        if let StartLine::Request { uri, .. } = &mut self.start_line {
            self.owned.push(new_uri.into());
            *uri = Value::Owned((self.owned.len() - 1) as u32);
            self.start_line_edited = true;
            self.edited = true;
        }
    }

    /// Adds a Via line on top of all others (RFC 3261 §16.6 step 8).
    pub fn push_via(&mut self, value: impl Into<Bytes>) {
        let at = self.position_of(&HeaderName::Via).unwrap_or(0);
        self.insert(at, HeaderName::Via, value.into());
    }

    /// Removes the topmost Via value, also when several values share its line
    /// (RFC 3261 §18.1.2 / §16.7 step 3). `false` when there is no Via.
    pub fn pop_via(&mut self) -> bool {
        self.remove_first_value(&HeaderName::Via)
    }

    /// Appends a header after the last one.
    pub fn add_header(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let at = self.headers.len();
        self.insert(at, name, value.into());
    }

    /// Inserts a header before all others.
    pub fn add_header_first(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.insert(0, name, value.into());
    }

    /// Inserts a header before the first header called `name` (or appends it), so a new
    /// Record-Route lands on top of existing ones (RFC 3261 §16.6 step 4).
    pub fn add_header_before(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let at = self.position_of(&name).unwrap_or(self.headers.len());
        self.insert(at, name, value.into());
    }

    fn insert(&mut self, at: usize, name: HeaderName, value: Bytes) {
        let id = name.id();
        let name = match name {
            HeaderName::Other(bytes) => Some(self.own(bytes)),
            _ => None,
        };
        let value = self.own(value);
        self.headers.insert(
            at,
            HeaderEntry {
                id,
                name,
                line: None,
                value,
            },
        );
        self.edited = true;
    }

    /// Removes every header called `name`; returns how many lines went.
    pub fn remove_header(&mut self, name: &HeaderName) -> usize {
        let before = self.headers.len();
        let id = name.id();
        let mut headers = std::mem::take(&mut self.headers);
        headers.retain(|entry| !self.is_named(entry, id, name));
        self.headers = headers;
        let removed = before - self.headers.len();
        if removed > 0 {
            self.edited = true;
        }
        removed
    }

    /// Removes the lines of `name` whose value `remove` picks (e.g. the one Proxy-Authorization
    /// a proxy consumed, leaving those for other realms in place); returns how many went.
    pub fn remove_header_where(
        &mut self,
        name: &HeaderName,
        mut remove: impl FnMut(&[u8]) -> bool,
    ) -> usize {
        let before = self.headers.len();
        let id = name.id();
        let mut headers = std::mem::take(&mut self.headers);
        headers
            .retain(|entry| !(self.is_named(entry, id, name) && remove(self.value(&entry.value))));
        self.headers = headers;
        let removed = before - self.headers.len();
        if removed > 0 {
            self.edited = true;
        }
        removed
    }

    /// Replaces every header called `name` by one line with `value`, at the place of the
    /// first one (appended when absent).
    pub fn replace_header(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let at = self.position_of(&name);
        self.remove_header(&name);
        let at = at.unwrap_or(self.headers.len());
        self.insert(at, name, value.into());
    }

    /// Removes the first value of `name`: the whole line when it holds one value, else the
    /// first list element (e.g. pop the top Route, RFC 3261 §16.4). `false` when absent.
    pub fn remove_first_value(&mut self, name: &HeaderName) -> bool {
        let Some(index) = self.position_of(name) else {
            return false;
        };
        let value = self.value(&self.headers[index].value);
        let split_at = if name.is_list() {
            crate::syntax::first_element_end(value).ok().flatten()
        } else {
            None
        };
        let rest_offset = split_at.map(|comma| {
            let rest = &value[comma + 1..];
            comma + 1 + (rest.len() - trim_start_lws(rest).len())
        });
        match rest_offset {
            Some(offset) if offset < value.len() => {
                let rest = match self.headers[index].value {
                    Value::Span(span) => {
                        Value::Span(Span::new(span.start as usize + offset, span.end as usize))
                    }
                    Value::Owned(owned) => {
                        let rest = self.owned[owned as usize].slice(offset..);
                        self.own(rest)
                    }
                };
                let entry = &mut self.headers[index];
                entry.value = rest;
                entry.line = None;
            }
            _ => {
                self.headers.remove(index);
            }
        }
        self.edited = true;
        true
    }

    /// Replaces the body and rewrites Content-Length to match (in place of the first
    /// Content-Length line, or appended). Content-Type is the caller's to set or remove.
    pub fn set_body(&mut self, body: Bytes) {
        let length = Bytes::from(body.len().to_string());
        self.body = self.own(body);
        self.replace_header(HeaderName::ContentLength, length);
    }

    // ----- printing -----

    /// The message as it goes on the wire: untouched bytes exactly as received, edits
    /// applied. Without edits this shares the received buffer.
    pub fn to_bytes(&self) -> Bytes {
        if !self.edited {
            return self.buffer.slice(self.message_span.range());
        }
        let mut out = BytesMut::with_capacity(self.printed_len_estimate());
        self.write_to(&mut out);
        out.freeze()
    }

    fn printed_len_estimate(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|entry| match (&entry.line, &entry.value) {
                (Some(line), _) => line.range().len(),
                (None, value) => self.value(value).len() + self.entry_name_bytes(entry).len() + 4,
            })
            .sum();
        self.start_line_span.range().len() + 64 + headers + 2 + self.value(&self.body).len()
    }

    /// Appends the wire form to `out` (see [`Message::to_bytes`]).
    pub fn write_to(&self, out: &mut BytesMut) {
        if !self.edited {
            out.extend_from_slice(&self.buffer[self.message_span.range()]);
            return;
        }
        if self.start_line_edited {
            match &self.start_line {
                StartLine::Request { method, uri } => {
                    out.extend_from_slice(method.as_bytes());
                    out.put_u8(b' ');
                    out.extend_from_slice(self.value(uri));
                    out.extend_from_slice(b" SIP/2.0\r\n");
                }
                StartLine::Response { status, reason } => {
                    out.extend_from_slice(b"SIP/2.0 ");
                    out.extend_from_slice(status.to_string().as_bytes());
                    out.put_u8(b' ');
                    out.extend_from_slice(self.value(reason));
                    out.extend_from_slice(b"\r\n");
                }
            }
        } else {
            out.extend_from_slice(&self.buffer[self.start_line_span.range()]);
        }
        for entry in &self.headers {
            match entry.line {
                Some(line) => out.extend_from_slice(&self.buffer[line.range()]),
                None => {
                    out.extend_from_slice(self.entry_name_bytes(entry));
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(self.value(&entry.value));
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.value(&self.body));
    }
}
