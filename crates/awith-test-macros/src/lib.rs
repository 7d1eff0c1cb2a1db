//! # awith-test-macros
//!
//! The `#[awith::test]` attribute: one async test becomes one `#[test]` per
//! runtime the build enables. Use it through the facade's `test` feature;
//! `awith::test` (the `awith-test` crate) documents it and runs the tests.
//!
//! The attribute keeps the function as written and adds a module of the same
//! name holding one `#[test]` per runtime (`name::reference`,
//! `name::tokio_current_thread`, `name::tokio_multi_thread`,
//! `name::async_std`, `name::smol`). Which runtimes exist is decided by
//! `awith-test`'s features (the facade's runtime features), not by the
//! user's crate: each test is wrapped in a macro of `awith-test` that keeps
//! it or drops it.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, Path, Token};

/// The runtimes of the matrix: the test's name, the harness type in
/// `awith_test::harness`, and the macro of `awith_test` that keeps the test
/// when the runtime's feature is enabled.
const RUNTIMES: [(&str, &str, &str); 5] = [
    ("reference", "Reference", "__if_reference"),
    ("tokio_current_thread", "TokioCurrentThread", "__if_tokio"),
    ("tokio_multi_thread", "TokioMultiThread", "__if_tokio"),
    ("async_std", "AsyncStd", "__if_async_std"),
    ("smol", "Smol", "__if_smol"),
];

/// Runs an async test on every runtime the build enables. See `awith::test`.
///
/// ```text
/// #[awith::test]
/// async fn reads_back(env: awith::test::Env) { … }
///
/// #[awith::test(skip(reference), timeout = "30s", incidents = "allowed")]
/// async fn talks_to_a_socket(rt: awith::Runtime) -> std::io::Result<()> { … }
///
/// #[awith::test(only(reference), timeout = "2h")]
/// async fn an_hour_on_the_virtual_clock(env: awith::test::Env) { … }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// What the attribute's arguments say.
struct Args {
    skip: Vec<String>,
    /// The runtimes `only(..)` named, if it was used.
    only: Option<Vec<String>>,
    timeout_ms: Option<u64>,
    incidents_allowed: bool,
    krate: Path,
}

fn parse_args(args: TokenStream2) -> syn::Result<Args> {
    let mut parsed = Args {
        skip: Vec::new(),
        only: None,
        timeout_ms: None,
        incidents_allowed: false,
        krate: syn::parse_quote!(::awith::test),
    };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("skip") || meta.path.is_ident("only") {
            let only = meta.path.is_ident("only");
            if parsed.only.is_some() || !parsed.skip.is_empty() {
                return Err(meta.error("say `skip(..)` or `only(..)`, once"));
            }
            let content;
            syn::parenthesized!(content in meta.input);
            let idents = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            if idents.is_empty() {
                return Err(meta.error(format!(
                    "`{}()` names no runtime: list some of {}",
                    if only { "only" } else { "skip" },
                    names()
                )));
            }
            let mut listed = Vec::new();
            for ident in idents {
                let name = ident.to_string();
                if !RUNTIMES.iter().any(|(known, _, _)| *known == name) {
                    return Err(syn::Error::new(
                        ident.span(),
                        format!("unknown runtime `{name}`: the runtimes are {}", names()),
                    ));
                }
                if listed.contains(&name) {
                    return Err(syn::Error::new(
                        ident.span(),
                        format!("`{name}` is listed twice"),
                    ));
                }
                listed.push(name);
            }
            if only {
                parsed.skip = RUNTIMES
                    .iter()
                    .map(|(name, _, _)| (*name).to_string())
                    .filter(|name| !listed.contains(name))
                    .collect();
                parsed.only = Some(listed);
            } else {
                parsed.skip = listed;
            }
            Ok(())
        } else if meta.path.is_ident("timeout") {
            let text: LitStr = meta.value()?.parse()?;
            let ms = parse_duration_ms(&text.value()).map_err(|why| {
                syn::Error::new(
                    text.span(),
                    format!("{why}: write e.g. \"500ms\", \"30s\" or \"2m\""),
                )
            })?;
            parsed.timeout_ms = Some(ms);
            Ok(())
        } else if meta.path.is_ident("incidents") {
            let text: LitStr = meta.value()?.parse()?;
            parsed.incidents_allowed = match text.value().as_str() {
                "fail" => false,
                "allowed" => true,
                other => {
                    return Err(syn::Error::new(
                        text.span(),
                        format!(
                            "unknown incident policy `{other}`: \"fail\" (the default: an \
                             incident the test did not take fails it) or \"allowed\" (the test \
                             checks `env.incidents` itself)"
                        ),
                    ));
                }
            };
            Ok(())
        } else if meta.path.is_ident("crate") {
            let text: LitStr = meta.value()?.parse()?;
            parsed.krate = text.parse()?;
            Ok(())
        } else {
            Err(meta.error(
                "unknown argument: expected `skip(..)`, `only(..)`, `timeout = \"..\"`, `incidents = \"..\"` \
                 or `crate = \"..\"`",
            ))
        }
    });
    parser.parse2(args)?;
    if parsed.skip.len() == RUNTIMES.len() {
        return Err(syn::Error::new(
            Span::call_site(),
            "every runtime is skipped: the test would never run",
        ));
    }
    Ok(parsed)
}

fn names() -> String {
    RUNTIMES
        .iter()
        .map(|(name, _, _)| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"500ms"`, `"30s"`, `"1.5s"`, `"2m"` in milliseconds.
fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let Some(split) = text.find(|c: char| !(c.is_ascii_digit() || c == '.')) else {
        return Err(format!("`{text}` has no unit"));
    };
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let scale = match unit.trim() {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        other => return Err(format!("unknown unit `{other}`")),
    };
    let ms = number * scale;
    if !(1.0..=86_400_000.0).contains(&ms) {
        return Err(format!("`{text}` is not between 1ms and 24 hours"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(ms.round() as u64)
}

fn expand(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(args)?;
    let mut function: ItemFn = syn::parse2(item)?;
    // `#[ignore]` and `#[should_panic]` are for the tests, not the function.
    let (forwarded, kept): (Vec<_>, Vec<_>) = function
        .attrs
        .drain(..)
        .partition(|attr| attr.path().is_ident("ignore") || attr.path().is_ident("should_panic"));
    function.attrs = kept;
    let signature = &function.sig;
    if signature.asyncness.is_none() {
        return Err(syn::Error::new(
            signature.fn_token.span(),
            "#[awith::test] runs an `async fn`: add `async`",
        ));
    }
    if !signature.generics.params.is_empty() || signature.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            signature.generics.span(),
            "an #[awith::test] function cannot be generic",
        ));
    }
    let name = &signature.ident;
    let krate = &args.krate;
    let call = match signature.inputs.len() {
        0 => quote!(|_: #krate::Env| super::#name()),
        1 => match &signature.inputs[0] {
            FnArg::Typed(_) => {
                quote!(|env: #krate::Env| super::#name(#krate::FromEnv::from_env(env)))
            }
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new(
                    receiver.span(),
                    "an #[awith::test] function cannot take `self`",
                ));
            }
        },
        _ => {
            return Err(syn::Error::new(
                signature.inputs.span(),
                "an #[awith::test] function takes at most one argument: an \
                 `awith::test::Env` or an `awith::Runtime`",
            ));
        }
    };
    let mut options = quote!(#krate::Options::new());
    if let Some(ms) = args.timeout_ms {
        options = quote!(#options.timeout(::core::time::Duration::from_millis(#ms)));
    }
    if args.incidents_allowed {
        options = quote!(#options.allow_incidents());
    }
    let tests = RUNTIMES
        .iter()
        .filter(|(runtime, _, _)| !args.skip.iter().any(|skipped| skipped == runtime))
        .map(|(runtime, harness, gate)| {
            let runtime = format_ident!("{runtime}");
            let harness = format_ident!("{harness}");
            let gate = format_ident!("{gate}");
            quote! {
                #krate::#gate! {
                    #[::core::prelude::v1::test]
                    #(#forwarded)*
                    pub(super) fn #runtime() {
                        #krate::run::<#krate::harness::#harness, _, _>(
                            #options.named(::core::concat!(
                                ::core::module_path!(), "::", ::core::stringify!(#runtime)
                            )),
                            #call,
                        );
                    }
                }
            }
        });
    Ok(quote! {
        #[cfg_attr(not(test), allow(dead_code))]
        #function

        #[doc(hidden)]
        mod #name {
            #(#tests)*
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert!(parse_duration_ms("30").is_err());
        assert!(parse_duration_ms("0s").is_err());
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert!(parse_duration_ms("25h").is_err());
        assert!(parse_duration_ms("5d").is_err());
        assert!(parse_duration_ms("s").is_err());
        assert!(parse_duration_ms("2days").is_err());
    }
}

#[cfg(test)]
mod errors {
    use super::expand;
    use quote::quote;

    fn error(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
        expand(args, item).expect_err("a compile error").to_string()
    }

    #[test]
    fn misuses_are_compile_errors_that_say_the_fix() {
        let test = quote!(
            async fn t() {}
        );
        assert!(error(quote!(skip(tokio)), test.clone()).contains("unknown runtime `tokio`"));
        assert!(error(quote!(skip(smol, smol)), test.clone()).contains("listed twice"));
        assert!(error(quote!(skip(smol), only(reference)), test.clone()).contains("once"));
        let e = error(quote!(only()), test.clone());
        assert!(e.contains("names no runtime"), "{e}");
        assert!(
            error(
                quote!(skip(
                    reference,
                    tokio_current_thread,
                    tokio_multi_thread,
                    async_std,
                    smol
                )),
                test.clone()
            )
            .contains("every runtime is skipped")
        );
        assert!(error(quote!(timeout = "30"), test.clone()).contains("has no unit"));
        assert!(error(quote!(timeout = 30), test.clone()).contains("expected string literal"));
        assert!(error(quote!(incidents = "ignore"), test.clone()).contains("\"allowed\""));
        assert!(error(quote!(flavor = "x"), test.clone()).contains("unknown argument"));
        assert!(
            error(
                quote!(),
                quote!(
                    fn t() {}
                )
            )
            .contains("add `async`")
        );
        assert!(
            error(
                quote!(),
                quote!(
                    async fn t<T>() {}
                )
            )
            .contains("cannot be generic")
        );
        assert!(
            error(
                quote!(),
                quote!(
                    async fn t(a: u8, b: u8) {}
                )
            )
            .contains("at most one")
        );
    }

    #[test]
    fn only_keeps_the_runtimes_it_names() {
        let out = expand(
            quote!(only(reference)),
            quote!(
                async fn t() {}
            ),
        )
        .expect("expands")
        .to_string();
        assert!(out.contains("fn reference"));
        for other in [
            "tokio_current_thread",
            "tokio_multi_thread",
            "async_std",
            "smol",
        ] {
            assert!(!out.contains(&format!("fn {other}")), "{other}");
        }
    }

    #[test]
    fn ignore_and_should_panic_go_to_each_test() {
        let out = expand(
            quote!(only(reference, smol)),
            quote!(
                #[ignore = "slow"]
                #[should_panic(expected = "boom")]
                #[allow(unused)]
                async fn t() {}
            ),
        )
        .expect("expands")
        .to_string();
        assert_eq!(out.matches("ignore = \"slow\"").count(), 2, "{out}");
        assert_eq!(out.matches("should_panic").count(), 2, "{out}");
        assert_eq!(out.matches("allow (unused)").count(), 1, "{out}");
    }

    #[test]
    fn skipped_runtimes_get_no_test() {
        let out = expand(
            quote!(skip(reference, smol)),
            quote!(
                async fn t() {}
            ),
        )
        .expect("expands")
        .to_string();
        assert!(!out.contains("fn reference"));
        assert!(!out.contains("fn smol"));
        assert!(out.contains("fn tokio_current_thread"));
        assert!(out.contains("fn async_std"));
    }
}
