//! The transaction shard's logic with explicit times (no sleeping): epochs
//! and fencing, the two phases of commit/abort, retries, timeouts,
//! expiration, replay and verification.

use std::sync::Arc;

use super::records::TxnStatus::*;
use super::shard::{MarkerJob, OngoingTxns, Producer, TxnShard};
use crate::api::Code;
use crate::config::TxnConfig;
use crate::coordinator::runtime::Outcome;

const TIMEOUT: i32 = 60_000;

fn config() -> TxnConfig {
    TxnConfig {
        state_log_num_partitions: 50,
        state_log_segment_bytes: 1 << 20,
        max_timeout_ms: 900_000,
        id_expiration_ms: 604_800_000,
        abort_timed_out_interval_ms: 10_000,
        remove_expired_interval_ms: 3_600_000,
        partition_verification: true,
    }
}

struct Harness {
    shard: TxnShard,
    next_pid: i64,
    /// Every record written, in order (for replay checks).
    log: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn code(c: Code) -> i16 {
    c.code()
}

impl Harness {
    fn new() -> Harness {
        Harness {
            shard: TxnShard::new(0, config(), Arc::new(OngoingTxns::default())),
            next_pid: 1000,
            log: Vec::new(),
        }
    }

    fn keep(&mut self, out: Outcome) -> usize {
        let n = out.records.len();
        self.log.extend(out.records);
        n
    }

    fn init(&mut self, id: &str, now: i64) -> Result<Producer, i16> {
        self.init_with(id, TIMEOUT, None, now)
    }

    fn init_with(
        &mut self,
        id: &str,
        timeout: i32,
        expected: Option<Producer>,
        now: i64,
    ) -> Result<Producer, i16> {
        let mut out = Outcome::default();
        let mut next = self.next_pid;
        let mut allocate = || {
            next += 1;
            Ok(next)
        };
        let r = self
            .shard
            .init_producer_id(id, timeout, expected, now, &mut allocate, &mut out);
        self.next_pid = next;
        self.keep(out);
        r
    }

    fn add(
        &mut self,
        id: &str,
        p: Producer,
        parts: &[(&str, i32)],
        now: i64,
    ) -> Result<usize, i16> {
        let parts: Vec<(String, i32)> = parts.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let mut out = Outcome::default();
        let r = self.shard.add_partitions(id, p, &parts, now, &mut out);
        r.map(|()| self.keep(out))
    }

    fn end(&mut self, id: &str, p: Producer, commit: bool, now: i64) -> Result<(), i16> {
        let mut out = Outcome::default();
        let r = self.shard.end_txn(id, p, commit, now, &mut out);
        self.keep(out);
        r
    }

    /// Pretends the markers of every queued job were written.
    fn complete_all(&mut self, now: i64) -> Vec<MarkerJob> {
        let jobs = self.shard.take_jobs();
        for j in &jobs {
            let mut out = Outcome::default();
            let p = Producer {
                id: j.producer_id,
                epoch: j.epoch,
            };
            self.shard.complete(&j.transactional_id, p, now, &mut out);
            self.keep(out);
        }
        jobs
    }

    fn state(&self, id: &str) -> super::records::TxnStatus {
        self.shard.get(id).expect("known id").state
    }

    fn replayed(&self) -> TxnShard {
        let mut s = TxnShard::new(0, config(), Arc::new(OngoingTxns::default()));
        for (k, v) in &self.log {
            s.replay(k, v.as_deref());
        }
        s
    }
}

#[test]
fn first_init_allocates_an_id_at_epoch_zero_and_reinit_bumps() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    assert_eq!((p.id, p.epoch), (1001, 0));
    assert_eq!(h.state("t"), Empty);
    let p2 = h.init("t", 1).unwrap();
    assert_eq!((p2.id, p2.epoch), (1001, 1));
    assert_eq!(h.log.len(), 2);
}

#[test]
fn timeout_limit_both_sides() {
    let mut h = Harness::new();
    let max = config().max_timeout_ms;
    assert!(h.init_with("a", max, None, 0).is_ok());
    assert_eq!(
        h.init_with("b", max + 1, None, 0),
        Err(code(Code::InvalidTransactionTimeout))
    );
    assert_eq!(
        h.init_with("c", 0, None, 0),
        Err(code(Code::InvalidTransactionTimeout))
    );
    assert!(
        h.shard.get("b").is_none(),
        "nothing stored for a refused init"
    );
}

#[test]
fn commit_goes_through_prepare_and_markers_then_complete() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    assert_eq!(h.add("t", p, &[("a", 0), ("b", 1)], 10), Ok(1));
    assert_eq!(h.state("t"), Ongoing);
    // Adding known partitions again writes nothing.
    assert_eq!(h.add("t", p, &[("a", 0)], 11), Ok(0));
    h.end("t", p, true, 20).unwrap();
    assert_eq!(h.state("t"), PrepareCommit);
    // While markers are written: a new transaction must wait; a retried
    // commit is told to retry; an abort is invalid.
    assert_eq!(
        h.add("t", p, &[("a", 0)], 21),
        Err(code(Code::ConcurrentTransactions))
    );
    assert_eq!(
        h.end("t", p, true, 21),
        Err(code(Code::ConcurrentTransactions))
    );
    assert_eq!(h.end("t", p, false, 21), Err(code(Code::InvalidTxnState)));
    assert_eq!(h.init("t", 21), Err(code(Code::ConcurrentTransactions)));
    let jobs = h.complete_all(30);
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].commit);
    assert_eq!(jobs[0].partitions, [("a".into(), 0), ("b".into(), 1)]);
    assert_eq!((jobs[0].producer_id, jobs[0].epoch), (p.id, p.epoch));
    assert_eq!(h.state("t"), CompleteCommit);
    assert!(h.shard.get("t").unwrap().partitions.is_empty());
    // A retried commit after completion succeeds; an abort does not.
    assert_eq!(h.end("t", p, true, 31), Ok(()));
    assert_eq!(h.end("t", p, false, 31), Err(code(Code::InvalidTxnState)));
    // The next transaction starts from CompleteCommit.
    assert_eq!(h.add("t", p, &[("c", 0)], 40), Ok(1));
    assert_eq!(h.shard.get("t").unwrap().start_ms, 40);
    assert_eq!(h.shard.get("t").unwrap().partitions.len(), 1);
}

#[test]
fn abort_and_end_without_a_transaction() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    assert_eq!(h.end("t", p, true, 1), Err(code(Code::InvalidTxnState)));
    h.add("t", p, &[("a", 0)], 2).unwrap();
    h.end("t", p, false, 3).unwrap();
    let jobs = h.complete_all(4);
    assert!(!jobs[0].commit);
    assert_eq!(h.state("t"), CompleteAbort);
    assert_eq!(h.end("t", p, false, 5), Ok(()));
    assert_eq!(h.end("t", p, true, 5), Err(code(Code::InvalidTxnState)));
}

#[test]
fn wrong_producer_id_and_old_epoch() {
    let mut h = Harness::new();
    let old = h.init("t", 0).unwrap();
    let new = h.init("t", 1).unwrap();
    let other = Producer { id: 7, epoch: 1 };
    assert_eq!(
        h.add("t", other, &[("a", 0)], 2),
        Err(code(Code::InvalidProducerIdMapping))
    );
    assert_eq!(
        h.add("nobody", new, &[("a", 0)], 2),
        Err(code(Code::InvalidProducerIdMapping))
    );
    assert_eq!(
        h.add("t", old, &[("a", 0)], 2),
        Err(code(Code::ProducerFenced))
    );
    assert_eq!(h.end("t", old, true, 2), Err(code(Code::ProducerFenced)));
    assert!(h.add("t", new, &[("a", 0)], 2).is_ok());
}

#[test]
fn a_new_instance_fences_and_aborts_the_ongoing_transaction() {
    let mut h = Harness::new();
    let zombie = h.init("t", 0).unwrap();
    h.add("t", zombie, &[("a", 0)], 1).unwrap();
    // The new instance is told to retry while the old transaction aborts
    // under a bumped epoch.
    assert_eq!(h.init("t", 2), Err(code(Code::ConcurrentTransactions)));
    assert_eq!(h.state("t"), PrepareAbort);
    let jobs = h.complete_all(3);
    assert_eq!(jobs.len(), 1);
    assert!(!jobs[0].commit);
    assert_eq!(
        jobs[0].epoch,
        zombie.epoch + 1,
        "markers carry the fencing epoch"
    );
    assert_eq!(h.state("t"), CompleteAbort);
    let fresh = h.init("t", 4).unwrap();
    assert_eq!(fresh.epoch, zombie.epoch + 2);
    assert_eq!(h.end("t", zombie, true, 5), Err(code(Code::ProducerFenced)));
}

#[test]
fn transactions_past_their_timeout_are_aborted_and_fenced() {
    let mut h = Harness::new();
    let p = h.init_with("t", 1_000, None, 0).unwrap();
    h.add("t", p, &[("a", 0)], 100).unwrap();
    let mut out = Outcome::default();
    assert_eq!(
        h.shard.abort_timed_out(1_100, &mut out),
        0,
        "exactly at the timeout"
    );
    assert_eq!(h.shard.next_timeout(), Some(1_100));
    assert_eq!(h.shard.abort_timed_out(1_101, &mut out), 1);
    h.keep(out);
    assert_eq!(h.state("t"), PrepareAbort);
    let jobs = h.complete_all(1_102);
    assert_eq!(jobs[0].epoch, p.epoch + 1);
    assert_eq!(h.end("t", p, true, 1_103), Err(code(Code::ProducerFenced)));
    assert_eq!(h.shard.next_timeout(), None);
}

#[test]
fn idle_ids_expire_but_not_open_transactions() {
    let mut h = Harness::new();
    let limit = config().id_expiration_ms;
    h.init("idle", 0).unwrap();
    let p = h.init("busy", 0).unwrap();
    h.add("busy", p, &[("a", 0)], 0).unwrap();
    let mut out = Outcome::default();
    assert_eq!(h.shard.expire_ids(limit, &mut out), 0);
    assert_eq!(h.shard.expire_ids(limit + 1, &mut out), 1);
    assert_eq!(out.records.len(), 1);
    assert!(out.records[0].1.is_none(), "a tombstone");
    h.keep(out);
    assert!(h.shard.get("idle").is_none());
    assert!(h.shard.get("busy").is_some());
    // Replay honours the tombstone; a new init starts afresh.
    assert!(h.replayed().get("idle").is_none());
    let again = h.init("idle", limit + 2).unwrap();
    assert_eq!(again.epoch, 0);
}

#[test]
fn replay_rebuilds_state_and_resumes_prepared_transactions() {
    let mut h = Harness::new();
    let p = h.init("done", 0).unwrap();
    h.add("done", p, &[("a", 0)], 1).unwrap();
    h.end("done", p, true, 2).unwrap();
    h.complete_all(3);
    let q = h.init("preparing", 4).unwrap();
    h.add("preparing", q, &[("a", 1), ("b", 0)], 5).unwrap();
    h.end("preparing", q, false, 6).unwrap();
    h.shard.take_jobs(); // the broker stopped before the markers
    let r = h.init("open", 7).unwrap();
    h.add("open", r, &[("c", 0)], 8).unwrap();

    let mut replayed = h.replayed();
    for id in ["done", "preparing", "open"] {
        let a = h.shard.get(id).unwrap();
        let b = replayed.get(id).unwrap();
        assert_eq!(
            (
                a.producer_id,
                a.epoch,
                a.state,
                &a.partitions,
                a.start_ms,
                a.timeout_ms
            ),
            (
                b.producer_id,
                b.epoch,
                b.state,
                &b.partitions,
                b.start_ms,
                b.timeout_ms
            ),
            "{id}"
        );
    }
    replayed.resume_after_load();
    let jobs = replayed.take_jobs();
    assert_eq!(jobs.len(), 1, "only the prepared transaction is resumed");
    assert_eq!(jobs[0].transactional_id, "preparing");
    assert!(!jobs[0].commit);
    assert_eq!(jobs[0].partitions.len(), 2);
    // The open one is still verifiable after the load.
    let ongoing = replayed.ongoing();
    assert_eq!(ongoing.verify("open", r, "c", 0), Ok(()));
}

#[test]
fn verification_follows_the_transaction() {
    let mut h = Harness::new();
    let reg = h.shard.ongoing();
    let p = h.init("t", 0).unwrap();
    assert_eq!(reg.verify("t", p, "a", 0), Err(code(Code::InvalidTxnState)));
    let unknown = Producer { id: 99, epoch: 0 };
    assert_eq!(
        reg.verify("t", unknown, "a", 0),
        Err(code(Code::InvalidProducerIdMapping))
    );
    h.add("t", p, &[("a", 0)], 1).unwrap();
    assert_eq!(reg.verify("t", p, "a", 0), Ok(()));
    assert_eq!(reg.verify("t", p, "a", 1), Err(code(Code::InvalidTxnState)));
    assert_eq!(
        reg.verify("u", p, "a", 0),
        Err(code(Code::InvalidProducerIdMapping))
    );
    let old = Producer {
        id: p.id,
        epoch: p.epoch - 1,
    };
    assert_eq!(
        reg.verify("t", old, "a", 0),
        Err(code(Code::InvalidProducerEpoch))
    );
    h.end("t", p, true, 2).unwrap();
    assert_eq!(
        reg.verify("t", p, "a", 0),
        Err(code(Code::InvalidTxnState)),
        "preparing"
    );
    h.complete_all(3);
    assert_eq!(reg.verify("t", p, "a", 0), Err(code(Code::InvalidTxnState)));
    assert_eq!(reg.ongoing(), 0);
    // A fenced instance is told so even where no marker reached.
    let newer = h.init("t", 4).unwrap();
    assert_eq!(
        reg.verify("t", p, "b", 0),
        Err(code(Code::InvalidProducerEpoch))
    );
    h.add("t", newer, &[("b", 0)], 5).unwrap();
    assert_eq!(reg.verify("t", newer, "b", 0), Ok(()));
    assert_eq!(reg.ongoing(), 1);
}

#[test]
fn kip_360_retried_init_gets_the_same_answer() {
    let mut h = Harness::new();
    let first = h.init("t", 0).unwrap();
    let bumped = h.init_with("t", TIMEOUT, Some(first), 1).unwrap();
    assert_eq!(bumped.epoch, first.epoch + 1);
    // The reply was lost; the producer asks again with its old epoch.
    let again = h.init_with("t", TIMEOUT, Some(first), 2).unwrap();
    assert_eq!(again, bumped);
    // A producer claiming an epoch we never gave out is fenced.
    let bogus = Producer {
        id: first.id,
        epoch: 40,
    };
    assert_eq!(
        h.init_with("t", TIMEOUT, Some(bogus), 3),
        Err(code(Code::ProducerFenced))
    );
    // An id the coordinator forgot (expired): a fresh producer id, as Kafka.
    let unknown = Producer { id: 5, epoch: 0 };
    let fresh = h.init_with("new", TIMEOUT, Some(unknown), 3).unwrap();
    assert_ne!(fresh.id, 5);
    assert_eq!(fresh.epoch, 0);
}

#[test]
fn a_fenced_instance_cannot_claim_the_new_instances_epoch() {
    let mut h = Harness::new();
    let old = h.init("t", 0).unwrap();
    // A new instance (no stated identity) takes over.
    let new = h.init("t", 1).unwrap();
    assert_eq!(new.epoch, old.epoch + 1);
    // The old instance asking to bump from its epoch is fenced, not handed
    // the new instance's identity.
    assert_eq!(
        h.init_with("t", TIMEOUT, Some(old), 2),
        Err(code(Code::ProducerFenced))
    );
    // The new instance's own KIP-360 bump and its retry work.
    let bumped = h.init_with("t", TIMEOUT, Some(new), 3).unwrap();
    assert_eq!(h.init_with("t", TIMEOUT, Some(new), 4), Ok(bumped));
    // Once another bump happens, the old retry is no longer answered.
    let _ = h.init("t", 5).unwrap();
    assert_eq!(
        h.init_with("t", TIMEOUT, Some(new), 6),
        Err(code(Code::ProducerFenced))
    );
}

#[test]
fn a_timeout_at_the_last_handed_out_epoch_still_fences() {
    let mut h = Harness::new();
    let first = h.init("t", 0).unwrap();
    let key = super::records::TxnKey {
        transactional_id: "t".into(),
    }
    .encode();
    let value = super::records::TxnValue {
        producer_id: first.id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: i16::MAX - 1,
        timeout_ms: 1_000,
        status: Ongoing,
        partitions: vec![super::records::TxnPartitions {
            topic: "a".into(),
            partitions: vec![0],
        }],
        last_update_timestamp: 0,
        start_timestamp: 0,
        client_transaction_version: 0,
    }
    .encode();
    h.shard.replay(&key, Some(&value));
    let mut out = Outcome::default();
    assert_eq!(h.shard.abort_timed_out(2_000, &mut out), 1);
    let jobs = h.complete_all(2_001);
    assert_eq!(jobs[0].epoch, i16::MAX, "fenced with the last epoch");
    let late = Producer {
        id: first.id,
        epoch: i16::MAX - 1,
    };
    assert_eq!(
        h.end("t", late, true, 2_002),
        Err(code(Code::ProducerFenced))
    );
    // The next instance moves to a new producer id.
    let next = h.init("t", 2_003).unwrap();
    assert_ne!(next.id, first.id);
}

#[test]
fn epoch_exhaustion_moves_to_a_new_producer_id() {
    let mut h = Harness::new();
    let mut p = h.init("t", 0).unwrap();
    let first_id = p.id;
    // Jump close to the limit through replayed state.
    let mut out = Outcome::default();
    let mut meta = h.shard.get("t").unwrap().clone();
    meta.epoch = i16::MAX - 2;
    let key = super::records::TxnKey {
        transactional_id: "t".into(),
    }
    .encode();
    let value = super::records::TxnValue {
        producer_id: meta.producer_id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: meta.epoch,
        timeout_ms: meta.timeout_ms,
        status: Empty,
        partitions: vec![],
        last_update_timestamp: 0,
        start_timestamp: -1,
        client_transaction_version: 0,
    }
    .encode();
    h.shard.replay(&key, Some(&value));
    drop(out.records.drain(..));
    p = h.init("t", 1).unwrap();
    assert_eq!((p.id, p.epoch), (first_id, i16::MAX - 1));
    p = h.init("t", 2).unwrap();
    assert_ne!(p.id, first_id);
    assert_eq!(p.epoch, 0);
    assert_eq!(h.shard.get("t").unwrap().previous_producer_id, first_id);
}
