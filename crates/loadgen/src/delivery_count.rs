//! Counting what each receiver got, to find lost messages.
//!
//! The hub numbers messages and every subscription delivers them in order with no
//! duplicate, catching up from the history ring when it lags. A receiver therefore
//! keeps no set of what it saw: it counts the bench messages whose index is above the
//! last one it got, and counts anything else (a repeat or a step back) separately.
//! A message is lost for a receiver when it never arrives: sent minus received.

use serde::{Deserialize, Serialize};

// ANCHOR: delivery_count
/// What one receiver got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryCount {
    /// Bench messages received in order (each index above the previous one).
    pub received: u64,
    /// Bench messages whose index was not above the previous one.
    pub out_of_order: u64,
    /// The highest index received.
    pub last_index: Option<u64>,
}

impl DeliveryCount {
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
pub fn lost(sent: u64, counts: &[DeliveryCount]) -> u64 {
    counts
        .iter()
        .map(|count| sent.saturating_sub(count.received))
        .sum()
}
// ANCHOR_END: delivery_count

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_arrivals_count_and_gaps_are_lost() {
        let mut complete = DeliveryCount::default();
        for index in 0..10 {
            assert!(complete.record(index));
        }
        let mut gappy = DeliveryCount::default();
        for index in [0, 1, 5, 9] {
            gappy.record(index);
        }
        assert_eq!(complete.received, 10);
        assert_eq!(lost(10, &[complete, gappy]), 6);
    }

    #[test]
    fn repeats_and_steps_back_do_not_count_as_received() {
        let mut count = DeliveryCount::default();
        assert!(count.record(3));
        assert!(!count.record(3));
        assert!(!count.record(1));
        assert!(count.record(4));
        assert_eq!(
            count,
            DeliveryCount {
                received: 2,
                out_of_order: 2,
                last_index: Some(4)
            }
        );
        assert_eq!(lost(5, &[count]), 3);
    }

    #[test]
    fn a_receiver_with_more_than_sent_loses_nothing() {
        let count = DeliveryCount {
            received: 12,
            ..DeliveryCount::default()
        };
        assert_eq!(lost(10, &[count]), 0);
        assert_eq!(lost(10, &[]), 0);
    }
}
