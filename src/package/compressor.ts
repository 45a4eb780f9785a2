/**
 * The compressions a tarball may have. The packer (templates/pack-tree.py, in the build container) runs zstd, or
 * pigz when present and else gzip: each one's output depends on its input only.
 */
export type Compression = "gzip" | "zstd";

export const COMPRESSIONS: readonly Compression[] = ["gzip", "zstd"];

export function extensionOf(compression: Compression): string {
  return compression === "zstd" ? ".tar.zst" : ".tar.gz";
}
