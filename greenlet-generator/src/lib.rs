//! # generator
//!
//! Rust generator library
//!

#![deny(warnings, missing_docs)]
#![allow(deprecated)]

#[macro_use]
extern crate log;

mod asan;
mod detail;
mod gen_impl;
mod overflow_hook;
mod reg_context;
mod rt;
mod scope;
mod stack;
mod yield_;

pub use crate::gen_impl::{Generator, Gn, LocalGenerator, RawGenerator, DEFAULT_STACK_SIZE};
pub use crate::overflow_hook::{clear_overflow_hook, set_overflow_hook, OverflowHook};
pub use crate::rt::{get_local_data, is_generator, Error};
pub use crate::scope::Scope;
pub use crate::stack::{ReleaseFn, StackMemory};
pub use crate::yield_::{
    co_get_yield, co_set_para, co_yield_with, done, get_yield, yield_, yield_from, yield_with,
};
