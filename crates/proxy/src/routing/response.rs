//! The choice among final responses (RFC 3261 §16.7 step 6), pure.

/// Whether a new final non-2xx `status` replaces the best one so far (§16.7 step 6); among
/// equals the first received stays.
pub(super) fn replaces_best(status: u16, current: Option<u16>) -> bool {
    current.is_none_or(|current| response_rank(status) < response_rank(current))
}

/// Order of preference among final non-2xx responses (§16.7 step 6): 6xx first, then the
/// lowest class.
pub(super) fn response_rank(status: u16) -> u16 {
    if status >= 600 { 0 } else { status / 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_6xx_beats_everything_and_lower_classes_beat_higher() {
        assert!(response_rank(603) < response_rank(302));
        assert!(response_rank(302) < response_rank(486));
        assert!(response_rank(486) < response_rank(503));
        assert_eq!(response_rank(404), response_rank(486));
    }

    proptest::proptest! {
        /// Whatever order the branches answer in, a 6xx wins if there is one, else a response
        /// of the lowest class, and among equals the first that arrived.
        #[test]
        fn the_chosen_response_follows_section_16_7(
            statuses in proptest::collection::vec(300u16..700, 1..8)
        ) {
            let mut best: Option<u16> = None;
            for &status in &statuses {
                if replaces_best(status, best) {
                    best = Some(status);
                }
            }
            let expected = statuses
                .iter()
                .copied()
                .find(|status| *status >= 600)
                .or_else(|| {
                    let lowest = statuses.iter().map(|status| status / 100).min()?;
                    statuses.iter().copied().find(|status| status / 100 == lowest)
                });
            proptest::prop_assert_eq!(best, expected);
        }
    }
}
