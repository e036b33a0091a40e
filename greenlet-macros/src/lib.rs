//! Attribute macros for the `greenlet` crate.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

/// Placeholder: `#[greenlet]` (filled in by the macro issue).
#[proc_macro_attribute]
pub fn greenlet(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Placeholder: `#[greenlet::main]`.
#[proc_macro_attribute]
pub fn main(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Placeholder: `#[greenlet::test]`.
#[proc_macro_attribute]
pub fn test(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
