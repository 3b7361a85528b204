//! Counting what each receiver got, to find lost messages.
//!
//! The hub numbers messages and every subscription delivers them in order with no
//! duplicate, catching up from the history ring when it lags. A receiver therefore
//! keeps no set of what it saw: it counts the bench messages whose index is above the
//! last one it got, and counts anything else (a repeat or a step back) separately.
//! A message is lost for a receiver when it never arrives: sent minus received.

use serde::{Deserialize, Serialize};

// ANCHOR: tally
/// What one receiver got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Bench messages received in order (each index above the previous one).
    pub received: u64,
    /// Bench messages whose index was not above the previous one.
    pub out_of_order: u64,
    /// The highest index received.
    pub last_index: Option<u64>,
}

impl Tally {
    /// Counts the arrival of bench message `index`; `true` if it was in order.
    pub fn record(&mut self, index: u64) -> bool {
        match self.last_index {
            Some(last) if index <= last => {
                self.out_of_order += 1;
                false
            }
            _ => {
                self.received += 1;
                self.last_index = Some(index);
                true
            }
        }
    }
}

/// Messages lost over all receivers: for each, `sent` minus what it received in
/// order (never negative).
pub fn lost(sent: u64, tallies: &[Tally]) -> u64 {
    tallies
        .iter()
        .map(|tally| sent.saturating_sub(tally.received))
        .sum()
}
// ANCHOR_END: tally

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_arrivals_count_and_gaps_are_lost() {
        let mut complete = Tally::default();
        for index in 0..10 {
            assert!(complete.record(index));
        }
        let mut gappy = Tally::default();
        for index in [0, 1, 5, 9] {
            gappy.record(index);
        }
        assert_eq!(complete.received, 10);
        assert_eq!(lost(10, &[complete, gappy]), 6);
    }

    #[test]
    fn repeats_and_steps_back_do_not_count_as_received() {
        let mut tally = Tally::default();
        assert!(tally.record(3));
        assert!(!tally.record(3));
        assert!(!tally.record(1));
        assert!(tally.record(4));
        assert_eq!(
            tally,
            Tally {
                received: 2,
                out_of_order: 2,
                last_index: Some(4)
            }
        );
        assert_eq!(lost(5, &[tally]), 3);
    }

    #[test]
    fn a_receiver_with_more_than_sent_loses_nothing() {
        let tally = Tally {
            received: 12,
            ..Tally::default()
        };
        assert_eq!(lost(10, &[tally]), 0);
        assert_eq!(lost(10, &[]), 0);
    }
}
