//! pgvector's `vector` type in its binary wire format: dimension (int16), an unused int16,
//! then the floats, all big-endian.

use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use std::error::Error as StdError;

/// A vector sent to or read from a `vector` column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PgVector(pub Vec<f32>);

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for PgVector {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        let dim = i16::try_from(self.0.len()).map_err(|_| "a vector longer than 32767")?;
        out.extend_from_slice(&dim.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        for x in &self.0 {
            out.extend_from_slice(&x.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgVector {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let header = raw.get(..4).ok_or("a vector shorter than its header")?;
        let dim = i16::from_be_bytes([header[0], header[1]]);
        let body = &raw[4..];
        if dim < 0 || body.len() != dim as usize * 4 {
            return Err(format!("a vector of {dim} dimensions in {} bytes", body.len()).into());
        }
        Ok(PgVector(
            body.chunks_exact(4)
                .map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ))
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }
}
