//! Validation: every mistake the macros catch, each as a spanned error on the
//! offending token with a `help:` line saying what to write instead.
//!
//! The checks only report; [`crate::expand`] decides how much of the item can
//! still be expanded so that one mistake does not cascade.

use syn::visit::Visit;
use syn::{
    Attribute, FnArg, ImplItem, ImplItemFn, ItemFn, ItemImpl, Lifetime, ReturnType, Signature,
    Type, TypeImplTrait, TypeReference,
};

/// The checks for `#[greenlet] fn`.
pub(crate) fn greenlet_fn(item: &ItemFn, errors: &mut Vec<syn::Error>) {
    let sig = &item.sig;
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(
            token,
            "`#[greenlet]` functions cannot be `async`\n\
             help: remove `async`: the body runs on its own stack and blocks directly \
             (`sleep`, `join`, `get`, sockets), so there is nothing to `.await`",
        ));
    }
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            token,
            "`#[greenlet]` functions cannot be `const`: calling one spawns a greenlet at run time\n\
             help: remove `const`",
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            token,
            "`#[greenlet]` functions cannot be `unsafe`: the body runs after the call returned, \
             when the caller's safety promises no longer hold\n\
             help: make the function safe and put the unsafe operations in an `unsafe` block inside it",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "`#[greenlet]` functions cannot have an `extern` ABI: they return a `Greenlet` handle\n\
             help: remove the `extern` and call the function from Rust",
        ));
    }
    for param in sig.generics.lifetimes() {
        errors.push(syn::Error::new_spanned(
            &param.lifetime,
            "`#[greenlet]` functions cannot have lifetime parameters: the greenlet can outlive \
             the call, so whatever it receives must be `'static`\n\
             help: take owned values (`String`, `Vec<T>`, `Rc<T>`) instead of borrows",
        ));
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                // `&self`, `&'a mut self`, `self: &Self`; `&'static self` is fine.
                let borrow = match (&receiver.reference, &*receiver.ty) {
                    (Some((_, lifetime)), _) => Some(lifetime.as_ref()),
                    (None, Type::Reference(r)) => Some(r.lifetime.as_ref()),
                    (None, _) => None,
                };
                if borrow.is_some_and(|lifetime| lifetime.is_none_or(|l| l.ident != "static")) {
                    let form = if receiver.mutability.is_some() {
                        "&mut self"
                    } else {
                        "&self"
                    };
                    errors.push(syn::Error::new_spanned(
                        receiver,
                        format!(
                            "`#[greenlet]` methods cannot take `{form}`: the greenlet can outlive \
                             the borrow of `self`\n\
                             help: take `self` by value (or `self: Rc<Self>` to share it), or \
                             implement `Run` for the struct: its handle gives access to the fields"
                        ),
                    ));
                }
            }
            FnArg::Typed(arg) => {
                let mut check = ArgumentType {
                    declared: sig
                        .generics
                        .lifetimes()
                        .map(|p| &p.lifetime.ident)
                        .collect(),
                    errors,
                };
                check.visit_type(&arg.ty);
            }
        }
    }
}

/// Walks an argument's type for borrows and `impl Trait`.
///
/// Lifetimes inside `Fn(&str)` sugar, `fn(&str)` pointers and `for<'a>`
/// bounds are higher-ranked, not borrows from the caller: skipped. So are the
/// function's own lifetime parameters, already reported where declared.
struct ArgumentType<'e> {
    declared: Vec<&'e syn::Ident>,
    errors: &'e mut Vec<syn::Error>,
}

impl ArgumentType<'_> {
    /// `'static`, or a lifetime parameter reported elsewhere.
    fn is_fine(&self, lifetime: &Lifetime) -> bool {
        lifetime.ident == "static" || self.declared.contains(&&lifetime.ident)
    }
}

impl<'ast> Visit<'ast> for ArgumentType<'_> {
    fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
        match &reference.lifetime {
            Some(lifetime) if self.is_fine(lifetime) => {}
            _ => self.errors.push(syn::Error::new_spanned(
                reference,
                "`#[greenlet]` arguments must be owned or `'static`: this reference borrows \
                 from the caller, and the greenlet can outlive the call\n\
                 help: pass an owned value (`String` for `&str`, `Vec<T>` for `&[T]`, \
                 `Rc<T>` to share) or a `&'static` reference",
            )),
        }
        self.visit_type(&reference.elem);
    }

    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if !self.is_fine(lifetime) {
            self.errors.push(syn::Error::new_spanned(
                lifetime,
                "`#[greenlet]` arguments must be `'static`: this lifetime lets the argument \
                 borrow from the caller, and the greenlet can outlive the call\n\
                 help: use an owned type, or `'static`",
            ));
        }
    }

    fn visit_type_impl_trait(&mut self, impl_trait: &'ast TypeImplTrait) {
        self.errors.push(syn::Error::new_spanned(
            impl_trait,
            "`#[greenlet]` functions cannot take `impl Trait` arguments\n\
             help: declare a type parameter instead: `fn f<F: Trait>(x: F)` \
             (`#[greenlet]` adds the `F: 'static` bound the greenlet needs)",
        ));
    }

    fn visit_parenthesized_generic_arguments(
        &mut self,
        _: &'ast syn::ParenthesizedGenericArguments,
    ) {
    }

    fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}

    fn visit_trait_bound(&mut self, bound: &'ast syn::TraitBound) {
        if bound.lifetimes.is_none() {
            syn::visit::visit_trait_bound(self, bound);
        }
    }

    fn visit_macro(&mut self, _: &'ast syn::Macro) {}
}

/// `true` if `ty` mentions `impl Trait` (which a closure's return type
/// annotation cannot name).
pub(crate) fn contains_impl_trait(ty: &Type) -> bool {
    struct Find(bool);
    impl<'ast> Visit<'ast> for Find {
        fn visit_type_impl_trait(&mut self, _: &'ast TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut find = Find(false);
    find.visit_type(ty);
    find.0
}

/// What the checks of a `Run` impl found, for the expansion.
pub(crate) struct RunImpl {
    /// `fn run` is present with the right shape (else a stub replaces it).
    pub(crate) run_ok: bool,
    /// The `Output` to insert when the impl does not name one.
    pub(crate) inferred_output: Option<Type>,
    /// The impl defines `class_name` itself.
    pub(crate) has_class_name: bool,
}

/// The checks for `#[greenlet] impl Run for …`; `Some` when the block is
/// a `Run` impl at all.
pub(crate) fn run_impl(item: &ItemImpl, errors: &mut Vec<syn::Error>) -> Option<RunImpl> {
    let is_run = match &item.trait_ {
        Some((None, path, _)) => path.segments.last().is_some_and(|s| s.ident == "Run"),
        _ => false,
    };
    if !is_run {
        let hint = if item.trait_.is_none() {
            "\nhelp: to spawn a method on each call, put `#[greenlet]` on the method \
             (it takes `self` by value)"
        } else {
            ""
        };
        errors.push(syn::Error::new_spanned(
            &item.self_ty,
            format!(
                "`#[greenlet]` on an impl block expects `impl Run for {ty} {{ fn run(&self) -> T {{ … }} }}`{hint}",
                ty = quote::ToTokens::to_token_stream(&item.self_ty)
            ),
        ));
        return None;
    }
    let has_output = item
        .items
        .iter()
        .any(|i| matches!(i, ImplItem::Type(t) if t.ident == "Output"));
    let has_class_name = item
        .items
        .iter()
        .any(|i| matches!(i, ImplItem::Fn(f) if f.sig.ident == "class_name"));
    let run = item.items.iter().find_map(|i| match i {
        ImplItem::Fn(f) if f.sig.ident == "run" => Some(f),
        _ => None,
    });
    let Some(run) = run else {
        let (_, path, _) = item.trait_.as_ref().expect("checked above: a Run impl");
        errors.push(syn::Error::new_spanned(
            path,
            format!(
                "this `impl Run for {}` has no `fn run(&self)`\n\
                 help: add the greenlet's body, gevent's `_run`: `fn run(&self) -> T {{ … }}`",
                quote::ToTokens::to_token_stream(&item.self_ty)
            ),
        ));
        return Some(RunImpl {
            run_ok: false,
            inferred_output: None,
            has_class_name,
        });
    };
    let run_ok = check_run(run, errors);
    let inferred_output = if has_output {
        None
    } else {
        infer_output(&run.sig, errors)
    };
    Some(RunImpl {
        run_ok,
        inferred_output,
        has_class_name,
    })
}

/// `fn run(&self) -> T`: not async, `&self` only.
fn check_run(run: &ImplItemFn, errors: &mut Vec<syn::Error>) -> bool {
    let before = errors.len();
    let sig = &run.sig;
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(
            token,
            "`run` cannot be `async`\n\
             help: remove `async`: `run` executes on the greenlet's own stack and blocks \
             directly (`sleep`, `join`, `get`)",
        ));
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) if r.mutability.is_some() && r.reference.is_some() => {
            errors.push(syn::Error::new_spanned(
                r,
                "`run` takes `&self`, not `&mut self`: the handle shares the struct with the \
                 running greenlet (it dereferences to it)\n\
                 help: keep state that changes in `Cell`/`RefCell` fields, and never hold a \
                 `RefCell` borrow across a switch",
            ));
        }
        Some(FnArg::Receiver(r)) => {
            errors.push(syn::Error::new_spanned(
                r,
                "`run` takes `&self`: the struct stays readable through the handle while and \
                 after the greenlet runs\n\
                 help: write `fn run(&self)`",
            ));
        }
        _ => {
            errors.push(syn::Error::new_spanned(
                &sig.ident,
                "`run` takes `&self`\nhelp: write `fn run(&self)`",
            ));
        }
    }
    if let Some(extra) = sig.inputs.iter().nth(1) {
        errors.push(syn::Error::new_spanned(
            extra,
            "`run` takes only `&self`\nhelp: put its inputs in the struct's fields",
        ));
    }
    errors.len() == before
}

/// `Output` from `run`'s return type.
fn infer_output(sig: &Signature, errors: &mut Vec<syn::Error>) -> Option<Type> {
    let ty = match &sig.output {
        ReturnType::Default => return Some(syn::parse_quote!(())),
        ReturnType::Type(_, ty) => &**ty,
    };
    let names_output = match ty {
        Type::Path(p) => p.qself.is_some() || p.path.segments.iter().any(|s| s.ident == "Output"),
        _ => false,
    };
    if names_output || contains_impl_trait(ty) {
        errors.push(syn::Error::new_spanned(
            ty,
            "cannot infer `Output` from this return type\n\
             help: add `type Output = …;` to the impl, naming the type `run` returns",
        ));
        return None;
    }
    Some(ty.clone())
}

/// The checks shared by `#[greenlet::main]` and `#[greenlet::test]`.
pub(crate) fn entry_fn(item: &ItemFn, attribute: &str, errors: &mut Vec<syn::Error>) {
    let sig = &item.sig;
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(
            token,
            format!(
                "`{attribute}` does not take an `async fn`\n\
                 help: remove `async`: the function runs on the thread's own stack (the main \
                 greenlet) and blocks directly (`sleep`, `join`, `get`), running the hub meanwhile"
            ),
        ));
    }
    if !sig.inputs.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            format!("`{attribute}` functions take no arguments"),
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("`{attribute}` functions cannot be generic"),
        ));
    }
}

/// The extra check of `#[greenlet::main]`: it is `fn main`.
pub(crate) fn main_fn(item: &ItemFn, errors: &mut Vec<syn::Error>) {
    if item.sig.ident != "main" {
        errors.push(syn::Error::new_spanned(
            &item.sig.ident,
            format!(
                "`#[greenlet::main]` goes on `fn main()`, not on `fn {}`\n\
                 help: to run `{}` as a greenlet on each call, use `#[greenlet]`",
                item.sig.ident, item.sig.ident
            ),
        ));
    }
}

/// The extra check of `#[greenlet::test]`: no second `#[test]`.
pub(crate) fn test_fn(item: &ItemFn, errors: &mut Vec<syn::Error>) {
    for attr in &item.attrs {
        if is_test_attribute(attr) {
            errors.push(syn::Error::new_spanned(
                attr,
                "`#[greenlet::test]` already makes the function a `#[test]`\n\
                 help: remove this attribute (with it the test would run twice)",
            ));
        }
    }
}

fn is_test_attribute(attr: &Attribute) -> bool {
    let path = attr.path();
    path.segments.last().is_some_and(|s| s.ident == "test")
        && (path.segments.len() == 1
            || path
                .segments
                .iter()
                .any(|s| s.ident == "core" || s.ident == "std"))
}
