//! Reading the recent part of the audit ledger, for the pages that review it: the home
//! page's unusual-access card and the guardian's unusual-access report.

use caldicott_audit::AuditEvent;

/// An event with its ledger position (epoch, index).
pub type Positioned = (u32, u64, AuditEvent);

/// The events recorded at or after `since_us`, in ledger order, at most the newest `max`
/// (`true` when that bound cut the period short). Read backwards from the end of each epoch,
/// newest epoch first, in batches, so a short period reads little of a long ledger. Leaves
/// are appended in about time order (group commits may reorder a few within milliseconds),
/// so a batch is read whole before reading stops at the first older entry; only the
/// entries of the period are parsed.
pub fn events_since(
    ledger: &caldicott_vault::Ledger,
    since_us: i64,
    max: u64,
) -> Result<(Vec<Positioned>, bool), String> {
    const BATCH: u64 = 5_000;
    let mut out: Vec<Positioned> = Vec::new();
    let mut cut = false;
    let mut epochs = ledger.epochs().map_err(|e| e.to_string())?;
    epochs.sort_by_key(|e| std::cmp::Reverse(e.epoch));
    'epochs: for e in epochs {
        let mut end = e.size;
        while end > 0 {
            let start = end.saturating_sub(BATCH);
            let leaves = ledger
                .leaves(e.epoch, start, end)
                .map_err(|err| err.to_string())?;
            let mut older = false;
            for leaf in leaves.iter().rev() {
                if leaf.at_us < since_us {
                    older = true;
                    continue;
                }
                if out.len() as u64 >= max {
                    cut = true;
                    break 'epochs;
                }
                let ev = AuditEvent::from_leaf(&leaf.data)
                    .map_err(|err| format!("audit entry {}-{}: {err}", e.epoch, leaf.idx))?;
                out.push((e.epoch, leaf.idx, ev));
            }
            if older {
                break 'epochs;
            }
            end = start;
        }
    }
    out.sort_by_key(|(e, i, _)| (*e, *i));
    Ok((out, cut))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn reads_only_the_period_and_at_most_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend =
            caldicott_vault::SqliteBackend::open(&dir.path().join("v.db"), true).expect("backend");
        caldicott_vault::Backend::migrate(&backend).expect("migrate");
        let kek = Arc::new(caldicott_vault::LocalKek::generate().expect("kek").0);
        let vault = Arc::new(caldicott_vault::Vault::open(Box::new(backend), kek).expect("vault"));
        let ledger = caldicott_vault::Ledger::open(vault, "test/ledger").expect("ledger");
        let middle = caldicott_vault::now_micros();
        let leaf = |at: i64| {
            let e = caldicott_api::audit::security_event(
                caldicott_audit::EventKind::Access,
                "read",
                &format!("u{}", if at >= middle { at - middle } else { at }),
                "X26",
                "gp",
                &caldicott_api::audit::Origin::default(),
                caldicott_audit::Outcome::Permit,
                "",
                at,
            );
            caldicott_api::audit::leaf_of(&e)
        };
        // Leaves carry their event's time: 30 old ones, then 20 of now.
        ledger.append((0..30).map(leaf).collect()).expect("append");
        ledger
            .append((30..50).map(|i| leaf(middle + i)).collect())
            .expect("append");
        // Since `middle`: the 20 of now.
        let (events, cut) = events_since(&ledger, middle, 1_000).expect("read");
        assert!(!cut);
        let users: Vec<&str> = events.iter().map(|(_, _, e)| e.user.as_str()).collect();
        assert_eq!(users.len(), 20);
        assert_eq!((users[0], users[19]), ("u30", "u49"));
        // Bounded: the newest 5, cut short.
        let (events, cut) = events_since(&ledger, 0, 5).expect("read");
        assert!(cut);
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].2.user, "u45");
    }
}
