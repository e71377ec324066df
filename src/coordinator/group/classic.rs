//! A classic-protocol group and its members: the data the shard's
//! operations change. Kafka's `ClassicGroup` / `ClassicGroupMember`.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::messages::JoinGroupResponse;
use tokio::sync::oneshot;

use super::records::{GroupValue, MemberValue, OffsetValue};
use super::state::GroupState;
use crate::coordinator::group::SyncReply;

pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<oneshot::Sender<JoinGroupResponse>>,
    pub awaiting_sync: Option<SyncReply>,
    /// Joined but not yet through a completed join phase; such members
    /// expire after the new-member timeout even while waiting.
    pub is_new: bool,
    /// When the member is considered dead without a heartbeat.
    pub heartbeat_deadline: i64,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Same protocols with the same metadata, in the same order.
    pub fn protocols_match(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }
}

/// Where a record stands in the `__consumer_offsets` partition, to tell
/// which of a plain and a transactional commit of one partition is newer
/// (Kafka compares their record offsets). Replayed records stand at their
/// log offset; records written since are ordered as `write_outcome` writes
/// them: by outcome (a number above every replayed offset), then the plain
/// records before the transactional writes, each in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPos {
    pub seq: i64,
    /// 0: a plain record, 1: a transactional write.
    pub class: u8,
    pub index: u32,
}

impl LogPos {
    /// A record read back at log offset `offset`.
    pub fn at_offset(offset: i64) -> LogPos {
        LogPos {
            seq: offset,
            class: 0,
            index: 0,
        }
    }
}

/// A committed offset and where its record stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub value: OffsetValue,
    pub pos: LogPos,
}

/// A transactional offset commit waiting for its transaction's marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOffset {
    pub value: OffsetValue,
    pub pos: LogPos,
    /// The producer epoch it was written with (a compacting rewrite writes
    /// it again with this epoch).
    pub producer_epoch: i16,
}

pub struct ClassicGroup {
    pub id: String,
    pub state: GroupState,
    /// When the state last changed (ms); offsets of an empty group expire
    /// relative to it.
    pub state_timestamp: Option<i64>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// By member id, in join order.
    pub members: indexmap::IndexMap<String, Member>,
    /// Static members: instance id → member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, waiting for the
    /// member's second join; value = expiry deadline.
    pub pending_members: HashMap<String, i64>,
    /// Members that must still SyncGroup in this generation.
    pub pending_sync: HashSet<String>,
    /// The end of the current join phase (PreparingRebalance).
    pub join_deadline: Option<i64>,
    /// Initial-delay bookkeeping: how much of the rebalance timeout is left to
    /// extend the first join phase by.
    pub initial_delay_remaining: Option<i64>,
    /// A member joined during the initial delay (which then extends).
    pub new_member_added: bool,
    /// The end of the sync phase: members still in `pending_sync` then are
    /// removed.
    pub sync_deadline: Option<i64>,
    /// Committed offsets, exactly as stored (OffsetCommitValue), with where
    /// their record stands in the partition.
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// Transactional offset commits not yet completed by a marker, by
    /// producer id (Kafka's `pendingTransactionalOffsetCommits`): invisible
    /// to OffsetFetch until a COMMIT marker makes them committed.
    pub pending_txn: HashMap<i64, BTreeMap<(String, i32), PendingOffset>>,
    /// The group metadata as last written: what a log snapshot must carry
    /// (and, when set, what a removal must tombstone).
    pub last_stored: Option<GroupValue>,
}

impl ClassicGroup {
    pub fn new(id: String, now: i64) -> ClassicGroup {
        ClassicGroup {
            id,
            state: GroupState::Empty,
            state_timestamp: Some(now),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: indexmap::IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            join_deadline: None,
            initial_delay_remaining: None,
            new_member_added: false,
            sync_deadline: None,
            offsets: BTreeMap::new(),
            pending_txn: HashMap::new(),
            last_stored: None,
        }
    }

    /// Moves to `next`; an illegal transition is a coordinator bug, logged
    /// and refused so state never goes somewhere Kafka's cannot.
    pub fn transition(&mut self, next: GroupState, now: i64) {
        if !self.state.can_transition_to(next) {
            tracing::error!(group = %self.id, from = %self.state, to = %next, "illegal group state transition");
            debug_assert!(false, "illegal transition {} -> {}", self.state, next);
            return;
        }
        self.state = next;
        self.state_timestamp = Some(now);
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    /// Whether any producer has a pending transactional offset for
    /// `topic`-`partition` (Kafka's `hasPendingOffsetCommitsForTopicPartition`).
    pub fn has_pending_txn_offset(&self, key: &(String, i32)) -> bool {
        self.pending_txn.values().any(|m| m.contains_key(key))
    }

    /// A plain tombstone of `key` standing at `at` in the log: it removes
    /// the committed offset and every producer's pending one written before
    /// it (Kafka's OffsetMetadataManager.replay). Transactional writes of
    /// the same outcome stand after it in the log (plain records are
    /// written first), so they outlive it, as they will on a replay.
    pub fn apply_offset_tombstone(&mut self, key: &(String, i32), at: LogPos) {
        if self.offsets.get(key).is_some_and(|c| c.pos < at) {
            self.offsets.remove(key);
        }
        self.pending_txn.retain(|_, m| {
            if m.get(key).is_some_and(|p| p.pos < at) {
                m.remove(key);
            }
            !m.is_empty()
        });
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// The largest rebalance timeout of the members (Kafka's group rebalance
    /// timeout).
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    /// Every member has rejoined and nobody holds a MEMBER_ID_REQUIRED id.
    pub fn all_members_joined(&self) -> bool {
        self.members.values().all(Member::is_awaiting_join) && self.pending_members.is_empty()
    }

    /// Protocols every member supports (all of them when the group is empty).
    pub fn candidate_protocols(&self) -> Option<HashSet<&str>> {
        let mut iter = self.members.values();
        let first = iter.next()?;
        let mut set: HashSet<&str> = first.protocols.iter().map(|(n, _)| n.as_str()).collect();
        for m in iter {
            let theirs: HashSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            set.retain(|p| theirs.contains(p));
        }
        Some(set)
    }

    /// A joining member is compatible when the protocol type matches and it
    /// shares at least one protocol with every current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols().unwrap_or_default();
        protocols
            .iter()
            .any(|(n, _)| candidates.contains(n.as_str()))
    }

    /// Kafka's selectProtocol: among protocols all members support, each
    /// member votes for its most preferred one; most votes wins (ties go to
    /// the earliest-joined member's preference).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols()?;
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(n.as_str()))
            {
                match votes.iter_mut().find(|(n, _)| n == name) {
                    Some(v) => v.1 += 1,
                    None => votes.push((name.as_str(), 1)),
                }
            }
        }
        let best = votes.iter().map(|(_, c)| *c).max()?;
        votes
            .into_iter()
            .find(|(_, c)| *c == best)
            .map(|(n, _)| n.to_owned())
    }

    /// Removes a member; a new leader is picked among those left (preferring
    /// members that have rejoined).
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.shift_remove(member_id)?;
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader = self
                .members
                .values()
                .find(|m| m.is_awaiting_join())
                .or_else(|| self.members.values().next())
                .map(|m| m.member_id.clone());
        }
        Some(member)
    }

    /// Adds a member whose protocols passed [`supports_protocols`]; the
    /// first one sets the group's protocol type.
    ///
    /// [`supports_protocols`]: ClassicGroup::supports_protocols
    pub fn add_member(&mut self, member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_owned());
        }
        if self.leader.is_none() {
            self.leader = Some(member.member_id.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// A static member whose instance id is now held by another member id.
    pub fn is_fenced(&self, instance: Option<&str>, member_id: &str) -> bool {
        match instance {
            Some(i) => self
                .static_members
                .get(i)
                .is_some_and(|current| current != member_id),
            None => false,
        }
    }

    /// Topics the members subscribed to, when the group uses the consumer
    /// protocol and every subscription parses; `None` otherwise.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(parse_subscription_topics(&m.metadata_for(protocol))?);
        }
        Some(topics)
    }

    pub fn to_record(&self) -> GroupValue {
        let protocol = self.protocol_name.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its stored metadata (start-up replay). Members
    /// come back as they were in the last stored generation; they must
    /// heartbeat within their session timeout or are removed.
    pub fn load(&mut self, value: GroupValue, now: i64) {
        self.last_stored = Some(value.clone());
        self.generation = value.generation;
        self.protocol_type = Some(value.protocol_type).filter(|s| !s.is_empty());
        self.protocol_name = value.protocol;
        self.leader = value.leader;
        self.state_timestamp = Some(value.current_state_timestamp).filter(|t| *t >= 0);
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.pending_sync.clear();
        for mv in value.members {
            let protocols = match &self.protocol_name {
                Some(p) => vec![(p.clone(), mv.subscription.clone())],
                None => Vec::new(),
            };
            let member = Member {
                member_id: mv.member_id.clone(),
                group_instance_id: mv.group_instance_id,
                client_id: mv.client_id,
                client_host: mv.client_host,
                rebalance_timeout_ms: mv.rebalance_timeout,
                session_timeout_ms: mv.session_timeout,
                protocols,
                assignment: mv.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline: now + mv.session_timeout as i64,
            };
            if let Some(i) = &member.group_instance_id {
                self.static_members
                    .insert(i.clone(), member.member_id.clone());
            }
            self.members.insert(member.member_id.clone(), member);
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }
}

/// The topics of a ConsumerProtocolSubscription (any version: int16 version,
/// then an int16-length-prefixed string array; later fields are ignored).
pub fn parse_subscription_topics(buf: &[u8]) -> Option<Vec<String>> {
    let mut pos = 2usize;
    let count = i32::from_be_bytes(buf.get(pos..pos + 4)?.try_into().ok()?);
    pos += 4;
    if count < 0 || count as usize > buf.len() {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(buf.get(pos..pos + 2)?.try_into().ok()?);
        pos += 2;
        if len < 0 {
            return None;
        }
        let s = buf.get(pos..pos + len as usize)?;
        pos += len as usize;
        topics.push(String::from_utf8(s.to_vec()).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_topics_parse_and_reject_garbage() {
        // version 1, ["a", "bc"], null user data, no owned partitions
        let buf = [
            0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 255, 255, 255, 255, 0, 0, 0, 0,
        ];
        assert_eq!(
            parse_subscription_topics(&buf),
            Some(vec!["a".into(), "bc".into()])
        );
        assert_eq!(parse_subscription_topics(&buf[..9]), None);
        assert_eq!(parse_subscription_topics(&[0, 0, 255, 255, 255, 255]), None);
        assert_eq!(parse_subscription_topics(&[]), None);
    }
}
