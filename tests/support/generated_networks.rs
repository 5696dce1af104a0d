//! Generated `.arch` networks of a chosen size, for the graph layout benchmark (`benches/graph.rs`) and the
//! layout property test (`tests/graph.rs`): a chain of Inception-like modules (four branches and a concat)
//! and residual blocks (an `add` of a three-layer body and an identity), with a training-only side output
//! every fourth module.

/// Nodes `archc graph` draws (not collapsed) for each piece of [`inception_chain`].
pub const INPUT_NODES: usize = 1;
pub const STEM_NODES: usize = 2;
/// Branches of 2, 4, 4 and 3 layers, and the concat.
pub const INCEPTION_NODES: usize = 2 + 4 + 4 + 3 + 1;
/// A body of 3 layers, the identity and the add.
pub const RESIDUAL_NODES: usize = 3 + 1 + 1;
/// flatten and linear.
pub const SIDE_NODES: usize = 2;
/// global_avg_pool, flatten and linear.
pub const HEAD_NODES: usize = 3;

/// A network of at least `nodes` drawn nodes (a few more, to finish the last module), and the exact count.
pub fn inception_chain(nodes: usize) -> (String, usize) {
    let mut source = String::from(
        "block inception(c1, c3r, c3, c5r, c5, pp) {
    concat {
        branch1 = conv2d(c1, 1) -> relu
        branch2 = conv2d(c3r, 1) -> relu -> conv2d(c3, 3, pad = 1) -> relu
        branch3 = conv2d(c5r, 1) -> relu -> conv2d(c5, 5, pad = 2) -> relu
        branch4 = max_pool(3, stride = 1, pad = 1) -> conv2d(pp, 1) -> relu
    }
}

block residual(c) {
    add {
        body = conv2d(c, 3, pad = 1) -> relu -> conv2d(c, 3, pad = 1)
        skip = identity
    }
}

network generated(classes = 10) {
    input [3, 8, 8]
    stem = conv2d(64, 3, pad = 1) -> relu : [64, 8, 8]
",
    );
    let mut count = INPUT_NODES + STEM_NODES + HEAD_NODES;
    let mut module = 0;
    while count < nodes {
        module += 1;
        source.push_str(&format!(
            "    inc{module} = inception(16, 16, 16, 16, 16, 16) : [64, 8, 8]\n"
        ));
        count += INCEPTION_NODES;
        if module % 4 == 0 {
            source.push_str(&format!(
                "    side aux{module} = flatten -> linear(classes) from inc{module} : [classes]\n"
            ));
            count += SIDE_NODES;
        }
        source.push_str(&format!("    res{module} = residual(64) : [64, 8, 8]\n"));
        count += RESIDUAL_NODES;
    }
    source.push_str(
        "    pool = global_avg_pool -> flatten : [64]
    fc = linear(classes) : [classes]
}
",
    );
    (source, count)
}
