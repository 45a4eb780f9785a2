/**
 * HTML built by a tagged template that escapes every interpolated value: `html\`<td>${name}</td>\`` is safe for any
 * `name`. Only markup made by `html` itself (an `Html`) goes in unescaped, so a value from a stack file, a log or
 * Spack's output can never become markup, whatever it holds.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type HtmlValue = Html | string | number | undefined | readonly HtmlValue[];

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/**
 * Text for an HTML text node or a quoted attribute value: the five special characters as entities, and control
 * characters (terminal colour codes in a log, NUL) left out, since HTML allows none of them but tab and newline.
 */
export function escapeHtml(value: string): string {
  return value.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "").replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

function part(value: HtmlValue): string {
  if (value === undefined) return "";
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(part).join("");
  return escapeHtml(String(value));
}

/** The tagged template: literal parts as written, every value escaped (arrays joined, `undefined` as nothing). */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0] ?? "";
  values.forEach((value, i) => {
    out += part(value) + (strings[i + 1] ?? "");
  });
  return new Html(out);
}
