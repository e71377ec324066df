//! ListOffsets and DeleteRecords.
//!
//! ListOffsets answers below Kafka's `lastFetchableOffset`: the last stable
//! offset for READ_COMMITTED, the high watermark otherwise. LATEST is that
//! offset; a timestamp lookup (and MAX_TIMESTAMP) whose offset is not below
//! it finds nothing (`Partition.fetchOffsetForTimestamp`).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
};

use super::{Code, RequestContext, ResponseFuture};
use crate::log::partition::Isolation;
use crate::log::{LogError, PartitionLog};

/// ListOffsets special timestamps (KIP-734, KIP-405).
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

pub fn list_offsets(ctx: &RequestContext, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let isolation = Isolation::from_wire(req.isolation_level);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let info = image.topic(t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some(log) = info.and_then(|i| broker.logs.get(&i.id, p.partition_index)) else {
                        return resp.with_error_code(Code::UnknownTopicOrPartition.code());
                    };
                    if let Err(code) = super::check_leader_epoch(p.current_leader_epoch, &log) {
                        return resp.with_error_code(code);
                    }
                    // leader_epoch exists from v4 on.
                    let epoch = if ctx.version >= 4 { log.leader_epoch() } else { -1 };
                    let Some(found) = lookup(&log, p.timestamp, isolation) else {
                        return resp.with_error_code(Code::InvalidRequest.code());
                    };
                    match found {
                        Ok(Some((ts, offset))) => resp.with_timestamp(ts).with_offset(offset).with_leader_epoch(epoch),
                        Ok(None) => resp,
                        Err(e) => {
                            tracing::error!(topic = %log.topic, partition = log.partition, "list offsets failed: {e}");
                            resp.with_error_code(e.error_code())
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// One partition's ListOffsets answer as (timestamp, offset), `None` inside
/// when nothing matches; `None` outside for an unknown special timestamp.
fn lookup(
    log: &PartitionLog,
    timestamp: i64,
    isolation: Isolation,
) -> Option<Result<Option<(i64, i64)>, LogError>> {
    let last_fetchable = match isolation {
        Isolation::ReadCommitted => log.last_stable_offset(),
        Isolation::ReadUncommitted => log.high_watermark(),
    };
    let below_fetchable =
        |found: Option<(i64, i64)>| found.filter(|&(_, offset)| offset < last_fetchable);
    Some(match timestamp {
        LATEST => Ok(Some((-1, last_fetchable))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, log.log_start_offset()))),
        // No tiered storage: nothing is tiered.
        LATEST_TIERED => Ok(None),
        MAX_TIMESTAMP => log.max_timestamp().map(below_fetchable),
        ts if ts >= 0 => log.offset_for_timestamp(ts).map(below_fetchable),
        _ => return None,
    })
}

pub fn delete_records(ctx: RequestContext, req: DeleteRecordsRequest) -> ResponseFuture {
    let broker = ctx.broker.clone();
    let image = broker.metadata.image();
    let mut changed = false;
    let topics: Vec<_> = req
        .topics
        .into_iter()
        .map(|t| {
            let info = image.topic(t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let Some(log) = info.and_then(|i| broker.logs.get(&i.id, p.partition_index))
                    else {
                        return resp.with_error_code(Code::UnknownTopicOrPartition.code());
                    };
                    match log.delete_records_before(p.offset) {
                        Ok(low) => {
                            changed = true;
                            resp.with_low_watermark(low)
                        }
                        Err(e) => resp.with_error_code(e.error_code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Box::pin(async move {
        if changed {
            // The new log start offsets must survive a restart.
            let logs = broker.logs.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || logs.write_checkpoints()).await
            {
                tracing::error!("writing log start checkpoint failed: {e}");
            }
        }
        ctx.encode(&DeleteRecordsResponse::default().with_topics(topics))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::log::control::{Marker, MarkerType};
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, Record, TimestampType};

    /// A batch of `count` records with timestamps `ts..`; transactional for
    /// producer `pid` when given.
    fn batch(count: usize, ts: i64, pid: Option<i64>) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: pid.is_some(),
                control: false,
                partition_leader_epoch: 0,
                producer_id: pid.unwrap_or(-1),
                producer_epoch: if pid.is_some() { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - i32::from(pid.is_none()),
                timestamp: ts + i as i64,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        crate::coordinator::codec::tests::raw_batch(&records, Compression::None)
    }

    #[test]
    fn read_committed_answers_below_the_last_stable_offset() {
        let root = tempfile::tempdir().unwrap();
        let config = BrokerConfig::default_for_tests(root.path().into()).topic_defaults;
        let log = PartitionLog::create(root.path(), "t", 0, uuid::Uuid::nil(), config, 0).unwrap();
        log.append_as_leader(&batch(2, 1_000, None), 0).unwrap(); // 0-1
        log.append_as_leader(&batch(2, 2_000, Some(5)), 0).unwrap(); // 2-3 open txn
        log.append_as_leader(&batch(1, 3_000, None), 0).unwrap(); // 4
        let rc = Isolation::ReadCommitted;
        let ru = Isolation::ReadUncommitted;
        let get = |ts, iso| lookup(&log, ts, iso).unwrap().unwrap();
        assert_eq!(get(LATEST, ru), Some((-1, 5)));
        assert_eq!(get(LATEST, rc), Some((-1, 2)));
        assert_eq!(get(EARLIEST, rc), Some((-1, 0)));
        // By timestamp: found at or past the LSO → nothing (Kafka's
        // lastFetchableOffset filter).
        assert_eq!(get(1_001, rc), Some((1_001, 1)));
        assert_eq!(get(2_000, ru), Some((2_000, 2)));
        assert_eq!(get(2_000, rc), None);
        assert_eq!(get(3_000, rc), None);
        assert_eq!(get(MAX_TIMESTAMP, ru), Some((3_000, 4)));
        assert_eq!(get(MAX_TIMESTAMP, rc), None);
        assert!(lookup(&log, -7, rc).is_none());
        log.append_marker(
            &Marker {
                kind: MarkerType::Commit,
                producer_id: 5,
                producer_epoch: 0,
                coordinator_epoch: 0,
            },
            0,
        )
        .unwrap();
        assert_eq!(get(LATEST, rc), Some((-1, 6)));
        assert_eq!(get(2_000, rc), Some((2_000, 2)));
        assert_eq!(get(MAX_TIMESTAMP, rc), Some((3_000, 4)));
    }
}
