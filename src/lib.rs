#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use greenlet_core::*;
pub use greenlet_macros::{greenlet, main, test};

/// Paths used by the code the attribute macros generate. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use greenlet_core::*;
    pub use std;
}
