//! The local server that behaves like Azure Resource Manager (for
//! `tests/arm.rs` and `tests/conformance.rs`): 201/202 with
//! `Azure-AsyncOperation` and `Location` headers, polling, 429 with
//! `Retry-After`, failed operations, the request rules of AZURE.md, and a
//! managed disk's upload endpoint that enforces Azure's page rules.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use vmrestore::azure::auth::{AccessToken, TokenError, TokenProvider};
use vmrestore::azure::{ArmCloud, ArmConfig};

pub const TOKEN: &str = "arm-token-sentinel-5d1e";
pub const SUB: &str = "22222222-2222-2222-2222-222222222222";

/// An operation: polls left before it ends, its failure (code, message),
/// and the resource it concerns.
/// The regions the server takes: West Europe (what `/locations` lists)
/// and its pair, where the demo's cross-region restores go.
pub const LOCATIONS: &[&str] = &["westeurope", "northeurope"];

pub type Op = (u32, Option<(String, String)>, String);

#[derive(Default)]
pub struct Fake {
    pub base: String,
    pub resources: HashMap<String, Value>,
    /// Async operations: id → (polls before done, failure).
    pub ops: HashMap<u64, Op>,
    pub next_op: u64,
    /// Disk uploads: disk name → (size, bytes, written 512-byte pages).
    pub blobs: HashMap<String, (u64, Vec<u8>, BTreeSet<u64>)>,
    /// Requests refused by validation, with the reason.
    pub rejected: Vec<String>,
    pub throttled: u32,
    pub unauthorised: u32,
    pub fail_vm: bool,
    pub calls: Vec<String>,
    /// The blob endpoint staging storage accounts report (Azurite's).
    pub staging_blob: String,
    /// Every request with a body, for the published definitions' check.
    pub bodies: Vec<Value>,
    /// A resource group that GET does not show (no read permission, or
    /// another location) but that exists: its PUT answers 409.
    pub hidden_rg: Option<String>,
}

pub type Shared = Arc<Mutex<Fake>>;

pub fn err(status: StatusCode, code: &str, msg: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ "error": { "code": code, "message": msg } }).to_string(),
    )
        .into_response()
}

pub fn api_version_for(path: &str) -> Option<&'static str> {
    let p = path.to_ascii_lowercase();
    Some(if p.contains("/microsoft.compute/virtualmachines/") {
        "2025-04-01"
    } else if p.contains("/microsoft.compute/disks/") {
        "2025-01-02"
    } else if p.contains("/microsoft.network/") {
        "2024-10-01"
    } else if p.contains("/microsoft.keyvault/") {
        "2024-11-01"
    } else if p.contains("/microsoft.storage/") {
        "2023-05-01"
    } else if p.contains("/providers/") {
        return None;
    } else {
        "2021-04-01"
    })
}

/// The body rules of a PUT (AZURE.md).
pub fn validate(f: &Fake, path: &str, body: &Value) -> Result<(), String> {
    let obj = body.as_object().ok_or("the body is not an object")?;
    for k in obj.keys() {
        if !["location", "tags", "sku", "zones", "properties", "kind"].contains(&k.as_str()) {
            return Err(format!("unknown top-level property '{k}'"));
        }
    }
    let loc = body.get("location").and_then(Value::as_str).unwrap_or("");
    if loc.is_empty() {
        return Err("location is required".into());
    }
    // ARM's LocationNotAvailableForResourceType: only the regions
    // `/locations` lists.
    if !LOCATIONS.contains(&loc) {
        return Err(format!(
            "location '{loc}' is not available for this resource type"
        ));
    }
    if let Some(z) = body.get("zones") {
        let ok = z.as_array().is_some_and(|a| {
            a.iter()
                .all(|x| x.as_str().is_some_and(|s| ["1", "2", "3"].contains(&s)))
        });
        if !ok {
            return Err(format!("zones must be an array of \"1\"..\"3\": {z}"));
        }
    }
    let p = path.to_ascii_lowercase();
    let props = body.get("properties").cloned().unwrap_or(Value::Null);
    if p.contains("/microsoft.compute/disks/") {
        let sku = body
            .pointer("/sku/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if ![
            "Standard_LRS",
            "StandardSSD_LRS",
            "Premium_LRS",
            "PremiumV2_LRS",
            "UltraSSD_LRS",
        ]
        .contains(&sku)
        {
            return Err(format!("disk sku '{sku}'"));
        }
        match props
            .pointer("/creationData/createOption")
            .and_then(Value::as_str)
        {
            Some("Upload") => {
                let size = props
                    .pointer("/creationData/uploadSizeBytes")
                    .and_then(Value::as_u64)
                    .ok_or("creationData.uploadSizeBytes is required")?;
                if !((20 << 20) + 512..=(32u64 << 40) + 512).contains(&size)
                    || (size - 512) % (1 << 20) != 0
                {
                    return Err(format!(
                        "uploadSizeBytes {size} must be N MiB + 512 from 20 MiB to 32 TiB"
                    ));
                }
            }
            Some("Import") => {
                let account = props
                    .pointer("/creationData/storageAccountId")
                    .and_then(Value::as_str)
                    .ok_or("creationData.storageAccountId is required to import")?;
                if !f.resources.contains_key(&account.to_ascii_lowercase()) {
                    return Err(format!("storage account {account} does not exist"));
                }
                let uri = props
                    .pointer("/creationData/sourceUri")
                    .and_then(Value::as_str)
                    .ok_or("creationData.sourceUri is required to import")?;
                if !uri.starts_with(&f.staging_blob) || !uri.ends_with(".vhd") || uri.contains('?')
                {
                    return Err(format!("sourceUri {uri} is not a VHD blob of the account"));
                }
            }
            other => return Err(format!("creationData.createOption {other:?}")),
        }
        if props.get("osType").is_some()
            && !matches!(
                props.get("hyperVGeneration").and_then(Value::as_str),
                Some("V1" | "V2")
            )
        {
            return Err("an OS disk needs hyperVGeneration V1 or V2".into());
        }
    } else if p.contains("/extensions/") {
        let vm = &p[..p.find("/extensions/").unwrap()];
        if !f.resources.contains_key(vm) {
            return Err(format!("VM {vm} does not exist"));
        }
        for k in ["publisher", "type", "typeHandlerVersion"] {
            props
                .get(k)
                .and_then(Value::as_str)
                .ok_or(format!("properties.{k} is required"))?;
        }
    } else if p.contains("/microsoft.compute/virtualmachines/") {
        props
            .pointer("/hardwareProfile/vmSize")
            .and_then(Value::as_str)
            .ok_or("hardwareProfile.vmSize is required")?;
        let disk_ok = |d: &Value, what: &str| -> Result<(), String> {
            if d.get("createOption").and_then(Value::as_str) != Some("Attach") {
                return Err(format!("{what}: createOption must be Attach"));
            }
            let id = d
                .pointer("/managedDisk/id")
                .and_then(Value::as_str)
                .ok_or(format!("{what}: managedDisk.id is required"))?;
            let disk = f
                .resources
                .get(&id.to_ascii_lowercase())
                .ok_or(format!("{what}: disk {id} does not exist"))?;
            if disk
                .pointer("/properties/diskState")
                .and_then(Value::as_str)
                == Some("ActiveUpload")
            {
                return Err(format!("{what}: disk {id} is still open for upload"));
            }
            Ok(())
        };
        disk_ok(&props["storageProfile"]["osDisk"], "osDisk")?;
        for (i, d) in props["storageProfile"]["dataDisks"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            d.get("lun")
                .and_then(Value::as_u64)
                .ok_or(format!("dataDisks[{i}].lun"))?;
            disk_ok(d, &format!("dataDisks[{i}]"))?;
        }
        let nics = props["networkProfile"]["networkInterfaces"]
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or("networkProfile.networkInterfaces is required")?;
        for n in nics {
            let id = n.get("id").and_then(Value::as_str).unwrap_or("");
            if !f.resources.contains_key(&id.to_ascii_lowercase()) {
                return Err(format!("network interface {id} does not exist"));
            }
        }
    } else if p.contains("/microsoft.network/networkinterfaces/") {
        props
            .pointer("/ipConfigurations/0/properties/subnet/id")
            .and_then(Value::as_str)
            .ok_or("ipConfigurations[0].properties.subnet.id is required")?;
    }
    Ok(())
}

/// ARM's answers to a PUT that references what is not there, or not
/// ready: a VM's managed disk that does not exist (404 NotFound) or is
/// still open for upload (409 Conflict), a NIC's public IP or NSG that
/// does not exist (400 InvalidResourceReference).
pub fn references(
    f: &Fake,
    path: &str,
    body: &Value,
) -> Option<(StatusCode, &'static str, String)> {
    let p = path.to_ascii_lowercase();
    let exists = |id: &str| f.resources.get(&id.to_ascii_lowercase());
    if p.contains("/microsoft.compute/virtualmachines/") && !p.contains("/extensions/") {
        let sp = body.pointer("/properties/storageProfile")?;
        let disks = sp.get("osDisk").into_iter().chain(
            sp.get("dataDisks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        for d in disks {
            let Some(id) = d.pointer("/managedDisk/id").and_then(Value::as_str) else {
                continue;
            };
            match exists(id) {
                None => {
                    return Some((
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("the disk {id} was not found"),
                    ));
                }
                Some(v)
                    if v.pointer("/properties/diskState").and_then(Value::as_str)
                        == Some("ActiveUpload") =>
                {
                    return Some((
                        StatusCode::CONFLICT,
                        "OperationNotAllowed",
                        format!("the disk {id} is in state ActiveUpload"),
                    ));
                }
                Some(_) => {}
            }
        }
    } else if p.contains("/microsoft.network/networkinterfaces/") {
        let ipc = body.pointer("/properties/ipConfigurations/0/properties");
        let refs = [
            ipc.and_then(|c| c.pointer("/publicIPAddress/id")),
            body.pointer("/properties/networkSecurityGroup/id"),
        ];
        for id in refs.into_iter().flatten().filter_map(Value::as_str) {
            if exists(id).is_none() {
                return Some((
                    StatusCode::BAD_REQUEST,
                    "InvalidResourceReference",
                    format!("resource {id} referenced by the NIC was not found"),
                ));
            }
        }
    }
    None
}

pub fn new_op(f: &mut Fake, failure: Option<(String, String)>, resource: &str) -> String {
    f.next_op += 1;
    f.ops.insert(f.next_op, (1, failure, resource.to_string()));
    format!("{}/ops/{}", f.base, f.next_op)
}

pub async fn handle(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let mut f = st.lock().unwrap();
    f.calls.push(format!("{method} {path}"));
    // The disk upload endpoint (what beginGetAccess hands out).
    if let Some(name) = path.strip_prefix("/blobs/") {
        if q.get("sig").map(String::as_str) != Some("upload-sas-sentinel") {
            return err(StatusCode::FORBIDDEN, "AuthenticationFailed", "no SAS");
        }
        return blob(&mut f, &method, name, &q, &headers, body);
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        f.unauthorised += 1;
        return err(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "bad token",
        );
    }
    if let Some(n) = path.strip_prefix("/ops/") {
        let n: u64 = n.parse().unwrap_or(0);
        let Some((left, failure, res)) = f.ops.get(&n).cloned() else {
            return err(StatusCode::NOT_FOUND, "NotFound", "no such operation");
        };
        if left > 0 {
            f.ops.insert(n, (left - 1, failure, res));
            return (
                [("retry-after", "0")],
                Json(json!({ "status": "InProgress" })),
            )
                .into_response();
        }
        if let Some((code, msg)) = failure {
            if let Some(r) = f.resources.get_mut(&res) {
                r["properties"]["provisioningState"] = json!("Failed");
            }
            return Json(json!({ "status": "Failed", "error": { "code": code, "message": msg } }))
                .into_response();
        }
        if let Some(r) = f.resources.get_mut(&res) {
            r["properties"]["provisioningState"] = json!("Succeeded");
        }
        return Json(json!({ "status": "Succeeded" })).into_response();
    }
    if let Some(n) = path.strip_prefix("/results/") {
        // Location polling: 202 once, then the result.
        let n: u64 = n.parse().unwrap_or(0);
        let Some((left, _, res)) = f.ops.get(&n).cloned() else {
            return err(StatusCode::NOT_FOUND, "NotFound", "no such operation");
        };
        if left > 0 {
            f.ops.insert(n, (left - 1, None, res));
            return (StatusCode::ACCEPTED, [("retry-after", "0")]).into_response();
        }
        return Json(
            f.resources
                .get(&format!("result:{res}"))
                .cloned()
                .unwrap_or(json!({})),
        )
        .into_response();
    }
    if path == format!("/subscriptions/{SUB}/locations") {
        return Json(json!({ "value": [
            { "name": "westeurope", "displayName": "West Europe", "metadata": { "regionType": "Physical", "geographyGroup": "Europe", "pairedRegion": [ { "name": "northeurope" } ] },
              "availabilityZoneMappings": [ { "logicalZone": "1" }, { "logicalZone": "2" }, { "logicalZone": "3" } ] },
            { "name": "europe", "displayName": "Europe", "metadata": { "regionType": "Logical" } }
        ] }))
        .into_response();
    }
    if path == format!("/subscriptions/{SUB}/providers/Microsoft.Compute/skus") {
        return Json(json!({ "value": [
            { "resourceType": "virtualMachines", "name": "Standard_D4s_v5", "capabilities": [
                { "name": "vCPUs", "value": "4" }, { "name": "MemoryGB", "value": "16" }, { "name": "MaxDataDiskCount", "value": "8" },
                { "name": "HyperVGenerations", "value": "V1,V2" }, { "name": "PremiumIO", "value": "True" } ] },
            { "resourceType": "disks", "name": "Premium_LRS" }
        ] }))
        .into_response();
    }
    let Some(want) = api_version_for(
        path.trim_end_matches("/start")
            .trim_end_matches("/beginGetAccess")
            .trim_end_matches("/endGetAccess"),
    ) else {
        return err(StatusCode::NOT_FOUND, "NotFound", &path);
    };
    if q.get("api-version").map(String::as_str) != Some(want) {
        f.rejected.push(format!(
            "{method} {path}: api-version {:?}",
            q.get("api-version")
        ));
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            &format!("use {want}"),
        );
    }
    let key = path.to_ascii_lowercase();
    match method {
        Method::PUT => {
            let body: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return err(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestContent",
                        &e.to_string(),
                    );
                }
            };
            f.bodies.push(json!({ "method": "PUT", "path": path, "api_version": q.get("api-version"), "body": body }));
            // ARM's write throttling: the first NIC write is refused once.
            if key.contains("/networkinterfaces/") && f.throttled == 0 {
                f.throttled += 1;
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        ("retry-after", "1"),
                        ("x-ms-ratelimit-remaining-subscription-writes", "0"),
                    ],
                    json!({ "error": { "code": "TooManyRequests", "message": "throttled" } })
                        .to_string(),
                )
                    .into_response();
            }
            if let Some(vault) = key.strip_suffix("/accesspolicies/add") {
                // Adds access policies to an existing vault (200, no LRO).
                if !f.resources.contains_key(vault) {
                    return err(StatusCode::NOT_FOUND, "ResourceNotFound", vault);
                }
                let ok = body
                    .pointer("/properties/accessPolicies")
                    .and_then(Value::as_array)
                    .is_some_and(|a| {
                        !a.is_empty()
                            && a.iter().all(|p| {
                                p.get("tenantId").is_some()
                                    && p.get("objectId").is_some()
                                    && p.get("permissions").is_some()
                            })
                    });
                if !ok {
                    f.rejected.push(format!("PUT {path}: accessPolicies"));
                    return err(StatusCode::BAD_REQUEST, "BadRequest", "accessPolicies");
                }
                return Json(body).into_response();
            }
            if f.hidden_rg.as_deref() == Some(key.as_str()) {
                return err(
                    StatusCode::CONFLICT,
                    "InvalidResourceGroupLocation",
                    "Invalid resource group location 'westeurope'. The Resource group already exists in location 'northeurope'.",
                );
            }
            if let Some((status, code, m)) = references(&f, &path, &body) {
                f.rejected.push(format!("PUT {path}: {m}"));
                return err(status, code, &m);
            }
            if let Err(m) = validate(&f, &path, &body) {
                f.rejected.push(format!("PUT {path}: {m}"));
                return err(StatusCode::BAD_REQUEST, "InvalidRequestContent", &m);
            }
            let mut stored = body.clone();
            stored["id"] = json!(path);
            stored["properties"]["provisioningState"] = json!("Creating");
            if key.contains("/microsoft.storage/storageaccounts/") {
                stored["properties"]["primaryEndpoints"] = json!({ "blob": f.staging_blob });
            }
            if key.contains("/microsoft.compute/disks/")
                && body.pointer("/properties/creationData/createOption") == Some(&json!("Import"))
            {
                stored["properties"]["diskState"] = json!("Unattached");
            } else if key.contains("/microsoft.compute/disks/") {
                stored["properties"]["diskState"] = json!("ReadyToUpload");
                let size = body
                    .pointer("/properties/creationData/uploadSizeBytes")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let name = path.rsplit('/').next().unwrap_or("").to_string();
                f.blobs
                    .insert(name, (size, vec![0u8; size as usize], BTreeSet::new()));
            }
            let failure = (f.fail_vm && key.contains("/virtualmachines/")).then(|| {
                (
                    "AllocationFailed".to_string(),
                    "no capacity for this size in the zone".to_string(),
                )
            });
            f.resources.insert(key.clone(), stored.clone());
            let op = new_op(&mut f, failure, &key);
            (
                StatusCode::CREATED,
                [("azure-asyncoperation", op), ("retry-after", "0".into())],
                Json(stored),
            )
                .into_response()
        }
        Method::GET => match f.resources.get(&key) {
            Some(v) => Json(v.clone()).into_response(),
            None => err(StatusCode::NOT_FOUND, "ResourceNotFound", &path),
        },
        Method::DELETE => {
            if f.resources.remove(&key).is_none() {
                return StatusCode::NO_CONTENT.into_response();
            }
            f.blobs.remove(path.rsplit('/').next().unwrap_or(""));
            f.next_op += 1;
            let n = f.next_op;
            f.ops.insert(n, (1, None, key));
            (
                StatusCode::ACCEPTED,
                [
                    ("location", format!("{}/results/{n}", f.base)),
                    ("retry-after", "0".into()),
                ],
            )
                .into_response()
        }
        Method::POST => {
            let (res, verb) = key.rsplit_once('/').unwrap_or((&key, ""));
            let res = res.to_string();
            if !body.is_empty() {
                let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                f.bodies.push(json!({ "method": "POST", "path": path, "api_version": q.get("api-version"), "body": b }));
            }
            if !f.resources.contains_key(&res) {
                return err(StatusCode::NOT_FOUND, "ResourceNotFound", &path);
            }
            match verb {
                "listkeys" if res.contains("/microsoft.storage/storageaccounts/") => {
                    Json(json!({ "keys": [ { "keyName": "key1", "value": vmrestore::azure::storage::EMULATOR_KEY, "permissions": "FULL" } ] }))
                        .into_response()
                }
                "begingetaccess" => {
                    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if b.get("access").and_then(Value::as_str) != Some("Write") {
                        return err(
                            StatusCode::BAD_REQUEST,
                            "InvalidParameter",
                            "access must be Write",
                        );
                    }
                    f.resources.get_mut(&res).unwrap()["properties"]["diskState"] =
                        json!("ActiveUpload");
                    let name = res.rsplit('/').next().unwrap_or("").to_string();
                    let sas = format!("{}/blobs/{name}?sv=2023&sig=upload-sas-sentinel", f.base);
                    f.next_op += 1;
                    let n = f.next_op;
                    f.ops.insert(n, (1, None, res.clone()));
                    f.resources
                        .insert(format!("result:{res}"), json!({ "accessSAS": sas }));
                    (
                        StatusCode::ACCEPTED,
                        [
                            ("location", format!("{}/results/{n}", f.base)),
                            ("retry-after", "0".into()),
                        ],
                    )
                        .into_response()
                }
                "endgetaccess" => {
                    f.resources.get_mut(&res).unwrap()["properties"]["diskState"] =
                        json!("Unattached");
                    StatusCode::OK.into_response()
                }
                "start" => {
                    f.resources.get_mut(&res).unwrap()["properties"]["powerState"] =
                        json!("running");
                    f.next_op += 1;
                    let n = f.next_op;
                    f.ops.insert(n, (1, None, res));
                    (
                        StatusCode::ACCEPTED,
                        [("location", format!("{}/results/{n}", f.base))],
                    )
                        .into_response()
                }
                _ => err(StatusCode::NOT_FOUND, "NotFound", &path),
            }
        }
        _ => err(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &path),
    }
}

/// The page-blob endpoint of a disk upload, with Azure's rules.
pub fn blob(
    f: &mut Fake,
    method: &Method,
    name: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some((size, data, pages)) = f.blobs.get_mut(name) else {
        return err(StatusCode::NOT_FOUND, "BlobNotFound", name);
    };
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let range = || -> Option<(u64, u64)> {
        let r = h("x-ms-range");
        let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
        Some((a.parse().ok()?, b.parse::<u64>().ok()? + 1))
    };
    match (method.as_str(), q.get("comp").map(String::as_str)) {
        ("HEAD", None) => ([
            ("content-length", size.to_string()),
            ("x-ms-blob-type", "PageBlob".into()),
            ("etag", format!("\"{}\"", pages.len())),
        ],)
            .into_response(),
        ("GET", Some("pagelist")) => {
            let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><PageList>");
            let mut run: Option<(u64, u64)> = None;
            for &p in pages.iter() {
                run = match run {
                    Some((s, e)) if e == p => Some((s, p + 512)),
                    Some((s, e)) => {
                        xml.push_str(&format!(
                            "<PageRange><Start>{s}</Start><End>{}</End></PageRange>",
                            e - 1
                        ));
                        Some((p, p + 512))
                    }
                    None => Some((p, p + 512)),
                };
            }
            if let Some((s, e)) = run {
                xml.push_str(&format!(
                    "<PageRange><Start>{s}</Start><End>{}</End></PageRange>",
                    e - 1
                ));
            }
            xml.push_str("</PageList>");
            xml.into_response()
        }
        ("GET", None) => {
            let (s, e) = range().unwrap_or((0, *size));
            data[s as usize..e as usize].to_vec().into_response()
        }
        ("PUT", Some("page")) => {
            let Some((s, e)) = range() else {
                return err(StatusCode::BAD_REQUEST, "InvalidHeaderValue", "x-ms-range");
            };
            if s % 512 != 0 || e % 512 != 0 || e > *size {
                return err(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "InvalidPageRange",
                    "unaligned or past the end",
                );
            }
            match h("x-ms-page-write").as_str() {
                "update" => {
                    if e - s > 4 << 20 || body.len() as u64 != e - s {
                        return err(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "RequestBodyTooLarge",
                            "at most 4 MiB per Put Page",
                        );
                    }
                    data[s as usize..e as usize].copy_from_slice(&body);
                    for p in (s..e).step_by(512) {
                        pages.insert(p);
                    }
                }
                "clear" => {
                    data[s as usize..e as usize].fill(0);
                    for p in (s..e).step_by(512) {
                        pages.remove(&p);
                    }
                }
                _ => {
                    return err(
                        StatusCode::BAD_REQUEST,
                        "InvalidHeaderValue",
                        "x-ms-page-write",
                    );
                }
            }
            (
                StatusCode::CREATED,
                [("etag", format!("\"{}\"", pages.len()))],
            )
                .into_response()
        }
        _ => err(StatusCode::BAD_REQUEST, "UnsupportedHttpVerb", name),
    }
}

pub struct Token;

#[vmrestore::azure::auth::async_trait]
impl TokenProvider for Token {
    async fn token(&self, scopes: &[&str]) -> Result<AccessToken, TokenError> {
        assert!(scopes[0].ends_with("/.default"), "{scopes:?}");
        Ok(AccessToken::new(TOKEN, None))
    }
}

pub async fn serve(fail_vm: bool) -> (Shared, ArmCloud) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let st: Shared = Arc::new(Mutex::new(Fake {
        base: base.clone(),
        fail_vm,
        ..Default::default()
    }));
    let app = Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(8 << 20))
        .with_state(st.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cloud = arm_cloud(base, Arc::new(Token));
    (st, cloud)
}

/// An ArmCloud on the local server at `base` (the test subscription and
/// tenant, 5 ms polls) with `tokens`.
pub fn arm_cloud(base: String, tokens: Arc<dyn TokenProvider>) -> ArmCloud {
    ArmCloud::new(
        ArmConfig {
            endpoint: base,
            subscription_id: SUB.into(),
            tenant_id: "33333333-3333-3333-3333-333333333333".into(),
            poll_interval: Duration::from_millis(5),
            ..Default::default()
        },
        tokens,
    )
    .unwrap()
}

/// Executor options for runs against the local server: the catalog is the
/// built-in one, retries are quick.
pub fn exec_options() -> vmrestore::exec::ExecOptions {
    vmrestore::exec::ExecOptions {
        check_catalog: false,
        retry: vmrestore::exec::RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            ..Default::default()
        },
        ..Default::default()
    }
}
