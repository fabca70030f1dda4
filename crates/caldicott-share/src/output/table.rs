//! The table encoders: RFC 4180 CSV and Parquet, both fed one row at a time.
//!
//! Parquet stores a row group column by column, so rows are buffered column-wise until a
//! row group is full ([`Limits`]: a row count and a byte budget, whichever comes first),
//! then written out; memory stays bounded however many rows stream through. The low-level
//! column writer of the `parquet` crate is used (no arrow): every column is a required
//! `BYTE_ARRAY` with the `String` logical type (UTF-8), which every reader maps to a
//! string column.

use std::sync::Arc;

use parquet::basic::{Compression, ConvertedType, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::sink::PlainSink;

/// When a Parquet row group is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most rows in one row group.
    pub row_group_rows: usize,
    /// Most bytes buffered for one row group: the sum of the values' lengths plus a
    /// per-value overhead (the size of parquet's `ByteArray` handle, 32 bytes).
    pub row_group_bytes: usize,
}

impl Default for Limits {
    /// 65,536 rows or 64 MiB of values.
    fn default() -> Self {
        Self {
            row_group_rows: 65_536,
            row_group_bytes: 64 << 20,
        }
    }
}

/// RFC 4180 CSV into an age stream: CRLF line ends, fields quoted when they hold a comma,
/// a double quote, CR or LF (quotes doubled).
pub(crate) struct CsvTable {
    writer: csv::Writer<PlainSink>,
}

impl CsvTable {
    pub(crate) fn new(sink: PlainSink, header: &[String]) -> Result<Self, csv::Error> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(sink);
        writer.write_record(header)?;
        Ok(Self { writer })
    }

    pub(crate) fn write_row<S: AsRef<str>>(&mut self, row: &[S]) -> Result<(), csv::Error> {
        self.writer
            .write_record(row.iter().map(|v| v.as_ref().as_bytes()))
    }

    pub(crate) fn finish(self) -> Result<PlainSink, csv::Error> {
        self.writer
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))
    }
}

/// Parquet into an age stream, a row group at a time.
pub(crate) struct ParquetTable {
    writer: SerializedFileWriter<PlainSink>,
    columns: Vec<Vec<ByteArray>>,
    buffered_rows: usize,
    buffered_bytes: usize,
    limits: Limits,
    row_groups: u64,
}

impl ParquetTable {
    pub(crate) fn new(
        sink: PlainSink,
        header: &[String],
        limits: Limits,
    ) -> Result<Self, ParquetError> {
        let fields = header
            .iter()
            .map(|name| {
                Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
                    .with_repetition(Repetition::REQUIRED)
                    .with_logical_type(Some(LogicalType::String))
                    .with_converted_type(ConvertedType::UTF8)
                    .build()
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schema = Type::group_type_builder("release")
            .with_fields(fields)
            .build()?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer = SerializedFileWriter::new(sink, Arc::new(schema), Arc::new(props))?;
        Ok(Self {
            writer,
            columns: vec![Vec::new(); header.len()],
            buffered_rows: 0,
            buffered_bytes: 0,
            limits,
            row_groups: 0,
        })
    }

    /// Buffers one row (its length already checked) and writes a row group when full.
    pub(crate) fn write_row<S: AsRef<str>>(&mut self, row: &[S]) -> Result<(), ParquetError> {
        for (column, value) in self.columns.iter_mut().zip(row) {
            let value = value.as_ref();
            // The value and its handle: many short values cost more in handles than text.
            self.buffered_bytes = self
                .buffered_bytes
                .saturating_add(value.len() + std::mem::size_of::<ByteArray>());
            column.push(ByteArray::from(value.as_bytes().to_vec()));
        }
        self.buffered_rows += 1;
        if self.buffered_rows >= self.limits.row_group_rows
            || self.buffered_bytes >= self.limits.row_group_bytes
        {
            self.flush_row_group()?;
        }
        Ok(())
    }

    fn flush_row_group(&mut self) -> Result<(), ParquetError> {
        if self.buffered_rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        for values in &mut self.columns {
            let Some(mut column) = group.next_column()? else {
                return Err(ParquetError::General(
                    "the Parquet schema has fewer columns than the header".to_owned(),
                ));
            };
            column
                .typed::<ByteArrayType>()
                .write_batch(values, None, None)?;
            column.close()?;
            // Keeps the capacity: the next row group is about as large.
            values.clear();
        }
        group.close()?;
        self.buffered_rows = 0;
        self.buffered_bytes = 0;
        self.row_groups += 1;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the sink and the row group count.
    pub(crate) fn finish(mut self) -> Result<(PlainSink, u64), ParquetError> {
        self.flush_row_group()?;
        let row_groups = self.row_groups;
        Ok((self.writer.into_inner()?, row_groups))
    }
}
