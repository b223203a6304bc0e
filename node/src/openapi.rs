//! The OpenAPI 3 document served at `GET /api/v1/openapi.json`. Tests check it against the
//! real routes and the shapes they return.

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");
