//! The 7 action dimensions over the chunk (egui_plot) and a table of raw and unnormalised values.

use egui_plot::{Legend, Line, Plot, PlotPoints, VLine};

pub const DIM_NAMES: [&str; 7] = ["droll", "dpitch", "dyaw", "dx", "dy", "dz", "gripper"];

/// Plot the actions (unnormalised when available) with the current step marked.
pub fn plot_ui(ui: &mut egui::Ui, id: u64, raw: &[Vec<f32>], unnorm: Option<&[Vec<f32>]>, current: usize, height: f32) {
    let (series, what) = match unnorm {
        Some(u) => (u, "unnormalised"),
        None => (raw, "raw"),
    };
    ui.weak(format!("actions ({what}) over the chunk"));
    Plot::new(("actions", id))
        .height(height)
        .legend(Legend::default())
        .allow_scroll(false)
        .show(ui, |plot| {
            let dims = series.first().map(|a| a.len()).unwrap_or(0);
            for d in 0..dims {
                let pts: Vec<[f64; 2]> = series.iter().enumerate().map(|(i, a)| [i as f64, a[d] as f64]).collect();
                let name = DIM_NAMES.get(d).map(|s| s.to_string()).unwrap_or(format!("a{d}"));
                plot.line(Line::new(name, PlotPoints::from(pts)));
            }
            plot.vline(VLine::new("current step", current as f64));
        });
}

/// One row per action: raw values, then unnormalised ones.
pub fn table_ui(ui: &mut egui::Ui, id: u64, raw: &[Vec<f32>], unnorm: Option<&[Vec<f32>]>, current: usize) {
    // With statistics the robot-unit columns come first (the plot above shows them too); the model's
    // normalised output follows, labelled "(model)". Without statistics only the model output exists.
    let raw_suffix = if unnorm.is_some() { " (model)" } else { "" };
    egui::ScrollArea::both().id_salt(("action-table", id)).max_height(180.0).show(ui, |ui| {
        egui::Grid::new(("action-grid", id)).striped(true).show(ui, |ui| {
            ui.strong("step");
            if unnorm.is_some() {
                for n in DIM_NAMES {
                    ui.strong(format!("{n} (unnorm)"));
                }
            }
            for n in DIM_NAMES {
                ui.strong(format!("{n}{raw_suffix}"));
            }
            ui.end_row();
            for (i, a) in raw.iter().enumerate() {
                let mark = if i == current { ">" } else { "" };
                ui.label(format!("{mark}{i}"));
                if let Some(u) = unnorm {
                    // A row without unnormalised values keeps the grid aligned with empty cells.
                    let row = u.get(i);
                    for d in 0..DIM_NAMES.len() {
                        match row.and_then(|r| r.get(d)) {
                            Some(v) => ui.monospace(format!("{v:+.4}")),
                            None => ui.label(""),
                        };
                    }
                }
                for v in a {
                    ui.monospace(format!("{v:+.3}"));
                }
                ui.end_row();
            }
        });
    });
}
