//! The transaction APIs (transaction version 1): InitProducerId with a
//! transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! WriteTxnMarkers, DescribeTransactions, ListTransactions and
//! DescribeProducers. The coordinator logic lives in `coordinator::txn`.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;

use super::{str_bytes as s, Code, RequestContext, ResponseFuture, NO_ERROR};
use crate::broker::Broker;
use crate::coordinator::group::OFFSETS_TOPIC;
use crate::coordinator::txn::records::TxnStatus;
use crate::coordinator::txn::shard::Producer;
use crate::coordinator::txn::write_marker;
use crate::log::control::{Marker, MarkerType};

/// How long EndTxn waits for its markers before answering anyway.
const MARKER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// InitProducerId with a transactional id.
pub fn init_producer_id(ctx: RequestContext, req: InitProducerIdRequest) -> ResponseFuture {
    Box::pin(async move {
        let resp = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let id = req
            .transactional_id
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default();
        // Kafka: an empty id, or a stated producer with only one of id and
        // epoch set, is a malformed request.
        if id.is_empty() || (req.producer_id.0 == -1) != (req.producer_epoch == -1) {
            return ctx.encode(&resp.with_error_code(Code::InvalidRequest.code()));
        }
        let expected = (req.producer_id.0 != -1).then_some(Producer {
            id: req.producer_id.0,
            epoch: req.producer_epoch,
        });
        let broker = ctx.broker.clone();
        let timeout = req.transaction_timeout_ms;
        let result = ctx
            .broker
            .txns
            .call(&ctx.broker, &id.clone(), move |shard, now, out| {
                let mut allocate = || {
                    broker.metadata.allocate_producer_id().map_err(|e| {
                        tracing::error!("producer id allocation failed: {e}");
                        Code::UnknownServerError.code()
                    })
                };
                shard.init_producer_id(&id, timeout, expected, now, &mut allocate, out)
            })
            .await
            .and_then(|r| r);
        let resp = match result {
            Ok(p) => resp
                .with_producer_id(ProducerId(p.id))
                .with_producer_epoch(p.epoch),
            Err(code) => resp.with_error_code(producer_fenced_for(ctx.key, ctx.version, code)),
        };
        ctx.encode(&resp)
    })
}

/// PRODUCER_FENCED (KIP-588) is known to InitProducerId v4+ and EndTxn,
/// AddPartitionsToTxn and AddOffsetsToTxn v2+; older clients get
/// INVALID_PRODUCER_EPOCH, as Kafka answers them.
fn producer_fenced_for(key: ApiKey, version: i16, code: i16) -> i16 {
    let knows_fenced = match key {
        ApiKey::InitProducerId => version >= 4,
        ApiKey::EndTxn => version >= 2,
        ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn => version >= 2,
        _ => true,
    };
    if code == Code::ProducerFenced.code() && !knows_fenced {
        Code::InvalidProducerEpoch.code()
    } else {
        code
    }
}

/// AddPartitionsToTxn: v0–v3 carry one transaction from a client; v4+ a
/// batch of them (from brokers), each possibly verify-only.
pub fn add_partitions_to_txn(
    ctx: RequestContext,
    req: AddPartitionsToTxnRequest,
) -> ResponseFuture {
    Box::pin(async move {
        let mut resp = AddPartitionsToTxnResponse::default();
        if ctx.version <= 3 {
            let producer = Producer {
                id: req.v3_and_below_producer_id.0,
                epoch: req.v3_and_below_producer_epoch,
            };
            let id = req.v3_and_below_transactional_id.to_string();
            resp.results_by_topic_v3_and_below =
                add_one(&ctx, &id, producer, &req.v3_and_below_topics, false).await;
        } else {
            for txn in &req.transactions {
                let producer = Producer {
                    id: txn.producer_id.0,
                    epoch: txn.producer_epoch,
                };
                let id = txn.transactional_id.to_string();
                let results = add_one(&ctx, &id, producer, &txn.topics, txn.verify_only).await;
                resp.results_by_transaction.push(
                    AddPartitionsToTxnResult::default()
                        .with_transactional_id(txn.transactional_id.clone())
                        .with_topic_results(results),
                );
            }
        }
        ctx.encode(&resp)
    })
}

/// One transaction's partitions: unknown ones fail the whole request
/// (UNKNOWN_TOPIC_OR_PARTITION for them, OPERATION_NOT_ATTEMPTED for the
/// rest), as Kafka does; otherwise the coordinator's single answer applies
/// to every partition.
async fn add_one(
    ctx: &RequestContext,
    id: &str,
    producer: Producer,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let image = ctx.broker.metadata.image();
    let exists = |t: &str, p: i32| {
        image
            .topic(t)
            .is_some_and(|info| (0..info.partitions).contains(&p) && !info.is_internal())
    };
    let all: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.to_string(), p)))
        .collect();
    let any_unknown = all.iter().any(|(t, p)| !exists(t, *p));
    let codes: Vec<i16> = if any_unknown {
        all.iter()
            .map(|(t, p)| {
                if exists(t, *p) {
                    Code::OperationNotAttempted.code()
                } else {
                    Code::UnknownTopicOrPartition.code()
                }
            })
            .collect()
    } else if verify_only {
        all.iter()
            .map(|(t, p)| {
                match ctx
                    .broker
                    .txns
                    .verify(id, producer.id, producer.epoch, t, *p)
                {
                    Ok(()) => NO_ERROR,
                    // The coordinator's own codes, as Kafka's verification
                    // answers them (the writing broker maps them for its client).
                    Err(code) if code == Code::InvalidProducerEpoch.code() => {
                        Code::ProducerFenced.code()
                    }
                    Err(code) if code == Code::InvalidTxnState.code() => {
                        Code::TransactionAbortable.code()
                    }
                    Err(code) => code,
                }
            })
            .collect()
    } else {
        let code = add_partitions(ctx, id, producer, all.clone()).await;
        vec![code; all.len()]
    };
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), code) in all.into_iter().zip(codes) {
        let code = producer_fenced_for(ctx.key, ctx.version, code);
        let r = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(partition)
            .with_partition_error_code(code);
        match results.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.results_by_partition.push(r),
            None => results.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(s(&topic)))
                    .with_results_by_partition(vec![r]),
            ),
        }
    }
    results
}

async fn add_partitions(
    ctx: &RequestContext,
    id: &str,
    producer: Producer,
    partitions: Vec<(String, i32)>,
) -> i16 {
    let owned = id.to_owned();
    let result = ctx
        .broker
        .txns
        .call(&ctx.broker, id, move |shard, now, out| {
            shard.add_partitions(&owned, producer, &partitions, now, out)
        })
        .await
        .and_then(|r| r);
    match result {
        Ok(()) => NO_ERROR,
        Err(code) => code,
    }
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
/// transaction, so TxnOffsetCommit may follow.
pub fn add_offsets_to_txn(ctx: RequestContext, req: AddOffsetsToTxnRequest) -> ResponseFuture {
    Box::pin(async move {
        let producer = Producer {
            id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        let code = match ctx.broker.groups.shard_of(&ctx.broker, &req.group_id).await {
            Ok(p) => {
                let id = req.transactional_id.to_string();
                let partitions = vec![(OFFSETS_TOPIC.to_owned(), p as i32)];
                add_partitions(&ctx, &id, producer, partitions).await
            }
            Err(code) => code,
        };
        let code = producer_fenced_for(ctx.key, ctx.version, code);
        ctx.encode(&AddOffsetsToTxnResponse::default().with_error_code(code))
    })
}

/// EndTxn: commit or abort. The decision (PrepareCommit/PrepareAbort) is
/// made durable, the markers are written, then the answer goes out. (Kafka
/// answers after the decision and writes markers afterwards; a new
/// transaction of the producer waits with CONCURRENT_TRANSACTIONS until
/// they are written, here too when the wait is cut short.)
pub fn end_txn(ctx: RequestContext, req: EndTxnRequest) -> ResponseFuture {
    Box::pin(async move {
        let producer = Producer {
            id: req.producer_id.0,
            epoch: req.producer_epoch,
        };
        let id = req.transactional_id.to_string();
        let commit = req.committed;
        let owned = id.clone();
        let result = ctx
            .broker
            .txns
            .call(&ctx.broker, &id, move |shard, now, out| {
                shard
                    .end_txn(&owned, producer, commit, now, out)
                    .map(|()| shard.wait_for_completion(&owned))
            })
            .await
            .and_then(|r| r);
        let code = match result {
            Ok(done) => {
                // The outcome is decided and durable; on one node the markers
                // take a moment, so answer once they are written and a
                // read_committed consumer sees the result at once (bounded:
                // a marker that cannot be written yet is retried in the
                // background and the answer does not wait for it).
                if let Some(done) = done {
                    let _ = tokio::time::timeout(MARKER_WAIT, done).await;
                }
                NO_ERROR
            }
            Err(code) => producer_fenced_for(ctx.key, ctx.version, code),
        };
        ctx.encode(
            &EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
    })
}

/// WriteTxnMarkers (inter-broker): writes each marker to its partitions as
/// the local coordinator does.
pub fn write_txn_markers(ctx: RequestContext, req: WriteTxnMarkersRequest) -> ResponseFuture {
    Box::pin(async move {
        let mut resp = WriteTxnMarkersResponse::default();
        for m in req.markers {
            let marker = Marker {
                kind: if m.transaction_result {
                    MarkerType::Commit
                } else {
                    MarkerType::Abort
                },
                producer_id: m.producer_id.0,
                producer_epoch: m.producer_epoch,
                coordinator_epoch: m.coordinator_epoch,
            };
            let mut topics = Vec::new();
            for t in m.topics {
                let mut partitions = Vec::new();
                for p in t.partition_indexes {
                    let code = marker_code(&ctx.broker, &t.name, p, &marker).await;
                    partitions.push(
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(p)
                            .with_error_code(code),
                    );
                }
                topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions),
                );
            }
            resp.markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(topics),
            );
        }
        ctx.encode(&resp)
    })
}

async fn marker_code(broker: &Arc<Broker>, topic: &str, partition: i32, marker: &Marker) -> i16 {
    match write_marker(broker, topic, partition, marker, crate::log::now_ms()).await {
        Ok(()) => NO_ERROR,
        Err(code) => code,
    }
}

/// DescribeTransactions: the coordinator's view of each id.
pub fn describe_transactions(
    ctx: RequestContext,
    req: DescribeTransactionsRequest,
) -> ResponseFuture {
    Box::pin(async move {
        let mut resp = DescribeTransactionsResponse::default();
        for id in req.transactional_ids {
            let mut state = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_transaction_state(s(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            let found = if id.is_empty() {
                Err(Code::InvalidRequest.code())
            } else if ctx.broker.txns.running_shards().is_some() {
                let key = id.to_string();
                let owned = key.clone();
                ctx.broker
                    .txns
                    .call(&ctx.broker, &key, move |shard, _, _| {
                        shard.get(&owned).cloned()
                    })
                    .await
            } else {
                Ok(None)
            };
            match found {
                Ok(Some(meta)) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (t, p) in &meta.partitions {
                        match topics.iter_mut().find(|d| d.topic.as_str() == t) {
                            Some(d) => d.partitions.push(*p),
                            None => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(s(t)))
                                    .with_partitions(vec![*p]),
                            ),
                        }
                    }
                    state = state
                        .with_transaction_state(s(meta.state.name()))
                        .with_transaction_timeout_ms(meta.timeout_ms)
                        .with_transaction_start_time_ms(meta.start_ms)
                        .with_producer_id(ProducerId(meta.producer_id))
                        .with_producer_epoch(meta.epoch)
                        .with_topics(topics);
                }
                Ok(None) => state.error_code = Code::TransactionalIdNotFound.code(),
                Err(code) => state.error_code = code,
            }
            resp.transaction_states.push(state);
        }
        ctx.encode(&resp)
    })
}

/// ListTransactions v0–v1: every id, filtered by state names, producer ids
/// and (v1) a minimum running time.
pub fn list_transactions(ctx: RequestContext, req: ListTransactionsRequest) -> ResponseFuture {
    Box::pin(async move {
        let mut resp = ListTransactionsResponse::default();
        let mut states = BTreeSet::new();
        for name in &req.state_filters {
            match TxnStatus::ALL.iter().find(|st| st.name() == name.as_str()) {
                Some(st) => {
                    states.insert(st.id());
                }
                None => resp.unknown_state_filters.push(name.clone()),
            }
        }
        if !req.state_filters.is_empty() && states.is_empty() {
            // Only unknown states asked for: nothing can match.
            return ctx.encode(&resp);
        }
        let producers: BTreeSet<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
        let min_duration = if ctx.version >= 1 {
            req.duration_filter
        } else {
            -1
        };
        let listed = ctx
            .broker
            .txns
            .call_all(move |shard, now, _| {
                shard
                    .iter()
                    .filter(|(_, m)| states.is_empty() || states.contains(&m.state.id()))
                    .filter(|(_, m)| producers.is_empty() || producers.contains(&m.producer_id))
                    .filter(|(_, m)| {
                        min_duration < 0
                            || (m.state == TxnStatus::Ongoing && now - m.start_ms >= min_duration)
                    })
                    .map(|(id, m)| (id.clone(), m.producer_id, m.state.name()))
                    .collect::<Vec<_>>()
            })
            .await;
        match listed {
            Ok(shards) => {
                for (id, pid, state) in shards.into_iter().flatten() {
                    resp.transaction_states.push(
                        ListedTxn::default()
                            .with_transactional_id(TransactionalId(s(&id)))
                            .with_producer_id(ProducerId(pid))
                            .with_transaction_state(s(state)),
                    );
                }
            }
            Err(code) => resp.error_code = code,
        }
        ctx.encode(&resp)
    })
}

/// DescribeProducers: the producers a partition tracks (idempotent and
/// transactional), with the first offset of an open transaction.
pub fn describe_producers(
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = ctx.broker.metadata.image();
    let mut resp = DescribeProducersResponse::default();
    for t in req.topics {
        let info = image.topic(t.name.as_str());
        let mut partitions = Vec::new();
        for p in t.partition_indexes {
            let mut r = PartitionResponse::default().with_partition_index(p);
            match info.and_then(|i| ctx.broker.logs.get(&i.id, p)) {
                Some(log) => {
                    r.active_producers = log
                        .producers()
                        .into_iter()
                        .map(|(id, st)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(id))
                                .with_producer_epoch(i32::from(st.epoch))
                                .with_last_sequence(st.batches.back().map_or(-1, |b| b.last_seq))
                                .with_last_timestamp(st.last_timestamp)
                                .with_coordinator_epoch(st.coordinator_epoch)
                                .with_current_txn_start_offset(
                                    st.current_txn_first_offset.unwrap_or(-1),
                                )
                        })
                        .collect();
                }
                None => r.error_code = Code::UnknownTopicOrPartition.code(),
            }
            partitions.push(r);
        }
        resp.topics.push(
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    resp
}
