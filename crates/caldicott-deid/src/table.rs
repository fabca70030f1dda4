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

/// One column: its distinct values and, per row, the index of the row's value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Column {
    /// Distinct values in order of first appearance.
    pub(crate) values: Vec<Box<str>>,
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
        if let Some(&code) = index.find(hash, |&c| &*values[c as usize] == value) {
            return Ok(code);
        }
        let code = u32::try_from(self.values.len()).map_err(|_| {
            DeidError::TooLarge("more than 2^32 distinct values in a column".into())
        })?;
        index.insert_unique(hash, code, |&c| hash_str(&values[c as usize]));
        self.values.push(value.into());
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
