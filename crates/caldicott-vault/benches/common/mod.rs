//! What the ledger's benchmarks and the `commit_cost` and `sync_cost` examples share: a
//! realistic audit leaf, and the CPU time of the calling thread.

// Each includer takes what it needs of this module.
#![allow(dead_code)]

use caldicott_audit::{AuditEvent, EventKind, Outcome};
use caldicott_vault::LedgerLeaf;

/// The `i`-th leaf of a synthetic stream: a permitted access of `rtype` by one of `users`
/// users to one of `patients` patients (~420 bytes canonical), with its two lookup keys.
pub fn event(i: u64, patients: u64, users: u64, rtype: &str) -> LedgerLeaf {
    let patient = format!(
        "{:032x}",
        u128::from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % patients)
    );
    let e = AuditEvent {
        at_us: 1_764_400_000_000_000 + i as i64 * 1000,
        kind: EventKind::Access,
        action: "read".into(),
        user: format!("user{}", i % users),
        org: "A81001".into(),
        role: "gp".into(),
        purpose: "direct-care".into(),
        rtype: Some(rtype.into()),
        id: Some(format!("{:032x}", u128::from(i) * 7919)),
        patients: vec![patient.clone()],
        query: vec![],
        client: Some("10.1.2.3".into()),
        user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) EMIS-Web/2026".into()),
        outcome: Outcome::Permit,
        reason: "the patient is registered at the user's organisation".into(),
        break_glass: false,
    };
    LedgerLeaf {
        data: e.to_leaf(),
        at_us: e.at_us,
        keys: vec![format!("p:{patient}"), format!("u:{}", e.user)],
    }
}

/// This thread's time on a CPU so far, in nanoseconds (from `/proc/thread-self/schedstat`,
/// so other load on the machine counts less than in a wall-clock figure). Linux only.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .expect("/proc/thread-self/schedstat (Linux only)")
}
