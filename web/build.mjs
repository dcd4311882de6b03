// Bundles src/main.jsx (and the CSS it imports) into dist/assets/*-<hash>.{js,css} and writes
// dist/index.html naming them. Hashed names let orvad cache assets forever; index.html is never cached.
// Code splitting: what src reaches only through import() (the code editor, the diff view) is its own
// chunk, fetched by the browser when first used; code both sides share goes into chunk-<hash>.js.
import { build } from "esbuild";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const dist = path.join(here, "dist");
const next = path.join(here, "dist.next"); // built aside, so a failed build leaves the last good one

await rm(next, { recursive: true, force: true });
const result = await build({
  entryPoints: { app: path.join(here, "src", "main.jsx") },
  bundle: true,
  splitting: true, // needs format "esm": chunks are ES modules the app imports
  minify: true,
  sourcemap: false,
  format: "esm",
  target: ["es2020"],
  jsx: "automatic",
  jsxImportSource: "preact",
  outdir: path.join(next, "assets"),
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((p) => path.basename(p));
const pick = (ext) => {
  const found = outputs.find((name) => name.startsWith("app-") && name.endsWith(ext));
  if (!found) throw new Error(`esbuild produced no app-*${ext}`);
  return found;
};
// the chunks the app imports statically are preloaded with it, not found one round trip later
const appOutput = Object.entries(result.metafile.outputs).find(([p]) => path.basename(p) === pick(".js"))[1];
const preloads = appOutput.imports
  .filter((i) => i.kind === "import-statement")
  .map((i) => `<link rel="modulepreload" href="/web/assets/${path.basename(i.path)}" />`)
  .join("\n    ");
const page = (await readFile(path.join(here, "src", "index.html"), "utf8"))
  .replace("{{script}}", `/web/assets/${pick(".js")}`)
  .replace("{{style}}", `/web/assets/${pick(".css")}`)
  .replace("{{preloads}}", preloads);
// a gzip twin of each asset: orvad sends it to browsers that accept gzip (a third of the bytes)
for (const name of outputs) {
  const file = path.join(next, "assets", name);
  await writeFile(`${file}.gz`, gzipSync(await readFile(file), { level: 9 }));
}
await mkdir(next, { recursive: true });
await writeFile(path.join(next, "index.html"), page);
await rm(dist, { recursive: true, force: true });
await rename(next, dist);
console.log(`dashboard built: ${outputs.join(", ")}`);
