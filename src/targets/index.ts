export type { Family, Microarch } from "./types.js";
export { MICROARCHS, getMicroarch, suggestMicroarch, type CatalogueEntry } from "./catalogue.js";
export { canRun, compilerCanTarget, osCompiler, type CompilerVerdict } from "./compat.js";
export { detectHost, detectHostFromSystem } from "./detect.js";
export { chooseTarget, choiceTable, readNodeCpu, whyNot, type Choice, type ChoiceRow, type NodeCpu } from "./choose.js";
