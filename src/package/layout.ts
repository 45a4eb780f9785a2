/**
 * Layout of a stack tarball and the relocation index shared by the packer (src/package), the in-container
 * preparation script (templates/prepare-relocation.py) and the install script (templates/install.sh.eta).
 *
 * <name>-<version>-<target>/            the one top-level directory
 *   install.sh                          the installer (bash + coreutils + grep + sed + findutils + tar only)
 *   view/                               a self-contained copy view; RPATHs are $ORIGIN-relative
 *   modules/<module>/<version>.lua      the Lmod module; finds its prefix from its own location
 *   modules/<module>/<version>          the same as an Environment Modules (Tcl) modulefile (`modules.systems`)
 *   data/<name>_assets/                 files the stack ships
 *   manifest.json                       stack, target, specs, build prefix, files to relocate, checksums
 *   sbom.cdx.json                       CycloneDX SBOM of the concrete specs
 *   .stack-factory/relocate.tsv         the relocation index (below)
 *   SHA256SUMS                          `sha256sum -c` format, every regular file but itself
 *
 * An install at PREFIX puts the top directory's content at PREFIX, so the build prefix (the view's path in the
 * build container) maps to PREFIX/view. relocate.tsv has one line per file that still contains the build prefix,
 * paths relative to the top directory, fields separated by one TAB:
 *   text<TAB><path>
 *   binary<TAB><path><TAB><offset>[,<offset>...]
 * A text file (valid UTF-8 without NUL, judged on the whole file) is rewritten by sed wherever the prefix starts a
 * word (Spack's boundary rule, see templates/prepare-relocation.py). For a binary file, each <offset> is where one
 * occurrence of the build prefix starts, every occurrence listed, several in one C string included; the installer
 * overwrites exactly those bytes with `<PREFIX>/view` front-padded with `/` to the build prefix's length (Spack's
 * padding: nothing after the prefix moves, no NUL is written, tail-merged strings stay intact).
 * .stack-factory/node-requirements.tsv says what the tree needs from a node, one TAB-separated record a line:
 *   machine<TAB><e_machine number><TAB><name>     the ELF machine of the view's binaries
 *   library<TAB><soname>                          a library some ELF needs that the view does not hold
 *   version<TAB><soname><TAB><version>            a symbol version (GLIBC_2.34, ...) needed from such a library
 *   env-split                                     the tree has rewritten shebangs: /usr/bin/env -S must work
 *   system-file<TAB><absolute path>               a path of the node that a symlink of the view points to
 * .stack-factory/system-links.tsv: symlinks of the view to system paths (a Python virtual environment's
 * `bin/python3.X -> /usr/bin/python3.X`), which no tarball may carry: install.sh makes them on the node.
 *   <path><TAB><absolute target>                  e.g. view/bin/python3.11<TAB>/usr/bin/python3.11
 * manifest.json `dynamic_tags` records the search-path tag every ELF file of the view was linked with (path →
 * RPATH, RUNPATH, RPATH+RUNPATH or none; prepare-relocation.py keeps them): `verify` refuses a tarball whose ELF
 * files differ from it (a DT_RPATH turned DT_RUNPATH lets LD_LIBRARY_PATH replace the view's libraries).
 * These files are written by prepare-relocation.py only and read by install.sh (and the packer, for the manifest).
 * The installer records the prefix it installed to in `.stack-factory/installed-prefix`; a later run relocates
 * from that prefix (text) or rewrites the same offsets (binary).
 */
export const RELOCATE_INDEX = ".stack-factory/relocate.tsv";
export const INSTALLED_PREFIX_FILE = ".stack-factory/installed-prefix";
export const BUILD_PREFIX_FILE = ".stack-factory/build-prefix";
export const NODE_REQUIREMENTS_FILE = ".stack-factory/node-requirements.tsv";
export const SYSTEM_LINKS_FILE = ".stack-factory/system-links.tsv";
export const CHECKSUMS_FILE = "SHA256SUMS";
export const MANIFEST_FILE = "manifest.json";
export const SBOM_FILE = "sbom.cdx.json";
export const INSTALL_SCRIPT = "install.sh";
