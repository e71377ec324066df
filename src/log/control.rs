//! Transaction markers: the COMMIT/ABORT control batch that ends a
//! transaction in each partition it touched (Kafka's `EndTransactionMarker`,
//! written by `MemoryRecords.withEndTransactionMarker`).
//!
//! A marker is an ordinary v2 record batch (layout in [`super::batch`]) with:
//!
//! * attributes = transactional (0x10) | control (0x20), no compression,
//!   CreateTime;
//! * the producer id and epoch of the transaction, baseSequence -1;
//! * lastOffsetDelta 0, baseTimestamp = maxTimestamp = the marker's time;
//! * exactly one record, with no headers, whose
//!   - key is the control record key: `version: i16 = 0, type: i16`
//!     (ABORT = 0, COMMIT = 1; Kafka also has KRaft-only types 2..=6, which
//!     are not transaction markers);
//!   - value is the end-transaction marker: `version: i16 = 0,
//!     coordinator_epoch: i32`.
//!
//! For a single record of this shape the records section is 17 bytes, so a
//! marker batch is always 61 + 17 = 78 bytes long.
//!
//! Note for the append path: `validate_produce_batch` (used by
//! `append_as_leader`) refuses control batches, as Kafka refuses them from
//! clients. Markers written by the transaction coordinator go through
//! `PartitionLog::append_marker`, which encodes them with [`encode_marker`];
//! recovery reads them back with [`decode_marker`].

use super::batch::{BatchError, BatchHeader, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, NO_SEQUENCE};
use super::reader::Reader;

/// Attribute bits of every marker batch: transactional | control.
const MARKER_ATTRIBUTES: i16 = 0x10 | 0x20;
/// Kafka's `RecordBatch.NO_PARTITION_LEADER_EPOCH`; the log stamps the real
/// leader epoch when it appends.
const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Version written in the control record key and in the marker value.
const CURRENT_VERSION: i16 = 0;
/// Minimum control key size: version + type.
const CONTROL_KEY_LEN: usize = 4;
/// Minimum marker value size: version + coordinator epoch.
const MARKER_VALUE_LEN: usize = 6;
/// Start of the CRC-covered region (the attributes field) and the position
/// of the stored CRC.
use super::batch::{ATTRIBUTES_OFFSET as CRC_START, CRC_OFFSET as CRC_AT};

const ABORT_TYPE: i16 = 0;
const COMMIT_TYPE: i16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerType {
    Abort,
    Commit,
}

impl MarkerType {
    /// The control record type id written in the record key.
    pub fn type_id(self) -> i16 {
        match self {
            MarkerType::Abort => ABORT_TYPE,
            MarkerType::Commit => COMMIT_TYPE,
        }
    }

    /// `None` for anything but ABORT (0) and COMMIT (1).
    pub fn from_type_id(id: i16) -> Option<MarkerType> {
        match id {
            ABORT_TYPE => Some(MarkerType::Abort),
            COMMIT_TYPE => Some(MarkerType::Commit),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub kind: MarkerType,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
}

/// Why bytes are not a transaction marker batch.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// Truncated, bad or inconsistent length, wrong magic, CRC mismatch.
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("record batch is not a control batch")]
    NotControl,
    #[error("control batch is not transactional")]
    NotTransactional,
    /// Kafka writes markers uncompressed; compressed ones are not accepted.
    #[error("control batch is compressed (codec {0})")]
    Compressed(u8),
    /// A marker batch holds exactly one record at offset delta 0.
    #[error("control batch has {records_count} records, lastOffsetDelta {last_offset_delta}; expected 1 and 0")]
    RecordCount {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// The record inside the batch does not parse or does not fill the batch.
    #[error("malformed control record: {0}")]
    MalformedRecord(&'static str),
    #[error("control record key version {0} is invalid")]
    KeyVersion(i16),
    #[error("control record type {0} is not a transaction marker")]
    UnknownType(i16),
    #[error("end transaction marker version {0} is invalid")]
    ValueVersion(i16),
}

/// Appends Kafka's zigzag varint encoding of `v` (fits every i32 and i64).
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    // Zigzag: the sign goes to bit 0, so small magnitudes take few bytes.
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push(((z as u8) & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Encodes `marker` as a whole control batch with base offset 0, CreateTime
/// `timestamp_ms`, no partition leader epoch (-1), and a valid CRC-32C.
pub fn encode_marker(marker: &Marker, timestamp_ms: i64) -> Vec<u8> {
    // Record body: attributes, timestampDelta, offsetDelta, key, value, headers.
    let mut record = Vec::with_capacity(16);
    record.push(0); // record attributes (unused)
    put_varint(&mut record, 0); // timestampDelta
    put_varint(&mut record, 0); // offsetDelta
    put_varint(&mut record, CONTROL_KEY_LEN as i64);
    record.extend_from_slice(&CURRENT_VERSION.to_be_bytes());
    record.extend_from_slice(&marker.kind.type_id().to_be_bytes());
    put_varint(&mut record, MARKER_VALUE_LEN as i64);
    record.extend_from_slice(&CURRENT_VERSION.to_be_bytes());
    record.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    put_varint(&mut record, 0); // header count

    let mut records = Vec::with_capacity(record.len() + 1);
    put_varint(&mut records, record.len() as i64);
    records.extend_from_slice(&record);

    let total = HEADER_LEN + records.len();
    // At most a few dozen bytes, so the conversion cannot fail.
    let batch_length = i32::try_from(total - LOG_OVERHEAD).unwrap_or(i32::MAX);
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    b.extend_from_slice(&batch_length.to_be_bytes());
    b.extend_from_slice(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
    b.extend_from_slice(&MAGIC_V2.to_be_bytes());
    b.extend_from_slice(&[0; 4]); // CRC, filled in below
    b.extend_from_slice(&MARKER_ATTRIBUTES.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
    b.extend_from_slice(&timestamp_ms.to_be_bytes()); // baseTimestamp
    b.extend_from_slice(&timestamp_ms.to_be_bytes()); // maxTimestamp
    b.extend_from_slice(&marker.producer_id.to_be_bytes());
    b.extend_from_slice(&marker.producer_epoch.to_be_bytes());
    b.extend_from_slice(&NO_SEQUENCE.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // recordsCount
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Reads Kafka's zigzag varint of at most `max_bytes` bytes (5 for varint,
/// 10 for varlong).
fn read_varint(r: &mut Reader<'_>, max_bytes: u32) -> Option<i64> {
    let mut z: u64 = 0;
    for i in 0..max_bytes {
        let (&byte, rest) = r.0.split_first()?;
        r.0 = rest;
        z |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    None
}

/// Reads a varint length followed by that many bytes; `None` for a negative
/// (null) length or a short buffer.
fn read_sized<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let len = usize::try_from(read_varint(r, 5)?).ok()?;
    let (head, rest) = r.0.split_at_checked(len)?;
    r.0 = rest;
    Some(head)
}

/// Parses the single record of a marker batch (the records section, which it
/// must fill exactly) into its key and value.
fn parse_record(section: &[u8]) -> Result<(&[u8], &[u8]), ControlError> {
    use ControlError::MalformedRecord as Bad;
    let mut r = Reader(section);
    let len = read_varint(&mut r, 5).ok_or(Bad("bad record length"))?;
    if usize::try_from(len).ok() != Some(r.0.len()) {
        return Err(Bad("record length does not match the batch"));
    }
    r.i8().ok_or(Bad("truncated attributes"))?;
    read_varint(&mut r, 10).ok_or(Bad("bad timestamp delta"))?;
    if read_varint(&mut r, 5).ok_or(Bad("bad offset delta"))? != 0 {
        return Err(Bad("offset delta is not 0"));
    }
    let key = read_sized(&mut r).ok_or(Bad("bad key"))?;
    let value = read_sized(&mut r).ok_or(Bad("bad value"))?;
    if read_varint(&mut r, 5).ok_or(Bad("bad header count"))? != 0 {
        return Err(Bad("marker records carry no headers"));
    }
    if !r.0.is_empty() {
        return Err(Bad("bytes after the record"));
    }
    Ok((key, value))
}

/// Decodes a whole control batch (exactly one batch, nothing after it) into
/// its transaction marker. Never panics.
///
/// As Kafka's `ControlRecordType.parse` / `EndTransactionMarker` do, key and
/// value versions above 0 are read as version 0 (extra bytes ignored), and
/// negative versions are rejected.
pub fn decode_marker(batch: &[u8]) -> Result<Marker, ControlError> {
    if let Some(&magic) = batch.get(16) {
        let magic = i8::from_be_bytes([magic]);
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic).into());
        }
    }
    let header = BatchHeader::parse(batch)?;
    let total = header.total_len();
    if total < HEADER_LEN {
        return Err(BatchError::BadLength.into());
    }
    if batch.len() < total {
        return Err(BatchError::Truncated.into());
    }
    if batch.len() > total {
        return Err(BatchError::BadLength.into());
    }
    let computed = crc32c::crc32c(&batch[CRC_START..]);
    if computed != header.crc {
        return Err(BatchError::CorruptCrc {
            stored: header.crc,
            computed,
        }
        .into());
    }
    if !header.is_control() {
        return Err(ControlError::NotControl);
    }
    if !header.is_transactional() {
        return Err(ControlError::NotTransactional);
    }
    if header.compression() != 0 {
        return Err(ControlError::Compressed(header.compression()));
    }
    if header.records_count != 1 || header.last_offset_delta != 0 {
        return Err(ControlError::RecordCount {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let (key, value) = parse_record(&batch[HEADER_LEN..])?;

    if key.len() < CONTROL_KEY_LEN {
        return Err(ControlError::MalformedRecord("control key too short"));
    }
    let mut k = Reader(key);
    let (key_version, type_id) = (k.i16(), k.i16());
    let (Some(key_version), Some(type_id)) = (key_version, type_id) else {
        return Err(ControlError::MalformedRecord("control key too short"));
    };
    if key_version < 0 {
        return Err(ControlError::KeyVersion(key_version));
    }
    let kind = MarkerType::from_type_id(type_id).ok_or(ControlError::UnknownType(type_id))?;

    let mut v = Reader(value);
    let (value_version, coordinator_epoch) = (v.i16(), v.i32());
    let (Some(value_version), Some(coordinator_epoch)) = (value_version, coordinator_epoch) else {
        return Err(ControlError::MalformedRecord("marker value too short"));
    };
    if value_version < 0 {
        return Err(ControlError::ValueVersion(value_version));
    }
    Ok(Marker {
        kind,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        coordinator_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};
    use proptest::prelude::*;

    const TS: i64 = 1_700_000_000_123;
    const KEY_AT: usize = 66;
    const VALUE_AT: usize = 71;

    fn marker(kind: MarkerType) -> Marker {
        Marker {
            kind,
            producer_id: 4242,
            producer_epoch: 7,
            coordinator_epoch: 5,
        }
    }

    fn fix_crc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// `marker` encoded, with `bytes` written at `at` and the CRC recomputed.
    fn patched(m: &Marker, at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut b = encode_marker(m, TS);
        b[at..at + bytes.len()].copy_from_slice(bytes);
        fix_crc(&mut b);
        b
    }

    /// The record kafka-protocol would build for the same marker.
    fn crate_record(m: &Marker, transactional: bool, control: bool) -> Record {
        let mut key = Vec::new();
        key.extend_from_slice(&0i16.to_be_bytes());
        key.extend_from_slice(&m.kind.type_id().to_be_bytes());
        let mut value = Vec::new();
        value.extend_from_slice(&0i16.to_be_bytes());
        value.extend_from_slice(&m.coordinator_epoch.to_be_bytes());
        Record {
            transactional,
            control,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: TS,
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from(value)),
            headers: Default::default(),
        }
    }

    /// kafka-protocol's own encoding of a batch.
    fn crate_encode(records: &[Record], compression: Compression) -> Vec<u8> {
        crate::coordinator::codec::tests::raw_batch(records, compression).to_vec()
    }

    #[test]
    fn round_trip_both_types() {
        for kind in [MarkerType::Abort, MarkerType::Commit] {
            for (pid, pepoch, cepoch) in [
                (0, 0, 0),
                (4242, 7, 5),
                (i64::MAX, i16::MAX, i32::MAX),
                (1, -1, -1),
            ] {
                let m = Marker {
                    kind,
                    producer_id: pid,
                    producer_epoch: pepoch,
                    coordinator_epoch: cepoch,
                };
                let b = encode_marker(&m, TS);
                assert_eq!(b.len(), 78);
                assert_eq!(decode_marker(&b), Ok(m));
            }
        }
    }

    #[test]
    fn encoded_header_is_a_valid_transactional_control_batch() {
        for kind in [MarkerType::Abort, MarkerType::Commit] {
            let b = encode_marker(&marker(kind), TS);
            let h = BatchHeader::parse(&b).unwrap();
            assert_eq!(h.base_offset, 0);
            assert_eq!(h.total_len(), b.len());
            assert_eq!(h.batch_length, 66);
            assert_eq!(h.partition_leader_epoch, -1);
            assert_eq!(h.magic, 2);
            assert_eq!(h.attributes, 0x30);
            assert!(h.is_control());
            assert!(h.is_transactional());
            assert!(!h.is_log_append_time());
            assert_eq!(h.compression(), 0);
            assert_eq!(h.last_offset_delta, 0);
            assert_eq!(h.base_timestamp, TS);
            assert_eq!(h.max_timestamp, TS);
            assert_eq!(h.producer_id, 4242);
            assert_eq!(h.producer_epoch, 7);
            assert_eq!(h.base_sequence, -1);
            assert_eq!(h.records_count, 1);
            assert_eq!(h.crc, crc32c::crc32c(&b[21..]));
        }
    }

    #[test]
    fn kafka_protocol_decoder_reads_the_marker() {
        for kind in [MarkerType::Abort, MarkerType::Commit] {
            let m = marker(kind);
            let b = encode_marker(&m, TS);
            let mut buf = Bytes::from(b.clone());
            // The decoder verifies the CRC-32C.
            let set = RecordBatchDecoder::decode(&mut buf).unwrap();
            assert!(buf.is_empty());
            assert_eq!(set.compression, Compression::None);
            assert_eq!(set.version, 2);
            assert_eq!(set.records.len(), 1);
            let r = &set.records[0];
            assert!(r.control);
            assert!(r.transactional);
            assert_eq!(r.producer_id, 4242);
            assert_eq!(r.producer_epoch, 7);
            assert_eq!(r.offset, 0);
            assert_eq!(r.sequence, -1);
            assert_eq!(r.timestamp, TS);
            assert_eq!(r.timestamp_type, TimestampType::Creation);
            assert!(r.headers.is_empty());
            assert_eq!(r, &crate_record(&m, true, true));
            // And the crate's encoder produces byte-identical output.
            assert_eq!(
                crate_encode(&[crate_record(&m, true, true)], Compression::None),
                b
            );
        }
    }

    #[test]
    fn golden_record_bytes() {
        // Records section of a COMMIT marker with coordinator epoch 5
        // (varints are zigzag: n is written as 2n):
        let commit: [u8; 17] = [
            0x20, // record length 16
            0x00, // record attributes
            0x00, // timestampDelta 0
            0x00, // offsetDelta 0
            0x08, // key length 4
            0x00, 0x00, // key version 0
            0x00, 0x01, // type COMMIT = 1
            0x0c, // value length 6
            0x00, 0x00, // value version 0
            0x00, 0x00, 0x00, 0x05, // coordinator epoch 5
            0x00, // header count 0
        ];
        let b = encode_marker(&marker(MarkerType::Commit), TS);
        assert_eq!(&b[HEADER_LEN..], &commit);
        // ABORT differs only in the type.
        let mut abort = commit;
        abort[8] = 0x00;
        let b = encode_marker(&marker(MarkerType::Abort), TS);
        assert_eq!(&b[HEADER_LEN..], &abort);
        assert_eq!(&b[KEY_AT..KEY_AT + 4], &[0, 0, 0, 0]);
        assert_eq!(&b[VALUE_AT..VALUE_AT + 6], &[0, 0, 0, 0, 0, 5]);

        // Fixed header bytes, CRC (17..21) excluded.
        let mut head = Vec::new();
        head.extend_from_slice(&[0; 8]); // baseOffset 0
        head.extend_from_slice(&[0, 0, 0, 66]); // batchLength
        head.extend_from_slice(&[0xff; 4]); // partitionLeaderEpoch -1
        head.push(2); // magic
        assert_eq!(&b[..17], &head[..]);
        let mut rest = Vec::new();
        rest.extend_from_slice(&[0x00, 0x30]); // attributes
        rest.extend_from_slice(&[0; 4]); // lastOffsetDelta
        rest.extend_from_slice(&TS.to_be_bytes());
        rest.extend_from_slice(&TS.to_be_bytes());
        rest.extend_from_slice(&4242i64.to_be_bytes());
        rest.extend_from_slice(&[0, 7]); // producerEpoch
        rest.extend_from_slice(&[0xff; 4]); // baseSequence -1
        rest.extend_from_slice(&[0, 0, 0, 1]); // recordsCount
        assert_eq!(&b[21..HEADER_LEN], &rest[..]);
    }

    #[test]
    fn rejects_a_normal_batch() {
        let m = marker(MarkerType::Commit);
        let plain = crate_encode(&[crate_record(&m, false, false)], Compression::None);
        assert_eq!(decode_marker(&plain), Err(ControlError::NotControl));
        let txn = crate_encode(&[crate_record(&m, true, false)], Compression::None);
        assert_eq!(decode_marker(&txn), Err(ControlError::NotControl));
        // Control but not transactional.
        let b = patched(&m, 21, &[0x00, 0x20]);
        assert_eq!(decode_marker(&b), Err(ControlError::NotTransactional));
        // Compressed control batch.
        let gz = crate_encode(&[crate_record(&m, true, true)], Compression::Gzip);
        assert_eq!(decode_marker(&gz), Err(ControlError::Compressed(1)));
    }

    #[test]
    fn rejects_truncation_at_every_length() {
        let b = encode_marker(&marker(MarkerType::Abort), TS);
        for n in 0..b.len() {
            assert!(decode_marker(&b[..n]).is_err(), "accepted {n} bytes");
        }
        // With the batchLength shrunk to match (and the CRC fixed), the
        // record itself is truncated.
        for n in HEADER_LEN..b.len() {
            let mut t = b[..n].to_vec();
            let len = i32::try_from(n - LOG_OVERHEAD).unwrap();
            t[8..12].copy_from_slice(&len.to_be_bytes());
            fix_crc(&mut t);
            assert!(decode_marker(&t).is_err(), "accepted record cut at {n}");
        }
    }

    #[test]
    fn rejects_unknown_types_and_bad_versions() {
        let m = marker(MarkerType::Commit);
        for ty in [2i16, 3, 6, 7, -1, i16::MAX] {
            let b = patched(&m, KEY_AT + 2, &ty.to_be_bytes());
            assert_eq!(decode_marker(&b), Err(ControlError::UnknownType(ty)));
        }
        let b = patched(&m, KEY_AT, &(-1i16).to_be_bytes());
        assert_eq!(decode_marker(&b), Err(ControlError::KeyVersion(-1)));
        let b = patched(&m, VALUE_AT, &(-2i16).to_be_bytes());
        assert_eq!(decode_marker(&b), Err(ControlError::ValueVersion(-2)));
        // Newer versions are read as version 0, as Kafka does.
        let b = patched(&m, KEY_AT, &1i16.to_be_bytes());
        assert_eq!(decode_marker(&b), Ok(m));
        let b = patched(&m, VALUE_AT, &3i16.to_be_bytes());
        assert_eq!(decode_marker(&b), Ok(m));
    }

    #[test]
    fn rejects_other_malformations() {
        let m = marker(MarkerType::Abort);
        let good = encode_marker(&m, TS);
        // Corrupt CRC.
        let mut b = good.clone();
        b[VALUE_AT + 5] ^= 1;
        assert!(matches!(
            decode_marker(&b),
            Err(ControlError::Batch(BatchError::CorruptCrc { .. }))
        ));
        // Wrong magic.
        let mut b = good.clone();
        b[16] = 1;
        assert_eq!(
            decode_marker(&b),
            Err(ControlError::Batch(BatchError::UnsupportedMagic(1)))
        );
        // Trailing bytes.
        let mut b = good.clone();
        b.push(0);
        assert_eq!(
            decode_marker(&b),
            Err(ControlError::Batch(BatchError::BadLength))
        );
        // Record counts other than 1, or lastOffsetDelta other than 0.
        for (count, delta) in [(0, 0), (2, 1), (2, 0), (1, 1), (-1, 0)] {
            let mut b = good.clone();
            b[23..27].copy_from_slice(&i32::to_be_bytes(delta));
            b[57..61].copy_from_slice(&i32::to_be_bytes(count));
            fix_crc(&mut b);
            assert!(
                matches!(decode_marker(&b), Err(ControlError::RecordCount { .. })),
                "count {count} delta {delta}"
            );
        }
        // Null key (length -1 = zigzag 0x01), a header, a short key.
        for (at, byte) in [(65, 0x01u8), (77, 0x02), (65, 0x06)] {
            let b = patched(&m, at, &[byte]);
            assert!(
                matches!(decode_marker(&b), Err(ControlError::MalformedRecord(_))),
                "byte {byte:#x} at {at}"
            );
        }
        // batchLength below the header size.
        let b = patched(&m, 8, &40i32.to_be_bytes());
        assert!(decode_marker(&b).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_marker(&bytes);
        }

        #[test]
        fn mutated_markers_never_panic(at in 0usize..78, byte in any::<u8>(), crc in any::<bool>()) {
            let mut b = encode_marker(&marker(MarkerType::Commit), TS);
            b[at] = byte;
            if crc {
                fix_crc(&mut b);
            }
            let _ = decode_marker(&b);
        }

        #[test]
        fn any_marker_round_trips(
            commit in any::<bool>(),
            producer_id in any::<i64>(),
            producer_epoch in any::<i16>(),
            coordinator_epoch in any::<i32>(),
            ts in any::<i64>(),
        ) {
            let m = Marker {
                kind: if commit { MarkerType::Commit } else { MarkerType::Abort },
                producer_id,
                producer_epoch,
                coordinator_epoch,
            };
            prop_assert_eq!(decode_marker(&encode_marker(&m, ts)), Ok(m));
        }
    }
}
