//! Which addresses an authenticated submission account may send as.
//!
//! Why: a password for the submission port must not let its holder send as anyone. A care
//! worker's account that may put any address in `MAIL FROM:` or in the message's `From:` is
//! a ready-made tool for phishing colleagues and partners "from" the manager, the practice
//! or NHS England, through the organisation's own, DKIM-signed gateway. So each account
//! lists the addresses it may use (`send_as`): whole addresses, or `@domain` for every
//! address of a domain. The gateway checks the envelope sender at `MAIL` and every address
//! in the `From:` header after `DATA`.
//!
//! What it is not: a check of the display name (people write their names as they like) or
//! of `Sender:` and `Reply-To:` (replies may go elsewhere by design).

/// The addresses one account may send as. Comparison ignores ASCII case in the whole
/// address: mailbox names are case-sensitive in theory and never in practice, and a
/// case-sensitive check would only be bypassed by a different spelling of the same mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendAs {
    /// Whole addresses, lower case.
    addresses: Vec<String>,
    /// Domains every address of which is allowed, lower case, without the `@`.
    domains: Vec<String>,
}

impl SendAs {
    /// The rule for an account named `name` with the configured `send_as` entries. With no
    /// entries, the account may send only as its own name, if that is an address; an
    /// account named otherwise may send nothing until `send_as` says what.
    pub fn new(name: &str, send_as: &[String]) -> SendAs {
        let mut rule = SendAs::default();
        let entries: Vec<&str> = if send_as.is_empty() {
            vec![name]
        } else {
            send_as.iter().map(String::as_str).collect()
        };
        for e in entries {
            let e = e.trim().to_ascii_lowercase();
            if let Some(domain) = e.strip_prefix('@') {
                if is_domain(domain) {
                    rule.domains.push(domain.to_owned());
                }
            } else if split(&e).is_some() {
                rule.addresses.push(e);
            }
        }
        rule
    }

    /// Whether a `send_as` entry is well formed: `local@domain` or `@domain`.
    pub fn is_valid_entry(entry: &str) -> bool {
        match entry.strip_prefix('@') {
            Some(domain) => is_domain(domain),
            None => split(entry).is_some(),
        }
    }

    /// Whether the account may send as `address` (a bare `local@domain`). The null sender
    /// and anything that is not an address are refused.
    pub fn allows(&self, address: &str) -> bool {
        let address = address.trim().to_ascii_lowercase();
        let Some((_, domain)) = split(&address) else {
            return false;
        };
        self.addresses.contains(&address) || self.domains.iter().any(|d| d == domain)
    }

    /// Whether the account may send as anything at all.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.domains.is_empty()
    }
}

/// `local@domain` split at its last `@`, both parts non-empty, no spaces or angle brackets.
fn split(address: &str) -> Option<(&str, &str)> {
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() || local.contains(['<', '>', ' ', '\t']) || !is_domain(domain) {
        return None;
    }
    Some((local, domain))
}

fn is_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, send_as: &[&str]) -> SendAs {
        SendAs::new(
            name,
            &send_as.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn an_account_named_by_its_address_sends_as_itself_only() {
        let r = rule("Manager@Care.example", &[]);
        assert!(r.allows("manager@care.example"));
        assert!(r.allows("MANAGER@CARE.EXAMPLE"));
        assert!(!r.allows("director@care.example"));
        assert!(!r.allows("manager@care.example.evil"));
        assert!(!r.allows(""), "the null sender");
    }

    #[test]
    fn an_account_with_another_name_sends_nothing_until_told() {
        let r = rule("ward4", &[]);
        assert!(r.is_empty());
        assert!(!r.allows("ward4@care.example"));
    }

    #[test]
    fn addresses_and_whole_domains() {
        let r = rule("ward4", &["ward4@care.example", "@rota.care.example"]);
        assert!(r.allows("ward4@care.example"));
        assert!(r.allows("anyone@rota.care.example"));
        assert!(!r.allows("anyone@care.example"));
        assert!(
            !r.allows("anyone@sub.rota.care.example"),
            "a domain, not its subdomains"
        );
        assert!(!r.allows("x@y@rota.care.example.evil"));
        assert!(!r.allows("not an address"));
    }

    #[test]
    fn entries_are_checked() {
        assert!(SendAs::is_valid_entry("a@b.example"));
        assert!(SendAs::is_valid_entry("@b.example"));
        for bad in [
            "",
            "@",
            "a@",
            "@b..example",
            "a b@c.example",
            "<a@b.example>",
            "plain",
        ] {
            assert!(!SendAs::is_valid_entry(bad), "{bad:?}");
        }
    }
}
