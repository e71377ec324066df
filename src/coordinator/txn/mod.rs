//! The transaction coordinator: transactional ids, producer epochs and the
//! two-phase commit of transactions (transaction version 1), sharded over
//! the partitions of the internal topic `__transaction_state`. The topic is
//! created (compacted, `transaction.state.log.num.partitions` partitions)
//! the first time a client looks for a transaction coordinator, as Kafka
//! does; on start-up an existing topic's shards are replayed and prepared
//! transactions are completed.

pub mod records;
pub mod shard;
pub mod state;
mod task;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::config::TxnConfig;
use crate::coordinator::runtime::{self, InternalTopic, Op, Outcome, Shards};
use crate::coordinator::{partition_for, Clock};
use shard::{OngoingTxns, Producer, TxnShard};
pub use task::write_marker;

/// The internal topic holding transaction state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

pub struct TxnCoordinator {
    config: TxnConfig,
    clock: Arc<dyn Clock>,
    shards: Shards<TxnShard>,
    ongoing: Arc<OngoingTxns>,
    shutdown: watch::Receiver<bool>,
}

impl TxnCoordinator {
    pub fn new(
        config: TxnConfig,
        clock: Arc<dyn Clock>,
        shutdown: watch::Receiver<bool>,
    ) -> TxnCoordinator {
        TxnCoordinator {
            config,
            clock,
            shards: Shards::default(),
            ongoing: Arc::default(),
            shutdown,
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Starts the shards now if `__transaction_state` exists, so prepared
    /// transactions complete and timeouts run without waiting for a client.
    pub async fn start_if_present(&self, broker: &Arc<Broker>) -> Result<(), i16> {
        if broker.metadata.image().topic(TXN_STATE_TOPIC).is_some() {
            self.shards(broker).await?;
            // Wait until every shard has replayed its partition: Produce
            // verifies transactional writes against what they publish.
            self.call_all(|_, _, _| ()).await?;
        }
        Ok(())
    }

    pub fn stop(&self) {
        self.shards.stop();
    }

    async fn shards(
        &self,
        broker: &Arc<Broker>,
    ) -> Result<&[mpsc::UnboundedSender<Op<TxnShard>>], i16> {
        let topic = InternalTopic {
            name: TXN_STATE_TOPIC,
            partitions: self.config.state_log_num_partitions,
            segment_bytes: self.config.state_log_segment_bytes as i64,
            compression: "uncompressed",
        };
        self.shards
            .get_or_start(broker, &topic, |p, log, rx| {
                let t = task::TxnTask {
                    shard: TxnShard::new(p, self.config.clone(), self.ongoing.clone()),
                    log,
                    broker: broker.clone(),
                    clock: self.clock.clone(),
                    config: self.config.clone(),
                    markers: Vec::new(),
                };
                tokio::spawn(t.run(rx, self.shutdown.clone()))
            })
            .await
    }

    /// The shard owning `transactional_id`, starting the coordinator (and
    /// creating its topic) if needed: FindCoordinator's work.
    pub async fn shard_of(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
    ) -> Result<usize, i16> {
        let n = self.shards(broker).await?.len() as i32;
        Ok(partition_for(transactional_id, n) as usize)
    }

    /// How many shards run, without starting them.
    pub fn running_shards(&self) -> Option<usize> {
        self.shards.running()
    }

    /// Runs `f` on the shard owning `transactional_id`; its result comes
    /// back once the records it produced are durable.
    pub async fn call<T, F>(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        f: F,
    ) -> Result<T, i16>
    where
        T: Send + 'static,
        F: FnOnce(&mut TxnShard, i64, &mut Outcome) -> T + Send + 'static,
    {
        let shards = self.shards(broker).await?;
        let shard = partition_for(transactional_id, shards.len() as i32) as usize;
        runtime::call_shard(&shards[shard], f).await
    }

    /// Runs `f` on every running shard (nothing if the coordinator never
    /// started: there are no transactional ids yet).
    pub async fn call_all<T, F>(&self, f: F) -> Result<Vec<T>, i16>
    where
        T: Send + 'static,
        F: Fn(&mut TxnShard, i64, &mut Outcome) -> T + Clone + Send + 'static,
    {
        let Some(n) = self.shards.running() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(n);
        for sender in self.shards.senders().unwrap_or_default() {
            out.push(runtime::call_shard(sender, f.clone()).await?);
        }
        Ok(out)
    }

    /// KIP-890 part 1 verification of a transactional write: is
    /// `topic`-`partition` part of the ongoing transaction of
    /// `transactional_id` at `producer_id`/`epoch`? `Err` carries the Kafka
    /// error code for the write. Answered from the shared registry, without
    /// waiting on a shard, so Produce stays in arrival order.
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), i16> {
        if !self.config.partition_verification {
            return Ok(());
        }
        let producer = Producer {
            id: producer_id,
            epoch,
        };
        self.ongoing
            .verify(transactional_id, producer, topic, partition)
    }

    /// Transactional ids per state over the running shards, for metrics
    /// (nothing if the coordinator never started).
    pub async fn count_by_state(&self) -> Result<Vec<(records::TxnStatus, usize)>, i16> {
        let per_shard = self
            .call_all(|s: &mut TxnShard, _, _| {
                let mut counts = [0usize; records::TxnStatus::ALL.len()];
                for (_, meta) in s.iter() {
                    if let Some(i) = records::TxnStatus::ALL
                        .iter()
                        .position(|st| *st == meta.state)
                    {
                        counts[i] += 1;
                    }
                }
                counts
            })
            .await?;
        Ok(records::TxnStatus::ALL
            .iter()
            .enumerate()
            .map(|(i, st)| (*st, per_shard.iter().map(|c| c[i]).sum()))
            .collect())
    }

    /// Ongoing transactions (metrics, tests).
    pub fn ongoing_count(&self) -> usize {
        self.ongoing.ongoing()
    }
}
