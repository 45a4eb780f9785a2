/**
 * What a build (not a warm) makes of each target: the packer that turns the built target into a tarball in the
 * output directory (signed when a key is given), and what the up-to-date check needs to hand out a kept tarball.
 */
import type { Compression } from "../package/compressor.js";
import type { BuildPlan } from "../plan/types.js";
import { packageTarget } from "../run/package-target.js";
import { packagingInputs } from "../run/packaging-inputs.js";
import type { TargetPacker } from "../run/run-plan.js";
import { bringHome } from "../run/shared-out.js";
import type { UpToDateOptions } from "../run/target-reuse.js";
import type { SigningKey } from "../sign/key.js";
import { signFile } from "../sign/sign-file.js";

export interface BuildOutputOptions {
  outDir: string;
  compression: Compression;
  signing?: SigningKey;
  signal: AbortSignal;
}

export function tarballPacker(plan: BuildPlan, options: BuildOutputOptions): TargetPacker {
  const { outDir, compression, signing } = options;
  return {
    outDir,
    pack: async (target, container, log, context) => {
      const shared = context.sharedOut;
      const packed = await packageTarget(plan, target, container, log, {
        outDir: shared?.host ?? outDir,
        ...(shared === undefined ? {} : { sharedOutDir: shared.container }),
        compression,
        signal: options.signal,
        spackCommit: context.spackCommit,
        ...(context.spackPackagesCommit === undefined ? {} : { spackPackagesCommit: context.spackPackagesCommit }),
        imageId: context.imageId,
        specsJson: context.captured["specs.json"] ?? "",
        ...(signing === undefined ? {} : { signingFingerprint: signing.fingerprint }),
      });
      // Packed into the staging directory beside the tarballs: renamed into place, no copy.
      if (shared !== undefined && packed.tarball !== undefined)
        packed.tarball = await bringHome(packed.tarball, outDir);
      if (signing !== undefined && packed.tarball !== undefined) {
        const signature = await signFile(signing, packed.tarball);
        log.note(`step package: signed with key ${signing.fingerprint}: ${signature}`);
      }
      return packed;
    },
  };
}

/** An unchanged target is known before its container starts; a build hands out the tarball kept from the same inputs. */
export function keptTarballs(plan: BuildPlan, options: BuildOutputOptions): UpToDateOptions {
  const { outDir, compression, signing } = options;
  return {
    packaging: {
      inputsOf: (target) =>
        packagingInputs(plan, target, {
          compression,
          ...(signing === undefined ? {} : { signingFingerprint: signing.fingerprint }),
        }),
      outDir,
      ...(signing === undefined ? {} : { sign: (file: string) => signFile(signing, file) }),
    },
  };
}
