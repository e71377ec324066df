//! Coordinators (DESIGN §4): state kept in an internal compacted topic,
//! sharded by `abs(javaStringHash(id)) % partitions`, one owner task per
//! shard. Operations return the records to persist and replies that are
//! released once those records are durable; a shard is rebuilt on start-up
//! by replaying its partition.

pub mod codec;
pub mod group;
pub mod runtime;
pub mod txn;

use std::sync::atomic::{AtomicI64, Ordering};

/// Where coordinators read the time. Timers (session, rebalance, retention)
/// are deadlines in this clock's milliseconds, so tests drive them with a
/// [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// Wall-clock milliseconds since the Unix epoch.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::log::now_ms()
    }
}

/// A clock that moves only when told to.
#[derive(Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(start_ms))
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code
/// units with 32-bit wrapping arithmetic.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32))
}

/// The internal-topic partition that owns `id`: Kafka's
/// `Utils.abs(id.hashCode) % partitions`, where `Utils.abs(MIN_VALUE)` is 0.
pub fn partition_for(id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        // Values from java.lang.String#hashCode.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("console-consumer-12345"), 158_455_506);
        // Non-BMP characters hash as their two UTF-16 surrogates.
        assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn partition_is_never_negative() {
        // "polygenelubricants" hashes to Integer.MIN_VALUE in Java.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        for id in ["a", "group-1", "console-consumer-12345", "zzzzzz"] {
            let p = partition_for(id, 50);
            assert!((0..50).contains(&p), "{id} -> {p}");
        }
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1000);
        assert_eq!(c.now_ms(), 1000);
        c.advance(250);
        assert_eq!(c.now_ms(), 1250);
    }
}
