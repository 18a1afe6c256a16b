//! The CPU pool: verification, parsing and normalizing of large bodies run off the async
//! workers, so one slow body cannot starve the other requests.

/// Bodies up to this size are verified and normalized on the async worker that received them:
/// their work is bounded by their size (linear parsers) and stays well under a millisecond.
/// Larger ones go to the CPU pool.
pub const INLINE_CPU_MAX_BYTES: usize = 32 * 1024;

/// At most this many CPU-heavy jobs run at once on tokio's blocking pool (one per core, at
/// least two). Callers wait for a slot without blocking an async worker, so the request timeout
/// still applies while they wait.
fn cpu_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::sync::Semaphore::new(cores.max(2))
    })
}

/// Runs CPU-bound work (signature check, parse, normalize) off the async workers when `bytes`
/// is large, so one slow body cannot starve the other requests. If the caller's future is
/// dropped (its request timed out), the work still finishes in the background and keeps its
/// slot until then, so the number of CPU jobs stays bounded.
pub async fn on_cpu<T: Send + 'static>(
    bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    if bytes <= INLINE_CPU_MAX_BYTES {
        return work();
    }
    let permit = cpu_slots()
        .acquire()
        .await
        .expect("the CPU pool is never closed");
    // The permit lives in the closure: released when the work ends, or when a task that never
    // ran is dropped (runtime shutdown).
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    });
    match task.await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => panic!("the runtime shut down while CPU work was queued"),
    }
}

#[cfg(test)]
mod cpu_pool_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn a_large_body_does_not_hold_the_async_worker() {
        // One async thread. The CPU job waits for a signal that only that thread can send: run
        // inline it would block the thread (and time out); on the pool the thread stays free.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let job = tokio::spawn(on_cpu(INLINE_CPU_MAX_BYTES + 1, move || {
            rx.recv_timeout(Duration::from_secs(10)).is_ok()
        }));
        tokio::task::yield_now().await;
        tx.send(()).unwrap();
        assert!(
            job.await.unwrap(),
            "the async thread ran while the CPU job waited"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_small_body_is_handled_where_it_arrived() {
        let here = std::thread::current().id();
        assert_eq!(
            on_cpu(1024, move || std::thread::current().id()).await,
            here
        );
    }
}
