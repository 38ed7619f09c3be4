//! Deserializers that refuse input while it is read, before it costs
//! memory: a `serde_json::Value` takes about 16 times the bytes of a text
//! like `[0,0,0,…]`, and a `Vec<String>` of empty strings about as much, so
//! checking sizes after deserializing is too late.

use std::{cell::Cell, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Nesting deeper than this is refused (serde_json stops at 128 on its own;
/// no real metadata or job argument comes near either).
pub const MAX_DEPTH: usize = 32;

/// A JSON value of at most `budget` bytes, counted as its compact text
/// would be (escapes aside), and at most [`MAX_DEPTH`] deep.
pub fn value<'de, D: Deserializer<'de>>(d: D, budget: usize) -> Result<Value, D::Error> {
    let left = Cell::new(budget);
    Bounded {
        left: &left,
        budget,
        depth: 0,
    }
    .deserialize(d)
}

/// `Option<Value>` within `budget`: for `#[serde(deserialize_with)]`.
pub fn option<'de, D: Deserializer<'de>>(d: D, budget: usize) -> Result<Option<Value>, D::Error> {
    value(d, budget).map(|v| match v {
        Value::Null => None,
        v => Some(v),
    })
}

/// At most `max` items, refused at item `max + 1`.
pub fn vec<'de, D, T>(d: D, max: usize) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    struct Items<T>(usize, std::marker::PhantomData<T>);
    impl<'de, T: de::Deserialize<'de>> Visitor<'de> for Items<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "an array of at most {} items", self.0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element()? {
                if out.len() == self.0 {
                    return Err(de::Error::custom(format!(
                        "must have at most {} items",
                        self.0
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Items(max, std::marker::PhantomData))
}

struct Bounded<'a> {
    left: &'a Cell<usize>,
    budget: usize,
    depth: usize,
}

impl Bounded<'_> {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "must be at most {} bytes as JSON",
                self.budget
            ))),
        }
    }

    fn nested<E: de::Error>(&self) -> Result<Bounded<'_>, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!(
                "must be nested at most {MAX_DEPTH} levels deep"
            )));
        }
        Ok(Bounded {
            left: self.left,
            budget: self.budget,
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.charge(4)?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(5)?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(8)?;
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(8)?;
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(8)?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(v.len() + 2)?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(v.len() + 2)?;
        Ok(Value::String(v))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(2)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested()?)? {
            self.charge(1)?;
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(2)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.charge(key.len() + 4)?;
            let value = map.next_value_seed(self.nested()?)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, budget: usize) -> Result<Value, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        value(&mut de, budget).map_err(|e| e.to_string())
    }

    #[test]
    fn a_value_within_the_budget_comes_back_whole() {
        let text = r#"{"a":[1,2.5,true,null,"x"],"b":{"c":"d"}}"#;
        assert_eq!(
            parse(text, 1000).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn a_long_array_is_refused_while_it_is_read() {
        let text = format!("[{}0]", "0,".repeat(100_000));
        let err = parse(&text, 64 * 1024).unwrap_err();
        assert!(err.contains("at most 65536 bytes"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(parse(&text, 1 << 20).unwrap_err().contains("levels deep"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok, 1 << 20).is_ok());
    }

    #[test]
    fn vec_stops_at_one_past_its_maximum() {
        let mut de = serde_json::Deserializer::from_str(r#"["a","b","c"]"#);
        let err = vec::<_, String>(&mut de, 2).unwrap_err().to_string();
        assert!(err.contains("at most 2 items"), "{err}");
        let mut de = serde_json::Deserializer::from_str(r#"["a","b"]"#);
        assert_eq!(vec::<_, String>(&mut de, 2).unwrap(), ["a", "b"]);
    }
}
