//! The S3 face of object storage: an S3-compatible HTTP endpoint (the s3s
//! crate speaks the protocol) over the same buckets and objects SQL sees in
//! `ciab.objects`, so `aws s3`, boto3 and rclone work against a node.
//!
//! ```text
//!  aws s3 / boto3 ──HTTP──► strip the signature ──► s3s (parse, route, XML)
//!                                                    │ CiabS3: S3
//!                        read barrier + snapshot ◄───┤ GET, HEAD, LIST
//!              BlobWriter ─► Raft (1 MiB Appends) ◄──┘ PUT, parts, DELETE
//! ```
//!
//! Authentication is off: any access key is accepted, so the signature is
//! removed before s3s sees the request (s3s would check it against a secret
//! it does not know). Addressing is path-style (`/bucket/key`). Reads are
//! linearizable like SQL's: the node confirms with the leader how far it
//! must have applied, so an object written through any node, by S3 or by
//! SQL, is there for the next request.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ciab_storage::objects::{Listing, PART_NUMBER_MAX, Part, multipart_etag};
use ciab_storage::{BlobWriter, DbState, Error, ObjectMeta, ObjectOp, RejectionKind, Store};
use futures::StreamExt;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING};
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use tokio::net::TcpListener;

/// What one ListObjects, ListParts or ListMultipartUploads page gives at
/// most, as in S3.
const LIST_KEYS_MAX: usize = 1000;
/// Pieces of an object read ahead of the client.
const READ_PIECES_AHEAD: usize = 4;

pub async fn serve(listener: TcpListener, store: Arc<Store>) {
    let service = S3ServiceBuilder::new(CiabS3 { store }).build();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an S3 connection");
                continue;
            }
        };
        // A response's head and body leave in separate writes: with Nagle's
        // algorithm the body waits for the client's delayed ACK (40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY on an S3 connection");
        }
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(handle(&service, request).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, handler)
                .await
            {
                tracing::debug!(error = %e, "S3 connection ended");
            }
        });
    }
}

async fn handle(
    service: &s3s::service::S3Service,
    mut request: hyper::Request<hyper::body::Incoming>,
) -> s3s::HttpResponse {
    // A body in aws-chunked framing is decoded by s3s only while it checks
    // the signature; unchecked, its framing would be stored as data.
    let chunked = request
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("aws-chunked"));
    if chunked {
        let mut response = hyper::Response::new(s3s::Body::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NotImplemented</Code>\
             <Message>aws-chunked bodies need signatures, and authentication is off: \
             send the body plain</Message></Error>"
                .to_string(),
        ));
        *response.status_mut() = hyper::StatusCode::NOT_IMPLEMENTED;
        return response;
    }
    request.headers_mut().remove(AUTHORIZATION);
    strip_presigned_query(&mut request);
    match hyper::service::Service::call(service, request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = ?e, "S3 request failed");
            let mut response = hyper::Response::new(s3s::Body::empty());
            *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// Drops a presigned URL's signature parameters, as the header's.
fn strip_presigned_query<B>(request: &mut hyper::Request<B>) {
    let Some(query) = request.uri().query() else {
        return;
    };
    if !query.contains("X-Amz-Signature") {
        return;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("X-Amz-"))
        .collect();
    let path = request.uri().path();
    let rebuilt = match kept.is_empty() {
        true => path.to_string(),
        false => format!("{path}?{}", kept.join("&")),
    };
    if let Ok(uri) = rebuilt.parse() {
        *request.uri_mut() = uri;
    }
}

struct CiabS3 {
    store: Arc<Store>,
}

fn s3_error(e: Error) -> S3Error {
    let code = match &e {
        Error::Rejected(r) => match r.kind {
            RejectionKind::NoSuchBucket => S3ErrorCode::NoSuchBucket,
            RejectionKind::NoSuchKey => S3ErrorCode::NoSuchKey,
            RejectionKind::NoSuchUpload => S3ErrorCode::NoSuchUpload,
            RejectionKind::BucketExists => S3ErrorCode::BucketAlreadyOwnedByYou,
            RejectionKind::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
            RejectionKind::InvalidName if r.message.contains("bucket name") => {
                S3ErrorCode::InvalidBucketName
            }
            RejectionKind::InvalidName => S3ErrorCode::InvalidArgument,
            RejectionKind::InvalidPart => S3ErrorCode::InvalidPart,
            // The source of a copy changed between reading and writing.
            RejectionKind::SerializationFailure => S3ErrorCode::OperationAborted,
            _ => S3ErrorCode::InternalError,
        },
        Error::Unavailable(_) => S3ErrorCode::ServiceUnavailable,
        _ => S3ErrorCode::InternalError,
    };
    let message = match &e {
        Error::Rejected(r) => r.message.clone(),
        other => other.to_string(),
    };
    S3Error::with_message(code, message)
}

fn timestamp(micros: i64) -> Timestamp {
    let since = Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    Timestamp::from(SystemTime::UNIX_EPOCH + since)
}

fn etag(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

fn size(bytes: u64) -> i64 {
    i64::try_from(bytes).expect("objects are smaller than 8 EiB")
}

fn metadata(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.metadata.is_empty()).then(|| meta.metadata.clone().into_iter().collect())
}

/// The object an `x-amz-copy-source` names, with its bucket and key, once
/// it met the request's `x-amz-copy-source-if-*` conditions. Objects have
/// no versions here, so only the version every object has (`null`) is
/// found.
fn copy_source(
    state: &DbState,
    source: &CopySource,
    conditions: CopyConditions,
) -> S3Result<(String, String, Arc<ciab_storage::objects::Object>)> {
    let (bucket, key) = match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => match version_id.as_deref() {
            None | Some("null") => (bucket.to_string(), key.to_string()),
            Some(_) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    "objects have no versions: copy the current one",
                ));
            }
        },
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "access points and outposts are not supported: name the source as bucket/key",
            ));
        }
    };
    let object = state.objects.object(&bucket, &key).map_err(s3_error)?;
    conditions.check(&object.meta)?;
    Ok((bucket, key, object.clone()))
}

/// The `x-amz-copy-source-if-*` conditions, as S3 combines them: a
/// matching If-Match overrides If-Unmodified-Since, and a passing
/// If-None-Match overrides If-Modified-Since. HTTP dates have whole seconds.
struct CopyConditions {
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
    if_modified_since: Option<Timestamp>,
    if_unmodified_since: Option<Timestamp>,
}

impl CopyConditions {
    fn check(self, meta: &ObjectMeta) -> S3Result<()> {
        let matches = |c: &ETagCondition| c.as_etag().is_none_or(|t| t.value() == meta.etag);
        let modified = timestamp(meta.modified_us.div_euclid(1_000_000) * 1_000_000);
        let failed = || {
            S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "the copy source does not meet the request's conditions",
            )
        };
        match (&self.if_match, &self.if_unmodified_since) {
            (Some(c), _) if !matches(c) => return Err(failed()),
            (None, Some(since)) if modified > *since => return Err(failed()),
            _ => {}
        }
        match (&self.if_none_match, &self.if_modified_since) {
            (Some(c), _) if matches(c) => Err(failed()),
            (None, Some(since)) if modified <= *since => Err(failed()),
            _ => Ok(()),
        }
    }
}

/// A part number as S3 allows it.
fn part_number(number: i32) -> S3Result<u32> {
    u32::try_from(number)
        .ok()
        .filter(|n| (1..=PART_NUMBER_MAX).contains(n))
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("part numbers are 1 to {PART_NUMBER_MAX}"),
            )
        })
}

/// `x-amz-copy-source-range`: `bytes=first-last`, both given, inside the
/// source.
fn copy_range(range: Option<&str>, size: u64) -> S3Result<Range<u64>> {
    let Some(text) = range else {
        return Ok(0..size);
    };
    let invalid = || {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("the copy range {text:?} is not bytes=first-last within {size} bytes"),
        )
    };
    let (first, last) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(invalid());
    }
    Ok(first..last + 1)
}

impl CiabS3 {
    /// The state a read must see: everything committed before it began.
    async fn state(&self) -> S3Result<Arc<DbState>> {
        self.store.read_barrier().await.map_err(s3_error)?;
        Ok(self.store.snapshot())
    }

    async fn write(&self, op: ObjectOp) -> S3Result<ciab_storage::Applied> {
        let command = ciab_storage::Command::Object(op);
        self.store.write(command).await.map_err(s3_error)
    }

    /// Streams a request body into the log; on failure the bytes written
    /// so far are discarded.
    async fn receive(&self, body: Option<StreamingBlob>) -> S3Result<BlobWriter<'_>> {
        let Some(body) = body else {
            return Ok(BlobWriter::new(&self.store));
        };
        let pieces = body.map(|piece| {
            piece.map_err(|e| {
                S3Error::with_message(
                    S3ErrorCode::IncompleteBody,
                    format!("reading the body: {e}"),
                )
            })
        });
        self.write_pieces(pieces).await
    }

    async fn write_pieces(
        &self,
        mut pieces: impl futures::Stream<Item = S3Result<bytes::Bytes>> + Unpin,
    ) -> S3Result<BlobWriter<'_>> {
        let mut writer = BlobWriter::new(&self.store);
        while let Some(piece) = pieces.next().await {
            let written = match piece {
                Ok(piece) => writer.write(&piece).await.map_err(s3_error),
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                writer.abort().await;
                return Err(e);
            }
        }
        Ok(writer)
    }

    /// Makes what `writer` holds part `number` of an upload.
    async fn put_part(&self, id: String, number: u32, writer: BlobWriter<'_>) -> S3Result<Part> {
        let part: Part = writer.finish_part().await.map_err(s3_error)?;
        let op = ObjectOp::PutPart {
            id,
            number,
            part: part.clone(),
        };
        self.write(op).await?;
        Ok(part)
    }
}

#[async_trait::async_trait]
impl S3 for CiabS3 {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let state = self.state().await?;
        let buckets = state
            .objects
            .buckets
            .iter()
            .map(|(name, b)| Bucket {
                name: Some(name.clone()),
                creation_date: Some(timestamp(b.created_us)),
                ..Bucket::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..ListBucketsOutput::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let op = ObjectOp::CreateBucket {
            bucket: req.input.bucket.clone(),
            created_us: chrono::Utc::now().timestamp_micros(),
            if_not_exists: false,
        };
        self.write(op).await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", req.input.bucket)),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let state = self.state().await?;
        state.objects.bucket(&req.input.bucket).map_err(s3_error)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let state = self.state().await?;
        state.objects.bucket(&req.input.bucket).map_err(s3_error)?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        self.write(ObjectOp::DropBucket { bucket }).await?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        // Checked first too, so a missing bucket fails before the body
        // travels; the log checks again when the object is made.
        self.state()
            .await?
            .objects
            .bucket(&input.bucket)
            .map_err(s3_error)?;
        let writer = self.receive(input.body).await?;
        let metadata: BTreeMap<String, String> =
            input.metadata.unwrap_or_default().into_iter().collect();
        let meta = writer
            .put(
                &input.bucket,
                &input.key,
                input.content_type,
                metadata,
                false,
            )
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&meta)),
            size: Some(size(meta.size)),
            ..PutObjectOutput::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let state = self.state().await?;
        let object = state
            .objects
            .object(&input.bucket, &input.key)
            .map_err(s3_error)?
            .clone();
        let meta = &object.meta;
        let (range, content_range) = match &input.range {
            None => (0..meta.size, None),
            Some(r) => {
                let range = r
                    .check(meta.size)
                    .map_err(|_| S3Error::new(S3ErrorCode::InvalidRange))?;
                let shown = format!(
                    "bytes {}-{}/{}",
                    range.start,
                    range.end.saturating_sub(1),
                    meta.size
                );
                (range, Some(shown))
            }
        };
        let length = range.end - range.start;
        let bytes = sync_stream(self.store.read_blob(&object.blob, range));
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(bytes)),
            content_length: Some(size(length)),
            content_range,
            accept_ranges: Some("bytes".to_string()),
            content_type: meta.content_type.clone(),
            e_tag: Some(etag(meta)),
            last_modified: Some(timestamp(meta.modified_us)),
            metadata: metadata(meta),
            ..GetObjectOutput::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let state = self.state().await?;
        let object = state
            .objects
            .object(&req.input.bucket, &req.input.key)
            .map_err(s3_error)?;
        let meta = &object.meta;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(size(meta.size)),
            accept_ranges: Some("bytes".to_string()),
            content_type: meta.content_type.clone(),
            e_tag: Some(etag(meta)),
            last_modified: Some(timestamp(meta.modified_us)),
            metadata: metadata(meta),
            ..HeadObjectOutput::default()
        }))
    }

    /// A copy shares the source's bytes; only the metadata is new (or, with
    /// `x-amz-metadata-directive: REPLACE`, taken from the request).
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let state = self.state().await?;
        let conditions = CopyConditions {
            if_match: input.copy_source_if_match,
            if_none_match: input.copy_source_if_none_match,
            if_modified_since: input.copy_source_if_modified_since,
            if_unmodified_since: input.copy_source_if_unmodified_since,
        };
        let (from_bucket, from_key, _) = copy_source(&state, &input.copy_source, conditions)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && from_bucket == input.bucket && from_key == input.key {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "copying an object onto itself changes nothing: \
                 set x-amz-metadata-directive: REPLACE to change its metadata",
            ));
        }
        let replaced = replace.then(|| {
            let metadata = input.metadata.unwrap_or_default().into_iter().collect();
            (input.content_type, metadata)
        });
        let (op, meta) = state
            .objects
            .copy(
                (&from_bucket, &from_key),
                (&input.bucket, &input.key),
                replaced,
                chrono::Utc::now().timestamp_micros(),
            )
            .map_err(s3_error)?;
        self.write(op).await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&meta)),
                last_modified: Some(timestamp(meta.modified_us)),
                ..CopyObjectResult::default()
            }),
            ..CopyObjectOutput::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let op = ObjectOp::Delete {
            bucket: req.input.bucket,
            key: req.input.key,
        };
        self.write(op).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let mut deleted = Vec::new();
        for object in input.delete.objects {
            let op = ObjectOp::Delete {
                bucket: input.bucket.clone(),
                key: object.key.clone(),
            };
            self.write(op).await?;
            deleted.push(DeletedObject {
                key: Some(object.key),
                ..DeletedObject::default()
            });
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!quiet).then_some(deleted),
            ..DeleteObjectsOutput::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let after = input
            .continuation_token
            .clone()
            .or(input.start_after.clone())
            .unwrap_or_default();
        let (listing, max) = self
            .list(
                &input.bucket,
                input.prefix.as_deref(),
                input.delimiter.as_deref(),
                &after,
                input.max_keys,
            )
            .await?;
        let key_count = listing.objects.len() + listing.common_prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            max_keys: Some(max),
            key_count: Some(i32::try_from(key_count).expect("a page is small")),
            continuation_token: input.continuation_token,
            start_after: input.start_after,
            is_truncated: Some(listing.next_after.is_some()),
            next_continuation_token: listing.next_after.clone(),
            contents: Some(contents(&listing)),
            common_prefixes: Some(common_prefixes(&listing)),
            ..ListObjectsV2Output::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let after = input.marker.clone().unwrap_or_default();
        let (listing, max) = self
            .list(
                &input.bucket,
                input.prefix.as_deref(),
                input.delimiter.as_deref(),
                &after,
                input.max_keys,
            )
            .await?;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            marker: input.marker,
            max_keys: Some(max),
            is_truncated: Some(listing.next_after.is_some()),
            next_marker: listing.next_after.clone(),
            contents: Some(contents(&listing)),
            common_prefixes: Some(common_prefixes(&listing)),
            ..ListObjectsOutput::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let multipart = ciab_storage::objects::Multipart {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            content_type: input.content_type,
            metadata: input.metadata.unwrap_or_default().into_iter().collect(),
            initiated_us: chrono::Utc::now().timestamp_micros(),
            parts: BTreeMap::new(),
        };
        let op = ObjectOp::CreateMultipart {
            id: id.clone(),
            multipart,
        };
        self.write(op).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..CreateMultipartUploadOutput::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let number = part_number(input.part_number)?;
        self.state()
            .await?
            .objects
            .multipart(&input.upload_id)
            .map_err(s3_error)?;
        let writer = self.receive(input.body).await?;
        let part = self.put_part(input.upload_id, number, writer).await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            ..UploadPartOutput::default()
        }))
    }

    /// A part made of a range of another object: its bytes are read and
    /// written again, as a part must be bytes of its own until the upload
    /// completes.
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let number = part_number(input.part_number)?;
        let state = self.state().await?;
        state
            .objects
            .multipart(&input.upload_id)
            .map_err(s3_error)?;
        let conditions = CopyConditions {
            if_match: input.copy_source_if_match,
            if_none_match: input.copy_source_if_none_match,
            if_modified_since: input.copy_source_if_modified_since,
            if_unmodified_since: input.copy_source_if_unmodified_since,
        };
        let (_, _, source) = copy_source(&state, &input.copy_source, conditions)?;
        let range = copy_range(input.copy_source_range.as_deref(), source.meta.size)?;
        let pieces = self
            .store
            .read_blob(&source.blob, range)
            .map(|piece| piece.map_err(s3_error));
        let writer = self.write_pieces(pieces).await?;
        let part = self.put_part(input.upload_id, number, writer).await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(timestamp(part.modified_us)),
                ..CopyPartResult::default()
            }),
            ..UploadPartCopyOutput::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let state = self.state().await?;
        let multipart = state
            .objects
            .multipart(&input.upload_id)
            .map_err(s3_error)?;
        if multipart.bucket != input.bucket || multipart.key != input.key {
            return Err(S3Error::with_message(
                S3ErrorCode::NoSuchUpload,
                "the upload is of another object",
            ));
        }
        let max = page_size(input.max_parts);
        let after = input
            .part_number_marker
            .map_or(0, |m| u32::try_from(m).unwrap_or(0));
        let mut listed: Vec<(&u32, &Part)> = multipart
            .parts
            .range(after.saturating_add(1)..)
            .take(max + 1)
            .collect();
        let truncated = listed.len() > max;
        listed.truncate(max);
        let next = listed.last().map(|(n, _)| **n);
        let parts = listed
            .into_iter()
            .map(|(number, part)| s3s::dto::Part {
                part_number: Some(i32::try_from(*number).expect("part numbers are small")),
                e_tag: Some(ETag::Strong(part.etag.clone())),
                size: Some(size(part.size)),
                last_modified: Some(timestamp(part.modified_us)),
                ..s3s::dto::Part::default()
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(i32::try_from(max).expect("at most 1000")),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next.map(|n| i32::try_from(n).expect("small")),
            is_truncated: Some(truncated),
            parts: Some(parts),
            ..ListPartsOutput::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let state = self.state().await?;
        state.objects.bucket(&input.bucket).map_err(s3_error)?;
        let page = state.objects.list_multiparts(
            &input.bucket,
            input.prefix.as_deref().unwrap_or(""),
            input.delimiter.as_deref(),
            (
                input.key_marker.as_deref().unwrap_or(""),
                input.upload_id_marker.as_deref(),
            ),
            page_size(input.max_uploads),
        );
        let uploads = page
            .uploads
            .iter()
            .map(|(id, m)| MultipartUpload {
                key: Some(m.key.clone()),
                upload_id: Some(id.clone()),
                initiated: Some(timestamp(m.initiated_us)),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..MultipartUpload::default()
            })
            .collect();
        let prefixes = page.common_prefixes.iter().map(|p| CommonPrefix {
            prefix: Some(p.clone()),
        });
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(i32::try_from(page_size(input.max_uploads)).expect("small")),
            is_truncated: Some(page.next.is_some()),
            next_key_marker: page.next.as_ref().map(|(k, _)| k.clone()),
            next_upload_id_marker: page.next.and_then(|(_, id)| id),
            uploads: Some(uploads),
            common_prefixes: Some(prefixes.collect()),
            ..ListMultipartUploadsOutput::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let state = self.state().await?;
        let multipart = state
            .objects
            .multipart(&input.upload_id)
            .map_err(s3_error)?;
        let listed = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        let invalid = |message: String| S3Error::with_message(S3ErrorCode::InvalidPart, message);
        let mut numbers = Vec::with_capacity(listed.len());
        let mut etags = Vec::with_capacity(listed.len());
        let mut total = 0;
        for completed in &listed {
            let number = completed
                .part_number
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid("a part without a number".into()))?;
            let part = multipart
                .parts
                .get(&number)
                .ok_or_else(|| invalid(format!("part {number} was not uploaded")))?;
            if let Some(tag) = &completed.e_tag
                && tag.value() != part.etag
            {
                return Err(invalid(format!("part {number} has another ETag")));
            }
            numbers.push(number);
            etags.push(part.etag.as_str());
            total += part.size;
        }
        let meta = ObjectMeta {
            size: total,
            etag: multipart_etag(etags).map_err(s3_error)?,
            content_type: multipart.content_type.clone(),
            modified_us: chrono::Utc::now().timestamp_micros(),
            metadata: multipart.metadata.clone(),
        };
        let op = ObjectOp::CompleteMultipart {
            id: input.upload_id,
            parts: numbers,
            meta: meta.clone(),
        };
        self.write(op).await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(etag(&meta)),
            ..CompleteMultipartUploadOutput::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let id = req.input.upload_id;
        self.write(ObjectOp::AbortMultipart { id }).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

impl CiabS3 {
    async fn list(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        after: &str,
        max_keys: Option<i32>,
    ) -> S3Result<(Listing, i32)> {
        let max = page_size(max_keys);
        let state = self.state().await?;
        let bucket = state.objects.bucket(bucket).map_err(s3_error)?;
        let listing = bucket.list(prefix.unwrap_or(""), delimiter, after, max);
        Ok((listing, i32::try_from(max).expect("at most 1000")))
    }
}

/// A page's length as the client asked for it, at most S3's 1,000.
fn page_size(asked: Option<i32>) -> usize {
    asked.map_or(LIST_KEYS_MAX, |m| {
        usize::try_from(m).unwrap_or(0).min(LIST_KEYS_MAX)
    })
}

/// s3s takes a body that is `Sync`, which a stream of the object store's is
/// not: a task moves the pieces over a channel, a few at a time, and stops
/// when the client goes away.
fn sync_stream(
    mut pieces: futures::stream::BoxStream<'static, ciab_storage::Result<bytes::Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + Sync + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel(READ_PIECES_AHEAD);
    tokio::spawn(async move {
        while let Some(piece) = pieces.next().await {
            let failed = piece.is_err();
            if sender
                .send(piece.map_err(std::io::Error::other))
                .await
                .is_err()
                || failed
            {
                break;
            }
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|piece| (piece, receiver))
    })
}

fn contents(listing: &Listing) -> Vec<Object> {
    listing
        .objects
        .iter()
        .map(|(key, object)| Object {
            key: Some(key.clone()),
            size: Some(size(object.meta.size)),
            e_tag: Some(etag(&object.meta)),
            last_modified: Some(timestamp(object.meta.modified_us)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Object::default()
        })
        .collect()
}

fn common_prefixes(listing: &Listing) -> Vec<CommonPrefix> {
    let prefixes = listing.common_prefixes.iter();
    prefixes
        .map(|p| CommonPrefix {
            prefix: Some(p.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_parameters_are_dropped() {
        let mut request = hyper::Request::builder()
            .uri("/b/k?X-Amz-Algorithm=A&uploadId=7&X-Amz-Signature=s")
            .body(())
            .unwrap();
        strip_presigned_query(&mut request);
        assert_eq!(request.uri().to_string(), "/b/k?uploadId=7");
    }
}
