//! ListOffsets and DeleteRecords.

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

/// ListOffsets special timestamps (KIP-734, KIP-405).
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

pub fn list_offsets(ctx: &RequestContext, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
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
                    let found = match p.timestamp {
                        LATEST => Ok(Some((-1, log.high_watermark()))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, log.log_start_offset()))),
                        // No tiered storage: nothing is tiered.
                        LATEST_TIERED => Ok(None),
                        MAX_TIMESTAMP => log.max_timestamp(),
                        ts if ts >= 0 => log.offset_for_timestamp(ts),
                        _ => return resp.with_error_code(Code::InvalidRequest.code()),
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
