/** The factory's only door to Docker: engine connection, images, containers, archives, labels, cleanup. */
export {
  connectEngine,
  defaultEngineWhere,
  defaultEngineName,
  Engine,
  ENDPOINT_FORMS,
  isLocalEndpoint,
  parseEndpoint,
  START_ENGINE_HINT,
  unreachableHint,
  type ConnectOptions,
  type Endpoint,
  type EngineVersion,
  type ParsedEndpoint,
} from "./engine.js";
export { LABEL, newRunId, factoryLabels, imageLabels, labelFilters, type Identity } from "./labels.js";
export { buildImage, imageExists, imageId, ensureImage, type BuildImageOptions } from "./image-build.js";
export { runOneShot, type OneShotOptions } from "./one-shot.js";
export { freeBytesOnEngineHost } from "./host-disk.js";
export { copyImage } from "./image-copy.js";
export { loadImage, saveImage } from "./image-file.js";
export {
  startContainer,
  type BuildContainer,
  type BuildContainerOptions,
  type ExecOptions,
  type FileOwner,
} from "./build-container.js";
export { packFiles, packTree, readFirstFile, type FileEntry } from "./archive.js";
export { isPlainHostPath, type BindMount, type Resources } from "./container-spec.js";
export type { ChunkSink } from "./demux.js";
export { removeByLabel, removeDeadRuns, type RemovedContainer } from "./cleanup.js";
export { statusCodeOf } from "./failure.js";
