//! A registry's request slots, shared fairly between tenants (at admission, namespaces).
//!
//! Each registry gets a fixed number of requests in flight. Without fairness, one namespace
//! flooding the webhook with images on a slow registry holds every slot, and another
//! namespace's healthy image on the same registry waits behind it past its deadline. So:
//!
//! - a tenant holds at most `share` slots at once (in `serve`, half of them), even when the
//!   others are free: a request already in flight cannot be taken back, so the only way to keep
//!   room for a namespace that arrives later is never to give it all away;
//! - a freed slot goes to the waiting tenant that holds the fewest, ties to the one waiting the
//!   longest; within a tenant, first come, first served.
//!
//! [`FairShare`] is that decision, pure (tested with tables below); [`FairSlots`] puts it
//! behind a lock and hands slots to waiting tasks. Taking a free slot is one uncontended lock
//! and a scan of the tenants active on that registry (a handful).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::scope::Tenant;

/// The decision: who holds how many slots, who waits, and who gets a freed slot.
#[derive(Debug)]
pub struct FairShare<W> {
    share: usize,
    free: usize,
    /// Tenants holding or waiting for a slot; an idle tenant is removed.
    active: Vec<Active<W>>,
    next_ticket: u64,
}

#[derive(Debug)]
struct Active<W> {
    tenant: Option<Tenant>,
    held: usize,
    /// (ticket, waiter), oldest first; tickets grow, so they also order tenants by wait.
    waiting: VecDeque<(u64, W)>,
}

impl<W> FairShare<W> {
    /// `capacity` slots, of which one tenant holds at most `share` (at least 1, at most
    /// `capacity`).
    pub fn new(capacity: usize, share: usize) -> Self {
        let capacity = capacity.max(1);
        FairShare {
            share: share.clamp(1, capacity),
            free: capacity,
            active: Vec::new(),
            next_ticket: 0,
        }
    }

    fn position(&self, tenant: Option<&Tenant>) -> Option<usize> {
        self.active.iter().position(|a| a.tenant.as_ref() == tenant)
    }

    fn entry(&mut self, tenant: Option<&Tenant>) -> &mut Active<W> {
        let i = match self.position(tenant) {
            Some(i) => i,
            None => {
                self.active.push(Active {
                    tenant: tenant.cloned(),
                    held: 0,
                    waiting: VecDeque::new(),
                });
                self.active.len() - 1
            }
        };
        &mut self.active[i]
    }

    /// Take a slot for `tenant` now, if one is free and the tenant is under its share. Nobody
    /// is ever passed over: a tenant that could take a free slot never waits.
    pub fn try_acquire(&mut self, tenant: Option<&Tenant>) -> bool {
        if self.free == 0 {
            return false;
        }
        let share = self.share;
        let entry = self.entry(tenant);
        if entry.held >= share {
            return false;
        }
        entry.held += 1;
        self.free -= 1;
        true
    }

    /// Queue `waiter` for `tenant` (after [`Self::try_acquire`] said no); the ticket cancels it.
    pub fn enqueue(&mut self, tenant: Option<&Tenant>, waiter: W) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.entry(tenant).waiting.push_back((ticket, waiter));
        ticket
    }

    /// Withdraw a queued waiter (its task stopped waiting). `None` when it is no longer queued:
    /// it was granted a slot already.
    pub fn cancel(&mut self, tenant: Option<&Tenant>, ticket: u64) -> Option<W> {
        let i = self.position(tenant)?;
        let waiting = &mut self.active[i].waiting;
        let at = waiting.iter().position(|(t, _)| *t == ticket)?;
        let (_, waiter) = waiting.remove(at)?;
        self.forget_if_idle(i);
        Some(waiter)
    }

    /// `tenant` gives a slot back. The freed slot goes at once to the waiting tenant, under its
    /// share, that holds the fewest (ties: the one whose first waiter waited the longest),
    /// returned with its first waiter; the slot counts as that tenant's already.
    pub fn release(&mut self, tenant: Option<&Tenant>) -> Option<(Option<Tenant>, W)> {
        let i = self.position(tenant)?;
        if self.active[i].held == 0 {
            // Nothing to give back: no slot is freed, so none is handed on.
            return None;
        }
        self.active[i].held -= 1;
        self.free += 1;
        self.forget_if_idle(i);
        let share = self.share;
        let (i, _) = self
            .active
            .iter()
            .enumerate()
            .filter(|(_, a)| a.held < share)
            .filter_map(|(i, a)| a.waiting.front().map(|(ticket, _)| (i, (a.held, *ticket))))
            .min_by_key(|(_, order)| *order)?;
        let entry = &mut self.active[i];
        let (_, waiter) = entry.waiting.pop_front()?;
        entry.held += 1;
        self.free -= 1;
        Some((entry.tenant.clone(), waiter))
    }

    fn forget_if_idle(&mut self, i: usize) {
        if self.active[i].held == 0 && self.active[i].waiting.is_empty() {
            self.active.swap_remove(i);
        }
    }
}

/// One registry's slots, handed to tasks: [`FairShare`] behind a lock.
#[derive(Debug)]
pub struct FairSlots {
    state: Mutex<FairShare<oneshot::Sender<Slot>>>,
}

impl FairSlots {
    /// `capacity` requests in flight, at most `share` of them one tenant's.
    pub fn new(capacity: usize, share: usize) -> Arc<Self> {
        Arc::new(FairSlots {
            state: Mutex::new(FairShare::new(capacity, share)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, FairShare<oneshot::Sender<Slot>>> {
        // The state stays consistent across a panic elsewhere: every change is a few lines
        // that do not panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for a slot for `tenant`. Dropping the future withdraws from the queue (a slot
    /// granted meanwhile is given back).
    pub async fn acquire(self: &Arc<Self>, tenant: Option<Tenant>) -> Slot {
        loop {
            let (ticket, rx) = {
                let mut state = self.lock();
                if state.try_acquire(tenant.as_ref()) {
                    return Slot {
                        slots: self.clone(),
                        tenant: tenant.clone(),
                        armed: true,
                    };
                }
                let (tx, rx) = oneshot::channel();
                (state.enqueue(tenant.as_ref(), tx), rx)
            };
            let mut queued = Queued {
                slots: self,
                tenant: tenant.as_ref(),
                ticket,
                armed: true,
            };
            let granted = rx.await;
            queued.armed = false;
            // A sender dropped without a slot cannot happen (only `cancel`, ours, removes one):
            // queue again rather than trust that.
            if let Ok(slot) = granted {
                return slot;
            }
        }
    }

    /// Give a slot back, handing it to the next waiter; a waiter gone meanwhile hands it on.
    fn release(self: &Arc<Self>, tenant: Option<Tenant>) {
        let mut freed = tenant;
        loop {
            let next = self.lock().release(freed.as_ref());
            let Some((tenant, tx)) = next else { return };
            let slot = Slot {
                slots: self.clone(),
                tenant,
                armed: true,
            };
            match tx.send(slot) {
                Ok(()) => return,
                // Sent outside the lock; a receiver dropped meanwhile gives the slot back here,
                // in this loop, not by a recursive drop.
                Err(mut slot) => {
                    slot.armed = false;
                    freed = slot.tenant.take();
                }
            }
        }
    }
}

/// A slot held; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<FairSlots>,
    tenant: Option<Tenant>,
    armed: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            self.slots.release(self.tenant.take());
        }
    }
}

/// A waiter in the queue; withdrawn if its future is dropped before a slot came.
struct Queued<'a> {
    slots: &'a Arc<FairSlots>,
    tenant: Option<&'a Tenant>,
    ticket: u64,
    armed: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Not queued any more means a slot was sent: it is dropped with the receiver, after
            // this, and given back then.
            let withdrawn = self.slots.lock().cancel(self.tenant, self.ticket);
            drop(withdrawn);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rstest::rstest;

    use super::*;

    /// Runs a script of tokens: `A` asks for a slot for tenant A, `-A` gives one of A's back,
    /// `xA` withdraws A's oldest waiter. Each token answers: an ask, its tenant if granted now
    /// or `.` if queued; a give-back, the tenant the freed slot went to, or `.`; a withdrawal,
    /// `.`.
    fn run(capacity: usize, share: usize, script: &str) -> String {
        let mut fair = FairShare::new(capacity, share);
        let tenants: Vec<Tenant> = ["A", "B", "C"].iter().map(|t| Tenant::new(t)).collect();
        let tenant = |name: &str| tenants.iter().find(|t| t.as_str() == name).unwrap();
        let mut queued: Vec<(String, u64)> = Vec::new();
        let mut out = Vec::new();
        for token in script.split_whitespace() {
            let answer = if let Some(t) = token.strip_prefix('-') {
                match fair.release(Some(tenant(t))) {
                    Some((granted, ())) => granted.unwrap().to_string(),
                    None => ".".into(),
                }
            } else if let Some(t) = token.strip_prefix('x') {
                let at = queued.iter().position(|(q, _)| q == t).unwrap();
                let (_, ticket) = queued.remove(at);
                assert!(fair.cancel(Some(tenant(t)), ticket).is_some());
                ".".into()
            } else if fair.try_acquire(Some(tenant(token))) {
                token.to_owned()
            } else {
                queued.push((token.to_owned(), fair.enqueue(Some(tenant(token)), ())));
                ".".into()
            };
            out.push(answer);
        }
        out.join(" ")
    }

    #[rstest]
    #[case::free_slots_are_taken_at_once(4, 4, "A B A", "A B A")]
    #[case::a_tenant_at_its_share_waits_though_slots_are_free(4, 2, "A A A B", "A A . B")]
    #[case::a_flood_leaves_the_other_half_to_the_rest(8, 4, "A A A A A A B", "A A A A . . B")]
    #[case::a_freed_slot_goes_to_the_tenant_holding_the_fewest(3, 3, "A A A A B -A", "A A A . . B")]
    #[case::ties_go_to_the_tenant_waiting_the_longest(2, 2, "A A C B -A", "A A . . C")]
    #[case::a_tenant_at_its_share_is_not_given_a_freed_slot(2, 1, "A B A -B", "A B . .")]
    #[case::first_come_first_served_at_equal_holdings(1, 1, "A A B A -A -A", "A . . . A B")]
    #[case::a_withdrawn_waiter_is_never_given_a_slot(1, 1, "A B C xB -A", "A . . . C")]
    #[case::a_slot_given_back_with_nobody_waiting_is_free(1, 1, "A -A B", "A . B")]
    fn slots_are_shared_fairly(
        #[case] capacity: usize,
        #[case] share: usize,
        #[case] script: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(run(capacity, share, script), expected, "{script}");
    }

    #[test]
    fn idle_tenants_are_forgotten() {
        let mut fair: FairShare<()> = FairShare::new(2, 2);
        let a = Tenant::new("a");
        assert!(fair.try_acquire(Some(&a)));
        assert!(fair.try_acquire(None));
        assert_eq!(fair.active.len(), 2);
        assert!(fair.release(Some(&a)).is_none());
        assert!(fair.release(None).is_none());
        assert!(fair.active.is_empty());
        // A give-back nobody owes is not a free slot.
        assert!(fair.release(Some(&a)).is_none());
        assert_eq!(fair.free, 2);
    }

    #[tokio::test]
    async fn a_waiter_gets_the_slot_given_back_and_a_dropped_one_gives_it_on() {
        let slots = FairSlots::new(1, 1);
        let (a, b) = (Tenant::new("a"), Tenant::new("b"));
        let held = slots.acquire(Some(a.clone())).await;
        // A waiter that gives up is withdrawn.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(10), slots.acquire(Some(b.clone()))).await;
        assert!(gave_up.is_err());
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(Some(b)).await }
        });
        tokio::task::yield_now().await;
        while slots.lock().active.iter().all(|t| t.waiting.is_empty()) {
            tokio::task::yield_now().await;
        }
        drop(held);
        let slot = waiting.await.unwrap();
        assert_eq!(slot.tenant.as_ref().map(Tenant::as_str), Some("b"));
        drop(slot);
        // Every slot is back: a new tenant takes it at once.
        let again = slots.acquire(Some(a)).await;
        drop(again);
        assert_eq!(slots.lock().free, 1);
        assert!(slots.lock().active.is_empty());
    }

    #[tokio::test]
    async fn a_slot_sent_to_a_waiter_that_gave_up_is_given_back() {
        let slots = FairSlots::new(1, 1);
        let held = slots.acquire(Some(Tenant::new("a"))).await;
        let mut waiting = Box::pin(slots.acquire(Some(Tenant::new("b"))));
        assert!(futures_util::poll!(&mut waiting).is_pending());
        // The slot is sent to the waiter, which is dropped before it looks.
        drop(held);
        drop(waiting);
        assert_eq!(slots.lock().free, 1);
        assert!(slots.lock().active.is_empty());
    }
}
