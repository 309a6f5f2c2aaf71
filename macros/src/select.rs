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
    // Four `let`s whatever the number of cases, each a tuple with an element per case (or
    // per channel and sent value). A `let` per case nests a scope per case: LLVM's debug info
    // recurses once per scope, and 1,000 cases overflowed rustc's stack (and before that took
    // gigabytes). Tuple fields move and borrow one by one, so each case still takes its own
    // value and ends its own borrow.
    let inputs = format_ident!("__gort_in", span = Span::mixed_site());
    let cases = format_ident!("__gort_cases", span = Span::mixed_site());
    let won = format_ident!("__gort_won", span = Span::mixed_site());
    let values = format_ident!("__gort_values", span = Span::mixed_site());
    // The channel expressions and sent values, evaluated once, in source order (as in Go):
    // `&(ch)` in a `let`'s tuple keeps a temporary channel alive for the whole select.
    let mut input = Vec::new();
    let mut make = Vec::new();
    for c in &ops {
        match c {
            Case::Recv { ch: e, .. } => {
                let ch = syn::Index::from(input.len());
                input.push(quote!(&(#e)));
                make.push(quote!(#p::RecvCase::new(#inputs.#ch.__gort_case_chan())));
            }
            Case::Send { ch: e, value, .. } => {
                let ch = syn::Index::from(input.len());
                let v = syn::Index::from(input.len() + 1);
                input.push(quote!(&(#e)));
                input.push(quote!(#value));
                make.push(quote!(#p::SendCase::new(#inputs.#ch.__gort_case_chan(), #inputs.#v)));
            }
            Case::Default { .. } => unreachable!("filtered above"),
        }
    }
    // After the select, one linear pass takes the winner's value and drops every case (their
    // borrows of the channels end here, so a body may assign to a channel variable: Go's
    // `ch = nil` idiom). Each arm then only binds its value: the expansion is linear in the
    // number of cases (dropping the other cases in every arm was quadratic: 100 cases took
    // 47 s to compile, 1,000 exhausted memory).
    let mut extract = Vec::new();
    let mut arms = TokenStream2::new();
    let mut dyn_cases = Vec::new();
    for (i, c) in ops.iter().enumerate() {
        let f = syn::Index::from(i);
        dyn_cases.push(quote!(&mut #cases.#f as &mut dyn #p::SelectCase));
        match c {
            Case::Recv { pat, body, .. } => {
                extract.push(quote! {
                    if #won == #i {
                        ::core::option::Option::Some(#cases.#f.into_value())
                    } else {
                        ::core::mem::drop(#cases.#f);
                        ::core::option::Option::None
                    }
                });
                arms.extend(quote! {
                    #i => {
                        let #pat = #p::select_won(#values.#f);
                        #body
                    }
                });
            }
            Case::Send { body, .. } => {
                extract.push(quote! { ::core::mem::drop(#cases.#f) });
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
        #[allow(unused_variables)]
        let #inputs = ( #( #input, )* );
        #[allow(unused_mut, unused_variables)]
        let mut #cases = ( #( #make, )* );
        let #won = #p::select(&mut [ #( #dyn_cases ),* ], #has_default);
        #[allow(unused_variables, clippy::let_unit_value)]
        let #values = ( #( #extract, )* );
        #[allow(unreachable_code)]
        match #won {
            #arms
            #default_arm
        }
    }}
}
