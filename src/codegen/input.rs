//! The generated model's input check: which input shapes it accepts, from the checker's input-size scan
//! ([`crate::check::input_size`]), and why it refuses the others.

use proc_macro2::TokenStream;
use quote::quote;

use crate::check::input_size::{input_sizes, InputSizes, Limit, Limits, SizeRange};
use crate::ir::Network;

/// What the network module says about its input.
pub(super) struct InputCheck {
    /// Constants for the module (`INPUT_SIZES`), if any.
    pub items: TokenStream,
    /// The statement that checks `xs` at the start of `forward_t`.
    pub check: TokenStream,
    /// The sizes that run, for the module's documentation: ` (smallest valid: 15×15; any larger size runs)`.
    pub doc: String,
}

pub(super) fn input_check(network: &Network) -> InputCheck {
    let Some(sizes) = input_sizes(network) else {
        // A flat input has no height or width: the declared shape is the only one.
        return InputCheck {
            items: quote!(),
            check: quote!(nn::check_input(xs, INPUT_SHAPE, SOURCE)?;),
            doc: String::new(),
        };
    };
    let InputSizes {
        height,
        width,
        below,
        above,
        ..
    } = &sizes;
    let name = &network.name;
    let channels = usize_tokens(network.input.channels());
    let (height, width) = (range_tokens(*height), range_tokens(*width));
    let (too_small, too_large) = (limits_tokens(below), limits_tokens(above));
    let doc = " The input heights and widths the model runs at, and why others do not: the first layer each \
               breaks, as `archc` found it for the default `Config`.";
    InputCheck {
        items: quote! {
            #[doc = #doc]
            pub const INPUT_SIZES: nn::InputSizes = nn::InputSizes {
                network: #name,
                channels: #channels,
                height: #height,
                width: #width,
                too_small: #too_small,
                too_large: #too_large,
            };
        },
        check: quote!(nn::check_input_sizes(xs, &INPUT_SIZES, SOURCE)?;),
        doc: format!(" ({})", sizes.describe()),
    }
}

fn usize_tokens(value: u64) -> TokenStream {
    let literal = proc_macro2::Literal::u64_unsuffixed(value);
    quote!(#literal)
}

fn range_tokens(range: SizeRange) -> TokenStream {
    let min = usize_tokens(range.min);
    match range.max {
        Some(max) => {
            let max = usize_tokens(max);
            quote!(nn::SizeRange::between(#min, #max))
        }
        None => quote!(nn::SizeRange::at_least(#min)),
    }
}

fn limits_tokens(limits: &Limits) -> TokenStream {
    if *limits == Limits::default() {
        return quote!(nn::SizeLimits::NONE);
    }
    let text = |limit: &Option<Limit>| limit.as_ref().map_or_else(String::new, Limit::to_string);
    let (height, width, both) = (
        text(&limits.height),
        text(&limits.width),
        text(&limits.both),
    );
    quote!(nn::SizeLimits { height: #height, width: #width, both: #both })
}
