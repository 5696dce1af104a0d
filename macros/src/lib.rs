//! `include_arch!`: compiles a `.arch` (or `.yaml`) file into a candle model at build time.
//!
//! A thin shell over the `archc` library: it reads the file named by the string literal (relative to the calling
//! crate's `CARGO_MANIFEST_DIR`), checks it, and returns the generated module. Every failure is a compile error
//! spanned on the literal, carrying `--> FILE:LINE:COL` and the offending source line, since a macro error cannot
//! point into a non-Rust file. The expansion includes the file's bytes so cargo rebuilds when it changes.

use std::path::{Path, PathBuf};

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, LitStr};

/// Expands to one module per network in the file: `Config`, `Model`, `Outputs` and the block structs.
///
/// ```ignore
/// archc_runtime::include_arch!("architectures/googlenet.arch");
/// let model = googlenet::Model::new(vb, &googlenet::Config::default())?;
/// ```
#[proc_macro]
pub fn include_arch(input: TokenStream) -> TokenStream {
    let literal = parse_macro_input!(input as LitStr);
    expand(&literal)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand(literal: &LitStr) -> syn::Result<proc_macro2::TokenStream> {
    let relative = literal.value();
    let error = |message: String| syn::Error::new(literal.span(), message);
    if Path::new(&relative).is_absolute() {
        return Err(error(format!(
            "include_arch! takes a path relative to the crate root (CARGO_MANIFEST_DIR), not `{relative}`"
        )));
    }
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            error("CARGO_MANIFEST_DIR is not set; include_arch! must be expanded by cargo".into())
        })?;
    let path = root.join(&relative);
    let bytes = std::fs::read(&path).map_err(|e| {
        error(format!(
            "cannot read `{relative}` ({}): {e}",
            path.display()
        ))
    })?;
    if bytes.len() > archc::syntax::MAX_SOURCE_BYTES {
        return Err(error(format!(
            "`{relative}` is {} bytes, larger than the {} byte limit",
            bytes.len(),
            archc::syntax::MAX_SOURCE_BYTES
        )));
    }
    let source = String::from_utf8(bytes).map_err(|e| {
        error(format!(
            "`{relative}` is not valid UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let kind = archc::SourceKind::from_path(&relative);
    let tokens =
        archc::codegen::generate_source(kind, &relative, &source).map_err(|diagnostics| {
            let mut errors = diagnostics.iter().filter(|d| d.is_error()).map(|d| {
                // rustc prefixes `error: `; the rendered header would repeat it, so lead with the message.
                let rendered = archc::render::render_compact(&relative, &source, d);
                let details = rendered.split_once('\n').map_or("", |(_, rest)| rest);
                error(format!("{} [{}]\n{details}", d.message, d.code))
            });
            let mut combined = errors
                .next()
                .unwrap_or_else(|| error(format!("`{relative}` has errors")));
            combined.extend(errors);
            combined
        })?;
    let absolute = path.to_string_lossy().into_owned();
    Ok(quote! {
        // Makes cargo rebuild this crate when the architecture file changes.
        const _: &[u8] = include_bytes!(#absolute);
        #tokens
    })
}
