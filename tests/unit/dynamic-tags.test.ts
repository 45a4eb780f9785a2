import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { dynamicTagProblems, parseDynamicTags, type TagReading } from "../../src/package/dynamic-tags.js";

describe("dynamic-tags.tsv", () => {
  it("reads path and tag lines into the manifest's object", () => {
    expect(parseDynamicTags("view/bin/a\tRPATH\nview/lib/b.so\tRUNPATH\nview/lib/c.so\tnone\n")).toEqual({
      "view/bin/a": "RPATH",
      "view/lib/b.so": "RUNPATH",
      "view/lib/c.so": "none",
    });
    expect(parseDynamicTags("")).toEqual({});
  });

  it.each([["view/bin/a\tDT_RPATH\n"], ["view/bin/a\n"], ["\tRPATH\n"], ["view/bin/a\tRPATH\textra\n"]])(
    "refuses %j, naming the line",
    (tsv) => {
      expect(() => parseDynamicTags(tsv)).toThrow(InputError);
      expect(() => parseDynamicTags(tsv)).toThrow(/dynamic-tags\.tsv line 1: .* is not "<path><TAB>RPATH\|RUNPATH/);
    },
  );
});

describe("dynamicTagProblems", () => {
  const found = new Map<string, TagReading>([
    ["view/bin/a", { elf: true, tag: "RPATH" }],
    ["view/share/x.txt", { elf: false }],
    ["view/share/fake", { elf: true, problem: "its ELF header is incomplete" }],
  ]);

  it("compares nothing without a record (a tarball of an older factory)", () => {
    expect(dynamicTagProblems(undefined, found)).toEqual([]);
  });

  it("accepts matching tags and ignores files that only look like ELF files when the record does not name them", () => {
    expect(dynamicTagProblems({ "view/bin/a": "RPATH" }, found)).toEqual([]);
  });

  it("refuses a record that is not an object, an unknown tag, and a recorded file that is not an ELF file", () => {
    expect(dynamicTagProblems(["view/bin/a"], found)).toEqual([
      "manifest.json: dynamic_tags is not an object of path → RPATH|RUNPATH|RPATH+RUNPATH|none",
    ]);
    expect(dynamicTagProblems({ "view/bin/a": "RPATH", "view/share/x.txt": "none", "view/x": "weird" }, found)).toEqual(
      [
        "manifest.json lists the dynamic tag of view/share/x.txt, not an ELF file of the archive",
        'manifest.json: dynamic_tags of view/x is "weird"',
      ],
    );
    expect(dynamicTagProblems({ "view/bin/a": "RUNPATH" }, found)).toEqual([
      "view/bin/a: linked with RUNPATH, now RPATH",
    ]);
  });
});
