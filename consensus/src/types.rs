//! The numbers the engines count with, each its own type so one is never taken for another:
//! a Raft [`Term`] and [`LogIndex`], a PBFT [`View`] and sequence number [`Seq`] (a block
//! height). All are serialized as the bare number, so messages and durable state keep their
//! encoding.

use std::fmt;

use cairn_ledger::Height;
use serde::{Deserialize, Serialize};

macro_rules! counter {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize,
            Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The one after this (saturating: no input can make an engine overflow).
            pub fn next(self) -> $name {
                $name(self.0.saturating_add(1))
            }

            /// `n` after this (saturating).
            pub fn plus(self, n: u64) -> $name {
                $name(self.0.saturating_add(n))
            }

            /// How far this is above `earlier` (0 if it is not).
            pub fn since(self, earlier: $name) -> u64 {
                self.0.saturating_sub(earlier.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl From<$name> for u64 {
            fn from(x: $name) -> u64 {
                x.0
            }
        }
    };
}

counter!(
    /// A Raft term (§5.1): only goes up.
    Term
);
counter!(
    /// A position in the Raft log (§5.3), from 1.
    LogIndex
);
counter!(
    /// A PBFT view (§4): only goes up; its primary is `view mod n`.
    View
);
counter!(
    /// A PBFT sequence number (§4.2): the height of the block it orders.
    Seq
);

impl Seq {
    /// The sequence number of the block at `height`.
    pub fn at(height: Height) -> Seq {
        Seq(height)
    }

    /// The height of the block this orders.
    pub fn height(self) -> Height {
        self.0
    }
}
