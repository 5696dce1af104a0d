//! A generated `.arch` network of many statements, for the benches that time checking a large file
//! (`benches/check.rs`, `benches/lsp.rs`).

/// A network of `layers` conv -> batch_norm -> relu rows, halving the map with a pool every 500 rows, each row
/// with its declared size.
pub fn deep_file(layers: usize) -> String {
    let mut source = String::from("network deep(width = 16) {\n    input [3, 64, 64]\n");
    let mut size = 64;
    for i in 0..layers {
        if i % 500 == 499 && size > 4 {
            size /= 2;
            source.push_str(&format!(
                "    pool{i} = max_pool(2, stride = 2) : [width, {size}, {size}]\n"
            ));
        } else {
            source.push_str(&format!(
                "    layer{i} = conv2d(width, 3, pad = 1, bias = false) -> batch_norm -> relu : [width, {size}, {size}]\n"
            ));
        }
    }
    source.push_str("}\n");
    source
}
