#!/usr/bin/env python3
"""Prepare a Spack copy view for shipping as a relocatable tarball (python3 standard library + patchelf).

Runs inside the build container, after `spack env view regenerate`, on the view in place:
  --view   the view root as configured (a symlink to Spack's real `._<name>/<hash>` directory)
  --stage  a directory for the outputs: relocate.tsv and prepare.json
  --top    the tarball's top-level directory name (<name>-<version>-<target>), recorded in prepare.json

The build prefix is the real path of the view root: Spack relocated the copied files to it. The script
  (a) removes the view's `.spack/` metadata directory (install-tree placeholders, build environments);
  (b) rewrites RPATH/RUNPATH entries inside the view to `$ORIGIN/<relative>`, keeps system entries and reports
      any other absolute entry (for instance into the Spack install tree);
  (c) turns absolute symlinks into the view into relative ones and reports symlinks that leave the view;
  (d) scans every regular file for the build prefix and writes the relocation index (format: src/package/layout.ts).
Exit codes: 0 done (warnings are in prepare.json), 1 failure, 2 bad arguments.
"""

import argparse
import codecs
import json
import mmap
import os
import re
import shutil
import stat
import subprocess
import sys

ELF_MAGIC = b"\x7fELF"
TEXT_SNIFF = 8192
# RPATH entries under these stay as they are: the OS's own libraries.
SYSTEM_DIRS = ("/lib", "/lib32", "/lib64", "/libx32", "/usr")


def squeeze_slashes(path):
    """Spack pads shortened strings with leading slashes: `////a/b` names `/a/b`."""
    return re.sub(r"^/+", "/", path)


def is_under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


class ViewPaths:
    """The view's two names: its real (build prefix) path and the symlink it is configured as."""

    def __init__(self, real, link):
        self.real = real
        self.link = link

    def inside(self, absolute):
        """The real path of `absolute` when it names something in the view, else None."""
        path = squeeze_slashes(absolute)
        for root in (self.real, self.link):
            if is_under(path, root):
                rest = path[len(root):].lstrip("/")
                return os.path.join(self.real, rest) if rest else self.real
        return None


def walk(root):
    """(directory, entry names) for every directory under root, sorted, without following symlinks."""
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        yield directory, sorted(dirs + files)


def drop_metadata(view):
    meta = os.path.join(view, ".spack")
    if not os.path.lexists(meta):
        return []
    if os.path.islink(meta) or not os.path.isdir(meta):
        os.remove(meta)
        return [".spack"]
    removed = sorted(os.listdir(meta))
    # Spack installs some metadata read-only: make it writable before removing.
    for directory, _, _ in os.walk(meta):
        os.chmod(directory, stat.S_IRWXU)
    shutil.rmtree(meta)
    return removed


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def run_patchelf(args):
    return subprocess.run(["patchelf", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Writable:
    """Makes a file owner-writable for the duration of a block, then restores its mode."""

    def __init__(self, path):
        self.path = path
        self.mode = None

    def __enter__(self):
        mode = stat.S_IMODE(os.lstat(self.path).st_mode)
        if not mode & stat.S_IWUSR:
            os.chmod(self.path, mode | stat.S_IWUSR)
            self.mode = mode
        return self

    def __exit__(self, *exc):
        if self.mode is not None:
            os.chmod(self.path, self.mode)
        return False


def rewrite_rpaths(view, paths, rel, report):
    """Rewrites the RPATH/RUNPATH of one ELF file; returns True when it changed."""
    path = os.path.join(view, rel)
    printed = run_patchelf(["--print-rpath", path])
    if printed.returncode != 0:
        # Static executables, object files and other ELF files without a dynamic section have no RPATH.
        return False
    current = printed.stdout.strip()
    if not current:
        return False
    entries = []
    for entry in current.split(":"):
        if entry == "" or entry.startswith("$ORIGIN") or entry.startswith("${ORIGIN}"):
            new = entry
        elif not entry.startswith("/"):
            report["outsideRpaths"].append({"file": rel, "entry": entry, "reason": "relative to the working directory"})
            new = entry
        else:
            target = paths.inside(entry)
            if target is not None:
                relative = os.path.relpath(target, os.path.dirname(path))
                new = "$ORIGIN" if relative == "." else "$ORIGIN/" + relative
            else:
                new = squeeze_slashes(entry)
                if not any(is_under(new, d) for d in SYSTEM_DIRS):
                    report["outsideRpaths"].append({"file": rel, "entry": new, "reason": "outside the view"})
        if new not in entries:
            entries.append(new)
    updated = ":".join(e for e in entries if e != "")
    if updated == current:
        return False
    with Writable(path):
        result = run_patchelf(["--set-rpath", updated, path])
    if result.returncode != 0:
        raise RuntimeError(f"patchelf --set-rpath failed on {path}: {result.stderr.strip()}")
    return True


def rewrite_symlink(view, paths, rel, report):
    """Makes an absolute symlink into the view relative; reports one that leaves the view. True when rewritten."""
    link = os.path.join(view, rel)
    target = os.readlink(link)
    here = os.path.dirname(link)
    if target.startswith("/"):
        inside = paths.inside(target)
        if inside is None:
            report["escapingSymlinks"].append({"link": rel, "target": target})
            return False
        relative = os.path.relpath(inside, here)
        os.remove(link)
        os.symlink(relative, link)
        return True
    resolved = os.path.normpath(os.path.join(here, target))
    if not is_under(resolved, view):
        report["escapingSymlinks"].append({"link": rel, "target": target})
    return False


def looks_like_text(head):
    if b"\0" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def occurrences(data, prefix):
    """(offset, length, suffix) of every C string holding `prefix`, the offset at its leading padding slashes."""
    found = []
    position = data.find(prefix)
    while position != -1:
        start = position
        while start > 0 and data[start - 1] == 0x2F:  # '/': Spack's padding of shortened strings
            start -= 1
        end = data.find(b"\0", position)
        if end == -1:
            end = len(data)
        found.append((start, end - start, bytes(data[position + len(prefix):end])))
        # The rest of this C string is part of this occurrence's suffix.
        position = data.find(prefix, end)
    return found


def scan(view, rel, prefix, report):
    """The relocation index line for one regular file, or None when it does not hold the build prefix."""
    path = os.path.join(view, rel)
    size = os.path.getsize(path)
    if size < len(prefix):
        return None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data.find(prefix) == -1:
            return None
        index_path = "view/" + rel
        if "\t" in index_path or "\n" in index_path:
            report["unlistable"].append(rel)
            return None
        if looks_like_text(data[:TEXT_SNIFF]):
            report["textFiles"] += 1
            return f"text\t{index_path}"
        found = occurrences(data, prefix)
    report["binaryFiles"] += 1
    report["occurrences"] += len(found)
    for _, _, suffix in found:
        if prefix in suffix:
            report["repeatedPrefixStrings"].append(rel)
            break
    fields = ",".join(f"{offset}:{length}:{suffix.hex()}" for offset, length, suffix in found)
    return f"binary\t{index_path}\t{fields}"


def prepare(view_root, stage, top):
    link = os.path.abspath(view_root)
    view = os.path.realpath(view_root)
    if not os.path.isdir(view):
        raise SystemExit(f"prepare-relocation: {view_root} is not a directory (real path {view})")
    paths = ViewPaths(view, link)
    prefix = view.encode()
    report = {
        "buildPrefix": view,
        "viewRoot": link,
        "top": top,
        "removedMetadata": [],
        "rpathsRewritten": 0,
        "symlinksRewritten": 0,
        "outsideRpaths": [],
        "escapingSymlinks": [],
        "unlistable": [],
        "repeatedPrefixStrings": [],
        "scanned": 0,
        "files": 0,
        "textFiles": 0,
        "binaryFiles": 0,
        "occurrences": 0,
    }
    report["removedMetadata"] = drop_metadata(view)

    regular = []
    for directory, names in walk(view):
        for name in names:
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, view)
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                if rewrite_symlink(view, paths, rel, report):
                    report["symlinksRewritten"] += 1
            elif stat.S_ISREG(mode):
                regular.append(rel)

    for rel in regular:
        if is_elf(os.path.join(view, rel)) and rewrite_rpaths(view, paths, rel, report):
            report["rpathsRewritten"] += 1

    lines = []
    for rel in regular:
        report["scanned"] += 1
        line = scan(view, rel, prefix, report)
        if line is not None:
            lines.append(line)
    report["files"] = len(lines)

    os.makedirs(stage, exist_ok=True)
    with open(os.path.join(stage, "relocate.tsv"), "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    with open(os.path.join(stage, "prepare.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")
    return report


def main(argv):
    parser = argparse.ArgumentParser(description="Prepare a Spack copy view for a relocatable tarball.")
    parser.add_argument("--view", required=True, help="the view root (a symlink to the real view directory)")
    parser.add_argument("--stage", required=True, help="directory for relocate.tsv and prepare.json")
    parser.add_argument("--top", required=True, help="the tarball's top-level directory name")
    args = parser.parse_args(argv)
    try:
        report = prepare(args.view, args.stage, args.top)
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        print(f"prepare-relocation: {error}", file=sys.stderr)
        return 1
    print(
        f"prepare-relocation: {report['files']} file(s) to relocate, {report['rpathsRewritten']} RPATH(s) and "
        f"{report['symlinksRewritten']} symlink(s) rewritten, {len(report['outsideRpaths'])} RPATH entry(ies) "
        f"outside the view, {len(report['escapingSymlinks'])} symlink(s) leaving the view"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
