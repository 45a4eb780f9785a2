#!/usr/bin/env python3
"""Pack a prepared view and the generated files into a stack tarball, inside the build container.

Run by src/package/container-pack.ts after prepare-relocation.py: python3 pack-tree.py WORK/job.json
(python3 standard library, GNU tar, zstd or pigz/gzip). The bytes never pass through the factory's node process
on their way into the tarball: GNU tar reads the files and writes the archive straight into the compressor.

WORK/job.json (written by the factory):
  top          the tarball's top directory, <name>-<version>-<target>
  layout       the tarball's names, from src/package/layout.ts (`view`, `manifest` and `checksums` are read here:
               the names below are theirs today)
  view         the view's real path (the build prefix); archived as <top>/view
  members      [kind, type, rel] in archive order: kind "s" (WORK/stage/<top>/rel, a generated file or its
               directory) or "v" (view/rel; rel "" is the view itself), type "d" directory, "f" file, "l" symlink
  mtime        the time of every entry (seconds since the epoch)
  compression  "zstd" or "gzip"; gzip_program "pigz" (when present, the default) or "gzip"
  stream_digest  whether to hash the finished tarball too (else "-" stands for its sha256 below)
  output       optional: the tarball's path, e.g. in a directory the factory's machine shares with the container
  manifest     [head, tail]: manifest.json is head + the JSON object of every file's sha256 + tail
  assemble     [[rel, [upload part, ...]], ...]: generated files uploaded in parts, joined before packing
The archive holds the members in the given order, then <top>/manifest.json and <top>/SHA256SUMS. tar reads its
member names from a pipe; while it archives, a thread hashes every regular file (hardlinked names once), writes
manifest.json and SHA256SUMS into WORK/tail, and only then are their two names fed to tar. GNU tar format, entries
owned by 0:0 with no owner names, all with the one mtime, names in the given order: the output depends on the
content only (and on the compressor's version).

The compressed stream goes into WORK/out/tarball (or `output`); at the end stdout says
  done <bytes> <sha256 of the tarball, or "-"> <regular files in the archive> <tarball path> <compressor>
Exit codes: 0 done, 1 failure (the reason on stderr), 2 bad arguments.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading

READ_BYTES = 1 << 20


class Failed(Exception):
    pass


def compressor(compression, gzip_program):
    """(argv, label): zstd, or pigz when present (and asked for), else gzip. Each one's output depends on its input only."""
    if compression == "zstd":
        if shutil.which("zstd") is None:
            raise Failed("zstd compression needs the zstd program in the build container")
        return ["zstd", "-3", "-T0", "-q", "-c"], "zstd -3 -T0"
    if compression == "gzip":
        # -n: no name and no timestamp in the gzip header.
        if gzip_program == "pigz" and shutil.which("pigz") is not None:
            return ["pigz", "-6", "-n", "-c"], "pigz -6 -n"
        return ["gzip", "-6", "-n", "-c"], "gzip -6 -n"
    raise Failed("unknown compression %r" % (compression,))


def bre(text):
    """`text` as a literal in a GNU tar --transform (POSIX basic) regular expression delimited by ','."""
    return "".join("\\" + c if c in "\\.[]*^$," else c for c in text)


def replacement(text):
    return "".join("\\" + c if c in "\\&," else c for c in text)


def sum_line(hex_digest, name):
    """One `sha256sum` line, escaped as GNU coreutils escapes names with a backslash or a newline."""
    if "\\" not in name and "\n" not in name:
        return "%s  %s\n" % (hex_digest, name)
    return "\\%s  %s\n" % (hex_digest, name.replace("\\", "\\\\").replace("\n", "\\n"))


def utf8_order(name):
    return name.encode("utf-8")


def files_object(sums):
    """The manifest's `files`, exactly as JSON.stringify(files, null, 2) writes it one level deep."""
    if not sums:
        return "{}"
    lines = ",\n".join(
        "    %s: %s" % (json.dumps(path, ensure_ascii=False), json.dumps(sums[path]))
        for path in sorted(sums, key=utf8_order)
    )
    return "{\n%s\n  }" % lines


def sha256_file(path, buffer):
    digest = hashlib.sha256()
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class Job:
    def __init__(self, path):
        with open(path, "rb") as f:
            job = json.load(f)
        self.work = os.path.dirname(os.path.abspath(path))
        self.top = job["top"]
        self.layout = {key: job["layout"][key] for key in ("view", "manifest", "checksums")}
        self.view = job["view"].rstrip("/") or "/"
        self.stage = os.path.join(self.work, "stage")
        # manifest.json and SHA256SUMS: written while tar runs, so not in a directory tar has archived already (it
        # would see that directory change).
        self.tail = os.path.join(self.work, "tail")
        self.members = job["members"]
        self.mtime = int(job["mtime"])
        self.compression = job["compression"]
        self.gzip_program = job.get("gzip_program", "pigz")
        self.output = job.get("output")
        self.stream_digest = bool(job.get("stream_digest", False))
        self.manifest_head, self.manifest_tail = job["manifest"]
        self.assemble = job.get("assemble", [])
        if os.path.commonpath([self.view, self.work]) == self.view:
            raise Failed("the work directory %s is inside the view %s" % (self.work, self.view))

    def path(self, kind, rel):
        root = {"s": os.path.join(self.stage, self.top), "v": self.view, "t": self.tail}[kind]
        return os.path.join(root, rel) if rel else root

    def archive_rel(self, kind, rel):
        """Path relative to the top directory, as SHA256SUMS and the manifest name it."""
        if kind == "s":
            return rel
        view = self.layout["view"]
        return view + "/" + rel if rel else view


def join_uploads(job):
    for rel, parts in job.assemble:
        target = job.path("s", rel)
        with open(target, "ab") as out:
            for part in parts:
                source = os.path.join(job.work, part)
                with open(source, "rb") as f:
                    shutil.copyfileobj(f, out, READ_BYTES)
                os.remove(source)


class Sums(threading.Thread):
    """Hashes every regular file, then writes manifest.json and SHA256SUMS; `ready` is set either way."""

    def __init__(self, job, workers):
        super().__init__(daemon=True)
        self.job = job
        self.workers = workers
        self.ready = threading.Event()
        self.error = None
        self.files = 0

    def run(self):
        try:
            self.write_tail(self.hash_all())
        except BaseException as error:  # reported by the main thread
            self.error = error
        finally:
            self.ready.set()

    def hash_all(self):
        job = self.job
        jobs = []
        for kind, kind_type, rel in job.members:
            if kind_type == "f":
                jobs.append((job.archive_rel(kind, rel), job.path(kind, rel)))
        # Hardlinked names share one inode: hash it once.
        by_inode = {}
        for rel, path in jobs:
            info = os.lstat(path)
            by_inode.setdefault((info.st_dev, info.st_ino), path)
        paths = list(by_inode.values())
        digests = {}
        lock = threading.Lock()
        failures = []

        def worker(index):
            buffer = bytearray(READ_BYTES)
            for path in paths[index :: self.workers]:
                try:
                    hex_digest = sha256_file(path, buffer)
                except OSError as error:
                    failures.append("cannot read %s: %s" % (path, error.strerror))
                    return
                with lock:
                    digests[path] = hex_digest

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise Failed(failures[0])
        sums = {}
        for rel, path in jobs:
            info = os.lstat(path)
            sums[rel] = digests[by_inode[(info.st_dev, info.st_ino)]]
        return sums

    def write_tail(self, sums):
        job = self.job
        manifest = (job.manifest_head + files_object(sums) + job.manifest_tail).encode("utf-8")
        os.makedirs(job.tail, exist_ok=True)
        manifest_name, checksums_name = job.layout["manifest"], job.layout["checksums"]
        write_file(job.path("t", manifest_name), manifest)
        sums[manifest_name] = hashlib.sha256(manifest).hexdigest()
        text = "".join(sum_line(sums[name], name) for name in sorted(sums, key=utf8_order))
        write_file(job.path("t", checksums_name), text.encode("utf-8"))
        self.files = len(sums) + 1


def names_writer(job, sums, sink):
    """Feeds tar its member names (NUL-terminated, relative to /), the two last ones once they are written."""

    def name(path):
        return os.fsencode(path.lstrip("/")) + b"\0"

    try:
        batch = []
        for kind, _, rel in job.members:
            batch.append(name(job.path(kind, rel)))
            if len(batch) >= 1024:
                sink.write(b"".join(batch))
                batch = []
        sink.write(b"".join(batch))
        sink.flush()
        sums.ready.wait()
        if sums.error is None:
            sink.write(name(job.path("t", job.layout["manifest"])) + name(job.path("t", job.layout["checksums"])))
    except BrokenPipeError:
        pass  # tar stopped early; its exit status says why
    finally:
        try:
            sink.close()
        except BrokenPipeError:
            pass


def tar_argv(job):
    view_rel = job.view.lstrip("/")
    stage_rel = os.path.join(job.stage, job.top).lstrip("/")
    return [
        "tar",
        "--create",
        "--file=-",
        "--directory=/",
        "--format=gnu",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--mtime=@%d" % job.mtime,
        "--no-recursion",
        "--null",
        "--verbatim-files-from",
        # The view's real path becomes <top>/<view>, the staged top directory <top>; symlink targets stay as they are.
        "--transform=s,^%s,%s,S" % (bre(view_rel), replacement(job.top + "/" + job.layout["view"])),
        "--transform=s,^%s,%s,S" % (bre(stage_rel), replacement(job.top)),
        "--transform=s,^%s,%s,S" % (bre(job.tail.lstrip("/")), replacement(job.top)),
        "--files-from=-",
    ]


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def pack(job):
    # The staged top directory is the tarball's first member, also when no generated file was uploaded into it.
    os.makedirs(job.path("s", ""), exist_ok=True)
    join_uploads(job)
    argv, label = compressor(job.compression, job.gzip_program)
    output = job.output or os.path.join(job.work, "out", "tarball")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    # One hashing thread per four CPUs: on small machines the compressor needs the rest.
    sums = Sums(job, max(1, min(8, cpu_count() // 4)))
    env = dict(os.environ, LC_ALL="C")
    # tar writes into the compressor, the compressor into the file: no process in between copies the bytes.
    with open(output, "wb") as sink:
        tar = subprocess.Popen(tar_argv(job), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        compress = subprocess.Popen(argv, stdin=tar.stdout, stdout=sink, env=env)
    tar.stdout.close()
    children = [tar, compress]

    def stop(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.kill()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    sums.start()
    writer = threading.Thread(target=names_writer, args=(job, sums, tar.stdin), daemon=True)
    writer.start()
    compress_status = compress.wait()
    tar_status = tar.wait()
    writer.join()
    sums.join()
    if sums.error is not None:
        raise Failed("checksums: %s" % (sums.error,))
    if tar_status != 0:
        raise Failed("tar exited with status %d" % tar_status)
    if compress_status != 0:
        raise Failed("%s exited with status %d" % (argv[0], compress_status))
    digest = sha256_file(output, bytearray(READ_BYTES)) if job.stream_digest else "-"
    print("done %d %s %d %s %s" % (os.stat(output).st_size, digest, sums.files, output, label), flush=True)


def main(argv):
    if len(argv) != 1:
        print("usage: pack-tree.py WORK/job.json", file=sys.stderr)
        return 2
    try:
        pack(Job(argv[0]))
    except (Failed, OSError, KeyError, ValueError) as error:
        print("pack-tree: %s" % (error,), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
