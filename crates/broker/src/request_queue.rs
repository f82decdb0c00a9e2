//! The broker-wide bounds on requests in hand: `queued.max.request.bytes` (frame bytes) and
//! `queued.max.requests` (requests). Kafka's network threads read requests into a memory pool
//! and a queue that its handler threads empty; here a connection's own task reads and handles
//! its requests, so the two bounds are on what all connections hold between reading a request
//! and being done with it:
//!
//! ```text
//!  size prefix in ─► reserve(size)  (pool bytes; waits while the pool is short)
//!                      │ body read into the reserved room
//!  whole frame ─────► place()       (one of queued.max.requests; waits at the limit)
//!                      │ decode; Produce: appends
//!  Ticket dropped ◄────┘ handler done, or waiting on others (acks=all replication, a Fetch's
//!                        long poll, a group join): both given back
//! ```
//!
//! A frame that asks for more bytes than the whole pool takes the whole pool: it goes when
//! nothing else holds any, so it cannot wait forever (Kafka lets such a request through an
//! empty pool the same way). Both waits are first come, first served, so a large frame is not
//! passed over for ever by small ones. A [`Ticket`] gives its bytes and place back when it is
//! dropped, whatever ends the request (its connection closing mid-frame included).

use std::sync::Arc;

use sluice_config::BrokerConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The broker's pool of request bytes and places for requests, shared by its connections.
#[derive(Debug)]
pub struct RequestQueue {
    places: Arc<Semaphore>,
    /// `None`: no byte limit.
    bytes: Option<Arc<Semaphore>>,
    /// The pool's size in bytes (what a frame larger than the pool takes).
    pool: u32,
}

/// Bytes reserved for one request frame.
#[derive(Debug)]
pub struct Reserved {
    _permit: Option<OwnedSemaphorePermit>,
}

/// A request's bytes and place, given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    _bytes: Reserved,
    _place: OwnedSemaphorePermit,
}

impl RequestQueue {
    pub fn new(config: &BrokerConfig) -> Arc<RequestQueue> {
        RequestQueue::with_limits(config.queued_max_requests, config.queued_max_request_bytes)
    }

    /// `max_requests` places (at least 1) and a pool of `max_bytes` (`None`: unbounded).
    pub fn with_limits(max_requests: i32, max_bytes: Option<i64>) -> Arc<RequestQueue> {
        let places = (max_requests.max(1) as usize).min(Semaphore::MAX_PERMITS);
        // A frame is at most i32::MAX bytes, so a pool past u32::MAX never makes one wait
        // alone; the permits fit a u32 either way.
        let pool = max_bytes
            .filter(|b| *b > 0)
            .map(|b| b.min(i64::from(u32::MAX)) as u32);
        Arc::new(RequestQueue {
            places: Arc::new(Semaphore::new(places)),
            bytes: pool.map(|p| Arc::new(Semaphore::new(p as usize))),
            pool: pool.unwrap_or(0),
        })
    }

    /// What a frame of `size` bytes takes from the pool: its size, or the whole pool.
    fn share(&self, size: usize) -> u32 {
        (size.min(u32::MAX as usize) as u32).min(self.pool)
    }

    /// The bytes for a frame of `size` bytes, if the pool has them now and nobody waits
    /// before this frame.
    pub fn try_reserve(&self, size: usize) -> Option<Reserved> {
        match &self.bytes {
            None => Some(Reserved { _permit: None }),
            Some(s) => s
                .clone()
                .try_acquire_many_owned(self.share(size))
                .ok()
                .map(|p| Reserved { _permit: Some(p) }),
        }
    }

    /// Waits for the bytes of a frame of `size` bytes; keep the future to keep its turn.
    pub fn reserve(
        self: &Arc<Self>,
        size: usize,
    ) -> impl std::future::Future<Output = Reserved> + Send + 'static {
        let this = self.clone();
        async move {
            match &this.bytes {
                None => Reserved { _permit: None },
                // The semaphore is never closed.
                Some(s) => Reserved {
                    _permit: s.clone().acquire_many_owned(this.share(size)).await.ok(),
                },
            }
        }
    }

    /// A place for a whole frame, if one is free now and nobody waits before it.
    pub fn try_place(&self, bytes: Reserved) -> Result<Ticket, Reserved> {
        match self.places.clone().try_acquire_owned() {
            Ok(place) => Ok(Ticket {
                _bytes: bytes,
                _place: place,
            }),
            Err(_) => Err(bytes),
        }
    }

    /// Waits for a place for a whole frame whose bytes are `bytes`.
    pub fn place(
        self: &Arc<Self>,
        bytes: Reserved,
    ) -> impl std::future::Future<Output = Ticket> + Send + 'static {
        let places = self.places.clone();
        async move {
            let place = places
                .acquire_owned()
                .await
                .expect("the places semaphore is never closed");
            Ticket {
                _bytes: bytes,
                _place: place,
            }
        }
    }

    /// Places not taken now.
    pub fn free_places(&self) -> usize {
        self.places.available_permits()
    }

    /// Pool bytes not reserved now (`None` without a byte limit).
    pub fn free_bytes(&self) -> Option<usize> {
        self.bytes.as_ref().map(|s| s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn pending<F: std::future::Future>(f: F) -> bool {
        tokio::time::timeout(Duration::from_millis(20), f)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn bytes_wait_until_the_pool_has_room_and_come_back_on_drop() {
        let q = RequestQueue::with_limits(10, Some(100));
        let a = q.try_reserve(60).expect("room");
        assert_eq!(q.free_bytes(), Some(40));
        assert!(q.try_reserve(50).is_none());
        let mut b = Box::pin(q.reserve(50));
        assert!(pending(b.as_mut()).await);
        drop(a);
        let b = tokio::time::timeout(Duration::from_secs(1), b)
            .await
            .expect("room after the drop");
        assert_eq!(q.free_bytes(), Some(50));
        drop(b);
        assert_eq!(q.free_bytes(), Some(100));
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_pool_goes_only_when_the_pool_is_free() {
        let q = RequestQueue::with_limits(10, Some(100));
        let small = q.try_reserve(1).expect("room");
        assert!(q.try_reserve(1_000).is_none());
        let mut big = Box::pin(q.reserve(1_000));
        assert!(pending(big.as_mut()).await);
        // Its turn is kept: a small frame asking after it waits behind it.
        let mut later = Box::pin(q.reserve(1));
        assert!(pending(later.as_mut()).await);
        drop(small);
        let big = tokio::time::timeout(Duration::from_secs(1), big)
            .await
            .expect("goes once nothing else holds bytes");
        assert_eq!(q.free_bytes(), Some(0));
        assert!(pending(later.as_mut()).await);
        drop(big);
        tokio::time::timeout(Duration::from_secs(1), later)
            .await
            .expect("then the next");
    }

    #[tokio::test]
    async fn places_bound_requests_and_a_dropped_ticket_frees_both() {
        let q = RequestQueue::with_limits(1, Some(100));
        let one = q
            .try_place(q.try_reserve(10).expect("room"))
            .expect("a place");
        assert_eq!((q.free_places(), q.free_bytes()), (0, Some(90)));
        let bytes = q.try_reserve(10).expect("room");
        let bytes = q.try_place(bytes).expect_err("no place");
        let mut two = Box::pin(q.place(bytes));
        assert!(pending(two.as_mut()).await);
        drop(one);
        let two = tokio::time::timeout(Duration::from_secs(1), two)
            .await
            .expect("a place after the drop");
        assert_eq!((q.free_places(), q.free_bytes()), (0, Some(90)));
        drop(two);
        assert_eq!((q.free_places(), q.free_bytes()), (1, Some(100)));
    }

    #[tokio::test]
    async fn abandoned_waits_leak_nothing() {
        let q = RequestQueue::with_limits(1, Some(100));
        let held = q
            .try_place(q.try_reserve(100).expect("room"))
            .expect("a place");
        // A connection that dies while waiting drops its futures.
        let mut b = Box::pin(q.reserve(10));
        assert!(pending(b.as_mut()).await);
        drop(b);
        let mut p = Box::pin(q.place(Reserved { _permit: None }));
        assert!(pending(p.as_mut()).await);
        drop(p);
        drop(held);
        assert_eq!((q.free_places(), q.free_bytes()), (1, Some(100)));
    }

    #[tokio::test]
    async fn without_a_byte_limit_only_places_count() {
        let q = RequestQueue::with_limits(2, None);
        assert_eq!(q.free_bytes(), None);
        let a = q.try_place(q.try_reserve(usize::MAX).expect("no limit"));
        let b = q.try_place(q.try_reserve(1 << 30).expect("no limit"));
        assert!(a.is_ok() && b.is_ok());
        assert!(q.try_place(q.try_reserve(1).expect("no limit")).is_err());
    }
}
