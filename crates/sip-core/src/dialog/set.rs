//! The dialogs of one endpoint by identity, and the forking rules of a dialog-forming request
//! (RFC 3261 §12.1.2, §12.2.2, §13.2.2.4).

use std::collections::HashMap;

use sip_message::Message;

use crate::proxy_rules::is_dialog_forming;

use super::outgoing::ResponseOutcome;
use super::{
    Dialog, DialogError, DialogId, DialogState, InDialog, Rejection, Role, TerminationReason,
    cseq_of, is_in_dialog,
};

/// Dialogs keyed by [`DialogId`]. Timers stay per dialog ([`Dialog::poll_timeout`]): a driver
/// with many dialogs keeps them in its own timer heap, as it does for transactions.
#[derive(Debug, Default, Clone)]
pub struct DialogSet {
    dialogs: HashMap<DialogId, Dialog>,
}

/// Which dialog a response went to and what it meant; see [`DialogSet::receive_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The dialog.
    pub id: DialogId,
    /// Whether the response created it (a new early dialog, or a confirmed one straight from a
    /// 2xx).
    pub created: bool,
    /// What it meant.
    pub outcome: ResponseOutcome,
}

impl DialogSet {
    /// An empty set.
    pub fn new() -> DialogSet {
        DialogSet::default()
    }

    /// How many dialogs, terminated ones included until [`DialogSet::remove_terminated`].
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    /// Adds `dialog` (e.g. one [`Dialog::from_uas_request`] made), replacing and returning one
    /// with the same identity.
    pub fn insert(&mut self, dialog: Dialog) -> Option<Dialog> {
        self.dialogs.insert(dialog.id().clone(), dialog)
    }

    /// The dialog `id`.
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    /// The dialog `id`, to change.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.dialogs.get_mut(id)
    }

    /// Takes the dialog `id` out.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.dialogs.remove(id)
    }

    /// Every dialog.
    pub fn iter(&self) -> impl Iterator<Item = &Dialog> {
        self.dialogs.values()
    }

    /// Every dialog, to change (e.g. to run their timers).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Dialog> {
        self.dialogs.values_mut()
    }

    /// Drops the terminated dialogs and returns their identities. Their last events are lost:
    /// drain [`Dialog::poll_event`] first.
    pub fn remove_terminated(&mut self) -> Vec<DialogId> {
        let ended: Vec<DialogId> = self
            .dialogs
            .iter()
            .filter(|(_, dialog)| dialog.state() == DialogState::Terminated)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ended {
            self.dialogs.remove(id);
        }
        ended
    }

    /// The dialog of `request`, a request the peer sent with a To tag (see
    /// [`super::is_in_dialog`]).
    ///
    /// # Errors
    /// 481 when no dialog has its identity (§12.2.2).
    pub fn dialog_of_request(&mut self, request: &Message) -> Result<&mut Dialog, Rejection> {
        DialogId::of_received_request(request)
            .and_then(|id| self.dialogs.get_mut(&id))
            .ok_or(Rejection::NO_DIALOG)
    }

    /// Finds the dialog of `request` and lets it check the request ([`Dialog::receive_request`]).
    ///
    /// # Errors
    /// 481 for an unknown dialog, or the dialog's own [`Rejection`].
    pub fn receive_request(
        &mut self,
        request: &Message,
    ) -> Result<(DialogId, InDialog), Rejection> {
        let dialog = self.dialog_of_request(request)?;
        let received = dialog.receive_request(request)?;
        Ok((dialog.id().clone(), received))
    }

    /// Takes a response to `request_sent`, one of our requests. Inside a dialog (the request had
    /// a To tag) it goes to that dialog's [`Dialog::receive_response`]. For our dialog-forming
    /// request it applies the forking rules (§12.1.2, §13.2.2.4): each 1xx with a new To tag
    /// makes an early dialog; the first 2xx confirms its dialog (or makes a confirmed one) and
    /// terminates the other early dialogs of the request; a later 2xx with another tag makes a
    /// confirmed dialog reported as [`ResponseOutcome::AdditionalFork`] (ACK it, then BYE it);
    /// a non-2xx final response terminates every early dialog of the request (§12.3).
    ///
    /// `Ok(None)` when the response concerns no dialog: one to a request outside any dialog
    /// that cannot form one, a provisional response without a To tag, or a final failure
    /// with a tag no early dialog had.
    ///
    /// # Errors
    /// [`DialogError::UnknownDialog`] for a response in an unknown dialog, or what
    /// [`Dialog::receive_response`] / [`Dialog::from_uac_response`] refuse.
    pub fn receive_response(
        &mut self,
        request_sent: &Message,
        response: &Message,
    ) -> Result<Option<Routed>, DialogError> {
        let status = response
            .status()
            .ok_or(DialogError::WrongMessageKind("response"))?;
        if is_in_dialog(request_sent) {
            let id = DialogId::of_received_response(response).ok_or(DialogError::UnknownDialog)?;
            let dialog = self
                .dialogs
                .get_mut(&id)
                .ok_or(DialogError::UnknownDialog)?;
            let outcome = dialog.receive_response(response)?;
            return Ok(Some(Routed {
                id,
                created: false,
                outcome,
            }));
        }
        // Outside a dialog only a dialog-forming request's answers concern dialogs (not, say,
        // the 200 to a CANCEL).
        if !request_sent.method().is_some_and(is_dialog_forming) {
            return Ok(None);
        }
        let Some(id) = DialogId::of_received_response(response) else {
            if status >= 300 {
                self.end_forks(request_sent, None, TerminationReason::Rejected(status))?;
            }
            return Ok(None);
        };
        let success = (200..300).contains(&status);
        let (_, _, cseq) = forming_key(request_sent)?;
        // A fork terminated when another one won gets a new dialog from its late 2xx
        // (§13.2.2.4); every other response goes to the dialog of its tag.
        let existing = self.dialogs.get(&id).filter(|dialog| {
            !(success
                && dialog.state() == DialogState::Terminated
                && !dialog.session.is_answered_invite(cseq))
        });
        let routed = match existing {
            Some(_) => {
                let additional = success && self.has_confirmed_fork(request_sent, &id)?;
                let dialog = self
                    .dialogs
                    .get_mut(&id)
                    .ok_or(DialogError::UnknownDialog)?;
                let was_early = dialog.state() == DialogState::Early;
                let outcome = dialog.receive_response(response)?;
                Routed {
                    id: id.clone(),
                    created: false,
                    outcome: if additional && was_early {
                        ResponseOutcome::AdditionalFork
                    } else {
                        outcome
                    },
                }
            }
            None if status >= 300 => {
                self.end_forks(request_sent, None, TerminationReason::Rejected(status))?;
                return Ok(None);
            }
            None if status < 101 => return Ok(None),
            None => {
                let additional = success && self.has_confirmed_fork(request_sent, &id)?;
                let (dialog, outcome) =
                    Dialog::from_uac_response_with_outcome(request_sent, response)?;
                self.dialogs.insert(id.clone(), dialog);
                Routed {
                    id: id.clone(),
                    created: true,
                    outcome: if additional {
                        ResponseOutcome::AdditionalFork
                    } else {
                        outcome
                    },
                }
            }
        };
        if status >= 300 {
            self.end_forks(request_sent, None, TerminationReason::Rejected(status))?;
        } else if success && routed.outcome == ResponseOutcome::Success {
            self.end_forks(request_sent, Some(&id), TerminationReason::ForkNotChosen)?;
        }
        Ok(Some(routed))
    }

    /// Whether a dialog other than `except` was confirmed by a 2xx to `request`.
    fn has_confirmed_fork(
        &self,
        request: &Message,
        except: &DialogId,
    ) -> Result<bool, DialogError> {
        let (call_id, local_tag, cseq) = forming_key(request)?;
        Ok(self.dialogs.values().any(|dialog| {
            dialog.id() != except
                && is_fork_of(dialog, call_id, local_tag, cseq)
                && dialog.state() == DialogState::Confirmed
        }))
    }

    /// Terminates the early dialogs `request` created, but `except`.
    fn end_forks(
        &mut self,
        request: &Message,
        except: Option<&DialogId>,
        reason: TerminationReason,
    ) -> Result<(), DialogError> {
        let (call_id, local_tag, cseq) = forming_key(request)?;
        for dialog in self.dialogs.values_mut() {
            if Some(dialog.id()) != except
                && is_fork_of(dialog, call_id, local_tag, cseq)
                && dialog.state() == DialogState::Early
            {
                dialog.terminate(reason);
            }
        }
        Ok(())
    }
}

/// Call-ID, From tag and CSeq number of our dialog-forming request.
fn forming_key(request: &Message) -> Result<(&[u8], &[u8], u32), DialogError> {
    let call_id = request
        .call_id()
        .map_err(|_| DialogError::Missing("a Call-ID"))?;
    let local_tag = request
        .from()
        .ok()
        .and_then(|from| from.tag())
        .ok_or(DialogError::Missing("a From tag"))?;
    let (cseq, _) = cseq_of(request)?;
    Ok((call_id, local_tag, cseq))
}

fn is_fork_of(dialog: &Dialog, call_id: &[u8], local_tag: &[u8], cseq: u32) -> bool {
    dialog.role == Role::Uac
        && dialog.creator_cseq == cseq
        && dialog.id().call_id == call_id
        && dialog.id().local_tag == local_tag
}
