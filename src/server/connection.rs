//! One task per client connection. Requests are applied in arrival order by
//! `api::dispatch`; what they still wait for (acks, fsync, fetch long-poll)
//! runs as futures in an ordered queue, so responses leave in request order
//! without a slow request blocking the reading of the next one.

use std::sync::Arc;

use bytes::BytesMut;
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::codec::next_frame;
use crate::api::{self, ResponseFuture};
use crate::broker::Broker;

/// Requests read but not yet answered on one connection; past this we stop
/// reading and let TCP push back on the client.
pub const MAX_IN_FLIGHT: usize = 256;

pub async fn serve(
    broker: Arc<Broker>,
    mut stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.split();
    let max_frame = broker.config.socket_request_max_bytes as usize;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut in_flight: FuturesOrdered<ResponseFuture> = FuturesOrdered::new();
    let mut reading = !*shutdown.borrow();

    loop {
        if !reading && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some(response) = in_flight.next(), if !in_flight.is_empty() => match response {
                Ok(Some(bytes)) => {
                    if let Err(e) = writer.write_all(&bytes).await {
                        tracing::debug!(?peer, "write failed: {e}");
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(?peer, "closing connection: {e}");
                    return;
                }
            },
            read = reader.read_buf(&mut buf), if reading && in_flight.len() < MAX_IN_FLIGHT => {
                match read {
                    Ok(0) => reading = false,
                    Ok(_) => loop {
                        match next_frame(&mut buf, max_frame) {
                            Ok(Some(frame)) => match api::dispatch(&broker, frame) {
                                Ok(reply) => in_flight.push_back(reply),
                                Err(e) => {
                                    tracing::info!(?peer, "closing connection: {e}");
                                    return;
                                }
                            },
                            Ok(None) => break,
                            Err(e) => {
                                tracing::info!(?peer, "closing connection: {e}");
                                return;
                            }
                        }
                    },
                    Err(e) => {
                        tracing::debug!(?peer, "read failed: {e}");
                        return;
                    }
                }
            }
            changed = shutdown.changed(), if reading => {
                if changed.is_err() || *shutdown.borrow() {
                    reading = false;
                }
            }
        }
    }
    let _ = writer.shutdown().await;
}
