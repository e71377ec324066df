//! One task per client connection. Requests are applied in arrival order by
//! `api::dispatch`; what they still wait for (acks, fsync, fetch long-poll)
//! runs as futures in an ordered queue, so responses leave in request order
//! without a slow request blocking the reading of the next one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::codec::next_frame;
use crate::api::{self, ResponseFuture};
use crate::broker::Broker;
use crate::protocol::ProtocolError;

/// Requests read but not yet answered on one connection; past this we stop
/// reading and let TCP push back on the client.
pub const MAX_IN_FLIGHT: usize = 256;

/// Fetch responses are the large ones (up to `api::FETCH_MAX_BYTES` each),
/// and a completed response waits in the queue for those before it, so
/// fetches in flight per connection are capped as well: this bounds what one
/// connection can make the broker hold. Clients keep one fetch in flight per
/// broker connection.
pub const MAX_FETCHES_IN_FLIGHT: usize = 2;

/// A queued response, tagged with whether it answers a Fetch.
type Queued = Pin<Box<dyn Future<Output = (bool, Result<Option<Bytes>, ProtocolError>)> + Send>>;

const FETCH_KEY: [u8; 2] = 1i16.to_be_bytes();

pub async fn serve(
    broker: Arc<Broker>,
    mut stream: TcpStream,
    listener_index: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer_addr().ok();
    let client_host = api::client_host(peer);
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.split();
    let max_frame = broker.config.socket_request_max_bytes as usize;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut in_flight: FuturesOrdered<Queued> = FuturesOrdered::new();
    let mut fetches = 0usize;
    // Stops on shutdown: no new request is taken, in-flight ones are answered.
    let mut accepting = !*shutdown.borrow();
    // The client closed its side: buffered requests are still answered.
    let mut eof = false;

    loop {
        // Take the whole frames already buffered, as far as the limits allow.
        while accepting && in_flight.len() < MAX_IN_FLIGHT && fetches < MAX_FETCHES_IN_FLIGHT {
            let frame = match next_frame(&mut buf, max_frame) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(?peer, "closing connection: {e}");
                    return;
                }
            };
            let is_fetch = frame.get(..2) == Some(&FETCH_KEY[..]);
            match api::dispatch(&broker, frame, &client_host, listener_index) {
                Ok(reply) => {
                    fetches += usize::from(is_fetch);
                    in_flight.push_back(tag(is_fetch, reply));
                }
                Err(e) => {
                    tracing::info!(?peer, "closing connection: {e}");
                    return;
                }
            }
        }
        let can_read =
            accepting && !eof && in_flight.len() < MAX_IN_FLIGHT && fetches < MAX_FETCHES_IN_FLIGHT;
        if in_flight.is_empty() && !can_read {
            break;
        }
        tokio::select! {
            Some((was_fetch, response)) = in_flight.next(), if !in_flight.is_empty() => {
                fetches -= usize::from(was_fetch);
                match response {
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
                }
            }
            read = reader.read_buf(&mut buf), if can_read => match read {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(?peer, "read failed: {e}");
                    return;
                }
            },
            changed = shutdown.changed(), if accepting => {
                if changed.is_err() || *shutdown.borrow() {
                    accepting = false;
                }
            }
        }
    }
    let _ = writer.shutdown().await;
}

fn tag(is_fetch: bool, reply: ResponseFuture) -> Queued {
    Box::pin(async move { (is_fetch, reply.await) })
}
