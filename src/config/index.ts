export { loadStack, parseStack } from "./load.js";
export {
  DEFAULT_BASE_IMAGE,
  DEFAULT_OS_COMPILER_PACKAGES,
  DEFAULT_SPACK_REF,
  DEFAULT_SPACK_URL,
  isSafeName,
} from "./schema.js";
export type { CompilerChoice, SpackSource, Stack } from "./types.js";
