//! InitProducerId for idempotent producers (no transactional id; with one,
//! the transaction coordinator answers: `txn.rs`).

use kafka_protocol::messages::{InitProducerIdResponse, ProducerId};

use super::{Code, RequestContext};

pub fn init_producer_id(ctx: &RequestContext) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // Without a transactional id Kafka always hands out a fresh id at epoch 0,
    // also to a producer asking to bump its epoch (KIP-360).
    match ctx.broker.metadata.allocate_producer_id() {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!("producer id allocation failed: {e}");
            resp.with_error_code(Code::UnknownServerError.code())
        }
    }
}
