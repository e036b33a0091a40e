//! Expansion: the code each attribute generates.
//!
//! Every entry point collects its errors first (options, then the item) and
//! emits them as `compile_error!`s **together with** an expansion: the full
//! one when only options were wrong (they are skipped), else a fallback with
//! the signature callers expect and a stub body. One mistake therefore gives
//! one error, not a cascade at every call site.
//!
//! Generated code names the runtime only through `<crate>::__private`
//! (`::greenlet::__private` unless `crate = "…"`), and its own locals are
//! hygienic (`Span::mixed_site`). The user's tokens keep their spans, so type
//! errors in a body point at the user's code.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::{
    FnArg, ImplItem, Item, ItemFn, ItemImpl, LitStr, Pat, PatIdent, PatType, ReturnType, Token,
    Type, parse_quote,
};

use crate::parse::{self, Form, Options, private_ident};
use crate::validate;

/// The errors as `compile_error!`s, followed by `expansion`.
fn emit(errors: Vec<syn::Error>, expansion: TokenStream) -> TokenStream {
    let mut out: TokenStream = errors.iter().map(syn::Error::to_compile_error).collect();
    out.extend(expansion);
    out
}

/// Parses the options for `form`, recording errors.
fn options(attr: TokenStream, form: Form, errors: &mut Vec<syn::Error>) -> Options {
    match parse::args(attr) {
        Ok(args) => Options::from_args(args, form, errors),
        Err(e) => {
            errors.push(e);
            Options::default()
        }
    }
}

/// `T` for `-> T`, `()` without a return type.
fn return_type(output: &ReturnType) -> Type {
    match output {
        ReturnType::Default => parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}

/// `-> T` for a closure, or nothing when `T` mentions `impl Trait` (a
/// closure cannot name it; inference from the body then fills it in).
fn closure_annotation(ty: &Type) -> Option<TokenStream> {
    (!validate::contains_impl_trait(ty)).then(|| quote!(-> #ty))
}

/// The fallback when the item itself is wrong: the same signature, made
/// callable (no `async`/`const`/`unsafe`/ABI), returning `output`, with a stub
/// body; the user's body is not checked until the error is fixed.
fn stub_fn(item: &ItemFn, output: Option<Type>, private: &TokenStream) -> TokenStream {
    let mut sig = item.sig.clone();
    sig.asyncness = None;
    sig.constness = None;
    sig.unsafety = None;
    sig.abi = None;
    if let Some(ty) = output {
        sig.output = parse_quote!(-> #ty);
    }
    let attrs = &item.attrs;
    let vis = &item.vis;
    quote! {
        #(#attrs)*
        #[allow(unused)]
        #vis #sig {
            // Never runs: emitted only together with the compile error.
            #private::std::panic!("this function did not compile (see the error above)")
        }
    }
}

// ================================================================ #[greenlet]

/// `#[greenlet]`: on a `fn` or on an `impl Run for …` block.
pub(crate) fn greenlet(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(e) => return emit(vec![e], item),
    };
    match parsed {
        Item::Fn(f) => {
            let options = options(attr, Form::Fn, &mut errors);
            let before = errors.len();
            validate::greenlet_fn(&f, &mut errors);
            let expansion = if errors.len() > before {
                let handle = greenlet_type(&options.private(), &return_type(&f.sig.output));
                stub_fn(&f, Some(handle), &options.private())
            } else {
                greenlet_fn(&options, f)
            };
            emit(errors, expansion)
        }
        Item::Impl(i) => {
            let options = options(attr, Form::RunImpl, &mut errors);
            let expansion = match validate::run_impl(&i, &mut errors) {
                Some(info) => run_impl(&options, i, info, &mut errors),
                None => i.into_token_stream(),
            };
            emit(errors, expansion)
        }
        other => {
            errors.push(syn::Error::new_spanned(
                item_keyword(&other),
                "`#[greenlet]` goes on a `fn` (each call spawns it as a greenlet) or on an \
                 `impl Run for Type` block (the struct runs as a greenlet)",
            ));
            emit(errors, other.into_token_stream())
        }
    }
}

/// The leading tokens of an item, to point at (`struct Foo`, not its body).
fn item_keyword(item: &Item) -> TokenStream {
    match item {
        Item::Struct(s) => {
            let (keyword, ident) = (&s.struct_token, &s.ident);
            quote!(#keyword #ident)
        }
        Item::Enum(e) => {
            let (keyword, ident) = (&e.enum_token, &e.ident);
            quote!(#keyword #ident)
        }
        Item::Trait(t) => {
            let (keyword, ident) = (&t.trait_token, &t.ident);
            quote!(#keyword #ident)
        }
        other => other.to_token_stream(),
    }
}

/// `<private>::Greenlet<T>`.
fn greenlet_type(private: &TokenStream, ty: &Type) -> Type {
    parse_quote!(#private::Greenlet<#ty>)
}

/// `#[greenlet] fn f(args) -> T { body }` becomes
///
/// ```text
/// fn f<P: Bounds + 'static>(args) -> Greenlet<T> {
///     Builder::new().name("f").spawn(move || -> T { bind args; body })  // panics on SpawnError
/// }
/// ```
///
/// The body stays in a closure rather than an inner `fn` so that methods
/// (`self` by value, `Self`, the impl's generics) work; the arguments are
/// moved into it whole and rebound with the user's patterns, so they live
/// until the body ends and drop in the order of a plain call.
fn greenlet_fn(options: &Options, item: ItemFn) -> TokenStream {
    let private = options.private();
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let ret = return_type(&sig.output);
    let mut outer = sig.clone();
    outer.output = {
        let handle = greenlet_type(&private, &ret);
        parse_quote!(-> #handle)
    };

    // Type parameters reach the greenlet: they must be 'static. The bound
    // goes inline (`T: Clone + 'static`), where the user's bounds are, so no
    // lint sees bounds in two places.
    for param in outer.generics.type_params_mut() {
        if param.colon_token.is_none() {
            param.colon_token = Some(Default::default());
        }
        param.bounds.push(parse_quote!('static));
    }

    let (inputs, bind) = split_arguments(&sig.inputs);
    outer.inputs = inputs;
    let annotation = closure_annotation(&ret);
    let closure = if bind.is_empty() {
        quote!(move || #annotation #block)
    } else {
        quote!(move || #annotation { #bind #block })
    };

    let name = options
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&sig.ident.unraw().to_string(), sig.ident.span()));
    let stack_size = options
        .stack_size
        .as_ref()
        .map(|bytes| quote!(.stack_size(#bytes)));
    let builder = quote!(#private::Builder::new().name(#name) #stack_size);
    // The caller's line is the greenlet's spawn site (overflow and leak
    // messages name it).
    let has_track_caller = attrs.iter().any(|a| a.path().is_ident("track_caller"));
    let track_caller = (!has_track_caller).then(|| quote!(#[track_caller]));
    let (must_use, body) = if options.start_later {
        (
            Some(quote!(#[must_use = "a `start = \"later\"` greenlet does not run until started"])),
            quote!(#builder.build(#closure)),
        )
    } else {
        (
            None,
            unwrap_spawned(
                &private,
                quote!(#builder.spawn(#closure)),
                name.to_token_stream(),
            ),
        )
    };
    quote! {
        #(#attrs)*
        #track_caller
        #must_use
        #vis #outer {
            #body
        }
    }
}

/// The outer function's inputs (plain names, so callers and docs see the
/// user's argument names) and the statements that rebind them inside the
/// body's closure with the user's patterns.
fn split_arguments(
    inputs: &Punctuated<FnArg, Token![,]>,
) -> (Punctuated<FnArg, Token![,]>, TokenStream) {
    let mut outer = Punctuated::new();
    let mut bind = TokenStream::new();
    for (index, input) in inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(receiver) => {
                // `let _ = &self;` makes the closure capture all of `self`,
                // not only the fields the body uses, so `self` lives as long
                // as the body.
                let token = &receiver.self_token;
                bind.extend(quote!(let _ = &#token;));
                outer.push(input.clone());
            }
            FnArg::Typed(arg) => {
                let name = match &*arg.pat {
                    Pat::Ident(p) if p.subpat.is_none() => p.ident.clone(),
                    _ => private_ident(&format!("__greenlet_arg{index}")),
                };
                outer.push(FnArg::Typed(PatType {
                    attrs: arg.attrs.clone(),
                    pat: Box::new(Pat::Ident(PatIdent {
                        attrs: Vec::new(),
                        by_ref: None,
                        mutability: None,
                        ident: name.clone(),
                        subpat: None,
                    })),
                    colon_token: arg.colon_token,
                    ty: arg.ty.clone(),
                }));
                // The argument moves whole into a hidden local (so the
                // closure captures all of it), then the user's pattern binds
                // from that local. Declaring them in order gives the drop
                // order of a plain call, `_` patterns included.
                let local = private_ident(&format!("__greenlet_local{index}"));
                let pattern = &arg.pat;
                bind.extend(quote! {
                    let #local = #name;
                    let #pattern = #local;
                });
            }
        }
    }
    (outer, bind)
}

/// `match call { Ok(g) => g, Err(e) => panic!(…) }`: spawning panics like
/// `greenlet::spawn` when no stack can be mapped, naming the greenlet.
fn unwrap_spawned(private: &TokenStream, call: TokenStream, name: TokenStream) -> TokenStream {
    let handle = private_ident("__greenlet_handle");
    let error = private_ident("__greenlet_error");
    quote! {
        match #call {
            #private::std::result::Result::Ok(#handle) => #handle,
            #private::std::result::Result::Err(#error) => #private::std::panic!(
                "cannot spawn greenlet `{}`: {}", #name, #error
            ),
        }
    }
}

// ================================================================ impl Run

/// `#[greenlet] impl Run for Worker { fn run(&self) -> T { … } }`: the impl
/// with `type Output = T;` and `class_name` filled in, plus inherent
/// `spawn`/`spawn_later`/`into_greenlet` helpers on `Worker`.
fn run_impl(
    options: &Options,
    mut item: ItemImpl,
    info: validate::RunImpl,
    errors: &mut Vec<syn::Error>,
) -> TokenStream {
    let private = options.private();
    if !info.run_ok {
        // Fallback: a stub `run` with the right shape, so the impl is a
        // valid `Run` and callers of the helpers type-check.
        item.items
            .retain(|i| !matches!(i, ImplItem::Fn(f) if f.sig.ident == "run"));
        item.items.push(parse_quote! {
            fn run(&self) -> <Self as #private::Run>::Output {
                // Never runs: emitted only together with the compile error.
                #private::std::panic!("this `run` did not compile (see the error above)")
            }
        });
    }
    let has_output = item
        .items
        .iter()
        .any(|i| matches!(i, ImplItem::Type(t) if t.ident == "Output"));
    if !has_output {
        let output = info.inferred_output.unwrap_or_else(|| parse_quote!(()));
        item.items.insert(0, parse_quote!(type Output = #output;));
    }

    // `Display` shows `<Worker "name" at 0x…: state>`: the struct's own
    // name (without its path or generics) unless `class = "…"` says otherwise.
    let class = match (&options.class, info.has_class_name) {
        (Some(class), true) => {
            errors.push(syn::Error::new_spanned(
                class,
                "`class` and a `fn class_name` in the impl both set the class name\n\
                 help: keep one of them",
            ));
            None
        }
        (Some(class), false) => Some(class.clone()),
        (None, false) => match &*item.self_ty {
            Type::Path(p) => p
                .path
                .segments
                .last()
                .map(|s| LitStr::new(&s.ident.unraw().to_string(), s.ident.span())),
            _ => None,
        },
        (None, true) => None,
    };
    if let Some(class) = class {
        item.items.push(parse_quote! {
            fn class_name() -> &'static str {
                #class
            }
        });
    }

    let helpers = (!options.no_helpers).then(|| run_helpers(options, &item));
    quote! {
        #item
        #helpers
    }
}

/// The inherent helpers of a `Run` struct.
fn run_helpers(options: &Options, item: &ItemImpl) -> TokenStream {
    let private = options.private();
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let handle = quote!(#private::Greenlet<<Self as #private::Run>::Output, Self>);
    let name = options.name.as_ref().map(|name| quote!(.name(#name)));
    let stack_size = options
        .stack_size
        .as_ref()
        .map(|bytes| quote!(.stack_size(#bytes)));
    let builder = quote!(#private::Builder::new() #name #stack_size);
    let ty = self_ty.to_token_stream().to_string().replace(' ', "");
    let class = quote!(<Self as #private::Run>::class_name());
    let spawn = unwrap_spawned(&private, quote!(#builder.spawn_run(self)), class.clone());
    let spawn_later = unwrap_spawned(
        &private,
        quote!(#builder.spawn_run_later(delay, self)),
        class,
    );
    let doc_spawn = format!(
        "Spawns this `{ty}` as a new greenlet (gevent's `{ty}.spawn(…)`); the handle \
         dereferences to it.\n\n# Panics\n\nWhen no greenlet stack can be mapped."
    );
    let doc_spawn_later = format!(
        "Spawns this `{ty}` as a greenlet that starts after `delay` (gevent's \
         `{ty}.spawn_later(…)`, `start_later`).\n\n# Panics\n\nWhen no greenlet stack can be mapped."
    );
    let doc_into = format!(
        "Makes this `{ty}` an unstarted greenlet (gevent's `{ty}(…)` before `start()`); \
         it holds no stack until `start`/`start_later`."
    );
    quote! {
        #[allow(dead_code, unreachable_pub)]
        impl #impl_generics #self_ty #where_clause {
            #[doc = #doc_spawn]
            #[track_caller]
            pub fn spawn(self) -> #handle {
                #spawn
            }

            #[doc = #doc_spawn_later]
            #[track_caller]
            pub fn spawn_later(self, delay: #private::std::time::Duration) -> #handle {
                #spawn_later
            }

            #[doc = #doc_into]
            #[must_use = "a greenlet made with `into_greenlet` does not run until started"]
            #[track_caller]
            pub fn into_greenlet(self) -> #handle {
                #builder.build_run(self)
            }
        }
    }
}

// ================================================================ main, test

/// Parses and checks the function under `#[greenlet::main]`/`#[greenlet::test]`;
/// `Err` is the finished output (errors plus a fallback).
fn entry(
    attr: TokenStream,
    item: TokenStream,
    form: Form,
) -> Result<(Options, ItemFn, Vec<syn::Error>), TokenStream> {
    let mut errors = Vec::new();
    let options = options(attr, form, &mut errors);
    let item = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                format!("`{}` goes on a function: {e}", form.attribute()),
            );
            return Err(emit(vec![e], item));
        }
    };
    let before = errors.len();
    validate::entry_fn(&item, form.attribute(), &mut errors);
    match form {
        Form::Main => validate::main_fn(&item, &mut errors),
        _ => validate::test_fn(&item, &mut errors),
    }
    if errors.len() > before {
        let stub = stub_fn(&item, None, &options.private());
        return Err(emit(errors, stub));
    }
    Ok((options, item, errors))
}

/// `(move || -> T { body })()`: runs the body so that `return` and `?` in it
/// leave the body, not the generated function.
fn call_body(item: &ItemFn) -> TokenStream {
    let annotation = closure_annotation(&return_type(&item.sig.output));
    let block = &item.block;
    let body = private_ident("__greenlet_body");
    quote! {{
        let #body = move || #annotation #block;
        #body()
    }}
}

/// `#[greenlet::main]`: runs the body inside a hub scope (`greenlet::run`)
/// on the native stack (the main greenlet): like gevent, returning from
/// `main` does not wait for other greenlets; those still alive are killed
/// (their destructors run) before `main` returns.
pub(crate) fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    let (options, item, errors) = match entry(attr, item, Form::Main) {
        Ok(parts) => parts,
        Err(output) => return output,
    };
    let private = options.private();
    let stack_size = options
        .stack_size
        .as_ref()
        .map(|bytes| quote!(#private::hub::set_default_stack_size(#bytes);));
    let stack_cache_limit = options
        .stack_cache_limit
        .as_ref()
        .map(|limit| quote!(#private::hub::set_stack_cache_limit(#limit);));
    let run = call_body(&item);
    let ItemFn {
        attrs, vis, sig, ..
    } = &item;
    emit(
        errors,
        quote! {
            #(#attrs)*
            #vis #sig {
                #private::run(move || {
                    #stack_size
                    #stack_cache_limit
                    #run
                })
            }
        },
    )
}

/// `#[greenlet::test]`: a `#[test]` on a fresh hub, with the counter check.
pub(crate) fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let (options, item, errors) = match entry(attr, item, Form::Test) {
        Ok(parts) => parts,
        Err(output) => return output,
    };
    let private = options.private();
    let stack_size = options
        .stack_size
        .as_ref()
        .map(|bytes| quote!(#private::hub::set_default_stack_size(#bytes);));
    // Virtual time for the whole test (tokio's `start_paused`).
    let pause = options
        .start_paused
        .then(|| quote!(#private::hub::pause();));
    let result = private_ident("__greenlet_result");
    let run = call_body(&item);
    let leak_check = (!options.no_leak_check).then(|| leak_check(&private, &item, &result));
    let ItemFn {
        attrs, vis, sig, ..
    } = &item;
    emit(
        errors,
        quote! {
            #[#private::std::prelude::v1::test]
            #(#attrs)*
            #vis #sig {
                // A hub scope of its own: whatever the test leaves behind
                // is killed before the test returns.
                #private::run(move || {
                    #stack_size
                    #pause
                    let #result = #run;
                    #leak_check
                    #result
                })
            }
        },
    )
}

/// How long, at most, the check lets what the test started finish, in
/// milliseconds. `hub::join_timeout` returns as soon as the loop runs dry
/// (nothing referenced left: no live greenlet, referenced timer, fd or
/// callback), so a test that cleaned up pays nothing, and one whose
/// greenlets finish shortly after the body pays only until they do; only a
/// test that leaks referenced work waits the whole bound. Short, so a leaky
/// test fails fast (it used to cost a fixed second).
const SETTLE_MILLIS: u64 = 100;

/// After the body: let what it started finish (up to [`SETTLE_MILLIS`]),
/// then assert the hub counters are back to a fresh hub's. Skipped when the
/// body returned an `Err` (that failure is the one to show).
fn leak_check(private: &TokenStream, item: &ItemFn, result: &syn::Ident) -> TokenStream {
    let failed = match &item.sig.output {
        ReturnType::Default => quote!(false),
        // Autoref specialisation: `Result` picks the first impl, anything
        // else (`ExitCode`, `()`) the second through one more `&`.
        ReturnType::Type(..) => quote! {{
            struct __GreenletProbe<'a, T>(&'a T);
            trait __GreenletIsErr {
                fn __greenlet_is_err(&self) -> bool;
            }
            impl<T, E> __GreenletIsErr for __GreenletProbe<'_, #private::std::result::Result<T, E>> {
                fn __greenlet_is_err(&self) -> bool {
                    self.0.is_err()
                }
            }
            trait __GreenletNotResult {
                fn __greenlet_is_err(&self) -> bool;
            }
            impl<T> __GreenletNotResult for &__GreenletProbe<'_, T> {
                fn __greenlet_is_err(&self) -> bool {
                    false
                }
            }
            (&__GreenletProbe(&#result)).__greenlet_is_err()
        }},
    };
    let ran_dry = private_ident("__greenlet_ran_dry");
    let stats = private_ident("__greenlet_stats");
    let message = "greenlet::test: the hub is not back to baseline after the test: {:?}{}\n\
                   live greenlets:{}\n\
                   help: join or kill the greenlets the test started and drop its timeouts, \
                   or opt out with `#[greenlet::test(leak_check = false)]`";
    let waited = format!(" (still busy {SETTLE_MILLIS} ms after the test body returned)");
    quote! {
        if !#failed {
            let #ran_dry = #private::hub::join_timeout(
                #private::std::time::Duration::from_millis(#SETTLE_MILLIS),
            );
            let #stats = #private::hub::stats();
            #private::std::assert!(
                #stats.is_quiet(),
                #message,
                #stats,
                if #ran_dry { "" } else { #waited },
                #private::hub::live_greenlets()
                    .iter()
                    .map(|line| #private::std::format!("\n  {line}"))
                    .collect::<#private::std::string::String>(),
            );
        }
    }
}
