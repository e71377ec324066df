//! The produce-path checks and conversions that need a batch's records:
//! Kafka's `LogValidator` for topic configs (keys on compacted topics,
//! KIP-937 timestamp bounds) and `compression.type` (recompress to the
//! topic's codec).
//!
//! Records are read only when a rule needs them. An uncompressed batch is
//! scanned in place; a compressed one is decompressed only to check keys, a
//! finite `message.timestamp.before.max.ms`, a batch whose maxTimestamp is past
//! the after bound, or to recompress. Otherwise the batch is appended as sent
//! (zero-copy), which keeps the common case (producer codec, delete policy) as
//! cheap as before.
//!
//! Recompression keeps the header as sent (offsets, timestamps, producer id,
//! epoch, sequence, transactional flag) and re-encodes only the records
//! section, byte for byte the same records, with the new codec; the codec
//! bits, batchLength and CRC are rewritten.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use super::batch::{self, BatchError, BatchHeader, RecordRules, HEADER_LEN};
use crate::config::{TimestampType, TopicConfig};

/// Codec ids in the batch attributes.
pub const NONE: u8 = 0;
pub const GZIP: u8 = 1;
pub const SNAPPY: u8 = 2;
pub const LZ4: u8 = 3;
pub const ZSTD: u8 = 4;

/// `compression.type` as a target codec: `Some(None)` for "producer" (keep
/// what the producer sent), `Some(Some(id))` for a codec, `None` if unknown.
/// Called once per append, so it compares in place rather than allocating a
/// lower-cased copy.
pub fn target_codec(name: &str) -> Option<Option<u8>> {
    const NAMES: [(&str, Option<u8>); 7] = [
        ("producer", None),
        ("uncompressed", Some(NONE)),
        ("none", Some(NONE)),
        ("gzip", Some(GZIP)),
        ("snappy", Some(SNAPPY)),
        ("lz4", Some(LZ4)),
        ("zstd", Some(ZSTD)),
    ];
    let name = name.trim();
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, codec)| codec)
}

/// What one append must check and convert, taken from the topic config at
/// the start of the append (a changed config applies from the next append).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendRules {
    pub max_message_bytes: i32,
    pub records: RecordRules,
    /// The codec batches are stored with; `None` keeps the producer's.
    pub target_codec: Option<u8>,
}

impl AppendRules {
    pub fn new(config: &TopicConfig) -> AppendRules {
        let timestamp_bounds = (config.message_timestamp_type == TimestampType::CreateTime)
            .then_some((
                config.message_timestamp_before_max_ms,
                config.message_timestamp_after_max_ms,
            ));
        AppendRules {
            max_message_bytes: config.max_message_bytes,
            records: RecordRules {
                compacted: config.compacted(),
                timestamp_bounds,
            },
            // Config validation refuses unknown names; keep the batch if one
            // slipped through.
            target_codec: target_codec(&config.compression_type).flatten(),
        }
    }
}

/// Validates the records of a client batch that passed
/// [`batch::validate_produce_batch`] and converts it to the topic's codec.
/// `Ok(None)`: append `records` as sent; `Ok(Some(bytes))`: append `bytes`
/// instead (recompressed). `partition` (topic, index) names the partition
/// in messages.
pub fn prepare_append(
    records: &[u8],
    header: &BatchHeader,
    rules: &AppendRules,
    now_ms: i64,
    partition: (&str, i32),
) -> Result<Option<Vec<u8>>, BatchError> {
    let codec = header.compression();
    // Control batches are never (re)compressed; clients cannot send them,
    // this only guards other callers.
    let target = rules
        .target_codec
        .filter(|&t| t != codec && !header.is_control());
    let payload = records
        .get(HEADER_LEN..header.total_len())
        .ok_or(BatchError::Truncated)?;
    if codec == NONE {
        if rules.records.active() {
            batch::check_records(header, payload, &rules.records, now_ms, partition)?;
        }
        return match target {
            Some(t) => rebuild(records, t, payload, rules.max_message_bytes).map(Some),
            None => Ok(None),
        };
    }
    if target.is_none() && !needs_records(header, &rules.records, now_ms) {
        return Ok(None);
    }
    let raw = decompress(codec, payload, decompressed_limit(rules.max_message_bytes))?;
    batch::check_records(header, &raw, &rules.records, now_ms, partition)?;
    match target {
        Some(t) => rebuild(records, t, &raw, rules.max_message_bytes).map(Some),
        None => Ok(None),
    }
}

/// Whether a compressed batch kept as sent must still be decompressed for
/// the record rules. The after bound is judged by the batch's maxTimestamp
/// (the largest record timestamp); keys and the before bound need every
/// record.
fn needs_records(header: &BatchHeader, rules: &RecordRules, now_ms: i64) -> bool {
    if rules.compacted {
        return true;
    }
    match rules.timestamp_bounds {
        None => false,
        Some((before, after)) => {
            before != i64::MAX
                || header.is_log_append_time()
                || i128::from(header.max_timestamp) - i128::from(now_ms) > i128::from(after)
        }
    }
}

/// A new batch: the header of `batch` with codec `target` and the
/// uncompressed records `raw` compressed with it.
fn rebuild(
    batch: &[u8],
    target: u8,
    raw: &[u8],
    max_message_bytes: i32,
) -> Result<Vec<u8>, BatchError> {
    let head = batch.get(..HEADER_LEN).ok_or(BatchError::Truncated)?;
    let mut out = Vec::with_capacity(HEADER_LEN + raw.len() / 2);
    out.extend_from_slice(head);
    compress_into(target, raw, &mut out)?;
    batch::set_compression(&mut out, target);
    batch::seal(&mut out);
    // Kafka checks the size again when the batch changed.
    if i64::try_from(out.len()).unwrap_or(i64::MAX) > i64::from(max_message_bytes) {
        return Err(BatchError::TooLarge {
            size: out.len(),
            max: max_message_bytes,
        });
    }
    Ok(out)
}

/// The floor of [`decompressed_limit`].
pub const MIN_DECOMPRESSED_LIMIT: usize = 64 << 20;

/// How far one batch's records may expand when decompressed: 64 times the
/// topic's `max.message.bytes`, at least 64 MiB. Kafka streams a compressed
/// batch record by record and never holds it whole; Runnel decompresses the
/// records section into memory, so a "compression bomb" (a batch within
/// `max.message.bytes` that expands to gigabytes) must be cut off. Clients
/// cap the uncompressed batch near their own max request size (1 MB by
/// default), far below this.
pub fn decompressed_limit(max_message_bytes: i32) -> usize {
    usize::try_from(max_message_bytes)
        .unwrap_or(0)
        .saturating_mul(64)
        .max(MIN_DECOMPRESSED_LIMIT)
}

/// Why a batch over [`decompressed_limit`] is refused. INVALID_RECORD, as
/// Kafka's record iterator raises for records it cannot read or for bytes
/// left past the declared records; not CORRUPT_MESSAGE, which producers
/// retry, while this batch would be refused again.
const OVER_LIMIT: BatchError = BatchError::MalformedRecords(
    "records decompress past the broker's limit (64 times max.message.bytes, at least 64 MiB)",
);

/// The uncompressed records section of a batch compressed with `codec`,
/// refused once it grows past `limit` bytes; memory held stays within
/// about `limit`, whatever the payload claims.
pub fn decompress(codec: u8, payload: &[u8], limit: usize) -> Result<Bytes, BatchError> {
    let corrupt = |e: io::Error| BatchError::Decompress(e.to_string());
    let out = match codec {
        NONE => return Ok(Bytes::copy_from_slice(payload)),
        // Every gzip member, as Java's GZIPInputStream reads them.
        GZIP => read_bounded(flate2::read::MultiGzDecoder::new(payload), payload, limit)?,
        SNAPPY => snappy_bounded(payload, limit)?,
        LZ4 => read_bounded(lz4::Decoder::new(payload).map_err(corrupt)?, payload, limit)?,
        ZSTD => read_bounded(
            zstd::stream::read::Decoder::with_buffer(payload).map_err(corrupt)?,
            payload,
            limit,
        )?,
        other => return Err(BatchError::UnsupportedCompression(other)),
    };
    Ok(Bytes::from(out))
}

/// Growth step of the decompression buffers.
const CHUNK: usize = 64 << 10;

/// Makes room for `needed` bytes in `out`, doubling but never past `cap`
/// (one past the limit: the byte that tells a bomb from a batch exactly at
/// the limit), so the buffer never holds much more than the limit.
fn grow(out: &mut Vec<u8>, needed: usize, cap: usize) {
    if needed > out.capacity() {
        let target = out.capacity().saturating_mul(2).max(needed).min(cap);
        out.reserve_exact(target.max(needed) - out.len());
    }
    out.resize(needed, 0);
}

/// Everything `decoder` yields, or [`OVER_LIMIT`] once past `limit`.
fn read_bounded(
    mut decoder: impl Read,
    payload: &[u8],
    limit: usize,
) -> Result<Vec<u8>, BatchError> {
    let cap = limit.saturating_add(1);
    let mut out = Vec::with_capacity(payload.len().saturating_mul(4).max(CHUNK).min(cap));
    let mut len = 0;
    loop {
        if len == out.len() {
            if len > limit {
                return Err(OVER_LIMIT);
            }
            grow(&mut out, len + len.max(CHUNK).min(cap - len), cap);
        }
        match decoder.read(&mut out[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BatchError::Decompress(e.to_string())),
        }
    }
    out.truncate(len);
    Ok(out)
}

/// Kafka's snappy framing (xerial's `SnappyOutputStream`): an 8-byte magic,
/// version and compatible version (4 bytes each), then blocks, each a
/// 4-byte big-endian length and a raw snappy block. Without the magic the
/// payload is one raw snappy block, as xerial's `SnappyInputStream` reads
/// it. Each block states its uncompressed size up front; it is checked
/// against the limit before any room is made for it.
fn snappy_bounded(payload: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    const MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
    const HEADER: usize = 16;
    let corrupt = |what: String| BatchError::Decompress(format!("snappy: {what}"));
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, block: &[u8]| -> Result<(), BatchError> {
        let size = snap::raw::decompress_len(block).map_err(|e| corrupt(e.to_string()))?;
        if size > limit - out.len() {
            return Err(OVER_LIMIT);
        }
        let start = out.len();
        grow(out, start + size, limit);
        let n = snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| corrupt(e.to_string()))?;
        out.truncate(start + n);
        Ok(())
    };
    if payload.is_empty() {
        return Err(corrupt("empty payload".into()));
    }
    if !payload.starts_with(MAGIC) {
        put(&mut out, payload)?;
        return Ok(out);
    }
    let mut rest = payload
        .get(HEADER..)
        .ok_or_else(|| corrupt("truncated header".into()))?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated block length".into()))?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or_else(|| corrupt(format!("block of {len} bytes past the end")))?;
        put(&mut out, block)?;
        rest = &tail[len..];
    }
    Ok(out)
}

/// Appends `raw` compressed with `codec` to `out`.
pub fn compress_into(codec: u8, raw: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    fn fill(raw: &[u8]) -> impl FnOnce(&mut BytesMut) -> anyhow::Result<()> + '_ {
        move |buf| {
            buf.extend_from_slice(raw);
            Ok(())
        }
    }
    let result = match codec {
        NONE => {
            out.extend_from_slice(raw);
            return Ok(());
        }
        GZIP => Gzip::compress(out, fill(raw)),
        SNAPPY => Snappy::compress(out, fill(raw)),
        LZ4 => Lz4::compress(out, fill(raw)),
        ZSTD => Zstd::compress(out, fill(raw)),
        other => return Err(BatchError::UnsupportedCompression(other)),
    };
    result.map_err(|e| BatchError::Recompress(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::log::batch::{validate_produce_batch, RecordError};
    use crate::log::partition::PartitionLog;
    use crate::log::LogError;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType as RecordTs,
    };
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000_000;
    const BIG: i32 = 1 << 30;
    const CODECS: [(u8, Compression); 5] = [
        (NONE, Compression::None),
        (GZIP, Compression::Gzip),
        (SNAPPY, Compression::Snappy),
        (LZ4, Compression::Lz4),
        (ZSTD, Compression::Zstd),
    ];
    const TP: (&str, i32) = ("t", 3);

    fn record(i: usize, key: bool, ts: i64) -> Record {
        let mut headers = kafka_protocol::indexmap::IndexMap::new();
        headers.insert(format!("h{i}").into(), Some(Bytes::from(vec![i as u8; 3])));
        headers.insert("empty".into(), None);
        Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 4242,
            producer_epoch: 7,
            timestamp_type: RecordTs::Creation,
            offset: i as i64,
            sequence: 100 + i as i32,
            timestamp: ts,
            key: key.then(|| Bytes::from(format!("key-{i}"))),
            value: if i % 4 == 3 {
                None
            } else {
                Some(Bytes::from(format!("value-{i}-").repeat(20)))
            },
            headers,
        }
    }

    fn encode(records: &[Record], c: Compression) -> Vec<u8> {
        let mut buf = Vec::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression: c,
            },
        )
        .unwrap();
        buf
    }

    /// `n` records at NOW + i; `keyless` lists the records without a key.
    fn batch(n: usize, keyless: &[usize], c: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| record(i, !keyless.contains(&i), NOW + i as i64))
            .collect();
        encode(&records, c)
    }

    fn rules(compacted: bool, bounds: Option<(i64, i64)>, target: Option<u8>) -> AppendRules {
        AppendRules {
            max_message_bytes: BIG,
            records: RecordRules {
                compacted,
                timestamp_bounds: bounds,
            },
            target_codec: target,
        }
    }

    fn prepare(b: &[u8], r: &AppendRules, now: i64) -> Result<Option<Vec<u8>>, BatchError> {
        let h = validate_produce_batch(b, BIG).unwrap();
        prepare_append(b, &h, r, now, TP)
    }

    fn decode(b: &[u8]) -> kafka_protocol::records::RecordSet {
        RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(b)).unwrap()
    }

    #[test]
    fn codec_names() {
        assert_eq!(target_codec("producer"), Some(None));
        assert_eq!(target_codec("uncompressed"), Some(Some(NONE)));
        assert_eq!(target_codec("gzip"), Some(Some(GZIP)));
        assert_eq!(target_codec("snappy"), Some(Some(SNAPPY)));
        assert_eq!(target_codec("lz4"), Some(Some(LZ4)));
        assert_eq!(target_codec("zstd"), Some(Some(ZSTD)));
        assert_eq!(target_codec("brotli"), None);
        assert_eq!(target_codec(" ZSTD "), Some(Some(ZSTD)));
        assert_eq!(target_codec("none"), Some(Some(NONE)));
        assert_eq!(target_codec("gzip2"), None);
    }

    #[test]
    fn rules_from_config() {
        let mut c = BrokerConfig::default_for_tests("/nonexistent".into()).topic_defaults;
        let r = AppendRules::new(&c);
        assert_eq!(r.target_codec, None);
        assert!(!r.records.compacted);
        assert_eq!(
            r.records.timestamp_bounds,
            Some((
                c.message_timestamp_before_max_ms,
                c.message_timestamp_after_max_ms
            ))
        );
        c.cleanup_policy = "compact,delete".into();
        c.compression_type = "zstd".into();
        c.message_timestamp_type = TimestampType::LogAppendTime;
        c.max_message_bytes = 1234;
        let r = AppendRules::new(&c);
        assert!(r.records.compacted);
        assert_eq!(r.records.timestamp_bounds, None);
        assert_eq!(r.target_codec, Some(ZSTD));
        assert_eq!(r.max_message_bytes, 1234);
        c.cleanup_policy = "delete".into();
        assert!(!AppendRules::new(&c).records.compacted);
    }

    #[test]
    fn recompression_for_every_codec_pair_keeps_records_and_header() {
        for (src, sc) in CODECS {
            let sent = batch(12, &[], sc);
            let before = BatchHeader::parse(&sent).unwrap();
            let want = decode(&sent).records;
            for (dst, _) in CODECS {
                let out = prepare(&sent, &rules(false, None, Some(dst)), NOW).unwrap();
                let Some(out) = out else {
                    assert_eq!(src, dst, "{src}->{dst} kept as sent");
                    continue;
                };
                assert_ne!(src, dst);
                // A valid batch (CRC, length) with the new codec bits only.
                let h = validate_produce_batch(&out, BIG).unwrap();
                assert_eq!(h.compression(), dst, "{src}->{dst}");
                assert_eq!(h.attributes & !0x07, before.attributes & !0x07);
                assert_eq!(
                    (
                        h.base_offset,
                        h.last_offset_delta,
                        h.base_timestamp,
                        h.max_timestamp
                    ),
                    (
                        before.base_offset,
                        before.last_offset_delta,
                        before.base_timestamp,
                        before.max_timestamp
                    )
                );
                assert_eq!(
                    (
                        h.producer_id,
                        h.producer_epoch,
                        h.base_sequence,
                        h.records_count
                    ),
                    (4242, 7, 100, 12)
                );
                assert!(h.is_transactional());
                let got = decode(&out);
                assert_eq!(got.records, want, "{src}->{dst}");
                // The records section is the same bytes, uncompressed.
                assert_eq!(
                    decompress(dst, &out[HEADER_LEN..], MIN_DECOMPRESSED_LIMIT).unwrap(),
                    decompress(src, &sent[HEADER_LEN..], MIN_DECOMPRESSED_LIMIT).unwrap()
                );
            }
        }
    }

    #[test]
    fn producer_codec_and_default_rules_keep_the_batch_as_sent() {
        for (_, c) in CODECS {
            let b = batch(5, &[1], c);
            let def = rules(false, Some((i64::MAX, 3_600_000)), None);
            assert_eq!(prepare(&b, &def, NOW).unwrap(), None);
        }
    }

    #[test]
    fn keyless_records_on_compacted_topics_are_refused_per_record() {
        for (_, c) in CODECS {
            let b = batch(25, &[0, 10, 20], c);
            let err = prepare(&b, &rules(true, None, None), NOW).unwrap_err();
            assert_eq!(err.error_code(), 87);
            let (errors, message) = err.record_errors().unwrap();
            let text = "Compacted topic cannot accept message without key in topic partition t-3";
            assert_eq!(
                errors,
                [0, 10, 20]
                    .map(|i| RecordError {
                        batch_index: i,
                        message: text.into()
                    })
                    .as_slice()
            );
            assert_eq!(
                message,
                format!(
                    "One or more records have been rejected due to 3 record errors in total, \
                     and only showing the first three errors at most: [RecordError(batchIndex=0, \
                     message='{text}'), RecordError(batchIndex=10, message='{text}'), \
                     RecordError(batchIndex=20, message='{text}')]"
                )
            );
            // Keyed records pass; a non-compacted topic takes keyless ones.
            assert!(prepare(&batch(5, &[], c), &rules(true, None, None), NOW).is_ok());
            assert!(prepare(&b, &rules(false, None, None), NOW).is_ok());
        }
    }

    #[test]
    fn timestamp_bounds_on_both_sides() {
        let (before, after) = (60_000, 10_000);
        let bounds = Some((before, after));
        for (_, c) in CODECS {
            // Exactly on the bounds: accepted.
            for ts in [NOW - before, NOW + after, NOW] {
                let b = encode(&[record(0, true, ts)], c);
                assert_eq!(prepare(&b, &rules(false, bounds, None), NOW), Ok(None));
            }
            for ts in [NOW - before - 1, NOW + after + 1] {
                let b = encode(&[record(0, true, NOW), record(1, true, ts)], c);
                let err = prepare(&b, &rules(false, bounds, None), NOW).unwrap_err();
                assert_eq!(err.error_code(), 32, "ts {ts}");
                let (errors, message) = err.record_errors().unwrap();
                assert_eq!(
                    message,
                    "One or more records have been rejected due to invalid timestamp"
                );
                assert_eq!(
                    errors,
                    [RecordError {
                        batch_index: 1,
                        message: format!(
                            "Timestamp {ts} of message with offset 1 is out of range. The \
                             timestamp should be within [{}, {}]",
                            NOW - before,
                            NOW + after
                        )
                    }]
                );
                // LogAppendTime topics ignore the bounds.
                assert_eq!(prepare(&b, &rules(false, None, None), NOW), Ok(None));
            }
        }
    }

    #[test]
    fn key_errors_come_before_timestamp_errors_and_any_bad_timestamp_wins() {
        let b = encode(
            &[
                record(0, false, NOW + 100_000),
                record(1, true, NOW + 100_000),
            ],
            Compression::None,
        );
        let err = prepare(&b, &rules(true, Some((i64::MAX, 1000)), None), NOW).unwrap_err();
        assert_eq!(err.error_code(), 32);
        let (errors, _) = err.record_errors().unwrap();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].message.starts_with("Compacted topic"));
        assert!(errors[1].message.starts_with("Timestamp"));
    }

    #[test]
    fn recompressed_batch_over_max_message_bytes_is_refused() {
        let b = batch(50, &[], Compression::Gzip);
        let mut r = rules(false, None, Some(NONE));
        let out = prepare(&b, &r, NOW).unwrap().unwrap();
        r.max_message_bytes = out.len() as i32 - 1;
        assert!(b.len() < out.len() - 1);
        assert!(matches!(
            prepare(&b, &r, NOW),
            Err(BatchError::TooLarge { .. })
        ));
        r.max_message_bytes = out.len() as i32;
        assert_eq!(prepare(&b, &r, NOW).unwrap(), Some(out));
    }

    #[test]
    fn malformed_records_are_refused() {
        let good = batch(3, &[], Compression::None);
        let strict = rules(true, None, None);
        // recordsCount says 2 (lastOffsetDelta too) while 3 records follow.
        let mut more = good.clone();
        more[23..27].copy_from_slice(&1i32.to_be_bytes());
        more[57..61].copy_from_slice(&2i32.to_be_bytes());
        crate::log::batch::seal(&mut more);
        let err = prepare(&more, &strict, NOW).unwrap_err();
        assert!(matches!(err, BatchError::MalformedRecords(_)), "{err:?}");
        assert_eq!(err.error_code(), 87);
        // A truncated last record.
        let mut cut = good[..good.len() - 3].to_vec();
        crate::log::batch::seal(&mut cut);
        assert!(matches!(
            prepare(&cut, &strict, NOW),
            Err(BatchError::MalformedRecords(_))
        ));
        // Garbage in a gzip batch: corrupt.
        let mut gz = batch(3, &[], Compression::Gzip);
        for b in &mut gz[HEADER_LEN + 12..] {
            *b = 0x55;
        }
        crate::log::batch::seal(&mut gz);
        let err = prepare(&gz, &strict, NOW).unwrap_err();
        assert!(
            matches!(
                err,
                BatchError::Decompress(_) | BatchError::MalformedRecords(_)
            ),
            "{err:?}"
        );
    }

    fn log_with(f: impl FnOnce(&mut TopicConfig)) -> (tempfile::TempDir, PartitionLog) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = BrokerConfig::default_for_tests("/nonexistent".into()).topic_defaults;
        f(&mut c);
        let log = PartitionLog::create(dir.path(), "t", 0, uuid::Uuid::nil(), c, NOW).unwrap();
        (dir, log)
    }

    fn stored(log: &PartitionLog) -> Vec<kafka_protocol::records::RecordSet> {
        let mut bytes = log.read(0, 1 << 20).unwrap().records;
        RecordBatchDecoder::decode_all(&mut bytes).unwrap()
    }

    #[test]
    fn partition_appends_recompressed_with_log_append_time_and_producer_state() {
        let (_d, log) = log_with(|c| {
            c.compression_type = "lz4".into();
            c.message_timestamp_type = TimestampType::LogAppendTime;
        });
        let sent = batch(4, &[], Compression::Gzip);
        let a = log.append_as_leader(&sent, NOW + 5).unwrap();
        assert_eq!((a.base_offset, a.log_append_time), (0, NOW + 5));
        // The producer's retry is still recognised.
        assert!(log.append_as_leader(&sent, NOW + 6).unwrap().duplicate);
        let sets = stored(&log);
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].compression, Compression::Lz4);
        let want = decode(&sent).records;
        for (got, want) in sets[0].records.iter().zip(&want) {
            assert_eq!(got.timestamp_type, RecordTs::LogAppend);
            assert_eq!((&got.key, &got.value), (&want.key, &want.value));
            assert_eq!(
                (got.offset, got.sequence, got.producer_id),
                (want.offset, want.sequence, 4242)
            );
        }
    }

    #[test]
    fn partition_refuses_keyless_on_compacted_and_appends_nothing() {
        let (_d, log) = log_with(|c| c.cleanup_policy = "compact".into());
        let err = log
            .append_as_leader(&batch(3, &[1], Compression::Snappy), NOW)
            .unwrap_err();
        assert_eq!(err.error_code(), 87);
        assert_eq!(log.log_end_offset(), 0);
        assert!(log.producers().is_empty());
        log.append_as_leader(&batch(3, &[], Compression::Snappy), NOW)
            .unwrap();
        assert_eq!(log.log_end_offset(), 3);
    }

    #[test]
    fn lowered_max_message_bytes_applies_to_the_next_append() {
        let (_d, log) = log_with(|_| {});
        let b = batch(3, &[], Compression::None);
        log.append_as_leader(&b, NOW).unwrap();
        let mut c = log.config();
        c.max_message_bytes = b.len() as i32 - 1;
        log.set_config(c);
        let err = log.append_as_leader(&b, NOW).unwrap_err();
        assert!(matches!(err, LogError::Batch(BatchError::TooLarge { .. })));
        assert_eq!(err.error_code(), 10);
        let mut c = log.config();
        c.max_message_bytes = b.len() as i32;
        log.set_config(c);
        let mut retry = b.clone();
        retry[61..].copy_from_slice(&b[61..]);
        assert!(log.append_as_leader(&retry, NOW).is_ok());
    }

    /// `total` zero bytes compressed with `codec`, fed in 1 MiB pieces so
    /// only the compressed form is ever held.
    fn zeros_compressed(codec: u8, total: usize) -> Vec<u8> {
        use std::io::Write;
        fn feed<W: Write>(mut w: W, total: usize) -> W {
            let piece = vec![0u8; 1 << 20];
            let mut left = total;
            while left > 0 {
                let n = left.min(piece.len());
                w.write_all(&piece[..n]).unwrap();
                left -= n;
            }
            w
        }
        match codec {
            GZIP => feed(
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
                total,
            )
            .finish()
            .unwrap(),
            LZ4 => {
                let e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                let (out, r) = feed(e, total).finish();
                r.unwrap();
                out
            }
            ZSTD => feed(
                zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap(),
                total,
            )
            .finish()
            .unwrap(),
            SNAPPY => {
                // xerial framing of one compressed 32 KiB block, repeated.
                const BLOCK: usize = 32 << 10;
                let block = snap::raw::Encoder::new()
                    .compress_vec(&[0u8; BLOCK])
                    .unwrap();
                let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
                for _ in 0..total / BLOCK {
                    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                    out.extend_from_slice(&block);
                }
                out
            }
            _ => unreachable!(),
        }
    }

    /// Peak resident memory of this process (kB) after resetting it, and a
    /// reading of it later: `/proc/self/clear_refs` "5" resets VmHWM.
    fn reset_peak_rss() -> u64 {
        std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
        peak_rss()
    }

    fn peak_rss() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    const COMPRESSED: [u8; 4] = [GZIP, SNAPPY, LZ4, ZSTD];

    #[test]
    fn compression_bombs_are_refused_without_holding_the_expansion() {
        const BOMB: usize = 256 << 20;
        const LIMIT: usize = 4 << 20;
        for codec in COMPRESSED {
            let bomb = zeros_compressed(codec, BOMB);
            // Each within a 1 MB max.message.bytes except snappy (whose
            // ratio is about 20:1), which does not matter here.
            assert!(bomb.len() < BOMB / 16, "{codec}: {}", bomb.len());
            let before = reset_peak_rss();
            let err = decompress(codec, &bomb, LIMIT).unwrap_err();
            let grew_mb = (peak_rss() - before) / 1024;
            assert_eq!(err, OVER_LIMIT, "{codec}");
            assert_eq!(err.error_code(), 87, "{codec}");
            // The limit plus decoder state; an unbounded read holds 256 MiB.
            assert!(grew_mb < 64, "{codec}: peak grew by {grew_mb} MB");
        }
    }

    #[test]
    fn the_limit_is_exact_for_every_codec() {
        // Not all zeros, and odd-sized: several snappy blocks, a partial
        // last one, and more than one read of the streaming decoders.
        let raw: Vec<u8> = (0..(3 << 20) + 17)
            .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x0f)
            .collect();
        for codec in COMPRESSED {
            let mut packed = Vec::new();
            compress_into(codec, &raw, &mut packed).unwrap();
            let out = decompress(codec, &packed, raw.len()).unwrap();
            assert!(out == raw, "{codec}: round trip at the limit");
            assert_eq!(
                decompress(codec, &packed, raw.len() - 1),
                Err(OVER_LIMIT),
                "{codec}"
            );
            assert_eq!(decompress(codec, &packed, 0), Err(OVER_LIMIT), "{codec}");
        }
        // The default limit and its floor.
        assert_eq!(decompressed_limit(1_048_588), 64 * 1_048_588);
        assert_eq!(decompressed_limit(1000), MIN_DECOMPRESSED_LIMIT);
        assert_eq!(decompressed_limit(-1), MIN_DECOMPRESSED_LIMIT);
    }

    #[test]
    fn snappy_sizes_claimed_up_front_are_checked_before_allocating() {
        // A raw block whose header varint claims 4 GiB - 1, and the same
        // block inside xerial framing: refused before any room is made.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        let before = reset_peak_rss();
        assert_eq!(
            decompress(SNAPPY, &claim, MIN_DECOMPRESSED_LIMIT),
            Err(OVER_LIMIT)
        );
        let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        framed.extend_from_slice(&(claim.len() as u32).to_be_bytes());
        framed.extend_from_slice(&claim);
        assert_eq!(
            decompress(SNAPPY, &framed, MIN_DECOMPRESSED_LIMIT),
            Err(OVER_LIMIT)
        );
        assert!((peak_rss() - before) / 1024 < 32);
        // Truncated framing is corrupt, not a panic.
        for cut in [framed.len() - 1, 18, 10, 0] {
            assert!(
                matches!(
                    decompress(SNAPPY, &framed[..cut], MIN_DECOMPRESSED_LIMIT),
                    Err(BatchError::Decompress(_))
                ),
                "cut at {cut}"
            );
        }
    }

    /// A v2 batch of one keyed record whose records section is `payload`
    /// compressed with `codec`.
    fn batch_with_payload(codec: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = batch(1, &[], Compression::None)[..HEADER_LEN].to_vec();
        b.extend_from_slice(payload);
        crate::log::batch::set_compression(&mut b, codec);
        crate::log::batch::seal(&mut b);
        b
    }

    #[test]
    fn a_gzip_bomb_on_a_compacted_topic_is_invalid_record_and_appends_nothing() {
        let (_d, log) = log_with(|c| c.cleanup_policy = "compact".into());
        let max = log.config().max_message_bytes;
        let bomb = batch_with_payload(GZIP, &zeros_compressed(GZIP, 100 << 20));
        assert!(bomb.len() < max as usize, "{}", bomb.len());
        assert!(decompressed_limit(max) < 100 << 20);
        let err = log.append_as_leader(&bomb, NOW).unwrap_err();
        assert!(
            matches!(&err, LogError::Batch(e) if *e == OVER_LIMIT),
            "{err:?}"
        );
        assert_eq!(err.error_code(), 87, "{err:?}");
        assert_eq!(log.log_end_offset(), 0);
        assert!(log.producers().is_empty());
        // The partition takes the next good batch.
        log.append_as_leader(&batch(3, &[], Compression::Gzip), NOW)
            .unwrap();
        assert_eq!(log.log_end_offset(), 3);
    }

    proptest! {
        #[test]
        fn mutated_batches_never_panic(
            codec in 0usize..5,
            target in proptest::option::of(0u8..5),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            compacted in any::<bool>(),
        ) {
            let mut b = batch(6, &[2], CODECS[codec].1);
            for (i, v) in edits {
                let at = HEADER_LEN + i.index(b.len() - HEADER_LEN);
                b[at] = v;
            }
            crate::log::batch::seal(&mut b);
            let h = validate_produce_batch(&b, BIG).unwrap();
            let r = rules(compacted, Some((1_000_000, 1_000_000)), target);
            if let Ok(Some(out)) = prepare_append(&b, &h, &r, NOW, TP) {
                prop_assert!(validate_produce_batch(&out, BIG).is_ok());
            }
        }

        /// Records sections that decompress fine but are damaged (edited,
        /// cut or extended, with any record count): the record checks and
        /// the recompression see them whole.
        #[test]
        fn damaged_records_sections_never_panic(
            codec in 0usize..5,
            target in proptest::option::of(0u8..5),
            n in 1usize..6,
            edits in prop_oneof![
                Just(Vec::new()),
                proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            ],
            cut in proptest::option::of(any::<prop::sample::Index>()),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
            count in prop_oneof![3 => Just(None), 1 => proptest::option::of(any::<i32>())],
            compacted in any::<bool>(),
            append_time in any::<bool>(),
        ) {
            let mut raw = batch(n, &[], Compression::None)[HEADER_LEN..].to_vec();
            for (i, v) in edits {
                let at = i.index(raw.len());
                raw[at] = v;
            }
            if let Some(c) = cut {
                raw.truncate(c.index(raw.len() + 1));
            }
            raw.extend_from_slice(&tail);
            let count = count.unwrap_or(n as i32);
            let mut payload = Vec::new();
            compress_into(CODECS[codec].0, &raw, &mut payload).unwrap();
            let mut b = batch_with_payload(CODECS[codec].0, &payload);
            b[23..27].copy_from_slice(&count.wrapping_sub(1).to_be_bytes());
            b[57..61].copy_from_slice(&count.to_be_bytes());
            if append_time {
                b[22] |= 0x08;
            }
            crate::log::batch::seal(&mut b);
            let Ok(h) = validate_produce_batch(&b, BIG) else { return Ok(()) };
            let r = rules(compacted, Some((i64::MAX / 2, i64::MAX / 2)), target);
            if let Ok(Some(out)) = prepare_append(&b, &h, &r, NOW, TP) {
                let h2 = validate_produce_batch(&out, BIG).unwrap();
                let back = decompress(h2.compression(), &out[HEADER_LEN..], usize::MAX).unwrap();
                prop_assert_eq!(&back[..], &raw[..]);
                prop_assert_eq!(&out[23..HEADER_LEN], &b[23..HEADER_LEN]);
            }
        }
    }
}
