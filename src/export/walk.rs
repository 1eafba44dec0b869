//! Directory work done ahead of the walk.
//!
//! The driver walks in one order on one thread, so that every decision that depends on
//! order is made in one place. Listing a directory (opening it, reading its names,
//! `lstat`ing every child, encrypting the names) and finding out what the destination
//! holds there is independent of that order, so it is started on the thread pool as soon
//! as the directory's parent is entered, and the walk picks the result up when it gets
//! there. The results do not depend on which thread computed them or when.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// How many directories may be listed ahead of the walk at once. Each holds its listing
/// and a directory handle until the walk reaches it.
pub const MAX_AHEAD: usize = 512;

enum Slot<'s, T> {
    Queued(Box<dyn FnOnce() -> T + Send + 's>),
    Running,
    Done(T),
    Taken,
}

/// The result of one piece of directory work, being computed or waiting to be.
pub struct Ahead<'s, T> {
    slot: Mutex<Slot<'s, T>>,
    ready: Condvar,
    started_ahead: bool,
}

impl<'s, T: Send + 's> Ahead<'s, T> {
    fn run(&self) {
        let job = {
            let mut slot = self.slot.lock().expect("no panics while held");
            match std::mem::replace(&mut *slot, Slot::Running) {
                Slot::Queued(job) => job,
                other => {
                    *slot = other;
                    return;
                }
            }
        };
        let result = job();
        *self.slot.lock().expect("no panics while held") = Slot::Done(result);
        self.ready.notify_all();
    }

    /// The result: computed here if no worker has started it, else waited for.
    pub fn take(&self, ahead: &Prefetch) -> T {
        if self.started_ahead {
            ahead.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
        self.run();
        loop {
            {
                let mut slot = self.slot.lock().expect("no panics while held");
                match std::mem::replace(&mut *slot, Slot::Taken) {
                    Slot::Done(t) => return t,
                    Slot::Running => *slot = Slot::Running,
                    Slot::Queued(_) | Slot::Taken => unreachable!("run() leaves Running or Done"),
                }
            }
            // Another thread is computing it: do other queued work meanwhile, or wait.
            help_or_wait(&self.slot, &self.ready, |s| matches!(s, Slot::Running));
        }
    }
}

/// Starts directory work on the pool, within a budget.
#[derive(Default)]
pub struct Prefetch {
    outstanding: AtomicUsize,
}

impl Prefetch {
    /// Queue `job`; it starts on the pool now if the budget allows, else it runs when
    /// its result is taken.
    pub fn queue<'s, T: Send + 's>(
        &self,
        scope: &rayon::Scope<'s>,
        job: impl FnOnce() -> T + Send + 's,
    ) -> Arc<Ahead<'s, T>> {
        let start = self.outstanding.load(Ordering::Relaxed) < MAX_AHEAD;
        let ahead = Arc::new(Ahead {
            slot: Mutex::new(Slot::Queued(Box::new(job))),
            ready: Condvar::new(),
            started_ahead: start,
        });
        if start {
            self.outstanding.fetch_add(1, Ordering::Relaxed);
            let a = Arc::clone(&ahead);
            scope.spawn(move |_| a.run());
        }
        ahead
    }
}

/// While `still(state)` holds: on a pool thread, run one piece of queued work (the walk
/// runs on the pool, so waiting there would leave a core idle and the other workers
/// spinning); elsewhere, or when there is nothing to run, sleep until notified (with a
/// timeout, as work may become available without a notification).
fn help_or_wait<S>(m: &Mutex<S>, cv: &Condvar, still: impl Fn(&S) -> bool) {
    if let Some(rayon::Yield::Executed) = rayon::yield_now() {
        return;
    }
    let guard = m.lock().expect("no panics while held");
    if still(&guard) {
        let _ = cv
            .wait_timeout(guard, std::time::Duration::from_millis(2))
            .expect("no panics while held");
    }
}

/// A bound on the work handed to the pool and not yet done, so the walk never runs
/// far ahead of the writers (memory and open descriptors stay bounded).
pub struct Window {
    max: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

impl Window {
    pub fn new(max: usize) -> Self {
        Window {
            max: max.max(1),
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    pub fn acquire(&self) {
        loop {
            {
                let mut used = self.used.lock().expect("no panics while held");
                if *used < self.max {
                    *used += 1;
                    return;
                }
            }
            help_or_wait(&self.used, &self.freed, |&used| used >= self.max);
        }
    }

    pub fn release(&self) {
        *self.used.lock().expect("no panics while held") -= 1;
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_whether_or_not_they_ran_ahead() {
        let p = Prefetch::default();
        rayon::scope(|s| {
            let mut all = Vec::new();
            for i in 0..(MAX_AHEAD * 2) {
                all.push(p.queue(s, move || i * 2));
            }
            for (i, a) in all.iter().enumerate() {
                assert_eq!(a.take(&p), i * 2);
            }
        });
        assert_eq!(p.outstanding.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn window_blocks_at_its_size() {
        let w = Arc::new(Window::new(2));
        w.acquire();
        w.acquire();
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            w2.acquire();
            w2.release();
        });
        // The thread can only finish once a slot is freed.
        w.release();
        t.join().unwrap();
        w.release();
        assert_eq!(*w.used.lock().unwrap(), 0);
    }
}
