//! `;name=value` parameter lists, shared by URIs (RFC 3261 §19.1.1) and header values
//! (`generic-param`, RFC 3261 §25.1). Values are handed out raw: never percent-decoded,
//! quoted strings keep their quotes, so comparisons see the bytes as received.

use crate::syntax::{is_token_byte, quoted_string_end, skip_lws, trim};

/// A borrowed parameter list. `raw` starts just after the first `;` and runs to the end of
/// the parameter section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a [u8],
}

impl<'a> Params<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Params<'a> {
        Params { raw }
    }

    /// The parameter section as received (without the leading `;`).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// `None` when `name` is absent, `Some(None)` when it has no value, `Some(Some(v))`
    /// with the raw value otherwise. Names compare case-insensitively.
    pub fn get(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        // Parameter names are a few bytes; a plain loop beats the chunked std compare.
        self.iter()
            .find(|(candidate, _)| {
                candidate.len() == name.len()
                    && candidate
                        .iter()
                        .zip(name)
                        .all(|(a, b)| a.eq_ignore_ascii_case(b))
            })
            .map(|(_, value)| value)
    }

    /// Whether `name` is present, with or without a value.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    /// Every `(name, value)` in order, trimmed of LWS around the `=`.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.raw }
    }
}

impl<'a> IntoIterator for Params<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);
    type IntoIter = ParamIter<'a>;
    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Params`].
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let end = param_end(self.rest);
            let element = &self.rest[..end];
            self.rest = if end < self.rest.len() {
                &self.rest[end + 1..]
            } else {
                &[]
            };
            let element = trim(element);
            if element.is_empty() {
                continue;
            }
            return Some(split_param(element));
        }
    }
}

/// End of one parameter: the next `;` outside a quoted string.
fn param_end(bytes: &[u8]) -> usize {
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b';' => return index,
            b'"' => index = quoted_string_end(bytes, index).unwrap_or(bytes.len()),
            _ => index += 1,
        }
    }
    bytes.len()
}

fn split_param(element: &[u8]) -> (&[u8], Option<&[u8]>) {
    match crate::syntax::find_byte(b'=', element) {
        Some(eq) => (trim(&element[..eq]), Some(trim(&element[eq + 1..]))),
        None => (element, None),
    }
}

/// Checks a header parameter section (`*( SEMI generic-param )`, RFC 3261 §25.1): every
/// element has a token name and a token / host / quoted-string value. Empty elements
/// (`;;`) are errors (RFC 4475 §3.1.2.1).
pub(crate) fn validate_header_params(raw: &[u8]) -> Result<(), &'static str> {
    // One pass: name token, optional `= value`, then `;` or the end, LWS allowed around
    // each separator (SEMI and EQUAL are SWS-delimited, RFC 3261 §25.1).
    let mut index = skip_lws(raw, 0);
    loop {
        let name_start = index;
        while index < raw.len() && is_token_byte(raw[index]) {
            index += 1;
        }
        if index == name_start {
            return Err(if index == raw.len() || raw[index] == b';' {
                "empty parameter"
            } else {
                "parameter name is not a token"
            });
        }
        index = skip_lws(raw, index);
        if raw.get(index) == Some(&b'=') {
            index = skip_lws(raw, index + 1);
            match raw.get(index) {
                Some(b'"') => {
                    index =
                        quoted_string_end(raw, index).ok_or("malformed quoted parameter value")?;
                }
                Some(_) => {
                    let value_start = index;
                    // gen-value = token / host; host covers IPv6 references, and bare IPv6
                    // is tolerated in `received` (RFC 5118 §4.5).
                    while index < raw.len()
                        && (is_token_byte(raw[index]) || matches!(raw[index], b':' | b'[' | b']'))
                    {
                        index += 1;
                    }
                    if index == value_start {
                        return Err("invalid character in a parameter value");
                    }
                }
                None => return Err("empty parameter value"),
            }
            index = skip_lws(raw, index);
        }
        match raw.get(index) {
            None => return Ok(()),
            Some(b';') => index = skip_lws(raw, index + 1),
            Some(_) => return Err("unexpected character in the parameters"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_with_and_without_values() {
        let params = Params::new(b"lr;transport=TCP ; q = 0.5;x=\"a;b\"");
        let all: Vec<_> = params.iter().collect();
        assert_eq!(
            all,
            vec![
                (&b"lr"[..], None),
                (&b"transport"[..], Some(&b"TCP"[..])),
                (&b"q"[..], Some(&b"0.5"[..])),
                (&b"x"[..], Some(&b"\"a;b\""[..])),
            ]
        );
        assert_eq!(params.get(b"TRANSPORT"), Some(Some(&b"TCP"[..])));
        assert_eq!(params.get(b"lr"), Some(None));
        assert_eq!(params.get(b"maddr"), None);
    }

    #[test]
    fn validation_rejects_empty_elements() {
        assert!(validate_header_params(b"branch=z9hG4bK1;rport").is_ok());
        assert!(validate_header_params(b";,").is_err());
        assert!(validate_header_params(b"a;;b").is_err());
        assert!(validate_header_params(b"received=2001:db8::9:255;branch=z").is_ok());
        assert!(validate_header_params(b"x=\"unterminated").is_err());
        assert!(validate_header_params(b" tag = 1 ;\r\n lr ; q=\"a;b\"").is_ok());
        assert!(validate_header_params(b"tag=a b").is_err());
        assert!(validate_header_params(b"tag=").is_err());
        assert!(validate_header_params(b"").is_err());
        assert!(validate_header_params(b"a=<b>").is_err());
    }
}
