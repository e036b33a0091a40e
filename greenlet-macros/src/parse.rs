//! Parsing: the attribute's `key = value` options, and the annotated item.
//!
//! Options are parsed leniently: a bad option is recorded as an error and
//! skipped, so the item is still expanded with the options that were fine and
//! one typo does not turn into errors at every call site.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, Token};

/// One `key = value` pair of an attribute's arguments.
pub(crate) struct Arg {
    /// The option's name (`crate` included: parsed as any identifier).
    pub(crate) key: Ident,
    /// The value: a literal for most options, any expression for sizes.
    pub(crate) value: Expr,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Arg> {
        let key = input.call(Ident::parse_any)?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format!("expected `{key} = …`: options are written `key = value`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let value = input.parse()?;
        Ok(Arg { key, value })
    }
}

/// Splits the attribute's arguments into `key = value` pairs.
pub(crate) fn args(tokens: TokenStream) -> syn::Result<Vec<Arg>> {
    let list = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens)?;
    Ok(list.into_iter().collect())
}

/// Which macro (and which form of `#[greenlet]`) the options are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `#[greenlet] fn`.
    Fn,
    /// `#[greenlet] impl Run for …`.
    RunImpl,
    /// `#[greenlet::main]`.
    Main,
    /// `#[greenlet::test]`.
    Test,
}

impl Form {
    /// The options this form accepts, in the order the error message lists them.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Form::Fn => &["name", "stack_size", "start", "crate"],
            Form::RunImpl => &["class", "name", "stack_size", "helpers", "crate"],
            Form::Main => &["stack_size", "stack_cache_limit", "crate"],
            Form::Test => &["leak_check", "stack_size", "start_paused", "crate"],
        }
    }

    /// How the attribute is written, for messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Form::Fn => "#[greenlet] fn",
            Form::RunImpl => "#[greenlet] impl Run",
            Form::Main => "#[greenlet::main]",
            Form::Test => "#[greenlet::test]",
        }
    }
}

/// The options of one attribute, already checked against its [`Form`].
#[derive(Default)]
pub(crate) struct Options {
    /// `crate = "path"`: where the `greenlet` facade is (default `::greenlet`).
    pub(crate) krate: Option<Path>,
    /// `name = "…"`: the greenlet's name.
    pub(crate) name: Option<LitStr>,
    /// `stack_size = N`: bytes, any `usize` expression.
    pub(crate) stack_size: Option<Expr>,
    /// `start = "later"`: return the greenlet unstarted.
    pub(crate) start_later: bool,
    /// `class = "…"`: the class name a `Run` greenlet's `Display` shows.
    pub(crate) class: Option<LitStr>,
    /// `helpers = false`: no inherent `spawn`/`spawn_later`/`into_greenlet`.
    pub(crate) no_helpers: bool,
    /// `stack_cache_limit = N`: the hub's stack pool size (main only).
    pub(crate) stack_cache_limit: Option<Expr>,
    /// `leak_check = false`: skip the end-of-test counter check.
    pub(crate) no_leak_check: bool,
    /// `start_paused = true`: the test starts with the hub clock paused.
    pub(crate) start_paused: bool,
}

/// Smallest stack the runtime maps (it rounds smaller requests up); a
/// literal below it is almost certainly a size in KiB written as bytes.
const MIN_STACK_SIZE: u64 = 16 * 1024;

impl Options {
    /// The path generated code starts from: `<crate>::__private`.
    pub(crate) fn private(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote::quote!(#path::__private),
            None => quote::quote!(::greenlet::__private),
        }
    }

    /// Reads `args` for `form`; bad options land in `errors` and are skipped.
    pub(crate) fn from_args(args: Vec<Arg>, form: Form, errors: &mut Vec<syn::Error>) -> Options {
        let mut options = Options::default();
        let mut seen: Vec<String> = Vec::new();
        for Arg { key, value } in args {
            let name = key.unraw().to_string();
            if !form.keys().contains(&name.as_str()) {
                errors.push(unknown_option(&key, &name, form));
                continue;
            }
            if seen.contains(&name) {
                errors.push(syn::Error::new(
                    key.span(),
                    format!("duplicate option `{name}`"),
                ));
                continue;
            }
            seen.push(name.clone());
            if let Err(e) = options.set(&name, value) {
                errors.push(e);
            }
        }
        options
    }

    fn set(&mut self, name: &str, value: Expr) -> syn::Result<()> {
        match name {
            "crate" => self.krate = Some(path_value(&value)?),
            "name" => self.name = Some(str_value(&value, "name = \"worker\"")?),
            "class" => {
                let class = str_value(&value, "class = \"Downloader\"")?;
                if class.value().is_empty() {
                    return Err(syn::Error::new_spanned(
                        class,
                        "`class` cannot be empty: it is the name `Display` shows, as in `<Downloader at 0x…: running>`",
                    ));
                }
                self.class = Some(class);
            }
            "start" => {
                let start = str_value(&value, "start = \"later\"")?;
                match start.value().as_str() {
                    "now" => self.start_later = false,
                    "later" => self.start_later = true,
                    _ => {
                        return Err(syn::Error::new_spanned(
                            start,
                            "`start` is \"now\" (the default: the call spawns the greenlet) \
                             or \"later\" (the call returns an unstarted greenlet; call `.start()`)",
                        ));
                    }
                }
            }
            "stack_size" => self.stack_size = Some(stack_size_value(value)?),
            "stack_cache_limit" => self.stack_cache_limit = Some(value),
            "helpers" => self.no_helpers = !bool_value(&value, "helpers = false")?,
            "leak_check" => self.no_leak_check = !bool_value(&value, "leak_check = false")?,
            "start_paused" => {
                self.start_paused = bool_value(&value, "start_paused = true")?;
            }
            other => unreachable!("option `{other}` is listed in Form::keys but not handled"),
        }
        Ok(())
    }
}

fn unknown_option(key: &Ident, name: &str, form: Form) -> syn::Error {
    let expected = form
        .keys()
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let typo = form
        .keys()
        .iter()
        .map(|k| (edit_distance(k, name), k))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, k)| k)
        .map(|k| format!("\nhelp: did you mean `{k}`?"))
        .unwrap_or_default();
    let elsewhere = match name {
        "start" => "\nhelp: `start` applies to `#[greenlet] fn`",
        "class" | "helpers" => {
            "\nhelp: `class` and `helpers` apply to `#[greenlet] impl Run for …`"
        }
        "leak_check" | "start_paused" => {
            "\nhelp: `leak_check` and `start_paused` apply to `#[greenlet::test]`"
        }
        "stack_cache_limit" => "\nhelp: `stack_cache_limit` applies to `#[greenlet::main]`",
        "name" => "\nhelp: `name` applies to `#[greenlet] fn` and `#[greenlet] impl Run for …`",
        _ => "",
    };
    syn::Error::new(
        key.span(),
        format!(
            "unknown option `{name}` for `{}`; expected one of {expected}{typo}{elsewhere}",
            form.attribute()
        ),
    )
}

/// Levenshtein distance, for "did you mean" on short option names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

fn str_value(value: &Expr, example: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("expected a string literal, as in `{example}`"),
        )),
    }
}

fn bool_value(value: &Expr, example: &str) -> syn::Result<bool> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("expected `true` or `false`, as in `{example}`"),
        )),
    }
}

/// `crate = "path"` or `crate = path`.
fn path_value(value: &Expr) -> syn::Result<Path> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => s.parse_with(Path::parse_mod_style),
        Expr::Path(p) if p.qself.is_none() => Ok(p.path.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            "expected the path to the `greenlet` crate, as in `crate = \"my_runtime::greenlet\"`",
        )),
    }
}

/// Any `usize` expression; an integer literal is checked here.
fn stack_size_value(value: Expr) -> syn::Result<Expr> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = &value
    {
        let bytes: u64 = int.base10_parse()?;
        if bytes < MIN_STACK_SIZE {
            return Err(syn::Error::new_spanned(
                int,
                format!(
                    "`stack_size` is in bytes and at least {MIN_STACK_SIZE} (16 KiB); \
                     {bytes} bytes cannot hold a greenlet\nhelp: for {bytes} KiB write `stack_size = {bytes} * 1024`"
                ),
            ));
        }
    }
    Ok(value)
}

/// A hygienic identifier for the generated code's own locals.
pub(crate) fn private_ident(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}
