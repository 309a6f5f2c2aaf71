//! Procedural macros of gort: `go!`, `#[gort::main]` and `#[gort::test]`.
//!
//! Use them through the `gort` crate, which re-exports them; the expansions name `::gort`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{parse_macro_input, Expr, ItemFn, LitInt, ReturnType};

/// Starts a goroutine. See `gort::go!` for the documentation.
///
/// Expansion, by form:
/// - `go!(f(a, b))`: `f`, `a` and `b` are evaluated now, into locals, and the call runs in the
///   new goroutine (Go's `go f(a, b)`);
/// - `go!(recv.method(a))`: the receiver and `a` are evaluated now;
/// - `go!(some_macro!(...))`: the macro runs in the new goroutine (its arguments cannot be
///   evaluated separately);
/// - anything else (`move || ...`, a variable holding a closure): the value is evaluated now
///   and called in the new goroutine.
///
/// Results of the call are discarded, as in Go.
#[proc_macro]
pub fn go(input: TokenStream) -> TokenStream {
    let expr = parse_macro_input!(input as Expr);
    expand_go(expr).into()
}

fn expand_go(expr: Expr) -> TokenStream2 {
    let span = expr.span();
    match expr {
        Expr::Call(call) => {
            let func = &call.func;
            let names: Vec<_> = (0..call.args.len())
                .map(|i| format_ident!("__gort_arg{}", i, span = Span::mixed_site()))
                .collect();
            let args = call.args.iter();
            let f = format_ident!("__gort_fn", span = Span::mixed_site());
            quote_spanned! {span=>
                {
                    let #f = #func;
                    #( let #names = #args; )*
                    ::gort::__private::go(move || {
                        ::gort::__private::discard(#f( #(#names),* ));
                    })
                }
            }
        }
        Expr::MethodCall(call) => {
            let receiver = &call.receiver;
            let method = &call.method;
            let turbofish = &call.turbofish;
            let names: Vec<_> = (0..call.args.len())
                .map(|i| format_ident!("__gort_arg{}", i, span = Span::mixed_site()))
                .collect();
            let args = call.args.iter();
            let r = format_ident!("__gort_recv", span = Span::mixed_site());
            quote_spanned! {span=>
                {
                    let #r = #receiver;
                    #( let #names = #args; )*
                    ::gort::__private::go(move || {
                        ::gort::__private::discard(#r.#method #turbofish( #(#names),* ));
                    })
                }
            }
        }
        Expr::Macro(mac) => quote_spanned! {span=>
            ::gort::__private::go(move || {
                ::gort::__private::discard(#mac);
            })
        },
        other => {
            let c = format_ident!("__gort_callee", span = Span::mixed_site());
            quote_spanned! {span=>
                {
                    let #c = #other;
                    ::gort::__private::go(move || {
                        ::gort::__private::discard(#c());
                    })
                }
            }
        }
    }
}

/// Runs `fn main` as goroutine 1 of a gort runtime. See `gort::main`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = parse_macro_input!(item as ItemFn);
    if !args.is_empty() {
        return syn::Error::new(
            Span::call_site(),
            "#[gort::main] takes no arguments; set GOMAXPROCS in the environment or use gort::Builder",
        )
        .to_compile_error()
        .into();
    }
    if let Err(e) = check_plain_fn(&func, "#[gort::main]") {
        return e.to_compile_error().into();
    }
    if func.sig.ident != "main" {
        return syn::Error::new(func.sig.ident.span(), "#[gort::main] goes on `fn main`")
            .to_compile_error()
            .into();
    }
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    let body = &func.block;
    let ret = ret_type(&func.sig.output);
    quote! {
        #(#attrs)*
        #vis #sig {
            ::gort::__private::main(move || -> #ret #body)
        }
    }
    .into()
}

/// `procs = N` for `#[gort::test]`.
struct TestArgs {
    procs: Option<LitInt>,
}

impl Parse for TestArgs {
    fn parse(input: ParseStream) -> syn::Result<TestArgs> {
        if input.is_empty() {
            return Ok(TestArgs { procs: None });
        }
        let key: syn::Ident = input.parse()?;
        if key != "procs" {
            return Err(syn::Error::new(
                key.span(),
                "#[gort::test] accepts only `procs = N`",
            ));
        }
        input.parse::<syn::Token![=]>()?;
        let n: LitInt = input.parse()?;
        if !input.is_empty() {
            return Err(input.error("#[gort::test] accepts only `procs = N`"));
        }
        Ok(TestArgs { procs: Some(n) })
    }
}

/// Runs a test body as goroutine 1 of its own runtime. See `gort::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as TestArgs);
    let func = parse_macro_input!(item as ItemFn);
    if let Err(e) = check_plain_fn(&func, "#[gort::test]") {
        return e.to_compile_error().into();
    }
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    let body = &func.block;
    let ret = ret_type(&func.sig.output);
    let procs = match &args.procs {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis #sig {
            ::gort::__private::test(#procs, move || -> #ret #body)
        }
    }
    .into()
}

fn check_plain_fn(func: &ItemFn, what: &str) -> syn::Result<()> {
    if let Some(a) = &func.sig.asyncness {
        return Err(syn::Error::new(
            a.span(),
            format!("{what} functions are plain functions: goroutines block, they are not async"),
        ));
    }
    if !func.sig.inputs.is_empty() {
        return Err(syn::Error::new(
            func.sig.inputs.span(),
            format!("{what} functions take no arguments"),
        ));
    }
    Ok(())
}

fn ret_type(out: &ReturnType) -> TokenStream2 {
    match out {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, t) => quote!(#t),
    }
}
