//! The worker pool every per-host operation runs on: a fixed number of threads take items in
//! order; a signal stops new items from starting. Below everything that talks to hosts
//! (fanout.rs, holder.rs), so both use one pool. What does not belong here: SSH, results.

use crate::tool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Run `f` on every item with at most `width` at once, in order of the items. Items not
/// started because of an interruption come back as `None`.
pub fn fan_out<T: Sync, R: Send>(
    items: &[T],
    width: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let width = width.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..width {
            s.spawn(|| loop {
                if tool::interrupted() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });
    results.into_inner().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fan_out_keeps_item_order_and_bounds_concurrency() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..40).collect();
        let out = fan_out(&items, 4, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(
            out.into_iter().map(Option::unwrap).collect::<Vec<_>>(),
            (0..40).map(|i| i * 2).collect::<Vec<_>>()
        );
        assert!(peak.load(Ordering::SeqCst) <= 4);
    }
}
