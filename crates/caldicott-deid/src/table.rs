//! A table of rows with string columns.
//!
//! Stored column by column and dictionary-encoded: each column keeps its distinct values once
//! and one 32-bit code per row. A million rows of eight columns cost 32 MB of codes plus the
//! distinct strings, instead of eight million `String`s; and the codes are what the engine
//! groups on anyway (a code is the value's level-0 id).

use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;

use crate::error::DeidError;
use crate::fx::{FxBuild, FxHashMap};

/// A column's distinct values, stored end to end in one string: a million distinct postcodes
/// cost their bytes and one offset each, not a heap allocation each, and sit close together
/// (reading a million rows compares each field against one of them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Values {
    text: String,
    /// `text[ends[i - 1]..ends[i]]` is value `i` (from 0 for the first).
    ends: Vec<usize>,
}

impl Values {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn iter(&self) -> ValuesIter<'_> {
        ValuesIter {
            values: self,
            next: 0,
        }
    }

    /// Value `i`'s bytes (no check of character boundaries: for comparing).
    #[inline]
    fn bytes(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text.as_bytes()[start..self.ends[i]]
    }

    fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len());
    }

    fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

impl std::ops::Index<usize> for Values {
    type Output = str;

    #[inline]
    fn index(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        // Every boundary is the end of a whole `&str` pushed, so on a char boundary.
        &self.text[start..self.ends[i]]
    }
}

/// The values in code order.
pub(crate) struct ValuesIter<'v> {
    values: &'v Values,
    next: usize,
}

impl<'v> Iterator for ValuesIter<'v> {
    type Item = &'v str;

    fn next(&mut self) -> Option<&'v str> {
        let i = self.next;
        (i < self.values.len()).then(|| {
            self.next += 1;
            &self.values[i]
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.values.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for ValuesIter<'_> {}

impl<'v> IntoIterator for &'v Values {
    type Item = &'v str;
    type IntoIter = ValuesIter<'v>;

    fn into_iter(self) -> ValuesIter<'v> {
        self.iter()
    }
}

/// One column: its distinct values and, per row, the index of the row's value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Column {
    /// Distinct values in order of first appearance.
    pub(crate) values: Values,
    /// One code per row, an index into `values`.
    pub(crate) codes: Vec<u32>,
    /// Value → code while rows are being added: a table of codes, looked up by the value's
    /// hash and compared against `values`, so each distinct string is stored once. Dropped by
    /// [`Table::finish`] and rebuilt if a row is added after.
    index: Option<HashTable<u32>>,
}

fn hash_str(s: &str) -> u64 {
    let mut h = FxBuild::default().build_hasher();
    h.write(s.as_bytes());
    h.finish()
}

/// Byte equality without a call to `memcmp` for the short values tables mostly hold (codes,
/// dates, postcodes): about one comparison per field read.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    if a.len() <= 16 {
        // Two overlapping 8-byte words cover the whole value.
        return a.first_chunk::<8>() == b.first_chunk::<8>()
            && a.last_chunk::<8>() == b.last_chunk::<8>();
    }
    a == b
}

impl Column {
    fn intern(&mut self, value: &str) -> Result<u32, DeidError> {
        let values = &self.values;
        let index = self.index.get_or_insert_with(|| {
            let mut t = HashTable::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                t.insert_unique(hash_str(v), i as u32, |&c| hash_str(&values[c as usize]));
            }
            t
        });
        let hash = hash_str(value);
        if let Some(&code) = index.find(hash, |&c| same(values.bytes(c as usize), value.as_bytes()))
        {
            return Ok(code);
        }
        let code = u32::try_from(self.values.len()).map_err(|_| {
            DeidError::TooLarge("more than 2^32 distinct values in a column".into())
        })?;
        index.insert_unique(hash, code, |&c| hash_str(&values[c as usize]));
        self.values.push(value);
        Ok(code)
    }

    /// How many rows hold each code.
    pub(crate) fn frequencies(&self) -> Vec<u64> {
        let mut freq = vec![0u64; self.values.len()];
        for &c in &self.codes {
            freq[c as usize] += 1;
        }
        freq
    }

    /// The first (0-based) row holding `code`.
    pub(crate) fn first_row_of(&self, code: u32) -> usize {
        self.codes.iter().position(|&c| c == code).unwrap_or(0)
    }
}

/// A table: a header naming the columns and rows of string values, one per column.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    columns: Vec<Column>,
    rows: usize,
}

impl Table {
    /// An empty table with these column names. Names must be unique.
    pub fn new(header: Vec<String>) -> Result<Self, DeidError> {
        let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, name) in header.iter().enumerate() {
            if let Some(first) = seen.insert(name.as_str(), i) {
                return Err(DeidError::DuplicateColumn {
                    column: name.clone(),
                    first: first + 1,
                    second: i + 1,
                });
            }
        }
        let columns = vec![Column::default(); header.len()];
        Ok(Self {
            header,
            columns,
            rows: 0,
        })
    }

    /// A table from a header and rows; every row must have one value per column.
    pub fn from_rows<R, S>(header: Vec<String>, rows: R) -> Result<Self, DeidError>
    where
        R: IntoIterator,
        R::Item: AsRef<[S]>,
        S: AsRef<str>,
    {
        let mut table = Self::new(header)?;
        for row in rows {
            table.push_row(row.as_ref())?;
        }
        Ok(table)
    }

    /// Appends a row; it must have one value per column.
    pub fn push_row<S: AsRef<str>>(&mut self, row: &[S]) -> Result<(), DeidError> {
        if row.len() != self.columns.len() {
            return Err(DeidError::RowWidth {
                row: self.rows + 1,
                expected: self.columns.len(),
                found: row.len(),
            });
        }
        if self.rows == u32::MAX as usize {
            return Err(DeidError::TooLarge("more than 2^32 - 1 rows".into()));
        }
        for (column, value) in self.columns.iter_mut().zip(row) {
            let code = column.intern(value.as_ref())?;
            column.codes.push(code);
        }
        self.rows += 1;
        Ok(())
    }

    /// Appends a row given as exactly one value per column (checked by the caller).
    pub(crate) fn push_fields<'v>(
        &mut self,
        fields: impl Iterator<Item = &'v str>,
    ) -> Result<(), DeidError> {
        if self.rows == u32::MAX as usize {
            return Err(DeidError::TooLarge("more than 2^32 - 1 rows".into()));
        }
        let mut n = 0;
        for (column, value) in self.columns.iter_mut().zip(fields) {
            let code = column.intern(value)?;
            column.codes.push(code);
            n += 1;
        }
        debug_assert_eq!(n, self.columns.len());
        self.rows += 1;
        Ok(())
    }

    /// Frees the memory used only while adding rows (the value → code indexes). Adding a row
    /// afterwards still works (the index is rebuilt).
    pub fn finish(&mut self) {
        for c in &mut self.columns {
            c.index = None;
            c.codes.shrink_to_fit();
            c.values.shrink_to_fit();
        }
    }

    /// The column names.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Number of data rows.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn num_columns(&self) -> usize {
        self.columns.len()
    }

    /// The position of a column.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The value at a 0-based row and column. Panics when out of range.
    pub fn value(&self, row: usize, column: usize) -> &str {
        let col = &self.columns[column];
        &col.values[col.codes[row] as usize]
    }

    /// The values of a 0-based row.
    pub fn row(&self, row: usize) -> impl Iterator<Item = &str> + '_ {
        (0..self.columns.len()).map(move |c| self.value(row, c))
    }

    /// Number of distinct values in a column.
    pub fn distinct_values(&self, column: usize) -> usize {
        self.columns[column].values.len()
    }

    pub(crate) fn column(&self, column: usize) -> &Column {
        &self.columns[column]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Values of every length the comparison treats differently (under 8 bytes, 8 to 16,
        /// longer; multi-byte characters; values sharing their first or last 8 bytes) read
        /// back as written, and equal values share one code.
        #[test]
        fn interned_values_read_back(
            rows in prop::collection::vec(
                (prop::sample::select(vec!["", "a", "é", "LS1 4AB", "LS1 4AB ", "2001-01-01",
                    "2001-01-02", "x2001-01-01", "abcdefghijklmnopq", "abcdefghijklmnopr",
                    "ßßßßßßßßß"]), 0usize..4),
                0..60,
            ),
        ) {
            let header = vec!["v".to_string(), "n".to_string()];
            let cells: Vec<[String; 2]> = rows
                .iter()
                .map(|(v, n)| [format!("{v}{}", "z".repeat(*n)), n.to_string()])
                .collect();
            let mut table = Table::from_rows(header, &cells).unwrap();
            table.finish();
            for (r, row) in cells.iter().enumerate() {
                prop_assert_eq!(table.value(r, 0), row[0].as_str());
                prop_assert_eq!(table.value(r, 1), row[1].as_str());
            }
            let distinct: std::collections::HashSet<&str> =
                cells.iter().map(|row| row[0].as_str()).collect();
            prop_assert_eq!(table.distinct_values(0), distinct.len());
            let column = table.column(0);
            prop_assert_eq!(column.values.iter().count(), distinct.len());
            // A row added after `finish` rebuilds the index and still finds existing values.
            if let Some(first) = cells.first() {
                table.push_row(first).unwrap();
                prop_assert_eq!(table.distinct_values(0), distinct.len());
            }
        }
    }
}
