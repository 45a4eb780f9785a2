/** The run report page's stylesheet, inline in the page (no file, no font, nothing fetched). */
export const REPORT_CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1000px; color: #1b1b1b; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .3em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
code, pre { font-family: ui-monospace, monospace; font-size: 12.5px; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15em 1em; }
dt { color: #555; }
dd { margin: 0; overflow-wrap: anywhere; }
table.targets { border-collapse: collapse; width: 100%; }
table.targets th, table.targets td { border-bottom: 1px solid #e4e4e4; padding: .25em .5em; text-align: left; }
table.targets .n { text-align: right; }
.status-ok .status { color: #2e7d32; }
.status-failed .status { color: #c62828; font-weight: bold; }
.status-cancelled .status, .status-skipped .status { color: #a06a00; }
.verdict { font-size: 1.05em; }
.verdict.exit-0 { color: #2e7d32; }
.failure { border-left: 4px solid #c62828; padding: 0 .8em; margin: .8em 0; background: #fff6f6; }
svg.timeline { display: block; max-width: 100%; height: auto; }
svg.timeline text { font: 12px system-ui, sans-serif; fill: #333; }
svg.timeline text.step-label { fill: #fff; font-size: 10px; pointer-events: none; }
svg.timeline .axis line { stroke: #e0e0e0; }
svg.timeline .axis text { fill: #777; font-size: 10px; text-anchor: middle; }
.bar.ok, .key.ok { fill: #43a047; background: #43a047; }
.bar.reused, .key.reused { fill: #90a4ae; background: #90a4ae; }
.bar.failed, .key.failed { fill: #e53935; background: #e53935; }
.bar { stroke: #fff; stroke-width: 1; }
.key { display: inline-block; width: 1em; height: .8em; margin-left: 1em; vertical-align: middle; }
details.packages ul { columns: 2; margin: .3em 0; }
.warnings li { color: #8a5a00; }
`;
