//! The shard's rebalance protocol and offsets, driven with a manual clock:
//! no sleeping, every timer fired by moving time.

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot::{self, error::TryRecvError, Receiver};

use super::shard::*;
use super::state::GroupState;
use crate::api::Code;
use crate::config::GroupConfig;
use crate::coordinator::{Clock, ManualClock};
use crate::log::control::{Marker, MarkerType};

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

/// One entry of the partition, as `write_outcome` writes an outcome: its
/// plain records, then its transactional writes.
#[derive(Clone, Debug)]
enum Entry {
    Record(Record, Option<(i64, i16)>),
    Marker(Marker),
}

fn entries_of(records: Vec<Record>, txn_writes: Vec<TxnWrite>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = records
        .into_iter()
        .map(|r| Entry::Record(r, None))
        .collect();
    for w in txn_writes {
        match w {
            TxnWrite::Records {
                producer_id,
                producer_epoch,
                records,
            } => entries.extend(
                records
                    .into_iter()
                    .map(|r| Entry::Record(r, Some((producer_id, producer_epoch)))),
            ),
            TxnWrite::Marker(m) => entries.push(Entry::Marker(m)),
        }
    }
    entries
}

/// A fresh shard loaded from `entries` at offsets 0, 1, …
fn replayed(entries: &[Entry], now: i64) -> GroupShard {
    let mut shard = GroupShard::new(0, config(0));
    for (offset, e) in (0i64..).zip(entries) {
        match e {
            Entry::Record((k, v), txn) => shard.replay_record(offset, k, v.as_deref(), *txn, now),
            Entry::Marker(m) => shard.replay_marker(offset, m),
        }
    }
    shard.loaded(entries.len() as i64);
    shard
}

struct H {
    shard: GroupShard,
    clock: ManualClock,
    /// Every plain record written so far, in order.
    log: Vec<Record>,
    /// Everything written so far, in log order.
    entries: Vec<Entry>,
}

fn config(initial_delay: i32) -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 300_000,
        initial_rebalance_delay_ms: initial_delay,
        max_size: 3,
        offset_metadata_max_bytes: 16,
        offsets_retention_ms: 60_000,
        // Not read by the shard (the task and the coordinator use them).
        offsets_topic_num_partitions: 1,
        offsets_topic_segment_bytes: 1 << 20,
        offsets_retention_check_interval_ms: 1_000,
    }
}

fn protocols(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|n| (n.to_string(), Bytes::from(format!("meta-{n}"))))
        .collect()
}

impl H {
    fn new() -> H {
        Self::with(config(0))
    }

    fn with(config: GroupConfig) -> H {
        H {
            shard: GroupShard::new(0, config),
            clock: ManualClock::new(1_000_000),
            log: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Applies an outcome as the task would with a successful write.
    fn apply(&mut self, out: Outcome) {
        let Outcome {
            records,
            txn_writes,
            replies,
        } = out;
        self.log.extend(records.iter().cloned());
        self.entries.extend(entries_of(records, txn_writes));
        self.shard.outcome_written();
        for r in replies {
            r(None);
        }
    }

    fn run<T>(&mut self, f: impl FnOnce(&mut GroupShard, i64, &mut Outcome) -> T) -> T {
        let mut out = Outcome::default();
        let now = self.now();
        let v = f(&mut self.shard, now, &mut out);
        self.apply(out);
        v
    }

    fn tick(&mut self) {
        self.run(|s, now, out| s.tick(now, out));
    }

    fn advance(&mut self, ms: i64) {
        self.clock.advance(ms);
        self.tick();
    }

    fn join(
        &mut self,
        member: &str,
        instance: Option<&str>,
        protos: &[&str],
    ) -> Receiver<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        let req = JoinRequest {
            group_id: "g".into(),
            member_id: member.into(),
            group_instance_id: instance.map(str::to_owned),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: protocols(protos),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
            reply: tx,
        };
        self.run(|s, now, out| s.join(req, now, out));
        rx
    }

    /// A dynamic member's two-step join: returns its id and the pending
    /// JoinGroup response.
    fn join_new(&mut self) -> (String, Receiver<JoinGroupResponse>) {
        let mut rx = self.join("", None, &["range"]);
        let first = rx.try_recv().expect("MEMBER_ID_REQUIRED answered at once");
        assert_eq!(first.error_code, Code::MemberIdRequired.code());
        let id = first.member_id.to_string();
        assert!(id.starts_with("client-"), "{id}");
        (id.clone(), self.join(&id, None, &["range"]))
    }

    fn sync(
        &mut self,
        member: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) -> Receiver<SyncGroupResponse> {
        let (tx, rx) = oneshot::channel();
        let req = SyncRequest {
            group_id: "g".into(),
            generation,
            member_id: member.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
            reply: tx,
        };
        self.run(|s, now, out| s.sync(req, now, out));
        rx
    }

    fn heartbeat(&mut self, member: &str, generation: i32) -> i16 {
        self.run(|s, now, _| s.heartbeat("g", generation, member, None, now))
    }

    fn leave(&mut self, member: &str) -> Result<Vec<i16>, i16> {
        let members = [MemberRef {
            member_id: member.to_owned(),
            group_instance_id: None,
        }];
        self.run(|s, now, out| s.leave("g", &members, now, out))
    }

    fn commit(&mut self, member: &str, generation: i32, offset: i64) -> i16 {
        let req = CommitRequest {
            group_id: "g".into(),
            generation,
            member_id: member.into(),
            group_instance_id: None,
            retention_ms: -1,
            api_version: 8,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: Some("m".into()),
                error: 0,
            }],
        };
        self.run(|s, now, out| s.commit(req, now, out))[0]
    }

    fn state(&self) -> GroupState {
        self.shard.group("g").expect("group exists").state
    }

    fn generation(&self) -> i32 {
        self.shard.group("g").expect("group exists").generation
    }

    fn committed(&self) -> Option<i64> {
        let topics = [("t".to_string(), vec![0])];
        let found = self.shard.fetch_offsets("g", Some(&topics));
        Some(found[0].1[0].offset).filter(|o| *o >= 0)
    }

    /// One member, joined and synced: returns its id (generation 1).
    fn stable_single(&mut self) -> String {
        let (a, mut rx) = self.join_new();
        self.tick();
        let resp = rx.try_recv().expect("join completes");
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.generation_id, 1);
        assert_eq!(resp.leader.as_str(), a);
        assert_eq!(resp.members.len(), 1);
        let mut s = self.sync(&a, 1, &[(&a, "p0-5")]);
        assert_eq!(s.try_recv().unwrap().assignment, Bytes::from("p0-5"));
        assert_eq!(self.state(), GroupState::Stable);
        a
    }

    /// One member whose consumer-protocol subscription names topic "t",
    /// joined (v3-style, no MEMBER_ID_REQUIRED) and synced: returns its id.
    fn stable_subscriber_of_t(&mut self, session_timeout_ms: i32) -> String {
        let (tx, _rx) = oneshot::channel();
        // ConsumerProtocolSubscription v0: ["t"], null user data.
        let sub = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 255, 255, 255, 255]);
        let req = JoinRequest {
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: None,
            session_timeout_ms,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), sub)],
            client_id: "c".into(),
            client_host: "/h".into(),
            require_known_member_id: false,
            reply: tx,
        };
        self.run(|s, now, out| s.join(req, now, out));
        self.tick();
        let g = self.shard.group("g").expect("group exists");
        let id = g.members.keys().next().expect("one member").clone();
        self.sync(&id, 1, &[(&id, "x")]);
        id
    }

    /// A formed (generation 1), then B joined and A rejoined (generation
    /// 2), and A, the leader, synced {A: "A", B: "B"}; B has not synced.
    fn pair_in_generation_2(&mut self) -> (String, String) {
        let a = self.stable_single();
        let (b, mut b_join) = self.join_new();
        self.join(&a, None, &["range"]).try_recv().unwrap();
        b_join.try_recv().unwrap();
        self.sync(&a, 2, &[(&a, "A"), (&b, "B")]);
        (a, b)
    }
}

fn pending<T>(rx: &mut Receiver<T>) -> bool {
    matches!(rx.try_recv(), Err(TryRecvError::Empty))
}

#[test]
fn first_join_needs_a_member_id_then_one_member_becomes_stable() {
    let mut h = H::new();
    let a = h.stable_single();
    // The leader's sync wrote the group with its assignment.
    let last = h.log.last().expect("group record written");
    let value = super::records::GroupValue::decode(last.1.as_deref().unwrap()).unwrap();
    assert_eq!(value.generation, 1);
    assert_eq!(value.members[0].member_id, a);
    assert_eq!(value.members[0].assignment, Bytes::from("p0-5"));
    assert_eq!(h.heartbeat(&a, 1), 0);
}

#[test]
fn a_second_member_triggers_a_rebalance_and_gets_no_member_list() {
    let mut h = H::new();
    let a = h.stable_single();
    let (b, mut b_join) = h.join_new();
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(pending(&mut b_join));
    assert_eq!(h.heartbeat(&a, 1), Code::RebalanceInProgress.code());
    // A rejoins: everyone is in, the join completes without waiting.
    let mut a_join = h.join(&a, None, &["range"]);
    let ra = a_join.try_recv().expect("leader answered");
    let rb = b_join.try_recv().expect("follower answered");
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    assert_eq!(ra.leader.as_str(), a);
    assert_eq!(ra.members.len(), 2);
    assert!(rb.members.is_empty());
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    // The follower's sync waits for the leader's.
    let mut sb = h.sync(&b, 2, &[]);
    assert!(pending(&mut sb));
    let mut sa = h.sync(&a, 2, &[(&a, "A"), (&b, "B")]);
    assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from("A"));
    assert_eq!(sb.try_recv().unwrap().assignment, Bytes::from("B"));
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn leaving_rebalances_the_rest_and_the_last_leave_empties_the_group() {
    let mut h = H::new();
    let (a, b) = h.pair_in_generation_2();
    let errs = h.leave(&b);
    assert_eq!(errs, Ok(vec![0]));
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let mut a_join = h.join(&a, None, &["range"]);
    let r = a_join.try_recv().expect("only member left: completes");
    assert_eq!(r.generation_id, 3);
    assert_eq!(r.members.len(), 1);
    h.sync(&a, 3, &[(&a, "all")]);
    h.leave(&a).unwrap();
    // Nobody is left to wait for: empty at once, as in Kafka.
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.generation(), 4);
    // Unknown members are reported per member.
    let errs = h.leave("nobody");
    assert_eq!(errs, Ok(vec![Code::UnknownMemberId.code()]));
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    let mut h = H::new();
    let (a, b) = h.pair_in_generation_2();
    h.sync(&b, 2, &[]);
    // A keeps heartbeating, B goes silent.
    for _ in 0..3 {
        h.advance(SESSION as i64 / 3);
        assert_eq!(h.heartbeat(&a, 2), 0);
    }
    assert_eq!(h.state(), GroupState::Stable, "not yet");
    h.advance(SESSION as i64 / 3);
    assert!(
        h.shard.group("g").unwrap().members.get(&b).is_none(),
        "b expired"
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(&a, 2), Code::RebalanceInProgress.code());
    assert_eq!(h.heartbeat(&b, 2), Code::UnknownMemberId.code());
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let mut h = H::new();
    let a = h.stable_single();
    let (b, mut b_join) = h.join_new();
    // A never rejoins but keeps heartbeating, so its session stays alive.
    for _ in 0..(REBALANCE / 5_000 - 1) {
        h.advance(5_000);
        assert_eq!(h.heartbeat(&a, 1), Code::RebalanceInProgress.code());
    }
    h.advance(4_999);
    assert!(pending(&mut b_join));
    h.advance(1);
    let r = b_join.try_recv().expect("join completes at the timeout");
    assert_eq!(r.generation_id, 2);
    assert_eq!(
        r.leader.as_str(),
        b,
        "leadership moves to a member that joined"
    );
    assert!(h.shard.group("g").unwrap().members.get(&a).is_none());
}

#[test]
fn a_member_that_never_syncs_is_removed_at_the_rebalance_timeout() {
    let mut h = H::new();
    let (a, b) = h.pair_in_generation_2();
    // B never syncs; keep A alive.
    for _ in 0..(REBALANCE / 5_000) {
        h.advance(5_000);
        h.heartbeat(&a, 2);
    }
    assert!(h.shard.group("g").unwrap().members.get(&b).is_none());
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_static_member_rejoining_with_a_new_id_fences_the_old_one_without_a_rebalance() {
    let mut h = H::new();
    let mut rx = h.join("", Some("instance-1"), &["range"]);
    h.tick();
    let first = rx
        .try_recv()
        .expect("static members skip MEMBER_ID_REQUIRED");
    assert_eq!(first.error_code, 0);
    let old = first.member_id.to_string();
    assert!(old.starts_with("instance-1-"));
    h.sync(&old, 1, &[(&old, "A")]);
    assert_eq!(h.state(), GroupState::Stable);
    // The same instance restarts: a new member id, same generation.
    let mut rx = h.join("", Some("instance-1"), &["range"]);
    let again = rx.try_recv().expect("answered from the current generation");
    assert_eq!(again.error_code, 0);
    let new = again.member_id.to_string();
    assert_ne!(new, old);
    assert_eq!(again.generation_id, 1);
    assert_eq!(h.state(), GroupState::Stable);
    let code = h.run(|s, now, _| s.heartbeat("g", 1, &old, Some("instance-1"), now));
    assert_eq!(code, Code::FencedInstanceId.code());
    let code = h.run(|s, now, _| s.heartbeat("g", 1, &new, Some("instance-1"), now));
    assert_eq!(code, 0);
    // It keeps its assignment.
    assert_eq!(
        h.sync(&new, 1, &[]).try_recv().unwrap().assignment,
        Bytes::from("A")
    );
}

#[test]
fn stale_generations_are_fenced_for_sync_heartbeat_and_commit() {
    let mut h = H::new();
    let a = h.stable_single();
    assert_eq!(h.heartbeat(&a, 0), Code::IllegalGeneration.code());
    assert_eq!(
        h.sync(&a, 7, &[]).try_recv().unwrap().error_code,
        Code::IllegalGeneration.code()
    );
    assert_eq!(h.commit(&a, 0, 5), Code::IllegalGeneration.code());
    assert_eq!(h.committed(), None);
    assert_eq!(h.commit(&a, 1, 5), 0);
    assert_eq!(h.committed(), Some(5));
    // An assign-only consumer cannot commit into a live group.
    assert_eq!(h.commit("", -1, 9), Code::UnknownMemberId.code());
    assert_eq!(h.committed(), Some(5));
}

#[test]
fn commits_during_completing_rebalance_are_refused() {
    let mut h = H::new();
    let a = h.stable_single();
    let (_b, mut b_join) = h.join_new();
    h.join(&a, None, &["range"]).try_recv().unwrap();
    b_join.try_recv().unwrap();
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert_eq!(h.commit(&a, 2, 1), Code::RebalanceInProgress.code());
}

#[test]
fn assign_only_groups_commit_and_expire_after_retention() {
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 42), 0);
    assert_eq!(h.committed(), Some(42));
    assert_eq!(h.state(), GroupState::Empty);
    // A commit with a generation for an unknown group is refused.
    h.run(|s, now, out| s.delete_group("g", now, out));
    assert_eq!(h.commit("m", 3, 1), Code::IllegalGeneration.code());
    assert_eq!(h.commit("", -1, 42), 0);
    h.clock.advance(59_999);
    assert_eq!(h.run(|s, now, out| s.expire_offsets(now, out)), 0);
    h.clock.advance(1);
    assert_eq!(h.run(|s, now, out| s.expire_offsets(now, out)), 1);
    assert!(
        h.shard.group("g").is_none(),
        "an empty group without offsets is gone"
    );
    let (key, value) = h.log.last().unwrap();
    assert!(value.is_none(), "tombstone written");
    assert!(matches!(
        super::records::RecordKey::decode(key).unwrap(),
        Some(super::records::RecordKey::Offset { .. })
    ));
}

#[test]
fn offsets_of_subscribed_topics_do_not_expire_while_the_group_is_active() {
    let mut h = H::new();
    let id = h.stable_subscriber_of_t(300_000);
    assert_eq!(h.commit(&id, 1, 7), 0);
    h.clock.advance(120_000);
    h.heartbeat(&id, 1);
    assert_eq!(h.run(|s, now, out| s.expire_offsets(now, out)), 0);
    assert_eq!(h.committed(), Some(7));
}

#[test]
fn metadata_larger_than_the_limit_is_refused_per_partition() {
    let mut h = H::new();
    let req = CommitRequest {
        group_id: "g".into(),
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_ms: -1,
        api_version: 9,
        partitions: vec![
            CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: Some("x".repeat(16)),
                error: 0,
            },
            CommitPartition {
                topic: "t".into(),
                partition: 1,
                offset: 1,
                leader_epoch: -1,
                metadata: Some("x".repeat(17)),
                error: 0,
            },
        ],
    };
    let errs = h.run(|s, now, out| s.commit(req, now, out));
    assert_eq!(errs, vec![0, Code::OffsetMetadataTooLarge.code()]);
}

#[test]
fn delete_group_needs_an_empty_group() {
    let mut h = H::new();
    let a = h.stable_single();
    h.commit(&a, 1, 3);
    assert_eq!(
        h.run(|s, now, out| s.delete_group("g", now, out)),
        Code::NonEmptyGroup.code()
    );
    h.leave(&a).unwrap();
    h.tick();
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.run(|s, now, out| s.delete_group("g", now, out)), 0);
    assert_eq!(h.committed(), None);
    assert_eq!(
        h.run(|s, now, out| s.delete_group("g", now, out)),
        Code::GroupIdNotFound.code()
    );
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    let mut h = H::new();
    let id = h.stable_subscriber_of_t(SESSION);
    h.commit(&id, 1, 7);
    let parts = [("t".to_string(), 0), ("other".to_string(), 0)];
    let errs = h.run(|s, _, out| s.delete_offsets("g", &parts, out));
    assert_eq!(errs, Ok(vec![Code::GroupSubscribedToTopic.code(), 0]));
    assert_eq!(h.committed(), Some(7));
    let errs = h.run(|s, _, out| s.delete_offsets("nope", &parts, out));
    assert_eq!(errs, Err(Code::GroupIdNotFound.code()));
}

#[test]
fn the_initial_delay_waits_for_more_members() {
    let mut h = H::with(config(3_000));
    let (a, mut a_join) = h.join_new();
    h.advance(2_000);
    let (_b, mut b_join) = h.join_new();
    h.advance(1_000);
    // B arrived during the delay: one more delay round.
    assert!(pending(&mut a_join) && pending(&mut b_join));
    h.advance(3_000);
    let ra = a_join.try_recv().expect("completes after the extension");
    let rb = b_join.try_recv().unwrap();
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    assert_eq!(ra.leader.as_str(), a);
    assert_eq!(ra.members.len(), 2);
}

#[test]
fn groups_are_capped_by_max_size_and_protocols_must_agree() {
    let mut h = H::new();
    for _ in 0..3 {
        let _ = h.join_new();
    }
    let mut rx = h.join("", None, &["range"]);
    assert_eq!(
        rx.try_recv().unwrap().error_code,
        Code::GroupMaxSizeReached.code()
    );
    let mut rx = h.join("", None, &["sticky"]);
    assert_eq!(
        rx.try_recv().unwrap().error_code,
        Code::InconsistentGroupProtocol.code()
    );
}

#[test]
fn the_protocol_most_members_prefer_is_chosen() {
    let mut h = H::new();
    let mut rx = h.join("", None, &["roundrobin", "range"]);
    let a = rx.try_recv().unwrap().member_id.to_string();
    let mut rx = h.join("", None, &["range", "roundrobin"]);
    let b = rx.try_recv().unwrap().member_id.to_string();
    let mut rx = h.join("", None, &["range"]);
    let c = rx.try_recv().unwrap().member_id.to_string();
    let mut ja = h.join(&a, None, &["roundrobin", "range"]);
    let _jb = h.join(&b, None, &["range", "roundrobin"]);
    let _jc = h.join(&c, None, &["range"]);
    h.tick();
    let r = ja.try_recv().unwrap();
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
}

#[test]
fn a_replayed_log_rebuilds_offsets_and_groups() {
    let mut h = H::new();
    let a = h.stable_single();
    assert_eq!(h.commit(&a, 1, 11), 0);
    let mut fresh = GroupShard::new(0, config(0));
    for (k, v) in &h.log {
        fresh.replay(k, v.as_deref(), h.now());
    }
    let g = fresh.group("g").unwrap();
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(g.generation, 1);
    assert_eq!(g.members[&a].assignment, Bytes::from("p0-5"));
    let topics = [("t".to_string(), vec![0])];
    assert_eq!(fresh.fetch_offsets("g", Some(&topics))[0].1[0].offset, 11);
    assert_eq!(
        fresh.fetch_offsets("g", Some(&topics))[0].1[0].metadata,
        "m"
    );
    // The reloaded member must heartbeat within its session.
    let mut out = Outcome::default();
    fresh.tick(h.now() + SESSION as i64, &mut out);
    // Its only member gone, the group completes an empty rebalance.
    assert_eq!(fresh.group("g").unwrap().state, GroupState::Empty);
    assert_eq!(fresh.group("g").unwrap().generation, 2);
    // A snapshot replays to the same state as the whole log.
    let from_snapshot = replayed(&snapshot_entries(&h.shard), h.now());
    assert_eq!(
        from_snapshot.fetch_offsets("g", None),
        h.shard.fetch_offsets("g", None)
    );
    assert_eq!(from_snapshot.group("g").unwrap().generation, 1);
}

// ---- transactional offset commits --------------------------------------

const PID: i64 = 7;
const PID2: i64 = 8;

fn snapshot_entries(shard: &GroupShard) -> Vec<Entry> {
    shard
        .snapshot()
        .into_iter()
        .flat_map(|c| entries_of(c.records, c.txn_writes))
        .collect()
}

fn txn_request(
    pid: i64,
    epoch: i16,
    generation: i32,
    member: &str,
    offset: i64,
) -> TxnCommitRequest {
    TxnCommitRequest {
        group_id: "g".into(),
        producer_id: pid,
        producer_epoch: epoch,
        generation,
        member_id: member.into(),
        group_instance_id: None,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: 3,
            metadata: Some("txn".into()),
            error: 0,
        }],
    }
}

impl H {
    /// A TxnOffsetCommit of t-0 without group management.
    fn txn_commit(&mut self, pid: i64, offset: i64) -> i16 {
        let req = txn_request(pid, 0, -1, "", offset);
        self.run(|s, now, out| s.txn_commit(req, now, out))[0]
    }

    fn end_txn(&mut self, pid: i64, commit: bool) -> Result<(), i16> {
        self.run(|s, _, out| s.complete_txn(pid, 0, 0, commit, out))
    }

    fn stable(&self) -> FetchedOffset {
        let topics = [("t".to_string(), vec![0])];
        self.shard.fetch_offsets_with("g", Some(&topics), true)[0].1[0].clone()
    }

    fn markers(&self) -> Vec<Marker> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Marker(m) => Some(*m),
                Entry::Record(..) => None,
            })
            .collect()
    }
}

fn committed_in(shard: &GroupShard) -> Option<i64> {
    let topics = [("t".to_string(), vec![0])];
    Some(shard.fetch_offsets("g", Some(&topics))[0].1[0].offset).filter(|o| *o >= 0)
}

#[test]
fn a_txn_offset_commit_is_invisible_until_its_commit_marker() {
    let mut h = H::new();
    assert_eq!(h.txn_commit(PID, 5), 0);
    // Written as the producer's transactional record, in Kafka's layout.
    match h.entries.as_slice() {
        [Entry::Record((k, Some(v)), Some((PID, 0)))] => {
            let key = super::records::RecordKey::decode(k).unwrap().unwrap();
            assert_eq!(
                key,
                super::records::RecordKey::Offset {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 0
                }
            );
            let value = super::records::OffsetValue::decode(v).unwrap();
            assert_eq!((value.offset, value.leader_epoch), (5, 3));
            assert_eq!(value.metadata, "txn");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.committed(),
        None,
        "pending offsets are not committed ones"
    );
    assert!(h.shard.has_pending_txn(PID));
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.committed(), Some(5));
    assert!(!h.shard.has_pending_txn(PID));
    assert_eq!(
        h.markers(),
        [Marker {
            kind: MarkerType::Commit,
            producer_id: PID,
            producer_epoch: 0,
            coordinator_epoch: 0
        }]
    );
}

#[test]
fn an_abort_marker_drops_the_pending_offsets() {
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 3), 0);
    assert_eq!(h.txn_commit(PID, 5), 0);
    assert_eq!(h.end_txn(PID, false), Ok(()));
    assert_eq!(h.committed(), Some(3));
    assert!(!h.shard.has_pending_txn(PID));
    assert_eq!(h.markers()[0].kind, MarkerType::Abort);
    // A later commit marker of the same producer finds nothing to apply.
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.committed(), Some(3));
}

#[test]
fn completing_without_pending_offsets_still_writes_the_marker() {
    let mut h = H::new();
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.end_txn(PID, true), Ok(()), "a retried completion");
    assert_eq!(h.markers().len(), 2);
    assert_eq!(h.committed(), None);
}

#[test]
fn require_stable_answers_unstable_offset_commit_while_a_txn_is_pending() {
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 3), 0);
    assert_eq!(h.txn_commit(PID, 5), 0);
    let unstable = h.stable();
    assert_eq!(unstable.error, Code::UnstableOffsetCommit.code());
    assert_eq!(unstable.offset, -1);
    // Without require_stable: the last committed offset.
    assert_eq!(h.committed(), Some(3));
    // Every committed offset (no topics given) as well.
    let all = h.shard.fetch_offsets_with("g", None, true);
    assert_eq!(all[0].1[0].error, Code::UnstableOffsetCommit.code());
    assert_eq!(
        h.shard.fetch_offsets_with("g", None, false)[0].1[0].offset,
        3
    );
    // Other partitions are stable.
    let topics = [("t".to_string(), vec![1])];
    assert_eq!(
        h.shard.fetch_offsets_with("g", Some(&topics), true)[0].1[0].error,
        0
    );
    assert_eq!(h.end_txn(PID, true), Ok(()));
    let stable = h.stable();
    assert_eq!((stable.error, stable.offset), (0, 5));
}

#[test]
fn a_plain_commit_written_after_a_txn_commit_wins_over_it() {
    // Kafka keeps the most recent commit by record offset.
    let mut h = H::new();
    assert_eq!(h.txn_commit(PID, 5), 0);
    assert_eq!(h.commit("", -1, 7), 0);
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.committed(), Some(7));
    assert_eq!(committed_in(&replayed(&h.entries, h.now())), Some(7));

    // The other way round the transactional offset is the newer one.
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 7), 0);
    assert_eq!(h.txn_commit(PID, 5), 0);
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.committed(), Some(5));
    assert_eq!(committed_in(&replayed(&h.entries, h.now())), Some(5));
}

#[test]
fn within_one_outcome_the_order_is_the_log_order() {
    // One write: plain records go before transactional ones, so a plain
    // commit applied after a TxnOffsetCommit still stands before it.
    let mut h = H::new();
    let txn = txn_request(PID, 0, -1, "", 5);
    let plain = CommitRequest {
        group_id: "g".into(),
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_ms: -1,
        api_version: 8,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            leader_epoch: -1,
            metadata: None,
            error: 0,
        }],
    };
    h.run(|s, now, out| {
        assert_eq!(s.txn_commit(txn, now, out), [0]);
        assert_eq!(s.commit(plain, now, out), [0]);
        assert_eq!(s.complete_txn(PID, 0, 0, true, out), Ok(()));
    });
    assert_eq!(h.committed(), Some(5));
    assert_eq!(committed_in(&replayed(&h.entries, h.now())), Some(5));
}

#[test]
fn two_producers_on_one_partition_keep_the_newer_commit() {
    let mut h = H::new();
    assert_eq!(h.txn_commit(PID, 5), 0);
    assert_eq!(h.txn_commit(PID2, 9), 0);
    // The newer one commits first; the older one's commit does not undo it.
    assert_eq!(h.end_txn(PID2, true), Ok(()));
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.committed(), Some(9));
    assert_eq!(committed_in(&replayed(&h.entries, h.now())), Some(9));
}

#[test]
fn replay_rebuilds_committed_and_pending_offsets() {
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 1), 0);
    assert_eq!(h.txn_commit(PID, 5), 0);
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.txn_commit(PID2, 9), 0);
    let mut fresh = replayed(&h.entries, h.now());
    assert_eq!(committed_in(&fresh), Some(5));
    assert!(!fresh.has_pending_txn(PID));
    let pending = fresh
        .pending_txn_offset("g", PID2, "t", 0)
        .expect("still pending");
    assert_eq!(pending.value.offset, 9);
    let topics = [("t".to_string(), vec![0])];
    assert_eq!(
        fresh.fetch_offsets_with("g", Some(&topics), true)[0].1[0].error,
        Code::UnstableOffsetCommit.code()
    );
    // The transaction coordinator completes it after its own recovery.
    let mut out = Outcome::default();
    assert_eq!(fresh.complete_txn(PID2, 0, 0, true, &mut out), Ok(()));
    assert_eq!(committed_in(&fresh), Some(9));
    // Operations after the replay order after every replayed record.
    let mut fresh = replayed(&h.entries, h.now());
    fresh.outcome_written();
    let mut out = Outcome::default();
    let plain = CommitRequest {
        group_id: "g".into(),
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_ms: -1,
        api_version: 8,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset: 11,
            leader_epoch: -1,
            metadata: None,
            error: 0,
        }],
    };
    assert_eq!(fresh.commit(plain, h.now(), &mut out), [0]);
    fresh.outcome_written();
    assert_eq!(fresh.complete_txn(PID2, 0, 0, true, &mut out), Ok(()));
    assert_eq!(
        committed_in(&fresh),
        Some(11),
        "the newer plain commit wins"
    );
}

#[test]
fn txn_commits_are_validated_like_offset_commits_without_the_rebalance_check() {
    let mut h = H::new();
    // An unknown group with a generation.
    let req = txn_request(PID, 0, 1, "m", 5);
    assert_eq!(
        h.run(|s, now, out| s.txn_commit(req, now, out)),
        [Code::IllegalGeneration.code()]
    );
    let a = h.stable_single();
    let run = |h: &mut H, generation: i32, member: &str| {
        let req = txn_request(PID, 0, generation, member, 5);
        h.run(|s, now, out| s.txn_commit(req, now, out))[0]
    };
    assert_eq!(run(&mut h, 1, "nobody"), Code::UnknownMemberId.code());
    assert_eq!(run(&mut h, 2, &a), Code::IllegalGeneration.code());
    assert_eq!(run(&mut h, 1, &a), 0);
    // v0-v2 carry no member: accepted whatever the group's state.
    assert_eq!(run(&mut h, -1, ""), 0);
    // A member of the group may commit while the group completes a
    // rebalance (transactional commits do not check it).
    let (b, mut b_join) = h.join_new();
    h.join(&a, None, &["range"]).try_recv().unwrap();
    b_join.try_recv().unwrap();
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert_eq!(run(&mut h, 2, &b), 0);
    assert_eq!(h.commit(&b, 2, 5), Code::RebalanceInProgress.code());
    // Metadata beyond offset.metadata.max.bytes, per partition.
    let mut req = txn_request(PID, 0, -1, "", 5);
    req.partitions[0].metadata = Some("x".repeat(17));
    req.partitions.push(CommitPartition {
        topic: "gone".into(),
        partition: 0,
        offset: 1,
        leader_epoch: -1,
        metadata: None,
        error: Code::UnknownTopicOrPartition.code(),
    });
    assert_eq!(
        h.run(|s, now, out| s.txn_commit(req, now, out)),
        [
            Code::OffsetMetadataTooLarge.code(),
            Code::UnknownTopicOrPartition.code()
        ]
    );
}

#[test]
fn fenced_producer_and_coordinator_epochs_are_refused_before_writing() {
    let mut h = H::new();
    let req = txn_request(PID, 3, -1, "", 5);
    assert_eq!(h.run(|s, now, out| s.txn_commit(req, now, out)), [0]);
    let old = txn_request(PID, 2, -1, "", 6);
    assert_eq!(
        h.run(|s, now, out| s.txn_commit(old, now, out)),
        [Code::InvalidProducerEpoch.code()]
    );
    let written = h.entries.len();
    assert_eq!(
        h.run(|s, _, out| s.complete_txn(PID, 2, 0, true, out)),
        Err(Code::InvalidProducerEpoch.code())
    );
    assert_eq!(
        h.run(|s, _, out| s.complete_txn(PID, 3, 5, true, out)),
        Ok(())
    );
    assert_eq!(h.committed(), Some(5));
    assert_eq!(
        h.run(|s, _, out| s.complete_txn(PID, 3, 4, false, out)),
        Err(Code::TransactionCoordinatorFenced.code())
    );
    assert_eq!(
        h.entries.len(),
        written + 1,
        "only the accepted marker is written"
    );
    // The epochs are known again after a replay.
    let mut fresh = replayed(&h.entries, h.now());
    let mut out = Outcome::default();
    assert_eq!(
        fresh.complete_txn(PID, 3, 4, false, &mut out),
        Err(Code::TransactionCoordinatorFenced.code())
    );
}

#[test]
fn deleting_an_empty_group_drops_its_pending_offsets_too() {
    // Kafka's ClassicGroup.validateDeleteGroup checks only the state, and
    // deleteAllOffsets tombstones pending transactional offsets as well.
    let mut h = H::new();
    assert_eq!(h.txn_commit(PID, 5), 0);
    let code = h.run(|s, now, out| s.delete_group("g", now, out));
    assert_eq!(code, 0);
    assert!(h.shard.group("g").is_none());
    assert!(!h.shard.has_pending_txn(PID));
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.committed(), None, "the marker does not bring it back");
    let fresh = replayed(&h.entries, h.now());
    assert!(fresh.group("g").is_none());
    assert_eq!(committed_in(&fresh), None);
    // A group with members is refused as before.
    let mut h = H::new();
    h.stable_single();
    assert_eq!(h.txn_commit(PID, 5), 0);
    let code = h.run(|s, now, out| s.delete_group("g", now, out));
    assert_eq!(code, Code::NonEmptyGroup.code());
}

#[test]
fn offset_delete_drops_pending_offsets_of_the_partition() {
    let mut h = H::new();
    assert_eq!(h.txn_commit(PID, 5), 0);
    let parts = [("t".to_string(), 0)];
    let r = h.run(|s, _, out| s.delete_offsets("g", &parts, out));
    assert_eq!(r, Ok(vec![0]));
    assert!(!h.shard.has_pending_txn(PID));
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.committed(), None);
    assert_eq!(committed_in(&replayed(&h.entries, h.now())), None);
}

#[test]
fn pending_offsets_keep_the_group_and_their_partition_from_expiring() {
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 3), 0);
    assert_eq!(h.txn_commit(PID, 5), 0);
    h.clock.advance(120_000);
    let expired = h.run(|s, now, out| s.expire_offsets(now, out));
    assert_eq!(expired, 0, "not while a transaction holds the partition");
    assert_eq!(h.committed(), Some(3));
    // A group holding only pending offsets is not removed either.
    assert_eq!(h.end_txn(PID, false), Ok(()));
    assert_eq!(h.run(|s, now, out| s.expire_offsets(now, out)), 1);
    assert_eq!(h.txn_commit(PID, 6), 0);
    h.clock.advance(120_000);
    h.run(|s, now, out| s.expire_offsets(now, out));
    assert!(h.shard.group("g").is_some());
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.committed(), Some(6));
}

#[test]
fn a_compacting_rewrite_keeps_pending_offsets_and_their_order() {
    let mut h = H::new();
    // t-0: pending txn of PID older than the committed plain offset.
    assert_eq!(h.txn_commit(PID, 5), 0);
    assert_eq!(h.commit("", -1, 7), 0);
    // t-1: committed plain offset older than the pending txn of PID2.
    let mut req = txn_request(PID2, 0, -1, "", 0);
    req.partitions[0].partition = 1;
    let plain = CommitRequest {
        group_id: "g".into(),
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_ms: -1,
        api_version: 8,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 1,
            offset: 20,
            leader_epoch: -1,
            metadata: None,
            error: 0,
        }],
    };
    h.run(|s, now, out| s.commit(plain, now, out));
    req.partitions[0].offset = 21;
    h.run(|s, now, out| s.txn_commit(req, now, out));
    let snapshot = snapshot_entries(&h.shard);
    let txn_records = snapshot
        .iter()
        .filter(|e| matches!(e, Entry::Record(_, Some(_))))
        .count();
    assert_eq!(txn_records, 2, "{snapshot:?}");
    let mut fresh = replayed(&snapshot, h.now());
    assert_eq!(
        fresh
            .pending_txn_offset("g", PID, "t", 0)
            .unwrap()
            .value
            .offset,
        5
    );
    assert_eq!(
        fresh
            .pending_txn_offset("g", PID2, "t", 1)
            .unwrap()
            .value
            .offset,
        21
    );
    for pid in [PID, PID2] {
        let mut out = Outcome::default();
        assert_eq!(fresh.complete_txn(pid, 0, 0, true, &mut out), Ok(()));
        assert_eq!(h.end_txn(pid, true), Ok(()));
    }
    let topics = [("t".to_string(), vec![0, 1])];
    let offsets = |s: &GroupShard| -> Vec<i64> {
        s.fetch_offsets("g", Some(&topics))[0]
            .1
            .iter()
            .map(|o| o.offset)
            .collect()
    };
    assert_eq!(offsets(&h.shard), [7, 21]);
    assert_eq!(
        offsets(&fresh),
        [7, 21],
        "the rewrite kept which commit is newer"
    );
    assert_eq!(h.shard.live_records(), 2);
}

/// The shard's offsets equal those of a replay of what it wrote.
fn assert_same_as_replay(h: &H) {
    let fresh = replayed(&h.entries, h.now());
    let topics = [("t".to_string(), vec![0, 1])];
    for stable in [false, true] {
        assert_eq!(
            h.shard.fetch_offsets_with("g", Some(&topics), stable),
            fresh.fetch_offsets_with("g", Some(&topics), stable),
            "stable: {stable}"
        );
    }
    assert_eq!(h.shard.group("g").is_some(), fresh.group("g").is_some());
    for pid in [PID, PID2] {
        assert_eq!(h.shard.has_pending_txn(pid), fresh.has_pending_txn(pid));
    }
}

#[test]
fn tombstones_in_the_outcome_of_a_txn_commit_order_as_the_log_does() {
    // Plain records go first in the log: a tombstone applied after a
    // TxnOffsetCommit of the same write stands before it, and the
    // transactional offset outlives it (a replay agrees).
    let parts = [("t".to_string(), 0)];
    let mut h = H::new();
    assert_eq!(h.commit("", -1, 3), 0);
    h.run(|s, now, out| {
        assert_eq!(s.txn_commit(txn_request(PID, 0, -1, "", 5), now, out), [0]);
        assert_eq!(s.delete_offsets("g", &parts, out), Ok(vec![0]));
    });
    assert!(h.shard.has_pending_txn(PID));
    assert_eq!(h.committed(), None, "the older committed offset is gone");
    assert_same_as_replay(&h);
    assert_eq!(h.end_txn(PID, true), Ok(()));
    assert_eq!(h.committed(), Some(5));
    assert_same_as_replay(&h);

    // The same with the group deleted, and the transaction completed in the
    // same write too: the group comes back holding the committed offset.
    let mut h = H::new();
    assert_eq!(h.txn_commit(PID2, 2), 0);
    h.run(|s, now, out| {
        assert_eq!(s.txn_commit(txn_request(PID, 0, -1, "", 5), now, out), [0]);
        assert_eq!(s.complete_txn(PID, 0, 0, true, out), Ok(()));
        assert_eq!(s.delete_group("g", now, out), 0);
    });
    assert_eq!(h.committed(), Some(5));
    assert!(
        !h.shard.has_pending_txn(PID2),
        "older pending offsets are deleted"
    );
    assert_same_as_replay(&h);

    // A tombstone in a later write removes the pending offset.
    let mut h = H::new();
    assert_eq!(h.txn_commit(PID, 5), 0);
    let r = h.run(|s, _, out| s.delete_offsets("g", &parts, out));
    assert_eq!(r, Ok(vec![0]));
    assert!(!h.shard.has_pending_txn(PID));
    assert_same_as_replay(&h);
}

#[test]
fn a_plain_commit_after_a_txn_completed_in_the_same_write_stands_before_it() {
    let mut h = H::new();
    h.run(|s, now, out| {
        assert_eq!(s.txn_commit(txn_request(PID, 0, -1, "", 5), now, out), [0]);
        assert_eq!(s.complete_txn(PID, 0, 0, true, out), Ok(()));
        let plain = CommitRequest {
            group_id: "g".into(),
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_ms: -1,
            api_version: 8,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset: 7,
                leader_epoch: -1,
                metadata: None,
                error: 0,
            }],
        };
        assert_eq!(s.commit(plain, now, out), [0]);
    });
    assert_eq!(h.committed(), Some(5));
    assert_same_as_replay(&h);
    // In the next write a plain commit is the newer one again.
    assert_eq!(h.commit("", -1, 8), 0);
    assert_eq!(h.committed(), Some(8));
    assert_same_as_replay(&h);
}
