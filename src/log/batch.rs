//! Kafka record batch v2 (magic 2) header handling, without decoding records.
//!
//! A v2 batch starts with a fixed 61-byte header, all fields big-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset            i64
//!      8     4  batchLength           i32  bytes after this field (total = batchLength + 12)
//!     12     4  partitionLeaderEpoch  i32
//!     16     1  magic                 i8   = 2
//!     17     4  crc                   u32  CRC-32C over bytes [21, end of batch)
//!     21     2  attributes            i16  bits 0-2 compression (0 none, 1 gzip, 2 snappy,
//!                                          3 lz4, 4 zstd); bit 3 timestamp type
//!                                          (1 = LogAppendTime); bit 4 transactional;
//!                                          bit 5 control
//!     23     4  lastOffsetDelta       i32
//!     27     8  baseTimestamp         i64
//!     35     8  maxTimestamp          i64
//!     43     8  producerId            i64
//!     51     2  producerEpoch         i16
//!     53     4  baseSequence          i32
//!     57     4  recordsCount          i32
//!     61     …  records (possibly compressed)
//! ```
//!
//! baseOffset, batchLength and partitionLeaderEpoch lie outside the CRC, so the
//! broker can rewrite the offset and leader epoch without recomputing it.
//!
//! Every function here is total over arbitrary input bytes: short or malformed
//! buffers produce errors (or, for the in-place setters, no change), never panics.

use super::reader::Reader;

/// Size of the fixed v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before the part counted by batchLength: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// The only supported batch format.
pub const MAGIC_V2: i8 = 2;
/// Smallest legal batchLength: a header with no records (61 - 12).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// Kafka's "no sequence" marker in baseSequence.
pub const NO_SEQUENCE: i32 = -1;

const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
pub(crate) const CRC_OFFSET: usize = 17;
/// Start of the CRC-covered region.
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
/// Highest known compression codec id (zstd).
const MAX_COMPRESSION: u8 = 4;

// Kafka error codes returned by `BatchError::error_code`.
const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;
const INVALID_TIMESTAMP: i16 = 32;
const UNKNOWN_SERVER_ERROR: i16 = -1;

/// The fixed fields of a v2 record batch header, as stored (no validation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header from the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// Only fails with [`BatchError::Truncated`] when `buf` is shorter than the
    /// header; magic, length and CRC are not checked here.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        Self::read(buf).ok_or(BatchError::Truncated)
    }

    fn read(buf: &[u8]) -> Option<BatchHeader> {
        let mut r = Reader(buf.get(..HEADER_LEN)?);
        Some(BatchHeader {
            base_offset: r.i64()?,
            batch_length: r.i32()?,
            partition_leader_epoch: r.i32()?,
            magic: r.i8()?,
            crc: r.u32()?,
            attributes: r.i16()?,
            last_offset_delta: r.i32()?,
            base_timestamp: r.i64()?,
            max_timestamp: r.i64()?,
            producer_id: r.i64()?,
            producer_epoch: r.i16()?,
            base_sequence: r.i32()?,
            records_count: r.i32()?,
        })
    }

    /// Size of the whole batch on the wire / on disk: `batch_length + 12`.
    /// A negative `batch_length` counts as 0 (result [`LOG_OVERHEAD`]); callers
    /// must check `batch_length >= MIN_BATCH_LENGTH` before trusting the result.
    pub fn total_len(&self) -> usize {
        usize::try_from(self.batch_length)
            .unwrap_or(0)
            .saturating_add(LOG_OVERHEAD)
    }

    /// `base_offset + last_offset_delta`, saturating at the i64 range (only
    /// reachable with corrupt headers).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Compression codec id (attribute bits 0-2): 0 none, 1 gzip, 2 snappy,
    /// 3 lz4, 4 zstd; 5-7 are invalid.
    pub fn compression(&self) -> u8 {
        // Masked to 3 bits, so the cast is lossless.
        (self.attributes & COMPRESSION_MASK) as u8
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// True for idempotent/transactional batches (`producer_id >= 0`).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record, as Kafka's
    /// `DefaultRecordBatch.lastSequence`: `NO_SEQUENCE` (-1) stays -1, otherwise
    /// `base_sequence + last_offset_delta` wrapping past `i32::MAX` to 0.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences live in
/// `0..=i32::MAX` and wrap from `i32::MAX` to 0. Total for any input: the
/// result is taken modulo 2^31.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    let sum = i64::from(sequence) + i64::from(increment);
    // rem_euclid by 2^31 lands in 0..=i32::MAX, so the conversion cannot fail.
    i32::try_from(sum.rem_euclid(1 << 31)).unwrap_or(0)
}

/// Why a batch was rejected. Each variant maps to one Kafka error code via
/// [`BatchError::error_code`].
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The buffer ends before the header or before the end given by batchLength.
    #[error("record batch is truncated")]
    Truncated,
    /// batchLength is below the 49-byte minimum, or bytes follow the batch that
    /// do not form another batch.
    #[error("record batch length is invalid or inconsistent with the buffer")]
    BadLength,
    #[error("unsupported record batch magic {0} (only magic 2 is supported)")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CorruptCrc { stored: u32, computed: u32 },
    /// recordsCount disagrees with lastOffsetDelta + 1.
    #[error(
        "record batch has {records_count} records but lastOffsetDelta {last_offset_delta} \
         implies {} records",
        i64::from(*last_offset_delta) + 1
    )]
    RecordCountMismatch {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// recordsCount < 1: a produced batch must carry at least one record.
    #[error("record batch reports {0} records; at least 1 is required")]
    InvalidRecordCount(i32),
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge { size: usize, max: i32 },
    #[error("produce request partition data holds more than one record batch")]
    MultipleBatches,
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(u8),
    #[error("clients may not write control batches")]
    ControlBatchFromClient,
    /// KIP-467: records refused one by one (keyless on a compacted topic,
    /// timestamp out of bounds); nothing of the batch is appended. `code` is
    /// INVALID_TIMESTAMP if any record's timestamp was refused, else
    /// INVALID_RECORD, and `message` Kafka's summary for the response.
    #[error("{message}")]
    RecordErrors {
        code: i16,
        errors: Vec<RecordError>,
        message: String,
    },
    /// The records section does not hold `recordsCount` well-formed records.
    #[error("record batch records are malformed: {0}")]
    MalformedRecords(&'static str),
    #[error("cannot decompress record batch: {0}")]
    Decompress(String),
    /// Recompressing to the topic's codec failed (not the client's fault).
    #[error("cannot recompress record batch: {0}")]
    Recompress(String),
}

/// One refused record (KIP-467): its index in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

impl std::fmt::Display for RecordError {
    /// As Kafka's `ProduceResponse.RecordError.toString`, which its summary
    /// message lists.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecordError(batchIndex={}, message='{}')",
            self.batch_index, self.message
        )
    }
}

impl BatchError {
    /// The Kafka protocol error code to return for this error.
    pub fn error_code(&self) -> i16 {
        match self {
            BatchError::Truncated | BatchError::BadLength | BatchError::CorruptCrc { .. } => {
                CORRUPT_MESSAGE
            }
            BatchError::TooLarge { .. } => MESSAGE_TOO_LARGE,
            BatchError::UnsupportedCompression(_) => UNSUPPORTED_COMPRESSION_TYPE,
            // Kafka's ProduceRequest.validateRecords: v3+ carries only magic 2
            // batches, anything else is an InvalidRecordException.
            BatchError::UnsupportedMagic(_)
            | BatchError::RecordCountMismatch { .. }
            | BatchError::InvalidRecordCount(_)
            | BatchError::MultipleBatches
            | BatchError::ControlBatchFromClient
            | BatchError::MalformedRecords(_) => INVALID_RECORD,
            BatchError::RecordErrors { code, .. } => *code,
            BatchError::Decompress(_) => CORRUPT_MESSAGE,
            BatchError::Recompress(_) => UNKNOWN_SERVER_ERROR,
        }
    }

    /// The per-record errors and summary message (Produce v8+ carries
    /// them), if the batch was refused record by record.
    pub fn record_errors(&self) -> Option<(&[RecordError], &str)> {
        match self {
            BatchError::RecordErrors {
                errors, message, ..
            } => Some((errors, message)),
            _ => None,
        }
    }
}

/// CRC-32C of the CRC-covered part of the batch occupying `batch[..total_len]`,
/// or `None` if the buffer is shorter than that.
fn compute_crc(batch: &[u8], total_len: usize) -> Option<u32> {
    batch.get(ATTRIBUTES_OFFSET..total_len).map(crc32c::crc32c)
}

/// Checks the batch's stored CRC against its contents. `header` must have been
/// parsed from `batch`, and `batch` must hold the whole batch.
fn check_crc(batch: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let computed = compute_crc(batch, header.total_len()).ok_or(BatchError::Truncated)?;
    if computed != header.crc {
        return Err(BatchError::CorruptCrc {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Kafka's per-batch offset/count rule for v2: `records_count >= 1` and
/// `records_count == last_offset_delta + 1`.
fn check_record_count(header: &BatchHeader) -> Result<(), BatchError> {
    if header.records_count < 1 {
        return Err(BatchError::InvalidRecordCount(header.records_count));
    }
    if i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1 {
        return Err(BatchError::RecordCountMismatch {
            records_count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(())
}

/// True if `bytes` begins with something that is recognisably another v2
/// batch: a whole header with magic 2 and a plausible length.
fn looks_like_batch(bytes: &[u8]) -> bool {
    BatchHeader::read(bytes)
        .is_some_and(|h| h.magic == MAGIC_V2 && h.batch_length >= MIN_BATCH_LENGTH)
}

/// Validates the `records` bytes of one partition in a Produce request (v3+
/// carries exactly one v2 batch) and returns its header.
///
/// Checks, in this order (the first failure is returned):
/// 1. magic == 2 (read as soon as the buffer reaches it) → `UnsupportedMagic`;
/// 2. a whole header is present → `Truncated`;
/// 3. batchLength >= 49 → `BadLength`; the batch fits in `bytes` → `Truncated`;
/// 4. nothing follows the batch: trailing bytes that form another batch header
///    → `MultipleBatches`, any other trailing bytes → `BadLength`;
/// 5. total size (`total_len`, Kafka's `sizeInBytes`) <= `max_message_bytes`
///    → `TooLarge` (a negative maximum rejects everything);
/// 6. CRC-32C → `CorruptCrc`;
/// 7. compression codec <= 4 → `UnsupportedCompression`;
/// 8. not a control batch → `ControlBatchFromClient`;
/// 9. recordsCount >= 1 → `InvalidRecordCount`, and
///    == lastOffsetDelta + 1 → `RecordCountMismatch`.
///
/// Request-version rules (e.g. zstd needs Produce v7+) and producer-state rules
/// are the caller's business.
pub fn validate_produce_batch(
    bytes: &[u8],
    max_message_bytes: i32,
) -> Result<BatchHeader, BatchError> {
    if let Some(&magic) = bytes.get(MAGIC_OFFSET) {
        let magic = i8::from_be_bytes([magic]);
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
    }
    let header = BatchHeader::parse(bytes)?;
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::BadLength);
    }
    let total = header.total_len();
    let trailing = bytes.get(total..).ok_or(BatchError::Truncated)?;
    if !trailing.is_empty() {
        return Err(if looks_like_batch(trailing) {
            BatchError::MultipleBatches
        } else {
            BatchError::BadLength
        });
    }
    let too_large = match usize::try_from(max_message_bytes) {
        Ok(max) => total > max,
        Err(_) => true,
    };
    if too_large {
        return Err(BatchError::TooLarge {
            size: total,
            max: max_message_bytes,
        });
    }
    check_crc(bytes, &header)?;
    let codec = header.compression();
    if codec > MAX_COMPRESSION {
        return Err(BatchError::UnsupportedCompression(codec));
    }
    if header.is_control() {
        return Err(BatchError::ControlBatchFromClient);
    }
    check_record_count(&header)?;
    Ok(header)
}

/// Writes the big-endian bytes `value` at `at`; no change if the buffer is too
/// short.
fn put<const N: usize>(buf: &mut [u8], at: usize, value: [u8; N]) {
    if let Some(dst) = buf
        .get_mut(at..)
        .and_then(|rest| rest.first_chunk_mut::<N>())
    {
        *dst = value;
    }
}

/// Rewrites baseOffset in place. baseOffset is outside the CRC, so the batch
/// stays valid. No change if `batch` is shorter than 8 bytes.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    put(batch, 0, base_offset.to_be_bytes());
}

/// Rewrites partitionLeaderEpoch in place. It is outside the CRC, so the batch
/// stays valid. No change if `batch` is shorter than 16 bytes.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    put(batch, PARTITION_LEADER_EPOCH_OFFSET, epoch.to_be_bytes());
}

/// LogAppendTime: sets the timestamp-type attribute bit, maxTimestamp = ts
/// (Kafka leaves baseTimestamp and the record deltas as they are), recomputes
/// the CRC.
///
/// Operates on the batch at the start of `batch` (as delimited by its
/// batchLength; bytes beyond it are untouched). No change at all if `batch`
/// does not hold a whole batch with batchLength >= 49.
pub fn set_log_append_time(batch: &mut [u8], ts: i64) {
    let Some(header) = BatchHeader::read(batch) else {
        return;
    };
    let total = header.total_len();
    if header.batch_length < MIN_BATCH_LENGTH || batch.len() < total {
        return;
    }
    let attributes = header.attributes | TIMESTAMP_TYPE_BIT;
    put(batch, ATTRIBUTES_OFFSET, attributes.to_be_bytes());
    put(batch, MAX_TIMESTAMP_OFFSET, ts.to_be_bytes());
    if let Some(crc) = compute_crc(batch, total) {
        put(batch, CRC_OFFSET, crc.to_be_bytes());
    }
}

/// Walks a buffer of concatenated batches (e.g. a slice of a segment file),
/// yielding `(position, header)` for each whole batch in order.
///
/// Purely structural: magic and CRC are not checked. Iteration stops (without
/// error) at the first batch that is incomplete, or whose batchLength is below
/// 49 (the position of the next batch cannot be trusted past that point).
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, pos: 0 }
    }

    /// Byte position just past the last batch yielded so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    type Item = (usize, BatchHeader);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        let header = BatchHeader::read(rest)?;
        let total = header.total_len();
        if header.batch_length < MIN_BATCH_LENGTH || rest.len() < total {
            // Park at the end so later calls stay cheap and keep returning None.
            self.buf = &[];
            return None;
        }
        let position = self.pos;
        self.pos += total;
        Some((position, header))
    }
}

/// What [`scan_valid_prefix`] found in the valid leading part of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixSummary {
    /// Number of leading bytes made of valid batches.
    pub valid_len: usize,
    /// Number of valid batches.
    pub batch_count: usize,
    /// Base offset of the first valid batch.
    pub first_offset: Option<i64>,
    /// Last offset of the last valid batch.
    pub last_offset: Option<i64>,
    /// Largest maxTimestamp over the valid batches, -1 if none (Kafka's
    /// NO_TIMESTAMP convention, as in the time index).
    pub max_timestamp: i64,
    /// Last offset of the first batch carrying `max_timestamp`, -1 if none.
    pub offset_of_max_timestamp: i64,
}

/// Recovery scan over concatenated batches: returns how many leading bytes are
/// valid, plus a summary of them. A batch is valid if it is whole, has
/// batchLength >= 49, magic 2, a correct CRC-32C, recordsCount ==
/// lastOffsetDelta + 1 (hence >= 1), base offset >= 0 with a last offset that
/// does not overflow, and base offset greater than the previous batch's last
/// offset. If `expected_next_offset` is `Some(n)`, the first batch's base
/// offset must be >= n. The scan stops at the first invalid batch.
pub fn scan_valid_prefix(buf: &[u8], expected_next_offset: Option<i64>) -> PrefixSummary {
    let mut summary = PrefixSummary {
        valid_len: 0,
        batch_count: 0,
        first_offset: None,
        last_offset: None,
        max_timestamp: -1,
        offset_of_max_timestamp: -1,
    };
    // Smallest base offset the next batch may have.
    let mut min_base = expected_next_offset.unwrap_or(0).max(0);
    for (position, header) in BatchIter::new(buf) {
        let Some(batch) = buf.get(position..) else {
            break;
        };
        if header.magic != MAGIC_V2
            || check_crc(batch, &header).is_err()
            || check_record_count(&header).is_err()
            || header.base_offset < min_base
        {
            break;
        }
        let Some(last_offset) = header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta))
        else {
            break;
        };
        summary.valid_len = position + header.total_len();
        summary.batch_count += 1;
        summary.first_offset.get_or_insert(header.base_offset);
        summary.last_offset = Some(last_offset);
        if header.max_timestamp > summary.max_timestamp {
            summary.max_timestamp = header.max_timestamp;
            summary.offset_of_max_timestamp = last_offset;
        }
        match last_offset.checked_add(1) {
            Some(next) => min_base = next,
            // Nothing can follow offset i64::MAX.
            None => break,
        }
    }
    summary
}

/// Recovery: number of leading bytes of `buf` made of valid batches; see
/// [`scan_valid_prefix`] for the rules.
pub fn valid_prefix_len(buf: &[u8], expected_next_offset: Option<i64>) -> usize {
    scan_valid_prefix(buf, expected_next_offset).valid_len
}

/// The fields of one v2 record that the produce checks read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub has_key: bool,
}

/// Walks an uncompressed records section (the bytes after the header, or
/// their decompressed form), reading only the record prefixes: length,
/// attributes, timestamp delta, offset delta and key length. Yields an error
/// (once, then stops) at the first record that does not fit its length.
pub struct RecordIter<'a> {
    buf: &'a [u8],
}

impl<'a> RecordIter<'a> {
    pub fn new(records: &'a [u8]) -> Self {
        RecordIter { buf: records }
    }

    /// Bytes not consumed by the records yielded so far.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
}

impl Iterator for RecordIter<'_> {
    type Item = Result<RecordInfo, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let parsed = parse_record(self.buf);
        match parsed {
            Some((info, len)) => {
                self.buf = &self.buf[len..];
                Some(Ok(info))
            }
            None => {
                self.buf = &[];
                Some(Err(BatchError::MalformedRecords(
                    "invalid record structure",
                )))
            }
        }
    }
}

/// One record at the start of `buf`: its prefix fields and its total size.
fn parse_record(buf: &[u8]) -> Option<(RecordInfo, usize)> {
    let mut r = buf;
    let len = usize::try_from(varint(&mut r)?).ok()?;
    let total = (buf.len() - r.len()).checked_add(len)?;
    let mut body = r.get(..len)?;
    let _attributes = take_byte(&mut body)?;
    let timestamp_delta = varlong(&mut body)?;
    let offset_delta = varint(&mut body)?;
    let key_len = varint(&mut body)?;
    if key_len < -1 || usize::try_from(key_len).is_ok_and(|k| k > body.len()) {
        return None;
    }
    Some((
        RecordInfo {
            timestamp_delta,
            offset_delta,
            has_key: key_len >= 0,
        },
        total,
    ))
}

fn take_byte(buf: &mut &[u8]) -> Option<u8> {
    let (&b, rest) = buf.split_first()?;
    *buf = rest;
    Some(b)
}

/// An unsigned LEB128 value of at most `max_bytes` bytes.
fn uvarint(buf: &mut &[u8], max_bytes: u32) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let b = take_byte(buf)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Kafka's zig-zag VarInt.
fn varint(buf: &mut &[u8]) -> Option<i32> {
    let v = u32::try_from(uvarint(buf, 5)?).ok()?;
    Some(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// Kafka's zig-zag VarLong.
fn varlong(buf: &mut &[u8]) -> Option<i64> {
    let v = uvarint(buf, 10)?;
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// The per-record rules of a topic on the produce path (Kafka's
/// `LogValidator.validateRecord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRules {
    /// cleanup.policy contains compact: every record needs a key.
    pub compacted: bool,
    /// CreateTime topics: how far (ms) a record's timestamp may lie before
    /// and after the broker's clock (KIP-937); `None` for LogAppendTime.
    pub timestamp_bounds: Option<(i64, i64)>,
}

impl RecordRules {
    /// Whether any rule needs the records read at all.
    pub fn active(&self) -> bool {
        self.compacted || self.timestamp_bounds.is_some()
    }
}

/// Checks every record of the (uncompressed) `records` section of the batch
/// `header` describes against `rules`, as Kafka does: the record count must
/// match, a keyless record on a compacted topic is INVALID_RECORD, a
/// CreateTime timestamp more than `before` ms before or `after` ms after
/// `now_ms` is INVALID_TIMESTAMP. All refused records are reported (one
/// error per record, the key rule first); `partition` (topic, index) names
/// the partition in messages ("topic-0").
pub fn check_records(
    header: &BatchHeader,
    records: &[u8],
    rules: &RecordRules,
    now_ms: i64,
    (topic, partition): (&str, i32),
) -> Result<(), BatchError> {
    let mut errors = Vec::new();
    let mut bad_timestamp = false;
    let mut iter = RecordIter::new(records);
    let mut count: i64 = 0;
    for (index, record) in iter.by_ref().enumerate() {
        let record = record?;
        count += 1;
        if count > i64::from(header.records_count) {
            return Err(BatchError::MalformedRecords(
                "more records than the batch declares",
            ));
        }
        let batch_index = i32::try_from(index).unwrap_or(i32::MAX);
        if rules.compacted && !record.has_key {
            errors.push(RecordError {
                batch_index,
                message: format!(
                    "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
                ),
            });
            continue;
        }
        let Some((before, after)) = rules.timestamp_bounds else {
            continue;
        };
        let offset = header
            .base_offset
            .saturating_add(i64::from(record.offset_delta));
        // A LogAppendTime batch's records all carry its maxTimestamp.
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(record.timestamp_delta)
        };
        let message = if timestamp != -1 {
            let diff = i128::from(now_ms) - i128::from(timestamp);
            if diff <= i128::from(before) && -diff <= i128::from(after) {
                continue;
            }
            format!(
                "Timestamp {timestamp} of message with offset {offset} is out of range. \
                 The timestamp should be within [{}, {}]",
                now_ms.saturating_sub(before),
                now_ms.saturating_add(after)
            )
        } else if header.is_log_append_time() {
            format!(
                "Invalid timestamp type in message with offset {offset}. \
                 Producer should not set timestamp type to LogAppendTime."
            )
        } else {
            continue;
        };
        bad_timestamp = true;
        errors.push(RecordError {
            batch_index,
            message,
        });
    }
    if count != i64::from(header.records_count) || iter.remaining() != 0 {
        return Err(BatchError::MalformedRecords(
            "record count differs from the batch's recordsCount",
        ));
    }
    if errors.is_empty() {
        return Ok(());
    }
    let (code, message) = if bad_timestamp {
        (
            INVALID_TIMESTAMP,
            "One or more records have been rejected due to invalid timestamp".to_owned(),
        )
    } else {
        let shown: Vec<String> = errors.iter().take(3).map(|e| e.to_string()).collect();
        (
            INVALID_RECORD,
            format!(
                "One or more records have been rejected due to {} record errors in total, \
                 and only showing the first three errors at most: [{}]",
                errors.len(),
                shown.join(", ")
            ),
        )
    };
    Err(BatchError::RecordErrors {
        code,
        errors,
        message,
    })
}

/// Replaces the compression codec in the attributes of the header at the
/// start of `batch` (no CRC update; the caller rewrites the whole batch).
pub(crate) fn set_compression(batch: &mut [u8], codec: u8) {
    if let Some(h) = BatchHeader::read(batch) {
        let attributes = (h.attributes & !COMPRESSION_MASK) | (i16::from(codec) & COMPRESSION_MASK);
        put(batch, ATTRIBUTES_OFFSET, attributes.to_be_bytes());
    }
}

/// Sets batchLength to match `batch.len()` and recomputes the CRC, after the
/// records section was replaced. No change for a buffer shorter than a header.
pub(crate) fn seal(batch: &mut [u8]) {
    if batch.len() < HEADER_LEN {
        return;
    }
    let Ok(length) = i32::try_from(batch.len() - LOG_OVERHEAD) else {
        return;
    };
    put(batch, 8, length.to_be_bytes());
    if let Some(crc) = compute_crc(batch, batch.len()) {
        put(batch, CRC_OFFSET, crc.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };
    use proptest::prelude::*;

    const ALL_COMPRESSIONS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    const BASE_TS: i64 = 1_700_000_000_000;
    const BIG: i32 = 1 << 30;
    const BATCH_LENGTH_OFFSET: usize = 8;

    /// A real batch of `n` records from kafka-protocol's encoder, offsets
    /// `0..n`, sequences `base_seq..`, producer 1000 epoch 3.
    fn encode(compression: Compression, n: usize, base_seq: i32) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 1000,
                producer_epoch: 3,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: base_seq.wrapping_add(i as i32),
                timestamp: BASE_TS + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(format!("value-{i}-").repeat(8))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = Vec::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf
    }

    /// A hand-built batch: header fields as given, `payload` as the records
    /// section, correct batchLength and CRC.
    fn raw_batch(
        attributes: i16,
        last_offset_delta: i32,
        records_count: i32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        let len = i32::try_from(HEADER_LEN - LOG_OVERHEAD + payload.len()).unwrap();
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&last_offset_delta.to_be_bytes());
        b.extend_from_slice(&BASE_TS.to_be_bytes());
        b.extend_from_slice(&(BASE_TS + 5).to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&records_count.to_be_bytes());
        b.extend_from_slice(payload);
        fix_crc(&mut b);
        b
    }

    fn fix_crc(b: &mut [u8]) {
        let total = BatchHeader::parse(b).unwrap().total_len();
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..total]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    fn set_batch_length(b: &mut [u8], len: i32) {
        b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Three real batches with offsets 0..3, 3..8, 8..15 (compressions vary).
    fn three_batches() -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        let mut next = 0i64;
        for (n, c) in [
            (3, Compression::None),
            (5, Compression::Gzip),
            (7, Compression::Lz4),
        ] {
            let mut b = encode(c, n, 0);
            set_base_offset(&mut b, next);
            next += n as i64;
            buf.extend_from_slice(&b);
            ends.push(buf.len());
        }
        (buf, ends)
    }

    #[test]
    fn header_fields_parse_at_documented_offsets() {
        let mut b = Vec::new();
        b.extend_from_slice(&0x0102_0304_0506_0708i64.to_be_bytes());
        b.extend_from_slice(&0x1112_1314i32.to_be_bytes());
        b.extend_from_slice(&0x2122_2324i32.to_be_bytes());
        b.push(0x02);
        b.extend_from_slice(&0xA1A2_A3A4u32.to_be_bytes());
        b.extend_from_slice(&0x003Bi16.to_be_bytes());
        b.extend_from_slice(&0x3132_3334i32.to_be_bytes());
        b.extend_from_slice(&0x4142_4344_4546_4748i64.to_be_bytes());
        b.extend_from_slice(&0x5152_5354_5556_5758i64.to_be_bytes());
        b.extend_from_slice(&0x6162_6364_6566_6768i64.to_be_bytes());
        b.extend_from_slice(&0x7172i16.to_be_bytes());
        b.extend_from_slice(&0x0B0C_0D0Ei32.to_be_bytes());
        b.extend_from_slice(&0x0F10_1112i32.to_be_bytes());
        assert_eq!(b.len(), HEADER_LEN);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(
            h,
            BatchHeader {
                base_offset: 0x0102_0304_0506_0708,
                batch_length: 0x1112_1314,
                partition_leader_epoch: 0x2122_2324,
                magic: 2,
                crc: 0xA1A2_A3A4,
                attributes: 0x003B,
                last_offset_delta: 0x3132_3334,
                base_timestamp: 0x4142_4344_4546_4748,
                max_timestamp: 0x5152_5354_5556_5758,
                producer_id: 0x6162_6364_6566_6768,
                producer_epoch: 0x7172,
                base_sequence: 0x0B0C_0D0E,
                records_count: 0x0F10_1112,
            }
        );
        // 0x3B = 0b0011_1011: codec 3, LogAppendTime, transactional, control.
        assert_eq!(h.compression(), 3);
        assert!(h.is_log_append_time() && h.is_transactional() && h.is_control());
        assert_eq!(h.total_len(), 0x1112_1314 + 12);
        for len in 0..HEADER_LEN {
            assert_eq!(BatchHeader::parse(&b[..len]), Err(BatchError::Truncated));
        }
    }

    #[test]
    fn header_accessors() {
        let mut h = BatchHeader::parse(&raw_batch(0, 4, 5, &[])).unwrap();
        assert_eq!(h.compression(), 0);
        assert!(!h.is_log_append_time() && !h.is_transactional() && !h.is_control());
        assert!(!h.has_producer_id());
        h.producer_id = 0;
        assert!(h.has_producer_id());
        h.base_offset = 100;
        assert_eq!(h.last_offset(), 104);
        h.base_offset = i64::MAX - 1;
        assert_eq!(h.last_offset(), i64::MAX);
        h.batch_length = -5;
        assert_eq!(h.total_len(), LOG_OVERHEAD);
        h.batch_length = i32::MAX;
        assert_eq!(h.total_len(), i32::MAX as usize + 12);
    }

    #[test]
    fn last_sequence_wraps_like_kafka() {
        let mut h = BatchHeader::parse(&raw_batch(0, 0, 1, &[])).unwrap();
        // (base_sequence, last_offset_delta, expected last sequence)
        let cases = [
            (-1, 0, -1),
            (-1, 10, -1),
            (0, 0, 0),
            (0, 9, 9),
            (100, 4, 104),
            (i32::MAX, 0, i32::MAX),
            (i32::MAX - 4, 4, i32::MAX),
            (i32::MAX - 4, 5, 0),
            (i32::MAX - 4, 9, 4),
            (i32::MAX, 1, 0),
            (i32::MAX, i32::MAX, i32::MAX - 1),
        ];
        for (base, delta, want) in cases {
            h.base_sequence = base;
            h.last_offset_delta = delta;
            assert_eq!(h.last_sequence(), want, "base {base} delta {delta}");
        }
    }

    #[test]
    fn real_batches_validate_for_every_compression() {
        for c in ALL_COMPRESSIONS {
            let b = encode(c, 10, 42);
            let h = validate_produce_batch(&b, BIG).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            assert_eq!(h.compression(), c as u8, "{c:?}");
            assert_eq!(h.total_len(), b.len());
            assert_eq!(h.magic, 2);
            assert_eq!(h.base_offset, 0);
            assert_eq!(h.last_offset_delta, 9);
            assert_eq!(h.records_count, 10);
            assert_eq!(h.last_offset(), 9);
            assert_eq!(h.base_sequence, 42);
            assert_eq!(h.last_sequence(), 51);
            assert_eq!(h.producer_id, 1000);
            assert_eq!(h.producer_epoch, 3);
            assert!(h.has_producer_id());
            assert_eq!(h.base_timestamp, BASE_TS);
            assert_eq!(h.max_timestamp, BASE_TS + 9);
            assert!(!h.is_control() && !h.is_transactional() && !h.is_log_append_time());
        }
    }

    #[test]
    fn single_record_batch_validates() {
        let b = encode(Compression::None, 1, 0);
        let h = validate_produce_batch(&b, BIG).unwrap();
        assert_eq!((h.records_count, h.last_offset_delta), (1, 0));
    }

    #[test]
    fn size_limit_both_sides() {
        for c in ALL_COMPRESSIONS {
            let b = encode(c, 10, 0);
            let size = b.len();
            let at_limit = i32::try_from(size).unwrap();
            assert!(validate_produce_batch(&b, at_limit).is_ok(), "{c:?}");
            assert!(validate_produce_batch(&b, at_limit + 1).is_ok(), "{c:?}");
            let err = validate_produce_batch(&b, at_limit - 1).unwrap_err();
            assert_eq!(
                err,
                BatchError::TooLarge {
                    size,
                    max: at_limit - 1
                }
            );
            assert_eq!(err.error_code(), 10);
            for max in [0, -1, i32::MIN] {
                assert_eq!(
                    validate_produce_batch(&b, max),
                    Err(BatchError::TooLarge { size, max })
                );
            }
        }
    }

    #[test]
    fn truncated_at_every_length() {
        let b = encode(Compression::Snappy, 4, 0);
        for len in 0..b.len() {
            let err = validate_produce_batch(&b[..len], BIG).unwrap_err();
            assert_eq!(err, BatchError::Truncated, "len {len}");
            assert_eq!(err.error_code(), 2);
        }
    }

    #[test]
    fn batch_length_limits() {
        // 49 (header only) passes the length check: records are not decoded.
        let b = raw_batch(0, 0, 1, &[]);
        assert_eq!(
            BatchHeader::parse(&b).unwrap().batch_length,
            MIN_BATCH_LENGTH
        );
        assert!(validate_produce_batch(&b, BIG).is_ok());
        // 48 and below are rejected, whatever the buffer holds.
        for len in [48, 1, 0, -1, i32::MIN] {
            let mut b = raw_batch(0, 0, 1, &[]);
            set_batch_length(&mut b, len);
            let err = validate_produce_batch(&b, BIG).unwrap_err();
            assert_eq!(err, BatchError::BadLength, "batch_length {len}");
            assert_eq!(err.error_code(), 2);
        }
        // Claims more bytes than present.
        let mut b = encode(Compression::None, 3, 0);
        let len = BatchHeader::parse(&b).unwrap().batch_length;
        set_batch_length(&mut b, len + 1);
        assert_eq!(validate_produce_batch(&b, BIG), Err(BatchError::Truncated));
        set_batch_length(&mut b, i32::MAX);
        assert_eq!(validate_produce_batch(&b, BIG), Err(BatchError::Truncated));
    }

    #[test]
    fn trailing_bytes() {
        let one = encode(Compression::None, 3, 0);
        // Garbage that is not a batch header → BadLength.
        for tail in [
            vec![0u8],
            vec![0; 12],
            vec![0; 60],
            vec![0; 61],
            vec![0xFF; 100],
        ] {
            let mut b = one.clone();
            b.extend_from_slice(&tail);
            let err = validate_produce_batch(&b, BIG).unwrap_err();
            assert_eq!(err, BatchError::BadLength, "tail of {}", tail.len());
            assert_eq!(err.error_code(), 2);
        }
        // A second whole batch → MultipleBatches.
        let mut two = one.clone();
        two.extend_from_slice(&encode(Compression::Gzip, 2, 3));
        let err = validate_produce_batch(&two, BIG).unwrap_err();
        assert_eq!(err, BatchError::MultipleBatches);
        assert_eq!(err.error_code(), 87);
        // The header of a second batch, body cut off → MultipleBatches.
        assert_eq!(
            validate_produce_batch(&two[..one.len() + HEADER_LEN], BIG),
            Err(BatchError::MultipleBatches)
        );
        // Less than a header of it → BadLength.
        assert_eq!(
            validate_produce_batch(&two[..one.len() + HEADER_LEN - 1], BIG),
            Err(BatchError::BadLength)
        );
        // A trailing header with a bad magic is not another v2 batch.
        let mut b = two.clone();
        b[one.len() + MAGIC_OFFSET] = 1;
        assert_eq!(validate_produce_batch(&b, BIG), Err(BatchError::BadLength));
    }

    #[test]
    fn unsupported_magic() {
        for magic in [0i8, 1, 3, -1, i8::MAX] {
            let mut b = encode(Compression::None, 2, 0);
            b[MAGIC_OFFSET] = magic.to_be_bytes()[0];
            let err = validate_produce_batch(&b, BIG).unwrap_err();
            assert_eq!(err, BatchError::UnsupportedMagic(magic));
            assert_eq!(err.error_code(), 87);
            // Reported as soon as the magic byte is present, even if the rest
            // is missing.
            assert_eq!(
                validate_produce_batch(&b[..MAGIC_OFFSET + 1], BIG),
                Err(BatchError::UnsupportedMagic(magic))
            );
            assert_eq!(
                validate_produce_batch(&b[..MAGIC_OFFSET], BIG),
                Err(BatchError::Truncated)
            );
        }
    }

    #[test]
    fn corrupt_stored_crc() {
        let b = encode(Compression::Zstd, 5, 0);
        let good = BatchHeader::parse(&b).unwrap().crc;
        for i in CRC_OFFSET..ATTRIBUTES_OFFSET {
            let mut bad = b.clone();
            bad[i] ^= 0x40;
            let stored = BatchHeader::parse(&bad).unwrap().crc;
            let err = validate_produce_batch(&bad, BIG).unwrap_err();
            assert_eq!(
                err,
                BatchError::CorruptCrc {
                    stored,
                    computed: good
                }
            );
            assert_eq!(err.error_code(), 2);
        }
    }

    #[test]
    fn every_flipped_byte_in_crc_region_is_corrupt() {
        for c in ALL_COMPRESSIONS {
            let b = encode(c, 4, 0);
            for pos in ATTRIBUTES_OFFSET..b.len() {
                for flip in [0x01, 0x80, 0xFF] {
                    let mut bad = b.clone();
                    bad[pos] ^= flip;
                    let err = validate_produce_batch(&bad, BIG).unwrap_err();
                    assert!(
                        matches!(err, BatchError::CorruptCrc { .. }),
                        "{c:?} pos {pos} flip {flip:#x}: {err:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn record_count_rules() {
        // (last_offset_delta, records_count, expected)
        let cases = [
            (0, 1, Ok(())),
            (4, 5, Ok(())),
            (
                4,
                4,
                Err(BatchError::RecordCountMismatch {
                    records_count: 4,
                    last_offset_delta: 4,
                }),
            ),
            (
                4,
                6,
                Err(BatchError::RecordCountMismatch {
                    records_count: 6,
                    last_offset_delta: 4,
                }),
            ),
            (
                0,
                2,
                Err(BatchError::RecordCountMismatch {
                    records_count: 2,
                    last_offset_delta: 0,
                }),
            ),
            (-1, 0, Err(BatchError::InvalidRecordCount(0))),
            (0, 0, Err(BatchError::InvalidRecordCount(0))),
            (-3, -2, Err(BatchError::InvalidRecordCount(-2))),
            (
                -2,
                1,
                Err(BatchError::RecordCountMismatch {
                    records_count: 1,
                    last_offset_delta: -2,
                }),
            ),
            (
                i32::MAX,
                i32::MAX,
                Err(BatchError::RecordCountMismatch {
                    records_count: i32::MAX,
                    last_offset_delta: i32::MAX,
                }),
            ),
            (i32::MAX - 1, i32::MAX, Ok(())),
        ];
        for (delta, count, want) in cases {
            let b = raw_batch(0, delta, count, &[1, 2, 3]);
            let got = validate_produce_batch(&b, BIG).map(|_| ());
            assert_eq!(got, want, "delta {delta} count {count}");
            if let Err(e) = got {
                assert_eq!(e.error_code(), 87);
            }
        }
    }

    #[test]
    fn compression_codec_limits() {
        for codec in 0..=4i16 {
            let b = raw_batch(codec, 0, 1, &[9; 10]);
            assert_eq!(
                validate_produce_batch(&b, BIG).unwrap().compression(),
                codec as u8
            );
        }
        for codec in 5..=7i16 {
            // Other attribute bits do not disturb the codec.
            let b = raw_batch(
                codec | TRANSACTIONAL_BIT | TIMESTAMP_TYPE_BIT,
                0,
                1,
                &[9; 10],
            );
            let err = validate_produce_batch(&b, BIG).unwrap_err();
            assert_eq!(err, BatchError::UnsupportedCompression(codec as u8));
            assert_eq!(err.error_code(), 76);
        }
    }

    #[test]
    fn control_batches_rejected_other_flags_accepted() {
        let err = validate_produce_batch(&raw_batch(CONTROL_BIT, 0, 1, &[]), BIG).unwrap_err();
        assert_eq!(err, BatchError::ControlBatchFromClient);
        assert_eq!(err.error_code(), 87);
        let err =
            validate_produce_batch(&raw_batch(CONTROL_BIT | TRANSACTIONAL_BIT, 0, 1, &[]), BIG)
                .unwrap_err();
        assert_eq!(err, BatchError::ControlBatchFromClient);
        let h = validate_produce_batch(&raw_batch(TRANSACTIONAL_BIT, 0, 1, &[]), BIG).unwrap();
        assert!(h.is_transactional());
        let h = validate_produce_batch(&raw_batch(TIMESTAMP_TYPE_BIT, 0, 1, &[]), BIG).unwrap();
        assert!(h.is_log_append_time());
    }

    #[test]
    fn error_codes() {
        let cases = [
            (BatchError::Truncated, 2),
            (BatchError::BadLength, 2),
            (
                BatchError::CorruptCrc {
                    stored: 1,
                    computed: 2,
                },
                2,
            ),
            (BatchError::TooLarge { size: 2, max: 1 }, 10),
            (BatchError::UnsupportedMagic(1), 87),
            (BatchError::UnsupportedCompression(5), 76),
            (
                BatchError::RecordCountMismatch {
                    records_count: 1,
                    last_offset_delta: 1,
                },
                87,
            ),
            (BatchError::InvalidRecordCount(0), 87),
            (BatchError::MultipleBatches, 87),
            (BatchError::ControlBatchFromClient, 87),
        ];
        for (e, code) in cases {
            assert_eq!(e.error_code(), code, "{e}");
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            BatchError::TooLarge {
                size: 2000,
                max: 1000
            }
            .to_string(),
            "record batch of 2000 bytes exceeds the maximum of 1000 bytes"
        );
    }

    #[test]
    fn set_base_offset_and_leader_epoch_keep_batch_valid() {
        for c in ALL_COMPRESSIONS {
            let mut b = encode(c, 6, 0);
            set_base_offset(&mut b, 1_234_567);
            set_partition_leader_epoch(&mut b, 42);
            let h = validate_produce_batch(&b, BIG).unwrap();
            assert_eq!(h.base_offset, 1_234_567);
            assert_eq!(h.partition_leader_epoch, 42);
            assert_eq!(h.last_offset(), 1_234_572);
            let set = RecordBatchDecoder::decode(&mut Bytes::from(b)).unwrap();
            let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, (1_234_567..1_234_573).collect::<Vec<_>>());
            assert!(set.records.iter().all(|r| r.partition_leader_epoch == 42));
        }
    }

    #[test]
    fn set_log_append_time_sets_bit_and_keeps_crc() {
        for c in ALL_COMPRESSIONS {
            let mut b = encode(c, 6, 0);
            let before = BatchHeader::parse(&b).unwrap();
            let ts = 1_800_000_000_123;
            set_log_append_time(&mut b, ts);
            let h = validate_produce_batch(&b, BIG).unwrap();
            assert!(h.is_log_append_time());
            assert_eq!(h.max_timestamp, ts);
            assert_eq!(h.base_timestamp, before.base_timestamp);
            assert_eq!(h.compression(), before.compression());
            assert_eq!(h.attributes, before.attributes | TIMESTAMP_TYPE_BIT);
            // Idempotent.
            let mut again = b.clone();
            set_log_append_time(&mut again, ts);
            assert_eq!(again, b);
            // kafka-protocol checks the CRC while decoding.
            let set = RecordBatchDecoder::decode(&mut Bytes::from(b)).unwrap();
            assert_eq!(set.records.len(), 6);
            assert!(set
                .records
                .iter()
                .all(|r| r.timestamp_type == TimestampType::LogAppend));
        }
    }

    #[test]
    fn set_log_append_time_touches_only_the_first_batch() {
        let (buf, ends) = three_batches();
        let mut b = buf.clone();
        set_log_append_time(&mut b, 5);
        assert_eq!(b[ends[0]..], buf[ends[0]..]);
        assert!(validate_produce_batch(&b[..ends[0]], BIG)
            .unwrap()
            .is_log_append_time());
    }

    #[test]
    fn setters_ignore_short_buffers() {
        let b = encode(Compression::None, 3, 0);
        for len in 0..b.len() {
            let mut short = b[..len].to_vec();
            set_log_append_time(&mut short, 99);
            assert_eq!(short, b[..len], "len {len}");
        }
        for len in 0..8 {
            let mut short = b[..len].to_vec();
            set_base_offset(&mut short, 99);
            assert_eq!(short, b[..len]);
        }
        for len in 0..16 {
            let mut short = b[..len].to_vec();
            set_partition_leader_epoch(&mut short, 99);
            assert_eq!(short, b[..len]);
        }
        // batch_length below the minimum: untouched.
        let mut bad = raw_batch(0, 0, 1, &[0; 20]);
        set_batch_length(&mut bad, 48);
        let copy = bad.clone();
        set_log_append_time(&mut bad, 99);
        assert_eq!(bad, copy);
    }

    #[test]
    fn batch_iter_yields_whole_batches_and_stops_at_a_partial_tail() {
        let (mut buf, ends) = three_batches();
        let starts = [0, ends[0], ends[1]];
        let whole = buf.len();
        buf.extend_from_slice(&encode(Compression::None, 2, 0)[..70]);
        let got: Vec<(usize, BatchHeader)> = BatchIter::new(&buf).collect();
        assert_eq!(got.len(), 3);
        for (i, (pos, h)) in got.iter().enumerate() {
            assert_eq!(*pos, starts[i]);
            assert_eq!(*h, BatchHeader::parse(&buf[starts[i]..]).unwrap());
            assert_eq!(pos + h.total_len(), ends[i]);
        }
        assert_eq!(
            got.iter().map(|(_, h)| h.base_offset).collect::<Vec<_>>(),
            [0, 3, 8]
        );
        let mut it = BatchIter::new(&buf);
        it.by_ref().for_each(drop);
        assert_eq!(it.position(), whole);
        assert_eq!(it.next(), None);
        // Every truncation yields exactly the batches that are whole.
        for cut in 0..=whole {
            let n = BatchIter::new(&buf[..cut]).count();
            assert_eq!(n, ends.iter().filter(|&&e| e <= cut).count(), "cut {cut}");
        }
        assert_eq!(BatchIter::new(&[]).next(), None);
    }

    #[test]
    fn batch_iter_stops_at_a_too_short_batch_length() {
        let (mut buf, ends) = three_batches();
        set_batch_length(&mut buf[ends[0]..], 48);
        assert_eq!(BatchIter::new(&buf).count(), 1);
        set_batch_length(&mut buf[ends[0]..], -1);
        assert_eq!(BatchIter::new(&buf).count(), 1);
    }

    #[test]
    fn valid_prefix_of_every_truncation() {
        let (buf, ends) = three_batches();
        for cut in 0..=buf.len() {
            let want = ends
                .iter()
                .copied()
                .filter(|&e| e <= cut)
                .max()
                .unwrap_or(0);
            assert_eq!(valid_prefix_len(&buf[..cut], None), want, "cut {cut}");
            assert_eq!(valid_prefix_len(&buf[..cut], Some(0)), want, "cut {cut}");
        }
    }

    #[test]
    fn scan_summary() {
        let (buf, ends) = three_batches();
        let s = scan_valid_prefix(&buf, None);
        assert_eq!(
            s,
            PrefixSummary {
                valid_len: ends[2],
                batch_count: 3,
                first_offset: Some(0),
                last_offset: Some(14),
                max_timestamp: BASE_TS + 6,
                offset_of_max_timestamp: 14,
            }
        );
        let empty = scan_valid_prefix(&[], Some(5));
        assert_eq!(
            empty,
            PrefixSummary {
                valid_len: 0,
                batch_count: 0,
                first_offset: None,
                last_offset: None,
                max_timestamp: -1,
                offset_of_max_timestamp: -1,
            }
        );
        // The first batch carrying the maximum wins.
        let mut b = buf.clone();
        set_log_append_time(&mut b[..ends[0]], BASE_TS + 100);
        set_log_append_time(&mut b[ends[0]..ends[1]], BASE_TS + 100);
        let s = scan_valid_prefix(&b, None);
        assert_eq!(
            (s.max_timestamp, s.offset_of_max_timestamp),
            (BASE_TS + 100, 2)
        );
    }

    #[test]
    fn valid_prefix_rules() {
        let (buf, ends) = three_batches();
        // expected_next_offset: the first batch must start at or after it.
        assert_eq!(valid_prefix_len(&buf, Some(0)), ends[2]);
        assert_eq!(valid_prefix_len(&buf, Some(1)), 0);
        let mut shifted = buf.clone();
        set_base_offset(&mut shifted[..], 100);
        set_base_offset(&mut shifted[ends[0]..], 103);
        set_base_offset(&mut shifted[ends[1]..], 200);
        assert_eq!(valid_prefix_len(&shifted, Some(100)), ends[2]);
        assert_eq!(valid_prefix_len(&shifted, Some(101)), 0);
        assert_eq!(valid_prefix_len(&shifted, None), ends[2]);

        // Offsets must increase strictly: second batch overlapping the first.
        let mut overlap = buf.clone();
        set_base_offset(&mut overlap[ends[0]..], 2);
        assert_eq!(valid_prefix_len(&overlap, None), ends[0]);
        // ... or going backwards.
        let mut back = buf.clone();
        set_base_offset(&mut back[ends[1]..], 0);
        assert_eq!(valid_prefix_len(&back, None), ends[1]);
        // Negative base offsets are never valid.
        let mut neg = buf.clone();
        set_base_offset(&mut neg, -3);
        assert_eq!(valid_prefix_len(&neg, None), 0);

        // A corrupt byte in the middle batch.
        let mut crc = buf.clone();
        crc[ends[0] + 70] ^= 1;
        assert_eq!(valid_prefix_len(&crc, None), ends[0]);
        // Wrong magic in the last batch.
        let mut magic = buf.clone();
        magic[ends[1] + MAGIC_OFFSET] = 1;
        assert_eq!(valid_prefix_len(&magic, None), ends[1]);
        // batch_length below the minimum.
        let mut short = buf.clone();
        set_batch_length(&mut short[ends[0]..], 48);
        assert_eq!(valid_prefix_len(&short, None), ends[0]);
        // Record count disagreeing with lastOffsetDelta (CRC fixed up).
        let mut count = buf.clone();
        count[ends[1] + 60] ^= 1;
        fix_crc(&mut count[ends[1]..]);
        assert_eq!(valid_prefix_len(&count, None), ends[1]);
        // A last offset past i64::MAX.
        let mut huge = buf.clone();
        set_base_offset(&mut huge, i64::MAX - 1);
        assert_eq!(valid_prefix_len(&huge, None), 0);
        // A batch ending exactly at i64::MAX is valid but nothing may follow.
        let mut top = buf.clone();
        set_base_offset(&mut top, i64::MAX - 2);
        let s = scan_valid_prefix(&top, None);
        assert_eq!((s.valid_len, s.last_offset), (ends[0], Some(i64::MAX)));
    }

    proptest! {
        #[test]
        fn any_flipped_byte_in_crc_region_is_corrupt(
            c in 0usize..5,
            pos_frac in 0.0f64..1.0,
            flip in 1u8..=255,
        ) {
            let b = encode(ALL_COMPRESSIONS[c], 8, 0);
            let region = b.len() - ATTRIBUTES_OFFSET;
            let pos = ATTRIBUTES_OFFSET + ((pos_frac * region as f64) as usize).min(region - 1);
            let mut bad = b.clone();
            bad[pos] ^= flip;
            let err = validate_produce_batch(&bad, BIG).unwrap_err();
            prop_assert!(matches!(err, BatchError::CorruptCrc { .. }), "pos {} got {:?}", pos, err);
            prop_assert_eq!(err.error_code(), 2);
            prop_assert_eq!(valid_prefix_len(&bad, None), 0);
        }

        #[test]
        fn valid_prefix_after_random_truncation(
            sizes in proptest::collection::vec((1usize..20, 0usize..5), 3),
            cut_frac in 0.0f64..=1.0,
        ) {
            let mut buf = Vec::new();
            let mut ends = Vec::new();
            let mut next = 0i64;
            for (n, c) in sizes {
                let mut b = encode(ALL_COMPRESSIONS[c], n, 0);
                set_base_offset(&mut b, next);
                next += n as i64;
                buf.extend_from_slice(&b);
                ends.push(buf.len());
            }
            let cut = ((cut_frac * buf.len() as f64) as usize).min(buf.len());
            let want = ends.iter().copied().filter(|&e| e <= cut).max().unwrap_or(0);
            prop_assert_eq!(valid_prefix_len(&buf[..cut], None), want);
            let s = scan_valid_prefix(&buf[..cut], Some(0));
            prop_assert_eq!(s.valid_len, want);
            prop_assert_eq!(s.batch_count, ends.iter().filter(|&&e| e <= cut).count());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), max in any::<i32>()) {
            let _ = BatchHeader::parse(&bytes).map(|h| (h.total_len(), h.last_offset(), h.last_sequence()));
            let _ = validate_produce_batch(&bytes, max);
            let mut pos = 0;
            for (p, h) in BatchIter::new(&bytes) {
                prop_assert!(p >= pos);
                pos = p + h.total_len();
                prop_assert!(pos <= bytes.len());
            }
            let s = scan_valid_prefix(&bytes, None);
            prop_assert!(s.valid_len <= bytes.len());
            let _ = valid_prefix_len(&bytes, Some(i64::MAX));
            let mut m = bytes.clone();
            set_log_append_time(&mut m, 1);
            set_base_offset(&mut m, 1);
            set_partition_leader_epoch(&mut m, 1);
        }

        #[test]
        fn mutated_batches_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let (mut buf, _) = three_batches();
            for (i, v) in edits {
                let at = i.index(buf.len());
                buf[at] = v;
            }
            let end = cut.index(buf.len() + 1);
            let buf = &buf[..end];
            let _ = validate_produce_batch(buf, BIG);
            let n = BatchIter::new(buf).count();
            let s = scan_valid_prefix(buf, None);
            prop_assert!(s.batch_count <= n);
            prop_assert!(s.valid_len <= buf.len());
            // Whatever the scan accepts, validation accepts batch by batch
            // (modulo the produce-only rules).
            for (p, h) in BatchIter::new(&buf[..s.valid_len]) {
                let r = validate_produce_batch(&buf[p..p + h.total_len()], BIG);
                prop_assert!(
                    r.is_ok()
                        || matches!(
                            r,
                            Err(BatchError::UnsupportedCompression(_) | BatchError::ControlBatchFromClient)
                        ),
                    "{:?}",
                    r
                );
            }
        }
    }
}
