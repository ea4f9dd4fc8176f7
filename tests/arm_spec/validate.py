"""Validates ARM request bodies against Microsoft's published API definitions.

The definitions are read from Microsoft's management SDKs for Python
(`azure-mgmt-*`), whose models AutoRest generates from the OpenAPI files of
Azure/azure-rest-api-specs: property names and their nesting (`properties.x`
flattening), types, read-only and required properties, enum values and
constraints (length, pattern, range). The package versions in
requirements.txt are those whose operations use the api-versions of AZURE.md,
and each request's api-version is checked against them.

Input (stdin or a file): a JSON array of requests,
`{"method": "PUT", "path": "/subscriptions/...", "api_version": "...", "body": {...}}`.
Output: one line per violation, naming the request and the JSON path.
Exit status 0 when every body is valid, 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import sys
from typing import Any

import azure.mgmt.compute.models as compute
import azure.mgmt.keyvault.models as keyvault
import azure.mgmt.network.models as network
import azure.mgmt.resource.resources.v2021_04_01.models as resources
import azure.mgmt.storage.v2023_05_01.models as storage

# (method, path pattern) -> (api-version, models module, model class name).
# The api-versions are those of the SDK operations the models belong to:
# azure-mgmt-compute 37.0.0 (virtual machines 2025-04-01, disks 2025-01-02),
# azure-mgmt-network 30.0.0 (2024-10-01), azure-mgmt-keyvault 12.0.0
# (2024-11-01), azure-mgmt-storage 22.0.0 (v2023_05_01), azure-mgmt-resource
# 23.1.1 (v2021_04_01).
SEG = r"[^/]+"
ROUTES: list[tuple[str, str, str, Any, str]] = [
    ("PUT", rf"/subscriptions/{SEG}/resourcegroups/{SEG}", "2021-04-01", resources, "ResourceGroup"),
    ("PUT", rf".*/providers/microsoft\.keyvault/vaults/{SEG}", "2024-11-01", keyvault, "VaultCreateOrUpdateParameters"),
    ("PUT", rf".*/providers/microsoft\.keyvault/vaults/{SEG}/accesspolicies/add", "2024-11-01", keyvault, "VaultAccessPolicyParameters"),
    ("PUT", rf".*/providers/microsoft\.storage/storageaccounts/{SEG}", "2023-05-01", storage, "StorageAccountCreateParameters"),
    ("PUT", rf".*/providers/microsoft\.compute/disks/{SEG}", "2025-01-02", compute, "Disk"),
    ("POST", rf".*/providers/microsoft\.compute/disks/{SEG}/begingetaccess", "2025-01-02", compute, "GrantAccessData"),
    ("PUT", rf".*/providers/microsoft\.network/networksecuritygroups/{SEG}", "2024-10-01", network, "NetworkSecurityGroup"),
    ("PUT", rf".*/providers/microsoft\.network/publicipaddresses/{SEG}", "2024-10-01", network, "PublicIPAddress"),
    ("PUT", rf".*/providers/microsoft\.network/networkinterfaces/{SEG}", "2024-10-01", network, "NetworkInterface"),
    ("PUT", rf".*/providers/microsoft\.compute/virtualmachines/{SEG}", "2025-04-01", compute, "VirtualMachine"),
    ("PUT", rf".*/providers/microsoft\.compute/virtualmachines/{SEG}/extensions/{SEG}", "2025-04-01", compute, "VirtualMachineExtension"),
]


# Enums whose published value list is closed only on paper. The definitions
# mark nearly every enum extensible (`modelAsString`), yet a value outside
# them is, for what this library sends, a bug; the one exception is the VM
# size list, which the spec itself calls deprecated ("use List all available
# virtual machine sizes"): sizes come from the catalog read from ARM.
OPEN_ENUMS = {"VirtualMachineSizeTypes"}


def route(method: str, path: str) -> tuple[str, Any, str] | None:
    p = path.lower().rstrip("/")
    for m, pattern, version, module, name in ROUTES:
        if m == method and re.fullmatch(pattern, p):
            return version, module, name
    return None


def split_key(key: str) -> list[str]:
    """`properties.storageProfile` -> ['properties', 'storageProfile'] (`\\.` escapes a dot)."""
    return [k.replace("\\.", ".") for k in re.split(r"(?<!\\)\.", key)]


def enum_of(cls: type, attr: str, module: Any) -> type[enum.Enum] | None:
    """The enum an attribute takes, from the model's `__init__` annotations."""
    try:
        param = inspect.signature(cls.__init__).parameters.get(attr)
    except (TypeError, ValueError):
        return None
    if param is None:
        return None
    ann = param.annotation if isinstance(param.annotation, str) else repr(param.annotation)
    for name in re.findall(r"_models\.(\w+)", ann):
        e = getattr(module, name, None)
        if isinstance(e, type) and issubclass(e, enum.Enum):
            return e
    return None


class Checker:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def model(self, name: str, value: Any, path: str) -> None:
        cls = getattr(self.module, name, None)
        if cls is None or not hasattr(cls, "_attribute_map"):
            self.fail(path, f"no model {name} in {self.module.__name__}")
            return
        if not isinstance(value, dict):
            self.fail(path, f"{name} must be an object, not {type(value).__name__}")
            return
        # The JSON shape of the model: nested keys -> (attribute, type).
        tree: dict[str, Any] = {}
        for attr, m in cls._attribute_map.items():
            node = tree
            parts = split_key(m["key"])
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if isinstance(node, tuple):
                    break
            else:
                node[parts[-1]] = (attr, m["type"])
        rules = getattr(cls, "_validation", {})
        self.walk(cls, name, tree, rules, value, path)

    def walk(self, cls: type, name: str, tree: dict, rules: dict, value: dict, path: str) -> None:
        for key, v in value.items():
            sub = f"{path}.{key}"
            node = tree.get(key)
            if node is None:
                known = ", ".join(sorted(tree))
                self.fail(sub, f"unknown property of {name} (known: {known})")
            elif isinstance(node, tuple):
                attr, typ = node
                rule = rules.get(attr, {})
                if rule.get("readonly"):
                    self.fail(sub, f"read-only property of {name}: the service sets it")
                    continue
                self.typed(typ, v, sub, enum_of(cls, attr, self.module))
                self.constraints(rule, v, sub)
            elif isinstance(v, dict):
                self.walk(cls, name, node, rules, v, sub)
            else:
                self.fail(sub, "must be an object")
        # Required properties, where their enclosing object is given.
        for key, node in tree.items():
            if isinstance(node, tuple):
                if rules.get(node[0], {}).get("required") and key not in value:
                    self.fail(f"{path}.{key}", f"required by {name}")
            elif key in value and isinstance(value[key], dict):
                pass  # walked above
            else:
                for k2, n2 in node.items():
                    if isinstance(n2, tuple) and rules.get(n2[0], {}).get("required"):
                        self.fail(f"{path}.{key}.{k2}", f"required by {name}")

    def typed(self, typ: str, v: Any, path: str, enum_cls: type[enum.Enum] | None = None) -> None:
        if v is None:
            return
        if typ.startswith("[") and typ.endswith("]"):
            if not isinstance(v, list):
                self.fail(path, f"must be an array ({typ})")
                return
            for i, x in enumerate(v):
                self.typed(typ[1:-1], x, f"{path}[{i}]", enum_cls)
        elif typ.startswith("{") and typ.endswith("}"):
            if not isinstance(v, dict):
                self.fail(path, f"must be an object ({typ})")
                return
            for k, x in v.items():
                self.typed(typ[1:-1], x, f"{path}.{k}")
        elif typ in ("str", "iso-8601", "rfc-1123", "duration", "base64", "bytearray", "unix-time"):
            if not isinstance(v, str):
                self.fail(path, f"must be a string ({typ}), not {json.dumps(v)}")
            elif enum_cls is not None and enum_cls.__name__ not in OPEN_ENUMS:
                allowed = [e.value for e in enum_cls]
                if v.lower() not in (a.lower() for a in allowed):
                    self.fail(path, f"{v!r} is not one of {enum_cls.__name__}: {allowed}")
        elif typ in ("int", "long"):
            if not isinstance(v, int) or isinstance(v, bool):
                self.fail(path, f"must be an integer, not {json.dumps(v)}")
        elif typ == "float":
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                self.fail(path, f"must be a number, not {json.dumps(v)}")
        elif typ == "bool":
            if not isinstance(v, bool):
                self.fail(path, f"must be a boolean, not {json.dumps(v)}")
        elif typ == "object":
            pass
        else:
            self.model(typ, v, path)

    def constraints(self, rule: dict, v: Any, path: str) -> None:
        if isinstance(v, str):
            if "max_length" in rule and len(v) > rule["max_length"]:
                self.fail(path, f"longer than {rule['max_length']}")
            if "min_length" in rule and len(v) < rule["min_length"]:
                self.fail(path, f"shorter than {rule['min_length']}")
            if "pattern" in rule and not re.search(rule["pattern"], v):
                self.fail(path, f"does not match {rule['pattern']}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "maximum" in rule and v > rule["maximum"]:
                self.fail(path, f"above {rule['maximum']}")
            if "minimum" in rule and v < rule["minimum"]:
                self.fail(path, f"below {rule['minimum']}")
        if isinstance(v, list):
            if "max_items" in rule and len(v) > rule["max_items"]:
                self.fail(path, f"more than {rule['max_items']} items")
            if "min_items" in rule and len(v) < rule["min_items"]:
                self.fail(path, f"fewer than {rule['min_items']} items")


def validate(requests: list[dict]) -> list[str]:
    errors: list[str] = []
    for i, r in enumerate(requests):
        method, path = r.get("method", ""), r.get("path", "")
        where = f"request {i} ({method} {path})"
        found = route(method, path)
        if found is None:
            errors.append(f"{where}: no published operation matches")
            continue
        version, module, name = found
        if r.get("api_version") != version:
            errors.append(f"{where}: api-version {r.get('api_version')!r}, the definitions are {version}")
        c = Checker(module)
        c.model(name, r.get("body"), "$")
        errors.extend(f"{where} {e}" for e in c.errors)
    return errors


def main() -> int:
    try:
        text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
        requests = json.loads(text)
        if not isinstance(requests, list):
            raise ValueError("the input must be a JSON array of requests")
    except (OSError, ValueError) as e:
        print(f"bad input: {e}", file=sys.stderr)
        return 2
    errors = validate(requests)
    for e in errors:
        print(e)
    print(f"{len(requests)} request(s) checked, {len(errors)} violation(s)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
