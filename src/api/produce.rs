//! Produce: appends are applied at once, in arrival order; the response
//! waits only for what the flush policy demands (group-committed fsync).

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{Code, RequestContext, ResponseFuture, NO_ERROR};
use crate::log::partition::TxnVerificationGuard;
use crate::log::{now_ms, LogError, PartitionLog};
use crate::protocol::{HeaderPrefix, ProtocolError};

pub fn handle(ctx: RequestContext, req: ProduceRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    let image = broker.metadata.image();
    let acks = req.acks;
    let now = now_ms();
    let mut to_flush: Vec<(usize, usize, Arc<PartitionLog>)> = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let info = if ctx.version >= 13 {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.name.as_str())
        };
        // Only the coordinators write internal topics.
        let internal = info.is_some_and(|i| i.is_internal());
        let counters = info.map(|i| broker.metrics.topic(i.id, &i.name));
        let missing = if ctx.version >= 13 {
            Code::UnknownTopicId
        } else {
            Code::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (pi, p) in topic.partition_data.into_iter().enumerate() {
            let mut resp = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let log = info.and_then(|i| broker.logs.get(&i.id, p.index));
            let code = if !matches!(acks, -1..=1) {
                Code::InvalidRequiredAcks.code()
            } else if internal {
                Code::InvalidTopicException.code()
            } else if ctx.version < 7 && p.records.as_deref().is_some_and(is_zstd) {
                // Kafka: ZStandard needs Produce v7+ (KIP-110).
                Code::UnsupportedCompressionType.code()
            } else if let Some(log) = log {
                let txn_id = req.transactional_id.as_ref().map(|t| t.as_str());
                // KIP-467: the records refused one by one, for v8+ responses.
                let mut refused = None;
                let failed = |e: LogError| {
                    log_unexpected(&e, &log);
                    if let LogError::Batch(b) = &e {
                        refused = b
                            .record_errors()
                            .map(|(errors, message)| (errors.to_vec(), message.to_owned()));
                    }
                    e.error_code()
                };
                let appended = p.records.as_deref().map(|r| {
                    match verify_txn(&broker, txn_id, &log, r) {
                        Ok(None) => log.append_as_leader(r, now).map_err(failed),
                        Ok(Some(guard)) => {
                            log.append_as_leader_verified(r, now, guard).map_err(failed)
                        }
                        // Produce v11+ clients know TRANSACTION_ABORTABLE (KIP-890).
                        Err(code) if code == Code::InvalidTxnState.code() && ctx.version >= 11 => {
                            Err(Code::TransactionAbortable.code())
                        }
                        Err(code) => Err(code),
                    }
                });
                if let Some(c) = &counters {
                    count_produce(&broker.metrics, c, p.records.as_deref(), &appended);
                }
                match appended {
                    Some(Ok(appended)) => {
                        resp.base_offset = appended.base_offset;
                        resp.log_append_time_ms = appended.log_append_time;
                        if ctx.version >= 5 {
                            resp.log_start_offset = appended.log_start_offset;
                        }
                        if appended.needs_flush {
                            to_flush.push((ti, pi, log));
                        } else if appended.rolled {
                            // Not awaited: the ack does not depend on it.
                            broker.logs.flush_in_background(log);
                        }
                        NO_ERROR
                    }
                    Some(Err(code)) => {
                        if let Some((errors, message)) = refused.filter(|_| ctx.version >= 8) {
                            resp.record_errors = errors
                                .into_iter()
                                .map(|e| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(e.batch_index)
                                        .with_batch_index_error_message(Some(e.message.into()))
                                })
                                .collect();
                            resp.error_message = Some(message.into());
                        }
                        code
                    }
                    None => Code::InvalidRecord.code(),
                }
            } else {
                missing.code()
            };
            resp.error_code = code;
            partitions.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    Box::pin(async move {
        let _waiting = (!to_flush.is_empty()).then(|| broker.metrics.produce_waiting());
        let flushes = to_flush
            .iter()
            .map(|(_, _, log)| broker.logs.flush(log.clone()));
        let results = futures::future::join_all(flushes).await;
        for ((ti, pi, log), result) in to_flush.iter().zip(results) {
            if let Err(e) = result {
                tracing::error!(topic = %log.topic, partition = log.partition, "flush failed: {e}");
                responses[*ti].partition_responses[*pi].error_code = Code::KafkaStorageError.code();
            }
        }
        if acks == 0 {
            return Ok(None);
        }
        ctx.encode(&ProduceResponse::default().with_responses(responses))
    })
}

/// KIP-890 part 1: the first transactional batch of a producer in a
/// partition must belong to a transaction the coordinator knows includes the
/// partition, so a zombie or a late retry cannot open a transaction nobody
/// will ever close (a "hanging" transaction would hold the LSO forever).
/// `Ok(Some(guard))`: verified, append with the guard (it refuses the batch
/// if the transaction ended in between); `Ok(None)`: nothing to verify.
/// Also refuses a producer's batch without sequences (INVALID_RECORD).
fn verify_txn(
    broker: &crate::broker::Broker,
    transactional_id: Option<&str>,
    log: &PartitionLog,
    records: &[u8],
) -> Result<Option<TxnVerificationGuard>, i16> {
    let Ok(header) = crate::log::batch::BatchHeader::parse(records) else {
        return Ok(None); // the append reports the broken batch
    };
    if header.has_producer_id() && header.base_sequence < 0 && !header.is_control() {
        // Kafka's LogValidator: a client's batch with a producer id must
        // carry sequences (only coordinators write such batches without).
        return Err(Code::InvalidRecord.code());
    }
    if !header.is_transactional() || header.is_control() {
        return Ok(None);
    }
    let Some(id) = transactional_id else {
        // Kafka: transactional records without the request's transactional
        // id are refused as an unauthorized transactional write.
        return Err(Code::TransactionalIdAuthorizationFailed.code());
    };
    if !log.needs_txn_verification(header.producer_id, header.producer_epoch) {
        return Ok(None);
    }
    let guard = log.txn_verification_guard();
    broker.txns.verify(
        id,
        header.producer_id,
        header.producer_epoch,
        &log.topic,
        log.partition,
    )?;
    Ok(Some(guard))
}

/// Kafka's BrokerTopicMetrics for one partition that reached the log:
/// bytes as received and records appended (none for a retried duplicate).
fn count_produce(
    metrics: &crate::metrics::Metrics,
    topic: &crate::metrics::TopicCounters,
    records: Option<&[u8]>,
    appended: &Option<Result<crate::log::Appended, i16>>,
) {
    metrics.produce_attempted(topic);
    match appended {
        Some(Ok(a)) => {
            let bytes = records.map_or(0, <[u8]>::len);
            let count = match records.map(crate::log::batch::BatchHeader::parse) {
                Some(Ok(h)) if !a.duplicate => h.records_count.max(0) as u64,
                _ => 0,
            };
            metrics.produce_appended(topic, bytes, count);
        }
        Some(Err(code)) => metrics.produce_failed(topic, *code),
        None => metrics.produce_failed(topic, Code::InvalidRecord.code()),
    }
}

/// The batch's compression codec (attributes bits 0-2) is zstd (4).
fn is_zstd(records: &[u8]) -> bool {
    records.get(22).is_some_and(|attr_low| attr_low & 0x07 == 4)
}

fn log_unexpected(e: &LogError, log: &PartitionLog) {
    if let LogError::Io(err) = e {
        tracing::error!(topic = %log.topic, partition = log.partition, "append failed: {err}");
    }
}

/// Produce v0–v2 (magic 0/1 message sets) are advertised for old clients'
/// sake but refused: every partition gets UNSUPPORTED_VERSION, in the v0–v2
/// response layout (which the `kafka-protocol` crate does not encode).
/// Request v0–v2 body: acks i16, timeout i32, [topic string, [partition i32,
/// message_set bytes]]. Response: [topic, [partition i32, error i16,
/// base_offset i64, (v2) log_append_time i64]], (v1+) throttle_time_ms i32.
pub fn legacy_unsupported(
    prefix: HeaderPrefix,
    frame: &[u8],
) -> Result<Option<Bytes>, ProtocolError> {
    let malformed = |reason: &str| ProtocolError::Malformed {
        key: kafka_protocol::messages::ApiKey::Produce,
        version: prefix.api_version,
        reason: reason.to_string(),
    };
    let mut b = &frame[8..];
    // client_id: nullable string (header v1).
    let client_len = take_i16(&mut b).ok_or_else(|| malformed("truncated client id"))?;
    if client_len > 0 {
        skip(&mut b, client_len as usize).ok_or_else(|| malformed("truncated client id"))?;
    }
    let acks = take_i16(&mut b).ok_or_else(|| malformed("truncated acks"))?;
    let _timeout = take_i32(&mut b).ok_or_else(|| malformed("truncated timeout"))?;
    let topic_count = take_i32(&mut b).ok_or_else(|| malformed("truncated topics"))?;
    let mut out = BytesMut::new();
    out.put_i32(0);
    out.put_i32(prefix.correlation_id);
    out.put_i32(topic_count.max(0));
    for _ in 0..topic_count.max(0) {
        let name_len = take_i16(&mut b)
            .filter(|&l| l >= 0)
            .ok_or_else(|| malformed("bad topic name"))?;
        let name = b
            .get(..name_len as usize)
            .ok_or_else(|| malformed("truncated topic name"))?;
        out.put_i16(name_len);
        out.put_slice(name);
        b.advance(name_len as usize);
        let parts = take_i32(&mut b).ok_or_else(|| malformed("truncated partitions"))?;
        out.put_i32(parts.max(0));
        for _ in 0..parts.max(0) {
            let partition = take_i32(&mut b).ok_or_else(|| malformed("truncated partition"))?;
            let set_len = take_i32(&mut b).ok_or_else(|| malformed("truncated message set"))?;
            if set_len > 0 {
                skip(&mut b, set_len as usize).ok_or_else(|| malformed("truncated message set"))?;
            }
            out.put_i32(partition);
            out.put_i16(Code::UnsupportedVersion.code());
            out.put_i64(-1);
            if prefix.api_version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if prefix.api_version >= 1 {
        out.put_i32(0);
    }
    if acks == 0 {
        return Ok(None);
    }
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(Some(out.freeze()))
}

fn take_i16(b: &mut &[u8]) -> Option<i16> {
    (b.len() >= 2).then(|| b.get_i16())
}

fn take_i32(b: &mut &[u8]) -> Option<i32> {
    (b.len() >= 4).then(|| b.get_i32())
}

fn skip(b: &mut &[u8], n: usize) -> Option<()> {
    (b.len() >= n).then(|| b.advance(n))
}
