//! The SQL face of object storage: `object_read`, `object_put`,
//! `object_copy` and `object_delete`, over the same buckets the S3 endpoint
//! serves (the `ciab.objects` view lists them, in `system.rs`).
//!
//! `object_read` reads the statement's pinned state, as every scan does.
//! The others write through the log when they are
//! called, one row at a time; they are refused inside a transaction block
//! (25001), where a ROLLBACK could not take them back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ciab_storage::objects::Objects;
use ciab_storage::{BlobWriter, Command, ObjectOp, Store};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result as DfResult;
use datafusion::common::types::{NativeType, logical_int64, logical_string};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, TypeSignatureClass, Volatility,
};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use crate::error::{Error, Result, sqlstate, to_df};
use crate::provider::CatalogList;
use crate::session::block_on_store;

/// What one `object_read` returns at most: PostgreSQL's limit on a bytea.
pub const READ_BYTES_MAX: u64 = 1024 * 1024 * 1024 - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ObjectFn {
    Read,
    Put,
    Copy,
    Delete,
}

impl ObjectFn {
    fn name(self) -> &'static str {
        match self {
            ObjectFn::Read => "object_read",
            ObjectFn::Put => "object_put",
            ObjectFn::Copy => "object_copy",
            ObjectFn::Delete => "object_delete",
        }
    }
}

/// Registers the object functions on a session's context. `in_block` says
/// whether the session is inside a transaction block, `read_only` whether
/// the statement running is in a read-only transaction.
pub(crate) fn register(
    ctx: &SessionContext,
    store: &Arc<Store>,
    list: &Arc<CatalogList>,
    in_block: &Arc<AtomicBool>,
    read_only: &Arc<AtomicBool>,
) {
    // Parameters a driver leaves untyped arrive as text: numbers and bytes
    // may come as text too, as PostgreSQL's unknown literals do.
    let string = || TypeSignatureClass::Native(logical_string());
    let text = || Coercion::new_exact(string());
    let int8 = || {
        let sources = vec![TypeSignatureClass::Integer, string()];
        Coercion::new_implicit(
            TypeSignatureClass::Native(logical_int64()),
            sources,
            NativeType::Int64,
        )
    };
    let bytea = || {
        Coercion::new_implicit(
            TypeSignatureClass::Binary,
            vec![string()],
            NativeType::Binary,
        )
    };
    for f in [
        ObjectFn::Read,
        ObjectFn::Put,
        ObjectFn::Copy,
        ObjectFn::Delete,
    ] {
        let shapes = match f {
            ObjectFn::Read => vec![
                vec![text(), text()],
                vec![text(), text(), int8()],
                vec![text(), text(), int8(), int8()],
            ],
            ObjectFn::Put => vec![
                vec![text(), text(), bytea()],
                vec![text(), text(), bytea(), text()],
            ],
            ObjectFn::Copy => vec![vec![text(), text(), text(), text()]],
            ObjectFn::Delete => vec![vec![text(), text()]],
        };
        let shapes = shapes.into_iter().map(TypeSignature::Coercible).collect();
        ctx.register_udf(ScalarUDF::new_from_impl(ObjectUdf {
            f,
            store: store.clone(),
            list: list.clone(),
            in_block: in_block.clone(),
            read_only: read_only.clone(),
            signature: Signature::one_of(shapes, Volatility::Volatile),
        }));
    }
}

struct ObjectUdf {
    f: ObjectFn,
    store: Arc<Store>,
    list: Arc<CatalogList>,
    in_block: Arc<AtomicBool>,
    read_only: Arc<AtomicBool>,
    signature: Signature,
}

bound_udf_identity!(ObjectUdf, bound: list, key: f);

impl ScalarUDFImpl for ObjectUdf {
    fn name(&self) -> &str {
        self.f.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.f {
            ObjectFn::Read => DataType::Binary,
            ObjectFn::Put | ObjectFn::Copy => DataType::Utf8,
            ObjectFn::Delete => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        // The arguments in the types the functions read (a text argument
        // may be a string view, a number a narrower integer).
        let types = match self.f {
            ObjectFn::Read => [
                DataType::Utf8,
                DataType::Utf8,
                DataType::Int64,
                DataType::Int64,
            ],
            ObjectFn::Copy => [
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8,
                DataType::Utf8,
            ],
            ObjectFn::Put | ObjectFn::Delete => [
                DataType::Utf8,
                DataType::Utf8,
                DataType::Binary,
                DataType::Utf8,
            ],
        };
        let args = ColumnarValue::values_to_arrays(&args.args)?
            .iter()
            .zip(&types)
            .map(|(a, ty)| cast(a, ty))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let out = match self.f {
            ObjectFn::Read => self.read(&args, rows),
            ObjectFn::Put | ObjectFn::Copy | ObjectFn::Delete => self.write(&args, rows),
        };
        Ok(ColumnarValue::Array(out.map_err(to_df)?))
    }
}

fn text_at(array: &ArrayRef, row: usize) -> Option<&str> {
    let strings = array.as_string::<i32>();
    (!strings.is_null(row)).then(|| strings.value(row))
}

fn int_at(array: Option<&ArrayRef>, row: usize) -> Option<Option<i64>> {
    array.map(|a| {
        let ints = a.as_primitive::<Int64Type>();
        (!ints.is_null(row)).then(|| ints.value(row))
    })
}

impl ObjectUdf {
    /// `object_read(bucket, key [, offset [, length]])`: the object's bytes
    /// from `offset` (0 by default), `length` of them (to the end by
    /// default); past the end there are fewer, or none.
    fn read(&self, args: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let state = self.list.state();
        let mut out = BinaryBuilder::new();
        for row in 0..rows {
            let (Some(bucket), Some(key)) = (text_at(&args[0], row), text_at(&args[1], row)) else {
                out.append_null();
                continue;
            };
            let (Some(offset), Some(length)) = (
                int_at(args.get(2), row).unwrap_or(Some(0)),
                int_at(args.get(3), row).unwrap_or(Some(i64::MAX)),
            ) else {
                out.append_null();
                continue;
            };
            let bytes = read_object(&self.store, &state.objects, bucket, key, offset, length)?;
            out.append_value(bytes);
        }
        Ok(Arc::new(out.finish()))
    }

    /// `object_put(bucket, key, data [, content_type])` returns the new
    /// object's ETag, making the bucket if there is none;
    /// `object_copy(from_bucket, from_key, bucket, key)` the copy's ETag
    /// (the bucket must exist, as for S3's CopyObject); `object_delete(bucket,
    /// key)` whether there was an object to delete.
    fn write(&self, args: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        if self.read_only.load(Ordering::Relaxed) {
            return Err(crate::session::read_only_refusal(&format!(
                "{}()",
                self.f.name()
            )));
        }
        if self.in_block.load(Ordering::Relaxed) {
            return Err(Error::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                format!(
                    "{} cannot run inside a transaction block: a ROLLBACK could not undo it",
                    self.f.name()
                ),
            ));
        }
        let mut etags = StringBuilder::new();
        let mut deleted = BooleanBuilder::new();
        for row in 0..rows {
            let (Some(bucket), Some(key)) = (text_at(&args[0], row), text_at(&args[1], row)) else {
                etags.append_null();
                deleted.append_null();
                continue;
            };
            if self.f == ObjectFn::Delete {
                let op = ObjectOp::Delete {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                };
                let applied = block_on_store(self.store.write(Command::Object(op)))?;
                deleted.append_value(applied.rows == 1);
                continue;
            }
            if self.f == ObjectFn::Copy {
                let (Some(to_bucket), Some(to_key)) =
                    (text_at(&args[2], row), text_at(&args[3], row))
                else {
                    etags.append_null();
                    continue;
                };
                let now = chrono::Utc::now().timestamp_micros();
                // The latest state, not the statement's: the log refuses
                // the copy if the source changes before it applies.
                let (op, meta) = self.store.snapshot().objects.copy(
                    (bucket, key),
                    (to_bucket, to_key),
                    None,
                    now,
                )?;
                block_on_store(self.store.write(Command::Object(op)))?;
                etags.append_value(meta.etag);
                continue;
            }
            let data = args[2].as_binary::<i32>();
            if data.is_null(row) {
                etags.append_null();
                continue;
            }
            let content_type = args.get(3).and_then(|a| text_at(a, row)).map(String::from);
            let meta = block_on_store(async {
                let mut writer = BlobWriter::new(&self.store);
                if let Err(e) = writer.write(data.value(row)).await {
                    writer.abort().await;
                    return Err(e);
                }
                writer
                    .put(bucket, key, content_type, BTreeMap::new(), true)
                    .await
            })?;
            etags.append_value(meta.etag);
        }
        Ok(match self.f {
            ObjectFn::Delete => Arc::new(deleted.finish()),
            _ => Arc::new(etags.finish()),
        })
    }
}

fn read_object(
    store: &Store,
    objects: &Objects,
    bucket: &str,
    key: &str,
    offset: i64,
    length: i64,
) -> Result<Vec<u8>> {
    let (Ok(offset), Ok(length)) = (u64::try_from(offset), u64::try_from(length)) else {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "object_read's offset and length cannot be negative",
        ));
    };
    let object = objects.object(bucket, key)?;
    let size = object.meta.size;
    let start = offset.min(size);
    let end = start.saturating_add(length).min(size);
    if end - start > READ_BYTES_MAX {
        return Err(Error::new(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!(
                "object \"{key}\" is {size} bytes, more than a bytea holds: read it in parts \
                 with object_read's offset and length, or over S3"
            ),
        ));
    }
    let pieces = store.read_blob(&object.blob, start..end);
    let mut bytes = Vec::with_capacity((end - start) as usize);
    block_on_store(pieces.try_for_each(|piece| {
        bytes.extend_from_slice(&piece);
        futures::future::ready(Ok(()))
    }))?;
    Ok(bytes)
}
