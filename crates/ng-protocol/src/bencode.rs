//! Bencode (the BitTorrent encoding, BEP 3) as the ng protocol uses it: byte strings,
//! integers, lists and dictionaries with byte-string keys.
//!
//! The decoder borrows byte strings from the input (an SDP body is never copied) and bounds
//! nesting depth and element count, so a hostile datagram cannot exhaust the stack or memory.
//! The encoder writes dictionary keys sorted, as BEP 3 requires.

use std::borrow::Cow;

/// Deepest nesting of lists/dictionaries the decoder accepts. Real ng messages nest 3 levels
/// (`codec` → `strip` → list); 32 leaves room and keeps recursion cheap.
pub const MAX_DEPTH: usize = 32;

/// Most values (of any kind, counted over the whole message) the decoder accepts.
pub const MAX_VALUES: usize = 65_536;

/// A bencode value. Byte strings are [`Cow`] so decoded values borrow from the datagram while
/// replies can own what they build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `<len>:<bytes>`
    Bytes(Cow<'a, [u8]>),
    /// `i<n>e`
    Int(i64),
    /// `l…e`
    List(Vec<Value<'a>>),
    /// `d…e`, in wire order (the decoder keeps duplicates; lookups return the first).
    Dict(Vec<(Cow<'a, [u8]>, Value<'a>)>),
}

/// Why a bencode buffer was refused; `offset` is the byte position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("bencode ends early (offset {offset})")]
    UnexpectedEnd { offset: usize },
    #[error("unexpected byte {byte:#04x} at offset {offset}")]
    UnexpectedByte { byte: u8, offset: usize },
    #[error("invalid integer at offset {offset}")]
    InvalidInteger { offset: usize },
    #[error("invalid string length at offset {offset}")]
    InvalidLength { offset: usize },
    #[error("dictionary key is not a byte string at offset {offset}")]
    NonStringKey { offset: usize },
    #[error("nesting deeper than {MAX_DEPTH} at offset {offset}")]
    TooDeep { offset: usize },
    #[error("more than {MAX_VALUES} values")]
    TooManyValues,
    #[error("{count} trailing bytes after the value")]
    TrailingBytes { count: usize },
}

impl<'a> Value<'a> {
    /// A byte-string value borrowing `bytes`.
    #[must_use]
    pub fn bytes(bytes: &'a [u8]) -> Self {
        Value::Bytes(Cow::Borrowed(bytes))
    }

    /// A byte-string value owning a copy of `text`.
    #[must_use]
    pub fn string(text: impl Into<String>) -> Value<'static> {
        Value::Bytes(Cow::Owned(text.into().into_bytes()))
    }

    /// The byte string, if this is one.
    #[must_use]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if it is one and valid.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The integer; a decimal byte string counts too, since rtpengine accepts `"20"` for `20`.
    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// The list items, if this is a list.
    #[must_use]
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The first value under `key`, if this is a dictionary holding it.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k.as_ref() == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Copies every borrowed byte string so the value outlives its input.
    #[must_use]
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::Int(n) => Value::Int(n),
            Value::List(items) => Value::List(items.into_iter().map(Value::into_owned).collect()),
            Value::Dict(entries) => Value::Dict(
                entries
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }

    /// Encodes the value, dictionary keys sorted by raw bytes (BEP 3).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Bytes(b) => encode_bytes(b, out),
            Value::Int(n) => {
                out.push(b'i');
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'e');
            }
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(entries) => {
                let mut sorted: Vec<&(Cow<'a, [u8]>, Value<'a>)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
                out.push(b'd');
                for (key, value) in sorted {
                    encode_bytes(key, out);
                    value.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Decodes exactly one value filling all of `input`.
///
/// # Errors
/// [`DecodeError`] for malformed input, too deep nesting, too many values or trailing bytes.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    let (value, used) = decode_prefix(input)?;
    if used != input.len() {
        return Err(DecodeError::TrailingBytes {
            count: input.len() - used,
        });
    }
    Ok(value)
}

/// Decodes the first value of `input` and returns it with the number of bytes it took
/// (for stream framing, where messages sit back to back).
///
/// # Errors
/// As [`decode`], except that trailing bytes are allowed.
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    let mut decoder = Decoder {
        input,
        pos: 0,
        values: 0,
    };
    let value = decoder.value(0)?;
    Ok((value, decoder.pos))
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    values: usize,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEnd { offset: self.pos })
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(DecodeError::TooManyValues);
        }
        match self.peek()? {
            b'i' => self.integer().map(Value::Int),
            b'0'..=b'9' => self.byte_string().map(|b| Value::Bytes(Cow::Borrowed(b))),
            b'l' => {
                self.enter(depth)?;
                let mut items = Vec::new();
                loop {
                    if self.peek()? == b'e' {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                }
                Ok(Value::List(items))
            }
            b'd' => {
                self.enter(depth)?;
                let mut entries = Vec::new();
                loop {
                    let byte = self.peek()?;
                    if byte == b'e' {
                        self.pos += 1;
                        break;
                    }
                    if !byte.is_ascii_digit() {
                        return Err(DecodeError::NonStringKey { offset: self.pos });
                    }
                    let key = self.byte_string()?;
                    let value = self.value(depth + 1)?;
                    entries.push((Cow::Borrowed(key), value));
                }
                Ok(Value::Dict(entries))
            }
            byte => Err(DecodeError::UnexpectedByte {
                byte,
                offset: self.pos,
            }),
        }
    }

    fn enter(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { offset: self.pos });
        }
        self.pos += 1;
        Ok(())
    }

    /// `i<n>e`: optional minus, decimal digits, no overflow.
    fn integer(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        self.pos += 1;
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'e')
            .ok_or(DecodeError::UnexpectedEnd {
                offset: self.input.len(),
            })?;
        let digits = &rest[..end];
        let unsigned = digits.strip_prefix(b"-").unwrap_or(digits);
        if unsigned.is_empty() || !unsigned.iter().all(u8::is_ascii_digit) {
            return Err(DecodeError::InvalidInteger { offset: start });
        }
        let value = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(DecodeError::InvalidInteger { offset: start })?;
        self.pos += end + 1;
        Ok(value)
    }

    /// `<len>:<bytes>`, borrowed from the input.
    fn byte_string(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let rest = &self.input[self.pos..];
        let colon = rest
            .iter()
            .take(20)
            .position(|&b| b == b':')
            .ok_or(if rest.len() < 20 {
                DecodeError::UnexpectedEnd {
                    offset: self.input.len(),
                }
            } else {
                DecodeError::InvalidLength { offset: start }
            })?;
        let digits = &rest[..colon];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(DecodeError::InvalidLength { offset: start });
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(DecodeError::InvalidLength { offset: start })?;
        let body_start = self.pos + colon + 1;
        let body_end = body_start
            .checked_add(len)
            .filter(|&end| end <= self.input.len())
            .ok_or(DecodeError::UnexpectedEnd {
                offset: self.input.len(),
            })?;
        self.pos = body_end;
        Ok(&self.input[body_start..body_end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_ping_dictionary_borrowing_strings() {
        let input = b"d7:command4:pinge";
        let value = decode(input).unwrap();
        assert_eq!(value.get("command").and_then(Value::as_str), Some("ping"));
        match value.get("command") {
            Some(Value::Bytes(Cow::Borrowed(b))) => {
                assert!(std::ptr::eq(b.as_ptr(), input[12..].as_ptr()));
            }
            other => panic!("expected a borrowed string, got {other:?}"),
        }
    }

    #[test]
    fn decodes_nested_values_and_negative_integers() {
        let value = decode(b"d4:listli-5ei0e3:abce3:numi42ee").unwrap();
        let list = value.get("list").and_then(Value::as_list).unwrap();
        assert_eq!(list[0], Value::Int(-5));
        assert_eq!(list[1], Value::Int(0));
        assert_eq!(list[2].as_str(), Some("abc"));
        assert_eq!(value.get("num").and_then(Value::as_int), Some(42));
    }

    #[test]
    fn decimal_string_counts_as_integer() {
        assert_eq!(Value::string("20").as_int(), Some(20));
        assert_eq!(Value::string("x").as_int(), None);
    }

    #[test]
    fn encoder_sorts_dictionary_keys() {
        let value = Value::Dict(vec![
            (Cow::Borrowed(b"sdp".as_slice()), Value::string("v=0")),
            (Cow::Borrowed(b"result".as_slice()), Value::string("ok")),
        ]);
        assert_eq!(value.encode(), b"d6:result2:ok3:sdp3:v=0e");
    }

    #[test]
    fn refuses_malformed_input_with_typed_errors() {
        assert_eq!(
            decode(b"i12"),
            Err(DecodeError::UnexpectedEnd { offset: 3 })
        );
        assert_eq!(
            decode(b"ie"),
            Err(DecodeError::InvalidInteger { offset: 0 })
        );
        assert_eq!(
            decode(b"i1-2e"),
            Err(DecodeError::InvalidInteger { offset: 0 })
        );
        assert_eq!(
            decode(b"5:abc"),
            Err(DecodeError::UnexpectedEnd { offset: 5 })
        );
        assert_eq!(
            decode(b"di1e1:ae"),
            Err(DecodeError::NonStringKey { offset: 1 })
        );
        assert_eq!(
            decode(b"x"),
            Err(DecodeError::UnexpectedByte {
                byte: b'x',
                offset: 0
            })
        );
        assert_eq!(
            decode(b"i1ei2e"),
            Err(DecodeError::TrailingBytes { count: 3 })
        );
        assert_eq!(
            decode(b"99999999999999999999999:a"),
            Err(DecodeError::InvalidLength { offset: 0 })
        );
    }

    #[test]
    fn bounds_nesting_depth() {
        let mut deep = vec![b'l'; MAX_DEPTH + 1];
        deep.extend(vec![b'e'; MAX_DEPTH + 1]);
        assert!(matches!(decode(&deep), Err(DecodeError::TooDeep { .. })));
        let mut ok = vec![b'l'; MAX_DEPTH];
        ok.extend(vec![b'e'; MAX_DEPTH]);
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn bounds_value_count() {
        let mut many = b"l".to_vec();
        for _ in 0..=MAX_VALUES {
            many.extend_from_slice(b"i0e");
        }
        many.push(b'e');
        assert_eq!(decode(&many), Err(DecodeError::TooManyValues));
    }

    #[test]
    fn prefix_decoding_reports_consumed_length() {
        let (value, used) = decode_prefix(b"d1:ai1eeXYZ").unwrap();
        assert_eq!(used, 8);
        assert_eq!(value.get("a"), Some(&Value::Int(1)));
    }
}
