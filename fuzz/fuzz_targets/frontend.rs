//! Whatever bytes a client sends, read as ciab's front end reads them
//! (`read` in `server/src/pg/socket.rs`): pgwire's server codec, stepped
//! through the startup handshake as the server steps it. SSLRequest and
//! GSSENCRequest (answered `N`), then a StartupMessage or a CancelRequest,
//! then any messages of a session.
//!
//! What must hold, as it must in the server:
//! - reading ends: every message consumes bytes, or changes the state;
//! - no allocation follows a length or count the client merely claims (a
//!   2 GiB length in a 20-byte message);
//! - a message that decodes encodes to bytes that decode to the same
//!   message, so what the server acts on is what was sent.
//!
//! A decode that fails or panics ends the connection with 08P01 in the
//! server, and the fuzzer's input here. pgwire 0.42 does panic on some
//! malformed messages (a CopyData or Bind whose lengths overrun it); the
//! server reads under `catch_unwind` for that reason, and so does this.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::api::{ClientInfo, DefaultClient, PgWireConnectionState};
use pgwire::messages::{PgWireFrontendMessage, SslNegotiationMetaMessage};
use pgwire::tokio::server::PgWireMessageServerCodec;
use tokio_util::codec::Decoder;

type Codec = PgWireMessageServerCodec<()>;

/// The most one allocation may take while a message is decoded, per byte
/// of input: a decoded element (a `Bytes` handle, say) may be larger than
/// the bytes it came from, but not without bound.
const ALLOC_BYTES_PER_INPUT_BYTE_MAX: usize = 16;
/// What any decode may allocate regardless of its input: pgwire sizes a
/// Bind's vectors by their 16-bit counts before reading them, up to
/// 65,535 parameters of 32 bytes (2 MiB). A 32-bit length followed is
/// what this catches.
const ALLOC_BYTES_BASE_MAX: usize = 4 * 1024 * 1024;

/// The system allocator, remembering the largest allocation since it was
/// last asked.
struct Watched;

static LARGEST_ALLOC_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Watched {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOC_BYTES.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOC_BYTES.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watched = Watched;

thread_local! {
    /// Set while pgwire decodes: a panic then is an answer, not a crash.
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

/// libfuzzer-sys's panic hook aborts, as a crash must; a panic inside
/// pgwire's decoding is caught instead, as the server catches it.
fn catch_decoding_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let crash = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.get() {
                crash(info);
            }
        }));
    });
}

fn codec(state: PgWireConnectionState) -> Codec {
    let mut client = DefaultClient::new(([127, 0, 0, 1], 5433).into(), false);
    client.set_state(state);
    PgWireMessageServerCodec::new(client)
}

/// The next message, None where the server would stop reading: more bytes
/// needed, or an error (a failed or panicking decode) that ends the
/// connection.
fn decode(
    codec: &mut Codec,
    input: &mut BytesMut,
    input_bytes: usize,
) -> Option<PgWireFrontendMessage> {
    LARGEST_ALLOC_BYTES.store(0, Ordering::Relaxed);
    DECODING.set(true);
    let decoded = catch_unwind(AssertUnwindSafe(|| codec.decode(input)));
    DECODING.set(false);
    let largest = LARGEST_ALLOC_BYTES.load(Ordering::Relaxed);
    let allowed = ALLOC_BYTES_BASE_MAX + ALLOC_BYTES_PER_INPUT_BYTE_MAX * input_bytes;
    assert!(
        largest <= allowed,
        "decoding {input_bytes} bytes allocated {largest} at once"
    );
    decoded.ok()?.ok()?
}

fuzz_target!(|data: &[u8]| {
    catch_decoding_panics();
    let mut input = BytesMut::from(data);
    let mut codec = codec(PgWireConnectionState::AwaitingSslRequest);
    // Every message but the one that ends the SSL negotiation consumes
    // bytes, and that one can only come once per state change.
    let decodes_max = data.len() + 2;
    for _ in 0..decodes_max {
        let state = codec.client_info.state();
        let Some(message) = decode(&mut codec, &mut input, data.len()) else {
            return;
        };
        let next = match &message {
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::None) => {
                PgWireConnectionState::AwaitingStartup
            }
            // Answered `N`; the client may try the other one, or start.
            PgWireFrontendMessage::SslNegotiation(_) => PgWireConnectionState::AwaitingSslRequest,
            // No authentication: the session is ready at once.
            PgWireFrontendMessage::Startup(_) => PgWireConnectionState::ReadyForQuery,
            // The server answers these by closing the connection.
            PgWireFrontendMessage::CancelRequest(_) | PgWireFrontendMessage::Terminate(_) => {
                return;
            }
            _ => state,
        };
        if !matches!(
            message,
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::None)
        ) {
            round_trip(&message, state);
        }
        codec.client_info.set_state(next);
    }
    panic!("{decodes_max} decodes without consuming the input");
});

/// The message, encoded, decodes to itself in the state it was read in.
fn round_trip(message: &PgWireFrontendMessage, state: PgWireConnectionState) {
    let mut encoded = BytesMut::new();
    message
        .encode(&mut encoded)
        .expect("a decoded message encodes");
    let encoded_bytes = encoded.len();
    let again = decode(&mut codec(state), &mut encoded, encoded_bytes)
        .expect("an encoded message decodes whole");
    assert_eq!(format!("{message:?}"), format!("{again:?}"));
    assert!(encoded.is_empty(), "{} bytes left over", encoded.len());
}
