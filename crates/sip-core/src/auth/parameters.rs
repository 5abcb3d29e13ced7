//! The `Digest` auth-param list shared by challenges and credentials
//! (RFC 3261 §25.1 `challenge` / `credentials`, RFC 7616 §3.3–§3.4).
//!
//! Hand-written because it is small and the typed header views of `sip-message` hand us
//! either this raw text or already-split parameters; both paths end in the same structs.

/// Why a WWW-Authenticate / Authorization (or Proxy-) header value is not a usable
/// Digest challenge or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestSyntaxError {
    /// Nothing but whitespace.
    #[error("header value is empty")]
    Empty,
    /// Another scheme such as `Basic` or `Bearer` (RFC 3261 §22.1 allows only Digest).
    #[error("authentication scheme `{scheme}` is not Digest")]
    NotDigest {
        /// The scheme as received.
        scheme: String,
    },
    /// A parameter name was expected (RFC 3261 §25.1 `auth-param-name`).
    #[error("expected a parameter name at byte {position}")]
    ExpectedParameterName {
        /// Byte offset in the header value.
        position: usize,
    },
    /// A parameter name was not followed by `=`.
    #[error("expected `=` after parameter `{name}` at byte {position}")]
    ExpectedEquals {
        /// The parameter name.
        name: String,
        /// Byte offset in the header value.
        position: usize,
    },
    /// `name=` with nothing after it.
    #[error("parameter `{name}` has no value")]
    MissingValue {
        /// The parameter name.
        name: String,
    },
    /// A quoted-string without its closing quote.
    #[error("quoted string opened at byte {position} is not closed")]
    UnterminatedQuotedString {
        /// Byte offset of the opening quote.
        position: usize,
    },
    /// Two parameters not separated by a comma.
    #[error("expected `,` between parameters at byte {position}")]
    ExpectedComma {
        /// Byte offset in the header value.
        position: usize,
    },
    /// The same parameter twice; RFC 7616 §3.4 allows each directive once and a second
    /// copy could make two parties read different values.
    #[error("parameter `{name}` appears more than once")]
    DuplicateParameter {
        /// The parameter name, lowercased.
        name: String,
    },
    /// A parameter the scheme requires is absent (e.g. `nonce`, `response`).
    #[error("required parameter `{name}` is missing")]
    MissingParameter {
        /// The parameter name.
        name: &'static str,
    },
    /// A name or value is not UTF-8.
    #[error("parameter is not UTF-8")]
    NotUtf8,
    /// The header could not be read as an auth header at all.
    #[error("unreadable header: {0}")]
    Header(sip_message::ParseError),
    /// The `algorithm` parameter names an algorithm this implementation does not support.
    #[error("unsupported digest algorithm `{name}`")]
    UnsupportedAlgorithm {
        /// The token as received.
        name: String,
    },
}

/// A value that cannot be written into a header parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderValueError {
    /// CR, LF or another control character would break the header line (header injection).
    #[error("parameter `{parameter}` contains a control character")]
    ControlCharacter {
        /// The parameter being written.
        parameter: &'static str,
    },
    /// A parameter written without quotes (`algorithm`, `qop`, `nc`) is not a token.
    #[error("parameter `{parameter}` is not a token")]
    NotAToken {
        /// The parameter being written.
        parameter: &'static str,
    },
}

/// One parsed `name=value` pair: the name lowercased, the value unquoted and unescaped.
pub(crate) type Parameter = (String, String);

/// Parses `Digest name=value, name="quoted", …` into its parameters, checking the scheme.
pub(crate) fn parse_digest_parameters(text: &str) -> Result<Vec<Parameter>, DigestSyntaxError> {
    let bytes = text.as_bytes();
    let mut position = skip_whitespace(bytes, 0);
    if position == bytes.len() {
        return Err(DigestSyntaxError::Empty);
    }
    let scheme_start = position;
    while position < bytes.len() && is_token_byte(bytes[position]) {
        position += 1;
    }
    let scheme = &text[scheme_start..position];
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestSyntaxError::NotDigest {
            scheme: text[scheme_start..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned(),
        });
    }
    if position < bytes.len() && !is_whitespace(bytes[position]) {
        return Err(DigestSyntaxError::NotDigest {
            scheme: text[scheme_start..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned(),
        });
    }

    let mut parameters: Vec<Parameter> = Vec::new();
    loop {
        // Empty list elements (`a=1,,b=2`) are allowed by the `#rule` (RFC 7230 §7).
        position = skip_whitespace(bytes, position);
        while position < bytes.len() && bytes[position] == b',' {
            position = skip_whitespace(bytes, position + 1);
        }
        if position == bytes.len() {
            break;
        }
        let name_start = position;
        while position < bytes.len() && is_token_byte(bytes[position]) {
            position += 1;
        }
        if position == name_start {
            return Err(DigestSyntaxError::ExpectedParameterName { position });
        }
        let name = text[name_start..position].to_ascii_lowercase();
        position = skip_whitespace(bytes, position);
        if position == bytes.len() || bytes[position] != b'=' {
            return Err(DigestSyntaxError::ExpectedEquals { name, position });
        }
        position = skip_whitespace(bytes, position + 1);
        let value = if position < bytes.len() && bytes[position] == b'"' {
            let (value, next) = parse_quoted_string(text, position)?;
            position = next;
            value
        } else {
            let value_start = position;
            while position < bytes.len()
                && !is_whitespace(bytes[position])
                && bytes[position] != b','
                && bytes[position] != b'"'
            {
                position += 1;
            }
            if position == value_start {
                return Err(DigestSyntaxError::MissingValue { name });
            }
            text[value_start..position].to_owned()
        };
        if parameters.iter().any(|(existing, _)| *existing == name) {
            return Err(DigestSyntaxError::DuplicateParameter { name });
        }
        parameters.push((name, value));
        position = skip_whitespace(bytes, position);
        if position < bytes.len() && bytes[position] != b',' {
            return Err(DigestSyntaxError::ExpectedComma { position });
        }
    }
    Ok(parameters)
}

/// Checks split parameters (from a `sip-message` view) the same way the text parser
/// does: names lowercased, no duplicates.
pub(crate) fn collect_parameters<'a>(
    parameters: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Parameter>, DigestSyntaxError> {
    let mut collected: Vec<Parameter> = Vec::new();
    for (name, value) in parameters {
        let name = name.to_ascii_lowercase();
        if collected.iter().any(|(existing, _)| *existing == name) {
            return Err(DigestSyntaxError::DuplicateParameter { name });
        }
        collected.push((name, value.to_owned()));
    }
    Ok(collected)
}

/// Parses the quoted-string opening at `start`; returns the unescaped content and the
/// offset after the closing quote (RFC 3261 §25.1 `quoted-string`, `quoted-pair`).
fn parse_quoted_string(text: &str, start: usize) -> Result<(String, usize), DigestSyntaxError> {
    let mut value = String::new();
    let mut characters = text[start + 1..].char_indices();
    while let Some((offset, character)) = characters.next() {
        match character {
            '"' => return Ok((value, start + 1 + offset + 1)),
            '\\' => match characters.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            other => value.push(other),
        }
    }
    Err(DigestSyntaxError::UnterminatedQuotedString { position: start })
}

/// Takes the parameter `name` out of the list, if present.
pub(crate) fn take(parameters: &mut Vec<Parameter>, name: &str) -> Option<String> {
    let index = parameters
        .iter()
        .position(|(existing, _)| existing == name)?;
    Some(parameters.swap_remove(index).1)
}

/// Like [`take`] but the parameter must be there.
pub(crate) fn take_required(
    parameters: &mut Vec<Parameter>,
    name: &'static str,
) -> Result<String, DigestSyntaxError> {
    take(parameters, name).ok_or(DigestSyntaxError::MissingParameter { name })
}

/// Appends `, name="value"` (or `name="value"` first), escaping `"` and `\`.
pub(crate) fn push_quoted(
    output: &mut String,
    name: &'static str,
    value: &str,
) -> Result<(), HeaderValueError> {
    check_printable(name, value)?;
    push_separator(output);
    output.push_str(name);
    output.push_str("=\"");
    for character in value.chars() {
        if character == '"' || character == '\\' {
            output.push('\\');
        }
        output.push(character);
    }
    output.push('"');
    Ok(())
}

/// Appends `, name=value` for values that are tokens by construction.
pub(crate) fn push_token(output: &mut String, name: &'static str, value: &str) {
    push_separator(output);
    output.push_str(name);
    output.push('=');
    output.push_str(value);
}

fn push_separator(output: &mut String) {
    // Every value starts as the bare scheme; the first parameter follows a space.
    if output == "Digest" {
        output.push(' ');
    } else {
        output.push_str(", ");
    }
}

fn check_printable(parameter: &'static str, value: &str) -> Result<(), HeaderValueError> {
    if value
        .chars()
        .any(|character| character.is_control() && character != '\t')
    {
        return Err(HeaderValueError::ControlCharacter { parameter });
    }
    Ok(())
}

fn skip_whitespace(bytes: &[u8], mut position: usize) -> usize {
    while position < bytes.len() && is_whitespace(bytes[position]) {
        position += 1;
    }
    position
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, value: &str) -> Parameter {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn parses_quoted_and_token_values_with_folding_whitespace() {
        let parameters = parse_digest_parameters(
            "digest  Username = \"Mu\\\"fasa\",realm=\"a, b\" ,\r\n nc=00000001,,qop=auth",
        )
        .unwrap();
        assert_eq!(
            parameters,
            vec![
                pair("username", "Mu\"fasa"),
                pair("realm", "a, b"),
                pair("nc", "00000001"),
                pair("qop", "auth"),
            ]
        );
    }

    #[test]
    fn rejects_other_schemes_and_broken_syntax() {
        assert_eq!(
            parse_digest_parameters("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Err(DigestSyntaxError::NotDigest {
                scheme: "Basic".into()
            })
        );
        assert_eq!(parse_digest_parameters("  "), Err(DigestSyntaxError::Empty));
        assert_eq!(
            parse_digest_parameters("Digest realm=\"open"),
            Err(DigestSyntaxError::UnterminatedQuotedString { position: 13 })
        );
        assert_eq!(
            parse_digest_parameters("Digest realm"),
            Err(DigestSyntaxError::ExpectedEquals {
                name: "realm".into(),
                position: 12
            })
        );
        assert_eq!(
            parse_digest_parameters("Digest realm=,"),
            Err(DigestSyntaxError::MissingValue {
                name: "realm".into()
            })
        );
        assert_eq!(
            parse_digest_parameters("Digest realm=\"a\" nonce=\"b\""),
            Err(DigestSyntaxError::ExpectedComma { position: 17 })
        );
        assert_eq!(
            parse_digest_parameters("Digest realm=a, REALM=b"),
            Err(DigestSyntaxError::DuplicateParameter {
                name: "realm".into()
            })
        );
        assert_eq!(
            parse_digest_parameters("Digest =x"),
            Err(DigestSyntaxError::ExpectedParameterName { position: 7 })
        );
    }

    #[test]
    fn quoting_escapes_and_refuses_line_breaks() {
        let mut output = String::from("Digest");
        push_quoted(&mut output, "username", "a\"b\\c").unwrap();
        push_token(&mut output, "nc", "00000001");
        assert_eq!(output, "Digest username=\"a\\\"b\\\\c\", nc=00000001");
        assert_eq!(
            parse_digest_parameters(&output).unwrap()[0],
            pair("username", "a\"b\\c")
        );
        assert_eq!(
            push_quoted(&mut output, "realm", "evil\r\nVia: x"),
            Err(HeaderValueError::ControlCharacter { parameter: "realm" })
        );
    }
}
