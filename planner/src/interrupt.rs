//! Stopping a running statement: a CancelRequest (psql's Ctrl-C) from
//! another connection, or `statement_timeout`.
//!
//! ```text
//!  CancelRequest ─► Canceller::cancel ─┐
//!  statement_timeout ─► deadline ──────┴─► Interruptible stream: next poll
//!                                          fails with 57014, dropping the
//!                                          plan (DataFusion stops its tasks)
//! ```
//!
//! Cancellation is cooperative: every DataFusion stream a statement reads
//! is wrapped, and stops at its next poll. A statement is never dropped half
//! way through a write, so the session's state stays whole; one past its
//! reads (waiting for its log entry) completes, as in PostgreSQL, where a
//! cancel that arrives too late does nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{FutureExt, Stream, StreamExt};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::error::{Error, Result, sqlstate};

/// The handle another connection's CancelRequest uses to stop whatever
/// statement the session runs at the time.
#[derive(Debug, Clone, Default)]
pub struct Canceller(Arc<Mutex<CancellationToken>>);

impl Canceller {
    pub fn cancel(&self) {
        self.0.lock().expect("not poisoned").cancel();
    }

    /// A fresh token for the statement about to run: a cancel that came
    /// between statements does not stop the next one.
    fn renew(&self) -> CancellationToken {
        let token = CancellationToken::new();
        *self.0.lock().expect("not poisoned") = token.clone();
        token
    }
}

/// What may stop the current statement.
#[derive(Debug, Clone)]
pub(crate) struct Interrupt {
    token: CancellationToken,
    deadline: Option<Instant>,
}

impl Interrupt {
    /// Starts a statement that `canceller` can stop and that may run for
    /// `timeout` (None: no limit).
    pub(crate) fn start(canceller: &Canceller, timeout: Option<Duration>) -> Interrupt {
        Interrupt {
            token: canceller.renew(),
            deadline: timeout.map(|t| Instant::now() + t),
        }
    }

    /// Awaits `work` unless the statement is interrupted first (57014):
    /// for work that is not a stream of the statement's rows (a FETCH
    /// reading its cursor).
    pub(crate) async fn run<T>(&self, work: impl Future<Output = T>) -> Result<T> {
        let deadline = async {
            match self.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = work => Ok(done),
            () = self.token.cancelled() => Err(interrupted("user request")),
            () = deadline => Err(interrupted("statement timeout")),
        }
    }

    /// `stream`, stopping with 57014 when the statement is interrupted.
    pub(crate) fn wrap(&self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        Box::pin(Interruptible {
            schema: stream.schema(),
            inner: Some(stream),
            cancelled: Box::pin(self.token.clone().cancelled_owned()),
            deadline: self.deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
        })
    }
}

struct Interruptible {
    schema: SchemaRef,
    /// Dropped once interrupted, which stops the plan's tasks.
    inner: Option<SendableRecordBatchStream>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    deadline: Option<Pin<Box<Sleep>>>,
}

fn interrupted(why: &str) -> Error {
    Error::new(
        sqlstate::QUERY_CANCELED,
        format!("canceling statement due to {why}"),
    )
}

fn canceled(why: &str) -> DataFusionError {
    DataFusionError::External(Box::new(interrupted(why)))
}

impl Stream for Interruptible {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        // Checked before the plan runs on, and woken by either while it waits.
        let why = if this.cancelled.as_mut().poll(cx).is_ready() {
            Some("user request")
        } else if this
            .deadline
            .as_mut()
            .is_some_and(|d| d.poll_unpin(cx).is_ready())
        {
            Some("statement timeout")
        } else {
            None
        };
        if let Some(why) = why {
            this.inner = None;
            return Poll::Ready(Some(Err(canceled(why))));
        }
        inner.poll_next_unpin(cx)
    }
}

impl RecordBatchStream for Interruptible {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// PostgreSQL's `statement_timeout` value: milliseconds, or a number with a
/// unit (`us`, `ms`, `s`, `min`, `h`, `d`); 0 means no limit.
pub(crate) fn parse_timeout(value: &str) -> Option<Option<Duration>> {
    let value = value.trim().trim_matches('\'').trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "" | "ms" => number,
        "us" => number / 1_000.0,
        "s" => number * 1_000.0,
        "min" => number * 60_000.0,
        "h" => number * 3_600_000.0,
        "d" => number * 86_400_000.0,
        _ => return None,
    };
    Some((millis >= 1.0).then(|| Duration::from_micros((millis * 1_000.0) as u64)))
}

/// A timeout as PostgreSQL shows it: in the largest unit that holds it
/// exactly (`5s`, `1min`, `1500ms`), or `0` for none.
pub(crate) fn timeout_text(timeout: Option<Duration>) -> String {
    const UNITS: [(&str, u128); 4] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ];
    let Some(millis) = timeout.map(|d| d.as_millis()).filter(|&ms| ms > 0) else {
        return "0".to_string();
    };
    UNITS
        .iter()
        .find(|(_, size)| millis % size == 0)
        .map_or_else(
            || format!("{millis}ms"),
            |(unit, size)| format!("{}{unit}", millis / size),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_show_in_their_largest_exact_unit() {
        for (value, shown) in [
            ("0", "0"),
            ("5000", "5s"),
            ("1.5 s", "1500ms"),
            ("90s", "90s"),
            ("120s", "2min"),
            ("2h", "2h"),
            ("48h", "2d"),
        ] {
            assert_eq!(
                timeout_text(parse_timeout(value).unwrap()),
                shown,
                "{value}"
            );
        }
    }

    #[test]
    fn statement_timeout_values() {
        assert_eq!(parse_timeout("0"), Some(None));
        assert_eq!(parse_timeout("250"), Some(Some(Duration::from_millis(250))));
        assert_eq!(parse_timeout("'2s'"), Some(Some(Duration::from_secs(2))));
        assert_eq!(parse_timeout("1min"), Some(Some(Duration::from_secs(60))));
        assert_eq!(
            parse_timeout("1.5 s"),
            Some(Some(Duration::from_millis(1500)))
        );
        assert_eq!(parse_timeout("soon"), None);
    }
}
