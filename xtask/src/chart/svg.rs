//! Draws a [`Timeline`] as one self-contained SVG: an axis in seconds of the
//! kernel's clock, a staircase of the phases (each bar runs from the phase
//! before to the phase named), then one row per event in time order, spans
//! as bars and moments as ticks, coloured by kind with a legend. All
//! coordinates are printed with fixed precision, so a log gives the same
//! bytes every time.

use std::fmt::Write;

use super::parse::{Kind, Timeline};

const WIDTH: f64 = 1400.0;
const MARGIN: f64 = 20.0;
const TOP: f64 = 64.0;
const ROW: f64 = 17.0;
const BAR: f64 = 11.0;

fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Kernel => "#7f7f7f",
        Kind::Module => "#2ca02c",
        Kind::ModuleFailed => "#d62728",
        Kind::Device => "#1f77b4",
        Kind::Probe => "#17becf",
        Kind::Found => "#9467bd",
        Kind::Wait => "#ff7f0e",
        Kind::Overlay => "#8c564b",
        Kind::Apk => "#e377c2",
        Kind::Handover => "#bcbd22",
    }
}

const LEGEND: &[(Kind, &str)] = &[
    (Kind::Kernel, "kernel"),
    (Kind::Device, "device"),
    (Kind::Module, "module loaded"),
    (Kind::ModuleFailed, "module failed"),
    (Kind::Probe, "probe"),
    (Kind::Found, "found on media"),
    (Kind::Wait, "wait (and what ended it)"),
    (Kind::Overlay, "overlay unpack"),
    (Kind::Apk, "apk"),
    (Kind::Handover, "hand-over"),
];

const PHASE_COLOUR: &str = "#4c72b0";

/// Escapes text for SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// The tick spacing: the smallest round step giving at most `max` ticks
/// over `span` seconds.
fn tick_step(span: f64, max: f64) -> f64 {
    const STEPS: &[f64] = &[
        0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| span / s <= max)
        .unwrap_or(120.0)
}

fn tick_label(s: f64, step: f64) -> String {
    if (step * 10.0).fract().abs() < 1e-9 {
        format!("{s:.1} s")
    } else {
        format!("{s:.2} s")
    }
}

/// Share of the plot the kernel's part gets when it is drawn compressed.
const KERNEL_SHARE: f64 = 0.2;

/// Maps seconds to x. When the kernel's part (before `brk`) is most of the
/// boot, it gets [`KERNEL_SHARE`] of the width on a scale of its own, so
/// the init's second or so is not squeezed into a corner.
struct Scale {
    brk: f64,
    brk_x: f64,
    before: f64,
    after: f64,
}

impl Scale {
    fn x(&self, t: f64) -> f64 {
        if t <= self.brk {
            MARGIN + t * self.before
        } else {
            self.brk_x + (t - self.brk) * self.after
        }
    }
}

/// Rough width of `text` at the 11 px font: enough to keep labels on the
/// canvas.
fn text_width(text: &str) -> f64 {
    6.3 * text.chars().count() as f64
}

/// `text`, cut with an ellipsis to what fits in `room` pixels.
fn fit(text: &str, room: f64) -> String {
    if text_width(text) <= room {
        return text.to_string();
    }
    let keep = ((room / 6.3).floor() as usize).saturating_sub(1);
    let mut out: String = text.chars().take(keep).collect();
    out.push('…');
    out
}

struct Canvas {
    out: String,
    scale: Scale,
}

impl Canvas {
    fn x(&self, t: f64) -> f64 {
        self.scale.x(t)
    }

    /// One row: a bar from `from` to `to` (a tick when they are equal) and
    /// its label beside it: right of the bar when it fits, else left, else
    /// inside the bar's start.
    fn row(&mut self, y: f64, from: f64, to: f64, fill: &str, label: &str) {
        let x0 = self.x(from);
        let x1 = self.x(to).max(x0 + 2.0);
        let _ = writeln!(
            self.out,
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{BAR:.1}" fill="{fill}"><title>{}</title></rect>"#,
            y + (ROW - BAR) / 2.0,
            x1 - x0,
            escape(label)
        );
        let right = WIDTH - MARGIN / 2.0 - (x1 + 4.0);
        let left = x0 - 4.0 - MARGIN / 2.0;
        let w = text_width(label);
        let (tx, anchor, room) = if w <= right || right >= left {
            (x1 + 4.0, "start", right)
        } else {
            (x0 - 4.0, "end", left)
        };
        // Too long for either side: cut to the larger one (the whole text
        // stays in the bar's tooltip).
        let shown = fit(label, room);
        let _ = writeln!(
            self.out,
            r#"<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
            y + ROW - 4.5,
            escape(&shown)
        );
    }
}

/// Renders the timeline; `title` heads the chart (the log's name).
pub fn render(t: &Timeline, title: &str) -> String {
    let end = if t.end > 0.0 { t.end } else { 1.0 };
    let plot = WIDTH - 2.0 * MARGIN;
    let first = t.phases.first().map_or(end, |p| p.at);
    // Compress the kernel's part when it takes more than 40 % of the boot;
    // the break sits a little before the init starts.
    let brk = if first > 0.4 * end && first < end {
        (first - 0.05 * (end - first)).max(0.0)
    } else {
        0.0
    };
    let step = tick_step(end - brk, if brk > 0.0 { 14.0 } else { 16.0 });
    // The axis runs to the first tick at or past the end.
    let axis_end = (end / step).ceil().max(1.0) * step;
    let scale = if brk > 0.0 {
        Scale {
            brk,
            brk_x: MARGIN + KERNEL_SHARE * plot,
            before: KERNEL_SHARE * plot / brk,
            after: (1.0 - KERNEL_SHARE) * plot / (axis_end - brk),
        }
    } else {
        Scale {
            brk: 0.0,
            brk_x: MARGIN,
            before: 0.0,
            after: plot / axis_end,
        }
    };
    let rows = 1 + t.phases.len() + 1 + t.events.len();
    let legend_y = TOP + rows as f64 * ROW + 16.0;
    let height = legend_y + 46.0;
    let mut c = Canvas {
        out: String::new(),
        scale,
    };
    let _ = writeln!(
        c.out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{height:.0}" viewBox="0 0 {WIDTH:.0} {height:.0}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        c.out,
        r##"<rect x="0" y="0" width="{WIDTH:.0}" height="{height:.0}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        c.out,
        r#"<text x="{MARGIN:.1}" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Row stripes first, so grid lines and bars sit on top of them.
    for i in 0..rows {
        if i % 2 == 1 {
            let _ = writeln!(
                c.out,
                r##"<rect x="0" y="{:.1}" width="{WIDTH:.0}" height="{ROW:.1}" fill="#f3f3f3"/>"##,
                TOP + i as f64 * ROW
            );
        }
    }
    let bottom = TOP + rows as f64 * ROW;
    let mut ticks: Vec<(f64, f64)> = Vec::new();
    if brk > 0.0 {
        let kstep = tick_step(brk, 4.0);
        let mut i = 0.0;
        while i * kstep < brk {
            ticks.push((i * kstep, kstep));
            i += 1.0;
        }
    }
    let mut i = (brk / step).ceil();
    while i * step <= axis_end + 1e-9 {
        ticks.push((i * step, step));
        i += 1.0;
    }
    // A tick too close to the one before (around the break) keeps its line
    // but not its label.
    let mut last_label_x = f64::NEG_INFINITY;
    for (s, step) in ticks {
        let x = c.x(s);
        let _ = writeln!(
            c.out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#cccccc" stroke-width="1"/>"##,
            TOP - 6.0
        );
        let anchor = if s == 0.0 {
            "start"
        } else if x >= WIDTH - MARGIN - 1.0 {
            "end"
        } else {
            "middle"
        };
        if x - last_label_x >= 45.0 {
            last_label_x = x;
            let _ = writeln!(
                c.out,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
                TOP - 10.0,
                tick_label(s, step)
            );
        }
    }
    if brk > 0.0 {
        // The scale change: a zigzag on the axis and a note under it.
        let x = c.scale.brk_x;
        let _ = writeln!(
            c.out,
            r##"<path d="M{:.1},{:.1} l4,-4 l4,8 l4,-4" fill="none" stroke="#333333" stroke-width="1.5"/>"##,
            x - 6.0,
            TOP - 3.0
        );
        let _ = writeln!(
            c.out,
            r##"<text x="{MARGIN:.1}" y="{:.1}" fill="#555555">left of the zigzag: the kernel's part on a compressed scale (the scale changes at {brk:.2} s)</text>"##,
            TOP - 26.0
        );
    }
    // Each phase as a faint dashed line through every row.
    for p in &t.phases {
        let x = c.x(p.at);
        let _ = writeln!(
            c.out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="{PHASE_COLOUR}" stroke-opacity="0.35" stroke-dasharray="3,3"/>"##,
            TOP
        );
    }
    let mut y = TOP;
    c.row(
        y,
        0.0,
        first,
        colour(Kind::Kernel),
        &format!("kernel: start -> init start ({first:.3} s)"),
    );
    y += ROW;
    let mut prev = first;
    for p in &t.phases {
        let label = format!("phase {}  {:.3} s (+{:.3})", p.name, p.at, p.at - prev);
        c.row(y, prev, p.at, PHASE_COLOUR, &label);
        prev = p.at;
        y += ROW;
    }
    let _ = writeln!(
        c.out,
        r#"<text x="{MARGIN:.1}" y="{:.1}" font-weight="bold">events (kernel clock)</text>"#,
        y + ROW - 4.5
    );
    y += ROW;
    for e in &t.events {
        let to = e.to.unwrap_or(e.at);
        let label = format!("{:.3} {}", e.at, e.label);
        c.row(y, e.at, to, colour(e.kind), &label);
        y += ROW;
    }
    let mut x = MARGIN;
    let _ = writeln!(
        c.out,
        r##"<rect x="{x:.1}" y="{legend_y:.1}" width="10" height="10" fill="{PHASE_COLOUR}"/><text x="{:.1}" y="{:.1}">phase</text>"##,
        x + 14.0,
        legend_y + 9.0
    );
    x += 70.0;
    for (kind, name) in LEGEND {
        let _ = writeln!(
            c.out,
            r#"<rect x="{x:.1}" y="{legend_y:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            colour(*kind),
            x + 14.0,
            legend_y + 9.0,
            escape(name)
        );
        x += 24.0 + 6.5 * name.len() as f64;
    }
    let _ = writeln!(
        c.out,
        r#"<text x="{MARGIN:.1}" y="{:.1}">Times are seconds on the kernel's log clock; phase values (the init's CLOCK_MONOTONIC) are shifted by {:+.6} s onto it.</text>"#,
        legend_y + 30.0,
        t.clock_offset
    );
    c.out.push_str("</svg>\n");
    c.out
}
