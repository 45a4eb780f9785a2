import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import {
  MICROARCHS,
  canRun,
  compilerCanTarget,
  detectHost,
  detectHostFromSystem,
  getMicroarch,
  osCompiler,
  suggestMicroarch,
} from "../../src/targets/index.js";

function cpuinfo(fields: Record<string, string>, processors = 2): string {
  const block = Object.entries(fields)
    .map(([k, v]) => `${k}\t: ${v}`)
    .join("\n");
  return Array.from({ length: processors }, (_, i) => `processor\t: ${i}\n${block}\n`).join("\n");
}

const GENOA_FLAGS =
  "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good amd_lbr_v2 nopl nonstop_tsc cpuid extd_apicid aperfmperf rapl pni pclmulqdq monitor ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb cat_l3 cdp_l3 invpcid_single hw_pstate ssbd mba perfmon_v2 ibrs ibpb stibp ibrs_enhanced vmmcall fsgsbase bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local avx512_bf16 clzero irperf xsaveerptr rdpru wbnoinvd amd_ppin cppc arat npt lbrv svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold avic v_vmsave_vmload vgif x2avic v_spec_ctrl vnmi avx512vbmi umip pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq la57 rdpid overflow_recov succor smca fsrm flush_l1d";

const SAPPHIRE_RAPIDS_FLAGS =
  "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cat_l2 cdp_l3 invpcid_single intel_ppin cdp_l2 ssbd mba ibrs ibpb stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb intel_pt avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local split_lock_detect avx_vnni avx512_bf16 wbnoinvd dtherm ida arat pln pts hfi vnmi avx512vbmi umip pku ospke waitpkg avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg tme avx512_vpopcntdq la57 rdpid bus_lock_detect cldemote movdiri movdir64b enqcmd fsrm md_clear serialize tsxldtrk pconfig arch_lbr ibt amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities";

/** The x86-64-v3 level and nothing more, as a QEMU CPU model exposes it. */
const QEMU_V3_FLAGS =
  "fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 syscall nx lm rep_good nopl cpuid pni ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt xsave avx f16c hypervisor lahf_lm abm bmi1 avx2 bmi2";

const GRACE_FEATURES =
  "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svebf16 i8mm bf16 dgh bti";

const GRAVITON2_FEATURES =
  "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs";

function arm(part: string, features: string, implementer = "0x41"): string {
  return cpuinfo({
    BogoMIPS: "2000.00",
    Features: features,
    "CPU implementer": implementer,
    "CPU architecture": "8",
    "CPU variant": "0x0",
    "CPU part": part,
    "CPU revision": "0",
  });
}

describe("catalogue", () => {
  it("has unique names and contains the names stacks use", () => {
    const names = MICROARCHS.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of [
      "x86_64",
      "x86_64_v2",
      "x86_64_v3",
      "x86_64_v4",
      "haswell",
      "skylake_avx512",
      "icelake",
      "sapphirerapids",
      "zen4",
      "zen5",
      "aarch64",
      "neoverse_v1",
      "neoverse_v2",
      "a64fx",
    ]) {
      expect(getMicroarch(name)?.name, name).toBe(name);
    }
    expect(getMicroarch("zen7")).toBeUndefined();
  });

  it("has ancestors that exist, share the family, end with it and never include the entry itself", () => {
    for (const m of MICROARCHS) {
      for (const a of m.ancestors) {
        const ancestor = getMicroarch(a);
        expect(ancestor, `${m.name} → ${a}`).toBeDefined();
        expect(ancestor?.family).toBe(m.family);
        expect(ancestor?.ancestors, `cycle ${m.name} ↔ ${a}`).not.toContain(m.name);
      }
      expect(m.ancestors).not.toContain(m.name);
      expect(new Set(m.ancestors).size).toBe(m.ancestors.length);
      if (m.name === m.family) expect(m.ancestors).toEqual([]);
      else expect(m.ancestors.at(-1)).toBe(m.family);
    }
  });

  it("follows archspec's parent relations, nearest first", () => {
    expect(getMicroarch("zen4")?.ancestors).toEqual([
      "zen3",
      "x86_64_v4",
      "zen2",
      "zen",
      "x86_64_v3",
      "x86_64_v2",
      "x86_64",
    ]);
    expect(getMicroarch("icelake")?.ancestors.slice(0, 2)).toEqual(["cascadelake", "cannonlake"]);
    expect(getMicroarch("sapphirerapids")?.ancestors[0]).toBe("icelake");
    expect(getMicroarch("neoverse_v2")?.ancestors).toContain("neoverse_n1");
  });

  it("carries vendors, features that grow down a line, and minimum GCC versions", () => {
    expect(getMicroarch("zen4")?.vendor).toBe("AuthenticAMD");
    expect(getMicroarch("sapphirerapids")?.vendor).toBe("GenuineIntel");
    expect(getMicroarch("x86_64_v3")?.vendor).toBe("generic");
    expect(getMicroarch("x86_64_v4")?.features).toContain("avx512f");
    expect(getMicroarch("neoverse_v2")?.features).toEqual(expect.arrayContaining(["sve", "sve2"]));
    for (const [child, parent] of [
      ["zen5", "zen4"],
      ["sapphirerapids", "icelake"],
      ["x86_64_v4", "x86_64_v3"],
    ] as const) {
      expect(getMicroarch(child)?.features).toEqual(
        expect.arrayContaining(getMicroarch(parent)?.features ?? ["missing"]),
      );
    }
    expect(getMicroarch("zen5")?.minGcc).toBe("14.1");
    expect(getMicroarch("x86_64_v3")?.minGcc).toBe("4.8");
    expect(getMicroarch("zen3")?.minGcc).toBe("10.3");
    for (const m of MICROARCHS) expect(m.minGcc, m.name).toMatch(/^\d+(\.\d+)*$/);
  });
});

describe("suggestMicroarch", () => {
  it("suggests the nearest zen generations for a typo", () => {
    expect(suggestMicroarch("zen7")).toEqual(["zen5", "zen4", "zen3"]);
    expect(suggestMicroarch("zen7", 1)).toEqual(["zen5"]);
  });

  it("maps GCC spellings and dashes to archspec names", () => {
    expect(suggestMicroarch("znver4")[0]).toBe("zen4");
    expect(suggestMicroarch("neoverse-v2")[0]).toBe("neoverse_v2");
    expect(suggestMicroarch("skylake-avx512")[0]).toBe("skylake_avx512");
    expect(suggestMicroarch("Sapphire_Rapids")[0]).toBe("sapphirerapids");
  });

  it("returns nothing for names unlike any microarchitecture", () => {
    expect(suggestMicroarch("qwertyuiop")).toEqual([]);
    expect(suggestMicroarch("")).toEqual([]);
  });
});

describe("canRun", () => {
  it("runs its own code and its ancestors', not its descendants' or another family's", () => {
    expect(canRun("zen4", "zen4")).toBe(true);
    expect(canRun("zen4", "x86_64_v4")).toBe(true);
    expect(canRun("zen4", "zen2")).toBe(true);
    expect(canRun("zen3", "zen4")).toBe(false);
    expect(canRun("zen4", "skylake_avx512")).toBe(false);
    expect(canRun("sapphirerapids", "haswell")).toBe(true);
    expect(canRun("neoverse_v2", "aarch64")).toBe(true);
    expect(canRun("neoverse_v2", "x86_64")).toBe(false);
    expect(canRun("zen4", "zen7")).toBe(false);
  });
});

describe("detectHost", () => {
  it("finds zen4 on an AMD EPYC Genoa", () => {
    const text = cpuinfo({
      vendor_id: "AuthenticAMD",
      "cpu family": "25",
      model: "17",
      "model name": "AMD EPYC 9654 96-Core Processor",
      flags: GENOA_FLAGS,
    });
    expect(detectHost(text, "x86_64")).toBe("zen4");
  });

  it("keeps the best generic level when a hidden feature rules out the vendor's line (no pku: x86_64_v4)", () => {
    const text = cpuinfo({ vendor_id: "AuthenticAMD", flags: GENOA_FLAGS.replace(" pku ", " ") });
    expect(detectHost(text, "x86_64")).toBe("x86_64_v4");
    const noAvx512 = cpuinfo({ vendor_id: "AuthenticAMD", flags: GENOA_FLAGS.replace(/ avx512\w+/g, "") });
    expect(detectHost(noAvx512, "x86_64")).toBe("zen3");
  });

  it("finds sapphirerapids on an Intel Xeon Platinum 8480+", () => {
    const text = cpuinfo({
      vendor_id: "GenuineIntel",
      "model name": "Intel(R) Xeon(R) Platinum 8480+",
      flags: SAPPHIRE_RAPIDS_FLAGS,
    });
    expect(detectHost(text, "x86_64")).toBe("sapphirerapids");
  });

  it("gives the generic level for a QEMU CPU, and haswell once Intel's extra features appear", () => {
    const qemu = cpuinfo({
      vendor_id: "GenuineIntel",
      "model name": "QEMU Virtual CPU version 2.5+",
      flags: QEMU_V3_FLAGS,
    });
    expect(detectHost(qemu, "x86_64")).toBe("x86_64_v3");
    const withAes = cpuinfo({ vendor_id: "GenuineIntel", flags: `${QEMU_V3_FLAGS} aes pclmulqdq rdrand` });
    expect(detectHost(withAes, "x86_64")).toBe("haswell");
    const amd = cpuinfo({ vendor_id: "AuthenticAMD", flags: `${QEMU_V3_FLAGS} aes pclmulqdq rdrand` });
    expect(detectHost(amd, "amd64")).toBe("x86_64_v3");
  });

  it("gives x86_64 when there are no flags at all", () => {
    expect(detectHost("", "x86_64")).toBe("x86_64");
  });

  it("identifies aarch64 cores by CPU part and features", () => {
    expect(detectHost(arm("0xd4f", GRACE_FEATURES), "aarch64")).toBe("neoverse_v2");
    expect(detectHost(arm("0xd0c", GRAVITON2_FEATURES), "arm64")).toBe("neoverse_n1");
    expect(detectHost(arm("0xd0c", "fp asimd evtstrm cpuid"), "aarch64")).toBe("aarch64");
    expect(detectHost(cpuinfo({ Features: GRACE_FEATURES }), "aarch64")).toBe("aarch64");
  });

  it("refuses machines of other families, naming the known ones", () => {
    expect(() => detectHost("", "ppc64le")).toThrow(InputError);
    expect(() => detectHost("", "ppc64le")).toThrow(/ppc64le.*x86_64.*aarch64/);
  });

  it("detects this machine as a catalogue name of its family", async () => {
    const family = process.arch === "arm64" ? "aarch64" : "x86_64";
    const host = await detectHostFromSystem();
    expect(getMicroarch(host)?.family).toBe(family);
  });
});

describe("compilerCanTarget", () => {
  it("refuses a GCC older than the target needs, naming the minimum and a fallback", () => {
    const verdict = compilerCanTarget("zen5", { name: "gcc", version: "12.2" });
    expect(verdict).toEqual({
      ok: false,
      reason: expect.stringContaining("gcc 12.2 cannot target zen5: needs gcc >= 14.1"),
    });
    expect(verdict.ok ? "" : verdict.reason).toContain("closest target it can build for is zen4");
    expect(compilerCanTarget("x86_64_v3", { name: "gcc", version: "4.7.2" }).ok).toBe(false);
    expect(compilerCanTarget("neoverse_v2", { name: "clang", version: "8.0.1" }).ok).toBe(false);
  });

  it("accepts compilers archspec has flags for", () => {
    expect(compilerCanTarget("zen5", { name: "gcc", version: "14.2.0" })).toEqual({ ok: true });
    expect(compilerCanTarget("sapphirerapids", { name: "gcc", version: "11.4.0" })).toEqual({ ok: true });
    expect(compilerCanTarget("neoverse_v2", { name: "gcc", version: "13.3.0" })).toEqual({ ok: true });
    expect(compilerCanTarget("zen4", { name: "clang", version: "18.1.3" })).toEqual({ ok: true });
  });

  it("reads range ends as Spack does: 10.3:12.2 contains 12.2.0, and 12.3 starts the next range", () => {
    expect(compilerCanTarget("zen4", { name: "gcc", version: "12.2" })).toEqual({ ok: true });
    expect(compilerCanTarget("zen4", { name: "gcc", version: "12.2.0" })).toEqual({ ok: true });
    expect(compilerCanTarget("zen4", { name: "gcc", version: "12.3.0" })).toEqual({ ok: true });
    const verdict = compilerCanTarget("zen4", { name: "gcc", version: "10.2.1" });
    expect(verdict.ok).toBe(false);
    expect(verdict.ok ? "" : verdict.reason).toMatch(/zen4/);
  });

  it("lets compilers without data through and rejects bad versions and unknown targets", () => {
    expect(compilerCanTarget("zen5", { name: "nvhpc", version: "1.0" })).toEqual({ ok: true });
    expect(compilerCanTarget("zen5", { name: "gcc", version: "latest" }).ok).toBe(false);
    const unknown = compilerCanTarget("zen7", { name: "gcc", version: "14.1.0" });
    expect(unknown.ok ? "" : unknown.reason).toMatch(/unknown microarchitecture "zen7"/);
  });
});

describe("osCompiler", () => {
  it.each([
    ["ubuntu:20.04", "9.4.0"],
    ["ubuntu:22.04", "11.4.0"],
    ["ubuntu:jammy-20240227", "11.4.0"],
    ["ubuntu:24.04", "13.3.0"],
    ["ubuntu:noble", "13.3.0"],
    ["docker.io/library/ubuntu:24.04", "13.3.0"],
    ["debian:bullseye", "10.2.1"],
    ["debian:11", "10.2.1"],
    ["debian:12", "12.2.0"],
    ["debian:12.5", "12.2.0"],
    ["debian:bookworm", "12.2.0"],
    ["debian:bookworm-slim", "12.2.0"],
    ["debian:bookworm-20240311-slim@sha256:abc", "12.2.0"],
    ["debian:trixie", "14.2.0"],
  ])("%s ships gcc %s", (image, version) => {
    expect(osCompiler(image)).toEqual({ name: "gcc", version });
  });

  it.each([
    "rockylinux:9",
    "rockylinux/rockylinux:8",
    "ubuntu",
    "ubuntu:latest",
    "debian@sha256:abc",
    "ubuntu:26.04",
    "myregistry:5000/debian:12",
  ])("knows nothing of %s", (image) => {
    expect(osCompiler(image)).toBeUndefined();
  });
});
