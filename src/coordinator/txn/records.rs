//! The records the transaction coordinator keeps in `__transaction_state`, in
//! Kafka's byte layout, written from Kafka's message schemas
//! `TransactionLogKey` and `TransactionLogValue`
//! (`transaction-coordinator/src/main/resources/common/message/` in
//! apache/kafka 4.x; `core/src/main/resources/common/message/` in 3.x).
//!
//! A key is `int16 key version` (0, the only one; Kafka 4 calls it the
//! coordinator record type `TRANSACTION_LOG`) followed by the transactional
//! id as an int16-length string. Keys are never flexible.
//!
//! A value is `int16 value version` followed by the value fields. Version 0
//! is plain: int16-length strings and int32-length arrays (-1 for null).
//! Version 1 (`flexibleVersions: 1+`) uses compact strings and arrays
//! (unsigned-varint length + 1, 0 for null), ends every struct with a tagged
//! field section, and carries three tagged fields in the value's section:
//! tag 0 `PreviousProducerId` (int64, default -1), tag 1 `NextProducerId`
//! (int64, default -1) and tag 2 `ClientTransactionVersion` (int16,
//! default 0). A tagged field is written only when it differs from its
//! default, in tag order; unknown tags are skipped when read.
//!
//! What is written, as Kafka 4.x writes it (`TransactionLog.valueToBytes`
//! with `TransactionVersion.transactionLogValueVersion()`, which is 1 from
//! `transaction.version` 1, and a 4.x cluster bootstraps at 2): value
//! version 1. Versions 0 and 1 are decoded.
//!
//! Kafka writes a null partition array for `Empty` transactions and an array
//! (possibly empty) for every other state. So does [`TxnValue::encode`]; an
//! `Empty` value that still lists partitions (Kafka refuses to write one)
//! keeps them as an array rather than losing them. A null array decodes as
//! no partitions, whatever the state.
//!
//! The primitives are the group coordinator's ([`crate::coordinator::group::records`]);
//! every decoder is total over arbitrary bytes: malformed input is an error,
//! never a panic. Trailing bytes after a record's last field are ignored.

use crate::coordinator::codec::{check_version, Reader, RecordError, Writer};

/// The only `TransactionLogKey` version (record type).
pub const TXN_KEY_VERSION: i16 = 0;
/// `TransactionLogValue` version written.
pub const TXN_VALUE_VERSION: i16 = 1;
/// Highest `TransactionLogValue` version decoded.
pub const MAX_TXN_VALUE_VERSION: i16 = 1;
/// `"flexibleVersions": "1+"`.
const FIRST_FLEXIBLE_VALUE_VERSION: i16 = 1;
/// Producer id meaning "none" (`RecordBatch.NO_PRODUCER_ID`), the default of
/// both tagged producer-id fields.
pub const NO_PRODUCER_ID: i64 = -1;
/// Default of the tagged `ClientTransactionVersion`.
pub const DEFAULT_CLIENT_TRANSACTION_VERSION: i16 = 0;

const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

/// Smallest encoded `PartitionsSchema`: a v1 empty topic, empty id array and
/// empty tagged section, one byte each (v0 takes at least 6).
const MIN_PARTITIONS_BYTES: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnRecordError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("TransactionLogValue.transactionStatus: unknown transaction state id {0}")]
    UnknownStatus(i8),
}

type Result<T> = std::result::Result<T, TxnRecordError>;

/// TransactionLogKey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnKey {
    pub transactional_id: String,
}

impl TxnKey {
    /// Version 0. A transactional id longer than
    /// [`crate::coordinator::codec::MAX_STRING_BYTES`] is cut at a
    /// character boundary (Kafka refuses to write it; reject it before).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(false);
        w.i16(TXN_KEY_VERSION);
        w.string("TransactionLogKey.transactionalId", &self.transactional_id);
        w.buf
    }

    /// Ok(None) for key versions other than 0: the loader skips them, as
    /// Kafka's does.
    pub fn decode(buf: &[u8]) -> std::result::Result<Option<TxnKey>, RecordError> {
        let mut r = Reader::new(buf, false);
        match r.i16("TransactionLogKey version")? {
            TXN_KEY_VERSION => Ok(Some(TxnKey {
                transactional_id: r.string("TransactionLogKey.transactionalId")?,
            })),
            _ => Ok(None),
        }
    }
}

/// Kafka's `TransactionState`, stored as its int8 id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnStatus {
    pub const ALL: [TxnStatus; 8] = [
        TxnStatus::Empty,
        TxnStatus::Ongoing,
        TxnStatus::PrepareCommit,
        TxnStatus::PrepareAbort,
        TxnStatus::CompleteCommit,
        TxnStatus::CompleteAbort,
        TxnStatus::Dead,
        TxnStatus::PrepareEpochFence,
    ];

    /// The id stored in `TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            TxnStatus::Empty => 0,
            TxnStatus::Ongoing => 1,
            TxnStatus::PrepareCommit => 2,
            TxnStatus::PrepareAbort => 3,
            TxnStatus::CompleteCommit => 4,
            TxnStatus::CompleteAbort => 5,
            TxnStatus::Dead => 6,
            TxnStatus::PrepareEpochFence => 7,
        }
    }

    /// The state for a stored id; unknown ids are an error.
    pub fn from_id(id: i8) -> Result<TxnStatus> {
        usize::try_from(id)
            .ok()
            .and_then(|i| TxnStatus::ALL.get(i).copied())
            .ok_or(TxnRecordError::UnknownStatus(id))
    }

    /// Kafka's name for the state (what DescribeTransactions and
    /// ListTransactions report).
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
            TxnStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

impl TryFrom<i8> for TxnStatus {
    type Error = TxnRecordError;

    fn try_from(id: i8) -> Result<TxnStatus> {
        TxnStatus::from_id(id)
    }
}

impl From<TxnStatus> for i8 {
    fn from(s: TxnStatus) -> i8 {
        s.id()
    }
}

/// TransactionLogValue.PartitionsSchema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// TransactionLogValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    /// Tag 0 in v1; [`NO_PRODUCER_ID`] when absent or decoded from v0.
    pub previous_producer_id: i64,
    /// Tag 1 in v1; [`NO_PRODUCER_ID`] when absent or decoded from v0.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// `TransactionTimeoutMs`.
    pub timeout_ms: i32,
    pub status: TxnStatus,
    pub partitions: Vec<TxnPartitions>,
    /// `TransactionLastUpdateTimestampMs`.
    pub last_update_timestamp: i64,
    /// `TransactionStartTimestampMs`.
    pub start_timestamp: i64,
    /// Tag 2 in v1 (the client's `transaction.version` feature level);
    /// [`DEFAULT_CLIENT_TRANSACTION_VERSION`] when absent or decoded from v0.
    pub client_transaction_version: i16,
}

impl TxnValue {
    /// Version 1, as Kafka 4.x writes it. Topic names longer than
    /// [`crate::coordinator::codec::MAX_STRING_BYTES`] are cut at a
    /// character boundary; [`TxnValue::encode_version`] refuses them instead.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(false);
        self.write(TXN_VALUE_VERSION, &mut w);
        w.buf
    }

    /// The value at an explicit version 0..=1. Version 0 leaves out the
    /// tagged fields (previous/next producer id, client transaction version).
    pub fn encode_version(&self, version: i16) -> Result<Vec<u8>> {
        check_version("TransactionLogValue", version, MAX_TXN_VALUE_VERSION)?;
        let mut w = Writer::new(false);
        self.write(version, &mut w);
        Ok(w.finish()?)
    }

    pub fn decode(buf: &[u8]) -> Result<TxnValue> {
        let mut r = Reader::new(buf, false);
        let version = r.i16("TransactionLogValue version")?;
        check_version("TransactionLogValue", version, MAX_TXN_VALUE_VERSION)?;
        r.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
        let producer_id = r.i64("TransactionLogValue.producerId")?;
        let producer_epoch = r.i16("TransactionLogValue.producerEpoch")?;
        let timeout_ms = r.i32("TransactionLogValue.transactionTimeoutMs")?;
        let [status] = r.fixed::<1>("TransactionLogValue.transactionStatus")?;
        let status = TxnStatus::from_id(status as i8)?;
        let partitions = match r.long_len("TransactionLogValue.transactionPartitions")? {
            None => Vec::new(),
            Some(count) => {
                // Never reserve more than the input could hold.
                let mut partitions =
                    Vec::with_capacity(count.min(r.remaining() / MIN_PARTITIONS_BYTES));
                for _ in 0..count {
                    partitions.push(TxnPartitions::read(&mut r)?);
                }
                partitions
            }
        };
        let last_update_timestamp =
            r.i64("TransactionLogValue.transactionLastUpdateTimestampMs")?;
        let start_timestamp = r.i64("TransactionLogValue.transactionStartTimestampMs")?;
        let mut value = TxnValue {
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch,
            timeout_ms,
            status,
            partitions,
            last_update_timestamp,
            start_timestamp,
            client_transaction_version: DEFAULT_CLIENT_TRANSACTION_VERSION,
        };
        if r.flexible {
            value.read_tagged_fields(&mut r)?;
        }
        Ok(value)
    }

    /// The value's tagged field section: the three known tags are read, any
    /// other tag is skipped.
    fn read_tagged_fields(&mut self, r: &mut Reader<'_>) -> Result<()> {
        const FIELD: &str = "TransactionLogValue tagged fields";
        let count = r.uvarint(FIELD)?;
        for _ in 0..count {
            let tag = r.uvarint(FIELD)?;
            let size = r.uvarint(FIELD)?;
            let data = r.take(size as usize, FIELD)?;
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => {
                    self.previous_producer_id =
                        i64::from_be_bytes(sized(data, "TransactionLogValue.previousProducerId")?);
                }
                TAG_NEXT_PRODUCER_ID => {
                    self.next_producer_id =
                        i64::from_be_bytes(sized(data, "TransactionLogValue.nextProducerId")?);
                }
                TAG_CLIENT_TRANSACTION_VERSION => {
                    self.client_transaction_version = i16::from_be_bytes(sized(
                        data,
                        "TransactionLogValue.clientTransactionVersion",
                    )?);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn write(&self, version: i16, w: &mut Writer) {
        w.i16(version);
        w.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
        w.i64(self.producer_id);
        w.i16(self.producer_epoch);
        w.i32(self.timeout_ms);
        w.buf.push(self.status.id() as u8);
        if self.status == TxnStatus::Empty && self.partitions.is_empty() {
            w.null(false);
        } else {
            w.array_len(
                "TransactionLogValue.transactionPartitions",
                self.partitions.len(),
            );
            for p in &self.partitions {
                p.write(w);
            }
        }
        w.i64(self.last_update_timestamp);
        w.i64(self.start_timestamp);
        if w.flexible {
            let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
            if self.previous_producer_id != NO_PRODUCER_ID {
                let bytes = self.previous_producer_id.to_be_bytes().to_vec();
                tagged.push((TAG_PREVIOUS_PRODUCER_ID, bytes));
            }
            if self.next_producer_id != NO_PRODUCER_ID {
                let bytes = self.next_producer_id.to_be_bytes().to_vec();
                tagged.push((TAG_NEXT_PRODUCER_ID, bytes));
            }
            if self.client_transaction_version != DEFAULT_CLIENT_TRANSACTION_VERSION {
                let bytes = self.client_transaction_version.to_be_bytes().to_vec();
                tagged.push((TAG_CLIENT_TRANSACTION_VERSION, bytes));
            }
            w.uvarint(tagged.len() as u32);
            for (tag, bytes) in tagged {
                w.uvarint(tag);
                w.uvarint(bytes.len() as u32);
                w.buf.extend_from_slice(&bytes);
            }
        }
    }
}

impl TxnPartitions {
    fn read(r: &mut Reader<'_>) -> Result<TxnPartitions> {
        let topic = r.string("PartitionsSchema.topic")?;
        let count = r.array_len("PartitionsSchema.partitionIds")?;
        let mut partitions = Vec::with_capacity(count.min(r.remaining() / 4));
        for _ in 0..count {
            partitions.push(r.i32("PartitionsSchema.partitionIds")?);
        }
        r.tagged_fields("PartitionsSchema tagged fields")?;
        Ok(TxnPartitions { topic, partitions })
    }

    fn write(&self, w: &mut Writer) {
        w.string("PartitionsSchema.topic", &self.topic);
        w.array_len("PartitionsSchema.partitionIds", self.partitions.len());
        for &p in &self.partitions {
            w.i32(p);
        }
        w.tagged_fields();
    }
}

/// A known tagged field's payload, which must be exactly its type's width.
fn sized<const N: usize>(data: &[u8], field: &'static str) -> Result<[u8; N]> {
    data.try_into().map_err(|_| {
        RecordError::InvalidLength {
            field,
            len: data.len() as i64,
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::codec::MAX_STRING_BYTES;
    use proptest::prelude::*;

    fn value(status: TxnStatus) -> TxnValue {
        TxnValue {
            producer_id: 1000,
            previous_producer_id: 999,
            next_producer_id: 1001,
            producer_epoch: 5,
            timeout_ms: 60_000,
            status,
            partitions: vec![
                TxnPartitions {
                    topic: "orders".into(),
                    partitions: vec![0, 3, 7],
                },
                TxnPartitions {
                    topic: "payments".into(),
                    partitions: vec![],
                },
            ],
            last_update_timestamp: 1_700_000_000_000,
            start_timestamp: 1_699_999_999_000,
            client_transaction_version: 2,
        }
    }

    /// What `v` can carry of `t`: the tagged fields v0 lacks take the values
    /// the decoder fills in.
    fn as_of(t: &TxnValue, v: i16) -> TxnValue {
        let mut t = t.clone();
        if v < 1 {
            t.previous_producer_id = NO_PRODUCER_ID;
            t.next_producer_id = NO_PRODUCER_ID;
            t.client_transaction_version = DEFAULT_CLIENT_TRANSACTION_VERSION;
        }
        t
    }

    fn truncated(err: Option<TxnRecordError>) -> bool {
        matches!(err, Some(TxnRecordError::Record(RecordError::Truncated(_))))
    }

    #[test]
    fn key_round_trips_and_golden_bytes() {
        let k = TxnKey {
            transactional_id: "tx".into(),
        };
        let bytes = k.encode();
        // int16 key version 0 | int16 length 2 | "tx"
        assert_eq!(bytes, [0, 0, 0, 2, b't', b'x']);
        assert_eq!(TxnKey::decode(&bytes).unwrap(), Some(k));
        let empty = TxnKey {
            transactional_id: String::new(),
        };
        assert_eq!(TxnKey::decode(&empty.encode()).unwrap(), Some(empty));
    }

    #[test]
    fn unknown_key_versions_are_skipped() {
        for v in [1i16, 2, 3, -1, i16::MAX] {
            let mut bytes = v.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0, 2, b't', b'x']);
            assert_eq!(TxnKey::decode(&bytes), Ok(None), "version {v}");
            // Even with nothing after the version.
            assert_eq!(TxnKey::decode(&v.to_be_bytes()), Ok(None));
        }
    }

    #[test]
    fn values_round_trip_every_version_and_status() {
        for status in TxnStatus::ALL {
            let with = value(status);
            let without = TxnValue {
                partitions: vec![],
                ..value(status)
            };
            for t in [with, without] {
                for v in 0..=MAX_TXN_VALUE_VERSION {
                    let bytes = t.encode_version(v).unwrap();
                    assert_eq!(&bytes[..2], &v.to_be_bytes());
                    assert_eq!(TxnValue::decode(&bytes).unwrap(), as_of(&t, v), "v{v}");
                }
                assert_eq!(t.encode(), t.encode_version(TXN_VALUE_VERSION).unwrap());
                assert_eq!(TxnValue::decode(&t.encode()).unwrap(), t);
            }
        }
    }

    fn golden() -> TxnValue {
        TxnValue {
            producer_id: 1000,
            previous_producer_id: 999,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: 5,
            timeout_ms: 60_000,
            status: TxnStatus::Ongoing,
            partitions: vec![TxnPartitions {
                topic: "t".into(),
                partitions: vec![0, 3],
            }],
            last_update_timestamp: 1_700_000_000_000, // 0x18B_CFE5_6800
            start_timestamp: 1_699_999_999_000,       // 0x18B_CFE5_6418
            client_transaction_version: 2,
        }
    }

    #[test]
    fn value_v1_golden_bytes() {
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x00, 0x01,                                     // value version 1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, // producerId 1000
            0x00, 0x05,                                     // producerEpoch 5
            0x00, 0x00, 0xea, 0x60,                         // transactionTimeoutMs 60000
            0x01,                                           // transactionStatus Ongoing
            0x02,                                           // compact array: 1 element
            0x02, b't',                                     //   compact string "t"
            0x03,                                           //   compact array: 2 ints
            0x00, 0x00, 0x00, 0x00,                         //     0
            0x00, 0x00, 0x00, 0x03,                         //     3
            0x00,                                           //   no tagged fields
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // lastUpdateTimestampMs
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x64, 0x18, // startTimestampMs
            0x02,                                           // 2 tagged fields (nextProducerId is default)
            0x00, 0x08,                                     //   tag 0, 8 bytes:
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe7, //     previousProducerId 999
            0x02, 0x02,                                     //   tag 2, 2 bytes:
            0x00, 0x02,                                     //     clientTransactionVersion 2
        ];
        assert_eq!(golden().encode(), expected);
        assert_eq!(TxnValue::decode(&expected).unwrap(), golden());
    }

    #[test]
    fn value_v0_golden_bytes() {
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x00, 0x00,                                     // value version 0
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, // producerId 1000
            0x00, 0x05,                                     // producerEpoch 5
            0x00, 0x00, 0xea, 0x60,                         // transactionTimeoutMs 60000
            0x01,                                           // transactionStatus Ongoing
            0x00, 0x00, 0x00, 0x01,                         // int32 array: 1 element
            0x00, 0x01, b't',                               //   int16 string "t"
            0x00, 0x00, 0x00, 0x02,                         //   int32 array: 2 ints
            0x00, 0x00, 0x00, 0x00,                         //     0
            0x00, 0x00, 0x00, 0x03,                         //     3
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // lastUpdateTimestampMs
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x64, 0x18, // startTimestampMs
        ];
        assert_eq!(golden().encode_version(0).unwrap(), expected);
        assert_eq!(TxnValue::decode(&expected).unwrap(), as_of(&golden(), 0));
    }

    #[test]
    fn empty_transactions_write_null_partitions_and_defaults_no_tags() {
        let t = TxnValue {
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            client_transaction_version: DEFAULT_CLIENT_TRANSACTION_VERSION,
            partitions: vec![],
            ..value(TxnStatus::Empty)
        };
        // version, producer id, epoch, timeout, status: 17 bytes.
        let v1 = t.encode();
        assert_eq!(v1[17], 0, "compact null array");
        assert_eq!(v1.len(), 17 + 1 + 8 + 8 + 1);
        assert_eq!(*v1.last().unwrap(), 0, "no tagged fields");
        let v0 = t.encode_version(0).unwrap();
        assert_eq!(&v0[17..21], &[0xff; 4], "int32 null array");
        assert_eq!(v0.len(), 17 + 4 + 8 + 8);
        // Other states write an empty array, not null.
        let ongoing = TxnValue {
            status: TxnStatus::Ongoing,
            ..t.clone()
        };
        assert_eq!(ongoing.encode()[17], 1, "compact empty array");
        assert_eq!(&ongoing.encode_version(0).unwrap()[17..21], &[0; 4]);
        // A null array decodes as no partitions whatever the state.
        let mut null_ongoing = v1.clone();
        null_ongoing[16] = TxnStatus::Ongoing.id() as u8;
        assert_eq!(TxnValue::decode(&null_ongoing).unwrap(), ongoing);
        // An Empty value that lists partitions keeps them.
        let odd = value(TxnStatus::Empty);
        assert_eq!(TxnValue::decode(&odd.encode()).unwrap(), odd);
    }

    #[test]
    fn tagged_fields_unknown_skipped_known_checked() {
        let base = golden().encode();
        // Append tag 7 (3 bytes) to the value's section, in the middle of the
        // known ones, and tag 100 to the partition struct's section.
        let mut bytes = base.clone();
        let section = base.len() - 15;
        assert_eq!(bytes[section], 2);
        bytes[section] = 3;
        bytes.splice(section + 11..section + 11, [7, 3, 0xaa, 0xbb, 0xcc]);
        let part_section = 2 + 8 + 2 + 4 + 1 + 1 + 2 + 1 + 8;
        assert_eq!(bytes[part_section], 0);
        bytes.splice(part_section..part_section + 1, [1, 100, 1, 0xee]);
        assert_eq!(TxnValue::decode(&bytes).unwrap(), golden());

        // Tags in any order.
        let t = value(TxnStatus::Ongoing);
        let mut bytes = t.encode();
        let n = bytes.len();
        // Last 25 bytes: 03 | 00 08 <8> | 01 08 <8> | 02 02 <2>.
        assert_eq!(bytes[n - 25], 3);
        let (tag0, tag1, tag2) = (
            bytes[n - 24..n - 14].to_vec(),
            bytes[n - 14..n - 4].to_vec(),
            bytes[n - 4..].to_vec(),
        );
        assert_eq!((tag0[0], tag1[0], tag2[0]), (0, 1, 2));
        bytes.truncate(n - 24);
        bytes.extend(tag2.iter().chain(&tag0).chain(&tag1));
        assert_eq!(TxnValue::decode(&bytes).unwrap(), t);

        // A known tag whose size is not its type's width.
        let mut bad = base.clone();
        let at = base.len() - 4; // tag 2, size 2, 00 02
        bad.splice(at..at + 4, [2, 4, 0, 0, 0, 2]);
        assert_eq!(
            TxnValue::decode(&bad),
            Err(TxnRecordError::Record(RecordError::InvalidLength {
                field: "TransactionLogValue.clientTransactionVersion",
                len: 4,
            }))
        );
    }

    #[test]
    fn status_ids_match_kafka() {
        let ids: Vec<i8> = TxnStatus::ALL.iter().map(|s| s.id()).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7]);
        for s in TxnStatus::ALL {
            assert_eq!(TxnStatus::try_from(s.id()), Ok(s));
            assert_eq!(i8::from(s), s.id());
        }
        assert_eq!(TxnStatus::PrepareEpochFence.name(), "PrepareEpochFence");
        for id in [8i8, 9, 127, -1, -128] {
            assert_eq!(
                TxnStatus::try_from(id),
                Err(TxnRecordError::UnknownStatus(id))
            );
        }
    }

    #[test]
    fn unknown_status_byte_is_an_error() {
        for v in [0, 1] {
            let mut bytes = golden().encode_version(v).unwrap();
            assert_eq!(bytes[16], 1);
            for id in [8u8, 0x7f, 0xff] {
                bytes[16] = id;
                assert_eq!(
                    TxnValue::decode(&bytes),
                    Err(TxnRecordError::UnknownStatus(id as i8)),
                    "v{v} status {id}"
                );
            }
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        let key = TxnKey {
            transactional_id: "my-txn".into(),
        }
        .encode();
        for cut in 0..key.len() {
            assert!(
                matches!(TxnKey::decode(&key[..cut]), Err(RecordError::Truncated(_))),
                "key cut at {cut}"
            );
        }
        for v in [0, 1] {
            let bytes = value(TxnStatus::PrepareCommit).encode_version(v).unwrap();
            for cut in 0..bytes.len() {
                let err = TxnValue::decode(&bytes[..cut]).err();
                assert!(truncated(err.clone()), "v{v} cut at {cut}: {err:?}");
            }
        }
    }

    #[test]
    fn malformed_values_are_errors() {
        // Value versions out of range.
        for v in [-1i16, 2, i16::MAX] {
            let mut bytes = golden().encode();
            bytes[..2].copy_from_slice(&v.to_be_bytes());
            assert_eq!(
                TxnValue::decode(&bytes),
                Err(TxnRecordError::Record(RecordError::UnsupportedVersion {
                    record: "TransactionLogValue",
                    version: v
                }))
            );
            assert!(golden().encode_version(v).is_err());
        }
        // Null partition ids (not nullable).
        let mut v0 = golden().encode_version(0).unwrap();
        v0[24..28].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            TxnValue::decode(&v0),
            Err(TxnRecordError::Record(RecordError::UnexpectedNull(
                "PartitionsSchema.partitionIds"
            )))
        );
        // Null topic.
        let mut v0 = golden().encode_version(0).unwrap();
        v0[21..23].copy_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(
            TxnValue::decode(&v0),
            Err(TxnRecordError::Record(RecordError::UnexpectedNull(
                "PartitionsSchema.topic"
            )))
        );
        // Counts far beyond the input: an error, no huge allocation.
        for at in [17, 24] {
            let mut v0 = golden().encode_version(0).unwrap();
            v0[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
            assert!(truncated(TxnValue::decode(&v0).err()), "count at {at}");
        }
        // Compact string longer than Kafka allows (length 32769).
        let mut v1 = golden().encode();
        v1.splice(18..19, [0x82, 0x80, 0x02]);
        assert!(matches!(
            TxnValue::decode(&v1),
            Err(TxnRecordError::Record(RecordError::InvalidLength {
                len: 32769,
                ..
            }))
        ));
        // A varint longer than five bytes in the tagged section.
        let mut v1 = golden().encode();
        let n = v1.len();
        v1.splice(n - 15.., [0xff; 6]);
        assert!(matches!(
            TxnValue::decode(&v1),
            Err(TxnRecordError::Record(RecordError::BadVarint(_)))
        ));
    }

    #[test]
    fn over_long_topic() {
        let t = TxnValue {
            partitions: vec![TxnPartitions {
                topic: "é".repeat(MAX_STRING_BYTES),
                partitions: vec![1],
            }],
            ..golden()
        };
        for v in [0, 1] {
            assert!(matches!(
                t.encode_version(v),
                Err(TxnRecordError::Record(RecordError::TooLong {
                    field: "PartitionsSchema.topic",
                    ..
                }))
            ));
        }
        // encode() never panics: it cuts at a character boundary.
        let decoded = TxnValue::decode(&t.encode()).unwrap();
        assert_eq!(decoded.partitions[0].topic.len(), MAX_STRING_BYTES - 1);
        assert_eq!(decoded.partitions[0].partitions, [1]);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = TxnKey::decode(&bytes);
            let _ = TxnValue::decode(&bytes);
        }

        /// Random bodies behind every valid version prefix, so the decoders
        /// get past the version check.
        #[test]
        fn decoders_never_panic_past_the_version(
            version in 0i16..=1,
            body in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut bytes = version.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            let _ = TxnKey::decode(&bytes);
            let _ = TxnValue::decode(&bytes);
        }

        #[test]
        fn values_round_trip(
            ids in (any::<i64>(), any::<i64>(), any::<i64>()),
            epoch in any::<i16>(),
            timeout in any::<i32>(),
            status in 0i8..8,
            parts in proptest::collection::vec((".{0,8}", proptest::collection::vec(any::<i32>(), 0..5)), 0..4),
            times in (any::<i64>(), any::<i64>()),
            client_version in any::<i16>(),
            version in 0i16..=1,
        ) {
            let t = TxnValue {
                producer_id: ids.0,
                previous_producer_id: ids.1,
                next_producer_id: ids.2,
                producer_epoch: epoch,
                timeout_ms: timeout,
                status: TxnStatus::from_id(status).unwrap(),
                partitions: parts
                    .into_iter()
                    .map(|(topic, partitions)| TxnPartitions { topic, partitions })
                    .collect(),
                last_update_timestamp: times.0,
                start_timestamp: times.1,
                client_transaction_version: client_version,
            };
            let bytes = t.encode_version(version).unwrap();
            prop_assert_eq!(TxnValue::decode(&bytes).unwrap(), as_of(&t, version));
        }
    }
}
