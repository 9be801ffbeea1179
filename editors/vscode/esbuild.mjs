// Bundles the extension and vscode-languageclient into one file, dist/extension.js, so the
// .vsix carries no node_modules (`vsce package --no-dependencies`).
import { build } from "esbuild";

await build({
  entryPoints: ["src/extension.ts"],
  outfile: "dist/extension.js",
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  external: ["vscode"],
  minify: true,
  keepNames: true,
  sourcemap: false,
  logLevel: "warning",
});
