//! Fetch: sessionless (session id 0) reads up to the high watermark, with
//! long-polling on `max_wait_ms` / `min_bytes` driven by append
//! notifications, never by polling.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};

use super::{Code, RequestContext, ResponseFuture};
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
        let logs: Vec<Arc<PartitionLog>> = wanted
            .iter()
            .filter_map(|w| w.log.as_ref().ok().cloned())
            .collect();
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
            let (partitions, bytes, any_error) = read_all(&wanted, req.max_bytes, ctx.version);
            let done = bytes >= req.min_bytes.max(1) as usize
                || any_error
                || req.max_wait_ms <= 0
                || logs.is_empty()
                || tokio::time::Instant::now() >= deadline;
            if done {
                return ctx.encode(&build_response(&req, partitions));
            }
            tokio::select! {
                _ = futures::future::select_all(notified) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let (partitions, _, _) = read_all(&wanted, req.max_bytes, ctx.version);
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
                match log.read(w.fetch_offset, limit) {
                    Ok(read) => {
                        data.high_watermark = read.high_watermark;
                        data.last_stable_offset = read.high_watermark;
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
                        data.last_stable_offset = data.high_watermark;
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
