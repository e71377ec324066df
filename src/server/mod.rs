//! Listeners and the accept loop. `max.connections` caps open connections
//! with a semaphore; a connection over the cap is closed at once so the client
//! retries promptly instead of hanging in the backlog.

pub mod codec;
pub mod connection;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::broker::Broker;

/// How long shutdown waits for connections to answer what they already read.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    listener_index: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(
        broker.config.max_connections.clamp(0, i32::MAX) as usize,
    ));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let broker = broker.clone();
                        let shutdown = shutdown.clone();
                        let open = crate::metrics::OpenConnection::new(&broker, listener_index);
                        let span = open.span(peer);
                        let serve = connection::serve(broker, stream, listener_index, shutdown);
                        connections.spawn(async move {
                            tracing::Instrument::instrument(serve, span).await;
                            drop((open, permit));
                        });
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "max.connections reached; closing new connection");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Connections see the same shutdown signal: they stop reading, answer
    // what they already read, and close. A client that stops reading its
    // responses must not hold the shutdown forever.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connections still busy after {SHUTDOWN_GRACE:?}; closing them",
            connections.len()
        );
        connections.shutdown().await;
    }
}
