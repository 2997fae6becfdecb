//! The instruction box: free text, the instructions already run, and per-source suggestions.

#[derive(Default)]
pub struct InstructionPanel {
    pub text: String,
    /// Instructions already run, newest first, no duplicates.
    pub history: Vec<String>,
}

impl InstructionPanel {
    pub fn remember(&mut self, s: &str) {
        self.history.retain(|h| h != s);
        self.history.insert(0, s.to_string());
        self.history.truncate(20);
    }

    /// Returns true when Enter was pressed in the box (run).
    pub fn ui(&mut self, ui: &mut egui::Ui, suggestions: &[String], hint: &str, large: bool) -> bool {
        let label = ui.label("Instruction");
        let mut edit = egui::TextEdit::singleline(&mut self.text).hint_text(hint).desired_width(f32::INFINITY);
        if large {
            edit = edit.font(egui::TextStyle::Heading);
        }
        let r = ui.add(edit).labelled_by(label.id);
        let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.horizontal_wrapped(|ui| {
            for s in suggestions {
                if ui.small_button(s).on_hover_text("Use this instruction").clicked() {
                    self.text = s.clone();
                }
            }
        });
        if !self.history.is_empty() {
            egui::ComboBox::from_label("Recent").selected_text("…").show_ui(ui, |ui| {
                for h in self.history.clone() {
                    if ui.selectable_label(false, &h).clicked() {
                        self.text = h;
                    }
                }
            });
        }
        enter
    }
}
