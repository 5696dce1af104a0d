//! Parameter counts, MACs and output shapes of the shipped architectures, checked against figures that do not
//! come from archc: torchvision's published numbers, the GoogLeNet paper's Table 1, and arithmetic written out
//! here from the layer definitions.

use archc::ir::{Network, Shape};
use archc::summary::summarize;
use archc::SourceKind;

fn network(file: &str) -> Network {
    let path = format!("{}/architectures/{file}", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let checked = archc::compile(SourceKind::Arch, &source);
    assert!(
        !checked.has_errors(),
        "{file} does not check:\n{}",
        archc::render::render(file, &source, &checked.diagnostics, false)
    );
    assert_eq!(checked.networks.len(), 1, "{file} defines one network");
    checked.networks.into_iter().next().unwrap()
}

/// Parameters and MACs of one convolution, written out: `cin·cout·k²` weights, plus a bias (`cout`) or batch
/// norm's scale and shift (`2·cout`); every weight is used once per output pixel.
fn conv(cin: u64, cout: u64, k: u64, out_hw: u64, extra_per_channel: u64) -> (u64, u64) {
    let weights = cin * cout * k * k;
    (
        weights + extra_per_channel * cout,
        weights * out_hw * out_hw,
    )
}

fn add(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0 + b.0, a.1 + b.1)
}

/// GoogLeNet's Table 1 rows for the nine Inception modules: name, input channels, spatial size, and the
/// columns #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj.
const INCEPTION_ROWS: [(&str, u64, u64, [u64; 6]); 9] = [
    ("inception3a", 192, 28, [64, 96, 128, 16, 32, 32]),
    ("inception3b", 256, 28, [128, 128, 192, 32, 96, 64]),
    ("inception4a", 480, 14, [192, 96, 208, 16, 48, 64]),
    ("inception4b", 512, 14, [160, 112, 224, 24, 64, 64]),
    ("inception4c", 512, 14, [128, 128, 256, 24, 64, 64]),
    ("inception4d", 512, 14, [112, 144, 288, 32, 64, 64]),
    ("inception4e", 528, 14, [256, 160, 320, 32, 128, 128]),
    ("inception5a", 832, 7, [256, 160, 320, 32, 128, 128]),
    ("inception5b", 832, 7, [384, 192, 384, 48, 128, 128]),
];

/// One Inception module: its six convolutions. `k5` is 5 in the paper and 3 in torchvision (whose "5×5"
/// branch really is 3×3); `extra` is 1 for a bias, 2 for batch norm.
fn inception(
    cin: u64,
    hw: u64,
    [c1, c3r, c3, c5r, c5, pp]: [u64; 6],
    k5: u64,
    extra: u64,
) -> (u64, u64) {
    [
        conv(cin, c1, 1, hw, extra),
        conv(cin, c3r, 1, hw, extra),
        conv(c3r, c3, 3, hw, extra),
        conv(cin, c5r, 1, hw, extra),
        conv(c5r, c5, k5, hw, extra),
        conv(cin, pp, 1, hw, extra),
    ]
    .into_iter()
    .fold((0, 0), add)
}

/// The whole main path by hand: stem (conv1 7×7/2 → 112², conv2 reduce 1×1 and conv2 3×3 at 56²), the nine
/// modules, and the 1024 → 1000 classifier (weights and bias; one MAC per weight).
fn googlenet_by_hand(k5: u64, extra: u64) -> (u64, u64) {
    let stem = [
        conv(3, 64, 7, 112, extra),
        conv(64, 64, 1, 56, extra),
        conv(64, 192, 3, 56, extra),
    ];
    let modules =
        INCEPTION_ROWS.map(|(_, cin, hw, columns)| inception(cin, hw, columns, k5, extra));
    let classifier = (1024 * 1000 + 1000, 1024 * 1000);
    stem.into_iter()
        .chain(modules)
        .chain([classifier])
        .fold((0, 0), add)
}

/// One auxiliary classifier: a 1×1 conv to 128 on a 4×4 map (the paper's 5×5/3 average pool of 14×14 gives
/// floor((14 − 5) / 3) + 1 = 4; torchvision pools adaptively to 4×4), then 128·4·4 = 2048 → 1024 → 1000.
fn aux_by_hand(cin: u64, extra: u64) -> (u64, u64) {
    let head = conv(cin, 128, 1, 4, extra);
    let fc1 = (2048 * 1024 + 1024, 2048 * 1024);
    let fc2 = (1024 * 1000 + 1000, 1024 * 1000);
    add(add(head, fc1), fc2)
}

#[test]
fn torchvision_googlenet_matches_published_parameter_counts() {
    let summary = summarize(&network("googlenet_torchvision.arch"));
    // torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.meta["num_params"] = 6,624,904 (the inference model,
    // aux_logits=False); torchvision's GoogLeNet(aux_logits=True) has 13,004,888 (sum of p.numel()).
    assert_eq!(summary.params_inference, 6_624_904);
    assert_eq!(summary.params_total, 13_004_888);
    // The same figures by hand (batch norm: 2 parameters per channel, 3×3 in the "5×5" branch).
    let (params, _) = googlenet_by_hand(3, 2);
    assert_eq!(params, 6_624_904);
    assert_eq!(
        params + aux_by_hand(512, 2).0 + aux_by_hand(528, 2).0,
        13_004_888
    );
}

#[test]
fn torchvision_googlenet_macs() {
    let summary = summarize(&network("googlenet_torchvision.arch"));
    // torchvision's weight table lists GFLOPS 1.50 for GoogLeNet_Weights.IMAGENET1K_V1 (meta "_ops": 1.498; its
    // "FLOPS" are multiply-adds of convolutions and linear layers).
    assert!((1.49e9..1.51e9).contains(&(summary.macs_inference as f64)));
    // The exact sum, from the layer list by hand.
    let (_, macs) = googlenet_by_hand(3, 2);
    assert_eq!(macs, 1_498_376_192);
    assert_eq!(summary.macs_inference, macs);
    // Training adds the two auxiliary heads.
    let aux = aux_by_hand(512, 2).1 + aux_by_hand(528, 2).1;
    assert_eq!(summary.macs_training, macs + aux);
}

#[test]
fn naive_inception_parameter_count() {
    let summary = summarize(&network("inception_naive.arch"));
    // Four branches on a 192-channel input, each a convolution with bias:
    // 1×1 to 64: 192·64 + 64; 3×3 to 128: 192·9·128 + 128; 5×5 to 32: 192·25·32 + 32; pool proj 1×1 to 32:
    // 192·32 + 32.
    let by_hand = 192 * 64 + 64 + 192 * 9 * 128 + 128 + 192 * 25 * 32 + 32 + 192 * 32 + 32;
    assert_eq!(by_hand, 393_472);
    assert_eq!(summary.params_total, 393_472);
    assert_eq!(summary.params_inference, 393_472);
    // Every weight is used once per pixel of the 28×28 output.
    assert_eq!(
        summary.macs_inference,
        (393_472 - (64 + 128 + 32 + 32)) * 28 * 28
    );
    // The header comment's comparison: inception (3a) with its 1×1 reductions has 163,696 parameters.
    assert_eq!(inception(192, 28, INCEPTION_ROWS[0].3, 5, 1).0, 163_696);
}

#[test]
fn paper_googlenet_totals() {
    let network = network("googlenet.arch");
    let summary = summarize(&network);
    // The reference Caffe model (bvlc_googlenet): biases on every convolution, real 5×5 convolutions.
    let (params, macs) = googlenet_by_hand(5, 1);
    assert_eq!(params, 6_998_552);
    assert_eq!(summary.params_inference, params);
    assert_eq!(summary.macs_inference, macs);
    assert_eq!(macs, 1_582_671_872);
    let aux = add(aux_by_hand(512, 1), aux_by_hand(528, 1));
    assert_eq!(summary.params_total, params + aux.0);
    assert_eq!(summary.params_total, 13_378_280);
    assert_eq!(summary.macs_training, macs + aux.1);
    // The paper's Table 1 "params" column sums to 6,797.7K (2.7 + 112 + 159 + 380 + 364 + 437 + 463 + 580 + 840 +
    // 1072 + 1388 + 1000); its rows drop biases and round loosely, so only the order of magnitude is comparable.
    let table_total = 6_797_700.0;
    assert!((summary.params_inference as f64 / table_total - 1.0).abs() < 0.03);
    // Section 5: "a computational budget of 1.5 billion multiply-adds at inference time".
    assert!((1.5e9..1.6e9).contains(&(summary.macs_inference as f64)));
}

#[test]
fn paper_googlenet_inception_ops_match_table_1() {
    let summary = summarize(&network("googlenet.arch"));
    // Table 1's "ops" column, in millions. The paper rounds down (4a is 73.6M, written 73M); 5a's printed 54M
    // disagrees with its own columns (51.1M by the arithmetic above), so a few percent of slack is allowed.
    let table_ops = [128, 304, 73, 88, 100, 119, 170, 54, 71];
    for ((name, cin, hw, columns), table) in INCEPTION_ROWS.iter().zip(table_ops) {
        let row = summary
            .rows
            .iter()
            .find(|r| r.path == *name && r.depth == 0)
            .expect(name);
        assert_eq!(
            row.macs,
            inception(*cin, *hw, *columns, 5, 1).1,
            "{name}: MACs by hand"
        );
        let ratio = row.macs as f64 / (table as f64 * 1e6);
        assert!(
            (0.94..1.02).contains(&ratio),
            "{name}: {} MACs against Table 1's {table}M",
            row.macs
        );
    }
}

#[test]
fn paper_googlenet_row_shapes_match_table_1() {
    let network = network("googlenet.arch");
    // Table 1's "output size" column (H×W×C), next to the statement of googlenet.arch that each row describes.
    let table: [(&str, [u64; 3]); 19] = [
        ("conv1", [112, 112, 64]),
        ("pool1", [56, 56, 64]),
        ("conv2", [56, 56, 192]),
        ("pool2", [28, 28, 192]),
        ("inception3a", [28, 28, 256]),
        ("inception3b", [28, 28, 480]),
        ("pool3", [14, 14, 480]),
        ("inception4a", [14, 14, 512]),
        ("inception4b", [14, 14, 512]),
        ("inception4c", [14, 14, 512]),
        ("inception4d", [14, 14, 528]),
        ("inception4e", [14, 14, 832]),
        ("pool4", [7, 7, 832]),
        ("inception5a", [7, 7, 832]),
        ("inception5b", [7, 7, 1024]),
        ("pool5", [1, 1, 1024]),
        // The paper's dropout and linear rows are 1×1×1024 and 1×1×1000; the flat vectors here.
        ("drop", [1, 1, 1024]),
        ("fc", [1, 1, 1000]),
        // Main output (softmax is left to the loss).
        ("", [1, 1, 1000]),
    ];
    for (name, [h, w, c]) in table {
        let shape = if name.is_empty() {
            network.output
        } else {
            network
                .body
                .iter()
                .find(|node| node.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no statement `{name}`"))
                .output
        };
        let expected = if (h, w) == (1, 1) && name != "pool5" {
            Shape::Flat { features: c }
        } else {
            Shape::Map { c, h, w }
        };
        assert_eq!(shape, expected, "`{name}` against Table 1's {h}×{w}×{c}");
    }
    // The auxiliary heads end in the 1000 classes too.
    for aux in ["aux1", "aux2"] {
        let node = network
            .body
            .iter()
            .find(|n| n.name.as_deref() == Some(aux))
            .expect(aux);
        assert_eq!(node.output, Shape::Flat { features: 1000 });
    }
}

/// The rows directly below row `index` (its members), by index.
fn members(rows: &[archc::summary::Row], index: usize) -> Vec<usize> {
    let depth = rows[index].depth;
    rows.iter()
        .enumerate()
        .skip(index + 1)
        .take_while(|(_, r)| r.depth > depth)
        .filter(|(_, r)| r.depth == depth + 1)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn table_rows_are_modules_each_listed_once() {
    let summary = summarize(&network("googlenet_torchvision.arch"));
    let rows = &summary.rows;
    // Every weight path names one row: no block repeated as its `concat`, no layer under its parent's path.
    let mut paths: Vec<&str> = rows
        .iter()
        .map(|r| r.path.as_str())
        .filter(|p| !p.is_empty())
        .collect();
    let count = paths.len();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), count, "a path is listed twice");
    // The blocks' unnamed `concat` is not a module (torchvision's Inception holds branch1..4 directly).
    assert!(rows.iter().all(|r| r.kind != "concat"));
    // Nothing counted twice or left out: the depth-0 rows add up to the totals, and the members of every row
    // to that row.
    let top = rows.iter().filter(|r| r.depth == 0);
    assert_eq!(top.clone().map(|r| r.params).sum::<u64>(), 13_004_888);
    assert_eq!(top.map(|r| r.macs).sum::<u64>(), summary.macs_training);
    for (index, row) in rows.iter().enumerate() {
        let members = members(rows, index);
        if members.is_empty() {
            continue;
        }
        let params: u64 = members.iter().map(|&i| rows[i].params).sum();
        let macs: u64 = members.iter().map(|&i| rows[i].macs).sum();
        assert_eq!((params, macs), (row.params, row.macs), "{}", row.path);
        // A member's path is its module's path and one more name.
        for &i in &members {
            let path = &rows[i].path;
            assert!(
                path.is_empty() || path.starts_with(&format!("{}.", row.path)),
                "{path} under {}",
                row.path
            );
        }
    }
    // torchvision's module tree: Inception holds branch1..branch4, BasicConv2d holds conv and bn (its ReLU is
    // functional: a row with no path), InceptionAux holds conv, fc1, fc2 and dropout.
    let members_of = |path: &str| {
        let index = rows.iter().position(|r| r.path == path).expect(path);
        members(rows, index)
            .into_iter()
            .map(|i| (rows[i].path.as_str(), rows[i].kind.as_str()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        members_of("inception3a"),
        [
            ("inception3a.branch1", "basic_conv"),
            ("inception3a.branch2", "chain"),
            ("inception3a.branch3", "chain"),
            ("inception3a.branch4", "chain"),
        ]
    );
    assert_eq!(
        members_of("conv1"),
        [
            ("conv1.conv", "conv2d"),
            ("conv1.bn", "batch_norm"),
            ("", "relu")
        ]
    );
    assert_eq!(
        members_of("aux1"),
        [
            ("", "adaptive_avg_pool"),
            ("aux1.conv", "basic_conv"),
            ("", "flatten"),
            ("aux1.fc1", "linear"),
            ("", "relu"),
            ("aux1.dropout", "dropout"),
            ("aux1.fc2", "linear"),
        ]
    );
}

#[test]
fn unnamed_chains_and_groups_list_their_members_in_their_place() {
    let source = "block pair(c) {\n    relu -> max_pool(3, stride = 1, pad = 1)\n    concat {\n        x = conv2d(c, 1)\n        y = conv2d(c, 1)\n    }\n}\nnetwork n {\n    input [3, 8, 8]\n    relu -> identity\n    concat {\n        a = conv2d(4, 1)\n        b = pair(2)\n    }\n    adaptive_avg_pool(1)\n    flatten\n}\n";
    let checked = archc::compile(SourceKind::Arch, source);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let summary = summarize(&checked.networks[0]);
    let rows: Vec<(usize, &str, &str)> = summary
        .rows
        .iter()
        .map(|r| (r.depth, r.path.as_str(), r.kind.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (0, "", "relu"),
            (0, "", "identity"),
            (0, "a", "conv2d"),
            (0, "b", "pair"),
            (1, "", "relu"),
            (1, "", "max_pool"),
            (1, "b.x", "conv2d"),
            (1, "b.y", "conv2d"),
            (0, "", "adaptive_avg_pool"),
            (0, "", "flatten"),
        ]
    );
    // conv2d(4, 1) on 3 channels: 3·4 + 4 = 16; `pair(2)` on 3 channels: two 1×1 to 2, 3·2 + 2 = 8 each.
    assert_eq!(summary.rows[2].params, 16);
    assert_eq!(summary.rows[3].params, 16);
    assert_eq!(summary.params_total, 32);
}

#[test]
fn depth_1_table_snapshot() {
    let summary = summarize(&network("googlenet_torchvision.arch"));
    insta::assert_snapshot!("googlenet_torchvision_depth_1", summary.table(1));
}

/// The input sizes `archc summary` reports, against torchvision's documentation and arithmetic written out.
#[test]
fn torchvision_googlenet_runs_from_15x15_as_torchvision_documents() {
    let summary = summarize(&network("googlenet_torchvision.arch"));
    // torchvision lists GoogLeNet_Weights.IMAGENET1K_V1.meta["min_size"] = (15, 15). Why 14 fails, per axis:
    // conv1 (7×7/2, pad 3) floor((14 + 6 − 7) / 2) + 1 = 7; maxpool1 (3×3/2 ceil) ceil((7 − 3) / 2) + 1 = 3;
    // conv2/conv3 keep 3; maxpool2 ceil((3 − 3) / 2) + 1 = 1; inception3a/3b keep 1; maxpool3
    // ceil((1 − 3) / 2) + 1 = 0. At 15: 8, 4, 2 and then maxpool3 ceil((2 − 3) / 2) + 1 = 1, maxpool4 (2×2/2
    // ceil) 1; the adaptive pools take any size. PyTorch (torchvision 0.29.2):
    // `googlenet(weights=None, aux_logits=True, init_weights=False)` fails at 14×14 in maxpool3 ("Given input
    // size: (480x1x1). Calculated output size: (480x0x0)") and runs at 15×15 in eval and train mode.
    let sizes = summary.input_sizes.as_ref().expect("a map input");
    assert_eq!(sizes.min(), [15, 15]);
    assert!(sizes.open_ended());
    let table = summary.table(0);
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some("googlenet — input [3, 224, 224] (smallest valid: 15×15; any larger size runs)")
    );
    assert_eq!(
        lines.next(),
        Some(
            "smaller inputs: at 14×14, `maxpool3` (max_pool 3×3/2 ceil) gets a [480, 1, 1] map: max_pool \
             window of 3 is larger than its padded input height and width of 1"
        )
    );
}

#[test]
fn paper_googlenet_runs_where_its_classifiers_read_the_declared_maps() {
    let summary = summarize(&network("googlenet.arch"));
    // pool5 (7×7/1) must see the 7×7 map of 224×224 and the aux heads' 5×5/3 pools a 14–16 map before
    // `flatten -> linear`: per axis n ∈ 223..=254 (the arithmetic is in src/check/input_size.rs's tests;
    // PyTorch agrees). At 255, pool4 gives 8×8, pool5 2×2, and fc gets 1024 · 2 · 2 = 4096 features.
    let table = summary.table(0);
    let lines: Vec<&str> = table.lines().take(3).collect();
    assert_eq!(
        lines[0],
        "googlenet — input [3, 224, 224] (sizes from 223×223 to 254×254 run)"
    );
    assert!(
        lines[1].starts_with(
            "smaller inputs: at 222×222, `aux1.fc1` (linear 2048→1024) gets 1152 features"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2]
            .starts_with("larger inputs: at 255×255, `fc` (linear 1024→1000) gets 4096 features"),
        "{}",
        lines[2]
    );
}
