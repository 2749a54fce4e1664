"""S3 clients against ciab's S3 endpoint, and the same objects through SQL.

boto3: buckets; PUT of small, chunked and empty objects with metadata; GET
whole and by ranges; HEAD; multipart upload (parts out of order, a part
replaced, an abort, a wrong ETag, ListParts and ListMultipartUploads);
ListObjectsV2 by prefix, delimiter and page; CopyObject (metadata copied
or replaced, conditions, a copy that outlives its source) and
UploadPartCopy by ranges; DELETE and DeleteObjects; the errors S3 gives.
The aws CLI copies a file up (multipart), within the bucket (multipart
copy) and down, moves, lists and removes; rclone copies a tree up and
back, copies and moves within the bucket, checks and deletes it. SQL sees
each object in ciab.objects and object_read, what object_put and
object_copy write is there for S3 at once, and the other way round.
Usage: s3_clients.py HOST PG_PORT S3_PORT (server/tests/it/objects.rs runs
it, then restarts the server and checks what this leaves behind).
"""
import hashlib
import os
import random
import subprocess
import sys
import tempfile

import boto3
import botocore
import psycopg
from botocore.config import Config

HOST, PG_PORT, S3_PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
DSN = f"host={HOST} port={PG_PORT} user=ciab dbname=ciab"
ENDPOINT = f"http://{HOST}:{S3_PORT}"
MIB = 1024 * 1024

s3 = boto3.client(
    "s3",
    endpoint_url=ENDPOINT,
    # Authentication is off: any key will do.
    aws_access_key_id="any-key",
    aws_secret_access_key="any-secret",
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
rng = random.Random(7)


def check(name, got, want):
    if got != want:
        raise AssertionError(f"{name}:\n got  {got!r}\n want {want!r}")


def md5(data):
    return hashlib.md5(data).hexdigest()


def s3_error(call, **kwargs):
    """The error code an S3 call fails with (HEAD has no body: its status)."""
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__}({kwargs}) did not fail")


def sql_error(conn, sql, params=None):
    try:
        conn.execute(sql, params)
    except psycopg.Error as e:
        conn.rollback()
        return e.sqlstate
    raise AssertionError(f"{sql} did not fail")


def body(bucket, key, **kwargs):
    return s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()


# Buckets.
s3.create_bucket(Bucket="photos")
check("create twice", s3_error(s3.create_bucket, Bucket="photos"), "BucketAlreadyOwnedByYou")
check("bad name", s3_error(s3.create_bucket, Bucket="Bad_Name"), "InvalidBucketName")
check("buckets", [b["Name"] for b in s3.list_buckets()["Buckets"]], ["photos"])
s3.head_bucket(Bucket="photos")
check("head missing bucket", s3_error(s3.head_bucket, Bucket="nope"), "404")

# PUT and GET.
small = "hello, objects ✓".encode()
put = s3.put_object(
    Bucket="photos",
    Key="a/small.txt",
    Body=small,
    ContentType="text/plain",
    Metadata={"owner": "ann", "trip": "rome"},
)
check("small etag", put["ETag"], f'"{md5(small)}"')
big = rng.randbytes(3 * MIB + 17)  # four log commands: three full chunks and a tail
check("big etag", s3.put_object(Bucket="photos", Key="a/big.bin", Body=big)["ETag"], f'"{md5(big)}"')
s3.put_object(Bucket="photos", Key="empty", Body=b"")
got = s3.get_object(Bucket="photos", Key="a/small.txt")
check("small body", got["Body"].read(), small)
check("content type", got["ContentType"], "text/plain")
check("metadata", got["Metadata"], {"owner": "ann", "trip": "rome"})
check("length", got["ContentLength"], len(small))
check("big body", md5(body("photos", "a/big.bin")), md5(big))
check("empty body", body("photos", "empty"), b"")
check("head", s3.head_object(Bucket="photos", Key="a/big.bin")["ContentLength"], len(big))

# Ranges, across the chunks' edges too.
ranged = s3.get_object(Bucket="photos", Key="a/big.bin", Range=f"bytes={MIB - 6}-{MIB + 24}")
check("range body", ranged["Body"].read(), big[MIB - 6 : MIB + 25])
check("range header", ranged["ContentRange"], f"bytes {MIB - 6}-{MIB + 24}/{len(big)}")
check("suffix", body("photos", "a/big.bin", Range="bytes=-10"), big[-10:])
check("open end", body("photos", "a/big.bin", Range=f"bytes={3 * MIB}-"), big[3 * MIB :])
check("past the end", s3_error(s3.get_object, Bucket="photos", Key="a/big.bin", Range="bytes=99999999-"), "InvalidRange")

# What is not there.
check("no key", s3_error(s3.get_object, Bucket="photos", Key="nope"), "NoSuchKey")
check("head no key", s3_error(s3.head_object, Bucket="photos", Key="nope"), "404")
check("no bucket", s3_error(s3.put_object, Bucket="nope", Key="k", Body=b"x"), "NoSuchBucket")

# Multipart: parts out of order, part 2 replaced, then completed.
mp = s3.create_multipart_upload(Bucket="photos", Key="mp/video.bin", ContentType="video/mp4")
uid = mp["UploadId"]
parts = {1: rng.randbytes(5 * MIB), 2: rng.randbytes(5 * MIB), 3: rng.randbytes(MIB + 3)}
etags = {}
for n in (2, 3, 1):
    etags[n] = s3.upload_part(Bucket="photos", Key="mp/video.bin", UploadId=uid, PartNumber=n, Body=parts[n])["ETag"]
parts[2] = rng.randbytes(5 * MIB)
etags[2] = s3.upload_part(Bucket="photos", Key="mp/video.bin", UploadId=uid, PartNumber=2, Body=parts[2])["ETag"]
listed = [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]
wrong = [{"PartNumber": 1, "ETag": etags[2]}]
check(
    "wrong etag",
    s3_error(s3.complete_multipart_upload, Bucket="photos", Key="mp/video.bin", UploadId=uid, MultipartUpload={"Parts": wrong}),
    "InvalidPart",
)
first = s3.list_parts(Bucket="photos", Key="mp/video.bin", UploadId=uid, MaxParts=2)
check("list parts", [(p["PartNumber"], p["ETag"], p["Size"]) for p in first["Parts"]], [(n, etags[n], len(parts[n])) for n in (1, 2)])
check("list parts truncated", (first["IsTruncated"], first["NextPartNumberMarker"]), (True, 2))
rest = s3.list_parts(Bucket="photos", Key="mp/video.bin", UploadId=uid, PartNumberMarker=2)
check("list parts rest", ([p["PartNumber"] for p in rest["Parts"]], rest["IsTruncated"]), ([3], False))
check("list parts of another key", s3_error(s3.list_parts, Bucket="photos", Key="mp/other", UploadId=uid), "NoSuchUpload")
other = s3.create_multipart_upload(Bucket="photos", Key="mp/audio.bin")["UploadId"]
in_progress = s3.list_multipart_uploads(Bucket="photos")["Uploads"]
check("list uploads", [(u["Key"], u["UploadId"]) for u in in_progress], [("mp/audio.bin", other), ("mp/video.bin", uid)])
paged = s3.list_multipart_uploads(Bucket="photos", MaxUploads=1, KeyMarker="mp/audio.bin")
check("list uploads after", [u["UploadId"] for u in paged["Uploads"]], [uid])
s3.abort_multipart_upload(Bucket="photos", Key="mp/audio.bin", UploadId=other)
done = s3.complete_multipart_upload(Bucket="photos", Key="mp/video.bin", UploadId=uid, MultipartUpload={"Parts": listed})
check("no uploads left", s3.list_multipart_uploads(Bucket="photos").get("Uploads", []), [])
video = parts[1] + parts[2] + parts[3]
expected = hashlib.md5(b"".join(hashlib.md5(parts[n]).digest() for n in (1, 2, 3))).hexdigest()
check("multipart etag", done["ETag"], f'"{expected}-3"')
check("multipart body", md5(body("photos", "mp/video.bin")), md5(video))
check("multipart type", s3.head_object(Bucket="photos", Key="mp/video.bin")["ContentType"], "video/mp4")
aborted = s3.create_multipart_upload(Bucket="photos", Key="mp/never.bin")["UploadId"]
s3.upload_part(Bucket="photos", Key="mp/never.bin", UploadId=aborted, PartNumber=1, Body=b"gone")
s3.abort_multipart_upload(Bucket="photos", Key="mp/never.bin", UploadId=aborted)
check(
    "aborted",
    s3_error(s3.upload_part, Bucket="photos", Key="mp/never.bin", UploadId=aborted, PartNumber=2, Body=b"x"),
    "NoSuchUpload",
)

# Listing.
logs = [f"logs/2026/{i:02}.log" for i in range(5)]
for key in logs:
    s3.put_object(Bucket="photos", Key=key, Body=key.encode())
keys = sorted(["a/small.txt", "a/big.bin", "empty", "mp/video.bin"] + logs)
check("list", [o["Key"] for o in s3.list_objects_v2(Bucket="photos")["Contents"]], keys)
folded = s3.list_objects_v2(Bucket="photos", Delimiter="/")
check("folded keys", [o["Key"] for o in folded["Contents"]], ["empty"])
check("prefixes", [p["Prefix"] for p in folded["CommonPrefixes"]], ["a/", "logs/", "mp/"])
pages = []
token = None
while True:
    kwargs = {"ContinuationToken": token} if token else {}
    page = s3.list_objects_v2(Bucket="photos", Prefix="logs/2026/", MaxKeys=2, **kwargs)
    pages.append([o["Key"] for o in page["Contents"]])
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
check("pages", pages, [logs[0:2], logs[2:4], logs[4:5]])
paginated = s3.get_paginator("list_objects_v2").paginate(Bucket="photos", PaginationConfig={"PageSize": 3})
check("paginator", [o["Key"] for p in paginated for o in p["Contents"]], keys)
check("v1", [o["Key"] for o in s3.list_objects(Bucket="photos", Prefix="a/")["Contents"]], ["a/big.bin", "a/small.txt"])

# The same objects through SQL.
with psycopg.connect(DSN, autocommit=True) as conn:
    rows = conn.execute(
        "SELECT key, size, etag, content_type, metadata::text FROM ciab.objects WHERE bucket = 'photos' ORDER BY key"
    ).fetchall()
    check("ciab.objects keys", [r[0] for r in rows], keys)
    by_key = {r[0]: r for r in rows}
    check("small row", by_key["a/small.txt"][1:], (len(small), md5(small), "text/plain", '{"trip": "rome", "owner": "ann"}'))
    check("video row", by_key["mp/video.bin"][1:3], (len(video), expected + "-3"))
    read = lambda *args: conn.execute(
        f"SELECT object_read({', '.join(['%s'] * len(args))})", args
    ).fetchone()[0]
    check("object_read", read("photos", "a/small.txt"), small)
    check("object_read big", md5(read("photos", "a/big.bin")), md5(big))
    check("object_read part", read("photos", "mp/video.bin", 5 * MIB - 3, 7), video[5 * MIB - 3 : 5 * MIB + 4])
    check("object_read to the end", read("photos", "a/big.bin", len(big) - 4), big[-4:])
    check("object_read past the end", read("photos", "a/big.bin", len(big) + 9, 3), b"")
    check("object_read null", read("photos", None), None)
    check("object_read missing", sql_error(conn, "SELECT object_read('photos', 'nope')"), "42704")
    check("object_read no bucket", sql_error(conn, "SELECT object_read('nope', 'k')"), "42704")
    check("object_read negative", sql_error(conn, "SELECT object_read('photos', 'empty', -1, 2)"), "22023")

    # SQL writes, S3 reads.
    csv = b"x,y\n1,2\n"
    etag = conn.execute("SELECT object_put('photos', 'from-sql.csv', %s, 'text/csv')", [csv]).fetchone()[0]
    check("object_put etag", etag, md5(csv))
    got = s3.get_object(Bucket="photos", Key="from-sql.csv")
    check("S3 sees SQL's put", (got["Body"].read(), got["ContentType"]), (csv, "text/csv"))
    bulk = conn.execute(
        "SELECT count(object_put('made-by-sql', 'n/' || g, CAST(repeat('z', g) AS bytea))) FROM generate_series(1, 20) g"
    ).fetchone()[0]
    check("object_put per row", bulk, 20)
    check("S3 sees SQL's bucket", sorted(b["Name"] for b in s3.list_buckets()["Buckets"]), ["made-by-sql", "photos"])
    check("a row's object", body("made-by-sql", "n/7"), b"z" * 7)
    check("object_delete", conn.execute("SELECT object_delete('photos', 'from-sql.csv')").fetchone()[0], True)
    check("object_delete again", conn.execute("SELECT object_delete('photos', 'from-sql.csv')").fetchone()[0], False)
    check("S3 sees SQL's delete", s3_error(s3.get_object, Bucket="photos", Key="from-sql.csv"), "NoSuchKey")
    check("object_put bad bucket", sql_error(conn, "SELECT object_put('No_Good', 'k', CAST('x' AS bytea))"), "22023")

    # S3 writes, SQL reads at once.
    s3.put_object(Bucket="photos", Key="from-s3", Body=b"seen")
    check("SQL sees S3's put", read("photos", "from-s3"), b"seen")
    s3.delete_object(Bucket="photos", Key="from-s3")
    check(
        "SQL sees S3's delete",
        conn.execute("SELECT count(*) FROM ciab.objects WHERE key = 'from-s3'").fetchone()[0],
        0,
    )

    # A ROLLBACK could not undo a put: refused in a block.
    conn.autocommit = False
    check("object_put in a block", sql_error(conn, "SELECT object_put('photos', 'k', CAST('x' AS bytea))"), "25001")
    check("object_delete in a block", sql_error(conn, "SELECT object_delete('photos', 'empty')"), "25001")
    conn.autocommit = True
    check("nothing written", conn.execute("SELECT count(*) FROM ciab.objects WHERE key = 'k'").fetchone()[0], 0)

# Copies: CopyObject shares the source's bytes, UploadPartCopy copies ranges.
src = s3.head_object(Bucket="photos", Key="a/small.txt")
copied = s3.copy_object(Bucket="photos", Key="copies/small.txt", CopySource={"Bucket": "photos", "Key": "a/small.txt"})
check("copy etag", copied["CopyObjectResult"]["ETag"], src["ETag"])
got = s3.get_object(Bucket="photos", Key="copies/small.txt")
check("copy", (got["Body"].read(), got["ContentType"], got["Metadata"]), (small, "text/plain", {"owner": "ann", "trip": "rome"}))
s3.copy_object(
    Bucket="photos",
    Key="copies/small.txt",
    CopySource="photos/a/small.txt",
    MetadataDirective="REPLACE",
    ContentType="text/x-note",
    Metadata={"owner": "bob"},
)
got = s3.head_object(Bucket="photos", Key="copies/small.txt")
check("copy with new metadata", (got["ContentType"], got["Metadata"]), ("text/x-note", {"owner": "bob"}))
check("copy onto itself", s3_error(s3.copy_object, Bucket="photos", Key="a/small.txt", CopySource="photos/a/small.txt"), "InvalidRequest")
copy_to = dict(Bucket="photos", Key="copies/if.txt", CopySource="photos/a/small.txt")
check("copy if-match", s3_error(s3.copy_object, CopySourceIfMatch='"00"', **copy_to), "PreconditionFailed")
check("copy if-none-match", s3_error(s3.copy_object, CopySourceIfNoneMatch=src["ETag"], **copy_to), "PreconditionFailed")
check("copy if-modified-since", s3_error(s3.copy_object, CopySourceIfModifiedSince=src["LastModified"], **copy_to), "PreconditionFailed")
s3.copy_object(CopySourceIfMatch=src["ETag"], CopySourceIfUnmodifiedSince=src["LastModified"], **copy_to)
check("copy if-match met", body("photos", "copies/if.txt"), small)
check("copy no source", s3_error(s3.copy_object, Bucket="photos", Key="copies/x", CopySource="photos/nope"), "NoSuchKey")
check("copy no bucket", s3_error(s3.copy_object, Bucket="nope", Key="x", CopySource="photos/a/small.txt"), "NoSuchBucket")
source_bytes = rng.randbytes(2 * MIB + 5)
s3.put_object(Bucket="photos", Key="tmp/source.bin", Body=source_bytes)
s3.copy_object(Bucket="photos", Key="copies/kept.bin", CopySource="photos/tmp/source.bin")
s3.delete_object(Bucket="photos", Key="tmp/source.bin")
check("a copy outlives its source", md5(body("photos", "copies/kept.bin")), md5(source_bytes))
s3.copy_object(Bucket="photos", Key="copies/big.bin", CopySource="photos/a/big.bin")
pc = s3.create_multipart_upload(Bucket="photos", Key="copies/parts.bin")["UploadId"]
part_copy = dict(Bucket="photos", Key="copies/parts.bin", UploadId=pc)
one = s3.upload_part_copy(PartNumber=1, CopySource="photos/a/big.bin", CopySourceRange=f"bytes=0-{MIB + 9}", **part_copy)
check("part copy etag", one["CopyPartResult"]["ETag"], f'"{md5(big[: MIB + 10])}"')
two = s3.upload_part_copy(PartNumber=2, CopySource="photos/a/small.txt", **part_copy)
bad_range = dict(PartNumber=3, CopySource="photos/a/small.txt", CopySourceRange="bytes=5-99999", **part_copy)
check("part copy bad range", s3_error(s3.upload_part_copy, **bad_range), "InvalidArgument")
both = [{"PartNumber": 1, "ETag": one["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": two["CopyPartResult"]["ETag"]}]
s3.complete_multipart_upload(MultipartUpload={"Parts": both}, **part_copy)
check("part copies", md5(body("photos", "copies/parts.bin")), md5(big[: MIB + 10] + small))
with psycopg.connect(DSN, autocommit=True) as conn:
    etag = conn.execute("SELECT object_copy('photos', 'a/small.txt', 'photos', 'copies/by-sql.txt')").fetchone()[0]
    check("object_copy etag", etag, md5(small))
    check("S3 sees SQL's copy", body("photos", "copies/by-sql.txt"), small)
    check("object_copy no source", sql_error(conn, "SELECT object_copy('photos', 'nope', 'photos', 'x')"), "42704")
    check("object_copy no bucket", sql_error(conn, "SELECT object_copy('photos', 'empty', 'nope', 'x')"), "42704")
    conn.autocommit = False
    check("object_copy in a block", sql_error(conn, "SELECT object_copy('photos', 'empty', 'photos', 'x')"), "25001")
    conn.autocommit = True
for key in ["small.txt", "if.txt", "parts.bin", "by-sql.txt"]:
    s3.delete_object(Bucket="photos", Key=f"copies/{key}")

# Deleting.
check("bucket not empty", s3_error(s3.delete_bucket, Bucket="made-by-sql"), "BucketNotEmpty")
s3.delete_objects(Bucket="made-by-sql", Delete={"Objects": [{"Key": f"n/{g}"} for g in range(1, 21)]})
s3.delete_bucket(Bucket="made-by-sql")
s3.delete_object(Bucket="photos", Key="empty")
s3.delete_object(Bucket="photos", Key="never-was")
check("buckets after", [b["Name"] for b in s3.list_buckets()["Buckets"]], ["photos"])

# The aws CLI: a 20 MiB file goes up in 8 MiB parts and comes back whole.
with tempfile.TemporaryDirectory() as tmp:
    config = os.path.join(tmp, "config")
    with open(config, "w") as f:
        f.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    env = dict(os.environ, AWS_CONFIG_FILE=config, AWS_ACCESS_KEY_ID="cli", AWS_SECRET_ACCESS_KEY="cli")
    aws = [os.path.join(os.path.dirname(sys.executable), "aws"), "--endpoint-url", ENDPOINT, "s3"]

    def run(*args):
        done = subprocess.run(aws + list(args), env=env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"aws s3 {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    data = rng.randbytes(20 * MIB)
    up = os.path.join(tmp, "up.bin")
    down = os.path.join(tmp, "down.bin")
    with open(up, "wb") as f:
        f.write(data)
    run("cp", up, "s3://photos/cli/data.bin")
    listing = run("ls", "s3://photos/cli/")
    check("aws s3 ls", listing.split()[-2:], [str(len(data)), "data.bin"])
    check("cli etag", s3.head_object(Bucket="photos", Key="cli/data.bin")["ETag"].endswith('-3"'), True)
    run("cp", "s3://photos/cli/data.bin", down)
    with open(down, "rb") as f:
        check("aws s3 cp down", md5(f.read()), md5(data))
    # Over 8 MiB the CLI copies in parts, each an UploadPartCopy of a range.
    run("cp", "s3://photos/cli/data.bin", "s3://photos/cli/copy.bin")
    check("aws s3 cp within", md5(body("photos", "cli/copy.bin")), md5(data))
    run("mv", "s3://photos/cli/copy.bin", "s3://photos/cli/moved.bin")
    check("aws s3 mv", md5(body("photos", "cli/moved.bin")), md5(data))
    check("aws s3 mv source", s3_error(s3.head_object, Bucket="photos", Key="cli/copy.bin"), "404")
    run("rm", "--recursive", "s3://photos/cli/")
    check("aws s3 rm", s3_error(s3.head_object, Bucket="photos", Key="cli/data.bin"), "404")

# rclone (Debian's): a tree goes up and comes back the same, checked by
# rclone itself, then is removed. A CA bundle meant for HTTPS stops it
# from starting, so none is given.
with tempfile.TemporaryDirectory() as tmp:
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(
        RCLONE_CONFIG_CIAB_TYPE="s3",
        RCLONE_CONFIG_CIAB_PROVIDER="Other",
        RCLONE_CONFIG_CIAB_ENDPOINT=ENDPOINT,
        RCLONE_CONFIG_CIAB_ACCESS_KEY_ID="rclone",
        RCLONE_CONFIG_CIAB_SECRET_ACCESS_KEY="rclone",
        RCLONE_CONFIG_CIAB_FORCE_PATH_STYLE="true",
        RCLONE_CONFIG=os.path.join(tmp, "rclone.conf"),
    )

    def rclone(*args, verbosity="-q"):
        done = subprocess.run(["rclone", verbosity, *args], env=env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"rclone {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout + done.stderr

    tree = {"a.bin": rng.randbytes(300_000), "sub/b.txt": b"hello\n", "big.bin": rng.randbytes(12 * MIB)}
    up, down = os.path.join(tmp, "up"), os.path.join(tmp, "down")
    for name, data in tree.items():
        os.makedirs(os.path.dirname(os.path.join(up, name)), exist_ok=True)
        with open(os.path.join(up, name), "wb") as f:
            f.write(data)
    rclone("copy", up, "ciab:photos/rc")
    listed = sorted(line.split()[1] for line in rclone("ls", "ciab:photos/rc").splitlines())
    check("rclone ls", listed, sorted(tree))
    check("rclone cat", rclone("cat", "ciab:photos/rc/sub/b.txt"), "hello\n")
    rclone("check", up, "ciab:photos/rc")
    # Within the bucket rclone copies on the server (CopyObject).
    said = rclone("copyto", "ciab:photos/rc/big.bin", "ciab:photos/rc-copy/big.bin", verbosity="-v")
    check("rclone copies on the server", "server-side copy" in said, True)
    rclone("moveto", "ciab:photos/rc-copy/big.bin", "ciab:photos/rc-copy/moved.bin")
    check("rclone server-side copy", md5(body("photos", "rc-copy/moved.bin")), md5(tree["big.bin"]))
    rclone("delete", "ciab:photos/rc-copy")
    rclone("copy", "ciab:photos/rc", down)
    for name, data in tree.items():
        with open(os.path.join(down, name), "rb") as f:
            check(f"rclone copy down {name}", md5(f.read()), md5(data))
    rclone("delete", "ciab:photos/rc")
    check("rclone delete", s3.list_objects_v2(Bucket="photos", Prefix="rc/")["KeyCount"], 0)

print("ok")
