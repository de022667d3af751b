// Builds the addon offline against the headers of the Node that runs this
// script — the Node that will load the addon: <execPath>/../include/node.
// node-gyp takes an npm config `nodedir` (from any .npmrc, passed to scripts as
// npm_config_nodedir) over its own --nodedir flag, so the choice is made by
// overriding that variable in the child's environment, which no config can
// beat. Without those headers node-gyp's default lookup applies.
// A prebuilt binary (prebuildify layout) or an existing build is used as is
// unless --force is given.
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { delimiter, dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const packageDir = resolve(here, "..")
const require = createRequire(import.meta.url)
const force = process.argv.includes("--force")

const nodeRoot = resolve(dirname(process.execPath), "..")
const ownHeaders = existsSync(join(nodeRoot, "include", "node", "node_api.h"))

// A local build made against other headers (another Node, or an npm config's
// nodedir) is rebuilt; a prebuilt binary is N-API and loads on any Node.
const builtElsewhere = () => {
  const config = join(packageDir, "build", "config.gypi")
  if (!existsSync(config)) return false
  const nodedir = /"nodedir": "([^"]*)"/.exec(readFileSync(config, "utf8"))?.[1]
  return ownHeaders && nodedir !== undefined && resolve(nodedir) !== nodeRoot
}

const hasBinary = () => {
  try {
    require("node-gyp-build").path(packageDir)
    return !builtElsewhere()
  } catch {
    return false
  }
}

if (!force && hasBinary()) {
  process.exit(0)
}

const args = [require.resolve("node-gyp/bin/node-gyp.js"), "rebuild"]
if (process.env.GCS_NATIVE_DEBUG === "1") {
  args.push("--debug")
}

// binding.gyp runs `node` to find node-addon-api and the ASan switch
// (GCS_NATIVE_ASAN=1): make that the same node that runs this build.
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}` }
if (ownHeaders) {
  env.npm_config_nodedir = nodeRoot
} else {
  delete env.npm_config_nodedir
}
console.log(`gcs-native: building for Node ${process.version} with headers from ${ownHeaders ? nodeRoot : "node-gyp's cache"}`)
const result = spawnSync(process.execPath, args, { cwd: packageDir, stdio: "inherit", env })
process.exit(result.status ?? 1)
