//! A second core for decoding's matrix–vector products.
//!
//! A decoding step makes ~200 products of 50–200 µs each, so waking a sleeping thread for
//! each (what rayon does) costs more than it saves. Instead one helper thread, started on
//! first use, spins between products and parks only after [`SPIN`] without work: during
//! decoding it answers within a microsecond, and an idle program does not burn a core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use super::Product;

/// How long the helper spins for the next product before parking.
const SPIN: Duration = Duration::from_millis(5);

struct Helper {
    thread: Thread,
    /// The product on offer, present between `posted` and `done` advancing.
    slot: Mutex<Option<Product>>,
    posted: AtomicUsize,
    done: AtomicUsize,
    /// One caller at a time; the others compute alone.
    caller: Mutex<()>,
}

static HELPER: OnceLock<&'static Helper> = OnceLock::new();

fn helper() -> &'static Helper {
    HELPER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        thread::Builder::new()
            .name("rlmec-gemv".into())
            .spawn(move || {
                let helper: &'static Helper = Box::leak(Box::new(Helper {
                    thread: thread::current(),
                    slot: Mutex::new(None),
                    posted: AtomicUsize::new(0),
                    done: AtomicUsize::new(0),
                    caller: Mutex::new(()),
                }));
                tx.send(helper)
                    .expect("the starting thread waits for the helper");
                helper.serve();
            })
            .expect("spawning the decoding helper thread");
        rx.recv().expect("the helper thread starts")
    })
}

impl Helper {
    fn serve(&self) -> ! {
        let mut seen = 0;
        loop {
            let idle_since = Instant::now();
            let mut spins = 0u32;
            while self.posted.load(Ordering::Acquire) == seen {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(1024) && idle_since.elapsed() > SPIN {
                    // `unpark` before `park` makes `park` return at once: no lost wake-up.
                    thread::park();
                } else {
                    std::hint::spin_loop();
                }
            }
            seen = self.posted.load(Ordering::Acquire);
            let product = self.slot.lock().expect("helper slot").take();
            if let Some(product) = product {
                // SAFETY: the poster keeps the buffers alive until `done` reaches `seen`.
                unsafe { product.run() };
            }
            self.done.store(seen, Ordering::Release);
        }
    }
}

/// Runs `first` here and `second` on the helper, returning when both are done; runs both
/// here when another thread is using the helper.
///
/// # Safety
/// Both products' buffers must be valid for the call and their outputs disjoint.
pub unsafe fn run_pair(first: Product, second: Product) {
    let helper = helper();
    let Ok(_turn) = helper.caller.try_lock() else {
        // SAFETY: forwarded from the caller.
        return unsafe {
            first.run();
            second.run();
        };
    };
    *helper.slot.lock().expect("helper slot") = Some(second);
    let ticket = helper.posted.fetch_add(1, Ordering::AcqRel) + 1;
    helper.thread.unpark();
    // SAFETY: forwarded from the caller.
    unsafe { first.run() };
    while helper.done.load(Ordering::Acquire) != ticket {
        std::hint::spin_loop();
    }
}
