//! The group coordinator: classic consumer groups and committed offsets,
//! sharded over the partitions of the internal topic `__consumer_offsets`.
//! The topic is created (compacted, `offsets.topic.num.partitions`
//! partitions) the first time a client looks for a group coordinator, as
//! Kafka does; on start-up an existing topic's shards are replayed.

pub mod classic;
pub mod records;
pub mod shard;
pub mod state;
mod task;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use indexmap::IndexMap;
use kafka_protocol::messages::SyncGroupResponse;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch, OnceCell};
use tokio::task::JoinHandle;

use crate::api::Code;
use crate::broker::Broker;
use crate::config::GroupConfig;
use crate::coordinator::{partition_for, Clock};
use crate::metadata::MetadataError;
use shard::{GroupShard, Outcome};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Where a parked SyncGroup's answer goes.
pub type SyncReply = oneshot::Sender<SyncGroupResponse>;

/// One operation on a shard, applied by its owner task in arrival order.
pub type Op = Box<dyn FnOnce(&mut GroupShard, i64, &mut Outcome) + Send>;

pub struct GroupCoordinator {
    config: GroupConfig,
    clock: Arc<dyn Clock>,
    shards: OnceCell<Vec<mpsc::UnboundedSender<Op>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shutdown: watch::Receiver<bool>,
}

impl GroupCoordinator {
    pub fn new(
        config: GroupConfig,
        clock: Arc<dyn Clock>,
        shutdown: watch::Receiver<bool>,
    ) -> GroupCoordinator {
        GroupCoordinator {
            config,
            clock,
            shards: OnceCell::new(),
            tasks: Mutex::new(Vec::new()),
            shutdown,
        }
    }

    /// Starts the shards now if `__consumer_offsets` already exists, so
    /// groups are back (and their sessions timing) before clients return.
    pub async fn start_if_present(&self, broker: &Arc<Broker>) -> Result<(), i16> {
        if broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
            self.shards(broker).await?;
        }
        Ok(())
    }

    /// Stops the shard tasks (broker shutdown).
    pub fn stop(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    /// The shard senders, creating the topic and starting the tasks on first
    /// use.
    async fn shards(&self, broker: &Arc<Broker>) -> Result<&[mpsc::UnboundedSender<Op>], i16> {
        self.shards
            .get_or_try_init(|| self.start(broker))
            .await
            .map(Vec::as_slice)
    }

    async fn start(&self, broker: &Arc<Broker>) -> Result<Vec<mpsc::UnboundedSender<Op>>, i16> {
        let info = match broker.metadata.image().topic(OFFSETS_TOPIC) {
            Some(info) => info.clone(),
            None => {
                let mut overrides = IndexMap::new();
                overrides.insert("cleanup.policy".to_owned(), "compact".to_owned());
                overrides.insert(
                    "segment.bytes".to_owned(),
                    self.config.offsets_topic_segment_bytes.to_string(),
                );
                let b = broker.clone();
                let n = self.config.offsets_topic_num_partitions;
                let created = tokio::task::spawn_blocking(move || {
                    b.create_topic(OFFSETS_TOPIC, n, overrides)
                })
                .await
                .map_err(|_| Code::CoordinatorNotAvailable.code())?;
                match created {
                    Ok(info) => info,
                    Err(MetadataError::TopicExists(_)) => broker
                        .metadata
                        .image()
                        .topic(OFFSETS_TOPIC)
                        .cloned()
                        .ok_or(Code::CoordinatorNotAvailable.code())?,
                    Err(e) => {
                        tracing::error!("creating {OFFSETS_TOPIC}: {e}");
                        return Err(Code::CoordinatorNotAvailable.code());
                    }
                }
            }
        };
        // Every partition's log first, so a failure starts no task at all (a
        // retry must not find half the shards already running).
        let logs = (0..info.partitions)
            .map(|p| {
                broker.logs.get(&info.id, p).ok_or_else(|| {
                    tracing::error!("{OFFSETS_TOPIC}-{p} has no log");
                    Code::CoordinatorNotAvailable.code()
                })
            })
            .collect::<Result<Vec<_>, i16>>()?;
        let mut senders = Vec::with_capacity(logs.len());
        let mut tasks = self.tasks.lock();
        for (p, log) in (0..).zip(logs) {
            let (tx, rx) = mpsc::unbounded_channel();
            let t = task::ShardTask {
                shard: GroupShard::new(p, self.config.clone()),
                log,
                logs: broker.logs.clone(),
                clock: self.clock.clone(),
                config: self.config.clone(),
            };
            tasks.push(tokio::spawn(t.run(rx, self.shutdown.clone())));
            senders.push(tx);
        }
        tracing::info!(partitions = info.partitions, "group coordinator started");
        Ok(senders)
    }

    /// The shard owning `group_id` once the coordinator runs.
    pub async fn shard_of(&self, broker: &Arc<Broker>, group_id: &str) -> Result<usize, i16> {
        let n = self.shards(broker).await?.len() as i32;
        Ok(partition_for(group_id, n) as usize)
    }

    /// How many shards run, without starting the coordinator: `None`
    /// until `__consumer_offsets` exists (it is started at broker start when
    /// the topic exists, and creating the topic starts it).
    pub fn running_shards(&self) -> Option<usize> {
        self.shards.get().map(Vec::len)
    }

    /// Runs `f` on the shard owning `group_id` and returns its result once
    /// the records it produced are durable.
    pub async fn call<T, F>(&self, broker: &Arc<Broker>, group_id: &str, f: F) -> Result<T, i16>
    where
        T: Send + 'static,
        F: FnOnce(&mut GroupShard, i64, &mut Outcome) -> T + Send + 'static,
    {
        let shard = self.shard_of(broker, group_id).await?;
        self.call_shard(broker, shard, f).await
    }

    pub async fn call_shard<T, F>(&self, broker: &Arc<Broker>, shard: usize, f: F) -> Result<T, i16>
    where
        T: Send + 'static,
        F: FnOnce(&mut GroupShard, i64, &mut Outcome) -> T + Send + 'static,
    {
        let shards = self.shards(broker).await?;
        let sender = shards
            .get(shard)
            .ok_or(Code::CoordinatorNotAvailable.code())?;
        let (tx, rx) = oneshot::channel::<Result<T, i16>>();
        let op: Op = Box::new(move |shard, now, out| {
            let value = f(shard, now, out);
            out.replies.push(Box::new(move |err| {
                let _ = tx.send(match err {
                    None => Ok(value),
                    Some(code) => Err(code),
                });
            }));
        });
        sender
            .send(op)
            .map_err(|_| Code::CoordinatorNotAvailable.code())?;
        rx.await
            .unwrap_or(Err(Code::CoordinatorNotAvailable.code()))
    }
}
