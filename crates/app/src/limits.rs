//! How much one server takes on, once for every server. So far one rule: a ceiling
//! on the long connections held at once (WebSockets on `/ws` and `/echo`, event
//! streams on `/events` and `/stream`, together), so that a flood of connections is
//! refused with a clear answer instead of taking the process down when it runs out of
//! file descriptors or memory. The glue asks [`ConnectionCeiling::admit`] before it
//! answers `101` or `200`, and holds the [`ConnectionSlot`] for as long as the
//! connection lives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::refusals::{self, Refusal};

// ANCHOR: ceiling
/// The most long connections a server holds at once, and how many it holds now.
/// Clones share the count.
#[derive(Debug, Clone)]
pub struct ConnectionCeiling {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One admitted connection: its place is given back when this is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<AtomicUsize>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionCeiling {
    /// At most `max` connections at once.
    pub fn new(max: usize) -> ConnectionCeiling {
        ConnectionCeiling {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A place for one more connection, or the refusal (503 with `Retry-After`) when
    /// every place is taken. Counting and checking are one atomic step, so two
    /// connections arriving together cannot both take the last place.
    ///
    /// # Errors
    ///
    /// [`refusals::too_many_connections`] at the ceiling.
    pub fn admit(&self) -> Result<ConnectionSlot, Refusal> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .map(|_| ConnectionSlot {
                open: Arc::clone(&self.open),
            })
            .map_err(|_| {
                tracing::warn!(
                    max = self.max,
                    "refused a connection: the ceiling is reached"
                );
                refusals::too_many_connections(self.max)
            })
    }

    /// How many connections hold a place now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}
// ANCHOR_END: ceiling

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_place_goes_once_and_comes_back_when_dropped() {
        let ceiling = ConnectionCeiling::new(2);
        let first = ceiling.admit().expect("a place");
        let _second = ceiling.clone().admit().expect("a place");
        assert_eq!(ceiling.open(), 2);
        let refused = ceiling.admit().expect_err("no place left");
        assert_eq!(refused.status, 503);
        assert_eq!(refused.headers, [("Retry-After", "5")]);
        assert!(refused.body.contains('2'), "{}", refused.body);
        // A refusal takes no place.
        assert_eq!(ceiling.open(), 2);
        drop(first);
        assert_eq!(ceiling.open(), 1);
        let _third = ceiling.admit().expect("the place given back");
    }

    #[test]
    fn connections_racing_for_the_last_places_get_exactly_those() {
        let ceiling = ConnectionCeiling::new(50);
        let slots = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..20)
                            .filter_map(|_| ceiling.admit().ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|thread| thread.join().expect("no panic"))
                .collect::<Vec<_>>()
        });
        assert_eq!(slots.len(), 50);
        assert_eq!(ceiling.open(), 50);
        drop(slots);
        assert_eq!(ceiling.open(), 0);
    }
}
