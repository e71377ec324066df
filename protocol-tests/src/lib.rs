//! Helpers for raw wire tests of Runnel: an in-process broker on port 0 with
//! its own temporary directory, a client that writes hand-built frames
//! (`i32 length` + request header + body, encoded with `kafka-protocol` at an
//! explicit version) and decodes one response frame at a time, and builders
//! for record batches and the requests the tests send most.
//!
//! Every wait is bounded by [`WAIT`]; a test that would hang fails instead.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest,
    FindCoordinatorResponse, GroupId, ListOffsetsRequest, MetadataRequest, MetadataResponse,
    ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use runnel::broker::{self, BrokerHandle};
use runnel::BrokerConfig;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use runnel::protocol::apis::SUPPORTED;

/// The longest any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The client id every request carries.
pub const CLIENT_ID: &str = "protocol-tests";

/// The group coordinator's internal topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

// Error codes (Kafka's `Errors`) the group and transaction tests share.
pub const NONE: i16 = 0;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const INVALID_REQUEST: i16 = 42;

/// The versions of `key` the table in `runnel::protocol::apis` advertises.
pub fn versions(key: ApiKey) -> RangeInclusive<i16> {
    let spec =
        runnel::protocol::apis::lookup(key).unwrap_or_else(|| panic!("{key:?} not in SUPPORTED"));
    spec.min..=spec.max
}

// ---------------------------------------------------------------------------
// Broker

/// A broker started in-process on 127.0.0.1:0 with a temporary data dir.
pub struct TestBroker {
    handle: Option<BrokerHandle>,
    pub dir: TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    /// `configure` gets the test defaults and may `set` any property.
    pub async fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = start_in(&dir, configure).await;
        TestBroker {
            handle: Some(handle),
            dir,
        }
    }

    /// A broker with a small `__consumer_offsets` (4 partitions: fewer logs
    /// to create).
    pub async fn start_small_offsets() -> TestBroker {
        Self::start_with(|cfg| {
            cfg.set("offsets.topic.num.partitions", "4")
                .expect("offsets.topic.num.partitions");
        })
        .await
    }

    /// [`TestBroker::start_small_offsets`], a client connected to it, and
    /// `topic` created with `partitions` partitions.
    pub async fn start_small_offsets_with_topic(
        topic: &str,
        partitions: i32,
    ) -> (TestBroker, Client) {
        let b = Self::start_small_offsets().await;
        let mut c = b.connect().await;
        c.create_topic(topic, partitions).await;
        (b, c)
    }

    pub fn handle(&self) -> &BrokerHandle {
        self.handle.as_ref().expect("broker running")
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle().local_addr()
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.addr()).await
    }

    /// Clean shutdown, then a new broker on the same directory (new port).
    pub async fn restart(&mut self) {
        let handle = self.handle.take().expect("broker running");
        tokio::time::timeout(WAIT, handle.shutdown())
            .await
            .expect("shutdown within WAIT")
            .expect("clean shutdown");
        self.handle = Some(start_in(&self.dir, |_| {}).await);
    }
}

async fn start_in(dir: &TempDir, configure: impl FnOnce(&mut BrokerConfig)) -> BrokerHandle {
    let mut config = BrokerConfig::default_for_tests(dir.path().to_path_buf());
    configure(&mut config);
    tokio::time::timeout(WAIT, broker::start(config))
        .await
        .expect("broker starts within WAIT")
        .expect("broker starts")
}

// ---------------------------------------------------------------------------
// Frames

/// A whole request frame (length prefix included) for `req` at `version`,
/// with the header in the version the API demands for it.
pub fn request_frame<R: Request>(version: i16, correlation_id: i32, req: &R) -> Bytes {
    let key = ApiKey::try_from(R::KEY).expect("known api key");
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut body = BytesMut::new();
    req.encode(&mut body, version)
        .unwrap_or_else(|e| panic!("encoding {key:?} v{version}: {e}"));
    frame_with_body(key, version, correlation_id, &header, &body)
}

/// A frame whose body is `body` as given (garbage, truncated, hand-built),
/// behind a correct header for `key` at `version`.
pub fn raw_request_frame(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    frame_with_body(key, version, correlation_id, &header, body)
}

fn frame_with_body(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    header: &RequestHeader,
    body: &[u8],
) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap_or_else(|e| panic!("encoding header {key:?} v{version} #{correlation_id}: {e}"));
    buf.put_slice(body);
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// A frame with a v1 (non-flexible) header for any api key, known or not.
pub fn header_v1_frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    buf.put_i16(api_key);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    buf.put_i16(CLIENT_ID.len() as i16);
    buf.put_slice(CLIENT_ID.as_bytes());
    buf.put_slice(body);
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// Decodes a response frame (without its length prefix) for `R` at
/// `version`: checks the correlation id and that nothing is left over.
pub fn decode_response<R: Request>(
    version: i16,
    correlation_id: i32,
    mut frame: Bytes,
) -> R::Response {
    let key = ApiKey::try_from(R::KEY).expect("known api key");
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .unwrap_or_else(|e| panic!("decoding {key:?} v{version} response header: {e}"));
    assert_eq!(
        header.correlation_id, correlation_id,
        "{key:?} v{version}: correlation id"
    );
    let resp = R::Response::decode(&mut frame, version)
        .unwrap_or_else(|e| panic!("decoding {key:?} v{version} response: {e}"));
    assert_eq!(
        frame.remaining(),
        0,
        "{key:?} v{version}: bytes left after the response"
    );
    resp
}

// ---------------------------------------------------------------------------
// Client

/// One TCP connection speaking raw frames.
pub struct Client {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect within WAIT")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            next_correlation_id: 1,
        }
    }

    /// A fresh correlation id (increasing per connection).
    pub fn correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("write within WAIT")
            .expect("write");
    }

    /// Sends `req` at `version`; returns its correlation id.
    pub async fn send<R: Request>(&mut self, version: i16, req: &R) -> i32 {
        let id = self.correlation_id();
        let frame = request_frame(version, id, req);
        self.write(&frame).await;
        id
    }

    /// Reads one frame (without its length prefix), or `None` if the broker
    /// closed the connection first. Panics after `timeout`.
    pub async fn try_read_frame(&mut self, timeout: Duration) -> Option<Bytes> {
        let read = async {
            let mut len = [0u8; 4];
            match self.stream.read_exact(&mut len).await {
                Ok(_) => {}
                Err(e) if is_closed(&e) => return None,
                Err(e) => panic!("reading frame length: {e}"),
            }
            let len = i32::from_be_bytes(len);
            assert!(len >= 0, "negative response length {len}");
            let mut buf = vec![0u8; len as usize];
            match self.stream.read_exact(&mut buf).await {
                Ok(_) => Some(Bytes::from(buf)),
                Err(e) if is_closed(&e) => panic!("connection closed inside a response frame"),
                Err(e) => panic!("reading frame: {e}"),
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .expect("response frame within the timeout")
    }

    pub async fn read_frame(&mut self) -> Bytes {
        self.try_read_frame(WAIT)
            .await
            .expect("a response, but the broker closed the connection")
    }

    pub async fn recv<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let frame = self.read_frame().await;
        decode_response::<R>(version, correlation_id, frame)
    }

    /// Sends `req` at `version` and decodes the response.
    pub async fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let id = self.send(version, req).await;
        self.recv::<R>(version, id).await
    }

    /// Asserts the broker closes this connection within [`WAIT`] without
    /// sending anything.
    pub async fn expect_closed(&mut self, what: &str) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(WAIT, self.stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what}: connection still open after {WAIT:?}"));
        match read {
            Ok(0) => {}
            Ok(n) => panic!("{what}: expected close, got {n} bytes: {:?}", &buf[..n]),
            Err(e) if is_closed(&e) => {}
            Err(e) => panic!("{what}: read failed: {e}"),
        }
    }

    /// A quick health check: ApiVersions v3 answers with error 0.
    pub async fn assert_serving(&mut self, what: &str) {
        let resp = self
            .call(
                3,
                &kafka_protocol::messages::ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
                    .with_client_software_version(StrBytes::from_static_str("1")),
            )
            .await;
        assert_eq!(resp.error_code, 0, "{what}: ApiVersions error");
        assert_eq!(resp.api_keys.len(), SUPPORTED.len(), "{what}: key list");
    }

    // --- conveniences at fixed, modern versions ---------------------------

    /// Creates a topic (CreateTopics v7) and returns its id; panics on error.
    pub async fn create_topic(&mut self, name: &str, partitions: i32) -> uuid::Uuid {
        self.create_topic_with(name, partitions, &[]).await
    }

    pub async fn create_topic_with(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> uuid::Uuid {
        let resp = self
            .call(
                7,
                &create_topics_request(vec![creatable_topic(name, partitions, configs)]),
            )
            .await;
        let t = &resp.topics[0];
        assert_eq!(
            t.error_code,
            0,
            "creating {name}: {:?}",
            t.error_message.as_ref().map(|m| m.to_string())
        );
        t.topic_id
    }

    /// The broker's own address as Metadata advertises it: `(node id, host,
    /// port)`.
    pub async fn advertised(&mut self) -> (i32, String, i32) {
        let md = self.call(12, &metadata_request(12, Some(&[]), false)).await;
        let b = &md.brokers[0];
        (b.node_id.0, b.host.to_string(), b.port)
    }

    pub async fn metadata(&mut self, version: i16, topics: &[&str]) -> MetadataResponse {
        self.call(version, &metadata_request(version, Some(topics), true))
            .await
    }

    /// Produce v12 of one batch to one partition; returns its result.
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: Option<Bytes>,
    ) -> PartitionProduceResponse {
        self.produce_acks(topic, partition, records, -1).await
    }

    pub async fn produce_acks(
        &mut self,
        topic: &str,
        partition: i32,
        records: Option<Bytes>,
        acks: i16,
    ) -> PartitionProduceResponse {
        let req = produce_request(12, topic, uuid::Uuid::nil(), partition, records, acks);
        let mut resp = self.call(12, &req).await;
        assert_eq!(resp.responses.len(), 1);
        let mut topic_resp = resp.responses.remove(0);
        assert_eq!(topic_resp.name.as_str(), topic);
        assert_eq!(topic_resp.partition_responses.len(), 1);
        topic_resp.partition_responses.remove(0)
    }

    /// Produce that must succeed; returns the base offset.
    pub async fn produce_ok(&mut self, topic: &str, partition: i32, records: Bytes) -> i64 {
        let p = self.produce(topic, partition, Some(records)).await;
        assert_eq!(p.error_code, 0, "produce to {topic}-{partition}");
        p.base_offset
    }

    /// Fetch v12 of one partition from `offset` (no waiting).
    pub async fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> PartitionData {
        let req = fetch_request(
            12,
            topic,
            uuid::Uuid::nil(),
            &[(partition, offset, 1 << 20)],
        );
        let mut resp = self.call(12, &req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.responses.len(), 1);
        let mut t = resp.responses.remove(0);
        assert_eq!(t.partitions.len(), 1);
        t.partitions.remove(0)
    }

    /// ListOffsets v9 of one partition at `timestamp` (-1 latest, -2
    /// earliest, -3 max timestamp, or a time).
    pub async fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> ListOffsetsPartitionResponse {
        let mut resp = self
            .call(9, &list_offsets_request(topic, partition, timestamp))
            .await;
        resp.topics.remove(0).partitions.remove(0)
    }

    /// The high watermark (ListOffsets latest), asserting no error.
    pub async fn latest_offset(&mut self, topic: &str, partition: i32) -> i64 {
        let p = self.list_offset(topic, partition, -1).await;
        assert_eq!(p.error_code, 0, "ListOffsets latest {topic}-{partition}");
        p.offset
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

// ---------------------------------------------------------------------------
// Request builders

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A FindCoordinator v0-3 answer (one key) names the broker `(node, host,
/// port)` without error.
pub fn assert_single_coordinator(
    resp: &FindCoordinatorResponse,
    (node, host, port): (i32, &str, i32),
    version: i16,
) {
    let v = version;
    assert_eq!(resp.error_code, NONE, "v{v}: {:?}", resp.error_message);
    assert_eq!(
        (resp.node_id.0, resp.host.as_str(), resp.port),
        (node, host, port),
        "v{v}"
    );
}

pub fn gid(s: &str) -> GroupId {
    GroupId(str_bytes(s))
}

/// `(topic, partition, error code)` of each partition of a response's
/// per-topic results: any `topics` whose elements have `name` and
/// `partitions` with `partition_index` and `error_code` (OffsetDelete,
/// TxnOffsetCommit, DescribeProducers, WriteTxnMarkers), in response order.
#[macro_export]
macro_rules! partition_errors {
    ($topics:expr) => {
        $topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
            })
            .collect::<::std::vec::Vec<(::std::string::String, i32, i16)>>()
    };
}

pub fn creatable_topic(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(str_bytes(k))
                        .with_value(Some(str_bytes(v)))
                })
                .collect(),
        )
}

pub fn create_topics_request(topics: Vec<CreatableTopic>) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(10_000)
}

/// Metadata for `topics` (`None`: all topics, spelled as v0 wants it).
pub fn metadata_request(
    version: i16,
    topics: Option<&[&str]>,
    auto_create: bool,
) -> MetadataRequest {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let topics = match topics {
        Some(list) => Some(
            list.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect(),
        ),
        None if version == 0 => Some(Vec::new()),
        None => None,
    };
    let req = MetadataRequest::default().with_topics(topics);
    if version >= 4 {
        req.with_allow_auto_topic_creation(auto_create)
    } else {
        req
    }
}

/// Produce of one partition; by name up to v12, by `topic_id` from v13.
pub fn produce_request(
    version: i16,
    topic: &str,
    topic_id: uuid::Uuid,
    partition: i32,
    records: Option<Bytes>,
    acks: i16,
) -> ProduceRequest {
    let data =
        TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
            .with_index(partition)
            .with_records(records)]);
    let data = if version >= 13 {
        data.with_topic_id(topic_id)
    } else {
        data.with_name(topic_name(topic))
    };
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![data])
}

/// Fetch without waiting of `(partition, offset, partition_max_bytes)`s of
/// one topic; by name up to v12, by `topic_id` from v13.
pub fn fetch_request(
    version: i16,
    topic: &str,
    topic_id: uuid::Uuid,
    partitions: &[(i32, i64, i32)],
) -> FetchRequest {
    let t = FetchTopic::default().with_partitions(
        partitions
            .iter()
            .map(|&(p, offset, max)| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max)
            })
            .collect(),
    );
    let t = if version >= 13 {
        t.with_topic_id(topic_id)
    } else {
        t.with_topic(topic_name(topic))
    };
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(50 << 20)
        .with_topics(vec![t])
}

pub fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])])
}

// ---------------------------------------------------------------------------
// Record batches

/// Who wrote a batch: `(producer_id, producer_epoch, base_sequence)`.
pub type ProducerInfo = (i64, i16, i32);

/// A magic-2 batch of `values`, record `i` timestamped `first_ts + i`.
pub fn batch(values: &[&[u8]], first_ts: i64, producer: Option<ProducerInfo>) -> Bytes {
    let timestamps: Vec<i64> = (0..values.len() as i64).map(|i| first_ts + i).collect();
    batch_with_timestamps(values, &timestamps, producer)
}

pub fn batch_with_timestamps(
    values: &[&[u8]],
    timestamps: &[i64],
    producer: Option<ProducerInfo>,
) -> Bytes {
    encode_batch(values, timestamps, producer, Compression::None)
}

/// One batch of `values` (timestamps 1, 2, ...) compressed with `compression`.
pub fn compressed_batch(values: &[&[u8]], compression: Compression) -> Bytes {
    let timestamps: Vec<i64> = (1..=values.len() as i64).collect();
    encode_batch(values, &timestamps, None, compression)
}

/// A transactional magic-2 batch of `values` (timestamps `first_ts + i`)
/// written by `producer`, as a transactional producer sends it inside a
/// transaction.
pub fn txn_batch(values: &[&[u8]], first_ts: i64, producer: ProducerInfo) -> Bytes {
    let timestamps: Vec<i64> = (0..values.len() as i64).map(|i| first_ts + i).collect();
    encode_batch_flags(values, &timestamps, Some(producer), Compression::None, true)
}

fn encode_batch(
    values: &[&[u8]],
    timestamps: &[i64],
    producer: Option<ProducerInfo>,
    compression: Compression,
) -> Bytes {
    encode_batch_flags(values, timestamps, producer, compression, false)
}

fn encode_batch_flags(
    values: &[&[u8]],
    timestamps: &[i64],
    producer: Option<ProducerInfo>,
    compression: Compression,
    transactional: bool,
) -> Bytes {
    assert_eq!(values.len(), timestamps.len());
    let records: Vec<Record> = values
        .iter()
        .zip(timestamps)
        .enumerate()
        .map(|(i, (v, &ts))| Record {
            transactional,
            ..record_at(i, ts, producer, None, Some(Bytes::copy_from_slice(v)))
        })
        .collect();
    encode_records(&records, compression)
}

/// Record `i` of a batch by `producer` (or by none): offset `i`, created at
/// `ts`, not transactional, no headers.
pub fn record_at(
    i: usize,
    ts: i64,
    producer: Option<ProducerInfo>,
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> Record {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        // The encoder starts a new batch when offset - sequence changes,
        // so the sequence advances even without a producer (base -1).
        sequence: seq.wrapping_add(i as i32),
        timestamp: ts,
        key,
        value,
        headers: Default::default(),
    }
}

/// `records` encoded as magic-2 batches.
pub fn encode_records(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encoding batch");
    buf.freeze()
}

/// `n` records named `{prefix}-{i}`.
pub fn values(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect()
}

pub fn as_slices(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(|x| x.as_slice()).collect()
}

/// Byte offsets of fields in a v2 batch header.
pub mod layout {
    pub const BATCH_LENGTH: usize = 8;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const RECORDS_COUNT: usize = 57;
    pub const HEADER_LEN: usize = 61;
}

/// Recomputes a single batch's CRC after a test edited it.
pub fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c(&batch[layout::ATTRIBUTES..]);
    batch[layout::CRC..layout::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// CRC-32C (Castagnoli), bitwise: slow but only used on test batches.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `(offset, value)` of every record in fetched `records`.
pub fn decode_records(records: &Bytes) -> Vec<(i64, Bytes)> {
    let mut buf = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("decoding fetched records");
    sets.into_iter()
        .flat_map(|s| s.records)
        .map(|r| (r.offset, r.value.unwrap_or_default()))
        .collect()
}

/// The values of fetched records, as strings.
pub fn fetched_values(records: &Option<Bytes>) -> Vec<String> {
    match records {
        None => Vec::new(),
        Some(r) => decode_records(r)
            .into_iter()
            .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
            .collect(),
    }
}

/// The number of record batches in fetched `records`.
pub fn batch_count(records: &Bytes) -> usize {
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("decoding fetched records")
        .len()
}

pub fn create_response_error(resp: &CreateTopicsResponse, name: &str) -> i16 {
    resp.topics
        .iter()
        .find(|t| t.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} missing from CreateTopics response"))
        .error_code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn fix_crc_is_identity_on_a_valid_batch() {
        let b = batch(&[b"x", b"y"], 1000, None);
        assert_eq!(batch_count(&b), 1, "one batch, not one per record");
        let mut copy = b.to_vec();
        fix_crc(&mut copy);
        assert_eq!(copy, b.to_vec());
    }
}
