//! The keys each place of a config format accepts, read from the types themselves: a
//! deserializer that walks a type once, feeding every struct each of its fields (one element
//! for a list, `Some` for an option), and records the field names serde asks for at each place.
//! No hand-kept key list can then fall behind a new field, and "did you mean" only offers keys
//! that are valid where the typo stands.
//!
//! Places are JSON pointers with every list index written `*`: `/spec/registries/*`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// The accepted keys of every struct place of `T`.
pub type KeyMap = BTreeMap<String, &'static [&'static str]>;

/// The keys of every place of `T`. Types the walk cannot feed (enums, custom deserializers)
/// end the walk of their branch; the config formats use neither.
pub fn of<T: DeserializeOwned>() -> KeyMap {
    let mut out = KeyMap::new();
    let _ = T::deserialize(Walker {
        place: String::new(),
        out: &mut out,
    });
    out
}

/// The place of `pointer`'s parent: `/spec/registries/0/prefx` is at `/spec/registries/*`.
pub fn place_of(pointer: &str) -> String {
    let parent = pointer.rsplit_once('/').map_or("", |(p, _)| p);
    parent
        .split('/')
        .skip(1)
        .map(|seg| {
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                seg
            }
        })
        .fold(String::new(), |mut s, seg| {
            s.push('/');
            s.push_str(seg);
            s
        })
}

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the key walk cannot feed this type")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

struct Walker<'a> {
    place: String,
    out: &'a mut KeyMap,
}

impl<'de> de::Deserializer<'de> for Walker<'_> {
    type Error = Stop;

    // Free-form values (`serde_json::Value`): nothing inside to walk.
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_unit()
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_unit()
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_i64(0)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_i64(0)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_i64(0)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_i64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_u64(0)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_u64(0)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_u64(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_f64(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_char('x')
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_str("")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_bytes(&[])
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_bytes(&[])
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_some(self)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Stop> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Stop> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_seq(One {
            walker: Some(Walker {
                place: format!("{}/*", self.place),
                out: self.out,
            }),
        })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Stop> {
        self.deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, Stop> {
        self.deserialize_seq(v)
    }
    // A map with free keys (rule id -> level): any key is valid there.
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_map(Fields {
            fields: &[],
            next: 0,
            place: self.place,
            out: self.out,
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Stop> {
        self.out.insert(self.place.clone(), fields);
        v.visit_map(Fields {
            fields,
            next: 0,
            place: self.place,
            out: self.out,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        Err(Stop)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Stop> {
        v.visit_str("")
    }
}

/// A list of one element.
struct One<'a> {
    walker: Option<Walker<'a>>,
}

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        match self.walker.take() {
            Some(w) => seed.deserialize(w).map(Some),
            None => Ok(None),
        }
    }
}

/// Each field of a struct once.
struct Fields<'a> {
    fields: &'static [&'static str],
    next: usize,
    place: String,
    out: &'a mut KeyMap,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedStrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let field = self.fields[self.next];
        self.next += 1;
        seed.deserialize(Walker {
            place: format!("{}/{field}", self.place),
            out: self.out,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct File {
        api_version: Option<String>,
        #[serde(default)]
        spec: Spec,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Spec {
        #[serde(default)]
        rules: BTreeMap<String, serde_json::Value>,
        #[serde(default)]
        registries: Vec<Registry>,
        not_deployable: Option<Vec<String>>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Registry {
        prefix: String,
        #[serde(default)]
        insecure: bool,
        keep: usize,
    }

    #[test]
    fn every_struct_place_has_its_fields() {
        let keys = of::<File>();
        assert_eq!(keys[""], ["apiVersion", "spec"]);
        assert_eq!(keys["/spec"], ["rules", "registries", "notDeployable"]);
        assert_eq!(keys["/spec/registries/*"], ["prefix", "insecure", "keep"]);
        assert_eq!(keys.len(), 3, "{keys:?}");
    }

    #[test]
    fn a_pointer_is_at_its_parent_place() {
        assert_eq!(place_of("/spec/registries/0/prefx"), "/spec/registries/*");
        assert_eq!(place_of("/kindd"), "");
        assert_eq!(
            place_of("/helmValues/12/images/0/keys/tagg"),
            "/helmValues/*/images/*/keys"
        );
    }
}
