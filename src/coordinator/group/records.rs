//! The records the group coordinator keeps in `__consumer_offsets`, in Kafka's
//! byte layout, written from Kafka's message schemas
//! (`group-coordinator/src/main/resources/common/message/` in apache/kafka;
//! `core/src/main/resources/common/message/` in older releases):
//! `OffsetCommitKey`, `OffsetCommitValue`, `GroupMetadataKey`,
//! `GroupMetadataValue`.
//!
//! A record key is `int16 key version` followed by the key fields; the key
//! version doubles as the record type (0 and 1: offset commit, 2: group
//! metadata; Kafka 4's KIP-848 records use 3 and above). A value is
//! `int16 value version` followed by the value fields. Values at version 4
//! (the schemas' `flexibleVersions: 4+`) use compact strings, arrays and bytes
//! (unsigned-varint length + 1, 0 for null) and end every struct with a tagged
//! field section; keys are never flexible.
//!
//! What is written, as Kafka 3.x/4.x writes it (`GroupCoordinatorRecordHelpers`):
//! offset keys at key version 1, group keys at key version 2,
//! `OffsetCommitValue` v1 when the commit carries an expire timestamp and v3
//! otherwise (the highest non-flexible version), `GroupMetadataValue` v3.
//! Every version of the schemas is decoded.
//!
//! The primitive types and the batch helpers are in `coordinator::codec`.
//!
//! Every decoder is total over arbitrary bytes: malformed input is an error,
//! never a panic. Trailing bytes after a record's last field are ignored, as
//! Kafka's reader ignores them.

use bytes::Bytes;

pub use crate::coordinator::codec::RecordError;
use crate::coordinator::codec::{check_version, Reader, Result, Writer};

/// Key version of `OffsetCommitKey` as written by Kafka 0.8.2 (same layout as 1).
pub const LEGACY_OFFSET_KEY_VERSION: i16 = 0;
/// Key version (record type) written for offset commits.
pub const OFFSET_KEY_VERSION: i16 = 1;
/// Key version (record type) of `GroupMetadataKey`.
pub const GROUP_KEY_VERSION: i16 = 2;
/// `OffsetCommitValue` version written when the commit has no expire timestamp.
pub const OFFSET_VALUE_VERSION: i16 = 3;
/// `OffsetCommitValue` version written when it has one (only v1 carries it).
pub const OFFSET_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
/// `GroupMetadataValue` version written.
pub const GROUP_VALUE_VERSION: i16 = 3;
/// Highest `OffsetCommitValue` version decoded.
pub const MAX_OFFSET_VALUE_VERSION: i16 = 4;
/// Highest `GroupMetadataValue` version decoded.
pub const MAX_GROUP_VALUE_VERSION: i16 = 4;
/// Both value schemas: `"flexibleVersions": "4+"`.
const FIRST_FLEXIBLE_VALUE_VERSION: i16 = 4;

// ---------------------------------------------------------------------------
// Public record types
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// OffsetCommitKey (key versions 0 and 1); written as version 1.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// GroupMetadataKey (key version 2).
    Group { group: String },
}

impl RecordKey {
    /// Kafka's layout at the version Kafka writes (offset: 1, group: 2).
    /// Strings longer than [`MAX_STRING_BYTES`] are cut at a character
    /// boundary; [`RecordKey::encode_version`] refuses them instead.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(false);
        self.write(self.default_version(), &mut w);
        w.buf
    }

    /// The key at an explicit key version (offset: 0 or 1; group: 2).
    pub fn encode_version(&self, version: i16) -> Result<Vec<u8>> {
        let ok = match self {
            RecordKey::Offset { .. } => {
                version == LEGACY_OFFSET_KEY_VERSION || version == OFFSET_KEY_VERSION
            }
            RecordKey::Group { .. } => version == GROUP_KEY_VERSION,
        };
        if !ok {
            return Err(RecordError::UnsupportedVersion {
                record: self.name(),
                version,
            });
        }
        let mut w = Writer::new(false);
        self.write(version, &mut w);
        w.finish()
    }

    /// Ok(None) for key versions we do not know (e.g. Kafka 4's KIP-848
    /// records, versions >= 3): the loader skips them.
    pub fn decode(buf: &[u8]) -> Result<Option<RecordKey>> {
        let mut r = Reader::new(buf, false);
        let version = r.i16("record key version")?;
        match version {
            LEGACY_OFFSET_KEY_VERSION | OFFSET_KEY_VERSION => Ok(Some(RecordKey::Offset {
                group: r.string("OffsetCommitKey.group")?,
                topic: r.string("OffsetCommitKey.topic")?,
                partition: r.i32("OffsetCommitKey.partition")?,
            })),
            GROUP_KEY_VERSION => Ok(Some(RecordKey::Group {
                group: r.string("GroupMetadataKey.group")?,
            })),
            _ => Ok(None),
        }
    }

    fn default_version(&self) -> i16 {
        match self {
            RecordKey::Offset { .. } => OFFSET_KEY_VERSION,
            RecordKey::Group { .. } => GROUP_KEY_VERSION,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RecordKey::Offset { .. } => "OffsetCommitKey",
            RecordKey::Group { .. } => "GroupMetadataKey",
        }
    }

    fn write(&self, version: i16, w: &mut Writer) {
        w.i16(version);
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                w.string("OffsetCommitKey.group", group);
                w.string("OffsetCommitKey.topic", topic);
                w.i32(*partition);
            }
            RecordKey::Group { group } => w.string("GroupMetadataKey.group", group),
        }
    }
}

/// OffsetCommitValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 if none (and always -1 when decoded from v0-v2).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only v1 carries one; a v1 record holding -1 decodes as `None`.
    pub expire_timestamp: Option<i64>,
}

impl OffsetValue {
    /// v1 when `expire_timestamp` is set, else v3, as Kafka writes them.
    /// v1 has no leader epoch, so it is dropped with an expire timestamp (only
    /// OffsetCommit v2-v4 set one, and they carry no epoch).
    /// `metadata` longer than [`MAX_STRING_BYTES`] is cut at a character
    /// boundary (Kafka refuses to write it; reject it before, or use
    /// [`OffsetValue::encode_version`]).
    pub fn encode(&self) -> Vec<u8> {
        let version = if self.expire_timestamp.is_some() {
            OFFSET_VALUE_VERSION_WITH_EXPIRY
        } else {
            OFFSET_VALUE_VERSION
        };
        let mut w = Writer::new(false);
        self.write(version, &mut w);
        w.buf
    }

    /// The value at an explicit version 0..=4. Fields the version does not
    /// carry are left out (leader epoch before v3, expire timestamp outside v1).
    pub fn encode_version(&self, version: i16) -> Result<Vec<u8>> {
        check_version("OffsetCommitValue", version, MAX_OFFSET_VALUE_VERSION)?;
        let mut w = Writer::new(false);
        self.write(version, &mut w);
        w.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<OffsetValue> {
        let mut r = Reader::new(buf, false);
        let version = r.i16("OffsetCommitValue version")?;
        check_version("OffsetCommitValue", version, MAX_OFFSET_VALUE_VERSION)?;
        r.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
        let offset = r.i64("OffsetCommitValue.offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("OffsetCommitValue.leaderEpoch")?
        } else {
            -1
        };
        let metadata = r.string("OffsetCommitValue.metadata")?;
        let commit_timestamp = r.i64("OffsetCommitValue.commitTimestamp")?;
        let expire_timestamp = if version == 1 {
            Some(r.i64("OffsetCommitValue.expireTimestamp")?).filter(|&t| t != -1)
        } else {
            None
        };
        r.tagged_fields("OffsetCommitValue tagged fields")?;
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
        })
    }

    fn write(&self, version: i16, w: &mut Writer) {
        w.i16(version);
        w.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
        w.i64(self.offset);
        if version >= 3 {
            w.i32(self.leader_epoch);
        }
        w.string("OffsetCommitValue.metadata", &self.metadata);
        w.i64(self.commit_timestamp);
        if version == 1 {
            w.i64(self.expire_timestamp.unwrap_or(-1));
        }
        w.tagged_fields();
    }
}

/// GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 if none (and always -1 when decoded from v0-v1).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// GroupMetadataValue.MemberMetadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    /// Only v3+ carries it; `None` when decoded from older versions.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Only v1+ carries it; decoded from v0 as `session_timeout`, as Kafka's
    /// Scala GroupMetadataManager did.
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

impl GroupValue {
    /// Version 3, as Kafka writes it. Strings longer than
    /// [`MAX_STRING_BYTES`] are cut at a character boundary;
    /// [`GroupValue::encode_version`] refuses them instead.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(false);
        self.write(GROUP_VALUE_VERSION, &mut w);
        w.buf
    }

    /// The value at an explicit version 0..=4. Fields the version does not
    /// carry are left out (rebalance timeout before v1, current state
    /// timestamp before v2, group instance id before v3).
    pub fn encode_version(&self, version: i16) -> Result<Vec<u8>> {
        check_version("GroupMetadataValue", version, MAX_GROUP_VALUE_VERSION)?;
        let mut w = Writer::new(false);
        self.write(version, &mut w);
        w.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<GroupValue> {
        let mut r = Reader::new(buf, false);
        let version = r.i16("GroupMetadataValue version")?;
        check_version("GroupMetadataValue", version, MAX_GROUP_VALUE_VERSION)?;
        r.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
        let protocol_type = r.string("GroupMetadataValue.protocolType")?;
        let generation = r.i32("GroupMetadataValue.generation")?;
        let protocol = r.nullable_string("GroupMetadataValue.protocol")?;
        let leader = r.nullable_string("GroupMetadataValue.leader")?;
        let current_state_timestamp = if version >= 2 {
            r.i64("GroupMetadataValue.currentStateTimestamp")?
        } else {
            -1
        };
        let count = r.array_len("GroupMetadataValue.members")?;
        // Every member takes at least 20 bytes; never reserve more than the
        // input could hold.
        let mut members = Vec::with_capacity(count.min(r.remaining() / 20));
        for _ in 0..count {
            members.push(MemberValue::read(version, &mut r)?);
        }
        r.tagged_fields("GroupMetadataValue tagged fields")?;
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }

    fn write(&self, version: i16, w: &mut Writer) {
        w.i16(version);
        w.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
        w.string("GroupMetadataValue.protocolType", &self.protocol_type);
        w.i32(self.generation);
        w.nullable_string("GroupMetadataValue.protocol", self.protocol.as_deref());
        w.nullable_string("GroupMetadataValue.leader", self.leader.as_deref());
        if version >= 2 {
            w.i64(self.current_state_timestamp);
        }
        w.array_len("GroupMetadataValue.members", self.members.len());
        for m in &self.members {
            m.write(version, w);
        }
        w.tagged_fields();
    }
}

impl MemberValue {
    fn read(version: i16, r: &mut Reader<'_>) -> Result<MemberValue> {
        let member_id = r.string("MemberMetadata.memberId")?;
        let group_instance_id = if version >= 3 {
            r.nullable_string("MemberMetadata.groupInstanceId")?
        } else {
            None
        };
        let client_id = r.string("MemberMetadata.clientId")?;
        let client_host = r.string("MemberMetadata.clientHost")?;
        let rebalance_timeout = if version >= 1 {
            Some(r.i32("MemberMetadata.rebalanceTimeout")?)
        } else {
            None
        };
        let session_timeout = r.i32("MemberMetadata.sessionTimeout")?;
        let subscription = r.bytes("MemberMetadata.subscription")?;
        let assignment = r.bytes("MemberMetadata.assignment")?;
        r.tagged_fields("MemberMetadata tagged fields")?;
        Ok(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
            session_timeout,
            subscription,
            assignment,
        })
    }

    fn write(&self, version: i16, w: &mut Writer) {
        w.string("MemberMetadata.memberId", &self.member_id);
        if version >= 3 {
            w.nullable_string(
                "MemberMetadata.groupInstanceId",
                self.group_instance_id.as_deref(),
            );
        }
        w.string("MemberMetadata.clientId", &self.client_id);
        w.string("MemberMetadata.clientHost", &self.client_host);
        if version >= 1 {
            w.i32(self.rebalance_timeout);
        }
        w.i32(self.session_timeout);
        w.bytes("MemberMetadata.subscription", &self.subscription);
        w.bytes("MemberMetadata.assignment", &self.assignment);
        w.tagged_fields();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The batch helpers are tested here, with the records they carry.
    use crate::coordinator::codec::{decode_records, encode_batch, MAX_STRING_BYTES};
    use proptest::prelude::*;

    fn offset_key() -> RecordKey {
        RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        }
    }

    fn offset_value(expire: Option<i64>) -> OffsetValue {
        OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp: 1000,
            expire_timestamp: expire,
        }
    }

    fn member(n: u8) -> MemberValue {
        MemberValue {
            member_id: format!("member-{n}"),
            group_instance_id: Some(format!("instance-{n}")),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: 300_000,
            session_timeout: 45_000,
            subscription: Bytes::from(vec![0, 1, n]),
            assignment: Bytes::from(vec![n; 5]),
        }
    }

    fn group_value() -> GroupValue {
        GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("member-1".into()),
            current_state_timestamp: 1_700_000_000_000,
            members: vec![member(1), member(2)],
        }
    }

    /// What `v` can carry of `g`: the fields older versions lack take the
    /// values the decoder fills in.
    fn as_of(g: &GroupValue, v: i16) -> GroupValue {
        let mut g = g.clone();
        if v < 2 {
            g.current_state_timestamp = -1;
        }
        for m in &mut g.members {
            if v < 3 {
                m.group_instance_id = None;
            }
            if v < 1 {
                m.rebalance_timeout = m.session_timeout;
            }
        }
        g
    }

    #[test]
    fn keys_round_trip_every_version() {
        let k = offset_key();
        for v in [0, 1] {
            let bytes = k.encode_version(v).unwrap();
            assert_eq!(&bytes[..2], &v.to_be_bytes());
            assert_eq!(RecordKey::decode(&bytes).unwrap(), Some(k.clone()));
        }
        assert_eq!(RecordKey::decode(&k.encode()).unwrap(), Some(k.clone()));
        let g = RecordKey::Group {
            group: "grp".into(),
        };
        assert_eq!(RecordKey::decode(&g.encode()).unwrap(), Some(g.clone()));
        assert_eq!(g.encode_version(2).unwrap(), g.encode());
        assert!(matches!(
            g.encode_version(1),
            Err(RecordError::UnsupportedVersion { version: 1, .. })
        ));
        assert!(k.encode_version(2).is_err());
        let unicode = RecordKey::Offset {
            group: "grüppe-😀".into(),
            topic: "".into(),
            partition: -1,
        };
        assert_eq!(
            RecordKey::decode(&unicode.encode()).unwrap(),
            Some(unicode.clone())
        );
    }

    #[test]
    fn offset_key_golden_bytes() {
        // int16 key version 1, string group (int16 length 1, 'g'),
        // string topic (int16 length 1, 't'), int32 partition 3.
        let expected = [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3];
        assert_eq!(offset_key().encode(), expected);
        assert_eq!(RecordKey::decode(&expected).unwrap(), Some(offset_key()));
    }

    #[test]
    fn group_key_golden_bytes() {
        // int16 key version 2, string group (int16 length 2, "ab").
        let expected = [0, 2, 0, 2, b'a', b'b'];
        let k = RecordKey::Group { group: "ab".into() };
        assert_eq!(k.encode(), expected);
        assert_eq!(RecordKey::decode(&expected).unwrap(), Some(k));
    }

    #[test]
    fn unknown_key_versions_are_skipped() {
        for v in [3i16, 4, 5, 16, 100, i16::MAX, -1, i16::MIN] {
            let mut bytes = v.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0, 1, b'g', 0, 0, 0, 0]);
            assert_eq!(RecordKey::decode(&bytes).unwrap(), None, "version {v}");
            // Even with nothing after the version.
            assert_eq!(RecordKey::decode(&v.to_be_bytes()).unwrap(), None);
        }
    }

    #[test]
    fn offset_values_round_trip_every_version() {
        let full = offset_value(Some(99_000));
        for v in 0..=MAX_OFFSET_VALUE_VERSION {
            let bytes = full.encode_version(v).unwrap();
            assert_eq!(&bytes[..2], &v.to_be_bytes());
            let expected = OffsetValue {
                leader_epoch: if v >= 3 { 7 } else { -1 },
                expire_timestamp: if v == 1 { Some(99_000) } else { None },
                ..full.clone()
            };
            assert_eq!(OffsetValue::decode(&bytes).unwrap(), expected, "v{v}");
        }
        // encode() picks v1 with an expire timestamp, v3 without.
        // v1 has no leader epoch (as in Kafka; only OffsetCommit v2-v4, which
        // carry no epoch either, set a retention time).
        let with = offset_value(Some(5));
        assert_eq!(&with.encode()[..2], &[0, 1]);
        assert_eq!(
            OffsetValue::decode(&with.encode()).unwrap(),
            OffsetValue {
                leader_epoch: -1,
                ..with
            }
        );
        let without = offset_value(None);
        assert_eq!(&without.encode()[..2], &[0, 3]);
        assert_eq!(OffsetValue::decode(&without.encode()).unwrap(), without);
        // A v1 record holding -1 means "no expire timestamp".
        let minus_one = offset_value(Some(-1)).encode();
        assert_eq!(
            OffsetValue::decode(&minus_one).unwrap().expire_timestamp,
            None
        );
        assert!(matches!(
            full.encode_version(5),
            Err(RecordError::UnsupportedVersion { version: 5, .. })
        ));
    }

    #[test]
    fn offset_value_golden_bytes() {
        // v3: int16 version 3, int64 offset 42, int32 leaderEpoch 7,
        // string metadata (int16 length 1, 'm'), int64 commitTimestamp 1000.
        let v3 = [
            0, 3, //
            0, 0, 0, 0, 0, 0, 0, 42, //
            0, 0, 0, 7, //
            0, 1, b'm', //
            0, 0, 0, 0, 0, 0, 0x03, 0xe8,
        ];
        assert_eq!(offset_value(None).encode(), v3);
        assert_eq!(OffsetValue::decode(&v3).unwrap(), offset_value(None));

        // v1: int16 version 1, int64 offset 42, string metadata "m",
        // int64 commitTimestamp 1000, int64 expireTimestamp 2000.
        let v1 = [
            0, 1, //
            0, 0, 0, 0, 0, 0, 0, 42, //
            0, 1, b'm', //
            0, 0, 0, 0, 0, 0, 0x03, 0xe8, //
            0, 0, 0, 0, 0, 0, 0x07, 0xd0,
        ];
        let with_expiry = OffsetValue {
            leader_epoch: -1,
            ..offset_value(Some(2000))
        };
        assert_eq!(with_expiry.encode(), v1);
        assert_eq!(OffsetValue::decode(&v1).unwrap(), with_expiry);

        // v4 (flexible): compact string metadata (uvarint 1 + 1 = 2, 'm') and
        // an empty tagged field section (uvarint 0) at the end.
        let v4 = [
            0, 4, //
            0, 0, 0, 0, 0, 0, 0, 42, //
            0, 0, 0, 7, //
            2, b'm', //
            0, 0, 0, 0, 0, 0, 0x03, 0xe8, //
            0,
        ];
        assert_eq!(offset_value(None).encode_version(4).unwrap(), v4);
        assert_eq!(OffsetValue::decode(&v4).unwrap(), offset_value(None));
    }

    #[test]
    fn flexible_values_skip_unknown_tagged_fields() {
        // v4 with one tagged field (tag 5, 2 bytes) in place of the empty section.
        let mut bytes = offset_value(None).encode_version(4).unwrap();
        bytes.pop();
        bytes.extend_from_slice(&[1, 5, 2, 0xaa, 0xbb]);
        assert_eq!(OffsetValue::decode(&bytes).unwrap(), offset_value(None));
        // A tagged field claiming more bytes than there are.
        let last = bytes.len() - 3;
        bytes[last] = 9;
        assert_eq!(
            OffsetValue::decode(&bytes),
            Err(RecordError::Truncated("OffsetCommitValue tagged fields"))
        );
    }

    #[test]
    fn group_values_round_trip_every_version() {
        let g = group_value();
        for v in 0..=MAX_GROUP_VALUE_VERSION {
            let bytes = g.encode_version(v).unwrap();
            assert_eq!(&bytes[..2], &v.to_be_bytes());
            assert_eq!(GroupValue::decode(&bytes).unwrap(), as_of(&g, v), "v{v}");
        }
        assert_eq!(&g.encode()[..2], &[0, 3]);
        assert_eq!(GroupValue::decode(&g.encode()).unwrap(), g);
        // Nulls and an empty member list, in every version.
        let empty = GroupValue {
            protocol_type: "".into(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp: -1,
            members: vec![],
        };
        for v in 0..=MAX_GROUP_VALUE_VERSION {
            let bytes = empty.encode_version(v).unwrap();
            assert_eq!(GroupValue::decode(&bytes).unwrap(), empty, "v{v}");
        }
        let static_less = GroupValue {
            members: vec![MemberValue {
                group_instance_id: None,
                ..member(9)
            }],
            ..g.clone()
        };
        for v in 3..=4 {
            let bytes = static_less.encode_version(v).unwrap();
            assert_eq!(GroupValue::decode(&bytes).unwrap(), static_less);
        }
        assert!(g.encode_version(-1).is_err());
        assert!(g.encode_version(5).is_err());
    }

    #[test]
    fn group_value_golden_bytes() {
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: Some("range".into()),
            leader: None,
            current_state_timestamp: 256,
            members: vec![MemberValue {
                member_id: "m".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout: 2,
                session_timeout: 3,
                subscription: Bytes::from_static(&[0xaa]),
                assignment: Bytes::new(),
            }],
        };
        // v3: int16 version 3
        //     string protocolType (int16 8, "consumer"), int32 generation 1,
        //     nullable string protocol (int16 5, "range"), leader null (int16 -1),
        //     int64 currentStateTimestamp 256, members array (int32 count 1):
        //       string memberId "m", nullable string groupInstanceId null,
        //       string clientId "c", string clientHost "h",
        //       int32 rebalanceTimeout 2, int32 sessionTimeout 3,
        //       bytes subscription (int32 1, 0xaa), bytes assignment (int32 0).
        let mut v3 = vec![0, 3, 0, 8];
        v3.extend_from_slice(b"consumer");
        v3.extend_from_slice(&[0, 0, 0, 1, 0, 5]);
        v3.extend_from_slice(b"range");
        v3.extend_from_slice(&[0xff, 0xff]);
        v3.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 0]);
        v3.extend_from_slice(&[0, 0, 0, 1]);
        v3.extend_from_slice(&[0, 1, b'm', 0xff, 0xff, 0, 1, b'c', 0, 1, b'h']);
        v3.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 3]);
        v3.extend_from_slice(&[0, 0, 0, 1, 0xaa, 0, 0, 0, 0]);
        assert_eq!(g.encode(), v3);
        assert_eq!(GroupValue::decode(&v3).unwrap(), g);

        // v4: the same fields, compact: lengths are uvarint n + 1, null is 0,
        // the member and the value each end with an empty tagged section.
        let mut v4 = vec![0, 4, 9];
        v4.extend_from_slice(b"consumer");
        v4.extend_from_slice(&[0, 0, 0, 1, 6]);
        v4.extend_from_slice(b"range");
        v4.push(0);
        v4.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 0]);
        v4.push(2); // one member
        v4.extend_from_slice(&[2, b'm', 0, 2, b'c', 2, b'h']);
        v4.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 3]);
        v4.extend_from_slice(&[2, 0xaa, 1]);
        v4.push(0); // member tagged fields
        v4.push(0); // value tagged fields
        assert_eq!(g.encode_version(4).unwrap(), v4);
        assert_eq!(GroupValue::decode(&v4).unwrap(), g);

        // v0: no currentStateTimestamp, groupInstanceId or rebalanceTimeout;
        // the decoder takes the session timeout as the rebalance timeout.
        let mut v0 = vec![0, 0, 0, 8];
        v0.extend_from_slice(b"consumer");
        v0.extend_from_slice(&[0, 0, 0, 1, 0, 5]);
        v0.extend_from_slice(b"range");
        v0.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 1]);
        v0.extend_from_slice(&[0, 1, b'm', 0, 1, b'c', 0, 1, b'h']);
        v0.extend_from_slice(&[0, 0, 0, 3]);
        v0.extend_from_slice(&[0, 0, 0, 1, 0xaa, 0, 0, 0, 0]);
        assert_eq!(g.encode_version(0).unwrap(), v0);
        let decoded = GroupValue::decode(&v0).unwrap();
        assert_eq!(decoded.current_state_timestamp, -1);
        assert_eq!(decoded.members[0].rebalance_timeout, 3);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("offset key", offset_key().encode()),
            (
                "group key",
                RecordKey::Group { group: "ab".into() }.encode(),
            ),
            ("offset v1", offset_value(Some(1)).encode()),
            ("offset v3", offset_value(None).encode()),
            ("offset v4", offset_value(None).encode_version(4).unwrap()),
            ("group v3", group_value().encode()),
            ("group v4", group_value().encode_version(4).unwrap()),
            ("group v0", group_value().encode_version(0).unwrap()),
        ];
        for (name, bytes) in cases {
            for cut in 0..bytes.len() {
                let short = &bytes[..cut];
                let err = match name {
                    n if n.ends_with("key") => RecordKey::decode(short).err(),
                    n if n.starts_with("offset") => OffsetValue::decode(short).err(),
                    _ => GroupValue::decode(short).err(),
                };
                assert!(
                    matches!(err, Some(RecordError::Truncated(_))),
                    "{name} cut at {cut}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn malformed_fields_are_errors() {
        // Non-nullable string written as null.
        let null_group = [0, 2, 0xff, 0xff];
        assert_eq!(
            RecordKey::decode(&null_group),
            Err(RecordError::UnexpectedNull("GroupMetadataKey.group"))
        );
        // Invalid UTF-8.
        let bad_utf8 = [0, 2, 0, 2, 0xc3, 0x28];
        assert_eq!(
            RecordKey::decode(&bad_utf8),
            Err(RecordError::BadUtf8("GroupMetadataKey.group"))
        );
        // Value versions out of range.
        for v in [-1i16, 5, i16::MAX] {
            let mut bytes = v.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0; 40]);
            assert!(matches!(
                OffsetValue::decode(&bytes),
                Err(RecordError::UnsupportedVersion { .. })
            ));
            assert!(matches!(
                GroupValue::decode(&bytes),
                Err(RecordError::UnsupportedVersion { .. })
            ));
        }
        // A member count far beyond the input: an error, no huge allocation.
        let mut bytes = group_value().encode();
        let count_at = 2 + 2 + 8 + 4 + 2 + 5 + 2 + 8 + 8;
        assert_eq!(&bytes[count_at..count_at + 4], &[0, 0, 0, 2]);
        bytes[count_at..count_at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            GroupValue::decode(&bytes),
            Err(RecordError::Truncated(_))
        ));
        // Compact string longer than Kafka allows.
        let mut v4 = offset_value(None).encode_version(4).unwrap();
        v4.splice(14..16, [0x80, 0x80, 0x02]); // uvarint 32768 = length 32767
        assert!(matches!(
            OffsetValue::decode(&v4),
            Err(RecordError::Truncated(_))
        ));
        let mut v4 = offset_value(None).encode_version(4).unwrap();
        v4.splice(14..16, [0x82, 0x80, 0x02]); // length 32769
        assert!(matches!(
            OffsetValue::decode(&v4),
            Err(RecordError::InvalidLength { len: 32769, .. })
        ));
        // A varint longer than five bytes.
        let mut v4 = offset_value(None).encode_version(4).unwrap();
        v4.splice(14..16, [0xff; 6]);
        assert!(matches!(
            OffsetValue::decode(&v4),
            Err(RecordError::BadVarint(_))
        ));
    }

    #[test]
    fn over_long_strings() {
        let long = "é".repeat(MAX_STRING_BYTES); // two bytes each
        let v = OffsetValue {
            metadata: long.clone(),
            ..offset_value(None)
        };
        assert!(matches!(
            v.encode_version(3),
            Err(RecordError::TooLong {
                field: "OffsetCommitValue.metadata",
                ..
            })
        ));
        // encode() never panics: it cuts at a character boundary below the limit.
        let decoded = OffsetValue::decode(&v.encode()).unwrap();
        assert_eq!(decoded.metadata.len(), MAX_STRING_BYTES - 1);
        assert!(long.starts_with(&decoded.metadata));
        let exact = OffsetValue {
            metadata: "x".repeat(MAX_STRING_BYTES),
            ..offset_value(None)
        };
        for version in 0..=4 {
            let bytes = exact.encode_version(version).unwrap();
            assert_eq!(
                OffsetValue::decode(&bytes).unwrap().metadata,
                exact.metadata
            );
        }
    }

    #[test]
    fn batch_is_a_valid_produce_batch_and_round_trips() {
        let records = vec![
            (offset_key().encode(), Some(offset_value(None).encode())),
            (
                RecordKey::Group { group: "g".into() }.encode(),
                Some(group_value().encode()),
            ),
            (offset_key().encode(), None),
        ];
        let batch = encode_batch(&records, 1_700_000_000_123);
        let header = crate::log::batch::validate_produce_batch(&batch, i32::MAX).unwrap();
        assert_eq!(header.base_offset, 0);
        assert_eq!(header.magic, 2);
        assert_eq!(header.producer_id, -1);
        assert_eq!(header.producer_epoch, -1);
        assert_eq!(header.base_sequence, -1);
        assert_eq!(header.records_count, 3);
        assert_eq!(header.compression(), 0);
        assert!(!header.is_transactional() && !header.is_control());
        assert_eq!(header.base_timestamp, 1_700_000_000_123);
        assert_eq!(header.max_timestamp, 1_700_000_000_123);

        let mut buf = batch.clone();
        let decoded = decode_records(&mut buf).unwrap();
        assert!(buf.is_empty());
        assert_eq!(decoded.len(), 3);
        for (i, ((offset, key, value), (k, v))) in decoded.iter().zip(&records).enumerate() {
            assert_eq!(*offset, i as i64);
            assert_eq!(key.as_deref(), Some(&k[..]));
            assert_eq!(value.as_deref(), v.as_deref());
        }
        assert!(encode_batch(&[], 0).is_empty());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = RecordKey::decode(&bytes);
            let _ = OffsetValue::decode(&bytes);
            let _ = GroupValue::decode(&bytes);
        }

        /// Random bodies behind every valid version prefix, so the decoders
        /// get past the version check.
        #[test]
        fn decoders_never_panic_past_the_version(
            version in 0i16..=4,
            body in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut bytes = version.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            let _ = RecordKey::decode(&bytes);
            let _ = OffsetValue::decode(&bytes);
            let _ = GroupValue::decode(&bytes);
        }

        #[test]
        fn group_values_round_trip(
            generation in any::<i32>(),
            ts in any::<i64>(),
            protocol in proptest::option::of(".{0,8}"),
            ids in proptest::collection::vec((".{0,12}", proptest::option::of("[a-z]{0,4}")), 0..4),
            sub in proptest::collection::vec(any::<u8>(), 0..40),
            version in 3i16..=4,
        ) {
            let g = GroupValue {
                protocol_type: "consumer".into(),
                generation,
                protocol: protocol.clone(),
                leader: protocol,
                current_state_timestamp: ts,
                members: ids.into_iter().map(|(id, instance)| MemberValue {
                    member_id: id.clone(),
                    group_instance_id: instance,
                    client_id: id,
                    client_host: "h".into(),
                    rebalance_timeout: generation,
                    session_timeout: 1,
                    subscription: Bytes::from(sub.clone()),
                    assignment: Bytes::new(),
                }).collect(),
            };
            let bytes = g.encode_version(version).unwrap();
            prop_assert_eq!(GroupValue::decode(&bytes).unwrap(), g);
        }
    }
}
