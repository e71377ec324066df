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

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

struct H {
    shard: GroupShard,
    clock: ManualClock,
    /// Every record written so far, in order.
    log: Vec<Record>,
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
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Applies an outcome as the task would with a successful write.
    fn apply(&mut self, out: Outcome) {
        self.log.extend(out.records);
        for r in out.replies {
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
    let mut from_snapshot = GroupShard::new(0, config(0));
    for (k, v) in h.shard.snapshot() {
        from_snapshot.replay(&k, v.as_deref(), h.now());
    }
    assert_eq!(
        from_snapshot.fetch_offsets("g", None),
        h.shard.fetch_offsets("g", None)
    );
    assert_eq!(from_snapshot.group("g").unwrap().generation, 1);
}
