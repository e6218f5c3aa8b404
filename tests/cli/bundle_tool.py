#!/usr/bin/env python3
"""Crafts sbirun bundles for the CLI tests (docs/bundles.md): reads IN (an
uncompressed bundle, or "-" for an empty one), applies the operations in
order and writes OUT with a consistent manifest ("files" sizes and
BLAKE2b-256 hashes, manifest.blake2b), so that only what the test changed
is wrong.

  bundle_tool.py IN OUT [OP ...]
    rename:OLD:NEW      rename an entry
    add:NAME:FILE       add an entry with the bytes of FILE
    zeros:NAME:N        add an entry of N zero bytes
    set:A.B:JSON        set manifest field A.B (B a number: an array index) to the JSON value
    pad:N               pad the manifest with a field of N spaces
    gz                  compress OUT with gzip
"""
import hashlib
import io
import json
import sys
import tarfile


def b2(data):
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def main(argv):
    src, out, ops = argv[1], argv[2], argv[3:]
    entries, manifest = [], {"format": "sbirun-bundle 1"}
    if src != "-":
        with tarfile.open(src) as t:
            for m in t.getmembers():
                data = t.extractfile(m).read()
                if m.name == "manifest.json":
                    manifest = json.loads(data)
                elif m.name != "manifest.blake2b":
                    entries.append([m.name, data])
    gz = False
    for op in ops:
        kind, _, rest = op.partition(":")
        if kind == "rename":
            old, new = rest.split(":", 1)
            for e in entries:
                if e[0] == old:
                    e[0] = new
        elif kind == "add":
            name, path = rest.split(":", 1)
            entries.append([name, open(path, "rb").read()])
        elif kind == "zeros":
            name, n = rest.split(":", 1)
            entries.append([name, bytes(int(n))])
        elif kind == "set":
            path, value = rest.split(":", 1)
            keys, obj = path.split("."), manifest
            keys = [int(k) if k.isdigit() else k for k in keys]
            for k in keys[:-1]:
                obj = obj[k] if isinstance(obj, list) else obj.setdefault(k, {})
            obj[keys[-1]] = json.loads(value)
        elif kind == "pad":
            manifest["padding"] = " " * int(rest)
        elif kind == "gz":
            gz = True
        else:
            sys.exit("bundle_tool.py: unknown operation " + op)
    manifest["files"] = [{"name": n, "size": len(d), "blake2b": b2(d)} for n, d in entries]
    text = json.dumps(manifest, indent=2, sort_keys=True).encode()
    with tarfile.open(out, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as t:
        for name, data in [["manifest.json", text], ["manifest.blake2b", (b2(text) + "\n").encode()]] + entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main(sys.argv)
