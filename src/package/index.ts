export * from "./layout.js";
export { defaultMtime, type PackResult } from "./pack-rules.js";
export { verifyTarball, type VerifyReport } from "./verify.js";
export {
  buildManifest,
  withFiles,
  MANIFEST_KEYS,
  MANIFEST_FORMAT_VERSION,
  type Manifest,
  type ManifestInput,
  type ManifestSpec,
} from "./manifest.js";
export { buildSbom, type SbomSubject } from "./sbom.js";
export { parseSpecs, type SpecRecord } from "./specs.js";
export { parseRelocateIndex, type RelocateEntry } from "./relocation-index.js";
export { assetFiles, type GeneratedFile } from "./generated-files.js";
export { extensionOf, type Compression } from "./compressor.js";
