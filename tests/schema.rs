//! The committed JSON Schemas under `schema/` match the code.

#[test]
fn committed_schemas_match_the_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    let bless = std::env::var_os("VMRESTORE_BLESS").is_some();
    let mut drift = Vec::new();
    for (file, schema) in vmrestore::schema::all() {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(file);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            drift.push(file);
        }
    }
    assert!(
        drift.is_empty(),
        "schemas drifted from the code: {drift:?}; run VMRESTORE_BLESS=1 cargo test --test schema and commit schema/"
    );
}

#[test]
fn schema_rejects_what_the_parser_rejects_by_shape() {
    // The schema names every required field of a restore point.
    let s = vmrestore::schema::by_name("restore_point").unwrap();
    let required: Vec<&str> = s["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for f in ["id", "time", "backup", "vm"] {
        assert!(required.contains(&f), "{f} not required in schema");
    }
    assert_eq!(s["additionalProperties"], serde_json::Value::Bool(false));
}
