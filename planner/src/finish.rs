//! What a statement does once its last row is out: functions that change
//! the session (`set_config`) count only if the statement succeeded, and
//! an autocommit statement's transaction ends, releasing its
//! transaction-scoped advisory locks. A query's rows stream out after
//! `Session::execute` returned, so this rides at the end of the stream.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};

use crate::error::{Result, to_df};

/// `rows`, then `succeeded` once they all came without an error, then
/// `end` whatever happened. A stream dropped before its end (an error, a
/// cancel) drops `succeeded` uncalled and still runs `end`, on its own
/// task.
pub(crate) fn finishing(
    rows: SendableRecordBatchStream,
    succeeded: impl FnOnce() + Send + 'static,
    end: BoxFuture<'static, Result<()>>,
) -> SendableRecordBatchStream {
    Box::pin(Finishing {
        schema: rows.schema(),
        rows: Some(rows),
        failed: false,
        succeeded: Some(Box::new(succeeded)),
        end: Some(end),
    })
}

struct Finishing {
    schema: SchemaRef,
    rows: Option<SendableRecordBatchStream>,
    failed: bool,
    succeeded: Option<Box<dyn FnOnce() + Send>>,
    end: Option<BoxFuture<'static, Result<()>>>,
}

impl Stream for Finishing {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(rows) = &mut this.rows {
            match ready!(rows.poll_next_unpin(cx)) {
                Some(item) => {
                    this.failed |= item.is_err();
                    return Poll::Ready(Some(item));
                }
                None => {
                    this.rows = None;
                    if let Some(succeeded) = this.succeeded.take()
                        && !this.failed
                    {
                        succeeded();
                    }
                }
            }
        }
        if let Some(end) = &mut this.end {
            let ended = ready!(end.as_mut().poll(cx));
            this.end = None;
            if let Err(e) = ended {
                return Poll::Ready(Some(Err(to_df(e))));
            }
        }
        Poll::Ready(None)
    }
}

impl RecordBatchStream for Finishing {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        // What `succeeded` holds goes before `end` runs, as after a
        // success.
        self.succeeded = None;
        if let Some(end) = self.end.take() {
            spawn_detached("ending a statement", end);
        }
    }
}

/// Runs `work` on a task of its own, from code that cannot await it (a
/// `Drop`); a failure is logged as `what` failing.
pub(crate) fn spawn_detached(
    what: &'static str,
    work: impl Future<Output = Result<()>> + Send + 'static,
) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(e) = work.await {
                tracing::warn!(error = %e, "{what} failed");
            }
        });
    }
}
