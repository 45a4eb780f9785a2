import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { loadInstallTemplate, renderInstallScript, shellQuote } from "../../src/render/install-script.js";
import {
  envStem,
  loadModuleTemplate,
  luaString,
  renderModule,
  tclString,
  type ModuleInput,
} from "../../src/render/module.js";

const template = await loadModuleTemplate();
const tclTemplate = await loadModuleTemplate(undefined, "tcl");

function input(overrides: Partial<ModuleInput> = {}): ModuleInput {
  return {
    stackName: "hello-world",
    version: "1.0",
    moduleName: "hello",
    target: "x86_64_v3",
    defaultPrefix: "/opt/hello",
    envVars: {},
    description: "A greeting stack",
    specs: ["hello@2.12", "zlib"],
    ...overrides,
  };
}

/** Decode a Lua double-quoted literal with the escapes luaString emits (a small reference reader). */
function readLuaString(literal: string): string {
  expect(literal.startsWith('"') && literal.endsWith('"')).toBe(true);
  const body = literal.slice(1, -1);
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === '"' || ch === "\n" || ch === "\r") throw new Error(`unescaped ${JSON.stringify(ch)} at ${i}`);
    if (ch !== "\\") {
      out += ch;
      continue;
    }
    const next = body[++i]!;
    if (next === "n") out += "\n";
    else if (next === "r") out += "\r";
    else if (next === "t") out += "\t";
    else if (next === "\\" || next === '"') out += next;
    else if (/[0-9]/.test(next)) {
      const digits = body.slice(i, i + 3);
      expect(digits).toMatch(/^[0-9]{3}$/);
      out += String.fromCharCode(Number(digits));
      i += 2;
    } else throw new Error(`unknown escape \\${next}`);
  }
  return out;
}

describe("luaString", () => {
  it("escapes quotes, backslashes and newlines", () => {
    const value = 'say "hi"\\ then\nnext\r\tend';
    const literal = luaString(value);
    expect(literal).toBe('"say \\"hi\\"\\\\ then\\nnext\\r\\tend"');
    expect(readLuaString(literal)).toBe(value);
  });

  it("escapes other control characters with three digits so a following digit cannot join", () => {
    const value = "a\u00011b\u007f";
    const literal = luaString(value);
    expect(literal).toBe('"a\\0011b\\127"');
    expect(readLuaString(literal)).toBe(value);
  });

  it("keeps non-ASCII text as it is", () => {
    expect(luaString("café ✓")).toBe('"café ✓"');
  });
});

describe("tclString", () => {
  it("escapes every character Tcl substitutes or ends a word with inside quotes", () => {
    expect(tclString('a "b" $c [d] {e} \\f')).toBe('"a \\"b\\" \\$c \\[d\\] \\{e\\} \\\\f"');
    expect(tclString("x\ny\tz\r")).toBe('"x\\ny\\tz\\r"');
  });

  it("escapes other control characters with four hex digits so a following hex digit cannot join", () => {
    expect(tclString("a\u0001f\u007f")).toBe('"a\\u0001f\\u007f"');
    expect(tclString("café ✓")).toBe('"café ✓"');
  });
});

describe("envStem", () => {
  it("upper-cases and maps non-alphanumerics to _", () => {
    expect(envStem("hello-world.v2")).toBe("HELLO_WORLD_V2");
    expect(envStem("abc")).toBe("ABC");
  });
  it("keeps a valid variable name when the stack name starts with a digit", () => {
    expect(envStem("3d-tools")).toBe("_3D_TOOLS");
  });
});

describe("renderModule", () => {
  it("derives the variable names from the stack name", () => {
    const lua = renderModule(input(), template);
    expect(lua).toContain('local prefix_variable = "HELLO_WORLD_INSTALL_PREFIX"');
    expect(lua).toContain('local root_variable = "HELLO_WORLD_ROOT"');
    expect(lua).toContain('local module_label = "hello/1.0"');
  });

  it("records the default prefix on the line install.sh rewrites", () => {
    const lua = renderModule(input({ defaultPrefix: "/apps/stacks/hello" }), template);
    const lines = lua.split("\n").filter((l) => l.startsWith("local recorded_prefix = "));
    expect(lines).toEqual(['local recorded_prefix = "/apps/stacks/hello"']);
  });

  it("escapes every user-provided string", () => {
    const lua = renderModule(
      input({
        description: 'quote " backslash \\ newline\nend',
        envVars: { GREETING: 'he said "hi"\\\n', DATA: "${PREFIX}/data" },
        specs: ['hello cflags="-O2"'],
      }),
      template,
    );
    expect(lua).toContain('whatis("Description: " .. "quote \\" backslash \\\\ newline\\nend")');
    expect(lua).toContain('{ "GREETING", "he said \\"hi\\"\\\\\\n" },');
    expect(lua).toContain('{ "DATA", "${PREFIX}/data" },');
    expect(lua).toContain('hello cflags=\\"-O2\\"');
    // No raw newline inside any string literal: every line has an even number of unescaped quotes.
    for (const line of lua.split("\n")) {
      expect(line.replace(/\\\\/g, "").replace(/\\"/g, "").split('"').length % 2, line).toBe(1);
    }
  });

  it("puts the target and the description into whatis and help", () => {
    const lua = renderModule(input(), template);
    expect(lua).toContain('whatis("Target: " .. stack_target)');
    expect(lua).toContain('local stack_target = "x86_64_v3"');
    const help = /^help\((".*")\)$/m.exec(lua);
    expect(help).not.toBeNull();
    const text = readLuaString(help![1]!);
    expect(text).toContain("A greeting stack");
    expect(text).toContain("Target: x86_64_v3");
    expect(text).toContain("  hello@2.12\n  zlib");
  });

  it("counts one directory level per module name segment", () => {
    expect(renderModule(input(), template)).toContain("local levels_up = 3");
    expect(renderModule(input({ moduleName: "stacks/hello" }), template)).toContain("local levels_up = 4");
  });

  it("never mentions LD_LIBRARY_PATH", () => {
    const lua = renderModule(input({ envVars: { FOO: "bar", OMP_NUM_THREADS: "1" } }), template);
    expect(lua).not.toMatch(/LD_LIBRARY_PATH/);
    expect(lua).toContain('prepend_path("PATH", view .. "/bin")');
  });

  it("refuses a stack variable that would set LD_LIBRARY_PATH or the module's own variables", () => {
    expect(() => renderModule(input({ envVars: { LD_LIBRARY_PATH: "/x" } }), template)).toThrow(InputError);
    expect(() => renderModule(input({ envVars: { HELLO_WORLD_ROOT: "/x" } }), template)).toThrow(/reserved/);
    expect(() => renderModule(input({ envVars: { "BAD-NAME": "/x" } }), template)).toThrow(/BAD-NAME/);
  });

  it("refuses an unusable default prefix or module name", () => {
    expect(() => renderModule(input({ defaultPrefix: "relative/dir" }), template)).toThrow(/relative\/dir/);
    expect(() => renderModule(input({ defaultPrefix: '/opt/"x"' }), template)).toThrow(InputError);
    expect(() => renderModule(input({ moduleName: "a/../b" }), template)).toThrow(/module name/);
  });
});

describe("renderModule for Tcl", () => {
  it("is an Environment Modules modulefile with the same variables and prefix line", () => {
    const tcl = renderModule(input({ defaultPrefix: "/apps/stacks/hello" }), tclTemplate, "tcl");
    expect(tcl.startsWith("#%Module")).toBe(true);
    expect(tcl).toContain('set prefix_variable "HELLO_WORLD_INSTALL_PREFIX"');
    expect(tcl).toContain('set root_variable "HELLO_WORLD_ROOT"');
    expect(tcl.split("\n").filter((l) => l.startsWith("set recorded_prefix "))).toEqual([
      'set recorded_prefix "/apps/stacks/hello"',
    ]);
    expect(tcl).toContain("set levels_up 3");
    expect(tcl).not.toMatch(/LD_LIBRARY_PATH/);
  });

  it("escapes every user-provided string for Tcl", () => {
    const tcl = renderModule(
      input({ description: "[exec rm -rf ~] $HOME", envVars: { GREETING: "{[x]}\\", DATA: "${PREFIX}/data" } }),
      tclTemplate,
      "tcl",
    );
    expect(tcl).toContain('set stack_description "\\[exec rm -rf ~\\] \\$HOME"');
    expect(tcl).toContain('"GREETING" "\\{\\[x\\]\\}\\\\" \\');
    expect(tcl).toContain('"DATA" "\\$\\{PREFIX\\}/data" \\');
  });
});

const installTemplate = await loadInstallTemplate();

describe("renderInstallScript", () => {
  const script = (overrides: Partial<Parameters<typeof renderInstallScript>[0]> = {}) =>
    renderInstallScript(
      {
        stackName: "hello",
        version: "1.0",
        target: "x86_64_v3",
        defaultPrefix: "/opt/hello",
        moduleName: "hello",
        ...overrides,
      },
      installTemplate,
    );

  it("quotes values for the shell", () => {
    expect(shellQuote("it's $HOME")).toBe("'it'\\''s $HOME'");
    const text = script({ stackName: "it's $x", defaultPrefix: "/opt/x-1.0_a+b" });
    expect(text).toContain("STACK_NAME='it'\\''s $x'");
    expect(text).toContain("DEFAULT_PREFIX='/opt/x-1.0_a+b'");
    expect(text).toContain("MODULE_FILES=('modules/hello/1.0.lua' 'modules/hello/1.0')");
    expect(script({ moduleSystems: ["tcl"] })).toContain("MODULE_FILES=('modules/hello/1.0')");
  });

  it("uses only bash, coreutils, grep, sed and findutils", () => {
    const text = script();
    for (const tool of ["python", "perl", "awk", "jq", "curl", "wget"]) {
      expect(text).not.toMatch(new RegExp(`(^|[\\s|;(])${tool}\\b`, "m"));
    }
    expect(text.startsWith("#!/usr/bin/env bash\n")).toBe(true);
  });

  it("refuses an unusable default prefix", () => {
    expect(() => script({ defaultPrefix: "opt/hello" })).toThrow(InputError);
    // What install.sh would refuse: a character that changes meaning in shell, sed, pkg-config, CMake or Lua.
    expect(() => script({ defaultPrefix: "/opt/$x y" })).toThrow('it must not contain "$"');
    expect(() => script({ defaultPrefix: "/opt/a b" })).toThrow("must not contain U+0020");
    expect(() => script({ defaultPrefix: "/opt/a@b" })).toThrow('must not contain "@"');
    expect(() => script({ stackName: "a\nb" })).toThrow(/stack name/);
  });
});
