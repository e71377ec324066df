//! The transaction coordinator: transactional ids, producer epochs and the
//! two-phase commit of transactions, sharded over the partitions of the
//! internal topic `__transaction_state`.

pub mod records;
pub mod state;

use std::sync::Arc;

use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::TxnConfig;
use crate::coordinator::Clock;

/// The internal topic holding transaction state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

pub struct TxnCoordinator {
    config: TxnConfig,
    clock: Arc<dyn Clock>,
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
            shutdown,
        }
    }

    /// KIP-890 part 1 verification: is `topic`-`partition` part of the
    /// ongoing transaction of `transactional_id` at `producer_id`/`epoch`?
    /// `Err` carries the Kafka error code to answer the write with.
    pub async fn verify(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), i16> {
        // TXN-COORD: implemented by the coordinator change.
        let _ = (broker, transactional_id, producer_id, epoch, topic, partition);
        let _ = (&self.config, &self.clock, &self.shutdown);
        Ok(())
    }
}
