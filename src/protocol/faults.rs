//! Deliberately broken variants of the protocol, for the negative controls of the model checks.
//! Public only with the `testing` feature; production code never sets them, and without the
//! feature they are always off.

/// Deliberately broken protocol variants. The model checks run each of them to show that the
/// checkers catch the bug; production code never sets them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Grant without looking at other slots: breaks mutual exclusion.
    pub ignore_conflicts: bool,
    /// Release without waking waiters: waiters sleep forever (deadlock).
    pub skip_release_wakeups: bool,
    /// Retreat from a first ACTIVE attempt to WAITING without waking older waiters that may
    /// have blocked on that ACTIVE slot: two requests can wait on each other (deadlock).
    pub skip_retreat_wakeups: bool,
    /// Ignore tickets: newcomers overtake older waiters (the 2005 algorithm's behaviour);
    /// breaks the bypass bound.
    pub ignore_tickets: bool,
    /// Do not consume pending wake-ups at shutdown: leftover messages.
    pub skip_drain: bool,
    /// Release and give-up wake only the oldest conflicting waiter, even when younger ones
    /// wait for other ranges that nothing else blocks: they sleep forever (deadlock).
    pub wake_oldest_only: bool,
    /// Handoff: a release's grant pass ignores holders, granting a waiter that conflicts with
    /// one: breaks mutual exclusion.
    pub grant_conflicting: bool,
    /// Handoff: a grant is written into the waiter's slot but its message is never sent: the
    /// waiter sleeps forever (deadlock).
    pub lose_grant_message: bool,
    /// Handoff: a timed-out waiter withdraws without looking whether it was granted in the
    /// meantime, leaving the grant message unconsumed (caught as a stale message drained at
    /// shutdown, or as a later request taking it for its own grant).
    pub timeout_ignores_grant: bool,
}
