//! SMTP command lines (RFC 5321, with the parameters of RFC 1870 SIZE, RFC 6152 8BITMIME and
//! RFC 6531 SMTPUTF8), parsed by hand into a [`Command`] or a defined error reply.
//!
//! Hand-written rather than `smtp-proto`: the gateway accepts a deliberately small grammar
//! (no source routes, no quoted local parts, no DSN parameters), and every refusal needs its
//! own reply code, which is easiest to see and test in one small pure function. Hostile input
//! (NUL, bare CR or LF, control characters, overlong addresses, unknown parameters) gets a
//! `5xx` reply here, never a panic.

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail {
        /// Empty for the null sender `<>`.
        from: String,
        size: Option<u64>,
        body_8bit: bool,
        smtputf8: bool,
    },
    Rcpt(String),
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// A reply refusing a line: code and text (the text starts with the enhanced status code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub text: &'static str,
}

const fn refuse(code: u16, text: &'static str) -> Refusal {
    Refusal { code, text }
}

/// Longest address accepted (RFC 5321 4.5.3.1.3 allows a 256-octet path).
pub const MAX_ADDRESS: usize = 254;

/// Parses one command line. `line` must end with CRLF (the reader guarantees a line ends
/// with LF; a bare LF is refused here).
pub fn parse(line: &[u8]) -> Result<Command, Refusal> {
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err(refuse(
            500,
            "5.5.2 Line must end with CRLF (bare LF refused)",
        ));
    };
    if body.contains(&0) {
        return Err(refuse(500, "5.5.2 NUL byte in command"));
    }
    if body.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err(refuse(500, "5.5.2 Bare CR or LF in command"));
    }
    if body.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(refuse(500, "5.5.2 Control character in command"));
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(refuse(500, "5.5.2 Command is not valid UTF-8"));
    };
    let (verb, rest) = match text.find(' ') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let no_args = |c: Command| {
        if rest.trim().is_empty() {
            Ok(c)
        } else {
            Err(refuse(501, "5.5.4 This command takes no arguments"))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "HELO" | "EHLO" => {
            let name = rest.trim();
            if name.is_empty() || name.contains(' ') || name.len() > 255 {
                return Err(refuse(501, "5.5.4 Syntax: EHLO hostname"));
            }
            Ok(if verb.eq_ignore_ascii_case("EHLO") {
                Command::Ehlo(name.to_owned())
            } else {
                Command::Helo(name.to_owned())
            })
        }
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "QUIT" => no_args(Command::Quit),
        "STARTTLS" => no_args(Command::StartTls),
        "NOOP" => Ok(Command::Noop),
        "VRFY" | "EXPN" => Ok(Command::Vrfy),
        "HELP" => Ok(Command::Help),
        "AUTH" => {
            let mut parts = rest.split(' ').filter(|p| !p.is_empty());
            let Some(mechanism) = parts.next() else {
                return Err(refuse(
                    501,
                    "5.5.4 Syntax: AUTH mechanism [initial-response]",
                ));
            };
            let initial = parts.next().map(str::to_owned);
            if parts.next().is_some() {
                return Err(refuse(
                    501,
                    "5.5.4 Syntax: AUTH mechanism [initial-response]",
                ));
            }
            Ok(Command::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                initial,
            })
        }
        "BDAT" | "TURN" | "ETRN" | "ATRN" | "SEND" | "SOML" | "SAML" => {
            Err(refuse(502, "5.5.1 Command not implemented"))
        }
        _ => Err(refuse(500, "5.5.1 Command unrecognized")),
    }
}

/// `FROM:<path> params` (the keyword, then optional spaces, then the path).
fn parse_mail(rest: &str) -> Result<Command, Refusal> {
    const SYNTAX: Refusal = refuse(501, "5.5.4 Syntax: MAIL FROM:<address>");
    let Some(after) = strip_keyword(rest, "FROM:") else {
        return Err(SYNTAX);
    };
    let (path, params) = split_path(after).ok_or(SYNTAX)?;
    let from = address(path, true)?;
    let (mut size, mut body_8bit, mut smtputf8) = (None, false, false);
    for p in params.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                let n = v
                    .parse::<u64>()
                    .map_err(|_| refuse(501, "5.5.4 SIZE must be a number"))?;
                size = Some(n);
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => body_8bit = true,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => body_8bit = false,
            ("SMTPUTF8", None) => smtputf8 = true,
            // RFC 4954: the AUTH parameter may be ignored by a server that does not relay it.
            ("AUTH", Some(_)) => {}
            _ => return Err(refuse(555, "5.5.4 Unsupported MAIL parameter")),
        }
    }
    Ok(Command::Mail {
        from,
        size,
        body_8bit,
        smtputf8,
    })
}

fn parse_rcpt(rest: &str) -> Result<Command, Refusal> {
    const SYNTAX: Refusal = refuse(501, "5.5.4 Syntax: RCPT TO:<address>");
    let Some(after) = strip_keyword(rest, "TO:") else {
        return Err(SYNTAX);
    };
    let (path, params) = split_path(after).ok_or(SYNTAX)?;
    if !params.trim().is_empty() {
        return Err(refuse(555, "5.5.4 Unsupported RCPT parameter"));
    }
    let to = address(path, false)?;
    Ok(Command::Rcpt(to))
}

fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| rest[keyword.len()..].trim_start())
}

/// Splits `<path> params` into the path between the brackets and the rest.
fn split_path(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('<')?;
    let end = inner.find('>')?;
    let rest = &inner[end + 1..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    Some((&inner[..end], rest))
}

/// Checks a path's address: `local@domain` with no spaces, brackets, quotes or controls.
/// Source routes and quoted local parts are refused: nothing legitimate sends them today.
fn address(path: &str, null_ok: bool) -> Result<String, Refusal> {
    if path.is_empty() {
        return if null_ok {
            Ok(String::new())
        } else {
            Err(refuse(553, "5.1.3 Recipient address required"))
        };
    }
    if path.len() > MAX_ADDRESS {
        return Err(refuse(553, "5.1.3 Address too long"));
    }
    if path.starts_with('@') {
        return Err(refuse(553, "5.1.3 Source routes are not accepted"));
    }
    if path
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "<>\"\\,;()[]".contains(c))
    {
        return Err(refuse(
            553,
            "5.1.3 Address contains characters not accepted here",
        ));
    }
    let Some((local, domain)) = path.rsplit_once('@') else {
        return Err(refuse(553, "5.1.3 Address must be local@domain"));
    };
    if local.is_empty()
        || domain.is_empty()
        || local.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(refuse(553, "5.1.3 Address must be local@domain"));
    }
    Ok(path.to_owned())
}

/// The domain of an address (lower-cased), for the relay check.
pub fn domain_of(address: &str) -> Option<String> {
    address.rsplit_once('@').map(|(_, d)| d.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, Refusal> {
        parse(s.as_bytes())
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            p("EHLO a.example\r\n"),
            Ok(Command::Ehlo("a.example".into()))
        );
        assert_eq!(
            p("mail from: <a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n"),
            Ok(Command::Mail {
                from: "a@b.example".into(),
                size: Some(100),
                body_8bit: true,
                smtputf8: true
            })
        );
        assert_eq!(
            p("MAIL FROM:<>\r\n"),
            Ok(Command::Mail {
                from: String::new(),
                size: None,
                body_8bit: false,
                smtputf8: false
            })
        );
        assert_eq!(
            p("RCPT TO:<x@y.example>\r\n"),
            Ok(Command::Rcpt("x@y.example".into()))
        );
        assert_eq!(p("DATA\r\n"), Ok(Command::Data));
    }

    #[test]
    fn hostile_lines_are_refused_with_5xx() {
        for line in [
            "EHLO a\n",
            "EHLO a\0b\r\n",
            "MAIL FROM:<a@b>\rRCPT TO:<c@d>\r\n",
            "RCPT TO:<>\r\n",
            "RCPT TO:<a b@c>\r\n",
            "RCPT TO:<@relay:a@b>\r\n",
            "RCPT TO:<a@b> NOTIFY=NEVER\r\n",
            "MAIL FROM:<a@b> RET=FULL\r\n",
            "MAIL FROM:a@b\r\n",
            "DATA now\r\n",
            "XYZZY\r\n",
            "\u{1b}[31mEHLO x\r\n",
        ] {
            let r = p(line).expect_err(line);
            assert!((500..600).contains(&r.code), "{line:?} → {r:?}");
        }
        assert!(parse(b"EHLO \xff\xfe\r\n").is_err());
        let long = format!("RCPT TO:<{}@b.example>\r\n", "a".repeat(300));
        assert_eq!(p(&long).unwrap_err().code, 553);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse(&line);
        }
    }
}
