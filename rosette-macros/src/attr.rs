//! The attribute front end: `#[pipeline_mod(eal(...))] mod name { port!(...); ring!(...); core!(...); }`
//! lowered to the same IR as the YAML front end, every location a span on the attribute tokens.
//!
//! The pseudo-macros inside the module (`port!`, `ring!`, `core!`) are never expanded by rustc: the
//! attribute consumes them. Their arguments share one small grammar, `key = value` or `key(nested, ...)`,
//! separated by commas; a value is any run of tokens up to the next top-level comma and is interpreted
//! according to its key, so `from = p0.rx[0]` and `from = "p0.rx[0]"` both work.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Item, Lit, Token};

use crate::diag::{Diagnostic, Diagnostics, Loc, Located};
use crate::ir;

/// One `key = value` or `key(...)` argument.
struct Meta {
    key: Ident,
    value: MetaValue,
}

enum MetaValue {
    Tokens(TokenStream),
    Nested(Vec<Meta>),
}

fn parse_metas(input: ParseStream) -> syn::Result<Vec<Meta>> {
    let mut metas = Vec::new();
    while !input.is_empty() {
        let key: Ident = input.parse()?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            let mut tokens = TokenStream::new();
            while !input.is_empty() && !input.peek(Token![,]) {
                tokens.extend([input.parse::<TokenTree>()?]);
            }
            if tokens.is_empty() {
                return Err(syn::Error::new(key.span(), format!("missing value for `{key}`")));
            }
            MetaValue::Tokens(tokens)
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            MetaValue::Nested(parse_metas(&content)?)
        } else {
            return Err(syn::Error::new(key.span(), format!("expected `{key} = value` or `{key}(...)`")));
        };
        metas.push(Meta { key, value });
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(metas)
}

/// The location of a run of tokens: from its first token to its last.
fn range(tokens: impl quote::ToTokens) -> Loc {
    let mut iter = tokens.into_token_stream().into_iter();
    let Some(first) = iter.next() else {
        return Loc::Tokens(Span::call_site());
    };
    match iter.last() {
        Some(last) => Loc::TokenRange(first.span(), last.span()),
        None => Loc::Tokens(first.span()),
    }
}

fn syn_diag(e: syn::Error) -> Diagnostic {
    Diagnostic::new(Loc::Tokens(e.span()), e.to_string())
}

/// The arguments of one declaration, consumed key by key; whatever is left over is an unknown field.
struct Fields {
    what: &'static str,
    span: Span,
    metas: Vec<Meta>,
}

impl Fields {
    fn new(d: &mut Diagnostics, what: &'static str, span: Span, metas: Vec<Meta>, allowed: &[&str]) -> Self {
        let mut seen: Vec<String> = Vec::new();
        for m in &metas {
            let key = m.key.to_string();
            if !allowed.contains(&key.as_str()) {
                d.error(
                    Loc::Tokens(m.key.span()),
                    match crate::diag::did_you_mean(&key, allowed) {
                        hint if hint.is_empty() => {
                            format!("unknown field `{key}` in {what}, expected one of: {}", allowed.join(", "))
                        }
                        hint => {
                            format!("unknown field `{key}` in {what}{hint} expected one of: {}", allowed.join(", "))
                        }
                    },
                );
            } else if seen.contains(&key) && key != "poll" {
                d.error(Loc::Tokens(m.key.span()), format!("duplicate field `{key}` in {what}"));
            }
            seen.push(key);
        }
        Fields { what, span, metas }
    }

    fn take(&mut self, key: &str) -> Option<Meta> {
        let i = self.metas.iter().position(|m| m.key == key)?;
        Some(self.metas.remove(i))
    }

    fn take_all(&mut self, key: &str) -> Vec<Meta> {
        let (taken, rest) = std::mem::take(&mut self.metas).into_iter().partition(|m| m.key == key);
        self.metas = rest;
        taken
    }

    fn required(&mut self, d: &mut Diagnostics, key: &str) -> Option<Meta> {
        let meta = self.take(key);
        if meta.is_none() {
            d.error(Loc::Tokens(self.span), format!("missing field `{key}` in {}", self.what));
        }
        meta
    }
}

fn tokens<'m>(d: &mut Diagnostics, meta: &'m Meta) -> Option<&'m TokenStream> {
    match &meta.value {
        MetaValue::Tokens(t) => Some(t),
        MetaValue::Nested(_) => {
            d.error(Loc::Tokens(meta.key.span()), format!("expected `{} = value`", meta.key));
            None
        }
    }
}

fn nested(d: &mut Diagnostics, meta: Meta) -> Option<Vec<Meta>> {
    match meta.value {
        MetaValue::Nested(m) => Some(m),
        MetaValue::Tokens(_) => {
            d.error(Loc::Tokens(meta.key.span()), format!("expected `{}(...)`", meta.key));
            None
        }
    }
}

fn lit(d: &mut Diagnostics, meta: &Meta, expected: &str) -> Option<Lit> {
    let t = tokens(d, meta)?;
    match syn::parse2::<Lit>(t.clone()) {
        Ok(l) => Some(l),
        Err(_) => {
            d.error(range(t), format!("expected {expected} for `{}`", meta.key));
            None
        }
    }
}

fn int<T>(d: &mut Diagnostics, meta: &Meta) -> Option<Located<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match lit(d, meta, "an integer")? {
        Lit::Int(i) => match i.base10_parse::<T>() {
            Ok(v) => Some(Located::new(v, Loc::Tokens(i.span()))),
            Err(e) => {
                d.error(Loc::Tokens(i.span()), format!("invalid value for `{}`: {e}", meta.key));
                None
            }
        },
        other => {
            d.error(Loc::Tokens(other.span()), format!("expected an integer for `{}`", meta.key));
            None
        }
    }
}

fn string(d: &mut Diagnostics, meta: &Meta) -> Option<Located<String>> {
    match lit(d, meta, "a string")? {
        Lit::Str(s) => Some(Located::new(s.value(), Loc::Tokens(s.span()))),
        other => {
            d.error(Loc::Tokens(other.span()), format!("expected a string for `{}`", meta.key));
            None
        }
    }
}

/// A bare word (`rss = none`) or a string (`rss = "none"`), as YAML would read either.
fn word(d: &mut Diagnostics, meta: &Meta) -> Option<Located<String>> {
    let t = tokens(d, meta)?;
    if let Ok(ident) = syn::parse2::<Ident>(t.clone()) {
        return Some(Located::new(ident.to_string(), Loc::Tokens(ident.span())));
    }
    string(d, meta)
}

fn boolean(d: &mut Diagnostics, meta: &Meta) -> Option<Located<bool>> {
    match lit(d, meta, "`true` or `false`")? {
        Lit::Bool(b) => Some(Located::new(b.value, Loc::Tokens(b.span()))),
        other => {
            d.error(Loc::Tokens(other.span()), format!("expected `true` or `false` for `{}`", meta.key));
            None
        }
    }
}

/// Parses `[a, b, ...]` into its elements.
fn bracketed<T: syn::parse::Parse>(d: &mut Diagnostics, meta: &Meta) -> Option<Vec<T>> {
    let t = tokens(d, meta)?;
    let parser = |input: ParseStream| {
        let content;
        syn::bracketed!(content in input);
        let items = content.parse_terminated(T::parse, Token![,])?;
        Ok(items.into_iter().collect::<Vec<T>>())
    };
    match parser.parse2(t.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(Loc::Tokens(e.span()), format!("expected a `[...]` list for `{}`: {e}", meta.key));
            None
        }
    }
}

/// Tokens as the text a YAML user would write: `p0 . rx [0]` becomes `p0.rx[0]`.
fn compact(tokens: &TokenStream) -> String {
    tokens.to_string().chars().filter(|c| !c.is_whitespace()).collect()
}

/// Lowers `#[pipeline_mod(args)] mod name { ... }`. Returns the IR and the module items that are not
/// pipeline declarations (they are kept in the expansion).
pub fn parse(args: TokenStream, item: TokenStream) -> Result<(ir::Pipeline, syn::ItemMod), Vec<Diagnostic>> {
    let mut module: syn::ItemMod = syn::parse2(item).map_err(|e| vec![syn_diag(e)])?;
    let Some((_, items)) = module.content.take() else {
        return Err(vec![Diagnostic::new(
            Loc::Tokens(module.ident.span()),
            "the pipeline module must be inline: `mod name { ... }`",
        )]);
    };
    let arg_span = args.span();
    let args = parse_metas.parse2(args).map_err(|e| vec![syn_diag(e)])?;
    let mut d = Diagnostics::new();

    let mut fields = Fields::new(&mut d, "the pipeline attribute", arg_span, args, &["eal"]);
    let eal = fields
        .required(&mut d, "eal")
        .and_then(|m| {
            let span = m.key.span();
            nested(&mut d, m).map(|metas| (span, metas))
        })
        .and_then(|(span, metas)| lower_eal(&mut d, span, metas));

    let mut ports = Vec::new();
    let mut rings = Vec::new();
    let mut cores = Vec::new();
    let mut kept = Vec::new();
    for item in items {
        let Item::Macro(mac) = &item else {
            kept.push(item);
            continue;
        };
        let Some(kind) = mac.mac.path.get_ident().map(Ident::to_string) else {
            kept.push(item);
            continue;
        };
        let span = mac.mac.path.span();
        let tokens = mac.mac.tokens.clone();
        match kind.as_str() {
            "port" | "ring" => {
                let parsed = (|input: ParseStream| {
                    let name: Ident = input.parse()?;
                    if !input.is_empty() {
                        input.parse::<Token![,]>()?;
                    }
                    Ok((name, parse_metas(input)?))
                })
                .parse2(tokens);
                match parsed {
                    Err(e) => d.push(syn_diag(e)),
                    Ok((name, metas)) if kind == "port" => {
                        if let Some(p) = lower_port(&mut d, span, name, metas) {
                            ports.push(p);
                        }
                    }
                    Ok((name, metas)) => {
                        if let Some(r) = lower_ring(&mut d, span, name, metas) {
                            rings.push(r);
                        }
                    }
                }
            }
            "core" => match parse_metas.parse2(tokens) {
                Err(e) => d.push(syn_diag(e)),
                Ok(metas) => {
                    if let Some(c) = lower_core(&mut d, span, metas) {
                        cores.push(c);
                    }
                }
            },
            _ => kept.push(item),
        }
    }
    module.content = Some((Default::default(), kept));

    let name = Located::new(module.ident.to_string(), Loc::Tokens(module.ident.span()));
    match eal {
        Some(eal) if d.is_empty() => Ok((ir::Pipeline { name, eal, ports, rings, cores }, module)),
        _ => Err(d.finish(()).err().unwrap_or_default()),
    }
}

fn lower_eal(d: &mut Diagnostics, span: Span, metas: Vec<Meta>) -> Option<ir::Eal> {
    let allowed = ["memory", "memory_mb", "lcores", "main_lcore", "file_prefix", "extra_args"];
    let mut f = Fields::new(d, "`eal`", span, metas, &allowed);
    let memory = match f.take("memory") {
        None => Located::new(ir::MemoryMode::Auto, Loc::Tokens(span)),
        Some(m) => {
            // On error keep going with the default so the other `eal` fields are still checked.
            match string(d, &m) {
                None => Located::new(ir::MemoryMode::Auto, Loc::Tokens(span)),
                Some(s) => {
                    let mode = ir::MemoryMode::parse(&s.value).unwrap_or_else(|| {
                        d.error(
                            s.loc,
                            format!("unknown memory mode `{}`, expected `auto`, `hugepages` or `no-huge`", s.value),
                        );
                        ir::MemoryMode::Auto
                    });
                    Located::new(mode, s.loc)
                }
            }
        }
    };
    let lcores = {
        let meta = f.required(d, "lcores")?;
        lcores(d, &meta)?
    };
    Some(ir::Eal {
        memory,
        memory_mb: f.take("memory_mb").and_then(|m| int(d, &m)),
        lcores,
        main_lcore: f.take("main_lcore").and_then(|m| int(d, &m)),
        file_prefix: f.take("file_prefix").and_then(|m| string(d, &m)),
        extra_args: f
            .take("extra_args")
            .and_then(|m| bracketed::<syn::LitStr>(d, &m))
            .unwrap_or_default()
            .into_iter()
            .map(|s| Located::new(s.value(), Loc::Tokens(s.span())))
            .collect(),
    })
}

fn lcores(d: &mut Diagnostics, meta: &Meta) -> Option<Located<Vec<u32>>> {
    let t = tokens(d, meta)?;
    let loc = range(t);
    if let Ok(list) = syn::parse2::<syn::LitStr>(t.clone()) {
        return match ir::parse_lcore_list(&list.value()) {
            Ok(v) => Some(Located::new(v, loc)),
            Err(e) => {
                d.error(loc, e);
                None
            }
        };
    }
    if syn::parse2::<syn::LitInt>(t.clone()).is_ok() {
        return int(d, meta).map(|v: Located<u32>| Located::new(vec![v.value], loc));
    }
    let ints = bracketed::<syn::LitInt>(d, meta)?;
    let mut out = Vec::new();
    for i in ints {
        match i.base10_parse::<u32>() {
            Ok(v) => out.push(v),
            Err(e) => d.error(Loc::Tokens(i.span()), format!("invalid lcore: {e}")),
        }
    }
    Some(Located::new(out, loc))
}

fn lower_port(d: &mut Diagnostics, span: Span, name: Ident, metas: Vec<Meta>) -> Option<ir::Port> {
    let allowed =
        ["device", "rx_queues", "tx_queues", "rx_descriptors", "tx_descriptors", "mempool", "shared_tx", "rss"];
    let mut f = Fields::new(d, "`port!`", span, metas, &allowed);
    let at = Loc::Tokens(name.span());
    let mut count =
        |f: &mut Fields, key, default| f.take(key).and_then(|m| int(d, &m)).unwrap_or(Located::new(default, at));
    let rx_queues = count(&mut f, "rx_queues", ir::DEFAULT_QUEUES);
    let tx_queues = count(&mut f, "tx_queues", ir::DEFAULT_QUEUES);
    let rx_descriptors = count(&mut f, "rx_descriptors", ir::DEFAULT_DESCRIPTORS);
    let tx_descriptors = count(&mut f, "tx_descriptors", ir::DEFAULT_DESCRIPTORS);
    let mut mempool = ir::Mempool {
        size: Located::new(ir::DEFAULT_MEMPOOL_SIZE, at),
        cache: Located::new(ir::DEFAULT_MEMPOOL_CACHE, at),
    };
    if let Some(m) = f.take("mempool") {
        let mspan = m.key.span();
        if let Some(metas) = nested(d, m) {
            let mut mf = Fields::new(d, "`mempool`", mspan, metas, &["size", "cache"]);
            if let Some(v) = mf.take("size").and_then(|m| int(d, &m)) {
                mempool.size = v;
            }
            if let Some(v) = mf.take("cache").and_then(|m| int(d, &m)) {
                mempool.cache = v;
            }
        }
    }
    let shared_tx = f.take("shared_tx").and_then(|m| boolean(d, &m)).unwrap_or(Located::new(false, at));
    let rss = match f.take("rss").and_then(|m| word(d, &m)) {
        None => Located::new(ir::RssMode::Udp, at),
        Some(w) => {
            let mode = ir::RssMode::parse(&w.value).unwrap_or_else(|| {
                d.error(w.loc, ir::RssMode::unknown(&w.value));
                ir::RssMode::Udp
            });
            Located::new(mode, w.loc)
        }
    };
    let device = {
        let meta = f.required(d, "device")?;
        string(d, &meta)?
    };
    Some(ir::Port {
        name: Located::new(name.to_string(), at),
        device,
        rx_queues,
        tx_queues,
        rx_descriptors,
        tx_descriptors,
        mempool,
        shared_tx,
        rss,
    })
}

fn lower_ring(d: &mut Diagnostics, span: Span, name: Ident, metas: Vec<Meta>) -> Option<ir::Ring> {
    let mut f = Fields::new(d, "`ring!`", span, metas, &["size"]);
    let size = {
        let meta = f.required(d, "size")?;
        int(d, &meta)?
    };
    Some(ir::Ring { name: Located::new(name.to_string(), Loc::Tokens(name.span())), size })
}

fn lower_core(d: &mut Diagnostics, span: Span, metas: Vec<Meta>) -> Option<ir::Core> {
    let mut f = Fields::new(d, "`core!`", span, metas, &["lcore", "burst", "poll"]);
    let polls = f.take_all("poll").into_iter().filter_map(|m| lower_poll(d, m)).collect();
    let burst = f.take("burst").and_then(|m| int(d, &m));
    let lcore = {
        let meta = f.required(d, "lcore")?;
        int(d, &meta)?
    };
    Some(ir::Core { burst: burst.unwrap_or(Located::new(ir::DEFAULT_BURST, lcore.loc)), lcore, polls })
}

fn lower_poll(d: &mut Diagnostics, meta: Meta) -> Option<ir::Poll> {
    let span = meta.key.span();
    let metas = nested(d, meta)?;
    let mut f = Fields::new(d, "`poll`", span, metas, &["from", "stages", "to"]);
    let endpoint = |d: &mut Diagnostics, m: &Meta| -> Option<(String, Loc)> {
        let t = tokens(d, m)?;
        let text = match syn::parse2::<syn::LitStr>(t.clone()) {
            Ok(s) => s.value(),
            Err(_) => compact(t),
        };
        Some((text, range(t)))
    };
    let from = f.required(d, "from").and_then(|m| endpoint(d, &m)).and_then(|(text, loc)| {
        ir::parse_source(&text).map_err(|e| d.error(loc, e)).ok().map(|s| Located::new(s, loc))
    });
    let to = match f.take("to") {
        None => Some(Located::new(ir::Sink::Drop, Loc::Tokens(span))),
        Some(m) => endpoint(d, &m).and_then(|(text, loc)| {
            ir::parse_sink(&text).map_err(|e| d.error(loc, e)).ok().map(|s| Located::new(s, loc))
        }),
    };
    let stages = f
        .take("stages")
        .and_then(|m| bracketed::<StageItem>(d, &m))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| lower_stage(d, e.0))
        .collect();
    Some(ir::Poll { from: from?, stages, to: to? })
}

/// One element of `stages = [...]`: a stage path with optional params, generics in type form as YAML
/// spells them (`a::B<u8>`, `a::B<u8, C> { x: 1 }`; not an expression: `a::B < u8 >` would chain
/// comparisons) or in expression form (`a::B::<u8>`). Anything else is read as an expression, for
/// `lower_stage` to reject with its own message.
struct StageItem(Expr);

/// `path` or `path { field: value, .. }`, the path parsed in type position.
fn stage_in_type_form(input: ParseStream) -> syn::Result<Expr> {
    let path: syn::Path = input.parse()?;
    if !input.peek(syn::token::Brace) {
        return Ok(Expr::Path(syn::ExprPath { attrs: Vec::new(), qself: None, path }));
    }
    let content;
    let brace_token = syn::braced!(content in input);
    let fields = content.parse_terminated(<syn::FieldValue as syn::parse::Parse>::parse, Token![,])?;
    Ok(Expr::Struct(syn::ExprStruct {
        attrs: Vec::new(),
        qself: None,
        path,
        brace_token,
        fields,
        dot2_token: None,
        rest: None,
    }))
}

impl syn::parse::Parse for StageItem {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        use syn::parse::discouraged::Speculative;
        let fork = input.fork();
        if let Ok(expr) = stage_in_type_form(&fork) {
            if fork.is_empty() || fork.peek(Token![,]) {
                input.advance_to(&fork);
                return Ok(StageItem(expr));
            }
        }
        input.parse().map(StageItem)
    }
}

/// A stage is a path (`a::B`) or a struct expression whose fields are literals (`a::B { x: 1 }`).
fn lower_stage(d: &mut Diagnostics, expr: Expr) -> Option<ir::Stage> {
    let (path, fields) = match expr {
        Expr::Path(p) if p.qself.is_none() => (p.path, Vec::new()),
        Expr::Struct(s) if s.qself.is_none() => {
            if let Some(dots) = s.dot2_token {
                d.error(Loc::Tokens(dots.span()), "`..` is implied: unlisted params take their defaults");
            }
            (s.path, s.fields.into_iter().collect())
        }
        other => {
            d.error(
                range(&other),
                "expected a stage type path (`crate::Stage`, `crate::Chan<u8>`) or a struct expression \
                 (`crate::Stage { field: 1 }`)",
            );
            return None;
        }
    };
    // Either spelling of generics (`a::B::<T>`, `a::B<T>`) is stored in the type form YAML uses, `a::B<T>`.
    let ty = compact(&quote::quote!(#path)).replace("::<", "<");
    let ty = Located::new(ty, range(&path));
    let params = fields
        .into_iter()
        .filter_map(|fv| {
            let name = match &fv.member {
                syn::Member::Named(i) => Located::new(i.to_string(), Loc::Tokens(i.span())),
                syn::Member::Unnamed(i) => {
                    d.error(Loc::Tokens(i.span), "stage parameters must be named fields");
                    return None;
                }
            };
            let value = param_value(d, &fv.expr)?;
            Some(ir::Param { name, value })
        })
        .collect();
    Some(ir::Stage { ty, params })
}

/// Unit suffixes that make an integer literal a duration (`200us` is the string `"200us"`).
const DURATION_SUFFIXES: &[&str] = &["ns", "us", "ms", "s"];

fn param_value(d: &mut Diagnostics, expr: &Expr) -> Option<Located<ir::ParamValue>> {
    let loc = range(expr);
    // A bare word is a string (`role: listen`, `epoch: time`), as in YAML.
    if let Expr::Path(p) = expr {
        if let Some(word) = p.path.get_ident().filter(|_| p.qself.is_none()) {
            return Some(Located::new(ir::ParamValue::Str(word.to_string()), loc));
        }
    }
    let (negative, lit) = match expr {
        Expr::Lit(l) => (false, &l.lit),
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => match &**expr {
            Expr::Lit(l) => (true, &l.lit),
            _ => (false, &Lit::Verbatim(proc_macro2::Literal::u8_suffixed(0))),
        },
        _ => (false, &Lit::Verbatim(proc_macro2::Literal::u8_suffixed(0))),
    };
    let value = match lit {
        Lit::Int(i) if !negative && DURATION_SUFFIXES.contains(&i.suffix()) => {
            Some(ir::ParamValue::Str(format!("{}{}", i.base10_digits(), i.suffix())))
        }
        Lit::Int(i) => i.base10_parse::<i128>().ok().map(|v| ir::ParamValue::Int(if negative { -v } else { v })),
        Lit::Float(x) => x.base10_parse::<f64>().ok().map(|v| ir::ParamValue::Float(if negative { -v } else { v })),
        Lit::Bool(b) if !negative => Some(ir::ParamValue::Bool(b.value)),
        Lit::Str(s) if !negative => Some(ir::ParamValue::Str(s.value())),
        _ => None,
    };
    if value.is_none() {
        d.error(loc, "a stage parameter must be an integer, float, boolean, string literal or a bare word");
    }
    value.map(|v| Located::new(v, loc))
}
