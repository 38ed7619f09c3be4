//! OpenAPI shapes of the free-form JSON the API carries, stated as exactly
//! as the validation is, so a spec-driven client (or schemathesis) never
//! builds a value the schema allows and the server refuses.

use std::borrow::Cow;

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ArrayBuilder, ObjectBuilder, OneOfBuilder, Ref, RefOr, Schema, Type,
        schema::{AdditionalProperties, SchemaType},
    },
};

/// NUL is refused in every string PostgreSQL stores, keys included.
const NO_NUL: &str = r"^[^\u0000]*$";
const METADATA_VALUE: &str = "MetadataValue";

/// A note's metadata: a JSON object whose keys and strings, at any depth,
/// hold no NUL.
pub struct Metadata;

fn object_of_values() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
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

/// One metadata value: any JSON value under the same rule (recursive).
fn metadata_value() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(NO_NUL)),
        )
        .item(ArrayBuilder::new().items(RefOr::Ref(Ref::from_schema_name(METADATA_VALUE))))
        .item(object_of_values())
        .into()
}

impl PartialSchema for Metadata {
    fn schema() -> RefOr<Schema> {
        object_of_values().into()
    }
}

impl ToSchema for Metadata {
    fn name() -> Cow<'static, str> {
        "Metadata".into()
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
