//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1), and the hints a resource server
//! gives in its `Bearer` (RFC 6750 §3) or `DPoP` (RFC 9449 §7.1) challenge: where its
//! protected-resource metadata is (RFC 9728 §5.1), which scope it wants, what was wrong.
//!
//! The grammar, with the list rule of RFC 9110 §5.6.1 (empty elements allowed):
//!
//! ```text
//! WWW-Authenticate = #challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! A comma separates challenges as well as the parameters of one, so an element that is
//! `name=value` belongs to the challenge before it and any other element starts a new
//! one. Several field lines are one list (RFC 9110 §5.3): a line ends an element as a
//! comma does, but a quoted string never runs on into the next line. Input is bounded
//! by [`MAX_LEN`]; anything off the grammar is a [`ChallengeError`] that says what and
//! where, rather than a guess at what the server meant.

use core::fmt;

use gateway_auth_api::OAuthError;

/// The most bytes read from the field lines together (as combined into one value,
/// RFC 9110 §5.3): far more than any real challenge, small enough that a hostile
/// server cannot make the parser work hard.
pub const MAX_LEN: usize = 8 * 1024;

/// One challenge: a scheme with either a token68 or parameters (or neither).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme as sent; compare with [`Challenge::is`], since schemes are
    /// case-insensitive.
    pub scheme: String,
    /// The token68 form of the credentials' hint (`Basic` style), if sent.
    pub token68: Option<String>,
    /// The parameters in the order sent, names in lowercase (they are matched
    /// case-insensitively, RFC 9110 §11.2), values with quoted pairs undone.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Whether this is a challenge of `scheme`, compared case-insensitively.
    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where a problem is: which field line (its index in the slice given to [`parse`]) and
/// the byte offset in it, both from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The field line.
    pub line: usize,
    /// The byte offset in that line.
    pub offset: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {} of field line {}", self.offset, self.line)
    }
}

/// Why field lines are no list of challenges.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The lines together are longer than [`MAX_LEN`] bytes.
    TooLong {
        /// Their length, as combined into one value.
        len: usize,
    },
    /// A quoted string has no closing `"` on its line (at the opening one).
    UnterminatedQuotedString(Position),
    /// The first parameter of a challenge has a name but no `=` (where the `=` should
    /// be).
    MissingEquals(Position),
    /// A `=` is followed by neither a token nor a quoted string (where the value should
    /// be).
    MissingValue(Position),
    /// A parameter comes before any scheme (at its name).
    ParamWithoutScheme(Position),
    /// A parameter follows a token68 challenge, which takes none (at its name).
    ParamAfterToken68(Position),
    /// A parameter occurs twice in one challenge, which RFC 9110 §11.2 forbids (at the
    /// second one).
    DuplicateParam {
        /// The parameter, in lowercase.
        name: String,
        /// Where the second one is.
        at: Position,
    },
    /// A byte the grammar does not allow where it is.
    InvalidCharacter {
        /// The byte.
        byte: u8,
        /// Where it is.
        at: Position,
    },
    /// A challenge or parameter is followed by something other than a comma.
    ExpectedComma(Position),
}

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len } => write!(
                f,
                "www-authenticate is {len} bytes long, more than the {MAX_LEN} read"
            ),
            Self::UnterminatedQuotedString(at) => {
                write!(f, "www-authenticate: unterminated quoted string at {at}")
            }
            Self::MissingEquals(at) => {
                write!(f, "www-authenticate: a parameter has no `=` at {at}")
            }
            Self::MissingValue(at) => {
                write!(f, "www-authenticate: a parameter has no value at {at}")
            }
            Self::ParamWithoutScheme(at) => {
                write!(f, "www-authenticate: a parameter before any scheme at {at}")
            }
            Self::ParamAfterToken68(at) => write!(
                f,
                "www-authenticate: a parameter after a token68, which takes none, at {at}"
            ),
            Self::DuplicateParam { name, at } => write!(
                f,
                "www-authenticate: parameter {name} occurs twice in one challenge, at {at}"
            ),
            Self::InvalidCharacter { byte, at } => match char::from(*byte) {
                c if c.is_ascii_graphic() => {
                    write!(f, "www-authenticate: unexpected {c:?} at {at}")
                }
                _ => write!(f, "www-authenticate: unexpected byte 0x{byte:02x} at {at}"),
            },
            Self::ExpectedComma(at) => {
                write!(f, "www-authenticate: expected a comma at {at}")
            }
        }
    }
}

impl std::error::Error for ChallengeError {}

impl From<ChallengeError> for OAuthError {
    fn from(e: ChallengeError) -> Self {
        OAuthError::InvalidResponse(e.to_string())
    }
}

/// Parses the `WWW-Authenticate` field lines of one response, in the order received,
/// into their challenges. No challenge at all (no lines, or only empty elements) is an
/// empty list, for the caller to judge.
pub fn parse(values: &[&str]) -> Result<Vec<Challenge>, ChallengeError> {
    let separators = values.len().saturating_sub(1) * ", ".len();
    let len = values.iter().map(|v| v.len()).sum::<usize>() + separators;
    if len > MAX_LEN {
        return Err(ChallengeError::TooLong { len });
    }
    let mut challenges = Vec::new();
    for (line, text) in values.iter().enumerate() {
        Cursor { text, pos: 0, line }.list(&mut challenges)?;
    }
    Ok(challenges)
}

/// A position in one field line.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at(&self, offset: usize) -> Position {
        Position {
            line: self.line,
            offset,
        }
    }

    fn here(&self) -> Position {
        self.at(self.pos)
    }

    /// The error for the byte under the cursor (the caller knows there is one).
    fn invalid(&self) -> ChallengeError {
        ChallengeError::InvalidCharacter {
            byte: self.peek().unwrap_or(0),
            at: self.here(),
        }
    }

    /// Whether the current element ends here.
    fn at_element_end(&self) -> bool {
        matches!(self.peek(), None | Some(b','))
    }

    /// OWS and BWS: spaces and tabs.
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// A run of `tchar`, possibly empty. Every byte taken is ASCII, so the slice ends
    /// on a character boundary.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// The end of a token68 starting here, if one does and nothing but OWS follows it
    /// in its element. The grammar is ambiguous between a token68 and a first
    /// parameter (`a=`, `a==` are both); a token68 is what leaves nothing unread.
    fn token68_end(&self) -> Option<usize> {
        let bytes = self.text.as_bytes();
        let mut i = self.pos;
        while bytes.get(i).copied().is_some_and(is_token68_char) {
            i += 1;
        }
        if i == self.pos {
            return None;
        }
        while bytes.get(i) == Some(&b'=') {
            i += 1;
        }
        let end = i;
        while matches!(bytes.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        matches!(bytes.get(i), None | Some(b',')).then_some(end)
    }

    /// The elements of this line, added to `challenges` (which holds those of earlier
    /// lines, so a line may continue the last challenge's parameters).
    fn list(&mut self, challenges: &mut Vec<Challenge>) -> Result<(), ChallengeError> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                // An empty element (RFC 9110 §5.6.1: recipients accept them).
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => self.element(challenges)?,
            }
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => self.pos += 1,
                Some(_) => return Err(ChallengeError::ExpectedComma(self.here())),
            }
        }
    }

    /// One element: a parameter of the last challenge, or a new challenge.
    fn element(&mut self, challenges: &mut Vec<Challenge>) -> Result<(), ChallengeError> {
        let start = self.pos;
        let name = self.token();
        if name.is_empty() {
            return Err(self.invalid());
        }
        let after_name = self.pos;
        self.skip_ows();
        if self.peek() == Some(b'=') {
            let Some(current) = challenges.last_mut() else {
                return Err(ChallengeError::ParamWithoutScheme(self.at(start)));
            };
            if current.token68.is_some() {
                return Err(ChallengeError::ParamAfterToken68(self.at(start)));
            }
            return self.param_value(current, name, start);
        }
        self.pos = after_name;
        let mut challenge = Challenge {
            scheme: name.to_string(),
            token68: None,
            params: Vec::new(),
        };
        if !self.at_element_end() {
            if !matches!(self.peek(), Some(b' ' | b'\t')) {
                return Err(self.invalid());
            }
            self.skip_ows();
            if let Some(end) = self.token68_end() {
                challenge.token68 = Some(self.text[self.pos..end].to_string());
                self.pos = end;
            } else if !self.at_element_end() {
                let start = self.pos;
                let name = self.token();
                if name.is_empty() {
                    return Err(self.invalid());
                }
                self.skip_ows();
                match self.peek() {
                    Some(b'=') => {}
                    // What looks like a value (or nothing) where the `=` should be.
                    None | Some(b',' | b'"') => {
                        return Err(ChallengeError::MissingEquals(self.here()));
                    }
                    Some(b) if is_tchar(b) => {
                        return Err(ChallengeError::MissingEquals(self.here()));
                    }
                    Some(_) => return Err(self.invalid()),
                }
                self.param_value(&mut challenge, name, start)?;
            }
        }
        challenges.push(challenge);
        Ok(())
    }

    /// The value after the `=` under the cursor, added to `challenge` as parameter
    /// `name` (which starts at `start`).
    fn param_value(
        &mut self,
        challenge: &mut Challenge,
        name: &str,
        start: usize,
    ) -> Result<(), ChallengeError> {
        self.pos += 1;
        self.skip_ows();
        let value = match self.peek() {
            Some(b'"') => self.quoted_string()?,
            _ => {
                let token = self.token();
                if token.is_empty() {
                    return Err(ChallengeError::MissingValue(self.here()));
                }
                token.to_string()
            }
        };
        let name = name.to_ascii_lowercase();
        if challenge.params.iter().any(|(n, _)| *n == name) {
            return Err(ChallengeError::DuplicateParam {
                name,
                at: self.at(start),
            });
        }
        challenge.params.push((name, value));
        Ok(())
    }

    /// A quoted string starting at the `"` under the cursor, unescaped.
    fn quoted_string(&mut self) -> Result<String, ChallengeError> {
        let open = self.pos;
        self.pos += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ChallengeError::UnterminatedQuotedString(self.at(open))),
                Some(b'"') => {
                    self.pos += 1;
                    // Only ASCII backslashes were dropped from valid UTF-8 text, so this
                    // is UTF-8 still; lossy conversion only avoids a panic path.
                    return Ok(String::from_utf8_lossy(&value).into_owned());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => {
                            return Err(ChallengeError::UnterminatedQuotedString(self.at(open)));
                        }
                        Some(b) if is_quoted_pair_char(b) => value.push(b),
                        Some(_) => return Err(self.invalid()),
                    }
                }
                Some(b) if is_qdtext(b) => value.push(b),
                Some(_) => return Err(self.invalid()),
            }
            self.pos += 1;
        }
    }
}

/// RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §11.2, without the trailing `=` padding.
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

/// RFC 9110 §5.6.4: HTAB, SP, visible ASCII but `"` and `\`, obs-text.
fn is_qdtext(b: u8) -> bool {
    b == b'\t' || ((b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') || b >= 0x80
}

/// RFC 9110 §5.6.4: what may follow a backslash.
fn is_quoted_pair_char(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// The schemes whose challenges carry an access token's hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449).
    Dpop,
}

impl TokenScheme {
    /// The scheme's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::Dpop => "DPoP",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Bearer => Self::Dpop,
            Self::Dpop => Self::Bearer,
        }
    }
}

/// The `error` of a resource server's challenge (RFC 6750 §3.1, RFC 9449 §7.1, §9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_token`: expired, revoked or otherwise refused; renew it.
    InvalidToken,
    /// `insufficient_scope`: authorize again with the scope the challenge names
    /// (step-up).
    InsufficientScope,
    /// `invalid_dpop_proof` (RFC 9449 §7.1).
    InvalidDpopProof,
    /// `use_dpop_nonce` (RFC 9449 §9): retry with the server's `DPoP-Nonce`.
    UseDpopNonce,
    /// Any other code, as sent.
    Extension(String),
}

impl ErrorCode {
    /// The code for `code` as sent (codes are case-sensitive).
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_token" => Self::InvalidToken,
            "insufficient_scope" => Self::InsufficientScope,
            "invalid_dpop_proof" => Self::InvalidDpopProof,
            "use_dpop_nonce" => Self::UseDpopNonce,
            other => Self::Extension(other.to_string()),
        }
    }

    /// The code on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::Extension(code) => code,
        }
    }
}

/// What a resource server's `Bearer` or `DPoP` challenge tells a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BearerHints {
    /// The scheme of the challenge the hints come from.
    pub scheme: TokenScheme,
    /// `resource_metadata` (RFC 9728 §5.1): the URL of the protected-resource metadata.
    pub resource_metadata: Option<String>,
    /// `scope`, split on spaces (RFC 6750 §3); empty when the challenge names none.
    pub scope: Vec<String>,
    /// `error`.
    pub error: Option<ErrorCode>,
    /// `error_description`.
    pub error_description: Option<String>,
}

impl BearerHints {
    /// The hints of the first challenge of scheme `prefer`, else of the first of the
    /// other token scheme; `None` when there is neither.
    ///
    /// A resource server that accepts both schemes may send both challenges (RFC 9449
    /// §7.1), each with its own `error`: to a DPoP-bound client the `DPoP` one may say
    /// `use_dpop_nonce` while the `Bearer` one says `invalid_token`. So the caller says
    /// which scheme its token has (`Dpop` for a DPoP-bound session) and gets that
    /// challenge's `scope` and `error`. `resource_metadata` describes the resource, not
    /// the scheme: when the chosen challenge lacks it, the other one's is taken.
    pub fn from_challenges(challenges: &[Challenge], prefer: TokenScheme) -> Option<Self> {
        let first = |scheme: TokenScheme| challenges.iter().find(|c| c.is(scheme.name()));
        let (scheme, chosen) = match first(prefer) {
            Some(c) => (prefer, c),
            None => (prefer.other(), first(prefer.other())?),
        };
        let resource_metadata = chosen
            .param("resource_metadata")
            .or_else(|| first(scheme.other()).and_then(|c| c.param("resource_metadata")))
            .map(str::to_string);
        Some(Self {
            scheme,
            resource_metadata,
            scope: chosen
                .param("scope")
                .map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_string))
                .into_iter()
                .flatten()
                .collect(),
            error: chosen.param("error").map(ErrorCode::parse),
            error_description: chosen.param("error_description").map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Vec<Challenge> {
        parse(&[value]).unwrap_or_else(|e| panic!("{value:?}: {e}"))
    }

    fn challenge(scheme: &str, token68: Option<&str>, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            token68: token68.map(str::to_string),
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn at(line: usize, offset: usize) -> Position {
        Position { line, offset }
    }

    #[test]
    fn two_challenges_in_one_value_are_both_read() {
        assert_eq!(
            one(r#"Bearer realm="api", error="invalid_token", DPoP algs="ES256 RS256""#),
            [
                challenge(
                    "Bearer",
                    None,
                    &[("realm", "api"), ("error", "invalid_token")]
                ),
                challenge("DPoP", None, &[("algs", "ES256 RS256")]),
            ]
        );
    }

    #[test]
    fn a_token68_challenge_may_be_followed_by_a_parameter_challenge() {
        assert_eq!(
            one(r#"Negotiate a87421000492aa874209af8bc028==, Bearer realm="api""#),
            [
                challenge("Negotiate", Some("a87421000492aa874209af8bc028=="), &[]),
                challenge("Bearer", None, &[("realm", "api")]),
            ]
        );
        // A token68 ending in `=` is not taken for a parameter without a value.
        assert_eq!(
            one("Basic dXNlcg="),
            [challenge("Basic", Some("dXNlcg="), &[])]
        );
        assert_eq!(
            one("Custom a/b+c~"),
            [challenge("Custom", Some("a/b+c~"), &[])]
        );
    }

    #[test]
    fn a_challenge_may_have_no_parameters() {
        assert_eq!(
            one("Basic, Bearer"),
            [
                challenge("Basic", None, &[]),
                challenge("Bearer", None, &[])
            ]
        );
        assert_eq!(one("Bearer   "), [challenge("Bearer", None, &[])]);
    }

    #[test]
    fn quoted_strings_keep_commas_and_undo_escapes() {
        let c = one(r#"Bearer realm="a, b", error_description="say \"hi\", \\ ok\x""#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[0].param("error_description"), Some(r#"say "hi", \ okx"#));
        // Tabs, non-ASCII text and an empty string are all quoted-string content.
        let c = one("Bearer realm=\"caf\u{e9}\tbar\", scope=\"\"");
        assert_eq!(c[0].param("realm"), Some("caf\u{e9}\tbar"));
        assert_eq!(c[0].param("scope"), Some(""));
    }

    #[test]
    fn whitespace_around_equals_and_commas_is_allowed() {
        assert_eq!(
            one("  Bearer \t realm = \"api\" ,\tscope=  read  ,  DPoP\talgs =ES256 "),
            [
                challenge("Bearer", None, &[("realm", "api"), ("scope", "read")]),
                challenge("DPoP", None, &[("algs", "ES256")]),
            ]
        );
    }

    #[test]
    fn schemes_and_parameter_names_match_case_insensitively() {
        let c = one(r#"bEaReR Realm="api", ERROR=invalid_token"#);
        assert!(c[0].is("Bearer") && c[0].is("BEARER"));
        assert_eq!(c[0].scheme, "bEaReR", "the scheme is kept as sent");
        assert_eq!(c[0].param("realm"), Some("api"));
        assert_eq!(c[0].param("Error"), Some("invalid_token"));
        assert_eq!(c[0].params[0].0, "realm", "names are kept in lowercase");
        // Values are not case-folded.
        assert_eq!(
            one("Bearer error=Invalid_Token")[0].param("error"),
            Some("Invalid_Token")
        );
    }

    #[test]
    fn empty_list_elements_are_skipped() {
        assert_eq!(
            one(r#", , Bearer realm="api" , , scope="a b",, ,DPoP, ,"#),
            [
                challenge("Bearer", None, &[("realm", "api"), ("scope", "a b")]),
                challenge("DPoP", None, &[]),
            ]
        );
        assert_eq!(one(" , ,\t,"), []);
        assert_eq!(parse(&[]), Ok(vec![]));
        assert_eq!(parse(&["", "  "]), Ok(vec![]));
    }

    #[test]
    fn several_field_lines_are_one_list() {
        assert_eq!(
            parse(&[
                r#"Basic realm="x""#,
                r#"Bearer realm="api""#,
                r#"scope="read""#
            ])
            .unwrap(),
            [
                challenge("Basic", None, &[("realm", "x")]),
                // A line continues the last challenge as a comma would (RFC 9110 §5.3).
                challenge("Bearer", None, &[("realm", "api"), ("scope", "read")]),
            ]
        );
        // But a quoted string does not run on into the next line.
        assert_eq!(
            parse(&[r#"Bearer realm="a"#, r#"b""#]),
            Err(ChallengeError::UnterminatedQuotedString(at(0, 13)))
        );
        // Errors name the line they are on.
        assert_eq!(
            parse(&["Bearer", r#"realm="a" x"#]),
            Err(ChallengeError::ExpectedComma(at(1, 10)))
        );
    }

    #[test]
    fn malformed_input_is_a_named_error_at_its_offset() {
        use ChallengeError::*;
        let cases: &[(&str, ChallengeError)] = &[
            (r#"Bearer realm="api"#, UnterminatedQuotedString(at(0, 13))),
            (r#"Bearer realm="api\"#, UnterminatedQuotedString(at(0, 13))),
            (r#"Bearer realm "api""#, MissingEquals(at(0, 13))),
            (r#"Bearer realm="api", scope="#, MissingValue(at(0, 26))),
            (
                r#"Bearer realm="api", scope=, x=y"#,
                MissingValue(at(0, 26)),
            ),
            (r#"realm="api", Bearer"#, ParamWithoutScheme(at(0, 0))),
            (r#", scope="read""#, ParamWithoutScheme(at(0, 2))),
            (r#"Basic dXNlcg==, realm="x""#, ParamAfterToken68(at(0, 16))),
            (
                r#"Bearer realm="a", Realm="b""#,
                DuplicateParam {
                    name: "realm".into(),
                    at: at(0, 18),
                },
            ),
            (
                r#"Bearer"realm""#,
                InvalidCharacter {
                    byte: b'"',
                    at: at(0, 6),
                },
            ),
            (
                r#"Bearer realm="a", "x""#,
                InvalidCharacter {
                    byte: b'"',
                    at: at(0, 18),
                },
            ),
            (
                "Bearer realm=\"a\u{7}\"",
                InvalidCharacter {
                    byte: 0x07,
                    at: at(0, 15),
                },
            ),
            (
                "Bearer realm=\"a\\\u{1}\"",
                InvalidCharacter {
                    byte: 0x01,
                    at: at(0, 16),
                },
            ),
            (
                "Bearer r\u{e9}alm=x",
                InvalidCharacter {
                    byte: 0xc3,
                    at: at(0, 8),
                },
            ),
            (
                "=x",
                InvalidCharacter {
                    byte: b'=',
                    at: at(0, 0),
                },
            ),
            (r#"Bearer realm="a" scope="b""#, ExpectedComma(at(0, 17))),
            ("Bearer realm=a b", ExpectedComma(at(0, 15))),
            ("Basic abc== def", MissingValue(at(0, 10))),
            ("Bearer a!b", MissingEquals(at(0, 10))),
            ("Bearer a!b, c=d", MissingEquals(at(0, 10))),
        ];
        for (value, expected) in cases {
            assert_eq!(parse(&[value]).as_ref(), Err(expected), "{value:?}");
            // Every error reads as one lowercase line saying where.
            let text = expected.to_string();
            assert!(
                text.starts_with("www-authenticate: ") && text.contains("byte"),
                "{text}"
            );
        }
    }

    #[test]
    fn input_longer_than_the_bound_is_refused_before_parsing() {
        let long = format!("Bearer realm=\"{}\"", "a".repeat(MAX_LEN));
        assert_eq!(
            parse(&[&long]),
            Err(ChallengeError::TooLong { len: long.len() })
        );
        // The lines count as combined, separators included.
        let half = "a".repeat(MAX_LEN / 2);
        assert_eq!(
            parse(&[&half, &half]),
            Err(ChallengeError::TooLong { len: MAX_LEN + 2 })
        );
        assert_eq!(parse(&[&half[1..], &half[1..]]).unwrap().len(), 2);
        let err = OAuthError::from(ChallengeError::TooLong { len: 9_000 });
        assert!(matches!(err, OAuthError::InvalidResponse(m) if m.contains("9000")));
    }

    #[test]
    fn every_prefix_of_a_challenge_parses_or_fails_without_panicking() {
        let value = r#"Basic YWxh==, Bearer realm="a \"b\", c", scope = "x y" ,, DPoP algs=ES256, error="use_dpop_nonce""#;
        for end in 0..=value.len() {
            let _ = parse(&[&value[..end]]);
            let _ = parse(&[&value[end..]]);
        }
        assert_eq!(one(value).len(), 3);
    }

    #[test]
    fn mcp_hints_come_from_the_bearer_challenge() {
        let c = one(
            r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource", scope="files:read files:write", error="insufficient_scope", error_description="need write""#,
        );
        assert_eq!(
            BearerHints::from_challenges(&c, TokenScheme::Bearer),
            Some(BearerHints {
                scheme: TokenScheme::Bearer,
                resource_metadata: Some(
                    "https://mcp.example/.well-known/oauth-protected-resource".into()
                ),
                scope: vec!["files:read".into(), "files:write".into()],
                error: Some(ErrorCode::InsufficientScope),
                error_description: Some("need write".into()),
            })
        );
        // A DPoP client takes the Bearer challenge when there is no other.
        let hints = BearerHints::from_challenges(&c, TokenScheme::Dpop).unwrap();
        assert_eq!(hints.scheme, TokenScheme::Bearer);
        assert_eq!(
            BearerHints::from_challenges(&one("Basic realm=x"), TokenScheme::Bearer),
            None
        );
    }

    #[test]
    fn with_both_schemes_the_clients_own_challenge_gives_the_hints() {
        let c = one(
            r#"Bearer error="invalid_token", resource_metadata="https://r.example/m", DPoP algs="ES256", error="use_dpop_nonce", scope="a""#,
        );
        let dpop = BearerHints::from_challenges(&c, TokenScheme::Dpop).unwrap();
        assert_eq!(dpop.scheme, TokenScheme::Dpop);
        assert_eq!(dpop.error, Some(ErrorCode::UseDpopNonce));
        assert_eq!(dpop.scope, ["a"]);
        // The resource's metadata is the resource's, whichever challenge names it.
        assert_eq!(
            dpop.resource_metadata.as_deref(),
            Some("https://r.example/m")
        );
        let bearer = BearerHints::from_challenges(&c, TokenScheme::Bearer).unwrap();
        assert_eq!(bearer.scheme, TokenScheme::Bearer);
        assert_eq!(bearer.error, Some(ErrorCode::InvalidToken));
        assert!(bearer.scope.is_empty());
    }

    #[test]
    fn error_codes_are_typed_with_an_extension_fallback() {
        for code in [
            "invalid_request",
            "invalid_token",
            "insufficient_scope",
            "invalid_dpop_proof",
            "use_dpop_nonce",
            "server_on_fire",
        ] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
        }
        assert_eq!(
            ErrorCode::parse("Invalid_Token"),
            ErrorCode::Extension("Invalid_Token".into())
        );
    }
}
