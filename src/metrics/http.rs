//! A minimal HTTP/1.1 responder for `/metrics` and `/health`: GET (and HEAD)
//! only, one request per connection (`Connection: close`), the request head
//! bounded in size and in time. Anything it cannot parse gets a 400 and a
//! closed socket; one bad or slow client never affects another.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// The largest request head read; scrapers send a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to read the response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once. Each costs a head buffer while it is read, so
/// idle clients are cheap; one past the cap is answered 503 at once rather
/// than left in the backlog, where it would queue a probe behind it.
pub const MAX_CONNECTIONS: usize = 1024;
/// Requests handled at once, counted only from a complete request head so
/// that clients that never finish theirs cannot hold them.
pub const MAX_REQUESTS: usize = 64;

/// What the handler is asked: the method (GET or HEAD) and the path without
/// its query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub head_only: bool,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Why a request head was refused, answered with the status it maps to.
#[derive(Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// 400: not an HTTP/1.x request line.
    Malformed,
    /// 405: a method other than GET or HEAD.
    Method,
    /// 431: the head did not end within [`MAX_REQUEST_BYTES`].
    TooLarge,
}

/// Parses a complete request head (everything up to the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, BadRequest> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| BadRequest::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest::Malformed);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(BadRequest::Malformed);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Err(BadRequest::Method)
        }
        _ => return Err(BadRequest::Malformed),
    };
    let path = target.split(['?', '#']).next().unwrap_or("/").to_owned();
    Ok(Request { head_only, path })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// The bytes of a response; the body is left out for HEAD.
pub fn encode(response: &Response, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    if response.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(response.body.as_bytes());
    }
    bytes
}

/// Accepts until `shutdown` turns true, answering each request with
/// `handler`.
pub async fn serve<H, F>(listener: TcpListener, handler: H, mut shutdown: watch::Receiver<bool>)
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let requests = Arc::new(Semaphore::new(MAX_REQUESTS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    // Best effort, never waiting: the socket buffer of a
                    // fresh connection takes this.
                    let busy = encode(&Response::text(503, "too many connections\n"), false);
                    let _ = stream.try_write(&busy);
                    continue;
                };
                let handler = handler.clone();
                let requests = requests.clone();
                tokio::spawn(async move {
                    let whole = HEAD_TIMEOUT + IO_TIMEOUT + Duration::from_secs(5);
                    let _ = tokio::time::timeout(whole, answer(stream, handler, requests)).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!("metrics listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer<H, F>(mut stream: TcpStream, handler: H, requests: Arc<Semaphore>)
where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let (response, head_only) = match read_head(&mut stream).await {
        Ok(head) => match parse_head(&head) {
            Ok(request) => {
                let head_only = request.head_only;
                let Ok(_permit) = requests.acquire().await else {
                    return;
                };
                (handler(request).await, head_only)
            }
            Err(bad) => (refusal(bad), false),
        },
        Err(Some(bad)) => (refusal(bad), false),
        Err(None) => return, // closed or timed out: nobody to answer
    };
    let bytes = encode(&response, head_only);
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
    // Closing with unread request bytes would reset the connection and
    // could destroy the answer in flight; read a bounded rest first.
    let mut scratch = [0u8; 4096];
    let mut drained = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while drained < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// How much of an unread request is drained before closing.
const LINGER_BYTES: usize = 1 << 20;

fn refusal(bad: BadRequest) -> Response {
    match bad {
        BadRequest::Malformed => Response::text(400, "bad request\n"),
        BadRequest::Method => Response::text(405, "only GET and HEAD\n"),
        BadRequest::TooLarge => Response::text(431, "request head too large\n"),
    }
}

/// Reads up to the end of the request head. `Err(None)`: the client went
/// away or was too slow; nothing is answered.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Option<BadRequest>> {
    let mut buf = vec![0u8; MAX_REQUEST_BYTES];
    let mut filled = 0;
    let read = tokio::time::timeout(HEAD_TIMEOUT, async {
        loop {
            if filled == buf.len() {
                return Err(Some(BadRequest::TooLarge));
            }
            let n = stream.read(&mut buf[filled..]).await.map_err(|_| None)?;
            if n == 0 {
                // A peer that half-closes after a complete request line
                // without the blank line is still answered.
                return if filled > 0 { Ok(()) } else { Err(None) };
            }
            let scan_from = filled.saturating_sub(3);
            filled += n;
            if buf[scan_from..filled].windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(());
            }
        }
    })
    .await;
    match read {
        Ok(Ok(())) => {
            buf.truncate(filled);
            Ok(buf)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_get_and_head_and_strips_the_query() {
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(Request {
                head_only: false,
                path: "/metrics".into()
            })
        );
        assert_eq!(
            parse_head(b"HEAD /health HTTP/1.0\r\n\r\n").map(|r| r.head_only),
            Ok(true)
        );
    }

    #[test]
    fn refuses_garbage_and_other_methods() {
        for bad in [
            &b""[..],
            b"\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"\xff\xfe /x HTTP/1.1\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad), Err(BadRequest::Malformed), "{bad:?}");
        }
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(BadRequest::Method)
        );
    }

    #[test]
    fn encodes_length_and_leaves_the_body_out_for_head() {
        let r = Response::text(200, "ok\n");
        let full = String::from_utf8(encode(&r, false)).unwrap();
        assert!(full.starts_with("HTTP/1.1 200 OK\r\n"), "{full}");
        assert!(full.contains("Content-Length: 3\r\n"));
        assert!(full.ends_with("\r\n\r\nok\n"));
        let head = String::from_utf8(encode(&r, true)).unwrap();
        assert!(head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
    }

    async fn server() -> (std::net::SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve(
            listener,
            |req: Request| async move {
                match req.path.as_str() {
                    "/health" => Response::text(200, "ok\n"),
                    _ => Response::text(404, "not found\n"),
                }
            },
            rx,
        ));
        (addr, tx)
    }

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The server may answer (and close) before taking everything.
        let _ = s.write_all(request).await;
        let _ = s.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("answered in time");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn answers_over_a_socket_and_survives_bad_clients() {
        let (addr, _stop) = server().await;
        // A client that connects and says nothing holds only its own slot.
        let _idle = TcpStream::connect(addr).await.unwrap();
        let ok = exchange(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nok\n"), "{ok}");

        let missing = exchange(addr, b"GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");

        let garbage = exchange(addr, b"\x00\x01\x02garbage\r\n\r\n").await;
        assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");

        let post = exchange(addr, b"POST /health HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");

        let mut huge = b"GET /health HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_REQUEST_BYTES * 4, b'a');
        let oversized = exchange(addr, &huge).await;
        assert!(oversized.starts_with("HTTP/1.1 431 "), "{oversized}");

        // Just under the limit is still fine.
        let mut big = b"GET /health HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_REQUEST_BYTES - 4, b'a');
        big.extend_from_slice(b"\r\n\r\n");
        let fits = exchange(addr, &big).await;
        assert!(fits.starts_with("HTTP/1.1 200 "), "{fits}");

        // A client that closes at once leaves the server serving.
        drop(TcpStream::connect(addr).await.unwrap());
        let again = exchange(addr, b"GET /health HTTP/1.0\r\n\r\n").await;
        assert!(again.starts_with("HTTP/1.1 200 "), "{again}");
    }

    #[tokio::test]
    async fn idle_connections_do_not_starve_health() {
        let (addr, _stop) = server().await;
        // More idle clients than requests handled at once, half of them
        // with a started but unfinished head.
        let mut idle = Vec::new();
        for i in 0..100 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /met").await.unwrap();
            }
            idle.push(s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut out))
            .await
            .expect("/health answered within a second")
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(idle);
    }

    #[tokio::test]
    async fn a_client_past_the_cap_is_refused_at_once() {
        let (addr, _stop) = server().await;
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut out))
            .await
            .expect("refused within a second")
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        // Once idle clients leave, requests are served again.
        drop(idle);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ok = exchange(addr, b"GET /health HTTP/1.1\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 "), "{ok}");
    }
}
