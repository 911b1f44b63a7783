// Refuses an empty assemble configuration, and names every module whose exact version the registry does not
// have, before assemble downloads any (assemble stops at the first one, with npm's message only).
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);
const text = readFileSync(process.argv[2], "utf8").trim();
let modules;
try {
  modules = Object.entries(JSON.parse(text || "{}").frontendModules ?? {});
} catch (error) {
  console.error(`ASSEMBLE_CONFIG is not JSON (${error.message}): pass FrontendConfig.assemble_config()`);
  process.exit(1);
}
if (modules.length === 0) {
  console.error("ASSEMBLE_CONFIG is empty: pass FrontendConfig.assemble_config() as a build argument, as the "
    + "program does ({\"frontendModules\": {name: exact version}}, at least one module)");
  process.exit(1);
}

// npm answers "not there" as E404, or (older npm) with nothing for a version the package lacks; any other
// failure is the registry's, not the module's.
async function lookUp([name, version]) {
  try {
    const { stdout } = await run("npm", ["view", "--json", `${name}@${version}`, "version"]);
    return stdout.trim() ? null : `${name}@${version}`;
  } catch (error) {
    if (/\bE404\b/.test(error.stderr)) return `${name}@${version}`;
    throw new Error(`npm view ${name}@${version} failed, so the registry could not be asked:\n${error.stderr}`);
  }
}

// A few at a time: each is an npm process, and the builder has few cores.
const missing = [];
const queue = [...modules];
await Promise.all(Array.from({ length: 8 }, async () => {
  while (queue.length) {
    const found = await lookUp(queue.shift());
    if (found) missing.push(found);
  }
}));
for (const spec of missing.sort()) {
  const name = spec.slice(0, spec.lastIndexOf("@"));
  console.error(`frontend.modules: ${spec} is not in the npm registry; give a version that \`npm view ${name} `
    + "versions` lists in frontend.modules, or take the module out (frontend.removed_modules for one of the "
    + "RefApp set)");
}
process.exit(missing.length ? 1 : 0);
