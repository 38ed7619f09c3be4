//! Characters that show nothing, or that reorder what follows them: a
//! filename or a title must look like what it is.

/// Bidirectional formatting characters (Unicode UAX #9: embeddings and
/// overrides U+202A–U+202E, isolates U+2066–U+2069, the marks U+200E,
/// U+200F and U+061C). In a filename they make `\u{202e}gnp.exe` display
/// as `exe.png`.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A character that renders as nothing: white space, a control, or one
/// of Unicode's Default_Ignorable_Code_Point characters (zero-width space
/// and joiners, U+FEFF, bidi controls, variation selectors, the Hangul
/// fillers, tags; DerivedCoreProperties.txt, Unicode 16).
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_are_exactly_the_formatting_characters() {
        for c in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            assert!(is_bidi_control(c), "{:04X}", c as u32);
        }
        for c in ['a', 'א', '\u{200B}', '\u{2065}', '\u{2070}', '\u{2029}'] {
            assert!(!is_bidi_control(c), "{:04X}", c as u32);
        }
    }

    #[test]
    fn invisible_characters_are_known_and_visible_ones_are_not() {
        for c in [
            ' ',
            '\t',
            '\u{A0}',
            '\u{3000}',
            '\u{200B}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{AD}',
            '\u{202E}',
            '\u{FE0F}',
            '\u{3164}',
            '\u{E0041}',
            '\u{7F}',
        ] {
            assert!(is_invisible(c), "{:04X}", c as u32);
        }
        for c in ['a', '.', 'é', '中', '😀'] {
            assert!(!is_invisible(c), "{:04X}", c as u32);
        }
    }
}
