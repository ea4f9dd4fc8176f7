import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"


def load(name: str):
    return json.loads((VECTORS / name).read_text())


def set_pointer(doc, ptr: str, value) -> None:
    """Sets value at JSON pointer ptr, creating objects; index == len appends."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in ptr.split("/")[1:]]
    cur = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            idx = int(part)
            if idx == len(cur):
                cur.append({})
            if last:
                cur[idx] = value
                return
            cur = cur[idx]
        else:
            if last:
                cur[part] = value
                return
            cur = cur.setdefault(part, {})


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    import vmrestore

    d = tmp_path_factory.mktemp("demo")
    restores = vmrestore.build_demo(d)
    return d, restores
