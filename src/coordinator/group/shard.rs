//! One shard of the group coordinator: every group whose id hashes to one
//! `__consumer_offsets` partition. Pure state and logic: each operation takes
//! the time and records what must be written and which replies to send in an
//! [`Outcome`]; the owner task (`task.rs`) writes the records and releases
//! the replies once they are durable. Kafka's classic `GroupCoordinator`
//! semantics; timers are deadlines checked by [`GroupShard::tick`].

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;

use super::classic::{ClassicGroup, Committed, LogPos, Member, PendingOffset};
use super::records::{OffsetValue, RecordKey};
use super::state::GroupState::{self, *};
use super::SyncReply;
use crate::api::{str_bytes as s, Code};
use crate::config::GroupConfig;
use crate::log::control::{Marker, MarkerType};

/// Kafka's fixed timeout for a new member that joined but whose join phase
/// has not completed (`GroupCoordinator.NewMemberJoinTimeoutMs`).
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

pub use crate::coordinator::runtime::{Outcome, Record, Reply, TxnWrite};

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a member without an id first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    pub reply: oneshot::Sender<JoinGroupResponse>,
}

pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
    pub reply: SyncReply,
}

pub struct MemberRef {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// An error the API layer already decided (e.g. unknown topic).
    pub error: i16,
}

/// A TxnOffsetCommit for one group: offsets that become visible when the
/// producer's transaction commits.
pub struct TxnCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// v3+; -1 (and an empty member id) before, or from a producer that does
    /// not use group management.
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub partitions: Vec<CommitPartition>,
}

pub struct CommitRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-v4 retention time; -1 for the broker's default.
    pub retention_ms: i64,
    pub partitions: Vec<CommitPartition>,
    /// The OffsetCommit version (v9 changes an error code).
    pub api_version: i16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// UNSTABLE_OFFSET_COMMIT when stable offsets were asked for and a
    /// transaction holds a pending offset for the partition; 0 otherwise.
    pub error: i16,
}

/// A part of a compacting rewrite, written as one `write_outcome`: its
/// plain records, then its transactional writes.
#[derive(Default)]
pub struct SnapshotChunk {
    pub records: Vec<Record>,
    pub txn_writes: Vec<TxnWrite>,
}

impl SnapshotChunk {
    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len() + txn_len_of(&self.txn_writes)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the shard knows of a producer from the transactional batches and
/// markers in its partition: the same epochs the partition's producer
/// state checks appends against, so a write it would refuse is refused
/// here instead of failing the whole outcome it is part of.
#[derive(Clone, Copy, Debug)]
struct ProducerMark {
    epoch: i16,
    coordinator_epoch: i32,
}

#[derive(Clone, Debug)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<DescribedMember>,
}

#[derive(Clone, Debug)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Clone, Debug)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A JoinGroup answer carrying only an error (generation -1).
pub(crate) fn join_error(code: i16, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = code;
    r.generation_id = -1;
    r.member_id = s(member_id);
    r
}

pub(crate) fn sync_error(code: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = code;
    r
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    RecordKey::Offset {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    }
    .encode()
}

fn group_key(group: &str) -> Vec<u8> {
    RecordKey::Group {
        group: group.to_owned(),
    }
    .encode()
}

fn offset_record(group: &str, topic: &str, partition: i32, c: &OffsetValue) -> Record {
    (offset_key(group, topic, partition), Some(c.encode()))
}

/// How many records the transactional writes of `out` hold so far (a
/// marker is one).
fn txn_len(out: &Outcome) -> usize {
    txn_len_of(&out.txn_writes)
}

fn txn_len_of(writes: &[TxnWrite]) -> usize {
    writes
        .iter()
        .map(|w| match w {
            TxnWrite::Records { records, .. } => records.len(),
            TxnWrite::Marker(_) => 1,
        })
        .sum()
}

pub struct GroupShard {
    pub partition: i32,
    config: GroupConfig,
    groups: HashMap<String, ClassicGroup>,
    /// Producer id → the groups that may hold its pending transactional
    /// offsets (entries may be stale: a group since deleted is skipped).
    txn_groups: HashMap<i64, HashSet<String>>,
    /// Producer id → its epochs, from its transactional writes and markers.
    producers: HashMap<i64, ProducerMark>,
    /// The `seq` of [`LogPos`] for records of the outcome being built: above
    /// every replayed offset, one more for each outcome written.
    next_seq: i64,
}

impl GroupShard {
    pub fn new(partition: i32, config: GroupConfig) -> GroupShard {
        GroupShard {
            partition,
            config,
            groups: HashMap::new(),
            txn_groups: HashMap::new(),
            producers: HashMap::new(),
            next_seq: 0,
        }
    }

    /// The owner task wrote the outcome the operations so far produced:
    /// records of the next outcome stand after them.
    pub fn outcome_written(&mut self) {
        self.next_seq += 1;
    }

    /// Replay is over and the partition ends at `log_end_offset`.
    pub fn loaded(&mut self, log_end_offset: i64) {
        self.next_seq = self.next_seq.max(log_end_offset);
    }

    /// Whether a producer has pending transactional offsets in this shard.
    pub fn has_pending_txn(&self, producer_id: i64) -> bool {
        self.txn_groups.get(&producer_id).is_some_and(|ids| {
            ids.iter().any(|id| {
                self.groups
                    .get(id)
                    .is_some_and(|g| g.pending_txn.contains_key(&producer_id))
            })
        })
    }

    /// A producer's pending offset of `group`'s `topic`-`partition`.
    pub fn pending_txn_offset(
        &self,
        group: &str,
        producer_id: i64,
        topic: &str,
        partition: i32,
    ) -> Option<&PendingOffset> {
        self.groups
            .get(group)?
            .pending_txn
            .get(&producer_id)?
            .get(&(topic.to_owned(), partition))
    }

    pub fn group(&self, id: &str) -> Option<&ClassicGroup> {
        self.groups.get(id)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Records currently live in the shard's state (what a compacted log
    /// would keep).
    pub fn live_records(&self) -> usize {
        self.groups
            .values()
            .map(|g| {
                let pending: usize = g.pending_txn.values().map(|m| m.len()).sum();
                g.offsets.len() + pending + usize::from(g.last_stored.is_some())
            })
            .sum()
    }

    // ---- replay ------------------------------------------------------

    /// Applies one plain record read back from the partition, as the next
    /// record after those replayed so far (tests; the task uses
    /// [`GroupShard::replay_record`] with the record's offset).
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>, now: i64) {
        self.replay_record(self.next_seq, key, value, None, now);
    }

    /// Applies one record read back from the partition at `offset`
    /// (start-up replay); `txn` is the (producer id, epoch) of a
    /// transactional batch: its offsets stay pending until the marker.
    pub fn replay_record(
        &mut self,
        offset: i64,
        key: &[u8],
        value: Option<&[u8]>,
        txn: Option<(i64, i16)>,
        now: i64,
    ) {
        self.next_seq = self.next_seq.max(offset.saturating_add(1));
        if let Some((producer_id, epoch)) = txn {
            self.note_txn_write(producer_id, epoch);
        }
        let pos = LogPos::at_offset(offset);
        let key = match RecordKey::decode(key) {
            Ok(Some(k)) => k,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(
                    partition = self.partition,
                    "skipping unreadable group record key: {e}"
                );
                return;
            }
        };
        match key {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => match value {
                None => {
                    // A tombstone removes the committed offset and every
                    // pending one (Kafka's OffsetMetadataManager.replay).
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.apply_offset_tombstone(&(topic, partition), pos);
                    }
                }
                Some(v) => match OffsetValue::decode(v) {
                    Ok(value) => match txn {
                        None => {
                            self.group_or_new(group, now)
                                .offsets
                                .insert((topic, partition), Committed { value, pos });
                        }
                        Some((producer_id, producer_epoch)) => {
                            let pending = PendingOffset {
                                value,
                                pos,
                                producer_epoch,
                            };
                            self.add_pending(group, producer_id, (topic, partition), pending, now);
                        }
                    },
                    Err(e) => tracing::warn!(%group, "skipping unreadable offset record: {e}"),
                },
            },
            RecordKey::Group { group } => match value {
                None => {
                    self.groups.remove(&group);
                }
                Some(v) => match super::records::GroupValue::decode(v) {
                    Ok(v) => self.group_or_new(group, now).load(v, now),
                    Err(e) => tracing::warn!(%group, "skipping unreadable group record: {e}"),
                },
            },
        }
    }

    /// Applies a COMMIT/ABORT marker read back from the partition at
    /// `offset`: the producer's pending offsets in this shard become
    /// committed or are dropped.
    pub fn replay_marker(&mut self, offset: i64, marker: &Marker) {
        self.next_seq = self.next_seq.max(offset.saturating_add(1));
        self.note_marker(marker);
        self.finish_txn(marker.producer_id, marker.kind == MarkerType::Commit);
    }

    fn group_or_new(&mut self, id: String, now: i64) -> &mut ClassicGroup {
        self.groups
            .entry(id)
            .or_insert_with_key(|id| ClassicGroup::new(id.clone(), now))
    }

    fn add_pending(
        &mut self,
        group: String,
        producer_id: i64,
        key: (String, i32),
        pending: PendingOffset,
        now: i64,
    ) {
        self.txn_groups
            .entry(producer_id)
            .or_default()
            .insert(group.clone());
        self.group_or_new(group, now)
            .pending_txn
            .entry(producer_id)
            .or_default()
            .insert(key, pending);
    }

    fn note_txn_write(&mut self, producer_id: i64, epoch: i16) {
        let mark = self.producers.entry(producer_id).or_insert(ProducerMark {
            epoch,
            coordinator_epoch: -1,
        });
        mark.epoch = mark.epoch.max(epoch);
    }

    fn note_marker(&mut self, marker: &Marker) {
        let mark = self
            .producers
            .entry(marker.producer_id)
            .or_insert(ProducerMark {
                epoch: marker.producer_epoch,
                coordinator_epoch: marker.coordinator_epoch,
            });
        mark.epoch = mark.epoch.max(marker.producer_epoch);
        mark.coordinator_epoch = mark.coordinator_epoch.max(marker.coordinator_epoch);
    }

    /// Ends a producer's transaction in this shard (Kafka's
    /// `replayEndTransactionMarker`): on commit each pending offset replaces
    /// the committed one unless that was written after it (a newer plain
    /// commit wins, by position in the log); on abort they are dropped.
    fn finish_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(ids) = self.txn_groups.remove(&producer_id) else {
            return;
        };
        for id in ids {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            let Some(pending) = g.pending_txn.remove(&producer_id) else {
                continue;
            };
            if !commit {
                continue;
            }
            for (key, p) in pending {
                let newer = g.offsets.get(&key).is_none_or(|c| p.pos > c.pos);
                if newer {
                    g.offsets.insert(
                        key,
                        Committed {
                            value: p.value,
                            pos: p.pos,
                        },
                    );
                } else {
                    tracing::debug!(group = %id, topic = %key.0, partition = key.1, producer_id,
                        "a newer plain commit supersedes the transactional offset");
                }
            }
        }
    }

    /// Every live record, for rewriting the partition compactly, in chunks
    /// to write in order. Pending transactional offsets are written again
    /// as their producer's transactional records, so a later marker still
    /// completes them; where a partition has both a committed and pending
    /// offsets, their records keep their order (which one is newer decides
    /// what a COMMIT marker does).
    pub fn snapshot(&self) -> Vec<SnapshotChunk> {
        enum Item<'a> {
            Plain(Record),
            Txn(i64, &'a PendingOffset, Record),
        }
        let mut first = SnapshotChunk::default();
        let mut ordered: Vec<(LogPos, Item)> = Vec::new();
        let mut ids: Vec<&String> = self.groups.keys().collect();
        ids.sort();
        for id in ids {
            let g = &self.groups[id];
            if let Some(v) = &g.last_stored {
                first.records.push((group_key(id), Some(v.encode())));
            }
            for ((topic, partition), c) in &g.offsets {
                let record = offset_record(id, topic, *partition, &c.value);
                if g.has_pending_txn_offset(&(topic.clone(), *partition)) {
                    ordered.push((c.pos, Item::Plain(record)));
                } else {
                    first.records.push(record);
                }
            }
            for (&producer_id, offsets) in &g.pending_txn {
                for ((topic, partition), p) in offsets {
                    let record = offset_record(id, topic, *partition, &p.value);
                    ordered.push((p.pos, Item::Txn(producer_id, p, record)));
                }
            }
        }
        ordered.sort_by_key(|(pos, _)| *pos);
        let mut chunks = vec![first];
        for (_, item) in ordered {
            let chunk = chunks.last_mut().expect("one chunk at least");
            match item {
                Item::Plain(record) if chunk.txn_writes.is_empty() => chunk.records.push(record),
                Item::Plain(record) => chunks.push(SnapshotChunk {
                    records: vec![record],
                    txn_writes: Vec::new(),
                }),
                Item::Txn(producer_id, p, record) => match chunk.txn_writes.last_mut() {
                    Some(TxnWrite::Records {
                        producer_id: pid,
                        producer_epoch,
                        records,
                    }) if *pid == producer_id && *producer_epoch == p.producer_epoch => {
                        records.push(record)
                    }
                    _ => chunk.txn_writes.push(TxnWrite::Records {
                        producer_id,
                        producer_epoch: p.producer_epoch,
                        records: vec![record],
                    }),
                },
            }
        }
        chunks
    }

    // ---- JoinGroup ---------------------------------------------------

    pub fn join(&mut self, req: JoinRequest, now: i64, out: &mut Outcome) {
        let cfg = &self.config;
        if req.group_id.is_empty() {
            return out.reply(
                req.reply,
                join_error(Code::InvalidGroupId.code(), &req.member_id),
            );
        }
        if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            let code = Code::InvalidSessionTimeout.code();
            return out.reply(req.reply, join_error(code, &req.member_id));
        }
        let unknown = req.member_id.is_empty();
        if !unknown && !self.groups.contains_key(&req.group_id) {
            let code = Code::UnknownMemberId.code();
            return out.reply(req.reply, join_error(code, &req.member_id));
        }
        let max_size = cfg.max_size;
        let initial_delay = cfg.initial_rebalance_delay_ms as i64;
        let group = self.group_or_new(req.group_id.clone(), now);
        if group.is(Dead) {
            let code = Code::CoordinatorNotAvailable.code();
            return out.reply(req.reply, join_error(code, &req.member_id));
        }
        if unknown {
            join_new_member(group, req, max_size, initial_delay, now, out);
        } else {
            join_existing_member(group, req, initial_delay, now, out);
        }
        if group.is(PreparingRebalance)
            && group.initial_delay_remaining.is_none()
            && group.all_members_joined()
        {
            complete_join(group, now, out);
        }
    }

    // ---- SyncGroup ---------------------------------------------------

    pub fn sync(&mut self, req: SyncRequest, now: i64, out: &mut Outcome) {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return out.reply(req.reply, sync_error(Code::UnknownMemberId.code()));
        };
        if group.is(Dead) {
            return out.reply(req.reply, sync_error(Code::CoordinatorNotAvailable.code()));
        }
        if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return out.reply(req.reply, sync_error(Code::FencedInstanceId.code()));
        }
        if !group.members.contains_key(&req.member_id) {
            return out.reply(req.reply, sync_error(Code::UnknownMemberId.code()));
        }
        if req.generation != group.generation {
            return out.reply(req.reply, sync_error(Code::IllegalGeneration.code()));
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_ref() != Some(t));
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| group.protocol_name.as_ref() != Some(n));
        if type_mismatch || name_mismatch {
            return out.reply(
                req.reply,
                sync_error(Code::InconsistentGroupProtocol.code()),
            );
        }
        match group.state {
            Empty | Dead => out.reply(req.reply, sync_error(Code::UnknownMemberId.code())),
            PreparingRebalance => {
                out.reply(req.reply, sync_error(Code::RebalanceInProgress.code()))
            }
            CompletingRebalance => {
                group.pending_sync.remove(&req.member_id);
                let is_leader = group.is_leader(&req.member_id);
                let member = group.members.get_mut(&req.member_id).expect("checked");
                member.heartbeat_deadline = now + member.session_timeout_ms as i64;
                member.awaiting_sync = Some(req.reply);
                if is_leader {
                    let assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in group.members.values_mut() {
                        m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    group.transition(Stable, now);
                    store_group(group, out);
                    let protocol_type = group.protocol_type.clone();
                    let protocol_name = group.protocol_name.clone();
                    for m in group.members.values_mut() {
                        if let Some(tx) = m.awaiting_sync.take() {
                            let mut resp = SyncGroupResponse::default();
                            resp.assignment = m.assignment.clone();
                            resp.protocol_type = protocol_type.as_deref().map(s);
                            resp.protocol_name = protocol_name.as_deref().map(s);
                            out.replies.push(Box::new(move |err| {
                                let _ = tx.send(match err {
                                    None => resp,
                                    Some(code) => sync_error(code),
                                });
                            }));
                        }
                    }
                }
            }
            Stable => {
                group.pending_sync.remove(&req.member_id);
                let member = group.members.get_mut(&req.member_id).expect("checked");
                member.heartbeat_deadline = now + member.session_timeout_ms as i64;
                let mut resp = SyncGroupResponse::default();
                resp.assignment = member.assignment.clone();
                resp.protocol_type = group.protocol_type.as_deref().map(s);
                resp.protocol_name = group.protocol_name.as_deref().map(s);
                out.reply(req.reply, resp);
            }
        }
    }

    // ---- Heartbeat ---------------------------------------------------

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        now: i64,
    ) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Code::UnknownMemberId.code();
        };
        if group.is(Dead) {
            return Code::CoordinatorNotAvailable.code();
        }
        if group.is_fenced(instance, member_id) {
            return Code::FencedInstanceId.code();
        }
        let Some(member) = group.members.get_mut(member_id) else {
            return Code::UnknownMemberId.code();
        };
        if generation != group.generation {
            return Code::IllegalGeneration.code();
        }
        match group.state {
            Empty | Dead => Code::UnknownMemberId.code(),
            CompletingRebalance | Stable => {
                member.heartbeat_deadline = now + member.session_timeout_ms as i64;
                crate::api::NO_ERROR
            }
            PreparingRebalance => {
                member.heartbeat_deadline = now + member.session_timeout_ms as i64;
                Code::RebalanceInProgress.code()
            }
        }
    }

    // ---- LeaveGroup --------------------------------------------------

    /// Top-level error, or one error per member (in request order).
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[MemberRef],
        now: i64,
        out: &mut Outcome,
    ) -> Result<Vec<i16>, i16> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Ok(vec![Code::UnknownMemberId.code(); members.len()]);
        };
        if group.is(Dead) {
            return Err(Code::CoordinatorNotAvailable.code());
        }
        let mut errors = Vec::with_capacity(members.len());
        for m in members {
            let instance = m.group_instance_id.as_deref();
            let code = if !m.member_id.is_empty() && group.is_fenced(instance, &m.member_id) {
                Code::FencedInstanceId.code()
            } else if group.pending_members.remove(&m.member_id).is_some() {
                maybe_complete_join(group, now, out);
                crate::api::NO_ERROR
            } else {
                let target = if group.members.contains_key(&m.member_id) {
                    Some(m.member_id.clone())
                } else {
                    instance.and_then(|i| group.static_members.get(i).cloned())
                };
                match target {
                    Some(id) => {
                        tracing::info!(group = %group.id, member = %id, "member left the group");
                        remove_member_and_update(group, &id, now, out);
                        crate::api::NO_ERROR
                    }
                    None => Code::UnknownMemberId.code(),
                }
            };
            errors.push(code);
        }
        Ok(errors)
    }

    // ---- OffsetCommit ------------------------------------------------

    /// Per-partition error codes (request order), applied now; the caller
    /// answers once `out`'s records are durable.
    pub fn commit(&mut self, req: CommitRequest, now: i64, out: &mut Outcome) -> Vec<i16> {
        let all = |code: i16| vec![code; req.partitions.len()];
        if req.group_id.is_empty() {
            return all(Code::InvalidGroupId.code());
        }
        if req.generation >= 0 && !self.groups.contains_key(&req.group_id) {
            // A generation for a group we do not know; v9 names the real
            // problem.
            return all(if req.api_version >= 9 {
                Code::GroupIdNotFound.code()
            } else {
                Code::IllegalGeneration.code()
            });
        }
        let max_metadata = self.config.offset_metadata_max_bytes as usize;
        let seq = self.next_seq;
        // Absent only for a group that uses Kafka just to store offsets
        // (assign()): it is created empty.
        let group = self.group_or_new(req.group_id.clone(), now);
        let instance = req.group_instance_id.as_deref();
        let check = if group.is(Dead) {
            Err(Code::CoordinatorNotAvailable.code())
        } else if group.is_fenced(instance, &req.member_id) {
            Err(Code::FencedInstanceId.code())
        } else if req.generation < 0 && group.is(Empty) {
            Ok(())
        } else if group.is(CompletingRebalance) {
            Err(Code::RebalanceInProgress.code())
        } else if !group.members.contains_key(&req.member_id) {
            Err(Code::UnknownMemberId.code())
        } else if req.generation != group.generation {
            Err(Code::IllegalGeneration.code())
        } else {
            let member = group.members.get_mut(&req.member_id).expect("checked");
            member.heartbeat_deadline = now + member.session_timeout_ms as i64;
            Ok(())
        };
        if let Err(code) = check {
            return all(code);
        }
        let expire = (req.retention_ms >= 0).then(|| now.saturating_add(req.retention_ms));
        let mut errors = Vec::with_capacity(req.partitions.len());
        for p in req.partitions {
            if p.error != crate::api::NO_ERROR {
                errors.push(p.error);
                continue;
            }
            let metadata = p.metadata.unwrap_or_default();
            if metadata.encode_utf16().count() > max_metadata {
                errors.push(Code::OffsetMetadataTooLarge.code());
                continue;
            }
            let c = OffsetValue {
                offset: p.offset,
                leader_epoch: p.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: expire,
            };
            let pos = LogPos {
                seq,
                class: 0,
                index: out.records.len() as u32,
            };
            out.records
                .push(offset_record(&group.id, &p.topic, p.partition, &c));
            // Only a transaction completed earlier in this same outcome can
            // stand later in the log (its records follow the plain ones);
            // then it stays the committed offset, as a replay will have it.
            let key = (p.topic, p.partition);
            if group.offsets.get(&key).is_none_or(|old| old.pos < pos) {
                group.offsets.insert(key, Committed { value: c, pos });
            }
            errors.push(crate::api::NO_ERROR);
        }
        errors
    }

    // ---- TxnOffsetCommit ---------------------------------------------

    /// Per-partition error codes (request order). The offsets are written as
    /// the producer's transactional records and stay pending (invisible to
    /// OffsetFetch) until its transaction's marker; Kafka's
    /// `commitTransactionalOffset`. The transaction itself was verified by
    /// the caller.
    pub fn txn_commit(&mut self, req: TxnCommitRequest, now: i64, out: &mut Outcome) -> Vec<i16> {
        let all = |code: i16| vec![code; req.partitions.len()];
        if req.group_id.is_empty() {
            return all(Code::InvalidGroupId.code());
        }
        if let Some(code) = self.check_txn_write(req.producer_id, req.producer_epoch) {
            return all(code);
        }
        if req.generation >= 0 && !self.groups.contains_key(&req.group_id) {
            return all(Code::IllegalGeneration.code());
        }
        let max_metadata = self.config.offset_metadata_max_bytes as usize;
        let seq = self.next_seq;
        let first_index = txn_len(out);
        // A producer that does not use group management (generation -1)
        // commits to a group created empty, as OffsetCommit does.
        let group = self.group_or_new(req.group_id.clone(), now);
        let instance = req.group_instance_id.as_deref();
        // Kafka's ClassicGroup.validateOffsetCommit with isTransactional:
        // no member check without ids, and no REBALANCE_IN_PROGRESS.
        let check = if group.is(Dead) {
            Err(Code::CoordinatorNotAvailable.code())
        } else if req.generation < 0 && group.is(Empty) {
            Ok(())
        } else if req.generation >= 0 || !req.member_id.is_empty() || instance.is_some() {
            if group.is_fenced(instance, &req.member_id) {
                Err(Code::FencedInstanceId.code())
            } else if !group.members.contains_key(&req.member_id) {
                Err(Code::UnknownMemberId.code())
            } else if req.generation != group.generation {
                Err(Code::IllegalGeneration.code())
            } else {
                Ok(())
            }
        } else {
            Ok(())
        };
        if let Err(code) = check {
            return all(code);
        }
        let mut errors = Vec::with_capacity(req.partitions.len());
        let mut records = Vec::new();
        let mut pending = Vec::new();
        for p in req.partitions {
            if p.error != crate::api::NO_ERROR {
                errors.push(p.error);
                continue;
            }
            let metadata = p.metadata.unwrap_or_default();
            if metadata.encode_utf16().count() > max_metadata {
                errors.push(Code::OffsetMetadataTooLarge.code());
                continue;
            }
            let value = OffsetValue {
                offset: p.offset,
                leader_epoch: p.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: None,
            };
            let pos = LogPos {
                seq,
                class: 1,
                index: (first_index + records.len()) as u32,
            };
            records.push(offset_record(&group.id, &p.topic, p.partition, &value));
            pending.push((
                (p.topic, p.partition),
                PendingOffset {
                    value,
                    pos,
                    producer_epoch: req.producer_epoch,
                },
            ));
            errors.push(crate::api::NO_ERROR);
        }
        if records.is_empty() {
            return errors;
        }
        out.txn_writes.push(TxnWrite::Records {
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch,
            records,
        });
        self.note_txn_write(req.producer_id, req.producer_epoch);
        for (key, p) in pending {
            self.add_pending(req.group_id.clone(), req.producer_id, key, p, now);
        }
        errors
    }

    /// INVALID_PRODUCER_EPOCH when the partition already has a newer epoch
    /// of the producer (its producer state would refuse the batch).
    fn check_txn_write(&self, producer_id: i64, epoch: i16) -> Option<i16> {
        self.producers
            .get(&producer_id)
            .filter(|m| epoch < m.epoch)
            .map(|_| Code::InvalidProducerEpoch.code())
    }

    /// Completes a producer's transaction in this shard: writes the marker
    /// and makes its pending offsets committed (COMMIT) or drops them
    /// (ABORT). Without pending offsets the marker is still written, so a
    /// retried completion succeeds. A marker the partition would refuse (an
    /// older producer or coordinator epoch) is refused with its error code.
    pub fn complete_txn(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        out: &mut Outcome,
    ) -> Result<(), i16> {
        if let Some(m) = self.producers.get(&producer_id) {
            if producer_epoch < m.epoch {
                return Err(Code::InvalidProducerEpoch.code());
            }
            if coordinator_epoch < m.coordinator_epoch {
                return Err(Code::TransactionCoordinatorFenced.code());
            }
        }
        let marker = Marker {
            kind: if commit {
                MarkerType::Commit
            } else {
                MarkerType::Abort
            },
            producer_id,
            producer_epoch,
            coordinator_epoch,
        };
        self.note_marker(&marker);
        out.txn_writes.push(TxnWrite::Marker(marker));
        self.finish_txn(producer_id, commit);
        Ok(())
    }

    // ---- OffsetFetch -------------------------------------------------

    /// Committed offsets of `topics` (every committed one when `None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, Vec<FetchedOffset>)> {
        self.fetch_offsets_with(group_id, topics, false)
    }

    /// [`GroupShard::fetch_offsets`]; with `require_stable` (OffsetFetch
    /// v7+) a partition with a pending transactional offset answers
    /// UNSTABLE_OFFSET_COMMIT (offset -1) instead, as Kafka does.
    pub fn fetch_offsets_with(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
        require_stable: bool,
    ) -> Vec<(String, Vec<FetchedOffset>)> {
        let group = self.groups.get(group_id).filter(|g| !g.is(Dead));
        let missing = |partition, error| FetchedOffset {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error,
        };
        let found = |key: &(String, i32), c: Option<&Committed>| {
            let unstable = require_stable && group.is_some_and(|g| g.has_pending_txn_offset(key));
            match c {
                _ if unstable => missing(key.1, Code::UnstableOffsetCommit.code()),
                None => missing(key.1, crate::api::NO_ERROR),
                Some(c) => FetchedOffset {
                    partition: key.1,
                    offset: c.value.offset,
                    leader_epoch: c.value.leader_epoch,
                    metadata: c.value.metadata.clone(),
                    error: crate::api::NO_ERROR,
                },
            }
        };
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let offsets = partitions
                        .iter()
                        .map(|&p| {
                            let key = (topic.clone(), p);
                            found(&key, group.and_then(|g| g.offsets.get(&key)))
                        })
                        .collect();
                    (topic.clone(), offsets)
                })
                .collect(),
            None => {
                let mut out: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
                for (key, c) in group.iter().flat_map(|g| g.offsets.iter()) {
                    let o = found(key, Some(c));
                    match out.last_mut() {
                        Some((t, v)) if *t == key.0 => v.push(o),
                        _ => out.push((key.0.clone(), vec![o])),
                    }
                }
                out
            }
        }
    }

    // ---- DescribeGroups / ListGroups ---------------------------------

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group_id).filter(|g| !g.is(Dead))?;
        let stable = g.is(Stable);
        let protocol = if stable {
            g.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let members = g
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        })
    }

    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .values()
            .filter(|g| !g.is(Dead))
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    // ---- DeleteGroups / OffsetDelete ---------------------------------

    pub fn delete_group(&mut self, group_id: &str, now: i64, out: &mut Outcome) -> i16 {
        if group_id.is_empty() {
            return Code::InvalidGroupId.code();
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return Code::GroupIdNotFound.code();
        };
        match group.state {
            Dead => Code::GroupIdNotFound.code(),
            Empty => {
                // Pending transactional offsets go too: a tombstone for
                // each partition that has one (Kafka's deleteAllOffsets).
                let mut keys: std::collections::BTreeSet<&(String, i32)> =
                    group.offsets.keys().collect();
                keys.extend(group.pending_txn.values().flat_map(|m| m.keys()));
                for (topic, partition) in keys {
                    out.records
                        .push((offset_key(group_id, topic, *partition), None));
                }
                out.records.push((group_key(group_id), None));
                group.transition(Dead, now);
                let mut gone = self.groups.remove(group_id).expect("found above");
                tracing::info!(group = group_id, "deleted group");
                // Transactional writes earlier in this same outcome land
                // after these tombstones in the log: a replay puts them in a
                // group created anew, and so does this.
                let after = LogPos {
                    seq: self.next_seq,
                    class: 1,
                    index: 0,
                };
                gone.offsets.retain(|_, c| c.pos >= after);
                gone.pending_txn.retain(|_, m| {
                    m.retain(|_, p| p.pos >= after);
                    !m.is_empty()
                });
                if !gone.offsets.is_empty() || !gone.pending_txn.is_empty() {
                    let g = self.group_or_new(group_id.to_owned(), now);
                    g.offsets = gone.offsets;
                    g.pending_txn = gone.pending_txn;
                }
                crate::api::NO_ERROR
            }
            _ => Code::NonEmptyGroup.code(),
        }
    }

    /// Top-level error, or per (topic, partition) errors in request order.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        out: &mut Outcome,
    ) -> Result<Vec<i16>, i16> {
        let seq = self.next_seq;
        let Some(group) = self.groups.get_mut(group_id).filter(|g| !g.is(Dead)) else {
            return Err(Code::GroupIdNotFound.code());
        };
        let consumer = group.protocol_type.as_deref() == Some("consumer");
        if !consumer && !group.is(Empty) {
            return Err(Code::NonEmptyGroup.code());
        }
        let subscribed = if group.is(Empty) {
            Default::default()
        } else {
            group.subscribed_topics().unwrap_or_default()
        };
        let mut errors = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                errors.push(Code::GroupSubscribedToTopic.code());
                continue;
            }
            let key = (topic.clone(), *partition);
            // A tombstone drops pending transactional offsets as well.
            if group.offsets.contains_key(&key) || group.has_pending_txn_offset(&key) {
                let at = LogPos {
                    seq,
                    class: 0,
                    index: out.records.len() as u32,
                };
                group.apply_offset_tombstone(&key, at);
                out.records
                    .push((offset_key(group_id, topic, *partition), None));
            }
            errors.push(crate::api::NO_ERROR);
        }
        Ok(errors)
    }

    // ---- timers ------------------------------------------------------

    /// The earliest deadline of any timer, if one is set.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut consider = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        for g in self.groups.values() {
            for m in g.members.values() {
                consider(m.heartbeat_deadline);
            }
            for &t in g.pending_members.values() {
                consider(t);
            }
            if let Some(t) = g.join_deadline {
                consider(t);
            }
            if let (Some(t), false) = (g.sync_deadline, g.pending_sync.is_empty()) {
                consider(t);
            }
        }
        next
    }

    /// Fires every timer due at `now`: session expiry, pending-member
    /// expiry, the end of a join phase, the end of a sync phase.
    pub fn tick(&mut self, now: i64, out: &mut Outcome) {
        for group in self.groups.values_mut() {
            // Pending (MEMBER_ID_REQUIRED) ids that never came back.
            let before = group.pending_members.len();
            group.pending_members.retain(|_, deadline| *deadline > now);
            if group.pending_members.len() != before {
                maybe_complete_join(group, now, out);
            }
            // Session timeouts.
            let expired: Vec<String> = group
                .members
                .values_mut()
                .filter(|m| m.heartbeat_deadline <= now)
                .filter_map(|m| {
                    if !m.is_new && (m.awaiting_join.is_some() || m.awaiting_sync.is_some()) {
                        // Waiting in a rebalance counts as alive.
                        m.heartbeat_deadline = now + m.session_timeout_ms as i64;
                        None
                    } else {
                        Some(m.member_id.clone())
                    }
                })
                .collect();
            for id in expired {
                tracing::info!(group = %group.id, member = %id, "member session expired");
                remove_member_and_update(group, &id, now, out);
            }
            // The end of a join phase.
            if group.is(PreparingRebalance) && group.join_deadline.is_some_and(|t| t <= now) {
                let initial = group.initial_delay_remaining.take();
                let delay = self.config.initial_rebalance_delay_ms as i64;
                match initial {
                    Some(remaining) if group.new_member_added && remaining > 0 && delay > 0 => {
                        // Kafka's InitialDelayedJoin: another member came; wait
                        // once more, within the rebalance timeout.
                        group.new_member_added = false;
                        let delay = delay.min(remaining);
                        group.join_deadline = Some(now + delay);
                        group.initial_delay_remaining = Some((remaining - delay).max(0));
                    }
                    _ => complete_join(group, now, out),
                }
            }
            // The end of a sync phase: members that never synced are removed.
            if matches!(group.state, CompletingRebalance | Stable)
                && !group.pending_sync.is_empty()
                && group.sync_deadline.is_some_and(|t| t <= now)
            {
                let laggards: Vec<String> = group.pending_sync.drain().collect();
                for id in laggards {
                    tracing::info!(group = %group.id, member = %id, "member did not sync in time");
                    remove_member_and_update(group, &id, now, out);
                }
            }
        }
    }

    /// Offsets retention (`offsets.retention.minutes`) and removal of empty
    /// groups with no offsets left. Returns how many offsets expired.
    pub fn expire_offsets(&mut self, now: i64, out: &mut Outcome) -> usize {
        let retention = self.config.offsets_retention_ms;
        let mut expired_total = 0;
        let mut dead = Vec::new();
        for group in self.groups.values_mut() {
            let subscribed = if group.is(Empty) {
                None
            } else {
                group.subscribed_topics()
            };
            // Without the consumer protocol and members, the base is the
            // commit time; an empty consumer group counts from when it
            // became empty (KIP-211).
            let empty_since = if group.is(Empty) && group.protocol_type.is_some() {
                group.state_timestamp
            } else {
                None
            };
            let has_members = !group.members.is_empty();
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(key, _)| !group.has_pending_txn_offset(key))
                .filter(|((topic, _), c)| {
                    let c = &c.value;
                    if let Some(expire) = c.expire_timestamp {
                        return now >= expire;
                    }
                    if has_members {
                        // Only topics the group no longer consumes expire.
                        match &subscribed {
                            Some(topics) if !topics.contains(topic) => {}
                            _ => return false,
                        }
                    }
                    let base = empty_since.unwrap_or(c.commit_timestamp);
                    now - base >= retention
                })
                .map(|(k, _)| k.clone())
                .collect();
            for (topic, partition) in expired {
                group.offsets.remove(&(topic.clone(), partition));
                out.records
                    .push((offset_key(&group.id, &topic, partition), None));
                expired_total += 1;
            }
            // Not while a transaction holds pending offsets of the group.
            if group.is(Empty)
                && group.offsets.is_empty()
                && group.pending_txn.is_empty()
                && group.pending_members.is_empty()
            {
                group.transition(Dead, now);
                dead.push(group.id.clone());
                if group.last_stored.is_some() {
                    out.records.push((group_key(&group.id), None));
                }
            }
        }
        for id in dead {
            self.groups.remove(&id);
        }
        expired_total
    }
}

// ---- the rebalance protocol, on one group ----------------------------

fn current_join_response(group: &ClassicGroup, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.generation_id = group.generation;
    r.protocol_type = group.protocol_type.as_deref().map(s);
    r.protocol_name = group.protocol_name.as_deref().map(s);
    r.leader = s(group.leader.as_deref().unwrap_or(""));
    r.member_id = s(member_id);
    if group.is_leader(member_id) {
        let protocol = group.protocol_name.as_deref().unwrap_or("");
        r.members = group
            .members
            .values()
            .map(|m| {
                let mut jm = JoinGroupResponseMember::default();
                jm.member_id = s(&m.member_id);
                jm.group_instance_id = m.group_instance_id.as_deref().map(s);
                jm.metadata = m.metadata_for(protocol);
                jm
            })
            .collect();
    }
    r
}

fn join_new_member(
    group: &mut ClassicGroup,
    req: JoinRequest,
    max_size: i32,
    initial_delay: i64,
    now: i64,
    out: &mut Outcome,
) {
    if !group.supports_protocols(&req.protocol_type, &req.protocols) {
        let code = Code::InconsistentGroupProtocol.code();
        return out.reply(req.reply, join_error(code, &req.member_id));
    }
    let size = group.members.len() + group.pending_members.len();
    let replacing = req
        .group_instance_id
        .as_ref()
        .is_some_and(|i| group.static_members.contains_key(i));
    if !replacing && size >= max_size.max(0) as usize {
        let code = Code::GroupMaxSizeReached.code();
        return out.reply(req.reply, join_error(code, &req.member_id));
    }
    let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
    let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
    if let Some(instance) = req.group_instance_id.clone() {
        match group.static_members.get(&instance).cloned() {
            Some(old_id) => {
                replace_static_member(group, req, &old_id, new_id, now, initial_delay, out)
            }
            None => add_member_and_rebalance(group, req, new_id, now, initial_delay, out),
        }
    } else if req.require_known_member_id {
        // KIP-394: the member must come back with this id, so a client that
        // times out mid-join does not leave a ghost member behind.
        group
            .pending_members
            .insert(new_id.clone(), now + req.session_timeout_ms as i64);
        out.reply(
            req.reply,
            join_error(Code::MemberIdRequired.code(), &new_id),
        );
    } else {
        add_member_and_rebalance(group, req, new_id, now, initial_delay, out);
    }
}

fn join_existing_member(
    group: &mut ClassicGroup,
    req: JoinRequest,
    initial_delay: i64,
    now: i64,
    out: &mut Outcome,
) {
    let member_id = req.member_id.clone();
    if group.pending_members.contains_key(&member_id) {
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            let code = Code::InconsistentGroupProtocol.code();
            return out.reply(req.reply, join_error(code, &member_id));
        }
        group.pending_members.remove(&member_id);
        return add_member_and_rebalance(group, req, member_id, now, initial_delay, out);
    }
    if group.is_fenced(req.group_instance_id.as_deref(), &member_id) {
        return out.reply(
            req.reply,
            join_error(Code::FencedInstanceId.code(), &member_id),
        );
    }
    if !group.members.contains_key(&member_id) {
        return out.reply(
            req.reply,
            join_error(Code::UnknownMemberId.code(), &member_id),
        );
    }
    if !group.supports_protocols(&req.protocol_type, &req.protocols) {
        let code = Code::InconsistentGroupProtocol.code();
        return out.reply(req.reply, join_error(code, &member_id));
    }
    let same = group.members[&member_id].protocols_match(&req.protocols);
    match group.state {
        PreparingRebalance => update_member_and_rebalance(group, req, now, initial_delay, out),
        CompletingRebalance if same => {
            let resp = current_join_response(group, &member_id);
            out.reply(req.reply, resp);
        }
        CompletingRebalance => update_member_and_rebalance(group, req, now, initial_delay, out),
        Stable if same && !group.is_leader(&member_id) => {
            let member = group.members.get_mut(&member_id).expect("checked");
            member.heartbeat_deadline = now + member.session_timeout_ms as i64;
            let mut resp = current_join_response(group, &member_id);
            resp.members.clear();
            out.reply(req.reply, resp);
        }
        Stable => update_member_and_rebalance(group, req, now, initial_delay, out),
        Empty | Dead => out.reply(
            req.reply,
            join_error(Code::UnknownMemberId.code(), &member_id),
        ),
    }
}

fn add_member_and_rebalance(
    group: &mut ClassicGroup,
    req: JoinRequest,
    member_id: String,
    now: i64,
    initial_delay: i64,
    out: &mut Outcome,
) {
    let member = Member {
        member_id,
        group_instance_id: req.group_instance_id,
        client_id: req.client_id,
        client_host: req.client_host,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        session_timeout_ms: req.session_timeout_ms,
        protocols: req.protocols,
        assignment: Bytes::new(),
        awaiting_join: Some(req.reply),
        awaiting_sync: None,
        is_new: true,
        heartbeat_deadline: now + NEW_MEMBER_JOIN_TIMEOUT_MS,
    };
    if group.is(PreparingRebalance) && group.generation == 0 {
        group.new_member_added = true;
    }
    group.add_member(member, &req.protocol_type);
    maybe_prepare_rebalance(group, now, initial_delay, out);
}

fn update_member_and_rebalance(
    group: &mut ClassicGroup,
    req: JoinRequest,
    now: i64,
    initial_delay: i64,
    out: &mut Outcome,
) {
    let member = group
        .members
        .get_mut(&req.member_id)
        .expect("checked by caller");
    member.protocols = req.protocols;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.session_timeout_ms = req.session_timeout_ms;
    member.heartbeat_deadline = now + req.session_timeout_ms as i64;
    if let Some(old) = member.awaiting_join.replace(req.reply) {
        // A second join while the first still waits: the first is superseded.
        let _ = old.send(join_error(Code::RebalanceInProgress.code(), &req.member_id));
    }
    maybe_prepare_rebalance(group, now, initial_delay, out);
}

/// A static member rejoined with a new member id: the old id is fenced.
fn replace_static_member(
    group: &mut ClassicGroup,
    req: JoinRequest,
    old_id: &str,
    new_id: String,
    now: i64,
    initial_delay: i64,
    out: &mut Outcome,
) {
    let current_leader = group.leader.clone();
    let Some(mut member) = group.members.shift_remove(old_id) else {
        return add_member_and_rebalance(group, req, new_id, now, initial_delay, out);
    };
    if let Some(tx) = member.awaiting_join.take() {
        let _ = tx.send(join_error(Code::FencedInstanceId.code(), old_id));
    }
    if let Some(tx) = member.awaiting_sync.take() {
        let _ = tx.send(sync_error(Code::FencedInstanceId.code()));
    }
    let was_pending_sync = group.pending_sync.remove(old_id);
    member.member_id = new_id.clone();
    member.protocols = req.protocols;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.session_timeout_ms = req.session_timeout_ms;
    member.client_id = req.client_id;
    member.client_host = req.client_host;
    member.heartbeat_deadline = now + req.session_timeout_ms as i64;
    if group.leader.as_deref() == Some(old_id) {
        group.leader = Some(new_id.clone());
    }
    if was_pending_sync {
        group.pending_sync.insert(new_id.clone());
    }
    if let Some(instance) = &member.group_instance_id {
        group
            .static_members
            .insert(instance.clone(), new_id.clone());
    }
    group.members.insert(new_id.clone(), member);
    tracing::info!(group = %group.id, old = old_id, new = %new_id, "static member replaced");
    match group.state {
        Stable if group.select_protocol() == group.protocol_name => {
            // Nothing the assignment depends on changed: persist the new id
            // and hand back the current generation without a rebalance. The
            // old leader id is returned so the member does not assign.
            store_group(group, out);
            let mut resp = current_join_response(group, &new_id);
            resp.members.clear();
            resp.leader = s(current_leader.as_deref().unwrap_or(""));
            let tx = req.reply;
            out.replies.push(Box::new(move |err| {
                let _ = tx.send(match err {
                    None => resp,
                    Some(code) => join_error(code, &new_id),
                });
            }));
        }
        PreparingRebalance => {
            let m = group.members.get_mut(&new_id).expect("inserted");
            m.awaiting_join = Some(req.reply);
        }
        _ => {
            let m = group.members.get_mut(&new_id).expect("inserted");
            m.awaiting_join = Some(req.reply);
            maybe_prepare_rebalance(group, now, initial_delay, out);
        }
    }
}

fn maybe_prepare_rebalance(
    group: &mut ClassicGroup,
    now: i64,
    initial_delay: i64,
    out: &mut Outcome,
) {
    if matches!(group.state, Stable | CompletingRebalance | Empty) {
        prepare_rebalance(group, now, initial_delay, out);
    }
}

fn prepare_rebalance(group: &mut ClassicGroup, now: i64, initial_delay: i64, out: &mut Outcome) {
    if group.is(CompletingRebalance) {
        // The assignment being synced is void: tell those waiting.
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(tx) = m.awaiting_sync.take() {
                out.reply(tx, sync_error(Code::RebalanceInProgress.code()));
            }
        }
    }
    group.pending_sync.clear();
    group.sync_deadline = None;
    let timeout = group.rebalance_timeout_ms();
    if group.is(Empty) {
        group.join_deadline = Some(now + initial_delay);
        group.initial_delay_remaining = Some((timeout - initial_delay).max(0));
        group.new_member_added = false;
    } else {
        group.join_deadline = Some(now + timeout);
        group.initial_delay_remaining = None;
    }
    tracing::debug!(group = %group.id, generation = group.generation, "preparing rebalance");
    group.transition(PreparingRebalance, now);
    // Kafka completes a (non-initial) join phase right away when nobody is
    // missing, e.g. when the last member just left.
    maybe_complete_join(group, now, out);
}

fn maybe_complete_join(group: &mut ClassicGroup, now: i64, out: &mut Outcome) {
    if group.is(PreparingRebalance)
        && group.initial_delay_remaining.is_none()
        && group.all_members_joined()
    {
        complete_join(group, now, out);
    }
}

fn complete_join(group: &mut ClassicGroup, now: i64, out: &mut Outcome) {
    // Dynamic members that did not rejoin in time are out; static members
    // keep their place (and their assignment) until their session expires.
    let gone: Vec<String> = group
        .members
        .values()
        .filter(|m| !m.is_awaiting_join() && m.group_instance_id.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for id in gone {
        tracing::info!(group = %group.id, member = %id, "member did not rejoin in time");
        group.remove_member(&id);
    }
    if !group.members.is_empty() {
        let leader_joined = group
            .leader
            .as_ref()
            .and_then(|l| group.members.get(l))
            .is_some_and(Member::is_awaiting_join);
        if !leader_joined {
            match group.members.values().find(|m| m.is_awaiting_join()) {
                Some(m) => group.leader = Some(m.member_id.clone()),
                None => {
                    // Nobody rejoined (only static members left): wait another
                    // round for their sessions to expire.
                    // (At least a second apart, so a zero rebalance timeout
                    // cannot make the shard spin.)
                    group.join_deadline = Some(now + group.rebalance_timeout_ms().max(1_000));
                    return;
                }
            }
        }
    }
    group.join_deadline = None;
    group.initial_delay_remaining = None;
    group.generation += 1;
    group.pending_sync.clear();
    if group.members.is_empty() {
        group.protocol_name = None;
        group.leader = None;
        group.transition(Empty, now);
        tracing::info!(group = %group.id, generation = group.generation, "group is empty");
        store_group(group, out);
        return;
    }
    group.protocol_name = group.select_protocol();
    group.transition(CompletingRebalance, now);
    tracing::info!(group = %group.id, generation = group.generation, members = group.members.len(),
        protocol = group.protocol_name.as_deref().unwrap_or(""), "rebalance: join complete");
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let resp = current_join_response(group, &id);
        let m = group.members.get_mut(&id).expect("listed");
        m.heartbeat_deadline = now + m.session_timeout_ms as i64;
        m.is_new = false;
        if let Some(tx) = m.awaiting_join.take() {
            out.reply(tx, resp);
        }
        group.pending_sync.insert(id);
    }
    group.sync_deadline = Some(now + group.rebalance_timeout_ms());
}

fn remove_member_and_update(
    group: &mut ClassicGroup,
    member_id: &str,
    now: i64,
    out: &mut Outcome,
) {
    let Some(mut member) = group.remove_member(member_id) else {
        return;
    };
    if let Some(tx) = member.awaiting_join.take() {
        out.reply(tx, join_error(Code::UnknownMemberId.code(), member_id));
    }
    if let Some(tx) = member.awaiting_sync.take() {
        out.reply(tx, sync_error(Code::UnknownMemberId.code()));
    }
    match group.state {
        Dead | Empty => {}
        Stable | CompletingRebalance => maybe_prepare_rebalance(group, now, 0, out),
        PreparingRebalance => maybe_complete_join(group, now, out),
    }
}

fn store_group(group: &mut ClassicGroup, out: &mut Outcome) {
    let value = group.to_record();
    out.records
        .push((group_key(&group.id), Some(value.encode())));
    group.last_stored = Some(value);
}
