//! A structural checker, for tests, of the FHIR R4 (4.0.1) subset that [`crate::fhir`] emits.
//!
//! Why: the resources go to other systems' validators; a typo in an element name, an empty
//! string or a repeating element written as a single value should fail here, in `cargo
//! test`, naming the path at fault. It encodes R4's element names, types and cardinalities
//! of `AuditEvent` and the datatypes it uses, plus the invariants that apply (`ele-1`,
//! `sev-1`, the `instant`, `id`, `code` and `base64Binary` formats).

use base64::Engine as _;
use serde_json::Value;

use crate::fhir::{is_code, is_fhir_id, is_resource_type};

fn fail(path: &str, why: &str) -> String {
    format!("{path}: {why}")
}

fn check_string(v: &Value, path: &str) -> Result<(), String> {
    let s = v.as_str().ok_or_else(|| fail(path, "not a string"))?;
    if s.is_empty() {
        return Err(fail(path, "empty string"));
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Err(fail(path, "control character"));
    }
    Ok(())
}

fn check_code(v: &Value, path: &str) -> Result<(), String> {
    check_string(v, path)?;
    if !is_code(v.as_str().unwrap_or_default()) {
        return Err(fail(path, "invalid code"));
    }
    Ok(())
}

fn check_uri(v: &Value, path: &str) -> Result<(), String> {
    check_string(v, path)?;
    if v.as_str()
        .unwrap_or_default()
        .chars()
        .any(char::is_whitespace)
    {
        return Err(fail(path, "uri with whitespace"));
    }
    Ok(())
}

fn check_bool(v: &Value, path: &str) -> Result<(), String> {
    v.as_bool()
        .map(|_| ())
        .ok_or_else(|| fail(path, "not a boolean"))
}

fn is_base64(s: &str) -> bool {
    !s.is_empty()
        && s.len().is_multiple_of(4)
        && base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

pub(crate) fn is_instant(s: &str) -> bool {
    // YYYY-MM-DDThh:mm:ss(.f+)?(Z|±hh:mm), years 0001–9999.
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let ok = digits(0..4)
        && &s[0..4] != "0000"
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !ok {
        return false;
    }
    let rest = &s[19..];
    let rest = match rest.strip_prefix('.') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return false;
            }
            &r[n..]
        }
        None => rest,
    };
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':')
}

type Checker = fn(&Value, &str) -> Result<(), String>;

/// Checks an object: only `allowed` keys (name, min, max-is-many, checker), and the
/// cardinalities. `ele-1`: an object must not be empty.
fn check_object(
    v: &Value,
    path: &str,
    allowed: &[(&str, usize, bool, Checker)],
) -> Result<(), String> {
    let obj = v.as_object().ok_or_else(|| fail(path, "not an object"))?;
    if obj.is_empty() {
        return Err(fail(path, "empty object (ele-1)"));
    }
    for key in obj.keys() {
        if !allowed.iter().any(|(name, ..)| name == key) {
            return Err(fail(path, &format!("element `{key}` is not allowed here")));
        }
    }
    for (name, min, many, checker) in allowed {
        let p = format!("{path}.{name}");
        match obj.get(*name) {
            None if *min > 0 => return Err(fail(&p, "required element missing")),
            None => {}
            Some(Value::Array(items)) if *many => {
                if items.is_empty() {
                    return Err(fail(&p, "empty array"));
                }
                if items.len() < *min {
                    return Err(fail(&p, "too few"));
                }
                for (i, item) in items.iter().enumerate() {
                    checker(item, &format!("{p}[{i}]"))?;
                }
            }
            Some(_) if *many => return Err(fail(&p, "a repeating element must be an array")),
            Some(Value::Array(_)) => return Err(fail(&p, "not a repeating element")),
            Some(item) => checker(item, &p)?,
        }
    }
    Ok(())
}

fn check_coding(v: &Value, path: &str) -> Result<(), String> {
    check_object(
        v,
        path,
        &[
            ("system", 0, false, check_uri),
            ("version", 0, false, check_string),
            ("code", 0, false, check_code),
            ("display", 0, false, check_string),
            ("userSelected", 0, false, check_bool),
        ],
    )
}

fn check_concept(v: &Value, path: &str) -> Result<(), String> {
    check_object(
        v,
        path,
        &[
            ("coding", 0, true, check_coding),
            ("text", 0, false, check_string),
        ],
    )
}

fn check_identifier(v: &Value, path: &str) -> Result<(), String> {
    check_object(
        v,
        path,
        &[
            ("use", 0, false, check_code),
            ("type", 0, false, check_concept),
            ("system", 0, false, check_uri),
            ("value", 0, false, check_string),
        ],
    )
}

fn check_reference(v: &Value, path: &str) -> Result<(), String> {
    check_object(
        v,
        path,
        &[
            ("reference", 0, false, check_string),
            ("type", 0, false, check_uri),
            ("identifier", 0, false, check_identifier),
            ("display", 0, false, check_string),
        ],
    )?;
    if let Some(r) = v.get("reference").and_then(Value::as_str) {
        let (t, id) = r
            .split_once('/')
            .ok_or_else(|| fail(path, "reference not Type/id"))?;
        if !is_resource_type(t) || !is_fhir_id(id) {
            return Err(fail(path, "reference not Type/id"));
        }
    }
    Ok(())
}

fn check_network(v: &Value, path: &str) -> Result<(), String> {
    check_object(
        v,
        path,
        &[
            ("address", 0, false, check_string),
            ("type", 0, false, check_code),
        ],
    )?;
    if let Some(t) = v.get("type")
        && !matches!(t.as_str(), Some("1" | "2" | "3" | "4" | "5"))
    {
        return Err(fail(path, "network.type not in 1..5"));
    }
    Ok(())
}

fn check_agent(v: &Value, path: &str) -> Result<(), String> {
    check_object(
        v,
        path,
        &[
            ("type", 0, false, check_concept),
            ("role", 0, true, check_concept),
            ("who", 0, false, check_reference),
            ("altId", 0, false, check_string),
            ("name", 0, false, check_string),
            ("requestor", 1, false, check_bool),
            ("location", 0, false, check_reference),
            ("policy", 0, true, check_uri),
            ("media", 0, false, check_coding),
            ("network", 0, false, check_network),
            ("purposeOfUse", 0, true, check_concept),
        ],
    )
}

fn check_source(v: &Value, path: &str) -> Result<(), String> {
    check_object(
        v,
        path,
        &[
            ("site", 0, false, check_string),
            ("observer", 1, false, check_reference),
            ("type", 0, true, check_coding),
        ],
    )
}

fn check_detail(v: &Value, path: &str) -> Result<(), String> {
    check_object(
        v,
        path,
        &[
            ("type", 1, false, check_string),
            ("valueString", 0, false, check_string),
            ("valueBase64Binary", 0, false, check_string),
        ],
    )?;
    let n = usize::from(v.get("valueString").is_some())
        + usize::from(v.get("valueBase64Binary").is_some());
    if n != 1 {
        return Err(fail(path, "detail needs exactly one value[x]"));
    }
    Ok(())
}

fn check_query(v: &Value, path: &str) -> Result<(), String> {
    check_string(v, path)?;
    if !is_base64(v.as_str().unwrap_or_default()) {
        return Err(fail(path, "not base64"));
    }
    Ok(())
}

fn check_entity(v: &Value, path: &str) -> Result<(), String> {
    check_object(
        v,
        path,
        &[
            ("what", 0, false, check_reference),
            ("type", 0, false, check_coding),
            ("role", 0, false, check_coding),
            ("lifecycle", 0, false, check_coding),
            ("securityLabel", 0, true, check_coding),
            ("name", 0, false, check_string),
            ("description", 0, false, check_string),
            ("query", 0, false, check_query),
            ("detail", 0, true, check_detail),
        ],
    )?;
    if v.get("name").is_some() && v.get("query").is_some() {
        return Err(fail(path, "sev-1: name and query together"));
    }
    Ok(())
}

fn check_id(v: &Value, path: &str) -> Result<(), String> {
    check_string(v, path)?;
    if !is_fhir_id(v.as_str().unwrap_or_default()) {
        return Err(fail(path, "invalid id"));
    }
    Ok(())
}

fn check_instant(v: &Value, path: &str) -> Result<(), String> {
    check_string(v, path)?;
    if !is_instant(v.as_str().unwrap_or_default()) {
        return Err(fail(path, "invalid instant"));
    }
    Ok(())
}

fn check_resource_type(v: &Value, path: &str) -> Result<(), String> {
    (v.as_str() == Some("AuditEvent"))
        .then_some(())
        .ok_or_else(|| fail(path, "not AuditEvent"))
}

/// Checks an R4 AuditEvent resource's shape; `Err` names the first fault.
pub(crate) fn check_audit_event(v: &Value) -> Result<(), String> {
    check_object(
        v,
        "AuditEvent",
        &[
            ("resourceType", 1, false, check_resource_type),
            ("id", 0, false, check_id),
            ("type", 1, false, check_coding),
            ("subtype", 0, true, check_coding),
            ("action", 0, false, check_code),
            ("period", 0, false, check_string),
            ("recorded", 1, false, check_instant),
            ("outcome", 0, false, check_code),
            ("outcomeDesc", 0, false, check_string),
            ("purposeOfEvent", 0, true, check_concept),
            ("agent", 1, true, check_agent),
            ("source", 1, false, check_source),
            ("entity", 0, true, check_entity),
        ],
    )?;
    if let Some(a) = v.get("action")
        && !matches!(a.as_str(), Some("C" | "R" | "U" | "D" | "E"))
    {
        return Err("AuditEvent.action not in C R U D E".into());
    }
    if let Some(o) = v.get("outcome")
        && !matches!(o.as_str(), Some("0" | "4" | "8" | "12"))
    {
        return Err("AuditEvent.outcome not in 0 4 8 12".into());
    }
    Ok(())
}
