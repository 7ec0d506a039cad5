//! Admission to the local engine: at most `max_concurrency` sequences in
//! flight, at most `max_queue` waiting, first come first served.
//!
//! mistralrs accepts every request it is sent and slows them all down, so
//! the bound is enforced here. A full queue is answered at once (`Busy`),
//! which lets the router fall back to the next model instead of waiting.
//! The tokio semaphore is fair, so waiters are admitted in arrival order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Admission {
    slots: Arc<Semaphore>,
    max_concurrency: usize,
    waiting: AtomicUsize,
    max_queue: usize,
}

/// Holding it means one sequence may run; dropping it frees the slot.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

impl Admission {
    pub fn new(max_concurrency: usize, max_queue: usize) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(max_concurrency)),
            max_concurrency,
            waiting: AtomicUsize::new(0),
            max_queue,
        }
    }

    pub async fn admit(&self) -> Result<Slot, Busy> {
        if self.waiting.load(Ordering::Acquire) == 0 {
            if let Ok(p) = self.slots.clone().try_acquire_owned() {
                return Ok(Slot(p));
            }
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        // Counted as waiting until admitted or abandoned (client gone).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _w = Waiting(&self.waiting);
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map(Slot)
            .map_err(|_| Busy)
    }

    pub fn in_flight(&self) -> usize {
        self.max_concurrency - self.slots.available_permits()
    }

    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests spawn contenders directly
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn bounds_concurrency_and_queue() {
        let a = Arc::new(Admission::new(2, 1));
        let s1 = a.admit().await.unwrap();
        let _s2 = a.admit().await.unwrap();
        assert_eq!(a.in_flight(), 2);
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.admit().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(a.queued(), 1);
        // The queue (1) is full: the next one is refused at once.
        assert_eq!(a.admit().await.err(), Some(Busy));
        drop(s1);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(a.queued(), 0);
    }

    #[tokio::test]
    async fn admits_in_arrival_order() {
        let a = Arc::new(Admission::new(1, 8));
        let first = a.admit().await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (a, order) = (a.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = a.admit().await.unwrap();
                order.lock().unwrap().push(i);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn an_abandoned_waiter_leaves_the_queue() {
        let a = Admission::new(1, 1);
        let _s = a.admit().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(10), a.admit()).await;
        assert_eq!(a.queued(), 0);
    }
}
