//! Procedural macros of gort: `go!`, `#[gort::main]`, `#[gort::test]`, and Go's frames:
//! `#[gort::func]`, `frame!` and `defer!` (`frame.rs`).
//!
//! Use them through the `gort` crate, which re-exports them; the expansions name `::gort`.

mod frame;
mod select;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{parse_macro_input, Expr, ItemFn, ReturnType};

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
    // The goroutine's function goes through a local function whose bounds are the
    // requirement: a closure that is not `Send` or borrows a local is then reported as
    // "required by a bound in `goroutine_must_be_send_and_static`" at the user's `go!`,
    // not as a bound of gort's private spawn function (whose bound the opaque return type
    // satisfies, so only this one error is reported).
    let check = format_ident!("goroutine_must_be_send_and_static", span = span);
    let spawn = quote_spanned!(span=> ::gort::__private::go);
    let body = expand_go_forms(expr, span, &spawn, &check);
    quote_spanned! {span=>
        {
            fn #check<F: ::core::ops::FnOnce() + ::core::marker::Send + 'static>(
                f: F,
            ) -> impl ::core::ops::FnOnce() + ::core::marker::Send + 'static {
                f
            }
            #body
        }
    }
}

/// The forms of `go!`; `spawn(check(f))` starts the goroutine.
fn expand_go_forms(
    expr: Expr,
    span: Span,
    spawn: &TokenStream2,
    check: &syn::Ident,
) -> TokenStream2 {
    match expr {
        Expr::Call(call) => {
            let func = &call.func;
            let names: Vec<_> = (0..call.args.len())
                .map(|i| format_ident!("__gort_arg{}", i, span = Span::mixed_site()))
                .collect();
            let args = call.args.iter();
            let f = format_ident!("__gort_fn", span = Span::mixed_site());
            let name = format_ident!("__gort_name", span = Span::mixed_site());
            quote_spanned! {span=>
                {
                    #[allow(unused_mut)]
                    let mut #f = #func;
                    // The parentheses a user needs (`go!((a..b).f())`) are not needed in a
                    // `let`, and the lint's fix would change the meaning.
                    #( #[allow(unused_parens)] let #names = #args; )*
                    let #name = ::gort::__private::entry_name_of(&#f);
                    ::gort::__private::go_named(#name, #check(move || {
                        ::gort::__private::discard(#f( #(#names),* ));
                    }))
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
                    #[allow(unused_parens)]
                    let #r = #receiver;
                    #( #[allow(unused_parens)] let #names = #args; )*
                    #spawn(#check(move || {
                        ::gort::__private::discard(#r.#method #turbofish( #(#names),* ));
                    }))
                }
            }
        }
        Expr::Closure(c) if frame::mentions_defer(&c.body.to_token_stream()) => {
            match frame::frame_closure(c, "a go! closure") {
                Ok(closure) => quote_spanned! {span=>
                    #spawn(#check(#closure))
                },
                Err(e) => e.to_compile_error(),
            }
        }
        Expr::Macro(mac) if !is_frame_macro(&mac.mac) => quote_spanned! {span=>
            #spawn(#check(move || {
                ::gort::__private::discard(#mac);
            }))
        },
        other => {
            let c = format_ident!("__gort_callee", span = Span::mixed_site());
            quote_spanned! {span=>
                {
                    // `mut`: a closure that mutates what it captured (`move || x += 1`) is
                    // `FnMut` and needs a mutable binding to be called.
                    #[allow(unused_mut)]
                    let mut #c = #other;
                    #spawn(#check(move || {
                        ::gort::__private::discard(#c());
                    }))
                }
            }
        }
    }
}

/// `frame!(...)` makes a value (a closure), unlike the macros `go!` runs in the goroutine.
fn is_frame_macro(mac: &syn::Macro) -> bool {
    mac.path.segments.last().is_some_and(|s| s.ident == "frame")
}

/// Runs `fn main` as goroutine 1 of a gort runtime. See `gort::main`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as RtArgs);
    let func = parse_macro_input!(item as ItemFn);
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
    let ret = ret_type(&func.sig.output);
    let body = frame::frame_body(*func.block.clone(), quote!("main"), Some(&ret));
    let (procs, stack) = args.tokens();
    quote! {
        #(#attrs)*
        #vis #sig {
            ::gort::__private::main(#procs, #stack, move || -> #ret #body)
        }
    }
    .into()
}

/// `procs = N` and `stack_size = N` (either, both, or none; comma-separated) for
/// `#[gort::main]` and `#[gort::test]`.
struct RtArgs {
    procs: Option<syn::Expr>,
    stack_size: Option<syn::Expr>,
}

impl Parse for RtArgs {
    fn parse(input: ParseStream) -> syn::Result<RtArgs> {
        let mut args = RtArgs {
            procs: None,
            stack_size: None,
        };
        while !input.is_empty() {
            let key: syn::Ident = input.parse()?;
            input.parse::<syn::Token![=]>()?;
            let v: syn::Expr = input.parse()?;
            let slot = match key.to_string().as_str() {
                "procs" => &mut args.procs,
                "stack_size" => &mut args.stack_size,
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        "expected `procs = N` or `stack_size = BYTES` (GOMAXPROCS and the \
                         goroutine stack window, as gort::Builder::procs and ::stack_size)",
                    ))
                }
            };
            if slot.replace(v).is_some() {
                return Err(syn::Error::new(key.span(), format!("`{key}` given twice")));
            }
            if !input.is_empty() {
                input.parse::<syn::Token![,]>()?;
            }
        }
        Ok(args)
    }
}

impl RtArgs {
    fn tokens(&self) -> (TokenStream2, TokenStream2) {
        let opt = |e: &Option<syn::Expr>| match e {
            Some(v) => quote!(::core::option::Option::Some(#v)),
            None => quote!(::core::option::Option::None),
        };
        (opt(&self.procs), opt(&self.stack_size))
    }
}

/// Runs a test body as goroutine 1 of its own runtime. See `gort::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as RtArgs);
    let func = parse_macro_input!(item as ItemFn);
    if let Err(e) = check_plain_fn(&func, "#[gort::test]") {
        return e.to_compile_error().into();
    }
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    let ret = ret_type(&func.sig.output);
    let name = func.sig.ident.to_string();
    let body = frame::frame_body(*func.block.clone(), quote!(#name), Some(&ret));
    let (procs, stack) = args.tokens();
    quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis #sig {
            ::gort::__private::test(#procs, #stack, move || -> #ret #body)
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

fn ret_type(out: &ReturnType) -> syn::Type {
    match out {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, t) => (**t).clone(),
    }
}

/// Makes a function a frame for `defer!`. See `gort::func`.
#[proc_macro_attribute]
pub fn func(args: TokenStream, item: TokenStream) -> TokenStream {
    if !args.is_empty() {
        return syn::Error::new(Span::call_site(), "#[gort::func] takes no arguments")
            .to_compile_error()
            .into();
    }
    let func = parse_macro_input!(item as ItemFn);
    if let Some(a) = &func.sig.asyncness {
        return syn::Error::new(
            a.span(),
            "#[gort::func] functions are plain functions: goroutines block, they are not async",
        )
        .to_compile_error()
        .into();
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let ret = ret_type(&sig.output);
    let name = sig.ident.to_string();
    let body = frame::frame_body(*block, quote!(#name), Some(&ret));
    // The stack check (`gort::maybe_grow`): the whole frame, deferred calls included, runs on
    // a further stack segment when little of the goroutine's stack is left. The return type is
    // given to `grow` (elided lifetimes in it are inferred there), so the body is checked
    // against it as a function body is: coercions at `return` and at the tail still happen.
    // Left as they are: a diverging function (`-> !` cannot be a type argument on stable), a
    // return type with `impl Trait` (cannot be named there either; the closure infers it), and
    // a `#[track_caller]` function (a closure would hide its caller's location).
    let track_caller = attrs.iter().any(|a| a.path().is_ident("track_caller"));
    let body = if track_caller || matches!(ret, syn::Type::Never(_)) {
        body
    } else if frame::has_impl_trait(&ret) {
        quote! {{ ::gort::__private::grow(|| #body) }}
    } else {
        quote! {{ ::gort::__private::grow::<#ret, _>(|| #body) }}
    };
    quote! {
        #(#attrs)*
        #vis #sig #body
    }
    .into()
}

/// A closure or block that is a frame. See `gort::frame`.
#[proc_macro]
pub fn frame(input: TokenStream) -> TokenStream {
    let ts = TokenStream2::from(input);
    let out = match frame::as_closure(&ts) {
        Some(c) => frame::frame_closure(c, "a frame! closure"),
        None => frame::frame_block(ts),
    };
    match out {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Registers a deferred call in the enclosing frame. See `gort::defer`.
///
/// Frames rewrite the `defer!`s of their own body before this macro runs; one that reaches
/// here is outside any frame (or inside a closure or macro call within one).
#[proc_macro]
pub fn defer(_input: TokenStream) -> TokenStream {
    syn::Error::new(
        Span::call_site(),
        "defer! must be used directly in a frame: a #[gort::func] function, a gort::frame! \
         closure or block, a go! closure, or a #[gort::main] / #[gort::test] body. A closure \
         inside a frame is not a frame (make it one with gort::frame!(|| ...)), and defer! \
         inside another macro's arguments is not seen by the frame",
    )
    .to_compile_error()
    .into()
}

/// Waits on several channel operations. See `gort::select`.
#[proc_macro]
pub fn select(input: TokenStream) -> TokenStream {
    let s = parse_macro_input!(input as select::Select);
    select::expand(s).into()
}
