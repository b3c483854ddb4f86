//! The bounded hand-over between the inflate thread and the tar reader: one
//! sender, one receiver, at most `cap` items queued, `send` waiting while
//! full. It does what `std::sync::mpsc::sync_channel` did here with a mutex
//! and two condition variables: std's channel brings its three flavours
//! (about 11 kB of the static init) for this one use.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

struct Shared<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    cap: usize,
}

struct State<T> {
    items: VecDeque<T>,
    sender: bool,
    receiver: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic aborts the init, so a poisoned lock only means the other
        // side is gone; the state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct Sender<T>(Arc<Shared<T>>);
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// A queue holding at most `cap` items (at least 1).
pub(crate) fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(cap.max(1)),
            sender: true,
            receiver: true,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
        cap: cap.max(1),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `item`, waiting while the queue is full; gives it back when
    /// the receiver is gone.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let shared = &*self.0;
        let mut state = shared.lock();
        while state.receiver && state.items.len() >= shared.cap {
            state = shared
                .not_full
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !state.receiver {
            return Err(item);
        }
        state.items.push_back(item);
        shared.not_empty.notify_one();
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.lock().sender = false;
        self.0.not_empty.notify_one();
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting for one; `None` once the queue is empty and
    /// the sender is gone.
    pub(crate) fn recv(&self) -> Option<T> {
        let shared = &*self.0;
        let mut state = shared.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                shared.not_full.notify_one();
                return Some(item);
            }
            if !state.sender {
                return None;
            }
            state = shared
                .not_empty
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.receiver = false;
        // Queued chunks are freed now, not when the sender notices.
        state.items.clear();
        drop(state);
        self.0.not_full.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn items_arrive_in_order_and_end_when_the_sender_is_dropped() {
        let (tx, rx) = bounded(2);
        let producer = std::thread::spawn(move || {
            for i in 0..1000u32 {
                assert!(tx.send(i).is_ok());
            }
        });
        let got: Vec<u32> = std::iter::from_fn(|| rx.recv()).collect();
        producer.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn send_waits_while_full_and_at_most_cap_items_are_queued() {
        let (tx, rx) = bounded(3);
        let producer = std::thread::spawn(move || {
            for i in 0..10u32 {
                tx.send(i).unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(rx.0.lock().items.len(), 3);
        assert_eq!(rx.recv(), Some(0));
        let rest: Vec<u32> = std::iter::from_fn(|| rx.recv()).collect();
        producer.join().unwrap();
        assert_eq!(rest, (1..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_blocked_sender_gets_its_item_back_when_the_receiver_is_dropped() {
        let (tx, rx) = bounded(1);
        tx.send(1u32).unwrap();
        let producer = std::thread::spawn(move || tx.send(2u32));
        std::thread::sleep(Duration::from_millis(100));
        drop(rx);
        assert_eq!(producer.join().unwrap(), Err(2));
    }
}
