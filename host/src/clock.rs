//! Wall clocks for the plugin: the real one, or a virtual one a test moves by hand.
//!
//! Only the wall clock is virtual: token expiry, cache TTLs and backoff are measured on
//! it. The monotonic clock stays real, so I/O deadlines keep working.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which wall clock a plugin sees.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    Real,
    /// A clock that moves only when told to.
    Virtual(VirtualClock),
}

impl Clock {
    /// The time since the Unix epoch on this clock.
    pub fn now(&self) -> Duration {
        match self {
            Self::Real => system_now(),
            Self::Virtual(clock) => clock.now(),
        }
    }
}

/// The system clock's time since the Unix epoch (zero before it).
fn system_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A shared, manually advanced wall clock. Clones move together.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A clock set to the current real time.
    pub fn new() -> Self {
        Self::at(system_now())
    }

    /// A clock set to `since_epoch`.
    pub fn at(since_epoch: Duration) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(since_epoch.as_nanos() as u64)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    /// The clock's time since the Unix epoch.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}
