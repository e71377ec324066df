//! Request dispatch and the handlers, one module per API family. A handler
//! takes the decoded request and returns the response; only
//! `server::connection` touches sockets. Kafka errors are values in the
//! response; `Err` here means the frame itself was unusable and the
//! connection closes.

mod cluster;
mod configs;
mod fetch;
mod group;
pub use fetch::FETCH_MAX_BYTES;
mod metadata;
mod offsets;
mod produce;
mod producer_id;
mod quotas;
mod topics;
mod txn;
mod versions;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::broker::Broker;
use crate::protocol::{self, apis, HeaderPrefix, ProtocolError};

/// A response still being produced. `Ok(None)`: nothing is sent (acks=0).
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Option<Bytes>, ProtocolError>> + Send>>;

/// What every handler knows of its request besides the body.
#[derive(Clone)]
pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The peer's address as Kafka reports it (`/127.0.0.1`), formatted once
    /// per connection.
    pub client_host: Arc<str>,
    /// Index into `broker.config.listeners` of the listener the connection
    /// came in through.
    pub listener: usize,
}

impl RequestContext {
    /// This broker's endpoint as published on the request's listener.
    pub fn advertised(&self) -> &crate::config::Endpoint {
        self.broker.advertised_for(self.listener)
    }

    pub fn encode<T: Encodable>(&self, body: &T) -> Result<Option<Bytes>, ProtocolError> {
        protocol::encode_response(self.key, self.version, self.correlation_id, body).map(Some)
    }

    fn ready<T: Encodable>(&self, body: &T) -> ResponseFuture {
        let result = self.encode(body);
        Box::pin(std::future::ready(result))
    }

    fn decode<T: Decodable>(&self, body: &mut Bytes) -> Result<T, ProtocolError> {
        protocol::decode_body(self.key, self.version, body)
    }
}

/// How Kafka names a client's host in DescribeGroups (`InetAddress.toString`
/// of an address without a host name).
pub fn client_host(peer: Option<std::net::SocketAddr>) -> Arc<str> {
    peer.map_or_else(String::new, |p| format!("/{}", p.ip()))
        .into()
}

/// Applies one request (in arrival order) and returns its response future.
pub fn dispatch(
    broker: &Arc<Broker>,
    mut frame: Bytes,
    client_host: &Arc<str>,
    listener: usize,
) -> Result<ResponseFuture, ProtocolError> {
    let prefix = HeaderPrefix::peek(&frame)?;
    let key = ApiKey::try_from(prefix.api_key)
        .map_err(|_| ProtocolError::UnknownApiKey(prefix.api_key))?;
    let version = prefix.api_version;
    if !apis::is_supported(key, version) {
        if key == ApiKey::ApiVersions {
            // KIP-511: a client newer than us learns our versions from a v0
            // reply and retries with one we support.
            let reply = versions::unsupported_version_reply(prefix.correlation_id);
            return Ok(Box::pin(std::future::ready(Ok(Some(reply)))));
        }
        return Err(ProtocolError::UnsupportedVersion { key, version });
    }
    if key == ApiKey::Produce && version < apis::PRODUCE_MIN_DECODABLE {
        let reply = produce::legacy_unsupported(prefix, &frame[..])?;
        return Ok(Box::pin(std::future::ready(Ok(reply))));
    }
    let header = protocol::decode_header(key, version, &mut frame)?;
    let ctx = RequestContext {
        broker: broker.clone(),
        key,
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|s| s.to_string()),
        client_host: client_host.clone(),
        listener,
    };
    let body = &mut frame;
    let mut timer = crate::metrics::RequestTimer::start(&ctx);
    let applying = timer.span().clone().entered();
    let reply = match key {
        ApiKey::ApiVersions => ctx.ready(&versions::handle(ctx.decode(body)?, version)),
        ApiKey::Metadata => ctx.ready(&metadata::handle(&ctx, ctx.decode(body)?)),
        ApiKey::Produce => produce::handle(ctx.clone(), ctx.decode(body)?),
        ApiKey::Fetch => {
            let req: kafka_protocol::messages::FetchRequest = ctx.decode(body)?;
            timer.allow_wait_ms(req.max_wait_ms);
            fetch::handle(ctx.clone(), req)
        }
        ApiKey::ListOffsets => ctx.ready(&offsets::list_offsets(&ctx, ctx.decode(body)?)),
        ApiKey::DeleteRecords => offsets::delete_records(ctx.clone(), ctx.decode(body)?),
        ApiKey::CreateTopics => ctx.ready(&topics::create_topics(&ctx, ctx.decode(body)?)),
        ApiKey::DeleteTopics => ctx.ready(&topics::delete_topics(&ctx, ctx.decode(body)?)),
        ApiKey::CreatePartitions => ctx.ready(&topics::create_partitions(&ctx, ctx.decode(body)?)),
        ApiKey::DescribeCluster => ctx.ready(&cluster::describe_cluster(&ctx, ctx.decode(body)?)),
        ApiKey::DescribeLogDirs => ctx.ready(&cluster::describe_log_dirs(&ctx, ctx.decode(body)?)),
        ApiKey::DescribeTopicPartitions => {
            ctx.ready(&cluster::describe_topic_partitions(&ctx, ctx.decode(body)?))
        }
        ApiKey::ElectLeaders => ctx.ready(&cluster::elect_leaders(&ctx, ctx.decode(body)?)),
        ApiKey::ListPartitionReassignments => ctx.ready(&cluster::list_partition_reassignments(
            &ctx,
            ctx.decode(body)?,
        )),
        ApiKey::AlterPartitionReassignments => ctx.ready(&cluster::alter_partition_reassignments(
            &ctx,
            ctx.decode(body)?,
        )),
        ApiKey::DescribeClientQuotas => {
            ctx.ready(&quotas::describe_client_quotas(&ctx, ctx.decode(body)?))
        }
        ApiKey::AlterClientQuotas => {
            ctx.ready(&quotas::alter_client_quotas(&ctx, ctx.decode(body)?))
        }
        ApiKey::DescribeConfigs => ctx.ready(&configs::describe_configs(&ctx, ctx.decode(body)?)),
        ApiKey::AlterConfigs => ctx.ready(&configs::alter_configs(&ctx, ctx.decode(body)?)),
        ApiKey::IncrementalAlterConfigs => {
            ctx.ready(&configs::incremental_alter_configs(&ctx, ctx.decode(body)?))
        }
        ApiKey::InitProducerId => {
            let req: kafka_protocol::messages::InitProducerIdRequest = ctx.decode(body)?;
            if req.transactional_id.is_some() {
                txn::init_producer_id(ctx.clone(), req)
            } else {
                ctx.ready(&producer_id::init_producer_id(&ctx))
            }
        }
        ApiKey::AddPartitionsToTxn => txn::add_partitions_to_txn(ctx.clone(), ctx.decode(body)?),
        ApiKey::AddOffsetsToTxn => txn::add_offsets_to_txn(ctx.clone(), ctx.decode(body)?),
        ApiKey::EndTxn => txn::end_txn(ctx.clone(), ctx.decode(body)?),
        ApiKey::WriteTxnMarkers => txn::write_txn_markers(ctx.clone(), ctx.decode(body)?),
        ApiKey::DescribeTransactions => txn::describe_transactions(ctx.clone(), ctx.decode(body)?),
        ApiKey::ListTransactions => txn::list_transactions(ctx.clone(), ctx.decode(body)?),
        ApiKey::DescribeProducers => ctx.ready(&txn::describe_producers(&ctx, ctx.decode(body)?)),
        ApiKey::FindCoordinator => group::find_coordinator(ctx.clone(), ctx.decode(body)?),
        ApiKey::JoinGroup => group::join_group(ctx.clone(), ctx.decode(body)?),
        ApiKey::SyncGroup => group::sync_group(ctx.clone(), ctx.decode(body)?),
        ApiKey::Heartbeat => group::heartbeat(ctx.clone(), ctx.decode(body)?),
        ApiKey::LeaveGroup => group::leave_group(ctx.clone(), ctx.decode(body)?),
        ApiKey::OffsetCommit => group::offset_commit(ctx.clone(), ctx.decode(body)?),
        ApiKey::OffsetFetch => group::offset_fetch(ctx.clone(), ctx.decode(body)?),
        ApiKey::OffsetDelete => group::offset_delete(ctx.clone(), ctx.decode(body)?),
        ApiKey::DescribeGroups => group::describe_groups(ctx.clone(), ctx.decode(body)?),
        ApiKey::ListGroups => group::list_groups(ctx.clone(), ctx.decode(body)?),
        ApiKey::DeleteGroups => group::delete_groups(ctx.clone(), ctx.decode(body)?),
        ApiKey::TxnOffsetCommit => group::txn_offset_commit(ctx.clone(), ctx.decode(body)?),
        other => {
            // The version gate admits only keys in the table, and the table
            // lists only keys handled above; reaching this is a bug.
            tracing::error!(?other, "api in the table without a handler");
            return Err(ProtocolError::UnsupportedVersion { key, version });
        }
    };
    drop(applying);
    Ok(timer.watch(ctx, reply))
}

/// Kafka error codes used by the handlers.
pub(crate) use kafka_protocol::error::ResponseError as Code;

/// An owned copy of `v` as the protocol's string type.
pub(crate) fn str_bytes(v: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(v.to_owned())
}

/// Kafka's error code for success.
pub(crate) const NO_ERROR: i16 = 0;

/// KIP-320: a client that knows a newer epoch than ours is ahead of us
/// (UNKNOWN_LEADER_EPOCH, retriable); one with an older epoch is fenced.
pub(crate) fn check_leader_epoch(
    client_epoch: i32,
    log: &crate::log::PartitionLog,
) -> Result<(), i16> {
    if client_epoch < 0 {
        return Ok(());
    }
    let ours = log.leader_epoch();
    match client_epoch.cmp(&ours) {
        std::cmp::Ordering::Greater => Err(Code::UnknownLeaderEpoch.code()),
        std::cmp::Ordering::Less => Err(Code::FencedLeaderEpoch.code()),
        std::cmp::Ordering::Equal => Ok(()),
    }
}
