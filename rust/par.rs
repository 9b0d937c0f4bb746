//! One batch of per-path work spread over a few threads, results in input order.
//!
//! Threads take chunks of `chunk` items from a shared counter, so a slow file holds up one chunk,
//! not a fixed share. Each thread owns one `state` (a read buffer) for all its items.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many threads `threads` asks for (0: one per CPU), at most one per chunk, at least one.
fn thread_count(threads: usize, items: usize, chunk: usize) -> usize {
    if items <= chunk {
        return 1; // one chunk: no thread, and no look at the CPU count (it reads the cgroup's files)
    }
    let wanted = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |t| t.get())
    } else {
        threads
    };
    wanted.min(items.div_ceil(chunk.max(1))).max(1)
}

/// `f(state, item)` for every item, on up to `threads` threads (0: one per CPU); `lost(item)` stands
/// in for the result of an item whose thread panicked.
pub fn map_chunked<T, R, S>(
    items: &[T],
    threads: usize,
    chunk: usize,
    state: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
    lost: impl Fn(&T) -> R,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let n = items.len();
    let chunk = chunk.max(1);
    let threads = thread_count(threads, n, chunk);
    if threads == 1 {
        let mut st = state();
        return items.iter().map(|it| f(&mut st, it)).collect();
    }
    let next = AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut st = state();
                    let mut out = Vec::with_capacity(n / threads + chunk);
                    loop {
                        let start = next.fetch_add(chunk, Ordering::Relaxed);
                        if start >= n {
                            break;
                        }
                        for (i, it) in items.iter().enumerate().skip(start).take(chunk) {
                            out.push((i, f(&mut st, it)));
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut slots: Vec<Option<R>> = Vec::with_capacity(n);
    slots.resize_with(n, || None);
    for (i, r) in parts.into_iter().flatten() {
        slots[i] = Some(r);
    }
    slots
        .into_iter()
        .zip(items)
        .map(|(r, it)| r.unwrap_or_else(|| lost(it)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_input_order_on_any_thread_count() {
        let items: Vec<usize> = (0..1000).collect();
        for threads in [0, 1, 2, 7] {
            let got = map_chunked(
                &items,
                threads,
                16,
                || 0usize,
                |seen, x| {
                    *seen += 1;
                    x * 2
                },
                |_| usize::MAX,
            );
            assert_eq!(got, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panicking_thread_loses_only_its_items() {
        let items: Vec<usize> = (0..64).collect();
        let got = map_chunked(
            &items,
            2,
            8,
            || (),
            |_, &x| {
                assert!(x != 13, "boom");
                x
            },
            |_| usize::MAX,
        );
        assert_eq!(got.len(), 64);
        assert!(got.contains(&usize::MAX));
        assert!(got.iter().filter(|&&x| x != usize::MAX).all(|&x| x != 13));
    }

    #[test]
    fn an_empty_batch_is_empty() {
        let got = map_chunked(&Vec::<u8>::new(), 0, 8, || (), |_, &x| x, |&x| x);
        assert!(got.is_empty());
    }
}
