#!/usr/bin/env python3
"""Prepare a Spack copy view for shipping as a relocatable tarball (python3 standard library + patchelf).

Runs inside the build container, after `spack env view regenerate`, on the view in place:
  --view   the view root as configured (a symlink to Spack's real `._<name>/<hash>` directory)
  --stage  a directory for the outputs: relocate.tsv, node-requirements.tsv and prepare.json
  --top    the tarball's top-level directory name (<name>-<version>-<target>), recorded in prepare.json
  --install-root  optional: Spack's install tree root (unpadded); a file name holding it is dropped (see (a2))

The build prefix is the real path of the view root: Spack relocated the copied files to it. The script
  (a) removes the view's `.spack/` metadata directory (install-tree placeholders, build environments);
  (a2) drops every file or directory whose *name* holds a path of the build machine (the build prefix, the install
      root, Spack's `__spack_path_placeholder__`), such as glib's gdb helper
      `share/gdb/auto-load/<install prefix>/lib/libglib-2.0.so...-gdb.py`: gdb looks such a file up by the library's
      absolute path, which is the build machine's, so it is of no use at any other prefix;
  (b) rewrites RPATH/RUNPATH entries inside the view to `$ORIGIN/<relative>`, keeps system entries and reports
      any other absolute entry (for instance into the Spack install tree). Each ELF file keeps the dynamic tag it
      was linked with: Spack links with DT_RPATH, which LD_LIBRARY_PATH cannot override, and `patchelf
      --set-rpath` alone would turn it into DT_RUNPATH, letting any cluster module's LD_LIBRARY_PATH swap a view
      library for its own; such files are rewritten with `--force-rpath`. The tag of every ELF file is read again
      afterwards (a change fails the script) and written to dynamic-tags.tsv, which the manifest carries and
      `stack-factory verify` checks;
  (c) turns absolute symlinks into the view into relative ones; an absolute symlink to a system path (under /usr,
      /bin, /lib...: a Python virtual environment's `bin/python3.X -> /usr/bin/python3.X`) is taken out of the
      view and recorded in system-links.tsv, for install.sh to make again on the node once it has checked that
      the target exists there (node-requirements.tsv `system-file`); other symlinks that leave the view are
      reported; a virtual environment's pyvenv.cfg loses its `command` line (how the environment was made, naming
      Spack's padded install tree; Python does not read it);
  (d) rewrites shebangs to the helper-free form below;
  (e) zeroes the dead bytes of every ELF file's .dynstr (bytes no dynamic entry, dynamic symbol or version
      record references: the tails of strings Spack shortened in place, such as `__spack_path_placeholder__`);
  (f) scans every regular file for the build prefix and writes the relocation index (format: src/package/layout.ts);
  (g) records what the tree needs from a node (node-requirements.tsv, and `portability` in prepare.json);
  (h) reports files still holding Spack's placeholder or a piece of an install prefix
      (`/linux-<target>/<name>-<version>-<hash>`, the stale tail of a path whose front was relocated), which the
      factory logs as warnings.
Outputs in --stage: relocate.tsv, node-requirements.tsv, dynamic-tags.tsv (`view/<path><TAB>RPATH|RUNPATH|
RPATH+RUNPATH|none` for every ELF file), system-links.tsv (`view/<path><TAB><absolute target>`), prepare.json.
Exit codes: 0 done (warnings are in prepare.json), 1 failure, 2 bad arguments.

Decisions (the installer, templates/install.sh.eta, relies on them):
  * Text or binary is decided on the whole file: text is valid UTF-8 without a NUL byte anywhere. A script with a
    binary payload after a long text header is binary, so its bytes never move.
  * Binary files: every occurrence of the build prefix is listed by its offset, also a second or third one inside
    one C string (`<p>/share/a:<p>/share/b`), and the installer overwrites exactly those bytes with the new path
    front-padded with `/` (`//////new/prefix/view`), as Spack does. Nothing after the prefix moves and no NUL is
    written, so a string the linker tail-merged into the end of another (`lib-data.txt` inside
    `<p>/lib/lib-data.txt`, at -Os) reads the same after relocation.
  * Text files: the prefix is replaced with Spack's boundary rule: it counts when the word holding it (a run of
    `[A-Za-z0-9_-]` right before it, possibly empty) is not preceded by `[A-Za-z0-9_/-]`, so `-L<p>/lib` and
    `=<p>` are relocated and `/other<p>` is not. Occurrences the rule leaves are reported (textLeftAlone).
  * Shebangs: Spack turns every shebang longer than the kernel's limit into `#!/bin/sh <install root>/bin/sbang`
    plus the real shebang on line 2; that helper is not shipped and its path means nothing on a node. Any such
    script, and any script whose shebang names the build prefix, gets the fixed first line INLINE_SBANG: sbang's
    job in 90 characters, through /usr/bin/env -S and /bin/sh, reading the interpreter from line 2 (`#!`, `--!`
    for Lua, `//!` for node). Line 2 is relocated like any text, so the script runs at any prefix length: a helper
    shipped in the view would have put `#!/bin/sh <prefix>/view/bin/sbang` on line 1, which is longer than the
    interpreter's own path and beyond the 127 bytes older kernels read once the prefix is long. The node needs
    `env -S` (coreutils 8.30 or later); node-requirements.tsv says so and install.sh checks it.
"""

import argparse
import json
import mmap
import os
import re
import shutil
import stat
import struct
import subprocess
import sys

ELF_MAGIC = b"\x7fELF"
PLACEHOLDER = b"__spack_path_placeholder__"
# The first line of every rewritten shebang (see the module docstring). `${l#*!}` drops `#!`, `--!` or `//!`.
INLINE_SBANG = b"#!/usr/bin/env -S /bin/sh -c '{ read -r l; read -r l; } <\"$0\"; exec ${l#*!} \"$0\" \"$@\"'"
SBANG_LINE = re.compile(rb"^#![ \t]*/bin/(?:ba)?sh[ \t]+\S*/sbang[ \t]*$")
# Libraries every glibc system has: not a portability hazard (their symbol versions are still checked).
SYSTEM_LIBRARIES = frozenset(
    [
        "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1", "libresolv.so.2",
        "libanl.so.1", "libmvec.so.1", "libBrokenLocale.so.1", "libthread_db.so.1", "libc_malloc_debug.so.0",
        "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "ld64.so.2", "ld-linux.so.2", "ld-linux-riscv64-lp64d.so.1",
    ]
)
# Symbol version families recorded as the tree's highest requirement.
VERSION_FAMILIES = ("GLIBC", "GLIBCXX", "CXXABI", "GCC")
ELF_MACHINES = {3: "i386", 40: "arm", 62: "x86_64", 21: "ppc64", 183: "aarch64", 243: "riscv64", 22: "s390x"}
# RPATH entries under these stay as they are: the OS's own libraries.
SYSTEM_DIRS = ("/lib", "/lib32", "/lib64", "/libx32", "/usr")
# Symlinks of the view to paths under these are made again on the node (system-links.tsv) once it has the target.
SYSTEM_LINK_DIRS = SYSTEM_DIRS + ("/bin", "/sbin")


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


# Characters a recorded system path may hold (it is written into a TSV file and made a symlink target by install.sh).
SYSTEM_PATH = re.compile(r"^/[A-Za-z0-9._+-]+(?:/[A-Za-z0-9._+-]+)*$")
PT_DYNAMIC, DT_RPATH, DT_RUNPATH = 2, 15, 29


def dynamic_tag(path):
    """`RPATH`, `RUNPATH`, `RPATH+RUNPATH` or `none`: the search-path tags of an ELF file's dynamic segment (read
    through the program headers, as the dynamic loader reads it)."""
    f, data = mapped(path)
    try:
        if len(data) < 64 or data[4] not in (1, 2) or data[5] not in (1, 2):
            raise ElfError("not a supported ELF header")
        is64, end = data[4] == 2, "<" if data[5] == 1 else ">"
        phoff = struct.unpack_from(end + ("Q" if is64 else "I"), data, 32 if is64 else 28)[0]
        phentsize, phnum = struct.unpack_from(end + "HH", data, 54 if is64 else 42)
        tags = set()
        for i in range(phnum):
            at = phoff + i * phentsize
            if struct.unpack_from(end + "I", data, at)[0] != PT_DYNAMIC:
                continue
            offset, size = struct.unpack_from(end + ("QQQQ" if is64 else "IIII"), data, at + (8 if is64 else 4))[0::3]
            step = 16 if is64 else 8
            for entry in range(offset, min(offset + size, len(data)) - step + 1, step):
                tag = struct.unpack_from(end + ("q" if is64 else "i"), data, entry)[0]
                if tag == 0:
                    break
                if tag in (DT_RPATH, DT_RUNPATH):
                    tags.add("RPATH" if tag == DT_RPATH else "RUNPATH")
        return "+".join(sorted(tags)) or "none"
    except struct.error as error:
        raise ElfError(str(error)) from error
    finally:
        data.close()
        f.close()


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


def rewrite_rpaths(view, paths, rel, report, tag):
    """Rewrites the RPATH/RUNPATH of one ELF file, keeping its dynamic tag `tag`; returns True when it changed."""
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
        # --force-rpath keeps DT_RPATH a DT_RPATH; without it patchelf writes a DT_RUNPATH.
        result = run_patchelf([*(["--force-rpath"] if tag == "RPATH" else []), "--set-rpath", updated, path])
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
            system = os.path.normpath(squeeze_slashes(target))
            listable = "\t" not in rel and "\n" not in rel
            if listable and SYSTEM_PATH.match(system) and any(is_under(system, d) for d in SYSTEM_LINK_DIRS):
                os.remove(link)
                report["systemLinks"].append({"link": rel, "target": system})
                return False
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


def drop_build_paths_in_names(view, markers, report):
    """Removes every entry whose path in the view holds one of `markers` (paths of the build machine), and the
    directories that leaves empty."""
    emptied = set()
    for directory, dirs, files in os.walk(view, topdown=True):
        for name in sorted(dirs + files):
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, view)
            if not any(m in "/" + rel + "/" for m in markers):
                continue
            if name in dirs and not os.path.islink(full):
                for d, _, _ in os.walk(full):
                    os.chmod(d, stat.S_IRWXU)
                shutil.rmtree(full)
                dirs.remove(name)
            else:
                os.remove(full)
            report["droppedNames"].append(rel)
            emptied.add(directory)
    for directory in sorted(emptied, key=len, reverse=True):
        while directory != view and not os.listdir(directory):
            os.rmdir(directory)
            directory = os.path.dirname(directory)


def clean_pyvenv_cfg(path, report, rel):
    """Drops the `command` line of a virtual environment's pyvenv.cfg (it names where the environment was made)."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    kept = [line for line in lines if not re.match(rb"^\s*command\s*=", line)]
    if len(kept) == len(lines):
        return
    with Writable(path):
        with open(path, "wb") as f:
            f.write(b"\n".join(kept))
    report["venvConfigs"].append(rel)


def is_text(data):
    """Text: no NUL byte and valid UTF-8, judged on the whole file."""
    if data.find(b"\0") != -1:
        return False
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def text_regex(prefix):
    """Spack's text rule: the word holding the prefix must not be preceded by [\w\-/]. Group 2 is the prefix."""
    return re.compile(rb"(?<![\w\-/])([\w\-]*?)(" + re.escape(prefix) + rb")")


def scan(view, rel, prefix, text_rule, report):
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
        if is_text(data):
            total = data[:].count(prefix)
            matched = sum(1 for _ in text_rule.finditer(data))
            if matched < total:
                report["textLeftAlone"].append({"file": rel, "occurrences": total - matched})
            if matched == 0:
                return None
            report["textFiles"] += 1
            return f"text\t{index_path}"
        offsets = []
        position = data.find(prefix)
        while position != -1:
            offsets.append(position)
            position = data.find(prefix, position + len(prefix))
    report["binaryFiles"] += 1
    report["occurrences"] += len(offsets)
    return f"binary\t{index_path}\t" + ",".join(str(o) for o in offsets)


# ---- shebangs ---------------------------------------------------------------------------------------------------
def first_lines(path, limit=8192):
    with open(path, "rb") as f:
        head = f.read(limit)
    return head


def rewrite_shebang(view, rel, prefix, report):
    """Gives a script with Spack's sbang lines, or with a shebang naming the build prefix, the INLINE_SBANG line."""
    path = os.path.join(view, rel)
    head = first_lines(path)
    if not head.startswith(b"#!"):
        return False
    end = head.find(b"\n")
    if end == -1:
        return False
    line1 = head[:end]
    if line1 == INLINE_SBANG:
        return False
    if SBANG_LINE.match(line1):
        # Spack's form: line 2 already holds the real shebang in the script's own comment syntax.
        replacement = INLINE_SBANG + b"\n"
        cut = end + 1
    elif prefix in line1:
        interpreter = line1[2:].strip()
        name = os.path.basename(interpreter.split()[0]) if interpreter else b""
        if b"php" in name:
            report["shebangsLeftAlone"].append(rel)
            return False
        marker = b"--!" if name.startswith(b"lua") else b"//!" if name.startswith(b"node") else b"#!"
        replacement = INLINE_SBANG + b"\n" + marker + interpreter + b"\n"
        cut = end + 1
    else:
        return False
    with open(path, "rb") as f:
        data = f.read()
    with Writable(path):
        with open(path, "wb") as f:
            f.write(replacement + data[cut:])
    return True


# ---- ELF: dead .dynstr bytes and what the tree needs from a node ------------------------------------------------
SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_VERDEF, SHT_GNU_VERNEED = 6, 11, 0x6FFFFFFD, 0x6FFFFFFE
# Dynamic tags whose value is an offset into the dynamic string table.
DT_STRING_TAGS = frozenset([1, 14, 15, 29, 0x7FFFFFFD, 0x7FFFFFFE, 0x7FFFFFFF, 0x6FFFFEFA, 0x6FFFFEFB, 0x6FFFFEFC])
DT_NEEDED = 1


class ElfError(Exception):
    pass


class Elf:
    """The parts of an ELF file this script reads: sections, dynamic entries, version needs, .dynstr references."""

    def __init__(self, data):
        if len(data) < 64 or data[:4] != ELF_MAGIC or data[4] not in (1, 2) or data[5] not in (1, 2):
            raise ElfError("not a supported ELF header")
        self.data = data
        self.is64 = data[4] == 2
        self.end = "<" if data[5] == 1 else ">"
        if self.is64:
            fields = struct.unpack_from(self.end + "HHIQQQIHHHHHH", data, 16)
        else:
            fields = struct.unpack_from(self.end + "HHIIIIIHHHHHH", data, 16)
        self.type, self.machine = fields[0], fields[1]
        shoff, shentsize, shnum = fields[5], fields[10], fields[11]
        self.sections = []
        if shoff == 0 or shnum == 0:
            return
        fmt = self.end + ("IIQQQQIIQQ" if self.is64 else "IIIIIIIIII")
        if shoff + shnum * shentsize > len(data) or shentsize < struct.calcsize(fmt):
            raise ElfError("section headers beyond the end of the file")
        for i in range(shnum):
            name, kind, _flags, _addr, offset, size, link, info, _align, entsize = struct.unpack_from(fmt, data, shoff + i * shentsize)
            self.sections.append({"type": kind, "offset": offset, "size": size, "link": link, "info": info, "entsize": entsize})

    def u(self, fmt, offset):
        return struct.unpack_from(self.end + fmt, self.data, offset)

    def dynstr_index(self):
        for s in self.sections:
            if s["type"] == SHT_DYNAMIC:
                return s["link"]
        return None

    def string(self, strtab, offset):
        start = strtab["offset"] + offset
        end = self.data.find(b"\0", start, strtab["offset"] + strtab["size"])
        if offset >= strtab["size"] or end == -1:
            raise ElfError("string offset outside .dynstr")
        return bytes(self.data[start:end])

    def dynamic_refs(self):
        """(tag, offset) of the dynamic entries holding strings."""
        refs = []
        for s in self.sections:
            if s["type"] != SHT_DYNAMIC:
                continue
            size = 16 if self.is64 else 8
            for at in range(s["offset"], s["offset"] + s["size"] - size + 1, size):
                tag, value = self.u("qQ" if self.is64 else "iI", at)
                if tag == 0:
                    break
                if tag in DT_STRING_TAGS:
                    refs.append((tag, value))
        return refs

    def verneed(self):
        """(file offset, [(name offset, flags)]) for each version need record."""
        found = []
        for s in self.sections:
            if s["type"] != SHT_GNU_VERNEED:
                continue
            at = s["offset"]
            for _ in range(s["info"] or 1 << 16):
                _version, count, vn_file, vn_aux, vn_next = self.u("HHIII", at)
                names = []
                aux = at + vn_aux
                for _ in range(count):
                    _hash, flags, _other, vna_name, vna_next = self.u("IHHII", aux)
                    names.append((vna_name, flags))
                    if vna_next == 0:
                        break
                    aux += vna_next
                found.append((vn_file, names))
                if vn_next == 0:
                    break
                at += vn_next
        return found

    def referenced_dynstr(self, index):
        """Every offset into .dynstr (section `index`) that this file uses; raises on a linking section it cannot read."""
        refs = [value for _, value in self.dynamic_refs()]
        for s in self.sections:
            if s["link"] != index:
                continue
            if s["type"] == SHT_DYNAMIC:
                continue
            if s["type"] == SHT_DYNSYM:
                entsize = s["entsize"] or (24 if self.is64 else 16)
                for at in range(s["offset"], s["offset"] + s["size"] - entsize + 1, entsize):
                    refs.append(self.u("I", at)[0])
            elif s["type"] == SHT_GNU_VERNEED:
                for vn_file, names in self.verneed():
                    refs.append(vn_file)
                    refs.extend(name for name, _ in names)
            elif s["type"] == SHT_GNU_VERDEF:
                at = s["offset"]
                for _ in range(s["info"] or 1 << 16):
                    _v, _flags, _ndx, count, _hash, vd_aux, vd_next = self.u("HHHHIII", at)
                    aux = at + vd_aux
                    for _ in range(count):
                        vda_name, vda_next = self.u("II", aux)
                        refs.append(vda_name)
                        if vda_next == 0:
                            break
                        aux += vda_next
                    if vd_next == 0:
                        break
                    at += vd_next
            else:
                raise ElfError(f"section type {s['type']:#x} links to .dynstr")
        return refs


def mapped(path):
    """The file's bytes, memory-mapped read-only (ELF files are never empty: is_elf read their magic)."""
    f = open(path, "rb")
    try:
        return f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        f.close()
        raise


def clear_dead_dynstr(path, report, rel):
    """Zeroes the bytes of .dynstr that no reference reaches; returns how many were cleared."""
    f, data = mapped(path)
    try:
        elf = Elf(data)
        index = elf.dynstr_index()
        if index is None or index >= len(elf.sections):
            return 0
        dynstr = elf.sections[index]
        start, size = dynstr["offset"], dynstr["size"]
        if start + size > len(data):
            raise ElfError(".dynstr beyond the end of the file")
        live = bytearray(size)
        for offset in elf.referenced_dynstr(index):
            if offset >= size:
                raise ElfError("a reference beyond the end of .dynstr")
            end = data.find(b"\0", start + offset, start + size)
            if end == -1:
                raise ElfError("an unterminated string in .dynstr")
            live[offset : end - start + 1] = b"\1" * (end - start + 1 - offset)
        patched = bytearray(data[start : start + size])
    except (ElfError, struct.error, ValueError, IndexError) as error:
        report["dynstrNotCleared"].append({"file": rel, "reason": str(error)})
        return 0
    finally:
        data.close()
        f.close()
    cleared = 0
    for i, flag in enumerate(live):
        if not flag and patched[i] != 0:
            patched[i] = 0
            cleared += 1
    if cleared:
        with Writable(path):
            with open(path, "r+b") as out:
                out.seek(start)
                out.write(patched)
    return cleared


def needs_of(path, rel, report):
    """(machine, NEEDED sonames, [(library, version name)]) of one ELF file, or None."""
    f, data = mapped(path)
    try:
        elf = Elf(data)
        index = elf.dynstr_index()
        if index is None:
            return elf.machine, [], []
        dynstr = elf.sections[index]
        needed = [elf.string(dynstr, value).decode("utf-8", "replace") for tag, value in elf.dynamic_refs() if tag == DT_NEEDED]
        versions = []
        for vn_file, names in elf.verneed():
            library = elf.string(dynstr, vn_file).decode("utf-8", "replace")
            for name, flags in names:
                if not flags & 0x2:  # VER_FLG_WEAK: optional
                    versions.append((library, elf.string(dynstr, name).decode("utf-8", "replace")))
        return elf.machine, needed, versions
    except (ElfError, struct.error, ValueError, IndexError) as error:
        report["elfNotRead"].append({"file": rel, "reason": str(error)})
        return None
    finally:
        data.close()
        f.close()


def version_key(name):
    family, _, number = name.partition("_")
    return tuple(int(p) if p.isdigit() else 0 for p in number.split("."))


def portability(view, regular, names_in_view, report):
    """What the tree needs from a node; returns the lines of node-requirements.tsv."""
    machines = set()
    libraries = {}
    versions = set()
    highest = {}
    for rel in regular:
        path = os.path.join(view, rel)
        if not is_elf(path):
            continue
        found = needs_of(path, rel, report)
        if found is None:
            continue
        machine, needed, needs = found
        machines.add(machine)
        for soname in needed:
            if soname not in names_in_view:
                libraries.setdefault(soname, []).append(rel)
        for library, name in needs:
            family = name.partition("_")[0]
            if family in VERSION_FAMILIES:
                if family not in highest or version_key(name) > version_key(highest[family]):
                    highest[family] = name
            if library not in names_in_view:
                versions.add((library, name))
    hazards = [{"library": lib, "neededBy": sorted(users)[:20]} for lib, users in sorted(libraries.items()) if lib not in SYSTEM_LIBRARIES]
    machine_names = sorted(ELF_MACHINES.get(m, f"em-{m}") for m in machines)
    report["portability"] = {
        "machine": machine_names[0] if len(machine_names) == 1 else machine_names,
        "highestVersions": {f: highest[f] for f in VERSION_FAMILIES if f in highest},
        "nodeLibraries": sorted(libraries),
        "nodeVersions": [{"library": lib, "version": name} for lib, name in sorted(versions, key=lambda v: (v[0], version_key(v[1]), v[1]))],
        "hazards": hazards,
        "needsEnvSplit": report["shebangsRewritten"] > 0,
    }
    lines = [f"machine\t{m}\t{ELF_MACHINES.get(m, m)}" for m in sorted(machines)]
    lines += [f"library\t{lib}" for lib in sorted(libraries)]
    lines += [f"version\t{lib}\t{name}" for lib, name in sorted(versions, key=lambda v: (v[0], version_key(v[1]), v[1]))]
    if report["shebangsRewritten"] > 0:
        lines.append("env-split")
    return lines


# A piece of a Spack install prefix (`/linux-<target>/<name>-<version>-<32-character hash>`): what a stale tail of an
# install-tree path still holds once its front is gone.
INSTALL_LAYOUT = re.compile(rb"/linux-[a-z0-9_]+/[A-Za-z0-9_.+-]+-[a-z0-9]{32}")


def placeholders(view, regular, report):
    """Reports files still holding Spack's placeholder, or a piece of an install prefix (a stale tail)."""
    for rel in regular:
        path = os.path.join(view, rel)
        if os.path.getsize(path) < len(PLACEHOLDER):
            continue
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data.find(PLACEHOLDER) != -1:
                report["placeholderFiles"].append(rel)
            left = INSTALL_LAYOUT.search(data)
            if left is not None:
                report["installPathsLeft"].append({"file": rel, "found": left.group(0).decode("utf-8", "replace")})


def prepare(view_root, stage, top, install_root=None):
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
        "shebangsRewritten": 0,
        "dynstrBytesCleared": 0,
        "droppedNames": [],
        "systemLinks": [],
        "venvConfigs": [],
        "dynamicTags": {},
        "outsideRpaths": [],
        "escapingSymlinks": [],
        "unlistable": [],
        "textLeftAlone": [],
        "shebangsLeftAlone": [],
        "dynstrNotCleared": [],
        "elfNotRead": [],
        "placeholderFiles": [],
        "installPathsLeft": [],
        "scanned": 0,
        "files": 0,
        "textFiles": 0,
        "binaryFiles": 0,
        "occurrences": 0,
    }
    report["removedMetadata"] = drop_metadata(view)
    markers = [view + "/", link + "/", PLACEHOLDER.decode()]
    if install_root:
        markers.append(install_root.rstrip("/") + "/")
    drop_build_paths_in_names(view, markers, report)

    regular = []
    names_in_view = set()
    for directory, names in walk(view):
        for name in names:
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, view)
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                names_in_view.add(name)
                if rewrite_symlink(view, paths, rel, report):
                    report["symlinksRewritten"] += 1
            elif stat.S_ISREG(mode):
                names_in_view.add(name)
                regular.append(rel)
                if name == "pyvenv.cfg":
                    clean_pyvenv_cfg(full, report, rel)

    tags = []
    for rel in regular:
        path = os.path.join(view, rel)
        if is_elf(path):
            tag = elf_tag(path, rel, report)
            if rewrite_rpaths(view, paths, rel, report, tag):
                report["rpathsRewritten"] += 1
            report["dynstrBytesCleared"] += clear_dead_dynstr(path, report, rel)
            if tag is not None:
                after = elf_tag(path, rel, report)
                if after != tag:
                    raise RuntimeError(f"{rel}: its dynamic tag changed from {tag} to {after} while its RPATH was rewritten")
                tags.append(f"view/{rel}\t{tag}")
                report["dynamicTags"][tag] = report["dynamicTags"].get(tag, 0) + 1
        elif rewrite_shebang(view, rel, prefix, report):
            report["shebangsRewritten"] += 1

    lines = []
    text_rule = text_regex(prefix)
    for rel in regular:
        report["scanned"] += 1
        line = scan(view, rel, prefix, text_rule, report)
        if line is not None:
            lines.append(line)
    report["files"] = len(lines)
    placeholders(view, regular, report)
    requirements = portability(view, regular, names_in_view, report)
    requirements += [f"system-file\t{t}" for t in sorted({s["target"] for s in report["systemLinks"]})]

    os.makedirs(stage, exist_ok=True)
    with open(os.path.join(stage, "relocate.tsv"), "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    with open(os.path.join(stage, "node-requirements.tsv"), "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in requirements))
    write_lines(os.path.join(stage, "dynamic-tags.tsv"), tags)
    write_lines(
        os.path.join(stage, "system-links.tsv"), [f"view/{s['link']}\t{s['target']}" for s in report["systemLinks"]]
    )
    with open(os.path.join(stage, "prepare.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")
    return report


def elf_tag(path, rel, report):
    """The file's dynamic tag, or None (reported) when it only starts like an ELF file: nothing loads it."""
    try:
        return dynamic_tag(path)
    except ElfError as error:
        report["elfNotRead"].append({"file": rel, "reason": f"dynamic segment: {error}"})
        return None


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def main(argv):
    parser = argparse.ArgumentParser(description="Prepare a Spack copy view for a relocatable tarball.")
    parser.add_argument("--view", required=True, help="the view root (a symlink to the real view directory)")
    parser.add_argument("--stage", required=True, help="directory for relocate.tsv, node-requirements.tsv and prepare.json")
    parser.add_argument("--top", required=True, help="the tarball's top-level directory name")
    parser.add_argument("--install-root", help="Spack's install tree root: file names holding it are dropped")
    args = parser.parse_args(argv)
    try:
        report = prepare(args.view, args.stage, args.top, args.install_root)
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        print(f"prepare-relocation: {error}", file=sys.stderr)
        return 1
    print(
        f"prepare-relocation: {report['files']} file(s) to relocate, {report['rpathsRewritten']} RPATH(s) and "
        f"{report['symlinksRewritten']} symlink(s) and {report['shebangsRewritten']} shebang(s) rewritten, "
        f"{report['dynstrBytesCleared']} dead .dynstr byte(s) cleared, {len(report['outsideRpaths'])} RPATH entry(ies) "
        f"outside the view, {len(report['escapingSymlinks'])} symlink(s) leaving the view, "
        f"{len(report['portability']['hazards'])} library(ies) needed from outside the view that a node may lack, "
        f"{len(report['systemLinks'])} symlink(s) to system paths for the node to provide, "
        f"{len(report['droppedNames'])} name(s) holding build paths dropped; dynamic tags: "
        + (", ".join(f"{n} {t}" for t, n in sorted(report["dynamicTags"].items())) or "no ELF files")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
