//! The SVG writer: draws a [`Layout`] of the graph model: block boxes behind, then edges, then nodes with
//! sans-serif labels sized to fit; side outputs dashed and grey, errors red.

use std::fmt::Write as _;

use super::layout::{EdgeRoute, Layout, Rect, CLUSTER_LINE, FONT, LINE_HEIGHT};
use super::{ClusterKind, Graph, NodeStyle, GREY, GREY_FILL, RED, RED_FILL};

/// Space above the drawing for the title.
const TITLE_HEIGHT: f64 = 34.0;
const EDGE: &str = "#5f6368";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Draws `graph` as `layout` places it.
pub fn render(graph: &Graph, layout: &Layout) -> String {
    let mut body = String::new();
    let mut labels = String::new();

    // Block boxes, outer ones first so nested ones are drawn over them.
    for (id, cluster) in graph.clusters.iter().enumerate() {
        let Some(Some(place)) = layout.clusters.get(id) else {
            continue;
        };
        if cluster.kind == ClusterKind::Branch {
            continue;
        }
        let (stroke, fill, text, dash) = if !cluster.errors.is_empty() {
            (RED, "#fffafa", RED, "")
        } else if cluster.side {
            (GREY, "#fafafa", GREY, r#" stroke-dasharray="5,3""#)
        } else {
            ("#c7cbd1", "#f8f9fb", "#5f6368", "")
        };
        let Rect {
            x,
            y,
            width,
            height,
        } = place.rect;
        let _ = writeln!(
            body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{height:.1}" rx="8" fill="{fill}" stroke="{stroke}"{dash}/>"#,
        );
        // Edges pass over box labels: each label gets a halo of its box's colour, drawn after the edges.
        for (index, line) in place.label.iter().enumerate() {
            let _ = writeln!(
                labels,
                r#"<text x="{:.1}" y="{:.1}" font-size="10.5" fill="{text}" stroke="{fill}" stroke-width="3" paint-order="stroke">{}</text>"#,
                x + 6.0,
                y + 11.5 + CLUSTER_LINE * index as f64,
                escape(line)
            );
        }
    }

    for (edge, route) in graph.edges.iter().zip(&layout.edges) {
        let (stroke, dash) = if edge.side {
            (GREY, r#" stroke-dasharray="5,4""#)
        } else {
            (EDGE, "")
        };
        let _ = writeln!(
            body,
            r#"<path d="{}" fill="none" stroke="{stroke}" stroke-width="1"{dash} marker-end="url(#arrow)"/>"#,
            path(route)
        );
    }

    body.push_str(&labels);

    for (id, node) in graph.nodes.iter().enumerate() {
        let Some(place) = layout.nodes.get(id) else {
            continue;
        };
        let (stroke, fill, width, class) = if !node.errors.is_empty() {
            (RED, RED_FILL, 2, r#"class="node error""#)
        } else if node.side {
            (
                GREY,
                GREY_FILL,
                1,
                r#"class="node side" stroke-dasharray="5,3""#,
            )
        } else {
            match node.style {
                NodeStyle::Input => ("#1a73e8", "#e8f0fe", 1, r#"class="node input""#),
                NodeStyle::Merge => ("#b06000", "#fef7e0", 1, r#"class="node merge""#),
                NodeStyle::Unchecked => (
                    GREY,
                    "#ffffff",
                    1,
                    r#"class="node unchecked" stroke-dasharray="2,2""#,
                ),
                NodeStyle::Layer => ("#3c4043", "#ffffff", 1, r#"class="node""#),
            }
        };
        let _ = write!(
            body,
            r#"<g><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{width}" {class}/>"#,
            place.x, place.y, place.width, place.height
        );
        if !node.messages.is_empty() {
            let _ = write!(body, "<title>{}</title>", escape(&node.messages.join("\n")));
        }
        let lines = graph.label_lines(id);
        let center_x = place.center_x();
        let top = place.y + place.height / 2.0 - LINE_HEIGHT * lines.len() as f64 / 2.0;
        let _ = write!(
            body,
            r#"<text x="{center_x:.1}" y="{top:.1}" text-anchor="middle" font-size="{FONT}" fill="{stroke}">"#,
        );
        for (index, line) in lines.iter().enumerate() {
            let (weight, dy) = if index == 0 {
                (r#" font-weight="bold""#, LINE_HEIGHT * 0.8)
            } else {
                ("", LINE_HEIGHT)
            };
            let _ = write!(
                body,
                r#"<tspan x="{center_x:.1}" dy="{dy}"{weight}>{}</tspan>"#,
                escape(line)
            );
        }
        body.push_str("</text></g>\n");
    }

    let width = layout.width.max(300.0);
    let mut header = vec![graph.title.clone()];
    header.extend(graph.unplaced.iter().cloned());
    let title_height = TITLE_HEIGHT + 16.0 * (header.len() - 1) as f64;
    let height = layout.height + title_height;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        out,
        r#"<defs><marker id="arrow" markerWidth="8" markerHeight="6" refX="8" refY="3" orient="auto"><polygon points="0 0, 8 3, 0 6" fill="{EDGE}"/></marker></defs>"#
    );
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    for (index, line) in header.iter().enumerate() {
        let (size, fill, weight) = if index == 0 {
            (15, "#202124", r#" font-weight="bold""#)
        } else {
            (12, RED, "")
        };
        let _ = writeln!(
            out,
            r#"<text x="12" y="{}" font-size="{size}" fill="{fill}"{weight}>{}</text>"#,
            22 + 16 * index,
            escape(line)
        );
    }
    let _ = writeln!(out, r#"<g transform="translate(0 {title_height:.0})">"#);
    out.push_str(&body);
    out.push_str("</g>\n</svg>\n");
    out
}

/// An edge as SVG path data: a curve leaving its source and entering its target vertically, after a straight
/// run down for a long edge and before a straight run past box labels.
fn path(route: &EdgeRoute) -> String {
    let (x1, y1) = route.start;
    let (x2, y2) = route.end;
    let mut d = format!("M {x1:.1} {y1:.1} ");
    let from = match route.bend {
        Some(bend) => {
            let _ = write!(d, "L {x1:.1} {bend:.1} ");
            bend
        }
        None => y1,
    };
    let to = route.enter.unwrap_or(y2);
    let middle = (from + to) / 2.0;
    let _ = write!(
        d,
        "C {x1:.1} {middle:.1}, {x2:.1} {middle:.1}, {x2:.1} {to:.1}"
    );
    if route.enter.is_some() {
        let _ = write!(d, " L {x2:.1} {y2:.1}");
    }
    d
}
