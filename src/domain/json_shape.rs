//! OpenAPI shapes of the free-form JSON the API carries, stated as exactly
//! as the validation is, so a spec-driven client (or schemathesis) never
//! builds a value the schema allows and the server refuses.

use std::borrow::Cow;

use serde_json::json;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ObjectBuilder, Ref, RefOr, Schema, Type,
        extensions::Extensions,
        schema::{AdditionalProperties, SchemaType},
    },
};

use super::{bounded::MAX_DEPTH, note::MAX_METADATA_BYTES};

/// NUL is refused in every string PostgreSQL stores, keys included.
pub const NO_NUL: &str = r"^[^\u0000]*$";
const METADATA: &str = "Metadata";
const METADATA_VALUE: &str = "MetadataValue";

/// A note's metadata: a JSON object whose keys and strings, at any depth,
/// hold no NUL.
pub struct Metadata;

fn schema_ref(name: &str) -> serde_json::Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn object_of_values() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "Free-form JSON: an object whose values are any JSON values. The server refuses \
             (422, field `metadata`) metadata larger than {MAX_METADATA_BYTES} bytes as compact \
             JSON, nested deeper than {MAX_DEPTH} levels (the metadata object is the first), or \
             with a NUL character in any key or string at any depth."
        )))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::Ref(
            Ref::from_schema_name(METADATA_VALUE),
        ))))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(NO_NUL)),
        ))
        .into()
}

/// One metadata value: any JSON value under the same rule, at any depth.
///
/// Deliberately a schema without `type`: client generators read it as "any
/// JSON value" (openapi-python-client drops a recursive `oneOf` of the six
/// JSON types, and with it every schema that holds metadata), while a
/// validator or schemathesis applies every keyword, each to the values it
/// concerns: `pattern` to strings, `items` to arrays, `if`/`then` to objects
/// (rather than `additionalProperties`, which openapi-typescript would take
/// for "this is an object"). utoipa's `Object` has no field for `items` or
/// `if` on an untyped schema; its extensions map serializes them as they are.
fn metadata_value() -> Schema {
    let keywords: Extensions = [
        ("items", schema_ref(METADATA_VALUE)),
        ("if", json!({ "type": "object" })),
        ("then", schema_ref(METADATA)),
    ]
    .into_iter()
    .collect();
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(
            "Any JSON value; no NUL character in any key or string at any depth.",
        ))
        .pattern(Some(NO_NUL))
        .extensions(Some(keywords))
        .into()
}

impl PartialSchema for Metadata {
    fn schema() -> RefOr<Schema> {
        object_of_values().into()
    }
}

impl ToSchema for Metadata {
    fn name() -> Cow<'static, str> {
        METADATA.into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((METADATA_VALUE.into(), metadata_value().into()));
    }
}

/// Any JSON value (a job's result is whatever its kind returns).
pub struct AnyJson;

impl PartialSchema for AnyJson {
    fn schema() -> RefOr<Schema> {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .build(),
        )
        .into()
    }
}

impl ToSchema for AnyJson {
    fn name() -> Cow<'static, str> {
        "AnyJson".into()
    }
}
