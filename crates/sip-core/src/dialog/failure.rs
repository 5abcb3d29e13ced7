//! What a failure response to a request inside a dialog does to the dialog (RFC 5057 §5.1,
//! which refines RFC 3261 §12.2.1.2's "481 or 408 terminates the dialog").

use sip_message::Method;

/// The reach of a non-2xx final response to a request sent inside a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureEffect {
    /// Only the transaction failed (486, 488, 491, 500, 503, 603, …): the dialog and its usages
    /// go on.
    TransactionOnly,
    /// The usage the request belongs to is gone at the peer: 481, and 408 or a transaction
    /// timeout (RFC 5057 §5.1: a timeout affects the usage it happened in). A dialog whose only
    /// usage ends, ends with it.
    UsageTerminated,
    /// The dialog itself is broken: the remote target or route set no longer leads anywhere
    /// (404, 410, 416, 482, 483, 484, 485, 502, 604).
    DialogTerminated,
}

/// The RFC 5057 §5.1 class of `status`, a final non-2xx response to a request inside a dialog.
/// 2xx and provisional statuses are [`FailureEffect::TransactionOnly`].
pub fn failure_effect(status: u16) -> FailureEffect {
    match status {
        404 | 410 | 416 | 482..=485 | 502 | 604 => FailureEffect::DialogTerminated,
        408 | 481 => FailureEffect::UsageTerminated,
        _ => FailureEffect::TransactionOnly,
    }
}

/// Methods of a subscription usage (RFC 6665, RFC 3515); every other method sent in a dialog
/// belongs to its invite usage (RFC 5057 §4).
pub(super) fn is_subscription_method(method: &Method) -> bool {
    matches!(method, Method::Subscribe | Method::Notify | Method::Refer)
}

/// Whether `status` to a `method` request ends a dialog created by `creator`. This layer keeps
/// one usage per dialog, the creator's: a usage-ending response ends the dialog when the
/// request belongs to that usage, and leaves it alone when it belongs to a subscription this
/// layer does not track inside an invite dialog.
pub(super) fn ends_dialog(status: u16, method: &Method, creator: &Method) -> bool {
    match failure_effect(status) {
        FailureEffect::DialogTerminated => true,
        FailureEffect::UsageTerminated => {
            is_subscription_method(method) == is_subscription_method(creator)
        }
        FailureEffect::TransactionOnly => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_5057_classes() {
        for status in [404, 410, 416, 482, 483, 484, 485, 502, 604] {
            assert_eq!(
                failure_effect(status),
                FailureEffect::DialogTerminated,
                "{status}"
            );
        }
        for status in [408, 481] {
            assert_eq!(
                failure_effect(status),
                FailureEffect::UsageTerminated,
                "{status}"
            );
        }
        for status in [
            180, 200, 400, 401, 403, 405, 407, 480, 486, 487, 488, 491, 500, 501, 503, 603,
        ] {
            assert_eq!(
                failure_effect(status),
                FailureEffect::TransactionOnly,
                "{status}"
            );
        }
    }

    #[test]
    fn a_usage_error_ends_only_its_own_usage() {
        assert!(ends_dialog(481, &Method::Info, &Method::Invite));
        assert!(ends_dialog(408, &Method::Invite, &Method::Invite));
        assert!(!ends_dialog(481, &Method::Notify, &Method::Invite));
        assert!(ends_dialog(481, &Method::Notify, &Method::Subscribe));
        assert!(ends_dialog(404, &Method::Notify, &Method::Invite));
        assert!(!ends_dialog(486, &Method::Invite, &Method::Invite));
    }
}
