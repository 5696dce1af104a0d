//! A generated struct's constructor (`fn new`): its fields' values and statements in order, written the way a
//! person would — `Ok(Self { conv: …, bn: … })` when every field is one expression, a `let` per field before
//! `Ok(Self { conv, bn })` when statements (a loop, a channel check) come between them, and a layer
//! configuration written more than once named once (`let max_pool2d_config = nn::MaxPool2dConfig { … };`).

use std::collections::{HashMap, HashSet};

use proc_macro2::{Delimiter, Group, Ident, Spacing, TokenStream, TokenTree};
use quote::{format_ident, quote};

/// One step of a constructor.
pub(super) enum Ctor {
    /// A field and the expression that builds it (it may use `?`).
    Field(Ident, TokenStream),
    /// A statement: a loop filling a field, a check, a local.
    Statement(TokenStream),
}

/// Every step's tokens, for asking which names the constructor reads.
pub(super) fn tokens(steps: &[Ctor]) -> Vec<TokenStream> {
    steps
        .iter()
        .map(|step| match step {
            Ctor::Field(field, value) => quote!(let #field = #value;),
            Ctor::Statement(statement) => statement.clone(),
        })
        .collect()
}

/// The constructor's body: the steps, then `Ok(Self { … })` with `fields` (in declaration order) and `extra`
/// (`plan: nn::Plan::default()`, or nothing). `indent` is the column its statements start at once formatted.
pub(super) fn body(
    steps: Vec<Ctor>,
    fields: &[Ident],
    extra: TokenStream,
    indent: usize,
) -> TokenStream {
    let (configs, steps) = name_repeated_configs(steps);
    if fields.is_empty() && extra.is_empty() {
        let steps = tokens(&steps);
        return quote!(#(#configs)* #(#steps)* Ok(Self));
    }
    // In the struct literal a field's value is indented four columns more than the `let` of a constructor
    // statement; one that rustfmt would break over lines there only (not one with a configuration literal,
    // which it lays out a field per line anyway) reads better as a `let`.
    let fits = |field: &Ident, value: &TokenStream| {
        indent
            + "    ".len()
            + field.to_string().len()
            + ": ".len()
            + compact_width(value)
            + ",".len()
            <= MAX_WIDTH
            || has_config(value)
    };
    // A value that reads an earlier field (`stage.out_channels`, a block's channels counted as it was built)
    // needs that field as a local.
    let field_names: HashSet<String> = fields.iter().map(Ident::to_string).collect();
    let reads_a_field = steps.iter().any(|step| match step {
        Ctor::Field(_, value) => reads_field_of(value, &field_names),
        Ctor::Statement(_) => false,
    });
    if !reads_a_field
        && steps
            .iter()
            .all(|step| matches!(step, Ctor::Field(field, value) if fits(field, value)))
    {
        let inits = steps.iter().map(|step| match step {
            Ctor::Field(field, value) => quote!(#field: #value),
            Ctor::Statement(_) => unreachable!("only fields"),
        });
        return quote!(#(#configs)* Ok(Self { #(#inits,)* #extra }));
    }
    let steps = tokens(&steps);
    quote!(#(#configs)* #(#steps)* Ok(Self { #(#fields,)* #extra }))
}

/// Whether `stream` reads a member of one of `fields` (`stage.out_channels`): one of the names followed by `.`.
fn reads_field_of(stream: &TokenStream, fields: &HashSet<String>) -> bool {
    let trees: Vec<TokenTree> = stream.clone().into_iter().collect();
    trees.iter().enumerate().any(|(i, tree)| match tree {
        TokenTree::Ident(ident) => {
            fields.contains(&ident.to_string())
                && matches!(trees.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '.')
        }
        TokenTree::Group(group) => reads_field_of(&group.stream(), fields),
        _ => false,
    })
}

/// rustfmt's default line width.
const MAX_WIDTH: usize = 100;

/// About how wide `tokens` are when written on one line the way rustfmt writes them: `proc_macro2` puts a space
/// between every two tokens, rustfmt none around `.`, `::`, `?` and inside brackets, one after a comma.
fn compact_width(tokens: &TokenStream) -> usize {
    let text = tokens.to_string();
    let mut width = 0;
    let mut previous = ' ';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied().unwrap_or(' ');
        let glue = matches!(previous, '.' | ':' | '(' | '[' | '&' | '!')
            || matches!(next, '.' | ':' | '?' | ')' | ']' | ',' | '(' | '[' | '!');
        if c == ' ' && glue {
            continue;
        }
        width += 1;
        previous = c;
    }
    width
}

/// Configuration literals written by two or more fields, each bound once at the start (`let` statements) and
/// the fields' values reading that binding. A literal that reads a local of the constructor stays where it is,
/// since the binding comes before the local.
fn name_repeated_configs(steps: Vec<Ctor>) -> (Vec<TokenStream>, Vec<Ctor>) {
    let locals = declared_locals(&steps);
    let mut counts: HashMap<String, (usize, TokenStream, String)> = HashMap::new();
    let mut order = Vec::new();
    for step in &steps {
        if let Ctor::Field(_, value) = step {
            for_each_config(value.clone(), &mut |literal, ty| {
                if mentions_any(&literal, &locals) {
                    return;
                }
                let key = literal.to_string();
                let entry = counts.entry(key.clone()).or_insert_with(|| {
                    order.push(key);
                    (0, literal, ty)
                });
                entry.0 += 1;
            });
        }
    }
    let mut taken = locals;
    let mut names: HashMap<String, Ident> = HashMap::new();
    let mut lets = Vec::new();
    for key in order {
        let (count, literal, ty) = &counts[&key];
        if *count < 2 {
            continue;
        }
        let base = format!("{}_config", snake_case(ty.trim_end_matches("Config")));
        let mut name = base.clone();
        let mut n = 1;
        while !taken.insert(name.clone()) {
            n += 1;
            name = format!("{base}_{n}");
        }
        let ident = format_ident!("{name}");
        lets.push(quote!(let #ident = #literal;));
        names.insert(key, ident);
    }
    if names.is_empty() {
        return (lets, steps);
    }
    let steps = steps
        .into_iter()
        .map(|step| match step {
            Ctor::Field(field, value) => Ctor::Field(field, replace_configs(value, &names)),
            statement => statement,
        })
        .collect();
    (lets, steps)
}

/// The names the constructor binds: its fields (as `let`s, when it has statements) and every `let` in its
/// statements.
fn declared_locals(steps: &[Ctor]) -> HashSet<String> {
    fn lets(stream: TokenStream, found: &mut HashSet<String>) {
        let trees: Vec<TokenTree> = stream.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Ident(ident) if ident == "let" => {
                    let name = match trees.get(i + 1) {
                        Some(TokenTree::Ident(next)) if next == "mut" => trees.get(i + 2),
                        next => next,
                    };
                    if let Some(TokenTree::Ident(name)) = name {
                        found.insert(name.to_string());
                    }
                }
                TokenTree::Group(group) => lets(group.stream(), found),
                _ => {}
            }
        }
    }
    let mut found = HashSet::new();
    for step in steps {
        match step {
            Ctor::Field(field, _) => {
                found.insert(field.to_string());
            }
            Ctor::Statement(statement) => lets(statement.clone(), &mut found),
        }
    }
    found
}

fn mentions_any(stream: &TokenStream, names: &HashSet<String>) -> bool {
    stream.clone().into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => names.contains(&ident.to_string()),
        TokenTree::Group(group) => mentions_any(&group.stream(), names),
        _ => false,
    })
}

/// The length of a configuration literal starting at `trees[i]` (`nn :: NameConfig { … }`, five trees), and
/// its type name.
fn config_at(trees: &[TokenTree], i: usize) -> Option<String> {
    match trees.get(i..i + 5)? {
        [TokenTree::Ident(nn), TokenTree::Punct(a), TokenTree::Punct(b), TokenTree::Ident(ty), TokenTree::Group(fields)]
            if nn == "nn"
                && a.as_char() == ':'
                && a.spacing() == Spacing::Joint
                && b.as_char() == ':'
                && ty.to_string().ends_with("Config")
                && fields.delimiter() == Delimiter::Brace =>
        {
            Some(ty.to_string())
        }
        _ => None,
    }
}

/// Calls `found` with each configuration literal in `stream` and its type name.
fn for_each_config(stream: TokenStream, found: &mut impl FnMut(TokenStream, String)) {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    let mut i = 0;
    while i < trees.len() {
        if let Some(ty) = config_at(&trees, i) {
            found(trees[i..i + 5].iter().cloned().collect(), ty);
            i += 5;
            continue;
        }
        if let TokenTree::Group(group) = &trees[i] {
            for_each_config(group.stream(), found);
        }
        i += 1;
    }
}

/// Whether `stream` holds a configuration literal.
fn has_config(stream: &TokenStream) -> bool {
    let mut found = false;
    for_each_config(stream.clone(), &mut |_, _| found = true);
    found
}

/// `stream` with each configuration literal that `names` binds replaced by its name.
fn replace_configs(stream: TokenStream, names: &HashMap<String, Ident>) -> TokenStream {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        if config_at(&trees, i).is_some() {
            let literal: TokenStream = trees[i..i + 5].iter().cloned().collect();
            if let Some(name) = names.get(&literal.to_string()) {
                out.push(TokenTree::Ident(name.clone()));
                i += 5;
                continue;
            }
        }
        out.push(match &trees[i] {
            TokenTree::Group(group) => {
                let mut inner =
                    Group::new(group.delimiter(), replace_configs(group.stream(), names));
                inner.set_span(group.span());
                TokenTree::Group(inner)
            }
            tree => tree.clone(),
        });
        i += 1;
    }
    out.into_iter().collect()
}

/// `MaxPool2d` → `max_pool2d`.
fn snake_case(camel: &str) -> String {
    let mut snake = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, value: TokenStream) -> Ctor {
        Ctor::Field(format_ident!("{name}"), value)
    }

    #[test]
    fn fields_alone_are_built_in_the_struct_literal() {
        let steps = vec![field("conv", quote!(conv()?)), field("bn", quote!(bn()?))];
        let fields = [format_ident!("conv"), format_ident!("bn")];
        assert_eq!(
            body(steps, &fields, quote!(), 8).to_string(),
            quote!(Ok(Self {
                conv: conv()?,
                bn: bn()?,
            }))
            .to_string()
        );
    }

    #[test]
    fn a_statement_turns_fields_into_lets() {
        let steps = vec![
            field("conv", quote!(conv()?)),
            Ctor::Statement(quote!(check(conv)?;)),
        ];
        let fields = [format_ident!("conv")];
        assert_eq!(
            body(steps, &fields, quote!(plan: nn::Plan::default()), 8).to_string(),
            quote!(let conv = conv()?; check(conv)?; Ok(Self { conv, plan: nn::Plan::default() }))
                .to_string()
        );
    }

    #[test]
    fn widths_are_measured_as_rustfmt_writes_them() {
        let call = quote!(Inception::new(
            vb.pp("inception4e"),
            528,
            256,
            160,
            320,
            32,
            128,
            128
        )?);
        assert_eq!(
            compact_width(&call),
            r#"Inception::new(vb.pp("inception4e"), 528, 256, 160, 320, 32, 128, 128)?"#.len()
        );
    }

    #[test]
    fn a_value_reading_an_earlier_field_keeps_the_lets() {
        let steps = vec![
            field("stage", quote!(Grow::new(vb.pp("stage"), 3)?)),
            field("b", quote!(Double::new(vb.pp("b"), stage.out_channels)?)),
        ];
        let fields = [format_ident!("stage"), format_ident!("b")];
        let want = quote! {
            let stage = Grow::new(vb.pp("stage"), 3)?;
            let b = Double::new(vb.pp("b"), stage.out_channels)?;
            Ok(Self { stage, b, })
        };
        assert_eq!(
            body(steps, &fields, quote!(), 8).to_string(),
            want.to_string()
        );
    }

    #[test]
    fn a_configuration_written_twice_is_named_once() {
        let config = quote!(nn::MaxPool2dConfig {
            ceil_mode: true,
            ..Default::default()
        });
        let steps = vec![
            field(
                "pool1",
                quote!(nn::max_pool2d((3, 3), #config).at(SOURCE, 1)?),
            ),
            field(
                "pool2",
                quote!(nn::max_pool2d((2, 2), #config).at(SOURCE, 2)?),
            ),
            field(
                "pool3",
                quote!(nn::max_pool2d((2, 2), nn::MaxPool2dConfig::default())?),
            ),
        ];
        let fields = [
            format_ident!("pool1"),
            format_ident!("pool2"),
            format_ident!("pool3"),
        ];
        let want = quote! {
            let max_pool2d_config = #config;
            Ok(Self {
                pool1: nn::max_pool2d((3, 3), max_pool2d_config).at(SOURCE, 1)?,
                pool2: nn::max_pool2d((2, 2), max_pool2d_config).at(SOURCE, 2)?,
                pool3: nn::max_pool2d((2, 2), nn::MaxPool2dConfig::default())?,
            })
        };
        assert_eq!(
            body(steps, &fields, quote!(), 8).to_string(),
            want.to_string()
        );
    }

    #[test]
    fn a_configuration_reading_a_local_stays_in_place() {
        let config = quote!(nn::Conv2dConfig {
            groups: hidden,
            ..Default::default()
        });
        let steps = vec![
            Ctor::Statement(quote!(let hidden = 2 * in_channels;)),
            field("a", quote!(nn::conv2d(#config)?)),
            field("b", quote!(nn::conv2d(#config)?)),
        ];
        let fields = [format_ident!("a"), format_ident!("b")];
        let got = body(steps, &fields, quote!(), 8).to_string();
        assert!(!got.contains("conv2d_config"), "{got}");
    }
}
