//! Signatures of what a call can name: the built-in layers (from the checker's table) with a one-line
//! description each, and the blocks of a document.

use crate::layers::ArgDefault;

/// A callable's parameters, for hover, completion and signature help.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub name: String,
    /// Each parameter with its default as written, `None` when it is required.
    pub params: Vec<(String, Option<String>)>,
    /// One line for a built-in layer; empty for a block.
    pub description: &'static str,
    pub builtin: bool,
}

impl Signature {
    /// `conv2d(out, kernel, stride = 1, ...)`, and where each parameter sits in it (byte offsets, which are
    /// UTF-16 offsets too: names and defaults are ASCII for built-ins, and identifiers are ASCII in the grammar).
    pub fn label_with_offsets(&self) -> (String, Vec<[u32; 2]>) {
        let mut label = format!("{}(", self.name);
        let mut offsets = Vec::new();
        for (index, (param, default)) in self.params.iter().enumerate() {
            if index > 0 {
                label.push_str(", ");
            }
            let start = label.encode_utf16().count() as u32;
            label.push_str(param);
            if let Some(default) = default {
                label.push_str(" = ");
                label.push_str(default);
            }
            offsets.push([start, label.encode_utf16().count() as u32]);
        }
        label.push(')');
        (label, offsets)
    }

    /// `conv2d(out, kernel, stride = 1, ...)`.
    pub fn label(&self) -> String {
        self.label_with_offsets().0
    }
}

/// The signature of a built-in layer.
pub fn builtin(name: &str) -> Option<Signature> {
    let builtin = crate::layers::builtin(name)?;
    Some(Signature {
        name: builtin.name.to_string(),
        params: builtin
            .params
            .iter()
            .map(|param| {
                let default = match param.default {
                    ArgDefault::Required => None,
                    ArgDefault::Value(value) => Some(value.to_string()),
                    ArgDefault::Kernel => Some("kernel".to_string()),
                };
                (param.name.to_string(), default)
            })
            .collect(),
        description: builtin.summary,
        builtin: true,
    })
}

/// Every built-in layer's signature, in the checker's order.
pub fn builtins() -> impl Iterator<Item = Signature> {
    crate::layers::builtins().filter_map(|b| builtin(b.name))
}

/// A one-line description of a built-in layer (empty for a name that is not one), from its definition.
pub fn description(name: &str) -> &'static str {
    crate::layers::builtin(name).map_or("", |b| b.summary)
}

/// The signature of a block, from its definition; defaults are quoted from `source`.
pub fn block(definition: &crate::ast::Definition, source: &str) -> Signature {
    Signature {
        name: definition.name.name.clone(),
        params: definition
            .params
            .iter()
            .map(|p| {
                (
                    p.name.name.clone(),
                    p.default
                        .as_ref()
                        .map(|e| source.get(e.span.range()).unwrap_or("?").to_string()),
                )
            })
            .collect(),
        description: "",
        builtin: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_layer_has_a_description_and_a_signature() {
        for name in crate::check::builtin_layers() {
            assert!(!description(name).is_empty(), "{name} has no description");
            assert_eq!(builtin(name).map(|s| s.name), Some(name.to_string()));
        }
        assert_eq!(description("inception"), "");
    }

    #[test]
    fn labels_locate_each_parameter() {
        let conv = builtin("conv2d").unwrap();
        let (label, offsets) = conv.label_with_offsets();
        assert!(label.starts_with("conv2d(out, kernel, stride = 1, pad = 0"));
        let [start, end] = offsets[2];
        assert_eq!(&label[start as usize..end as usize], "stride = 1");
        let pool = builtin("max_pool").unwrap();
        assert!(pool.label().contains("stride = kernel"));
    }
}
