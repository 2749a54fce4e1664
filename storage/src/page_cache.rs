//! Written bytes the node keeps in memory leave the kernel's page cache.
//!
//! The log's records and the table files a snapshot writes are read back
//! only when the node restarts or sends a snapshot: until then the node
//! holds their contents in memory (the log's entries until the next
//! snapshot, the tables' rows for good). Left in the page cache, each
//! written page takes a page of memory that was free. Where free memory
//! has gone back to the machine under it (a virtual machine whose balloon
//! reports free pages), the first touch of such a page is a fault on the
//! host too, about 7 µs a page. Once synced, the pages are clean and are
//! dropped at once, and the next writes reuse them. (PostgreSQL drops a
//! WAL segment it closes likewise when no archiver or standby reads it;
//! here a follower catching up is sent entries from memory.) Writing 1 GiB
//! in appends of 1 MiB with an fdatasync every 16 MiB took 1.0–1.8 s
//! (0.65–1.47 s of it in the kernel), and 0.56 s (0.23 s) when each synced
//! range was dropped.
//!
//! Object files are not dropped: a GET reads them from disk.

use std::fs::File;
use std::num::NonZeroU64;

use rustix::fs::{Advice, fadvise};

/// A page of the page cache. A range dropped ends on a page boundary: a
/// partly written page stays, or the next append into it would first read
/// it back from disk. (The kernel keeps a partial last page itself, except
/// at the file's end, where a large append's records end.)
pub(crate) const PAGE_BYTES: u64 = 4096;

/// Drops `len` bytes of `file` from `offset` (to its end when `len` is 0)
/// out of the page cache. They must be synced already: dirty pages are not
/// dropped. This is advice: if the kernel refuses it the pages stay cached,
/// which costs memory, never data; so a refusal is not an error.
pub(crate) fn forget(file: &File, offset: u64, len: u64) {
    let _ = fadvise(file, offset, NonZeroU64::new(len), Advice::DontNeed);
}
