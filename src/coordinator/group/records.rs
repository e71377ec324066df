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
//! Also here: [`encode_batch`] and [`decode_records`], which the shard uses to
//! write and replay its partition.
//!
//! Every decoder is total over arbitrary bytes: malformed input is an error,
//! never a panic. Trailing bytes after a record's last field are ignored, as
//! Kafka's reader ignores them.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::compression::{self as cmpr, Decompressor};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::log::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, MIN_BATCH_LENGTH};

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
/// The longest string Kafka's generated code writes (`> 0x7fff` is refused).
pub const MAX_STRING_BYTES: usize = i16::MAX as usize;
/// Smallest encoded v2 record: length, attributes, timestamp delta, offset
/// delta, key length, value length and header count, one byte each.
const MIN_RECORD_BYTES: usize = 7;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0}: record ends early")]
    Truncated(&'static str),
    #[error("unsupported {record} version {version}")]
    UnsupportedVersion { record: &'static str, version: i16 },
    #[error("{0}: null in a field that is not nullable")]
    UnexpectedNull(&'static str),
    #[error("{field}: invalid length {len}")]
    InvalidLength { field: &'static str, len: i64 },
    #[error("{0}: malformed unsigned varint")]
    BadVarint(&'static str),
    #[error("{0}: not valid UTF-8")]
    BadUtf8(&'static str),
    #[error("{field}: {len} bytes is more than the field can hold")]
    TooLong { field: &'static str, len: usize },
    #[error("record batch: {0}")]
    Batch(String),
}

type Result<T> = std::result::Result<T, RecordError>;

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

pub(crate) fn check_version(record: &'static str, version: i16, max: i16) -> Result<()> {
    if (0..=max).contains(&version) {
        Ok(())
    } else {
        Err(RecordError::UnsupportedVersion { record, version })
    }
}

// ---------------------------------------------------------------------------
// Primitive reader / writer (Kafka's protocol types, big-endian)
// ---------------------------------------------------------------------------

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// Compact lengths and tagged fields (flexible versions).
    pub(crate) flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], flexible: bool) -> Self {
        Reader { buf, flexible }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(RecordError::Truncated(field));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(RecordError::Truncated(field))?;
        self.buf = rest;
        Ok(*head)
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16> {
        self.fixed(field).map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32> {
        self.fixed(field).map(i32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64> {
        self.fixed(field).map(i64::from_be_bytes)
    }

    /// Kafka's unsigned varint: at most 5 bytes.
    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.fixed::<1>(field)?;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::BadVarint(field))
    }

    /// A compact length (`n + 1`, 0 for null) as `Some(n)` / `None`.
    fn compact_len(&mut self, field: &'static str) -> Result<Option<usize>> {
        match self.uvarint(field)? {
            0 => Ok(None),
            n if n > i32::MAX as u32 => Err(RecordError::InvalidLength {
                field,
                len: i64::from(n) - 1,
            }),
            n => Ok(Some(n as usize - 1)),
        }
    }

    /// String length: int16 (negative = null) or compact.
    fn string_len(&mut self, field: &'static str) -> Result<Option<usize>> {
        if self.flexible {
            let len = self.compact_len(field)?;
            // Kafka's generated readers refuse compact strings over 0x7fff.
            if let Some(n) = len.filter(|&n| n > MAX_STRING_BYTES) {
                return Err(RecordError::InvalidLength {
                    field,
                    len: n as i64,
                });
            }
            Ok(len)
        } else {
            let n = self.i16(field)?;
            Ok(usize::try_from(n).ok())
        }
    }

    /// Bytes or array length: int32 (negative = null) or compact.
    pub(crate) fn long_len(&mut self, field: &'static str) -> Result<Option<usize>> {
        if self.flexible {
            self.compact_len(field)
        } else {
            let n = self.i32(field)?;
            Ok(usize::try_from(n).ok())
        }
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>> {
        let Some(len) = self.string_len(field)? else {
            return Ok(None);
        };
        let raw = self.take(len, field)?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| RecordError::BadUtf8(field))
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String> {
        self.nullable_string(field)?
            .ok_or(RecordError::UnexpectedNull(field))
    }

    fn bytes(&mut self, field: &'static str) -> Result<Bytes> {
        let len = self
            .long_len(field)?
            .ok_or(RecordError::UnexpectedNull(field))?;
        self.take(len, field).map(Bytes::copy_from_slice)
    }

    pub(crate) fn array_len(&mut self, field: &'static str) -> Result<usize> {
        self.long_len(field)?
            .ok_or(RecordError::UnexpectedNull(field))
    }

    /// Skips a tagged field section (flexible versions only); none of these
    /// schemas defines a tag, so every one is unknown and skipped.
    pub(crate) fn tagged_fields(&mut self, field: &'static str) -> Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint(field)?;
        for _ in 0..count {
            self.uvarint(field)?; // tag
            let size = self.uvarint(field)?;
            self.take(size as usize, field)?;
        }
        Ok(())
    }
}

pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
    pub(crate) flexible: bool,
    /// First field that had to be cut short, and its real length.
    too_long: Option<(&'static str, usize)>,
}

impl Writer {
    pub(crate) fn new(flexible: bool) -> Self {
        Writer {
            buf: Vec::with_capacity(64),
            flexible,
            too_long: None,
        }
    }

    /// The bytes, or an error if any field did not fit.
    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        match self.too_long {
            None => Ok(self.buf),
            Some((field, len)) => Err(RecordError::TooLong { field, len }),
        }
    }

    fn overflowed(&mut self, field: &'static str, len: usize) {
        self.too_long.get_or_insert((field, len));
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Length of a present string/bytes/array: compact (`n + 1`) or fixed
    /// width. `n` has already been clamped to what the width can hold.
    fn len(&mut self, n: usize, int16: bool) {
        if self.flexible {
            self.uvarint(n as u32 + 1);
        } else if int16 {
            self.i16(n as i16);
        } else {
            self.i32(n as i32);
        }
    }

    pub(crate) fn null(&mut self, int16: bool) {
        if self.flexible {
            self.uvarint(0);
        } else if int16 {
            self.i16(-1);
        } else {
            self.i32(-1);
        }
    }

    fn nullable_string(&mut self, field: &'static str, s: Option<&str>) {
        let Some(s) = s else {
            self.null(true);
            return;
        };
        let mut end = s.len();
        if end > MAX_STRING_BYTES {
            self.overflowed(field, end);
            end = MAX_STRING_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
        }
        self.len(end, true);
        self.buf.extend_from_slice(&s.as_bytes()[..end]);
    }

    pub(crate) fn string(&mut self, field: &'static str, s: &str) {
        self.nullable_string(field, Some(s));
    }

    fn bytes(&mut self, field: &'static str, b: &[u8]) {
        // One less than i32::MAX so the compact form (n + 1) fits too.
        let max = i32::MAX as usize - 1;
        let end = if b.len() > max {
            self.overflowed(field, b.len());
            max
        } else {
            b.len()
        };
        self.len(end, false);
        self.buf.extend_from_slice(&b[..end]);
    }

    /// Element count; the caller writes every element, so a count too large
    /// for the field is only reported, never written short.
    pub(crate) fn array_len(&mut self, field: &'static str, n: usize) {
        if n > i32::MAX as usize - 1 {
            self.overflowed(field, n);
        }
        self.len(n.min(i32::MAX as usize - 1), false);
    }

    pub(crate) fn tagged_fields(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }
}

// ---------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------

/// One uncompressed v2 batch (magic 2, producer id -1, base offset 0, all
/// records with the given timestamp). Empty input gives empty bytes.
pub fn encode_batch(records: &[(Vec<u8>, Option<Vec<u8>>)], timestamp_ms: i64) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder groups records whose offset - sequence is constant
            // and derives the base sequence from the first: -1, "none".
            sequence: (i as i32).wrapping_sub(1),
            timestamp: timestamp_ms,
            key: Some(Bytes::copy_from_slice(key)),
            value: value.as_deref().map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    // Uncompressed v2 encoding fails only for more than i32::MAX records or
    // bytes, which the coordinator never writes in one batch.
    if let Err(e) = RecordBatchEncoder::encode(&mut buf, &records, &options) {
        tracing::error!(error = %e, "encoding a coordinator record batch failed");
        return Bytes::new();
    }
    buf.freeze()
}

/// (offset, key, value) of one record read back from the log.
pub type LogRecord = (i64, Option<Bytes>, Option<Bytes>);

/// Every (offset, key, value) in `buf` (a sequence of batches as read from
/// the log); control batches skipped; compressed batches decoded.
///
/// `buf` is advanced past every batch returned. A partial batch at the end
/// (as a size-limited log read leaves) is not an error: it stays in `buf`.
/// On error `buf` starts at the batch that failed.
pub fn decode_records(buf: &mut Bytes) -> Result<Vec<LogRecord>> {
    let mut out = Vec::new();
    while let Some(length) = buf.get(8..LOG_OVERHEAD) {
        let batch_length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(RecordError::Batch(format!(
                "batch length {batch_length} is below the minimum {MIN_BATCH_LENGTH}"
            )));
        }
        let total = batch_length as usize + LOG_OVERHEAD;
        if buf.len() < total {
            break;
        }
        let header = BatchHeader::parse(&buf[..]).map_err(|e| RecordError::Batch(e.to_string()))?;
        check_header(&header)?;
        if !header.is_control() {
            let mut batch = buf.slice(..total);
            let count = header.records_count as usize;
            let set = RecordBatchDecoder::decode_with_custom_compression(
                &mut batch,
                Some(|data: &mut Bytes, c: Compression| decompress(data, c, count)),
            )
            .map_err(|e| RecordError::Batch(format!("{e:#}")))?;
            out.extend(set.records.into_iter().map(|r| (r.offset, r.key, r.value)));
        }
        buf.advance(total);
    }
    Ok(out)
}

/// What the crate's decoder trusts without checking.
fn check_header(h: &BatchHeader) -> Result<()> {
    let bad = |what: String| Err(RecordError::Batch(what));
    if h.magic != MAGIC_V2 {
        return bad(format!("unsupported magic {}", h.magic));
    }
    if h.records_count < 0 {
        return bad(format!("negative record count {}", h.records_count));
    }
    // Offsets are base + an int32 delta.
    if h.base_offset < 0 || h.base_offset > i64::MAX - i64::from(i32::MAX) {
        return bad(format!("base offset {} out of range", h.base_offset));
    }
    let records_bytes = h.total_len().saturating_sub(HEADER_LEN);
    if h.compression() == 0 && h.records_count as usize > records_bytes / MIN_RECORD_BYTES {
        return bad(format!(
            "{} records cannot fit in {records_bytes} bytes",
            h.records_count
        ));
    }
    Ok(())
}

/// Decompresses a batch's records and bounds the record count by what the
/// plain bytes can hold, before the crate reserves room for that many.
fn decompress(data: &mut Bytes, c: Compression, count: usize) -> anyhow::Result<Bytes> {
    let take = |b: &mut Bytes| Ok(std::mem::take(b));
    let plain = match c {
        Compression::None => std::mem::take(data),
        Compression::Gzip => cmpr::Gzip::decompress(data, take)?,
        Compression::Snappy => cmpr::Snappy::decompress(data, take)?,
        Compression::Lz4 => cmpr::Lz4::decompress(data, take)?,
        Compression::Zstd => cmpr::Zstd::decompress(data, take)?,
    };
    anyhow::ensure!(
        count <= plain.len() / MIN_RECORD_BYTES,
        "{count} records cannot fit in {} decompressed bytes",
        plain.len()
    );
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn raw_batch(records: &[Record], compression: Compression) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    fn record(offset: i64, key: &[u8], value: Option<&[u8]>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 5,
            key: Some(Bytes::copy_from_slice(key)),
            value: value.map(Bytes::copy_from_slice),
            headers: Default::default(),
        }
    }

    #[test]
    fn decode_skips_control_batches_and_reads_compressed_ones() {
        let mut log = BytesMut::new();
        log.extend_from_slice(&raw_batch(
            &[record(10, b"a", Some(b"1"))],
            Compression::None,
        ));
        let marker = Record {
            transactional: true,
            control: true,
            producer_id: 7,
            producer_epoch: 0,
            sequence: -1,
            ..record(11, &[0, 0, 0, 0], Some(&[0, 0, 0, 0, 0, 0]))
        };
        log.extend_from_slice(&raw_batch(&[marker], Compression::None));
        for (i, c) in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .enumerate()
        {
            let base = 12 + 2 * i as i64;
            let recs = [
                Record {
                    sequence: -1,
                    ..record(base, b"b", Some(&[7u8; 100]))
                },
                Record {
                    sequence: 0,
                    ..record(base + 1, b"c", None)
                },
            ];
            log.extend_from_slice(&raw_batch(&recs, c));
        }
        let mut buf = log.freeze();
        let decoded = decode_records(&mut buf).unwrap();
        let offsets: Vec<i64> = decoded.iter().map(|r| r.0).collect();
        assert_eq!(offsets, vec![10, 12, 13, 14, 15, 16, 17, 18, 19]);
        assert_eq!(decoded[1].2.as_deref(), Some(&[7u8; 100][..]));
        assert_eq!(decoded[2].1.as_deref(), Some(&b"c"[..]));
        assert_eq!(decoded[2].2, None);
        assert!(buf.is_empty());
    }

    #[test]
    fn decode_leaves_a_partial_trailing_batch() {
        let one = encode_batch(&[(b"k".to_vec(), Some(b"v".to_vec()))], 1);
        let mut log = BytesMut::new();
        log.extend_from_slice(&one);
        log.extend_from_slice(&one[..one.len() - 1]);
        let mut buf = log.freeze();
        assert_eq!(decode_records(&mut buf).unwrap().len(), 1);
        assert_eq!(buf.len(), one.len() - 1);
        let mut tiny = Bytes::from_static(&[0, 0, 0]);
        assert!(decode_records(&mut tiny).unwrap().is_empty());
        assert_eq!(tiny.len(), 3);
    }

    #[test]
    fn decode_rejects_corrupt_batches_without_moving_past_them() {
        let good = encode_batch(&[(b"k".to_vec(), Some(b"v".to_vec()))], 1);
        // Flip a byte inside the CRC-covered part.
        let mut corrupt = good.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let mut log = BytesMut::new();
        log.extend_from_slice(&good);
        log.extend_from_slice(&corrupt);
        let mut buf = log.freeze();
        assert!(matches!(
            decode_records(&mut buf),
            Err(RecordError::Batch(_))
        ));
        assert_eq!(&buf[..], &corrupt[..]);

        // Batch length below the header size.
        let mut short = good.to_vec();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(decode_records(&mut Bytes::from(short)).is_err());
        // Wrong magic.
        let mut magic = good.to_vec();
        magic[16] = 1;
        assert!(decode_records(&mut Bytes::from(magic)).is_err());
    }

    /// A batch whose record count is huge but whose CRC is valid must be an
    /// error, not an attempt to reserve room for two billion records.
    #[test]
    fn decode_bounds_the_record_count() {
        for compression in [Compression::None, Compression::Gzip] {
            let batch = raw_batch(&[record(0, b"k", Some(b"v"))], compression);
            let mut bytes = batch.to_vec();
            bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
            let crc = crc32c::crc32c(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            let err = decode_records(&mut Bytes::from(bytes)).unwrap_err();
            assert!(
                err.to_string().contains("cannot fit"),
                "{compression:?}: {err}"
            );
        }
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = RecordKey::decode(&bytes);
            let _ = OffsetValue::decode(&bytes);
            let _ = GroupValue::decode(&bytes);
            let _ = decode_records(&mut Bytes::from(bytes));
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

        /// Corrupt records inside a batch with a valid CRC.
        #[test]
        fn batch_decoder_never_panics_on_valid_crc(
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
            count in 0i32..8,
        ) {
            let mut bytes = encode_batch(&[(b"k".to_vec(), Some(b"v".to_vec()))], 1).to_vec();
            bytes.truncate(HEADER_LEN);
            bytes.extend_from_slice(&garbage);
            let len = (bytes.len() - LOG_OVERHEAD) as i32;
            bytes[8..12].copy_from_slice(&len.to_be_bytes());
            bytes[57..61].copy_from_slice(&count.to_be_bytes());
            let crc = crc32c::crc32c(&bytes[21..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            let _ = decode_records(&mut Bytes::from(bytes));
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
