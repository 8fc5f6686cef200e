//! Tables as `kubectl get` prints them: upper-case headers, columns padded with three spaces,
//! no borders. Our own (a dozen lines) rather than a table crate: those draw boxes by default
//! and their borderless presets pad differently from kubectl's, which people's eyes and
//! `awk '{print $1}'` scripts are used to.

/// Renders `rows` under `headers`, every line ending in a newline. Cells are measured in
/// characters, so names with accents line up.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("   ");
            }
            text.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i] - cell.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str).take(widths.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn columns_line_up_like_kubectl_get() {
        let text = render(
            &["NAME", "PHASE", "EXPIRES IN"],
            &[
                row(&["t-1", "Issued", "14m"]),
                row(&["a-longer-name", "Pending", "-"]),
            ],
        );
        assert_eq!(
            text,
            "NAME            PHASE     EXPIRES IN\n\
             t-1             Issued    14m\n\
             a-longer-name   Pending   -\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_headers_and_no_line_ends_in_spaces() {
        assert_eq!(render(&["NAME", "PHASE"], &[]), "NAME   PHASE\n");
        let text = render(&["A", "B"], &[row(&["x", ""])]);
        assert!(text.lines().all(|l| !l.ends_with(' ')), "{text:?}");
    }

    #[test]
    fn wide_characters_are_counted_as_one() {
        let text = render(&["WHO"], &[row(&["zoë"]), row(&["bob"])]);
        assert_eq!(text, "WHO\nzoë\nbob\n");
        let text = render(&["WHO", "X"], &[row(&["zoë", "1"])]);
        assert_eq!(text, "WHO   X\nzoë   1\n");
    }
}
