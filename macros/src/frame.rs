//! The frame transform behind `#[gort::func]`, `gort::frame!`, `go!` closures and the
//! `#[gort::main]`/`#[gort::test]` bodies: finds the body's `defer!`s and turns the body into
//! a frame (see `runtime/src/panic/frame.rs` for what the generated calls do).
//!
//! `defer!`s are found syntactically, before name resolution: any macro call whose path ends
//! in `defer`, in the body itself, outside closures, nested items, async blocks and other
//! macros' arguments. Those left behind expand on their own to a compile error, so a `defer!`
//! never binds to an outer frame.
//!
//! Mode: with at most [`MAX_OPEN`] `defer!`s, none inside a loop, each gets a typed slot (a
//! local `Option`) in the frame's caller, run newest first at the end: Go's open-coded
//! defers. Otherwise every `defer!` of the frame goes on the goroutine's defer list. A body
//! without `defer!` gets only a guard that counts it as a level for `recover`.

use proc_macro2::{Delimiter, Span, TokenStream as TokenStream2, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Block, Expr, ExprClosure, Macro, ReturnType, Stmt, Type};

/// Go's limit on open-coded defers per function.
const MAX_OPEN: usize = 8;

/// Whether a macro call is `defer!` (by the last path segment).
fn is_defer(mac: &Macro) -> bool {
    mac.path.segments.last().is_some_and(|s| s.ident == "defer")
}

/// Whether `defer!` appears anywhere in the tokens (to decide whether a closure is a frame).
pub(crate) fn mentions_defer(ts: &TokenStream2) -> bool {
    let mut prev_defer = false;
    for tt in ts.clone() {
        match tt {
            TokenTree::Ident(i) => {
                prev_defer = i == "defer";
                continue;
            }
            TokenTree::Punct(p) if p.as_char() == '!' && prev_defer => return true,
            TokenTree::Group(g) if mentions_defer(&g.stream()) => return true,
            _ => {}
        }
        prev_defer = false;
    }
    false
}

/// First pass: how many `defer!`s, and whether any is inside a loop.
#[derive(Default)]
struct Count {
    n: usize,
    in_loop: bool,
    loops: usize,
}

impl<'ast> Visit<'ast> for Count {
    fn visit_expr_closure(&mut self, _: &'ast ExprClosure) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    fn visit_expr(&mut self, e: &'ast Expr) {
        let looped = usize::from(matches!(
            e,
            Expr::ForLoop(_) | Expr::While(_) | Expr::Loop(_)
        ));
        self.loops += looped;
        syn::visit::visit_expr(self, e);
        self.loops -= looped;
    }
    fn visit_macro(&mut self, m: &'ast Macro) {
        if is_defer(m) {
            self.n += 1;
            self.in_loop |= self.loops > 0;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    List,
}

/// Second pass: replaces each `defer!` with its registration.
struct Rewrite {
    mode: Mode,
    next: usize,
}

impl Rewrite {
    fn site(&mut self, mac: &Macro) -> TokenStream2 {
        let i = self.next;
        self.next += 1;
        let span = mac.span();
        let arg: Expr = match syn::parse2(mac.tokens.clone()) {
            Ok(e) => e,
            Err(e) => return e.to_compile_error(),
        };
        let deferred = match deferred_value(arg) {
            Ok(d) => d,
            Err(e) => return e.to_compile_error(),
        };
        let Deferred { prelude, value } = deferred;
        let frame = frame_ident();
        match self.mode {
            Mode::Open => {
                let slot = slot_ident(i);
                quote_spanned! {span=>
                    {
                        #prelude
                        #slot = ::core::option::Option::Some(#value);
                    }
                }
            }
            Mode::List => quote_spanned! {span=>
                {
                    #prelude
                    #frame.defer_list(#value);
                }
            },
        }
    }
}

/// Inside a closure (or async block) of a frame, `defer!` would bind to nothing: it is made
/// `::gort::defer!`, which expands to the clear compile error even where the user did not
/// import the macro.
struct Qualify;

impl VisitMut for Qualify {
    fn visit_macro_mut(&mut self, m: &mut Macro) {
        if is_defer(m) {
            m.path = syn::parse_quote_spanned!(m.path.span()=> ::gort::defer);
        }
    }
}

impl VisitMut for Rewrite {
    fn visit_expr_closure_mut(&mut self, c: &mut ExprClosure) {
        Qualify.visit_expr_closure_mut(c);
    }
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
    fn visit_expr_async_mut(&mut self, a: &mut syn::ExprAsync) {
        Qualify.visit_expr_async_mut(a);
    }
    // A `defer!` is either a statement or an expression; both become its registration.
    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        match s {
            Stmt::Macro(m) if is_defer(&m.mac) => {
                *s = Stmt::Expr(Expr::Verbatim(self.site(&m.mac)), None)
            }
            _ => syn::visit_mut::visit_stmt_mut(self, s),
        }
    }
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Macro(m) if is_defer(&m.mac) => *e = Expr::Verbatim(self.site(&m.mac)),
            _ => syn::visit_mut::visit_expr_mut(self, e),
        }
    }
}

fn frame_ident() -> syn::Ident {
    format_ident!("__gort_frame", span = Span::mixed_site())
}

fn slot_ident(i: usize) -> syn::Ident {
    format_ident!("__gort_d{}", i, span = Span::mixed_site())
}

/// A deferred call: what to evaluate at the `defer!`, and the `Deferred` value.
struct Deferred {
    prelude: TokenStream2,
    value: TokenStream2,
}

/// Print macros whose arguments `defer!` formats at once (Go evaluates `fmt.Println`'s
/// arguments at the defer statement), with the macro that prints the text later.
fn print_like(mac: &Macro) -> Option<(TokenStream2, bool)> {
    let name = mac.path.segments.last()?.ident.to_string();
    let (printer, newline) = match name.as_str() {
        "println" => (quote!(::std::print!), true),
        "print" => (quote!(::std::print!), false),
        "eprintln" => (quote!(::std::eprint!), true),
        "eprint" => (quote!(::std::eprint!), false),
        _ => return None,
    };
    Some((printer, newline))
}

fn deferred_value(arg: Expr) -> syn::Result<Deferred> {
    let span = arg.span();
    let p = quote!(::gort::__private);
    match arg {
        Expr::Paren(e) => deferred_value(*e.expr),
        Expr::Group(e) => deferred_value(*e.expr),
        Expr::Call(call) if call.args.is_empty() && is_recover(&call.func) => {
            // Go's `defer recover()` has its own rule (see `DeferRecover`).
            let func = &call.func;
            Ok(Deferred {
                prelude: TokenStream2::new(),
                value: quote_spanned! {span=> #p::DeferRecover::new(#func) },
            })
        }
        Expr::Call(call) => {
            let func = match &*call.func {
                Expr::Paren(p) => &*p.expr,
                f => f,
            };
            let f = format_ident!("__gort_fn", span = Span::mixed_site());
            let names: Vec<_> = (0..call.args.len())
                .map(|i| format_ident!("__gort_arg{}", i, span = Span::mixed_site()))
                .collect();
            let args = call.args.iter();
            Ok(Deferred {
                prelude: quote_spanned! {span=>
                    #[allow(unused_mut)]
                    let mut #f = #func;
                    #( #[allow(unused_parens)] let #names = #args; )*
                },
                value: quote_spanned! {span=>
                    #p::Plain::direct(move || #p::discard(#f( #(#names),* )))
                },
            })
        }
        Expr::MethodCall(call) => {
            let receiver = &call.receiver;
            let method = &call.method;
            let turbofish = &call.turbofish;
            let r = format_ident!("__gort_recv", span = Span::mixed_site());
            let names: Vec<_> = (0..call.args.len())
                .map(|i| format_ident!("__gort_arg{}", i, span = Span::mixed_site()))
                .collect();
            let args = call.args.iter();
            Ok(Deferred {
                prelude: quote_spanned! {span=>
                    // `defer!((&x).m())`: the parentheses are needed in the user's spelling,
                    // not in this `let`; the lint's fix would change the meaning.
                    #[allow(unused_mut, unused_parens)]
                    let mut #r = #receiver;
                    #( #[allow(unused_parens)] let #names = #args; )*
                },
                value: quote_spanned! {span=>
                    #p::Plain::direct(move || #p::discard(#r.#method #turbofish( #(#names),* )))
                },
            })
        }
        Expr::Macro(m) => {
            if let Some((printer, newline)) = print_like(&m.mac) {
                let s = format_ident!("__gort_text", span = Span::mixed_site());
                let tokens = &m.mac.tokens;
                let fmt = if newline { "{}\n" } else { "{}" };
                let format = if tokens.is_empty() {
                    quote!(::std::string::String::new())
                } else {
                    quote_spanned!(span=> ::std::format!(#tokens))
                };
                Ok(Deferred {
                    prelude: quote_spanned! {span=>
                        #[allow(clippy::useless_format)]
                        let #s = #format;
                    },
                    value: quote_spanned! {span=>
                        #p::Plain::direct(move || #printer(#fmt, #s))
                    },
                })
            } else {
                Ok(Deferred {
                    prelude: TokenStream2::new(),
                    value: quote_spanned! {span=> #p::Plain::direct(move || { #m; }) },
                })
            }
        }
        Expr::Closure(c) => {
            let is_frame = mentions_defer(&c.body.to_token_stream());
            let direct = is_frame;
            let closure = if is_frame {
                frame_closure(c, "a deferred closure")?
            } else {
                c.into_token_stream()
            };
            Ok(Deferred {
                prelude: TokenStream2::new(),
                value: match closure_arity(&closure) {
                    0 if direct => quote_spanned! {span=> #p::Plain::direct(#closure) },
                    0 => quote_spanned! {span=> #p::Plain::closure(#closure) },
                    1 => {
                        let frame = frame_ident();
                        quote_spanned! {span=> #p::WithResult::new(#closure, #direct, &#frame) }
                    }
                    _ => {
                        return Err(syn::Error::new(
                            span,
                            "a deferred closure takes no argument, or one: the frame's result \
                             (`defer!(|r| ...)`, r: &mut gort::Named<R>)",
                        ))
                    }
                },
            })
        }
        other => Err(syn::Error::new(
            other.span(),
            "defer! takes a call (`defer!(f(x))`, `defer!(obj.m())`, `defer!(println!(...))`) \
             or a closure (`defer!(move || ...)`, `defer!(|r| ...)` for the result)",
        )),
    }
}

/// Whether a call's function is `recover`, `gort::recover` or `::gort::recover` (by path, as
/// Go's `recover` is recognised by name: the expansion type-checks it as gort's).
fn is_recover(func: &Expr) -> bool {
    let Expr::Path(p) = func else { return false };
    if p.qself.is_some() {
        return false;
    }
    let segs: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    matches!(
        segs.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["recover"] | ["gort", "recover"]
    ) && p.path.segments.iter().all(|s| s.arguments.is_none())
}

/// Number of parameters of a closure's tokens (`|a, b| ...` or `move |..| ...`).
fn closure_arity(ts: &TokenStream2) -> usize {
    match syn::parse2::<ExprClosure>(ts.clone()) {
        Ok(c) => c.inputs.len(),
        Err(_) => 0,
    }
}

/// Whether a type mentions `impl Trait` (which cannot be written as a type argument).
pub(crate) fn has_impl_trait(t: &Type) -> bool {
    struct Check(bool);
    impl<'ast> Visit<'ast> for Check {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut c = Check(false);
    c.visit_type(t);
    c.0
}

/// Whether a block obviously ends by diverging (`panic!`, `goexit()`, ...). The body type of
/// such a closure is an unconstrained type that falls back to `()`, and a trait lookup on it
/// (the zero-value probe) is an error since Rust 1.8x's never-type lint; these frames look up
/// the zero value at run time instead (only `()` has one there).
fn diverges(block: &Block) -> bool {
    const MACROS: &[&str] = &["panic", "unreachable", "todo", "unimplemented"];
    const FNS: &[&str] = &[
        "goexit",
        "panic_any",
        "panic_error",
        "resume_unwind",
        "exit",
        "abort",
        "repanic",
    ];
    let mac = |m: &Macro| {
        m.path
            .segments
            .last()
            .is_some_and(|s| MACROS.iter().any(|n| s.ident == n))
    };
    let expr = |e: &Expr| match e {
        Expr::Macro(m) => mac(&m.mac),
        Expr::Call(c) => match &*c.func {
            Expr::Path(p) => p
                .path
                .segments
                .last()
                .is_some_and(|s| FNS.iter().any(|n| s.ident == n)),
            _ => false,
        },
        Expr::MethodCall(m) => FNS.iter().any(|n| m.method == n),
        _ => false,
    };
    match block.stmts.last() {
        Some(Stmt::Macro(m)) => mac(&m.mac),
        Some(Stmt::Expr(e, _)) => expr(e),
        _ => false,
    }
}

/// Turns `body` into a frame; the result is an expression of the body's type, meant to be
/// the whole body of the function or closure it came from (so `return` keeps its meaning).
pub(crate) fn frame_body(block: Block, name: TokenStream2, ret: Option<&Type>) -> TokenStream2 {
    let mut count = Count::default();
    count.visit_block(&block);
    if count.n == 0 {
        let mut block = block;
        Rewrite {
            mode: Mode::Open,
            next: 0,
        }
        .visit_block_mut(&mut block);
        let guard = format_ident!("__gort_guard", span = Span::mixed_site());
        let stmts = &block.stmts;
        return quote! {{
            let #guard = ::gort::__private::FrameGuard::new();
            #(#stmts)*
        }};
    }
    let mode = if count.n <= MAX_OPEN && !count.in_loop {
        Mode::Open
    } else {
        Mode::List
    };
    let mut block = block;
    let mut rw = Rewrite { mode, next: 0 };
    rw.visit_block_mut(&mut block);
    let frame = frame_ident();
    let r = format_ident!("__gort_result", span = Span::mixed_site());
    let zero = format_ident!("__gort_zero", span = Span::mixed_site());
    // The body closure's return type comes from the frame's (`Frame::body`, below); a
    // diverging function's (`-> !`) cannot be written there, so its closure says it.
    let ret_arrow = match ret {
        Some(t @ Type::Never(_)) => quote!(-> #t),
        _ => TokenStream2::new(),
    };
    let p = quote!(::gort::__private);
    // The frame's type fixes the body closure's return type (`Frame::body`), so the body is
    // checked against the declared type as a function body is, and coercions at `return` and
    // at the tail happen (`&self.n` as `&dyn Display`). Elided lifetimes are fine in a `let`
    // type; `impl Trait` and `!` cannot be written there.
    let frame_ty = match ret {
        Some(t) if !has_impl_trait(t) && !matches!(t, Type::Never(_)) => {
            quote!(: #p::Frame<#t>)
        }
        _ => TokenStream2::new(),
    };
    let probe = if ret.is_none() && diverges(&block) {
        quote! { let #zero = #p::unit_zero(); }
    } else {
        quote! {
            let #zero = {
                #[allow(unused_imports)]
                use #p::{ZeroDefault as _, ZeroResult as _, ZeroNone as _};
                (&&#p::ZeroProbe::of(&#r)).zero()
            };
        }
    };
    match mode {
        Mode::Open => {
            let slots: Vec<_> = (0..count.n).map(slot_ident).collect();
            let newest_first = slots.iter().rev();
            quote! {{
                let #frame #frame_ty = #p::Frame::new(#name);
                #( #[allow(unused_mut)] let mut #slots = ::core::option::Option::None; )*
                let #r = #frame.body(|| #ret_arrow #block);
                #probe
                #frame.finish_open(#r, #zero, &mut [
                    #( &mut #newest_first as &mut dyn #p::OpenSlot<_> ),*
                ])
            }}
        }
        Mode::List => quote! {{
            let #frame #frame_ty = #p::Frame::new(#name);
            let #r = #frame.body(|| #ret_arrow #block);
            #probe
            #frame.finish_list(#r, #zero)
        }},
    }
}

/// A closure whose body is a frame: `move |args| -> R { <frame> }`.
pub(crate) fn frame_closure(c: ExprClosure, what: &str) -> syn::Result<TokenStream2> {
    if let Some(a) = &c.asyncness {
        return Err(syn::Error::new(
            a.span(),
            "a frame cannot be async: goroutines block, they are not async",
        ));
    }
    let ExprClosure {
        attrs,
        lifetimes,
        constness,
        movability,
        capture,
        inputs,
        output,
        body,
        ..
    } = c;
    let block: Block = match *body {
        Expr::Block(b) if b.label.is_none() && b.attrs.is_empty() => b.block,
        other => syn::parse_quote!({ #other }),
    };
    let ret = match &output {
        ReturnType::Type(_, t) => Some(&**t),
        ReturnType::Default => None,
    };
    let name = quote!(::core::concat!(#what, " at ", ::core::file!(), ":", ::core::line!()));
    let body = frame_body(block, name, ret);
    let inputs = inputs.iter();
    Ok(quote! {
        #(#attrs)* #lifetimes #constness #movability #capture | #(#inputs),* | #output #body
    })
}

/// The tokens of a `frame! { ... }` block, run now as a frame.
pub(crate) fn frame_block(ts: TokenStream2) -> syn::Result<TokenStream2> {
    let stmts = syn::parse::Parser::parse2(Block::parse_within, ts)?;
    let block = Block {
        brace_token: syn::token::Brace(Span::call_site()),
        stmts,
    };
    let name = quote!(::core::concat!(
        "a frame! block at ",
        ::core::file!(),
        ":",
        ::core::line!()
    ));
    let body = frame_body(block, name, None);
    Ok(quote! { (|| #body)() })
}

/// Whether the tokens are exactly one closure expression.
pub(crate) fn as_closure(ts: &TokenStream2) -> Option<ExprClosure> {
    let first = ts.clone().into_iter().next();
    match first {
        Some(TokenTree::Punct(p)) if p.as_char() == '|' => {}
        Some(TokenTree::Ident(i)) if i == "move" || i == "static" || i == "async" => {}
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::None => {}
        _ => return None,
    }
    syn::parse2::<ExprClosure>(ts.clone()).ok()
}
