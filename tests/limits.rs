//! Hostile input: documents too big or too deep are refused with a clear
//! error, never a crash (stack overflow) or unbounded memory: the model's
//! JSON, custom rules (TOML and JSON) and repository manifests.

use vmrestore::model::{MAX_DOCUMENT_BYTES, RestorePoint, RestoreRequest, from_json};
use vmrestore::repo::LocalRepository;

fn deep_json(depth: usize) -> String {
    format!(
        "{{\"id\": \"rp\", \"vm\": {{\"disks\": {}{}}}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[test]
fn a_deeply_nested_json_document_is_refused_not_a_stack_overflow() {
    for depth in [200, 100_000, 2_000_000] {
        let e = from_json::<RestorePoint>(&deep_json(depth)).unwrap_err();
        assert_eq!(e.code(), "E_PARSE", "{e}");
        assert!(e.to_string().contains("$.vm.disks"), "{e}");
        let e = from_json::<RestoreRequest>(&"[".repeat(depth)).unwrap_err();
        assert_eq!(e.code(), "E_PARSE", "{e}");
    }
}

#[test]
fn a_document_over_the_size_limit_is_refused_before_parsing() {
    let mut doc = String::with_capacity(MAX_DOCUMENT_BYTES + 16);
    doc.push_str("{\"id\": \"");
    doc.push_str(&"a".repeat(MAX_DOCUMENT_BYTES));
    doc.push_str("\"}");
    let e = from_json::<RestorePoint>(&doc).unwrap_err();
    assert_eq!(e.code(), "E_PARSE");
    assert!(e.to_string().contains("exceeds the limit"), "{e}");
}

#[test]
fn deeply_nested_custom_rules_are_refused() {
    for depth in [1_000, 200_000] {
        let toml = format!("name = {}\"x\"{}", "[".repeat(depth), "]".repeat(depth));
        let e = vmrestore::policy::custom::load(&toml, "deep").unwrap_err();
        assert!(matches!(e.code(), "E_PARSE" | "E_RULE"), "{e}");
        let json = format!("{{\"name\": {}1{}}}", "[".repeat(depth), "]".repeat(depth));
        let e = vmrestore::policy::custom::load(&json, "deep").unwrap_err();
        assert!(matches!(e.code(), "E_PARSE" | "E_RULE"), "{e}");
    }
}

#[test]
fn a_deeply_nested_manifest_is_refused_with_its_restore_point() {
    let dir = tempfile::tempdir().unwrap();
    let repo = LocalRepository::create(dir.path().join("repo")).unwrap();
    let rp = dir.path().join("repo/restore-points/rp1");
    std::fs::create_dir_all(&rp).unwrap();
    std::fs::write(
        rp.join("manifest.json"),
        format!("{}{}", "[".repeat(500_000), "]".repeat(500_000)),
    )
    .unwrap();
    let e = repo.manifest("rp1").unwrap_err();
    assert_eq!(e.code(), "E_REPOSITORY", "{e}");
    assert!(e.to_string().contains("rp1"), "{e}");
}

#[test]
fn deeply_nested_rule_expressions_are_refused_not_a_stack_overflow() {
    // Within the expression length limit, but nested thousands deep.
    for when in [
        format!("{}true{}", "(".repeat(2000), ")".repeat(2000)),
        format!("{}true", "!".repeat(4000)),
        format!("{}1{}", "[".repeat(2000), "]".repeat(2000)),
        format!("{}1", "-".repeat(4000)),
    ] {
        let text = format!(
            "[[rules]]\nid = \"T-1\"\nwhen = \"{when}\"\noutcome = \"warn\"\nmessage = \"m\"\n"
        );
        match vmrestore::policy::custom::load(&text, "t") {
            Err(e) => {
                assert_eq!(e.code(), "E_RULE", "{e}");
                assert!(e.to_string().contains("T-1"), "{e}");
            }
            // CEL folds some chains (`!!x` is `x`): what loads must plan
            // without trouble.
            Ok(profile) => {
                let r = &vmrestore::demo::restores().unwrap()[0];
                let catalog = vmrestore::model::Catalog::builtin();
                let plan = vmrestore::plan::Planner::new(&catalog).unwrap().plan(
                    &r.restore_point,
                    &r.request,
                    &[profile],
                );
                match plan {
                    Ok(p) => assert!(
                        p.findings.iter().any(|f| f.rule_id == "T-1"),
                        "{when:.20}: the rule ran"
                    ),
                    Err(e) => assert_eq!(e.code(), "E_RULE_EVAL", "{when:.20}: {e}"),
                }
            }
        }
    }
}

/// One document per input: whatever follows the first JSON value (a second
/// document, stray brackets, a NUL and garbage) is refused, not silently cut.
#[test]
fn trailing_data_after_a_json_document_is_refused() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/bases.json"
    ))
    .unwrap();
    let bases: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rp = bases["windows"]["restore_point"].to_string();
    let req = bases["windows"]["request"].to_string();
    let cat = serde_json::to_string(&vmrestore::model::Catalog::builtin()).unwrap();
    assert!(from_json::<RestorePoint>(&rp).is_ok());
    assert!(from_json::<RestoreRequest>(&req).is_ok());
    assert!(from_json::<vmrestore::model::Catalog>(&cat).is_ok());
    for tail in ["{\"id\":\"other\"}", "]]]", "\0garbage", " x"] {
        let e = from_json::<RestorePoint>(&format!("{rp}{tail}")).unwrap_err();
        assert_eq!(e.code(), "E_PARSE", "{e}");
        assert!(e.to_string().contains("trailing"), "{e}");
        let e = from_json::<RestoreRequest>(&format!("{req}{tail}")).unwrap_err();
        assert_eq!(e.code(), "E_PARSE", "{e}");
        let e = from_json::<vmrestore::model::Catalog>(&format!("{cat}{tail}")).unwrap_err();
        assert_eq!(e.code(), "E_PARSE", "{e}");
    }
    // Whitespace after the document is still fine.
    assert!(from_json::<RestorePoint>(&format!("{rp}\n\t ")).is_ok());

    let dir = tempfile::tempdir().unwrap();
    let (repo, restores) = vmrestore::demo::build(dir.path()).unwrap();
    let id = restores[0].restore_point.id.clone();
    let path = dir
        .path()
        .join(format!("repo/restore-points/{id}/manifest.json"));
    let path = if path.exists() {
        path
    } else {
        walk_for_manifest(dir.path(), &id)
    };
    let good = std::fs::read_to_string(&path).unwrap();
    assert!(repo.manifest(&id).is_ok());
    std::fs::write(&path, format!("{good}{{\"id\":\"other\"}}")).unwrap();
    let e = repo.manifest(&id).unwrap_err();
    assert_eq!(e.code(), "E_REPOSITORY", "{e}");
    assert!(e.to_string().contains("trailing data"), "{e}");
}

fn walk_for_manifest(root: &std::path::Path, id: &str) -> std::path::PathBuf {
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().unwrap() == id && p.join("manifest.json").exists() {
                return p.join("manifest.json");
            }
            let found = walk_for_manifest(&p, id);
            if found.exists() {
                return found;
            }
        }
    }
    root.join("none")
}
