//! `select!`: parses the cases and expands to typed case values, one call of the runtime's
//! `select`, and a `match` on the winner.
//!
//! ```text
//! select! {
//!     recv(ch) -> v => body,      // v: Option<T>, None when the channel is closed
//!     send(ch, value) => body,
//!     default => body,            // optional: taken when no case is ready
//! }
//! ```
//!
//! Channel expressions and sent values are evaluated once, in source order, before anything
//! else (as in Go). Each arm consumes or drops every case value before its body runs, so the
//! body may assign to a channel variable a case borrowed (Go's `ch = nil` idiom).

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, Pat, Token};

enum Case {
    Recv { ch: Expr, pat: Pat, body: Expr },
    Send { ch: Expr, value: Expr, body: Expr },
    Default { body: Expr },
}

pub(crate) struct Select {
    cases: Vec<Case>,
}

impl Parse for Select {
    fn parse(input: ParseStream) -> syn::Result<Select> {
        let mut cases = Vec::new();
        let mut defaults = 0;
        while !input.is_empty() {
            let kind: Ident = input.parse()?;
            let case =
                match kind.to_string().as_str() {
                    "recv" => {
                        let args;
                        syn::parenthesized!(args in input);
                        let ch: Expr = args.parse()?;
                        input.parse::<Token![->]>()?;
                        let pat = Pat::parse_single(input)?;
                        input.parse::<Token![=>]>()?;
                        let body: Expr = input.parse()?;
                        Case::Recv { ch, pat, body }
                    }
                    "send" => {
                        let args;
                        syn::parenthesized!(args in input);
                        let ch: Expr = args.parse()?;
                        args.parse::<Token![,]>()?;
                        let value: Expr = args.parse()?;
                        input.parse::<Token![=>]>()?;
                        let body: Expr = input.parse()?;
                        Case::Send { ch, value, body }
                    }
                    "default" => {
                        defaults += 1;
                        if defaults > 1 {
                            return Err(syn::Error::new(
                                kind.span(),
                                "select! has one default at most",
                            ));
                        }
                        input.parse::<Token![=>]>()?;
                        let body: Expr = input.parse()?;
                        Case::Default { body }
                    }
                    _ => return Err(syn::Error::new(
                        kind.span(),
                        "select! cases are `recv(ch) -> v => ...`, `send(ch, value) => ...` and \
                         `default => ...`",
                    )),
                };
            cases.push(case);
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(Select { cases })
    }
}

pub(crate) fn expand(s: Select) -> TokenStream2 {
    let p = quote!(::gort::__private);
    let ops: Vec<&Case> = s
        .cases
        .iter()
        .filter(|c| !matches!(c, Case::Default { .. }))
        .collect();
    let default = s.cases.iter().find_map(|c| match c {
        Case::Default { body } => Some(body),
        _ => None,
    });
    let case_ids: Vec<Ident> = (0..ops.len())
        .map(|i| format_ident!("__gort_case{}", i, span = Span::mixed_site()))
        .collect();
    let mut setup = TokenStream2::new();
    for (i, c) in ops.iter().enumerate() {
        let id = &case_ids[i];
        let ch = format_ident!("__gort_ch{}", i, span = Span::mixed_site());
        match c {
            Case::Recv { ch: e, .. } => setup.extend(quote! {
                let #ch = &(#e);
                let mut #id = #p::RecvCase::new(#ch.__gort_case_chan());
            }),
            Case::Send { ch: e, value, .. } => {
                let v = format_ident!("__gort_val{}", i, span = Span::mixed_site());
                setup.extend(quote! {
                    let #ch = &(#e);
                    let #v = #value;
                    let mut #id = #p::SendCase::new(#ch.__gort_case_chan(), #v);
                })
            }
            Case::Default { .. } => unreachable!("filtered above"),
        }
    }
    // After the select, one linear pass takes the winner's value and drops every case (their
    // borrows of the channels end here, so a body may assign to a channel variable: Go's
    // `ch = nil` idiom). Each arm then only binds its value: the expansion is linear in the
    // number of cases (dropping the other cases in every arm was quadratic: 100 cases took
    // 47 s to compile, 1,000 exhausted memory).
    let won = format_ident!("__gort_won", span = Span::mixed_site());
    let mut extract = TokenStream2::new();
    let mut arms = TokenStream2::new();
    for (i, c) in ops.iter().enumerate() {
        let id = &case_ids[i];
        match c {
            Case::Recv { pat, body, .. } => {
                let v = format_ident!("__gort_v{}", i, span = Span::mixed_site());
                extract.extend(quote! {
                    let #v = if #won == #i {
                        ::core::option::Option::Some(#id.into_value())
                    } else {
                        ::core::mem::drop(#id);
                        ::core::option::Option::None
                    };
                });
                arms.extend(quote! {
                    #i => {
                        let #pat = #p::select_won(#v);
                        #body
                    }
                });
            }
            Case::Send { body, .. } => {
                extract.extend(quote! { ::core::mem::drop(#id); });
                arms.extend(quote! { #i => { #body } });
            }
            Case::Default { .. } => unreachable!("filtered above"),
        }
    }
    let has_default = default.is_some();
    let default_arm = match default {
        Some(body) => quote! { _ => { #body } },
        None => quote! { _ => ::core::unreachable!("select! without default returned no case") },
    };
    quote! {{
        #[allow(unused_imports)]
        use #p::CaseChan as _;
        #setup
        let #won = #p::select(
            &mut [ #( &mut #case_ids as &mut dyn #p::SelectCase ),* ],
            #has_default,
        );
        #extract
        #[allow(unreachable_code)]
        match #won {
            #arms
            #default_arm
        }
    }}
}
