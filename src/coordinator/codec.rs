//! What the coordinators' internal topics share: Kafka's protocol primitive
//! types as their record schemas use them (int16/32/64, strings, bytes and
//! arrays, compact forms and tagged fields in flexible versions), and the
//! record batches a shard writes and replays. `group::records`
//! (`__consumer_offsets`) and `txn::records` (`__transaction_state`) are
//! written on top of it.
//!
//! Every decoder is total over arbitrary bytes: malformed input is an error,
//! never a panic.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::log::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, MIN_BATCH_LENGTH};

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

pub(crate) type Result<T> = std::result::Result<T, RecordError>;

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
    pub(crate) fn compact_len(&mut self, field: &'static str) -> Result<Option<usize>> {
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
    pub(crate) fn string_len(&mut self, field: &'static str) -> Result<Option<usize>> {
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

    pub(crate) fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>> {
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

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Bytes> {
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

    pub(crate) fn overflowed(&mut self, field: &'static str, len: usize) {
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
    pub(crate) fn len(&mut self, n: usize, int16: bool) {
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

    pub(crate) fn nullable_string(&mut self, field: &'static str, s: Option<&str>) {
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

    pub(crate) fn bytes(&mut self, field: &'static str, b: &[u8]) {
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

/// Who a coordinator batch is written for: nobody (producer id -1), or a
/// producer's transaction (transactional offset commits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transactional: bool,
}

impl BatchProducer {
    pub const NONE: BatchProducer = BatchProducer {
        producer_id: -1,
        producer_epoch: -1,
        transactional: false,
    };

    pub fn transactional(producer_id: i64, producer_epoch: i16) -> BatchProducer {
        BatchProducer {
            producer_id,
            producer_epoch,
            transactional: true,
        }
    }
}

/// One uncompressed v2 batch (magic 2, producer id -1, base offset 0, all
/// records with the given timestamp). Empty input gives empty bytes.
pub fn encode_batch(records: &[(Vec<u8>, Option<Vec<u8>>)], timestamp_ms: i64) -> Bytes {
    encode_batch_as(records, timestamp_ms, BatchProducer::NONE)
}

/// [`encode_batch`] for `producer`: its id and epoch in the header, no
/// sequence, and the transactional bit when it is a transaction's.
pub fn encode_batch_as(
    records: &[(Vec<u8>, Option<Vec<u8>>)],
    timestamp_ms: i64,
    producer: BatchProducer,
) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
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

/// Decompresses a batch's records (through the log's bounded decompression:
/// at most its 64 MiB floor, far above any coordinator batch) and bounds the
/// record count by what the plain bytes can hold, before the crate reserves
/// room for that many.
fn decompress(data: &mut Bytes, c: Compression, count: usize) -> anyhow::Result<Bytes> {
    use crate::log::compression::{self as codec, decompressed_limit};
    let id = match c {
        Compression::None => None,
        Compression::Gzip => Some(codec::GZIP),
        Compression::Snappy => Some(codec::SNAPPY),
        Compression::Lz4 => Some(codec::LZ4),
        Compression::Zstd => Some(codec::ZSTD),
    };
    let plain = match id {
        None => std::mem::take(data),
        Some(id) => codec::decompress(id, data, decompressed_limit(0))
            .map_err(|e| anyhow::anyhow!("decompressing a batch: {e}"))?,
    };
    anyhow::ensure!(
        count <= plain.len() / MIN_RECORD_BYTES,
        "{count} records cannot fit in {} decompressed bytes",
        plain.len()
    );
    Ok(plain)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A batch as kafka-protocol's encoder writes it.
    pub(crate) fn raw_batch(records: &[Record], compression: Compression) -> Bytes {
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
        fn batch_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_records(&mut Bytes::from(bytes));
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
    }
}
