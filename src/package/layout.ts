/**
 * Layout of a stack tarball and the relocation index shared by the packer (src/package), the in-container
 * preparation script (templates/prepare-relocation.py) and the install script (templates/install.sh.eta).
 *
 * <name>-<version>-<target>/            the one top-level directory
 *   install.sh                          the installer (bash + coreutils + grep + sed + findutils + tar only)
 *   view/                               a self-contained copy view; RPATHs are $ORIGIN-relative
 *   modules/<module>/<version>.lua      the Lmod module; finds its prefix from its own location
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
 *   binary<TAB><path><TAB><offset>:<length>:<suffix-hex>[,<offset>:<length>:<suffix-hex>...]
 * For a binary occurrence, <offset> is the byte offset of the build prefix, <length> the length of the whole
 * NUL-terminated C string that starts there (without the NUL), <suffix-hex> the hex of the string after the
 * prefix. The installer writes `<PREFIX>/view<suffix>` at <offset> and NUL-pads it to <length> bytes.
 * The installer records the prefix it installed to in `.stack-factory/installed-prefix`; a later run relocates
 * from that prefix (text) or rewrites the same offsets (binary).
 */
export const RELOCATE_INDEX = ".stack-factory/relocate.tsv";
export const INSTALLED_PREFIX_FILE = ".stack-factory/installed-prefix";
export const BUILD_PREFIX_FILE = ".stack-factory/build-prefix";
export const CHECKSUMS_FILE = "SHA256SUMS";
export const MANIFEST_FILE = "manifest.json";
export const SBOM_FILE = "sbom.cdx.json";
export const INSTALL_SCRIPT = "install.sh";
