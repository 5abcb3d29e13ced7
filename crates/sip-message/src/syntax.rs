//! Byte classes and scanners from the RFC 3261 §25.1 ABNF. Everything works on bytes;
//! nothing here looks at Unicode properties.

/// Header values keep folding as received, so inside a value CR and LF only ever appear as
/// part of LWS (`CRLF 1*WSP`, RFC 3261 §7.3.1); treating them as white space unfolds on read.
#[inline]
pub(crate) fn is_lws(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// `token` characters (RFC 3261 §25.1): alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
#[inline]
pub fn is_token_byte(byte: u8) -> bool {
    TOKEN[usize::from(byte)]
}

/// Lookup table for [`is_token_byte`]: one load instead of a chain of compares per byte.
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        byte += 1;
    }
    table
};

/// Whether `bytes` is a non-empty `token`.
pub fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_token_byte(b))
}

/// Position of `needle` in `haystack`. Header parts are mostly a few dozen bytes, where a
/// plain loop beats the setup cost of a vectorised search; long inputs go to `memchr`.
#[inline]
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    if haystack.len() >= 64 {
        memchr::memchr(needle, haystack)
    } else {
        haystack.iter().position(|&b| b == needle)
    }
}

/// Strips leading and trailing LWS.
pub(crate) fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if is_lws(*first) {
            bytes = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = bytes {
        if is_lws(*last) {
            bytes = rest;
        } else {
            break;
        }
    }
    bytes
}

/// Index of the first non-LWS byte at or after `from`.
#[inline]
pub(crate) fn skip_lws(bytes: &[u8], mut from: usize) -> usize {
    while from < bytes.len() && is_lws(bytes[from]) {
        from += 1;
    }
    from
}

/// Given `bytes[start] == b'"'`, the index just past the closing quote of the
/// `quoted-string`, honouring `quoted-pair` escapes. `None` when unterminated.
pub(crate) fn quoted_string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return Some(index + 1),
            _ => index += 1,
        }
    }
    None
}

/// Splits a list header value on the commas that separate its elements (RFC 3261 §7.3.1),
/// ignoring commas inside quoted strings and inside `<...>`. Elements are trimmed; empty
/// elements are yielded as empty slices so callers can reject `,,`.
#[derive(Debug, Clone)]
pub(crate) struct ListSplit<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> ListSplit<'a> {
    pub(crate) fn new(value: &'a [u8]) -> ListSplit<'a> {
        ListSplit { rest: Some(value) }
    }
}

impl<'a> Iterator for ListSplit<'a> {
    type Item = Result<&'a [u8], ()>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.rest?;
        match first_element_end(bytes) {
            Ok(Some(comma)) => {
                self.rest = Some(&bytes[comma + 1..]);
                Some(Ok(trim(&bytes[..comma])))
            }
            Ok(None) => {
                self.rest = None;
                Some(Ok(trim(bytes)))
            }
            Err(()) => {
                self.rest = None;
                Some(Err(()))
            }
        }
    }
}

/// Index of the comma that ends the first element of a list value (RFC 3261 §7.3.1),
/// skipping quoted strings and `<...>`; `None` when the value is one element, `Err` on an
/// unterminated quoted string.
pub(crate) fn first_element_end(bytes: &[u8]) -> Result<Option<usize>, ()> {
    let mut index = 0;
    loop {
        // Jump between the only bytes that matter; most values have none of them.
        let Some(offset) = memchr::memchr3(b'"', b'<', b',', &bytes[index..]) else {
            return Ok(None);
        };
        index += offset;
        match bytes[index] {
            b'"' => index = quoted_string_end(bytes, index).ok_or(())?,
            // A URI in angle brackets may hold commas; a lone '<' runs to the end.
            b'<' => match memchr::memchr(b'>', &bytes[index..]) {
                Some(close) => index += close + 1,
                None => return Ok(None),
            },
            _ => return Ok(Some(index)),
        }
    }
}

/// Parses a decimal number of at most `u32` range. Leading zeros are allowed
/// (RFC 4475 §3.1.1.1); anything else, including overflow, is an error.
pub(crate) fn parse_u32(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() {
        return None;
    }
    let mut value: u32 = 0;
    for &byte in bytes {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u32::from(byte - b'0'))?;
    }
    Some(value)
}

/// Removes the quotes and `quoted-pair` backslashes of a quoted string; returns the input
/// borrowed when there is nothing to unescape.
pub fn unquote(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let inner = match bytes {
        [b'"', inner @ .., b'"'] => inner,
        _ => return std::borrow::Cow::Borrowed(bytes),
    };
    if !inner.contains(&b'\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut iter = inner.iter();
    while let Some(&byte) = iter.next() {
        if byte == b'\\' {
            if let Some(&escaped) = iter.next() {
                out.push(escaped);
            }
        } else {
            out.push(byte);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split_respects_quotes_and_angle_brackets() {
        let value = b"\"a, b\" <sip:x@y;p=1,2>;q=1 , <sip:z@w>,,";
        let parts: Vec<_> = ListSplit::new(value).map(|p| p.unwrap()).collect();
        assert_eq!(
            parts,
            vec![
                &b"\"a, b\" <sip:x@y;p=1,2>;q=1"[..],
                &b"<sip:z@w>"[..],
                &b""[..],
                &b""[..]
            ]
        );
    }

    #[test]
    fn list_split_reports_unterminated_quote() {
        let mut split = ListSplit::new(b"\"abc, def");
        assert_eq!(split.next(), Some(Err(())));
        assert_eq!(split.next(), None);
    }

    #[test]
    fn parse_u32_handles_leading_zeros_and_overflow() {
        assert_eq!(parse_u32(b"0009"), Some(9));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
    }

    #[test]
    fn unquote_removes_quoted_pairs() {
        assert_eq!(&*unquote(b"\"J Rosenberg \\\\\\\"\""), b"J Rosenberg \\\"");
        assert_eq!(&*unquote(b"plain"), b"plain");
    }

    #[test]
    fn trim_strips_folding() {
        assert_eq!(trim(b"\r\n  abc \t"), b"abc");
    }
}
