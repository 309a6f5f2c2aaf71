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
    let drop_all = |except: Option<usize>| {
        let ids = case_ids
            .iter()
            .enumerate()
            .filter(move |(i, _)| Some(*i) != except)
            .map(|(_, id)| id);
        quote! { #( ::core::mem::drop(#ids); )* }
    };
    let mut arms = TokenStream2::new();
    for (i, c) in ops.iter().enumerate() {
        let id = &case_ids[i];
        let others = drop_all(Some(i));
        match c {
            Case::Recv { pat, body, .. } => arms.extend(quote! {
                #i => {
                    let #pat = #id.into_value();
                    #others
                    #body
                }
            }),
            Case::Send { body, .. } => arms.extend(quote! {
                #i => {
                    ::core::mem::drop(#id);
                    #others
                    #body
                }
            }),
            Case::Default { .. } => unreachable!("filtered above"),
        }
    }
    let all = drop_all(None);
    let has_default = default.is_some();
    let default_arm = match default {
        Some(body) => quote! { _ => { #all #body } },
        None => quote! { _ => ::core::unreachable!("select! without default returned no case") },
    };
    let won = format_ident!("__gort_won", span = Span::mixed_site());
    quote! {{
        #[allow(unused_imports)]
        use #p::CaseChan as _;
        #setup
        let #won = #p::select(
            &mut [ #( &mut #case_ids as &mut dyn #p::SelectCase ),* ],
            #has_default,
        );
        #[allow(unreachable_code)]
        match #won {
            #arms
            #default_arm
        }
    }}
}
