//! A connection's socket and message loop, with PostgreSQL's output
//! buffering.
//!
//! pgwire flushes the socket after each message it sends, so the
//! ParseComplete, BindComplete, RowDescription, CommandComplete and
//! ReadyForQuery of one extended-protocol statement leave as five packets,
//! and the client wakes up for each. PostgreSQL buffers its output and
//! flushes when it is about to wait for the client. [`Corked`] does the same
//! beneath pgwire's framing:
//!
//! ```text
//!   pgwire: send ParseComplete ─ send BindComplete ─ ... ─ send ReadyForQuery ─ read
//!   Corked: buffer              buffer                    buffer                write all, then read
//! ```
//!
//! The loop below is pgwire's `process_socket` over a corked socket, built
//! from the public pieces it is made of.

use std::any::Any;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ciab_planner::Inbox;
use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::response::{NotificationResponse, TransactionStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{
    MaybeTls, PgWireMessageServerCodec, negotiate_tls, process_error, process_message,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// Output is written out once this much is buffered, even before the
/// connection reads again: a large result streams with bounded memory.
const CORK_BYTES_MAX: usize = 64 * 1024;
/// A client that has not finished its startup by then is dropped.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A ReadyForQuery message up to its status byte: tag and length.
const READY_FOR_QUERY: [u8; 5] = [b'Z', 0, 0, 0, 5];

/// The session's own transaction status, which ReadyForQuery must report.
/// pgwire derives the status from the kinds of responses a message got,
/// which cannot express a failed transaction that ROLLBACK TO SAVEPOINT
/// made usable again; the session knows.
pub trait TransactionTracker {
    /// None before the session exists (during startup).
    fn transaction_status(&self) -> Option<TransactionStatus>;
    /// An error outside the session's statements (a bad Bind, an unknown
    /// portal) aborts its transaction block too, as in PostgreSQL.
    fn fail_transaction(&self);
    /// A Parse named a statement: `DEALLOCATE ALL` must find it, and
    /// pgwire's statement store cannot list its names.
    fn statement_parsed(&self, name: &str);
    /// How long the session waits for the client's next query, and the
    /// FATAL error that ends the connection after that; None to wait for
    /// ever.
    fn idle_timeout(&self) -> Option<(Duration, PgWireError)>;
    /// The notifications the session heard (None before it exists).
    fn inbox(&self) -> Option<Arc<Inbox>>;
}

/// A socket whose writes wait until the connection next reads from it.
pub struct Corked<S> {
    inner: S,
    out: BytesMut,
}

impl<S: AsyncWrite + Unpin> Corked<S> {
    /// Rewrites the status of the ReadyForQuery that ends the buffered
    /// output, if it does.
    fn set_ready_status(&mut self, status: TransactionStatus) {
        let len = self.out.len();
        let start = len.saturating_sub(READY_FOR_QUERY.len() + 1);
        if len > READY_FOR_QUERY.len() && self.out[start..len - 1] == READY_FOR_QUERY {
            self.out[len - 1] = match status {
                TransactionStatus::Idle => b'I',
                TransactionStatus::Transaction => b'T',
                TransactionStatus::Error => b'E',
            };
        }
    }

    /// Puts `messages` before the ReadyForQuery that ends the buffered
    /// output, if it does (pgwire flushes each message it sends, so the
    /// last one is here), else after it: notifications that psql, say,
    /// shows with the statement's answer only if they come before it.
    fn insert_before_ready(&mut self, messages: &[u8]) {
        let len = self.out.len();
        let ready_len = READY_FOR_QUERY.len() + 1;
        if len < ready_len || self.out[len - ready_len..len - 1] != READY_FOR_QUERY {
            self.out.extend_from_slice(messages);
            return;
        }
        let ready = self.out.split_off(len - ready_len);
        self.out.extend_from_slice(messages);
        self.out.extend_from_slice(&ready);
    }

    fn new(inner: S) -> Self {
        Corked {
            inner,
            out: BytesMut::new(),
        }
    }

    /// Writes out everything buffered and flushes the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // About to wait for the client: it gets every answer so far first.
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() >= CORK_BYTES_MAX {
            ready!(this.poll_drain(cx))?;
        }
        this.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    /// Deferred to the next read or to a write that finds the buffer full,
    /// so the last message sent (a ReadyForQuery) is still in the buffer
    /// when the message loop looks at it.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// What ended the wait for the client's next message.
enum Waited {
    Read(Read),
    /// The session's idle timeout passed.
    TimedOut,
    /// A notification may have arrived.
    Notified,
}

/// Waits until `deadline`, or for ever.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Waits for a notification to arrive in `inbox`, or for ever.
async fn arrival(inbox: Option<&Inbox>) {
    match inbox {
        Some(inbox) => inbox.arrived().await,
        None => std::future::pending().await,
    }
}

/// The notifications waiting in `inbox`, as messages to the client.
fn notification_messages(inbox: &Inbox) -> Vec<PgWireBackendMessage> {
    inbox
        .take()
        .into_iter()
        .map(|n| {
            PgWireBackendMessage::NotificationResponse(NotificationResponse::new(
                n.pid, n.channel, n.payload,
            ))
        })
        .collect()
}

/// Whether `buffer` holds a whole message: its type byte, then its length
/// (which counts itself) and body. A client that pipelines (pgbench sends
/// Parse, Bind, Describe, Execute and Sync at once) is not waited for
/// between them, and the idle timeouts and notifications looked up for
/// each wait were a few microseconds of every statement.
fn message_buffered(buffer: &BytesMut) -> bool {
    let Some(length) = buffer.get(1..5) else {
        return false;
    };
    let length = u32::from_be_bytes(length.try_into().expect("four bytes"));
    buffer.len() as u64 > u64::from(length)
}

/// What reading the client's next message gave.
enum Read {
    Message(PgWireFrontendMessage),
    /// The client closed the connection, or the socket failed.
    Closed,
    /// Bytes that make no message, and why.
    Invalid(String),
}

/// Reads the client's next message, which pgwire decodes. A decoding that
/// fails, or panics, is a protocol violation: pgwire 0.42.1 panics on a
/// CopyData or password message shorter than its own length field, and on
/// a Bind whose parameter lengths overrun it (found by `fuzz/`).
async fn read<S>(socket: &mut Framed<Corked<MaybeTls>, PgWireMessageServerCodec<S>>) -> Read {
    match AssertUnwindSafe(socket.next()).catch_unwind().await {
        Ok(None) | Ok(Some(Err(PgWireError::IoError(_)))) => Read::Closed,
        Ok(Some(Ok(message))) => Read::Message(message),
        Ok(Some(Err(e))) => Read::Invalid(e.to_string()),
        Err(panic) => Read::Invalid(panic_message(panic.as_ref()).to_string()),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic with no message")
}

/// The error a panic while a message was processed becomes: PostgreSQL's
/// internal error, with the panic's message.
fn internal_error(panic: &(dyn Any + Send)) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        ciab_planner::sqlstate::INTERNAL_ERROR.into(),
        format!("internal error: {}", panic_message(panic)),
    )))
}

/// Serves one TCP connection until the client leaves or a FATAL error ends
/// the session. TLS is not configured: an SSLRequest is answered `N`.
pub async fn process_socket<H: PgWireServerHandlers + TransactionTracker>(
    tcp: TcpStream,
    handlers: H,
) -> io::Result<()> {
    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        socket = negotiate_tls(tcp, None) => socket?,
    };
    let Some(plain) = negotiated else {
        // A direct TLS handshake, which needs TLS configured.
        return Ok(());
    };
    let old = plain.into_parts();
    let mut parts = FramedParts::new(Corked::new(old.io), old.codec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut socket: Framed<Corked<MaybeTls>, PgWireMessageServerCodec<_>> =
        Framed::from_parts(parts);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let read = if starting {
            tokio::select! {
                _ = &mut startup_timeout => Read::Closed,
                read = read(&mut socket) => read,
            }
        } else {
            // A client whose next message is read already is not idle.
            let waiting = matches!(socket.state(), PgWireConnectionState::ReadyForQuery)
                && !message_buffered(socket.read_buffer());
            let idle = waiting.then(|| handlers.idle_timeout()).flatten();
            let deadline = idle
                .as_ref()
                .map(|(timeout, _)| tokio::time::Instant::now() + *timeout);
            // Outside a transaction block, notifications go out as they
            // arrive.
            let inbox = match handlers.transaction_status() {
                Some(TransactionStatus::Idle) if waiting => {
                    handlers.inbox().filter(|inbox| inbox.listens())
                }
                _ => None,
            };
            loop {
                let waited = tokio::select! {
                    read = read(&mut socket) => Waited::Read(read),
                    _ = until(deadline) => Waited::TimedOut,
                    _ = arrival(inbox.as_deref()) => Waited::Notified,
                };
                match waited {
                    Waited::Read(read) => break read,
                    Waited::TimedOut => {
                        let (_, error) = idle.expect("only a deadline times out");
                        let info: ErrorInfo = error.into();
                        socket
                            .send(PgWireBackendMessage::ErrorResponse(info.into()))
                            .await?;
                        break Read::Closed;
                    }
                    Waited::Notified => {
                        let inbox = inbox.as_deref().expect("only an inbox notifies");
                        for message in notification_messages(inbox) {
                            socket.feed(message).await?;
                        }
                        // Out at the next read, which drains the socket.
                        socket.flush().await?;
                    }
                }
            }
        };
        let message = match read {
            Read::Message(message) => message,
            Read::Closed => break,
            Read::Invalid(detail) => {
                // As PostgreSQL: the stream's framing can no longer be
                // trusted, so the connection ends, with a word why.
                let info = ErrorInfo::new(
                    "FATAL".into(),
                    ciab_planner::sqlstate::PROTOCOL_VIOLATION.into(),
                    format!("invalid frontend message: {detail}"),
                );
                socket
                    .send(PgWireBackendMessage::ErrorResponse(info.into()))
                    .await?;
                break;
            }
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let is_cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        if let PgWireFrontendMessage::Parse(parse) = &message
            && let Some(name) = parse.name.as_deref().filter(|n| !n.is_empty())
        {
            handlers.statement_parsed(name);
        }
        let ends_with_ready = matches!(
            message,
            PgWireFrontendMessage::Query(_)
                | PgWireFrontendMessage::Sync(_)
                | PgWireFrontendMessage::CopyDone(_)
                | PgWireFrontendMessage::CopyFail(_)
        );
        // A panic while the message is processed (planning, execution, or
        // sending the rows) is a bug: it ends this message with XX000, as
        // an ERROR ends it, and the session and every other go on. The
        // panic hook has logged where it happened.
        let processed = AssertUnwindSafe(process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        ))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(internal_error(panic.as_ref())));
        if let Err(e) = processed {
            handlers.fail_transaction();
            let is_fatal = e.is_fatal();
            process_error(&mut socket, e, is_extended_query).await?;
            if is_fatal {
                break;
            }
        }
        if ends_with_ready
            && matches!(socket.state(), PgWireConnectionState::ReadyForQuery)
            && let Some(status) = handlers.transaction_status()
        {
            socket.set_transaction_status(status);
            socket.get_mut().set_ready_status(status);
            // Notifications heard meanwhile, with the statement's answer
            // (PostgreSQL sends them as a transaction ends).
            if matches!(status, TransactionStatus::Idle)
                && let Some(inbox) = handlers.inbox()
            {
                let mut bytes = BytesMut::new();
                for message in notification_messages(&inbox) {
                    message
                        .encode(&mut bytes)
                        .map_err(|e| io::Error::other(e.to_string()))?;
                }
                if !bytes.is_empty() {
                    socket.get_mut().insert_before_ready(&bytes);
                }
            }
        }
        if is_cancel_request {
            break;
        }
    }
    // What the loop buffered last (a FATAL error, say) still goes out.
    let _ = socket.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_buffered_once_all_its_length_is() {
        // Sync: its type and a length of four, no body.
        let sync = BytesMut::from(&b"S\0\0\0\x04"[..]);
        assert!(message_buffered(&sync));
        assert!(!message_buffered(&BytesMut::from(&sync[..4])));
        // Execute: the unnamed portal, no row limit.
        let mut execute = BytesMut::from(&b"E\0\0\0\x09\0\0\0\0\0"[..]);
        assert!(message_buffered(&execute));
        execute.truncate(9);
        assert!(!message_buffered(&execute));
        assert!(!message_buffered(&BytesMut::new()));
    }
}
