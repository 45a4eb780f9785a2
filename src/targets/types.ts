export type Family = "x86_64" | "aarch64";

export interface Microarch {
  name: string;
  family: Family;
  vendor: string;
  /** Every microarchitecture this one can run code for (transitively), nearest first, ending with the family. */
  ancestors: string[];
  /** CPU features (as in /proc/cpuinfo flags/Features) this microarchitecture requires. */
  features: string[];
  /** Minimum GCC version that can target it, e.g. "11.1". */
  minGcc: string;
}
