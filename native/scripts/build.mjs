// Builds the addon offline: node-gyp is pointed at the running Node's own
// headers (<execPath>/../../include/node) when they exist, so no header
// download is attempted; otherwise node-gyp's default lookup applies.
// A prebuilt binary (prebuildify layout) or an existing build is used as is
// unless --force is given.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { delimiter, dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const packageDir = resolve(here, "..")
const require = createRequire(import.meta.url)
const force = process.argv.includes("--force")

const hasBinary = () => {
  try {
    require("node-gyp-build").path(packageDir)
    return true
  } catch {
    return false
  }
}

if (!force && hasBinary()) {
  process.exit(0)
}

const nodeRoot = resolve(dirname(process.execPath), "..")
const args = [require.resolve("node-gyp/bin/node-gyp.js"), "rebuild"]
if (existsSync(join(nodeRoot, "include", "node", "node_api.h"))) {
  args.push(`--nodedir=${nodeRoot}`)
}
if (process.env.GCS_NATIVE_DEBUG === "1") {
  args.push("--debug")
}

// binding.gyp runs `node` to find node-addon-api and the ASan switch
// (GCS_NATIVE_ASAN=1): make that the same node that runs this build.
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}` }
const result = spawnSync(process.execPath, args, { cwd: packageDir, stdio: "inherit", env })
process.exit(result.status ?? 1)
