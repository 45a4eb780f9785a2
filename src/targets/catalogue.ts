import type { Family, Microarch } from "./types.js";

/**
 * The x86_64 and aarch64 microarchitectures of archspec (the library Spack uses), with archspec's own names,
 * parents, vendors, cpuinfo features and the compiler version ranges for which archspec knows optimisation
 * flags. Transcribed from archspec-json `cpu/microarchitectures.json` at commit 90b453f4053b; keep the order
 * of that file, since host detection breaks ties the way archspec does (first best entry wins).
 */
interface RawEntry {
  name: string;
  vendor: string;
  parents: string[];
  /** The `CPU part` of /proc/cpuinfo that identifies this core (aarch64 only). */
  cpuPart?: string;
  /** The name GCC gives this microarchitecture (`-march=`/`-mcpu=`), when it differs from archspec's. */
  gccName?: string;
  /** archspec version ranges, `min:max` with either side optional, both ends inclusive. */
  gcc: string[];
  clang: string[];
  /** Space-separated /proc/cpuinfo `flags` (x86_64) or `Features` (aarch64). */
  features: string;
}

const RAW: readonly RawEntry[] = [
  {
    name: "x86_64",
    vendor: "generic",
    parents: [],
    gcc: ["4.2.0:", ":4.1.2"],
    clang: [":"],
    features: "",
  },
  {
    name: "x86_64_v2",
    vendor: "generic",
    parents: ["x86_64"],
    gcc: ["11.1:", "4.6:11.0"],
    clang: ["12.0:", "3.9:11.1"],
    features: "cx16 lahf_lm mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt",
  },
  {
    name: "x86_64_v3",
    vendor: "generic",
    parents: ["x86_64_v2"],
    gcc: ["11.1:", "4.8:11.0"],
    clang: ["12.0:", "3.9:11.1"],
    features: "cx16 lahf_lm mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt avx avx2 bmi1 bmi2 f16c fma abm movbe xsave",
  },
  {
    name: "x86_64_v4",
    vendor: "generic",
    parents: ["x86_64_v3"],
    gcc: ["11.1:", "6.0:11.0"],
    clang: ["12.0:", "3.9:11.1"],
    features:
      "cx16 lahf_lm mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt avx avx2 bmi1 bmi2 f16c fma abm movbe xsave avx512f avx512bw avx512cd avx512dq avx512vl",
  },
  {
    name: "nocona",
    vendor: "GenuineIntel",
    parents: ["x86_64"],
    gcc: ["4.0.4:"],
    clang: ["3.9:"],
    features: "mmx sse sse2 sse3",
  },
  {
    name: "core2",
    vendor: "GenuineIntel",
    parents: ["nocona"],
    gcc: ["4.3.0:"],
    clang: ["3.9:"],
    features: "mmx sse sse2 ssse3",
  },
  {
    name: "nehalem",
    vendor: "GenuineIntel",
    parents: ["core2", "x86_64_v2"],
    gcc: ["4.9:", "4.6:4.8.5"],
    clang: ["3.9:"],
    features: "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt lahf_lm cx16",
  },
  {
    name: "westmere",
    vendor: "GenuineIntel",
    parents: ["nehalem"],
    gcc: ["4.9:"],
    clang: ["3.9:"],
    features: "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt lahf_lm cx16 aes pclmulqdq",
  },
  {
    name: "sandybridge",
    vendor: "GenuineIntel",
    parents: ["westmere"],
    gcc: ["4.9:", "4.6:4.8.5"],
    clang: ["3.9:"],
    features: "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt lahf_lm cx16 aes pclmulqdq avx",
  },
  {
    name: "ivybridge",
    vendor: "GenuineIntel",
    parents: ["sandybridge"],
    gcc: ["4.9:", "4.6:4.8.5"],
    clang: ["3.9:"],
    features: "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt lahf_lm cx16 aes pclmulqdq avx rdrand f16c",
  },
  {
    name: "haswell",
    vendor: "GenuineIntel",
    parents: ["ivybridge", "x86_64_v3"],
    gcc: ["4.9:", "4.8:4.8.5"],
    clang: ["3.9:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm xsave cx16 aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2",
  },
  {
    name: "broadwell",
    vendor: "GenuineIntel",
    parents: ["haswell"],
    gcc: ["4.9:"],
    clang: ["3.9:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 abm popcnt xsave lahf_lm cx16 aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx",
  },
  {
    name: "skylake",
    vendor: "GenuineIntel",
    parents: ["broadwell"],
    gcc: ["6.0:"],
    clang: ["3.9:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm xsave cx16 aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx clflushopt xsavec xsaveopt",
  },
  {
    name: "mic_knl",
    vendor: "GenuineIntel",
    parents: ["broadwell"],
    gccName: "knl",
    gcc: ["5.1:"],
    clang: ["3.9:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm cx16 aes xsave pclmulqdq avx rdrand f16c movbe avx2 fma bmi1 bmi2 rdseed adx avx512f avx512pf avx512er avx512cd",
  },
  {
    name: "skylake_avx512",
    vendor: "GenuineIntel",
    parents: ["skylake", "x86_64_v4"],
    gcc: ["6.0:"],
    clang: ["3.9:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm cx16 aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx clflushopt xsave xsavec xsaveopt avx512f clwb avx512vl avx512bw avx512dq avx512cd",
  },
  {
    name: "cannonlake",
    vendor: "GenuineIntel",
    parents: ["skylake", "x86_64_v4"],
    gcc: ["8.0:"],
    clang: ["3.9:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm cx16 aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx clflushopt xsave xsavec xsaveopt avx512f avx512vl avx512bw avx512dq avx512cd avx512vbmi avx512ifma sha_ni",
  },
  {
    name: "cascadelake",
    vendor: "GenuineIntel",
    parents: ["skylake_avx512"],
    gcc: ["9.0:"],
    clang: ["8.0:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm cx16 aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx clflushopt xsave xsavec xsaveopt avx512f clwb avx512vl avx512bw avx512dq avx512cd avx512_vnni",
  },
  {
    name: "icelake",
    vendor: "GenuineIntel",
    parents: ["cascadelake", "cannonlake"],
    gccName: "icelake-client",
    gcc: ["8.0:"],
    clang: ["7.0:", "6.0:6.9"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm cx16 aes sha_ni pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx clflushopt xsave xsavec xsaveopt avx512f avx512vl avx512bw avx512dq avx512cd avx512vbmi avx512ifma clwb rdpid gfni avx512_vbmi2 avx512_vpopcntdq avx512_bitalg avx512_vnni vpclmulqdq vaes",
  },
  {
    name: "sapphirerapids",
    vendor: "GenuineIntel",
    parents: ["icelake"],
    gcc: ["11.0:"],
    clang: ["12.0:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm cx16 sha_ni aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx clflushopt xsave xsavec xsaveopt avx512f avx512vl avx512bw avx512dq avx512cd avx512vbmi avx512ifma clwb rdpid gfni avx512_vbmi2 avx512_vpopcntdq avx512_bitalg avx512_vnni vpclmulqdq vaes avx512_bf16 cldemote movdir64b movdiri serialize waitpkg amx_bf16 amx_tile amx_int8",
  },
  {
    name: "alderlake",
    vendor: "GenuineIntel",
    parents: ["skylake"],
    gcc: ["11.0:"],
    clang: ["12.0:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm xsave cx16 aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx clflushopt xsavec xsaveopt avx_vnni sha_ni clwb rdpid gfni vaes vpclmulqdq movdiri movdir64b serialize waitpkg",
  },
  {
    name: "arrowlake",
    vendor: "GenuineIntel",
    parents: ["alderlake"],
    gcc: ["14.0:"],
    clang: ["18.0:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm xsave cx16 aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx clflushopt xsavec xsaveopt avx_vnni sha_ni clwb rdpid gfni vaes vpclmulqdq movdiri movdir64b serialize waitpkg avx_ifma avx_ne_convert avx_vnni_int8 cmpccxadd",
  },
  {
    name: "arrowlake_s",
    vendor: "GenuineIntel",
    parents: ["arrowlake"],
    gcc: ["14.0:"],
    clang: ["18.0:"],
    features:
      "mmx sse sse2 ssse3 sse4_1 sse4_2 popcnt abm lahf_lm xsave cx16 aes pclmulqdq avx rdrand f16c movbe fma avx2 bmi1 bmi2 rdseed adx clflushopt xsavec xsaveopt avx_vnni sha_ni clwb rdpid gfni vaes vpclmulqdq movdiri movdir64b serialize waitpkg avx_ifma avx_ne_convert avx_vnni_int8 cmpccxadd avx_vnni_int16 sha512 sm3 sm4",
  },
  {
    name: "k10",
    vendor: "AuthenticAMD",
    parents: ["x86_64"],
    gccName: "amdfam10",
    gcc: ["4.3:"],
    clang: ["3.9:"],
    features: "mmx sse sse2 sse4a abm cx16 3dnow 3dnowext",
  },
  {
    name: "bulldozer",
    vendor: "AuthenticAMD",
    parents: ["x86_64_v2"],
    gccName: "bdver1",
    gcc: ["4.7:"],
    clang: ["3.9:"],
    features: "mmx sse sse2 sse4a popcnt lahf_lm cx16 xsave abm avx xop fma4 aes pclmulqdq ssse3 sse4_1 sse4_2",
  },
  {
    name: "piledriver",
    vendor: "AuthenticAMD",
    parents: ["bulldozer"],
    gccName: "bdver2",
    gcc: ["4.7:"],
    clang: ["3.9:"],
    features:
      "mmx sse sse2 sse4a popcnt lahf_lm cx16 xsave abm avx xop fma4 aes pclmulqdq ssse3 sse4_1 sse4_2 bmi1 f16c fma tbm",
  },
  {
    name: "steamroller",
    vendor: "AuthenticAMD",
    parents: ["piledriver"],
    gccName: "bdver3",
    gcc: ["4.8:"],
    clang: ["3.9:"],
    features:
      "mmx sse sse2 sse4a popcnt lahf_lm cx16 xsave abm avx xop fma4 aes pclmulqdq ssse3 sse4_1 sse4_2 bmi1 f16c fma fsgsbase tbm",
  },
  {
    name: "excavator",
    vendor: "AuthenticAMD",
    parents: ["steamroller", "x86_64_v3"],
    gccName: "bdver4",
    gcc: ["4.9:"],
    clang: ["3.9:"],
    features:
      "mmx sse sse2 sse4a popcnt lahf_lm cx16 xsave abm avx xop fma4 aes pclmulqdq ssse3 sse4_1 sse4_2 bmi1 f16c fma fsgsbase bmi2 avx2 movbe tbm",
  },
  {
    name: "zen",
    vendor: "AuthenticAMD",
    parents: ["x86_64_v3"],
    gccName: "znver1",
    gcc: ["6.0:"],
    clang: ["4.0:"],
    features:
      "bmi1 bmi2 f16c fma fsgsbase avx avx2 rdseed clzero aes pclmulqdq cx16 movbe mmx sse sse2 sse4a ssse3 sse4_1 sse4_2 abm xsave xsavec xsaveopt clflushopt popcnt lahf_lm",
  },
  {
    name: "zen2",
    vendor: "AuthenticAMD",
    parents: ["zen"],
    gccName: "znver2",
    gcc: ["9.0:"],
    clang: ["9.0:"],
    features:
      "bmi1 bmi2 f16c fma fsgsbase avx avx2 rdseed clzero aes pclmulqdq cx16 movbe mmx sse sse2 sse4a ssse3 sse4_1 sse4_2 abm xsave xsavec xsaveopt clflushopt popcnt clwb lahf_lm",
  },
  {
    name: "zen3",
    vendor: "AuthenticAMD",
    parents: ["zen2"],
    gccName: "znver3",
    gcc: ["10.3:"],
    clang: ["12.0:"],
    features:
      "bmi1 bmi2 f16c fma fsgsbase avx avx2 rdseed clzero aes pclmulqdq cx16 movbe mmx sse sse2 sse4a ssse3 sse4_1 sse4_2 abm xsave xsavec xsaveopt clflushopt popcnt lahf_lm clwb vaes vpclmulqdq pku",
  },
  {
    name: "zen4",
    vendor: "AuthenticAMD",
    parents: ["zen3", "x86_64_v4"],
    gccName: "znver4",
    gcc: ["10.3:12.2", "12.3:"],
    clang: ["12.0:15.9", "16.0:"],
    features:
      "bmi1 bmi2 f16c fma fsgsbase avx avx2 rdseed clzero aes pclmulqdq cx16 movbe mmx sse sse2 sse4a ssse3 sse4_1 sse4_2 abm xsave xsavec xsaveopt clflushopt popcnt lahf_lm clwb vaes vpclmulqdq pku gfni flush_l1d avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg avx512_vpopcntdq",
  },
  {
    name: "zen5",
    vendor: "AuthenticAMD",
    parents: ["zen4"],
    gccName: "znver5",
    gcc: ["14.1:"],
    clang: ["19.1:"],
    features:
      "abm aes avx avx2 avx512_bf16 avx512_bitalg avx512bw avx512cd avx512dq avx512f avx512ifma avx512vbmi avx512_vbmi2 avx512vl avx512_vnni avx512_vp2intersect avx512_vpopcntdq avx_vnni bmi1 bmi2 clflushopt clwb clzero cx16 f16c flush_l1d fma fsgsbase gfni mmx movbe movdir64b lahf_lm movdiri pclmulqdq popcnt pku rdseed sse sse2 sse4_1 sse4_2 sse4a ssse3 tsc_adjust vaes vpclmulqdq xsave xsavec xsaveopt",
  },
  {
    name: "aarch64",
    vendor: "generic",
    parents: [],
    gcc: ["4.8.0:"],
    clang: [":"],
    features: "",
  },
  {
    name: "armv8.1a",
    vendor: "generic",
    parents: ["aarch64"],
    gcc: ["5:"],
    clang: [":"],
    features: "",
  },
  {
    name: "armv8.2a",
    vendor: "generic",
    parents: ["armv8.1a"],
    gcc: ["6:"],
    clang: [":"],
    features: "",
  },
  {
    name: "armv8.3a",
    vendor: "generic",
    parents: ["armv8.2a"],
    gcc: ["6:"],
    clang: ["6:"],
    features: "",
  },
  {
    name: "armv8.4a",
    vendor: "generic",
    parents: ["armv8.3a"],
    gcc: ["8:"],
    clang: ["8:"],
    features: "",
  },
  {
    name: "armv8.5a",
    vendor: "generic",
    parents: ["armv8.4a"],
    gcc: ["9:"],
    clang: ["11:"],
    features: "",
  },
  {
    name: "armv8.6a",
    vendor: "generic",
    parents: ["armv8.5a"],
    gcc: ["10.1:"],
    clang: ["11:"],
    features: "",
  },
  {
    name: "armv9.0a",
    vendor: "generic",
    parents: ["armv8.5a"],
    gcc: ["12:"],
    clang: ["14:"],
    features: "",
  },
  {
    name: "armv9.2a",
    vendor: "generic",
    parents: ["armv9.0a", "armv8.6a"],
    gcc: ["13:"],
    clang: ["14:"],
    features: "",
  },
  {
    name: "thunderx2",
    vendor: "Cavium",
    parents: ["armv8.1a"],
    cpuPart: "0x0af",
    gccName: "thunderx2t99",
    gcc: ["4.8:4.8.9", "4.9:5.9", "6:6.9", "7:"],
    clang: ["3.9:4.9", "5:"],
    features: "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics cpuid asimdrdm",
  },
  {
    name: "a64fx",
    vendor: "Fujitsu",
    parents: ["armv8.2a"],
    cpuPart: "0x001",
    gcc: ["4.8:4.8.9", "4.9:5.9", "6:6.9", "7:7.9", "8:10.2", "10.3:"],
    clang: ["3.9:4.9", "5:10", "11:"],
    features: "fp asimd evtstrm sha1 sha2 crc32 atomics cpuid asimdrdm fphp asimdhp fcma dcpop sve",
  },
  {
    name: "cortex_a72",
    vendor: "ARM",
    parents: ["aarch64"],
    cpuPart: "0xd08",
    gcc: ["4.8:4.8.9", "4.9:5.9", "6:"],
    clang: ["3.9:"],
    features: "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid",
  },
  {
    name: "neoverse_n1",
    vendor: "ARM",
    parents: ["cortex_a72", "armv8.2a"],
    cpuPart: "0xd0c",
    gcc: ["4.8:4.8.9", "4.9:5.9", "6:6.9", "7:7.9", "8.0:8.0", "8.1:8.9", "9.0:"],
    clang: ["3.9:4.9", "5:", "10:"],
    features: "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
  },
  {
    name: "neoverse_v1",
    vendor: "ARM",
    parents: ["neoverse_n1", "armv8.4a"],
    cpuPart: "0xd40",
    gcc: [
      "4.8:4.8.9",
      "4.9:5.9",
      "6:6.9",
      "7:7.9",
      "8.0:8.4",
      "8.5:8.9",
      "9.0:9.3",
      "9.4:9.9",
      "10.0:10.1",
      "10.2:10.2.99",
      "10.3:",
    ],
    clang: ["3.9:4.9", "5:10", "11:", "12:"],
    features:
      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm dcpodp svei8mm svebf16 i8mm bf16 dgh rng",
  },
  {
    name: "neoverse_v2",
    vendor: "ARM",
    parents: ["neoverse_n1", "armv9.0a"],
    cpuPart: "0xd4f",
    gcc: [
      "4.8:5.99",
      "6:6.99",
      "7.0:7.99",
      "8.0:8.99",
      "9.0:9.99",
      "10.0:11.3.99",
      "11.4:11.99",
      "12.0:12.2.99",
      "12.3:",
    ],
    clang: ["9.0:10.99", "11.0:13.99", "14.0:15.99", "16.0:"],
    features:
      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 asimddp sha512 sve asimdfhm uscat ilrcpc flagm sb dcpodp sve2 flagm2 frint svei8mm svebf16 i8mm bf16",
  },
  {
    name: "neoverse_n2",
    vendor: "ARM",
    parents: ["neoverse_n1", "armv9.0a"],
    cpuPart: "0xd49",
    gcc: ["4.8:5.99", "6:6.99", "7.0:7.99", "8.0:8.99", "9.0:9.99", "10.0:10.99", "11.0:"],
    clang: ["9.0:10.99", "11.0:13.99", "14.0:15.99", "16.0:"],
    features:
      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 asimddp sha512 sve asimdfhm uscat ilrcpc flagm sb dcpodp sve2 flagm2 frint svei8mm svebf16 i8mm bf16",
  },
  {
    name: "ampere1",
    vendor: "Ampere",
    parents: ["neoverse_n1", "armv8.6a"],
    cpuPart: "0xac3",
    gcc: ["9.0:10.4.99", "10.5:10.99", "11.0:11.2.99", "11.3:11.99", "12.0:12.0.99", "12.1:12.99", "13:"],
    clang: ["10:", "16:"],
    features:
      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint i8mm bf16 rng bti ecv",
  },
  {
    name: "ampere1a",
    vendor: "Ampere",
    parents: ["ampere1"],
    cpuPart: "0xac4",
    gcc: ["9.0:10.4.99", "10.5:10.99", "11.0:11.3.99", "11.4:11.99", "12.0:12.2.99", "12.3:12.99", "13:"],
    clang: ["10:", "16:"],
    features:
      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint i8mm bf16 rng bti ecv",
  },
  {
    name: "neoverse_v3ae",
    vendor: "ARM",
    parents: ["neoverse_v2", "armv9.2a"],
    cpuPart: "0xd83",
    gcc: ["15.0:"],
    clang: ["19.0:"],
    features:
      "aes afp asimd asimddp asimdfhm asimdhp asimdrdm atomics bf16 bti cpuid crc32 dcpodp dcpop dgh dit ecv evtstrm fcma flagm flagm2 fp fphp frint i8mm ilrcpc jscvt lrcpc paca pacg pmull sb sha1 sha2 sha3 sha512 sm3 sm4 sve sve2 sveaes svebf16 svebitperm svei8mm svepmull svesha3 svesm4 uscat wfxt",
  },
  {
    name: "m1",
    vendor: "Apple",
    parents: ["armv8.4a"],
    cpuPart: "0x022",
    gccName: "apple-m1",
    gcc: ["8.0:", "15.1:"],
    clang: ["9.0:12.0", "13.0:"],
    features:
      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint",
  },
  {
    name: "m2",
    vendor: "Apple",
    parents: ["m1", "armv8.5a"],
    cpuPart: "0x032",
    gccName: "apple-m2",
    gcc: ["10.1:", "15.1:"],
    clang: ["9.0:12.0", "13.0:", "16.0:"],
    features:
      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint ecv bf16 i8mm bti",
  },
  {
    name: "m3",
    vendor: "Apple",
    parents: ["m2", "armv8.6a"],
    gccName: "apple-m3",
    gcc: ["10.1:", "15.1:"],
    clang: ["9.0:12.0", "13.0:", "16.0:"],
    features:
      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint ecv bf16 i8mm bti",
  },
  {
    name: "m4",
    vendor: "Apple",
    parents: ["m3", "armv8.6a"],
    gcc: ["14.1:"],
    clang: ["9.0:12.0", "13.0:", "16.0:18", "19:"],
    features:
      "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint ecv bf16 i8mm bti sme sme2",
  },
];

/** A catalogue entry: the shared `Microarch` plus the data detection and compiler checks need. */
export interface CatalogueEntry extends Microarch {
  parents: string[];
  cpuPart: string | undefined;
  gccName: string | undefined;
  compilers: { gcc: readonly string[]; clang: readonly string[] };
}

const RAW_BY_NAME = new Map(RAW.map((entry) => [entry.name, entry]));

/** archspec's order: direct parents first, then each parent's ancestors not seen yet. */
function ancestorsOf(name: string): string[] {
  const raw = RAW_BY_NAME.get(name);
  if (raw === undefined) throw new Error(`catalogue: unknown parent '${name}'`);
  const result = [...raw.parents];
  for (const parent of raw.parents) {
    for (const ancestor of ancestorsOf(parent)) if (!result.includes(ancestor)) result.push(ancestor);
  }
  return result;
}

function lowerBound(range: string): string {
  return range.split(":")[0] || "0";
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? -1) - (pb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

function buildEntry(raw: RawEntry): CatalogueEntry {
  // archspec's order, except that the family (the one root) goes last, however the parents interleave.
  const found = ancestorsOf(raw.name);
  const family = ([raw.name, ...found].find((n) => RAW_BY_NAME.get(n)?.parents.length === 0) ?? raw.name) as Family;
  const ancestors = found.length === 0 ? [] : [...found.filter((n) => n !== family), family];
  return {
    name: raw.name,
    family,
    vendor: raw.vendor,
    ancestors,
    features: raw.features === "" ? [] : raw.features.split(" "),
    minGcc: raw.gcc.map(lowerBound).sort(compareVersions)[0] ?? "0",
    parents: [...raw.parents],
    cpuPart: raw.cpuPart,
    gccName: raw.gccName,
    compilers: { gcc: raw.gcc, clang: raw.clang },
  };
}

/** Every known microarchitecture, in archspec's order. `minGcc` is the oldest GCC archspec has flags for ("0": any). */
export const MICROARCHS: readonly CatalogueEntry[] = RAW.map(buildEntry);

const BY_NAME = new Map(MICROARCHS.map((entry) => [entry.name, entry]));

export function getMicroarch(name: string): CatalogueEntry | undefined {
  return BY_NAME.get(name);
}

function normalise(name: string): string {
  return name.trim().toLowerCase().replace(/-/g, "_");
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      (rows[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

function trailingNumber(name: string): number | undefined {
  const match = /(\d+)$/.exec(name);
  return match === null ? undefined : Number(match[1]);
}

/**
 * Up to `max` catalogue names close to `name`, best first, for "did you mean ...?" messages. GCC spellings
 * (`znver4`, `neoverse-v2`, `skylake-avx512`) map to their archspec name first. Among equally distant names,
 * those sharing a longer prefix, then those whose trailing number is nearest (`zen7` → zen5, zen4, zen3), win.
 */
export function suggestMicroarch(name: string, max = 3): string[] {
  const wanted = normalise(name);
  if (wanted === "" || max <= 0) return [];
  const gccSpelling = (m: CatalogueEntry): string | undefined =>
    m.gccName === undefined ? undefined : normalise(m.gccName);
  const exact = MICROARCHS.filter((m) => m.name === wanted || gccSpelling(m) === wanted);
  const limit = Math.max(2, Math.floor(wanted.length / 2));
  const number = trailingNumber(wanted);
  const scored = MICROARCHS.filter((m) => !exact.includes(m))
    .map((m) => {
      const gcc = gccSpelling(m);
      const distance = Math.min(editDistance(wanted, m.name), gcc === undefined ? Infinity : editDistance(wanted, gcc));
      let prefix = 0;
      while (prefix < wanted.length && wanted[prefix] === m.name[prefix]) prefix++;
      const own = trailingNumber(m.name);
      const gap = number === undefined || own === undefined ? Infinity : Math.abs(number - own);
      return { name: m.name, distance, prefix, gap };
    })
    .filter((s) => s.distance <= limit || (s.prefix >= 3 && s.prefix === Math.min(wanted.length, s.name.length)))
    .sort((x, y) => x.distance - y.distance || y.prefix - x.prefix || x.gap - y.gap || x.name.localeCompare(y.name));
  return [...exact.map((m) => m.name), ...scored.map((s) => s.name)].slice(0, max);
}
