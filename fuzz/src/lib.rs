//! Shared by the fuzz targets: a counting allocator that turns an oversized allocation into a
//! crash, so libFuzzer saves the input that caused it exactly as it saves one that panicked.
//!
//! The rule it enforces (decision 0010): while one input of `n` bytes is processed, no single
//! allocation is larger than `per_byte·n + fixed`, and the bytes live at once stay under
//! `per_byte·n + fixed` plus what was live when the input started. `per_byte` is 64 unless a
//! target says otherwise; `fixed` covers what every input costs whatever its size (a state
//! machine, a log's index buffers).

#![allow(unsafe_code)] // a GlobalAlloc implementation cannot be written without it

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Bytes allowed per input byte.
pub const PER_BYTE: usize = 64;

/// The allocator every target installs.
#[derive(Debug)]
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static BASE: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static ARMED: AtomicBool = AtomicBool::new(false);

fn over(what: &str, size: usize) -> ! {
    // No allocation from here on: format into a stack buffer and write it raw.
    let mut buf = [0u8; 256];
    let mut w = &mut buf[..];
    let limit = LIMIT.load(Ordering::Relaxed);
    let _ = write!(
        w,
        "\n==sluice-fuzz== {what} of {size} bytes exceeds the input's budget of {limit} bytes\n"
    );
    let left = w.len();
    let _ = std::io::stderr().write_all(&buf[..256 - left]);
    std::process::abort();
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.account(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.account(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            self.account(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

impl Counting {
    fn account(&self, size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        if ARMED.load(Ordering::Relaxed) {
            let limit = LIMIT.load(Ordering::Relaxed);
            if size > limit {
                over("one allocation", size);
            }
            if live.saturating_sub(BASE.load(Ordering::Relaxed)) > limit {
                over("live memory", live - BASE.load(Ordering::Relaxed));
            }
        }
    }
}

/// Runs `f` with the budget of an `input_len`-byte input: `per_byte·input_len + fixed`.
pub fn within_budget<R>(
    input_len: usize,
    per_byte: usize,
    fixed: usize,
    f: impl FnOnce() -> R,
) -> R {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        // A panic is already a crash; its report (backtrace and all) must not count as an
        // oversized allocation of the input.
        let next = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            ARMED.store(false, Ordering::Relaxed);
            next(info)
        }));
    });
    BASE.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    LIMIT.store(
        input_len.saturating_mul(per_byte).saturating_add(fixed),
        Ordering::Relaxed,
    );
    ARMED.store(true, Ordering::Relaxed);
    let r = f();
    ARMED.store(false, Ordering::Relaxed);
    r
}

/// Recomputes the CRC-32C of every whole v2 batch in `payload`, so a fuzzer's mutations reach
/// the checks behind the CRC instead of stopping there.
pub fn fix_crcs(payload: &mut [u8]) {
    let mut pos = 0;
    while payload.len() >= pos + 61 {
        let len = i32::from_be_bytes(payload[pos + 8..pos + 12].try_into().unwrap());
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        let end = pos + 12 + len;
        if len < 49 || end > payload.len() {
            return;
        }
        let crc = sluice_log::batch::compute_crc(&payload[pos..end]);
        payload[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}
