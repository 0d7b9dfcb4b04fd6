// Copies the browser assets listed in vendor.json from node_modules into static/vendor/, and writes
// static/vendor/VERSIONS.json (package -> version, as installed from package-lock.json), so the web
// app never reaches a CDN: `electra up` serves these files itself. Run by `make npm-deps`.
"use strict";

const fs = require("fs");
const path = require("path");

const here = __dirname;
const root = path.resolve(here, "..", "..", "..");
const manifest = JSON.parse(fs.readFileSync(path.join(here, "vendor.json"), "utf8"));
const out = path.join(here, "static", "vendor");

function installedVersion(pkg) {
  const meta = JSON.parse(fs.readFileSync(path.join(root, "node_modules", pkg, "package.json"), "utf8"));
  return meta.version;
}

const versions = {};
let copied = 0;
for (const f of manifest.files) {
  const src = path.join(root, "node_modules", f.package, f.from);
  const dest = path.join(out, f.to);
  if (!fs.existsSync(src)) {
    console.error(`vendor: ${f.package} has no ${f.from}; run npm ci first`);
    process.exit(1);
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const before = fs.existsSync(dest) ? fs.readFileSync(dest) : null;
  const bytes = fs.readFileSync(src);
  if (before === null || !before.equals(bytes)) {
    fs.writeFileSync(dest, bytes);
    copied += 1;
  }
  versions[f.package] = installedVersion(f.package);
}
const sorted = Object.fromEntries(Object.keys(versions).sort().map((k) => [k, versions[k]]));
const text = JSON.stringify(sorted, null, 2) + "\n";
const versionsFile = path.join(out, "VERSIONS.json");
if (!fs.existsSync(versionsFile) || fs.readFileSync(versionsFile, "utf8") !== text) {
  fs.writeFileSync(versionsFile, text);
}
console.log(`vendor: ${manifest.files.length} files from ${Object.keys(sorted).length} packages (${copied} updated) in ${path.relative(root, out)}`);
