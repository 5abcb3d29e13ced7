//! Handing latched streams to the in-kernel forwarder and taking them back: which route a
//! leg pair gets once both ends are known, and its removal when a leg moves or goes.

use super::*;

/// After user space relayed a packet of leg `id`: once the leg is latched and its partner's
/// target known (IPv4 both), the kernel takes the stream over. Also drops the partner's route
/// when it no longer points at this leg's target (this leg just latched to a new source).
pub(super) fn offload(
    legs: &mut HashMap<usize, Leg, LegIdHasher>,
    forwarding: Option<&KernelForwarding>,
    id: usize,
) {
    let Some(forwarding) = forwarding else {
        return;
    };
    let Some(leg) = legs.get(&id) else {
        return;
    };
    let partner_id = leg.partner;
    let target = match leg.target() {
        Some(SocketAddr::V4(target)) => Some(target),
        _ => None,
    };
    let sender = match leg.latched {
        Some(SocketAddr::V4(sender)) => Some(sender),
        _ => None,
    };
    let local = leg.local;
    let current = leg.offloaded.map(|(route, _)| route);
    let refused = leg.refused;
    let Some(partner) = legs.get(&partner_id) else {
        return;
    };
    if partner
        .offloaded
        .is_some_and(|(route, _)| Some(route.destination) != target)
    {
        forget(legs, Some(forwarding), partner_id);
    }
    let Some(partner) = legs.get(&partner_id) else {
        return;
    };
    let destination = match partner.target() {
        Some(SocketAddr::V4(destination)) => destination,
        _ => return,
    };
    let (Some(sender), Some(local), Some(source)) = (sender, local, partner.local) else {
        return;
    };
    let route = Route {
        sender,
        source,
        destination,
    };
    if current == Some(route) || refused == Some(route) {
        return;
    }
    forget(legs, Some(forwarding), id);
    let Some(leg) = legs.get_mut(&id) else {
        return;
    };
    // Deleted: its removal is on the way, and no packet after the delete may be relayed.
    if leg.shared.kernel_stopped() {
        return;
    }
    let table = forwarding.table();
    if table.install(local.port(), route) && leg.shared.set_kernel(Arc::clone(table), local.port())
    {
        leg.offloaded = Some((route, 0));
    } else {
        leg.refused = Some(route);
    }
}

pub(super) fn forget(
    legs: &mut HashMap<usize, Leg, LegIdHasher>,
    forwarding: Option<&KernelForwarding>,
    id: usize,
) {
    let (Some(forwarding), Some(leg)) = (forwarding, legs.get_mut(&id)) else {
        return;
    };
    if leg.offloaded.take().is_some()
        && let Some(local) = leg.local
    {
        forwarding.table().remove(local.port());
        leg.shared.fold_kernel();
    }
}
