//! Tables the way kubectl prints them.

/// Left-aligned columns separated by three spaces; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A table indented by two spaces, as a section of a longer text.
pub fn indented_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    table(headers, rows)
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["a-long-name".to_owned(), "alice".to_owned(), "Active".to_owned()],
            vec!["b".to_owned(), "bob".to_owned(), "".to_owned()],
        ];
        assert_eq!(
            table(&["NAME", "REQUESTER", "PHASE"], &rows),
            "NAME          REQUESTER   PHASE\na-long-name   alice       Active\nb             bob\n"
        );
    }
}
