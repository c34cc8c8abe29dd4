// `componentize-js <app.js> --wit <dir> -n <world> -o <out>`, working around
// ComponentizeJS#221 in componentize-js 0.23: its bindings refer to a class
// for every imported resource but emit none for a resource without methods,
// such as wasi:sockets' `network`, so `instanceNetwork()` throws
// "ReferenceError: import_network_0_2_12$Network is not defined".
// This defines the missing classes; it does nothing once they are emitted.

import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";

import { componentize } from "@bytecodealliance/componentize-js";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    wit: { type: "string" },
    "world-name": { type: "string", short: "n" },
    out: { type: "string", short: "o" },
  },
});
const [sourcePath] = positionals;
if (!sourcePath || !values.wit || !values["world-name"] || !values.out) {
  throw new Error("usage: node componentize.mjs <app.js> --wit <dir> -n <world> -o <out.wasm>");
}

// componentize.js imports the splicer from this module: patching the shared
// module object reaches it.
const splicerModule = new URL(
  "../lib/spidermonkey-embedding-splicer.js",
  import.meta.resolve("@bytecodealliance/componentize-js"),
);
const { splicer } = await import(splicerModule);
const spliceBindings = splicer.spliceBindings;
splicer.spliceBindings = (...args) => {
  const spliced = spliceBindings(...args);
  spliced.jsBindings += missingResourceClasses(spliced.jsBindings);
  return spliced;
};

const { component } = await componentize({
  sourcePath,
  witPath: values.wit,
  worldName: values["world-name"],
});
await writeFile(values.out, component);

function missingResourceClasses(bindings) {
  const used = new Set(
    Array.from(bindings.matchAll(/Object\.create\((import_[\w$]+)\.prototype\)/g), (m) => m[1]),
  );
  return Array.from(used)
    .filter((name) => !bindings.includes(`class ${name} `))
    .map((name) => `\nclass ${name} {}\n`)
    .join("");
}
