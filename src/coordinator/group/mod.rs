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

use kafka_protocol::messages::SyncGroupResponse;
use tokio::sync::{mpsc, oneshot, watch};

use crate::broker::Broker;
use crate::config::GroupConfig;
use crate::coordinator::runtime::{self, InternalTopic, Shards};
use crate::coordinator::{partition_for, Clock};
use shard::{GroupShard, Outcome};

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Where a parked SyncGroup's answer goes.
pub type SyncReply = oneshot::Sender<SyncGroupResponse>;

/// One operation on a shard, applied by its owner task in arrival order.
pub type Op = runtime::Op<GroupShard>;

pub struct GroupCoordinator {
    config: GroupConfig,
    clock: Arc<dyn Clock>,
    shards: Shards<GroupShard>,
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
            shards: Shards::default(),
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
        self.shards.stop();
    }

    /// The shard senders, creating the topic and starting the tasks on first
    /// use.
    async fn shards(&self, broker: &Arc<Broker>) -> Result<&[mpsc::UnboundedSender<Op>], i16> {
        let topic = InternalTopic {
            name: OFFSETS_TOPIC,
            partitions: self.config.offsets_topic_num_partitions,
            segment_bytes: self.config.offsets_topic_segment_bytes as i64,
            compression: "producer",
        };
        self.shards
            .get_or_start(broker, &topic, |p, log, rx| {
                let t = task::ShardTask {
                    shard: GroupShard::new(p, self.config.clone()),
                    log,
                    logs: broker.logs.clone(),
                    clock: self.clock.clone(),
                    config: self.config.clone(),
                };
                tokio::spawn(t.run(rx, self.shutdown.clone()))
            })
            .await
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
        self.shards.running()
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

    /// Groups per state over the running shards, for metrics; nothing until
    /// the coordinator runs (it is not started for this).
    pub async fn count_by_state(&self) -> Result<Vec<(state::GroupState, usize)>, i16> {
        let mut counts: Vec<(state::GroupState, usize)> =
            state::GroupState::ALL.iter().map(|s| (*s, 0)).collect();
        for sender in self.shards.senders().unwrap_or_default() {
            let states = runtime::call_shard(sender, |s: &mut GroupShard, _, _| {
                s.list().into_iter().map(|g| g.state).collect::<Vec<_>>()
            })
            .await?;
            for st in states {
                if let Some(c) = counts.iter_mut().find(|(s, _)| *s == st) {
                    c.1 += 1;
                }
            }
        }
        Ok(counts)
    }

    pub async fn call_shard<T, F>(&self, broker: &Arc<Broker>, shard: usize, f: F) -> Result<T, i16>
    where
        T: Send + 'static,
        F: FnOnce(&mut GroupShard, i64, &mut Outcome) -> T + Send + 'static,
    {
        let shards = self.shards(broker).await?;
        let sender = shards
            .get(shard)
            .ok_or(crate::api::Code::CoordinatorNotAvailable.code())?;
        runtime::call_shard(sender, f).await
    }
}

impl GroupCoordinator {
    /// Completes a producer's transactional offset commits in the shard of
    /// `offsets_partition`: COMMIT makes them the group's committed offsets,
    /// ABORT drops them; the marker is written to the partition either way
    /// (also when the producer has no pending offsets there, so a retried
    /// completion succeeds). `Ok` once the marker is durable.
    pub async fn complete_txn(
        &self,
        broker: &Arc<Broker>,
        offsets_partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
    ) -> Result<(), i16> {
        let shard = usize::try_from(offsets_partition)
            .map_err(|_| crate::api::Code::CoordinatorNotAvailable.code())?;
        // Answered once the marker is durable (or with why it was refused).
        self.call_shard(broker, shard, move |s, _, out| {
            s.complete_txn(producer_id, producer_epoch, coordinator_epoch, commit, out)
        })
        .await
        .and_then(|r| r)
    }
}
