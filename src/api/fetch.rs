//! Fetch: sessionless (session id 0) reads up to the high watermark
//! (READ_UNCOMMITTED) or the last stable offset (READ_COMMITTED, with the
//! aborted transactions of the returned range), with long-polling on
//! `max_wait_ms` / `min_bytes` driven by append notifications (markers
//! included), never by polling. Only data a read may return counts towards
//! `min_bytes`, so records past the LSO do not end a READ_COMMITTED wait.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};

use super::{Code, RequestContext, ResponseFuture};
use crate::log::partition::Isolation;
use crate::log::{LogError, PartitionLog};

/// One requested partition, resolved once per request.
struct Wanted {
    topic: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
    log: Result<Arc<PartitionLog>, i16>,
}

/// Kafka's broker-side cap on one Fetch response (`fetch.max.bytes`, 55 MiB):
/// a request asking for more gets this much (the first batch is still
/// returned whole, KIP-74).
pub const FETCH_MAX_BYTES: i32 = 57_671_680;

pub fn handle(ctx: RequestContext, mut req: FetchRequest) -> ResponseFuture {
    req.max_bytes = req.max_bytes.clamp(0, FETCH_MAX_BYTES);
    Box::pin(async move {
        if req.session_id != 0 {
            // Sessions are not kept: a client presenting one starts over.
            return ctx.encode(
                &FetchResponse::default()
                    .with_error_code(Code::FetchSessionIdNotFound.code())
                    .with_session_id(0),
            );
        }
        let broker = ctx.broker.clone();
        let image = broker.metadata.image();
        let by_id = ctx.version >= 13;
        let mut wanted = Vec::new();
        for (ti, topic) in req.topics.iter().enumerate() {
            let info = if by_id {
                image.topic_by_id(&topic.topic_id)
            } else {
                image.topic(topic.topic.as_str())
            };
            for p in &topic.partitions {
                let log = match info {
                    None if by_id => Err(Code::UnknownTopicId.code()),
                    None => Err(Code::UnknownTopicOrPartition.code()),
                    Some(info) => match broker.logs.get(&info.id, p.partition) {
                        None => Err(Code::UnknownTopicOrPartition.code()),
                        Some(log) => {
                            super::check_leader_epoch(p.current_leader_epoch, &log).map(|()| log)
                        }
                    },
                };
                wanted.push(Wanted {
                    topic: ti,
                    partition: p.partition,
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                    log,
                });
            }
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
        let isolation = Isolation::from_wire(req.isolation_level);
        let logs: Vec<Arc<PartitionLog>> = wanted
            .iter()
            .filter_map(|w| w.log.as_ref().ok().cloned())
            .collect();
        // Counted in the fetch purgatory once it has to wait.
        let mut parked = None;
        loop {
            // Register for wake-ups before reading, so an append between the
            // read and the wait is not missed.
            let mut notified: Vec<_> = logs
                .iter()
                .map(|l| Box::pin(l.appended.notified()))
                .collect();
            for n in &mut notified {
                n.as_mut().enable();
            }
            let (partitions, bytes, any_error) =
                read_all(&wanted, req.max_bytes, ctx.version, isolation);
            let done = bytes >= req.min_bytes.max(1) as usize
                || any_error
                || req.max_wait_ms <= 0
                || logs.is_empty()
                || tokio::time::Instant::now() >= deadline;
            if done {
                count_fetch(&broker.metrics, &wanted, &partitions);
                return ctx.encode(&build_response(&req, partitions));
            }
            parked.get_or_insert_with(|| broker.metrics.fetch_waiting());
            tokio::select! {
                _ = futures::future::select_all(notified) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let (partitions, _, _) =
                        read_all(&wanted, req.max_bytes, ctx.version, isolation);
                    count_fetch(&broker.metrics, &wanted, &partitions);
                    return ctx.encode(&build_response(&req, partitions));
                }
            }
        }
    })
}

/// Reads every partition within the response-wide and per-partition byte
/// limits. Only the first partition with data may exceed them (KIP-74).
fn read_all(
    wanted: &[Wanted],
    max_bytes: i32,
    version: i16,
    isolation: Isolation,
) -> (Vec<(usize, PartitionData)>, usize, bool) {
    let mut remaining = max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut any_error = false;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_preferred_read_replica(BrokerId(-1));
        match &w.log {
            Err(code) => {
                data.error_code = *code;
                any_error = true;
            }
            Ok(log) => {
                let limit = (w.max_bytes.max(0) as usize).min(remaining);
                match log.read_isolated(w.fetch_offset, limit, isolation) {
                    Ok(read) => {
                        data.high_watermark = read.high_watermark;
                        data.last_stable_offset = read.last_stable_offset;
                        // Kafka sends null for READ_UNCOMMITTED.
                        data.aborted_transactions = read.aborted.map(|txns| {
                            txns.iter()
                                .map(|t| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(t.producer_id))
                                        .with_first_offset(t.first_offset)
                                })
                                .collect()
                        });
                        if version >= 5 {
                            data.log_start_offset = read.log_start_offset;
                        }
                        let len = read.records.len();
                        if len > limit && total > 0 {
                            // Over the limit and not the first: leave it for
                            // the next fetch.
                        } else {
                            total += len;
                            remaining = remaining.saturating_sub(len);
                            data.records = Some(read.records);
                        }
                    }
                    Err(e) => {
                        if let LogError::Io(err) = &e {
                            tracing::error!(topic = %log.topic, partition = log.partition, "read failed: {err}");
                        }
                        data.error_code = e.error_code();
                        data.high_watermark = log.high_watermark();
                        data.last_stable_offset = log.last_stable_offset();
                        if version >= 5 {
                            data.log_start_offset = log.log_start_offset();
                        }
                        any_error = true;
                    }
                }
            }
        }
        if data.records.is_none() {
            data.records = Some(bytes::Bytes::new());
        }
        out.push((w.topic, data));
    }
    (out, total, any_error)
}

/// Kafka's BrokerTopicMetrics for the partitions of existing topics in a
/// response: one fetch each, its record bytes out, and whether it failed for
/// a reason other than routing or offsets (as Kafka counts failed fetches).
fn count_fetch(
    metrics: &crate::metrics::Metrics,
    wanted: &[Wanted],
    partitions: &[(usize, PartitionData)],
) {
    let mut current: Option<(uuid::Uuid, Arc<crate::metrics::TopicCounters>)> = None;
    for (w, (_, data)) in wanted.iter().zip(partitions) {
        let Ok(log) = &w.log else { continue };
        let counters = match &current {
            Some((id, c)) if *id == log.topic_id => c.clone(),
            _ => {
                let c = metrics.topic(log.topic_id, &log.topic);
                current = Some((log.topic_id, c.clone()));
                c
            }
        };
        let bytes = data.records.as_ref().map_or(0, |r| r.len());
        metrics.fetched(&counters, bytes, fetch_failed(data.error_code));
    }
}

/// Errors Kafka's ReplicaManager expects from a read and does not count as
/// failed fetches.
fn fetch_failed(code: i16) -> bool {
    let expected = [
        Code::OffsetOutOfRange,
        Code::UnknownTopicOrPartition,
        Code::UnknownTopicId,
        Code::NotLeaderOrFollower,
        Code::UnknownLeaderEpoch,
        Code::FencedLeaderEpoch,
        Code::ReplicaNotAvailable,
        Code::KafkaStorageError,
        Code::InconsistentTopicId,
    ];
    code != 0 && !expected.iter().any(|e| e.code() == code)
}

fn build_response(req: &FetchRequest, partitions: Vec<(usize, PartitionData)>) -> FetchResponse {
    let mut topics: Vec<FetchableTopicResponse> = req
        .topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
        })
        .collect();
    for (ti, data) in partitions {
        topics[ti].partitions.push(data);
    }
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::log::control::Marker;
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, Record, TimestampType};

    /// A batch of `count` records; transactional for producer `pid` (epoch
    /// 0, sequence `seq`) when given.
    fn batch(count: usize, txn: Option<(i64, i32)>) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: txn.is_some(),
                control: false,
                partition_leader_epoch: 0,
                producer_id: txn.map_or(-1, |t| t.0),
                producer_epoch: if txn.is_some() { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // Constant offset - sequence keeps one batch.
                sequence: txn.map_or(i as i32 - 1, |t| t.1 + i as i32),
                timestamp: 1_000,
                key: None,
                value: Some(Bytes::from_static(b"value")),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        crate::coordinator::codec::tests::raw_batch(&records, Compression::None)
    }

    fn marker(pid: i64, commit: bool) -> Marker {
        crate::log::tests::marker(pid, 0, commit)
    }

    #[test]
    fn read_committed_fills_lso_and_aborted_transactions() {
        let root = tempfile::tempdir().unwrap();
        let config = BrokerConfig::default_for_tests(root.path().into()).topic_defaults;
        let log = Arc::new(
            PartitionLog::create(root.path(), "t", 0, uuid::Uuid::nil(), config, 0).unwrap(),
        );
        log.append_as_leader(&batch(2, Some((7, 0))), 0).unwrap(); // 0-1
        log.append_as_leader(&batch(1, None), 0).unwrap(); // 2
        log.append_marker(&marker(7, false), 0).unwrap(); // 3
        log.append_as_leader(&batch(1, None), 0).unwrap(); // 4
        log.append_as_leader(&batch(3, Some((8, 0))), 0).unwrap(); // 5-7 open
        log.append_as_leader(&batch(1, None), 0).unwrap(); // 8
        let wanted = |offset| {
            vec![Wanted {
                topic: 0,
                partition: 0,
                fetch_offset: offset,
                max_bytes: 1 << 20,
                log: Ok(log.clone()),
            }]
        };
        let (parts, committed_bytes, err) =
            read_all(&wanted(0), 1 << 20, 12, Isolation::ReadCommitted);
        assert!(!err);
        let p = &parts[0].1;
        assert_eq!((p.high_watermark, p.last_stable_offset), (9, 5));
        let aborted = p.aborted_transactions.as_ref().unwrap();
        assert_eq!(aborted.len(), 1);
        assert_eq!(
            (aborted[0].producer_id, aborted[0].first_offset),
            (ProducerId(7), 0)
        );
        let records = p.records.as_ref().unwrap();
        assert_eq!(committed_bytes, records.len());
        let last = crate::log::batch::BatchIter::new(records)
            .last()
            .map(|(_, h)| h.last_offset());
        assert_eq!(last, Some(4), "stops before the open transaction");

        let (parts, all_bytes, _) = read_all(&wanted(0), 1 << 20, 12, Isolation::ReadUncommitted);
        let p = &parts[0].1;
        assert_eq!((p.high_watermark, p.last_stable_offset), (9, 5));
        assert!(
            p.aborted_transactions.is_none(),
            "null for READ_UNCOMMITTED"
        );
        assert!(all_bytes > committed_bytes);

        // At the LSO nothing is readable committed: min_bytes is not met.
        let (parts, bytes, _) = read_all(&wanted(5), 1 << 20, 12, Isolation::ReadCommitted);
        assert_eq!(bytes, 0);
        assert_eq!(
            parts[0].1.aborted_transactions.as_deref().map(<[_]>::len),
            Some(0)
        );
        log.append_marker(&marker(8, true), 0).unwrap();
        let (parts, bytes, _) = read_all(&wanted(5), 1 << 20, 12, Isolation::ReadCommitted);
        assert!(bytes > 0);
        assert_eq!(parts[0].1.last_stable_offset, 10);
    }
}
