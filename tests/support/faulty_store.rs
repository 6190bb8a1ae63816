//! A token store that fails on demand, over another: to show what a renewal does when
//! the write of its result is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gateway_auth_host::{StoreError, TokenStore};

/// How a [`FaultyStore`] fails once its fault begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next this many compare-and-swaps fail with an error; then it works again.
    Swaps(u64),
    /// Every read and compare-and-swap fails until [`FaultyStore::recover`].
    Down,
}

#[derive(Debug, Default)]
struct Plan {
    /// Compare-and-swaps still let through before the fault begins.
    pass: u64,
    /// The fault, armed or in force.
    fault: Option<Fault>,
}

impl Plan {
    /// Whether the fault is in force now (not just armed).
    fn in_force(&self) -> bool {
        self.pass == 0 && self.fault.is_some()
    }
}

/// Forwards to another store, except while a [`Fault`] is in force.
pub struct FaultyStore {
    inner: Arc<dyn TokenStore>,
    plan: Mutex<Plan>,
    refused: AtomicU64,
}

impl FaultyStore {
    /// Forwards everything to `inner` until told to fail.
    pub fn new(inner: Arc<dyn TokenStore>) -> Self {
        Self {
            inner,
            plan: Mutex::new(Plan::default()),
            refused: AtomicU64::new(0),
        }
    }

    /// Lets the next `pass` compare-and-swaps through, then fails as `fault` says.
    pub fn fail_after(&self, pass: u64, fault: Fault) {
        *self.plan.lock().unwrap() = Plan {
            pass,
            fault: Some(fault).filter(|f| *f != Fault::Swaps(0)),
        };
    }

    /// Works again from now on (and forgets an armed fault).
    pub fn recover(&self) {
        *self.plan.lock().unwrap() = Plan::default();
    }

    /// How many calls (reads and compare-and-swaps) failed so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    fn refuse(&self, what: &str) -> StoreError {
        self.refused.fetch_add(1, Ordering::SeqCst);
        StoreError(format!("{what} refused on purpose (test fault)"))
    }
}

impl TokenStore for FaultyStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let plan = self.plan.lock().unwrap();
        if plan.in_force() && plan.fault == Some(Fault::Down) {
            return Err(self.refuse("read"));
        }
        drop(plan);
        self.inner.get(key)
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let mut plan = self.plan.lock().unwrap();
        if plan.pass > 0 {
            plan.pass -= 1;
        } else {
            match plan.fault {
                None => {}
                Some(Fault::Down) => return Err(self.refuse("compare-and-swap")),
                Some(Fault::Swaps(n)) => {
                    plan.fault = Some(Fault::Swaps(n - 1)).filter(|_| n > 1);
                    return Err(self.refuse("compare-and-swap"));
                }
            }
        }
        drop(plan);
        self.inner.compare_and_swap(key, expected, value)
    }
}
