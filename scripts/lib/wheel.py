#!/usr/bin/env python3
"""Puts the portable build's native libraries into a wheel maturin built, and retags it.

    wheel.py vendor WHEEL DIR FILE... -o OUT_DIR   add FILEs to the package folder DIR/ inside
                                                   the wheel (a new RECORD), write it to OUT_DIR
    wheel.py retag WHEEL PLATFORM -o OUT_DIR       the same wheel with another platform tag

scripts/package uses them: maturin builds the extension, `vendor` adds llama.cpp's libraries and
CPU modules beside it (the extension finds them through its $ORIGIN runpath and cpu_backend.rs
finds the modules beside itself), `auditwheel show` names the manylinux tag the files allow,
and `retag` gives the wheel that tag. Prints the path of the wheel it wrote.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
import zipfile
from pathlib import Path


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def read_wheel(path: Path) -> tuple[dict[str, tuple[zipfile.ZipInfo, bytes]], str]:
    """The wheel's members (but RECORD) in order, and its .dist-info folder name."""
    members: dict[str, tuple[zipfile.ZipInfo, bytes]] = {}
    dist_info = ""
    with zipfile.ZipFile(path) as wheel:
        for info in wheel.infolist():
            top = info.filename.split("/", 1)[0]
            if top.endswith(".dist-info"):
                dist_info = top
                if info.filename == f"{top}/RECORD":
                    continue
            members[info.filename] = (info, wheel.read(info))
    if not dist_info:
        sys.exit(f"wheel.py: {path} has no .dist-info folder")
    return members, dist_info


def write_wheel(path: Path, members: dict[str, tuple[zipfile.ZipInfo, bytes]], dist_info: str) -> None:
    record = [f"{name},{record_hash(data)},{len(data)}" for name, (_, data) in members.items()]
    record.append(f"{dist_info}/RECORD,,")
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, (info, data) in members.items():
            wheel.writestr(info, data, zipfile.ZIP_DEFLATED)
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n", zipfile.ZIP_DEFLATED)
    os.replace(tmp, path)


def vendor(wheel: Path, folder: str, files: list[Path], out_dir: Path) -> Path:
    members, dist_info = read_wheel(wheel)
    for file in files:
        name = f"{folder}/{file.name}"
        info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
        mode = 0o755 if os.access(file, os.X_OK) or ".so" in file.name else 0o644
        info.external_attr = (0o100000 | mode) << 16
        members[name] = (info, file.read_bytes())
    out = out_dir / wheel.name
    write_wheel(out, members, dist_info)
    return out


def retag(wheel: Path, platform: str, out_dir: Path) -> Path:
    members, dist_info = read_wheel(wheel)
    # name-version-python-abi-platform.whl
    parts = wheel.name[: -len(".whl")].split("-")
    if len(parts) != 5:
        sys.exit(f"wheel.py: {wheel.name} is not name-version-python-abi-platform.whl")
    old_tag = "-".join(parts[2:])
    parts[4] = platform
    new_tag = "-".join(parts[2:])
    info, data = members[f"{dist_info}/WHEEL"]
    text = data.decode()
    if f"Tag: {old_tag}" not in text:
        sys.exit(f"wheel.py: {dist_info}/WHEEL has no 'Tag: {old_tag}'")
    members[f"{dist_info}/WHEEL"] = (info, text.replace(f"Tag: {old_tag}", f"Tag: {new_tag}").encode())
    out = out_dir / ("-".join(parts) + ".whl")
    write_wheel(out, members, dist_info)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("vendor")
    v.add_argument("wheel", type=Path)
    v.add_argument("folder")
    v.add_argument("files", type=Path, nargs="+")
    v.add_argument("-o", dest="out_dir", type=Path, required=True)
    r = sub.add_parser("retag")
    r.add_argument("wheel", type=Path)
    r.add_argument("platform")
    r.add_argument("-o", dest="out_dir", type=Path, required=True)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "vendor":
        print(vendor(args.wheel, args.folder, args.files, args.out_dir))
    else:
        print(retag(args.wheel, args.platform, args.out_dir))


if __name__ == "__main__":
    main()
