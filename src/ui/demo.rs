//! Demo mode (fullscreen, large type, auto-loop) and the keyboard shortcuts:
//! Space run, ←/→ frame, L loop, F fullscreen, Esc cancel. Shortcuts are ignored while a text
//! field has focus.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Run,
    Frame(i64),
    ToggleLoop,
    ToggleFullscreen,
    Cancel,
}

#[derive(Default)]
pub struct DemoMode {
    pub on: bool,
    pub fullscreen: bool,
}

impl DemoMode {
    pub fn set(&mut self, ctx: &egui::Context, on: bool) {
        if self.on == on {
            return;
        }
        self.on = on;
        self.set_fullscreen(ctx, on);
        let mut style = (*ctx.global_style()).clone();
        let scale = if on { 1.6 } else { 1.0 / 1.6 };
        for font in style.text_styles.values_mut() {
            font.size *= scale;
        }
        ctx.set_global_style(style);
    }

    pub fn set_fullscreen(&mut self, ctx: &egui::Context, on: bool) {
        self.fullscreen = on;
        ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(on));
    }
}

/// The shortcut keys pressed this frame.
pub fn keys(ctx: &egui::Context) -> Vec<KeyAction> {
    if ctx.text_edit_focused() {
        // Only Esc works while typing.
        return if ctx.input(|i| i.key_pressed(egui::Key::Escape)) { vec![KeyAction::Cancel] } else { vec![] };
    }
    ctx.input(|i| {
        let mut out = Vec::new();
        if i.key_pressed(egui::Key::Space) {
            out.push(KeyAction::Run);
        }
        if i.key_pressed(egui::Key::ArrowLeft) {
            out.push(KeyAction::Frame(-1));
        }
        if i.key_pressed(egui::Key::ArrowRight) {
            out.push(KeyAction::Frame(1));
        }
        if i.key_pressed(egui::Key::L) {
            out.push(KeyAction::ToggleLoop);
        }
        if i.key_pressed(egui::Key::F) {
            out.push(KeyAction::ToggleFullscreen);
        }
        if i.key_pressed(egui::Key::Escape) {
            out.push(KeyAction::Cancel);
        }
        out
    })
}
