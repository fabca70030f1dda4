//! Login throttling and lockout: a pure state machine, with the time passed in.
//!
//! [`LoginThrottle`] keeps a record per account and per client address. A login attempt
//! is admitted by [`LoginThrottle::begin_attempt`] only if neither record is locked, and
//! is then **counted as a failure straight away**: the caller reports a successful login
//! with [`LoginThrottle::record_success`], and reports nothing for a failure. Counting up
//! front means concurrent attempts cannot slip past the limit while passwords are being
//! hashed, and an attempt abandoned half-way (a dropped connection) still counts.
//!
//! For each record (account or address):
//! - Failures form a *streak* while each comes within `window_us` of the previous one
//!   (and of the end of any lockout). A record quiet for `window_us` is forgotten.
//! - When a streak reaches the limit (`max_failures` for an account, `max_client_failures`
//!   for an address), the record is **locked** for `base_lockout_us` (30 s). Once the
//!   limit has been reached, every further admitted failure in the streak locks it again
//!   for twice as long as the last lockout, up to `max_lockout_us` (15 min): 30 s, 1 min,
//!   2 min, 4 min, 8 min, 15 min, 15 min, …
//! - A successful login forgets the account's record (a user who mistyped five times and
//!   then got it right starts afresh) and takes back that one attempt from the address's
//!   record, without forgetting the address's other failures: a password guessed for one
//!   account must not reset the count of an address spraying many.
//!
//! So an attacker gets at most `max_failures` guesses before the first lockout and one
//! per lockout after it: about 100 a day per account at the 15-minute cap. A locked
//! record always unlocks within `max_lockout_us`. Attempts refused while locked are not
//! counted, so they do not prolong the lockout (which would let anyone keep a victim's
//! account locked for ever by sending a request every few seconds; they can still hold it
//! locked by spending one failure per lockout period, a cost bounded by the cap).
//!
//! Memory is bounded: at most `max_tracked_keys` records are kept, and when a new one is
//! needed the least recently used is evicted. Account names are kept only as SHA-256
//! digests (a fixed 32 bytes, whatever the caller sends); IPv6 addresses are grouped by
//! their /64 prefix, since one host commonly has a whole /64; IPv4-mapped IPv6 addresses
//! count as the IPv4 address. Eviction is a limit, not a guarantee: an attacker with
//! enough addresses to make `max_tracked_keys` new records between two of their guesses
//! could push an account's record out; size it to the traffic expected.
//!
//! Times are microseconds on any clock that does not go backwards (Unix time is fine); a
//! clock that does is tolerated (nothing panics or unlocks early) but may lengthen
//! lockouts.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use aws_lc_rs::digest;

const SECOND_US: u64 = 1_000_000;

/// Settings of a [`LoginThrottle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures in a streak that lock an account (default 5).
    pub max_failures: u32,
    /// Failures in a streak that lock a client address (default 20). Higher than for an
    /// account because many staff share one address (a trust's or HSCN's NAT); a
    /// password-spraying attacker is still stopped after this many guesses.
    pub max_client_failures: u32,
    /// Failures at most this far apart (and after a lockout ends) belong to one streak;
    /// a record quiet for this long is forgotten (default 15 min).
    pub window_us: u64,
    /// First lockout (default 30 s).
    pub base_lockout_us: u64,
    /// Longest lockout (default 15 min).
    pub max_lockout_us: u64,
    /// Most records kept; the least recently used is evicted beyond that (default
    /// 100,000, a few tens of megabytes at most). At least 2.
    pub max_tracked_keys: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_client_failures: 20,
            window_us: 15 * 60 * SECOND_US,
            base_lockout_us: 30 * SECOND_US,
            max_lockout_us: 15 * 60 * SECOND_US,
            max_tracked_keys: 100_000,
        }
    }
}

/// An attempt refused because the account or the address is locked.
///
/// The message does not say which (nor whether the account exists: unknown account names
/// are throttled the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed sign-in attempts: try again in {} seconds", self.retry_after_secs())]
pub struct Throttled {
    /// Time until an attempt would be admitted, in microseconds.
    pub retry_after_us: u64,
    /// The account is locked.
    pub account_locked: bool,
    /// The client address is locked.
    pub client_locked: bool,
}

impl Throttled {
    /// [`Throttled::retry_after_us`] in whole seconds, rounded up (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_us.div_ceil(SECOND_US)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Account([u8; 32]),
    Client(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failures in the current streak.
    failures: u32,
    /// Time of the last counted failure.
    last_failure_us: u64,
    /// Locked while `now < locked_until_us`.
    locked_until_us: u64,
    /// Lockouts in the current streak.
    lockouts: u32,
    /// Position in the use order (for eviction).
    used: u64,
}

/// Per-account and per-address login throttle: see the module documentation.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    records: HashMap<Key, Record>,
    /// Use order: `Record::used` to key, oldest first.
    order: BTreeMap<u64, Key>,
    next_use: u64,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(ThrottleConfig::default())
    }
}

impl LoginThrottle {
    /// A throttle with these settings. Limits of 0 count as 1; `max_lockout_us` is at
    /// least `base_lockout_us`; `max_tracked_keys` is at least 2.
    pub fn new(mut config: ThrottleConfig) -> Self {
        config.max_failures = config.max_failures.max(1);
        config.max_client_failures = config.max_client_failures.max(1);
        config.max_lockout_us = config.max_lockout_us.max(config.base_lockout_us);
        config.max_tracked_keys = config.max_tracked_keys.max(2);
        Self {
            config,
            records: HashMap::new(),
            order: BTreeMap::new(),
            next_use: 0,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Records currently kept.
    pub fn tracked_keys(&self) -> usize {
        self.records.len()
    }

    /// Whether an attempt would be admitted now, changing nothing (for showing "try again
    /// in …" before a form is even submitted).
    pub fn check(&self, account: &str, client: IpAddr, now_us: u64) -> Result<(), Throttled> {
        let account_until = self.locked_until(&account_key(account), now_us);
        let client_until = self.locked_until(&client_key(client), now_us);
        refusal(account_until, client_until, now_us)
    }

    /// Admits a login attempt, or refuses it if the account or the address is locked.
    /// An admitted attempt counts as a failure of both until [`record_success`] says
    /// otherwise; a refused one counts for nothing.
    ///
    /// [`record_success`]: LoginThrottle::record_success
    pub fn begin_attempt(
        &mut self,
        account: &str,
        client: IpAddr,
        now_us: u64,
    ) -> Result<(), Throttled> {
        let account = account_key(account);
        let client = client_key(client);
        refusal(
            self.locked_until(&account, now_us),
            self.locked_until(&client, now_us),
            now_us,
        )?;
        let limit = self.config.max_failures;
        self.count_failure(account, limit, now_us);
        let limit = self.config.max_client_failures;
        self.count_failure(client, limit, now_us);
        Ok(())
    }

    /// Reports that an attempt admitted by [`LoginThrottle::begin_attempt`] succeeded:
    /// forgets the account's failures and takes this attempt back from the address's.
    /// Call it once per successful attempt, and only for one that was admitted.
    pub fn record_success(&mut self, account: &str, client: IpAddr, now_us: u64) {
        self.remove(&account_key(account));
        let key = client_key(client);
        let limit = self.config.max_client_failures;
        if let Some(record) = self.live_record(&key, now_us) {
            let mut record = record;
            let was_locking = record.failures >= limit;
            record.failures = record.failures.saturating_sub(1);
            // If this attempt was the one that reached the limit, undo its lockout.
            if was_locking && record.failures < limit && record.locked_until_us > now_us {
                record.locked_until_us = 0;
                record.lockouts = record.lockouts.saturating_sub(1);
            }
            self.store(key, record);
        }
    }

    /// Forgets an account's failures and lockout (for an administrator unlocking it).
    pub fn reset_account(&mut self, account: &str) {
        self.remove(&account_key(account));
    }

    /// When `key` is locked until, if it is locked at `now_us`.
    fn locked_until(&self, key: &Key, now_us: u64) -> Option<u64> {
        self.records
            .get(key)
            .map(|r| r.locked_until_us)
            .filter(|&until| now_us < until)
    }

    /// The record for `key`, unless there is none or it has expired.
    fn live_record(&self, key: &Key, now_us: u64) -> Option<Record> {
        let record = *self.records.get(key)?;
        let quiet_since = record.last_failure_us.max(record.locked_until_us);
        (now_us < quiet_since.saturating_add(self.config.window_us)).then_some(record)
    }

    fn count_failure(&mut self, key: Key, limit: u32, now_us: u64) {
        let mut record = self.live_record(&key, now_us).unwrap_or(Record {
            failures: 0,
            last_failure_us: now_us,
            locked_until_us: 0,
            lockouts: 0,
            used: 0,
        });
        record.failures = record.failures.saturating_add(1);
        record.last_failure_us = record.last_failure_us.max(now_us);
        if record.failures >= limit {
            let lockout = lockout_us(&self.config, record.lockouts);
            record.locked_until_us = record.locked_until_us.max(now_us.saturating_add(lockout));
            record.lockouts = record.lockouts.saturating_add(1);
        }
        self.store(key, record);
    }

    /// Inserts or updates a record, marking it most recently used and evicting the least
    /// recently used record if the table is full.
    fn store(&mut self, key: Key, mut record: Record) {
        if let Some(old) = self.records.get(&key) {
            self.order.remove(&old.used);
        } else {
            while self.records.len() >= self.config.max_tracked_keys {
                match self.order.pop_first() {
                    Some((_, oldest)) => {
                        self.records.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
        record.used = self.next_use;
        self.next_use += 1;
        self.order.insert(record.used, key);
        self.records.insert(key, record);
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.records.remove(key) {
            self.order.remove(&old.used);
        }
    }
}

/// The `lockouts`-th lockout's length (0-based): base × 2^lockouts, capped.
fn lockout_us(config: &ThrottleConfig, lockouts: u32) -> u64 {
    let factor = 1u64.checked_shl(lockouts).unwrap_or(u64::MAX);
    config
        .base_lockout_us
        .saturating_mul(factor)
        .min(config.max_lockout_us)
}

fn refusal(account: Option<u64>, client: Option<u64>, now_us: u64) -> Result<(), Throttled> {
    let until = account.max(client);
    match until {
        None => Ok(()),
        Some(until) => Err(Throttled {
            retry_after_us: until - now_us,
            account_locked: account.is_some(),
            client_locked: client.is_some(),
        }),
    }
}

fn account_key(account: &str) -> Key {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, account.as_bytes()).as_ref());
    Key::Account(out)
}

fn client_key(client: IpAddr) -> Key {
    match client {
        IpAddr::V4(v4) => Key::Client(IpAddr::V4(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::Client(IpAddr::V4(v4)),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Key::Client(IpAddr::V6(prefix.into()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    const S: u64 = SECOND_US;
    const MIN: u64 = 60 * S;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
    }

    #[test]
    fn five_failures_lock_the_account_with_doubling_lockouts() {
        let mut t = LoginThrottle::default();
        let mut now = 1_700_000_000 * S;
        for _ in 0..5 {
            assert_eq!(t.begin_attempt("jane", ip(1), now), Ok(()));
            now += S;
        }
        let refused = t.begin_attempt("jane", ip(2), now).unwrap_err();
        assert!(refused.account_locked && !refused.client_locked);
        assert_eq!(
            refused.retry_after_us,
            29 * S,
            "30 s from the fifth failure"
        );
        assert_eq!(refused.retry_after_secs(), 29);
        assert_eq!(
            refused.to_string(),
            "too many failed sign-in attempts: try again in 29 seconds"
        );
        // Other accounts are unaffected.
        assert_eq!(t.begin_attempt("john", ip(2), now), Ok(()));

        // After each lockout one more guess is admitted, and the lockout doubles.
        let mut expected = 30 * S;
        for _ in 0..8 {
            let locked = t.check("jane", ip(3), now).unwrap_err();
            now += locked.retry_after_us;
            assert_eq!(t.begin_attempt("jane", ip(3), now), Ok(()));
            expected = (expected * 2).min(15 * MIN);
            assert_eq!(
                t.check("jane", ip(3), now).unwrap_err().retry_after_us,
                expected
            );
        }
        assert_eq!(expected, 15 * MIN, "capped");
    }

    #[test]
    fn refused_attempts_do_not_count() {
        let mut t = LoginThrottle::default();
        for s in 0..5 {
            t.begin_attempt("jane", ip(1), s * S).unwrap();
        }
        for s in 5..29 {
            assert!(t.begin_attempt("jane", ip(1), s * S).is_err());
        }
        // Still the first, 30-second lockout from the fifth failure at 4 s.
        assert_eq!(t.begin_attempt("jane", ip(1), 34 * S), Ok(()));
    }

    #[test]
    fn success_resets_the_account_but_not_the_address() {
        let config = ThrottleConfig {
            max_client_failures: 6,
            ..ThrottleConfig::default()
        };
        let mut t = LoginThrottle::new(config);
        for s in 0..4 {
            t.begin_attempt("jane", ip(1), s * S).unwrap();
        }
        t.begin_attempt("jane", ip(1), 4 * S).unwrap();
        assert!(
            t.check("jane", ip(1), 5 * S).is_err(),
            "fifth failure locks"
        );
        // An administrator unlocks; the user gets in.
        t.reset_account("jane");
        t.begin_attempt("jane", ip(1), 6 * S).unwrap();
        t.record_success("jane", ip(1), 6 * S);
        // The account starts afresh: four failures do not lock it.
        for s in 7..11 {
            t.begin_attempt("jane", ip(2), s * S).unwrap();
        }
        assert_eq!(t.check("jane", ip(2), 11 * S), Ok(()));
        // The address kept its five failures (the success was taken back): one more
        // failure from it, for any account, locks it.
        t.begin_attempt("john", ip(1), 12 * S).unwrap();
        let refused = t.check("someone", ip(1), 13 * S).unwrap_err();
        assert!(refused.client_locked && !refused.account_locked);
    }

    #[test]
    fn a_success_that_reached_the_address_limit_undoes_its_lockout() {
        let config = ThrottleConfig {
            max_client_failures: 3,
            ..ThrottleConfig::default()
        };
        let mut t = LoginThrottle::new(config);
        t.begin_attempt("a", ip(1), 0).unwrap();
        t.begin_attempt("b", ip(1), S).unwrap();
        t.begin_attempt("c", ip(1), 2 * S).unwrap();
        assert!(t.check("d", ip(1), 2 * S).is_err());
        t.record_success("c", ip(1), 2 * S);
        assert_eq!(t.check("d", ip(1), 2 * S), Ok(()));
        // A real third failure locks it for the first lockout's length, not the second's.
        t.begin_attempt("d", ip(1), 3 * S).unwrap();
        assert_eq!(
            t.check("e", ip(1), 3 * S).unwrap_err().retry_after_us,
            30 * S
        );
    }

    #[test]
    fn a_quiet_window_forgets_failures() {
        let mut t = LoginThrottle::default();
        for k in 0..4 {
            t.begin_attempt("jane", ip(1), k * S).unwrap();
        }
        // Fifteen minutes after the last failure the streak is over.
        let later = 3 * S + 15 * MIN;
        for k in 0..4 {
            t.begin_attempt("jane", ip(1), later + k * S).unwrap();
        }
        assert_eq!(t.check("jane", ip(1), later + 4 * S), Ok(()));
        // But failures each within the window of the last do add up.
        let mut t = LoginThrottle::default();
        for k in 0..5 {
            t.begin_attempt("jane", ip(1), k * 14 * MIN).unwrap();
        }
        assert!(t.check("jane", ip(1), 56 * MIN + S).is_err());
    }

    #[test]
    fn memory_is_bounded_by_evicting_the_least_recently_used() {
        let config = ThrottleConfig {
            max_tracked_keys: 10,
            ..ThrottleConfig::default()
        };
        let mut t = LoginThrottle::new(config);
        for k in 0..5 {
            t.begin_attempt("jane", ip(1), k).unwrap();
        }
        assert!(t.check("jane", ip(9), 10).is_err());
        for n in 0..100u8 {
            let _ = t.begin_attempt(&format!("user{n}"), ip(n), 10 + u64::from(n));
            assert!(t.tracked_keys() <= 10);
        }
        assert_eq!(t.tracked_keys(), 10);
        // Jane's record was the oldest and has gone.
        assert_eq!(t.check("jane", ip(9), 200), Ok(()));
    }

    #[test]
    fn ipv6_hosts_are_grouped_by_64_prefix_and_mapped_ipv4_is_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a.into()), client_key(b.into()));
        assert_ne!(client_key(a.into()), client_key(c.into()));
        let mapped = Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped();
        assert_eq!(client_key(mapped.into()), client_key(ip(7)));
    }

    #[test]
    fn config_is_sanitised() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_failures: 0,
            max_client_failures: 0,
            window_us: 0,
            base_lockout_us: 10,
            max_lockout_us: 1,
            max_tracked_keys: 0,
        });
        assert_eq!(t.config().max_failures, 1);
        assert_eq!(t.config().max_lockout_us, 10);
        assert_eq!(t.config().max_tracked_keys, 2);
        assert_eq!(lockout_us(t.config(), 200), 10, "no overflow");
    }

    /// One step of a random scenario: which account and address, how long after the
    /// previous step, and whether the attempt (if admitted) succeeds.
    fn steps() -> impl Strategy<Value = Vec<(u8, u8, u64, bool)>> {
        prop::collection::vec(
            (
                0..3u8,
                0..3u8,
                prop_oneof![0..2 * S, 0..40 * S, 0..20 * MIN],
                prop::bool::weighted(0.1),
            ),
            1..300,
        )
    }

    fn small_config() -> ThrottleConfig {
        ThrottleConfig {
            max_failures: 3,
            max_client_failures: 4,
            window_us: 10 * MIN,
            base_lockout_us: 30 * S,
            max_lockout_us: 8 * MIN,
            max_tracked_keys: 1_000,
        }
    }

    proptest! {
        /// With no successes, an account never has more than its limit of admitted
        /// attempts before its first lockout, and once locked it gets exactly one attempt
        /// per lockout, each lockout twice the last up to the cap; so no more than the
        /// limit fit in any interval as short as the first lockout.
        #[test]
        fn never_more_than_the_limit_then_one_per_lockout(steps in steps()) {
            let config = small_config();
            let mut t = LoginThrottle::new(config.clone());
            let mut now = 0u64;
            // Per account, in the current streak: admitted attempts and lockouts so far.
            let mut attempts = [0u32; 3];
            let mut lockouts = [0u32; 3];
            let mut admitted: [Vec<u64>; 3] = Default::default();
            for (account, client, gap, _) in steps {
                now += gap;
                let name = format!("user{account}");
                let a = usize::from(account);
                if t.live_record(&account_key(&name), now).is_none() {
                    // A new streak (the old one was forgotten after a quiet window).
                    attempts[a] = 0;
                    lockouts[a] = 0;
                }
                let was_locked = t.check(&name, ip(client), now).is_err();
                if t.begin_attempt(&name, ip(client), now).is_ok() {
                    prop_assert!(!was_locked);
                    attempts[a] += 1;
                    admitted[a].push(now);
                    let locked_for = t.check(&name, ip(200), now).err().map(|r| r.retry_after_us);
                    if attempts[a] < config.max_failures {
                        prop_assert_eq!(locked_for, None);
                    } else {
                        // The limit's attempt, and every one after it, locks the account.
                        let expected = (config.base_lockout_us << lockouts[a].min(20))
                            .min(config.max_lockout_us);
                        prop_assert_eq!(locked_for, Some(expected));
                        lockouts[a] += 1;
                    }
                }
            }
            for times in &admitted {
                for w in times.windows(config.max_failures as usize + 1) {
                    prop_assert!(w[w.len() - 1] - w[0] >= config.base_lockout_us, "{:?}", w);
                }
            }
        }

        /// Whatever happened before, a refused attempt is admitted once the cap has
        /// passed (with no attempts in between).
        #[test]
        fn a_lockout_always_ends_within_the_cap(steps in steps(), account in 0..3u8, client in 0..3u8) {
            let config = small_config();
            let mut t = LoginThrottle::new(config.clone());
            let mut now = 0u64;
            for (step_account, step_client, gap, success) in steps {
                now += gap;
                let name = format!("user{step_account}");
                let address = ip(step_client);
                if t.begin_attempt(&name, address, now).is_ok() && success {
                    t.record_success(&name, address, now);
                }
                if let Err(refused) = t.check(&name, address, now) {
                    prop_assert!(refused.retry_after_us <= config.max_lockout_us);
                    prop_assert!(t.check(&name, address, now + refused.retry_after_us).is_ok());
                }
            }
            let name = format!("user{account}");
            prop_assert!(t.check(&name, ip(client), now + config.max_lockout_us).is_ok());
            prop_assert!(t.begin_attempt(&name, ip(client), now + config.max_lockout_us).is_ok());
        }

        /// The number of records never exceeds the cap, whatever the traffic.
        #[test]
        fn tracked_keys_never_exceed_the_cap(
            attempts in prop::collection::vec((0..50u16, 0..50u8, 0..10 * S), 1..400),
            cap in 2..40usize,
        ) {
            let mut t = LoginThrottle::new(ThrottleConfig {
                max_tracked_keys: cap,
                ..ThrottleConfig::default()
            });
            let mut now = 0;
            for (account, client, gap) in attempts {
                now += gap;
                let _ = t.begin_attempt(&format!("u{account}"), ip(client), now);
                prop_assert!(t.tracked_keys() <= cap);
                prop_assert_eq!(t.records.len(), t.order.len());
            }
        }
    }
}
