//! Every answer the API tests get is checked against the OpenAPI document the node serves
//! (generated from the code): the route and method are documented, the status is one the
//! operation lists, the content type is the documented one, and a JSON body validates against
//! its schema with JSON Schema 2020-12, strictly: objects may carry no property the document
//! does not name.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// One documented operation.
struct Op {
    method: String,
    segments: Vec<String>,
    /// By status: the content types and, for JSON, the compiled schema.
    answers: HashMap<u16, (Vec<String>, Option<jsonschema::Validator>)>,
}

/// The document, compiled.
pub struct Contract {
    ops: Vec<Op>,
    /// The error shape, for routes the document cannot list (unknown paths).
    error: jsonschema::Validator,
}

/// Components that appear inside an `allOf` (a flattened struct): their objects are extended
/// by the other parts, so they stay open; every other object is closed.
fn in_all_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(parts)) = m.get("allOf") {
                for p in parts {
                    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
                        out.push(r.rsplit('/').next().unwrap_or_default().to_string());
                    }
                }
            }
            m.values().for_each(|x| in_all_of(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| in_all_of(x, out)),
        _ => {}
    }
}

/// Closes every object schema outside an `allOf` part.
fn close(v: &mut Value, inside_all_of: bool) {
    match v {
        Value::Object(m) => {
            let object = m.contains_key("properties");
            if object && !inside_all_of && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), false.into());
            }
            for (k, x) in m.iter_mut() {
                if k == "allOf" {
                    if let Value::Array(parts) = x {
                        parts.iter_mut().for_each(|p| close(p, true));
                    }
                } else if k == "properties" {
                    if let Value::Object(props) = x {
                        props.values_mut().for_each(|p| close(p, false));
                    }
                } else {
                    close(x, false);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| close(x, inside_all_of)),
        _ => {}
    }
}

fn compile(schema: &Value, components: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
    root["components"] = components.clone();
    jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("the document's schema does not compile: {e}\n{schema}"))
}

impl Contract {
    fn build() -> Contract {
        let doc = cairn_node::api::doc::document();
        let mut components = doc["components"].clone();
        let mut open = Vec::new();
        in_all_of(&doc, &mut open);
        if let Some(schemas) = components["schemas"].as_object_mut() {
            for (name, s) in schemas.iter_mut() {
                if !open.contains(name) {
                    close(s, false);
                }
            }
        }
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("operations") {
                let mut answers = HashMap::new();
                for (status, r) in op["responses"].as_object().expect("responses") {
                    let status: u16 = status.parse().expect("a numeric status");
                    let content = r["content"].as_object().cloned().unwrap_or_default();
                    let types: Vec<String> = content.keys().cloned().collect();
                    let schema = content.get("application/json").map(|media| {
                        let mut s = media["schema"].clone();
                        close(&mut s, false);
                        compile(&s, &components)
                    });
                    answers.insert(status, (types, schema));
                }
                ops.push(Op {
                    method: method.to_uppercase(),
                    segments: path.split('/').map(str::to_string).collect(),
                    answers,
                });
            }
        }
        Contract {
            ops,
            error: compile(
                &json!({"$ref": "#/components/schemas/ErrorBody"}),
                &components,
            ),
        }
    }

    /// The compiled document (built once per test process).
    pub fn get() -> &'static Contract {
        static C: OnceLock<Contract> = OnceLock::new();
        C.get_or_init(Contract::build)
    }

    /// Checks one answer. `url` is the path with its query; `body` is the JSON (or, for
    /// another content type, the text as a JSON string).
    pub fn check(
        &self,
        method: &str,
        url: &str,
        status: u16,
        content_type: &str,
        body: &Value,
    ) -> Result<(), String> {
        let at = format!("{method} {url} -> {status}");
        let path = url.split('?').next().unwrap_or_default();
        let segs: Vec<&str> = path.split('/').collect();
        let matches = |op: &&Op| {
            op.segments.len() == segs.len()
                && op
                    .segments
                    .iter()
                    .zip(&segs)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        };
        let on_path: Vec<&Op> = self.ops.iter().filter(matches).collect();
        let error_shape = |body: &Value| {
            self.error
                .validate(body)
                .map_err(|e| format!("{at}: not the error shape: {e}: {body}"))
        };
        if on_path.is_empty() {
            // An undocumented path: the node must say so in the error shape.
            if status != 404 {
                return Err(format!(
                    "{at}: an undocumented path answered other than 404"
                ));
            }
            return error_shape(body);
        }
        let Some(op) = on_path.iter().find(|op| op.method == method) else {
            if status != 405 {
                return Err(format!(
                    "{at}: an undocumented method answered other than 405"
                ));
            }
            return error_shape(body);
        };
        let Some((types, schema)) = op.answers.get(&status) else {
            let listed: Vec<_> = op.answers.keys().collect();
            return Err(format!(
                "{at}: status not documented (listed: {listed:?}): {body}"
            ));
        };
        if !types.iter().any(|t| content_type.starts_with(t.as_str())) {
            return Err(format!(
                "{at}: content type {content_type:?}, documented {types:?}"
            ));
        }
        if let Some(v) = schema {
            let errors: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
            if !errors.is_empty() {
                return Err(format!(
                    "{at}: {} schema errors: {errors:?}\n{body}",
                    errors.len()
                ));
            }
        }
        Ok(())
    }
}
