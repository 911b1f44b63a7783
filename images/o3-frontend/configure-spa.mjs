// What the official image's startup.sh does to index.html at every start, done once at build time so that the
// same files can be served by nginx or from a bucket: the configuration URLs and the default locale go in
// (the paths are in spa-build-config.json already). The page's one inline script, the call that starts the
// application, moves to a file of its own, so that the Content-Security-Policy needs no 'unsafe-inline'.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const [directory] = process.argv.slice(2);
const urls = (process.env.SPA_CONFIG_URLS ?? "").split(",").filter(Boolean);
const locale = process.env.SPA_DEFAULT_LOCALE || "en_GB";  // startup.sh's default

let page = readFileSync(`${directory}/index.html`, "utf8")
  // No URLs: an empty list, as startup.sh makes ([""] would make the application ask for "").
  .replace('"$SPA_CONFIG_URLS"', () => urls.map((url) => JSON.stringify(url)).join(","))
  .replaceAll("$SPA_DEFAULT_LOCALE", () => locale);

const inline = [...page.matchAll(/<script>([\s\S]*?)<\/script>/g)];
if (inline.length !== 1 || !inline[0][1].trim().startsWith("initializeSpa(")) {
  throw new Error(`index.html has ${inline.length} inline scripts, not the one initializeSpa call this expects: `
    + "the tooling's page changed, see configure-spa.mjs");
}
const code = inline[0][1];
const file = `openmrs-init.${createHash("sha256").update(code).digest("hex").slice(0, 16)}.js`;
writeFileSync(`${directory}/${file}`, code);
page = page.replace(inline[0][0], `<script src="/openmrs/spa/${file}"></script>`);

const left = page.match(/\$[A-Z_]{4,}/);
if (left) throw new Error(`index.html still has ${left[0]}: the tooling's page changed, see configure-spa.mjs`);
writeFileSync(`${directory}/index.html`, page);
