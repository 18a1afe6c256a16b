#!/usr/bin/env python3
"""Seed corpora for the fuzz targets from the shared channel fixtures (never committed).

Usage: fuzz_seeds.py OUT_DIR. The adapter-indexed targets take a first byte that picks an
adapter by its place in the sorted list of adapters/; each fixture is seeded for the adapters
whose name shares its folder's first four letters, and for every adapter as raw JSON/XML."""
import hashlib, pathlib, sys

root = pathlib.Path(__file__).resolve().parent.parent
shared = root.parent / "shared" / "fixtures"
out = pathlib.Path(sys.argv[1])
adapters = sorted(p.stem for p in (root / "adapters").glob("*.toml"))
with_webhook = sorted(
    p.stem for p in (root / "adapters").glob("*.toml") if "[webhook]" in p.read_text()
)


def put(target, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


files = [p for base in (shared, root / "tests" / "fixtures") for p in base.rglob("*") if p.is_file()]
for f in files:
    data = f.read_bytes()
    if len(data) > 262144:
        continue
    suffix = f.suffix.lower()
    if suffix == ".json":
        put("json_tree", data)
    if suffix == ".xml":
        put("xml_tree", data)
    if suffix == ".csv":
        put("csv_groups", data)
    folder = f.parent.name.replace("-", "_")
    for i, name in enumerate(adapters):
        if name[:4] == folder[:4] or (folder == "standard_webhooks" and name == "app"):
            put("adapter_engine", bytes([i]) + data)
    for i, name in enumerate(with_webhook):
        if name[:4] == folder[:4]:
            put("signature_headers", bytes([i]) + b"sha256=AAAA\n" + data[:4096])
for i in range(len(with_webhook)):
    put("signature_headers", bytes([i]) + b"t=1700000000,v1=00\n{}")
    put("signature_headers", bytes([i]) + b"v1,AAAA v1,BBBB\n<xml><sign>00</sign></xml>")
print(f"seeded {out}: " + ", ".join(f"{d.name} {len(list(d.iterdir()))}" for d in sorted(out.iterdir())))
