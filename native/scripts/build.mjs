// Builds the addon from source unless a usable binary is there already: a
// prebuilt one (prebuilds/, N-API, loads on any Node) or a local build made
// against the running Node's headers and newer than every source.
//
// The build uses the headers of the Node that runs this script — the Node
// that will load the addon: <execPath>/../include/node. node-gyp takes an npm
// config `nodedir` (from any .npmrc, passed to scripts as npm_config_nodedir)
// over its own --nodedir flag, so the choice is made by overriding that
// variable in the child's environment, which no config can beat.
//
// node-gyp is a development dependency: in a user's install it comes from
// npm itself, which tells its scripts where its bundled copy is
// (npm_config_node_gyp).
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { createRequire } from "node:module"
import { delimiter, dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const require = createRequire(import.meta.url)
const force = process.argv.includes("--force")

const nodeRoot = resolve(dirname(process.execPath), "..")
const ownHeaders = existsSync(join(nodeRoot, "include", "node", "node_api.h"))
const localBuild = join(packageDir, "build", "Release", "gcs_native.node")

// A local build is stale when made against other headers (another Node, an
// npm config's nodedir) or older than a source file.
const stale = () => {
  if (!existsSync(localBuild)) return false
  const config = join(packageDir, "build", "config.gypi")
  const nodedir = existsSync(config)
    ? /"nodedir": "([^"]*)"/.exec(readFileSync(config, "utf8"))?.[1]
    : undefined
  if (ownHeaders && nodedir !== undefined && resolve(nodedir) !== nodeRoot) return true
  const built = statSync(localBuild).mtimeMs
  const sources = [
    join(packageDir, "binding.gyp"),
    ...readdirSync(join(packageDir, "src")).map((name) => join(packageDir, "src", name))
  ]
  return sources.some((file) => statSync(file).mtimeMs > built)
}

const usable = () => {
  try {
    require("node-gyp-build").path(packageDir)
    return !stale()
  } catch {
    return false
  }
}

if (!force && usable()) process.exit(0)

const nodeGyp = (() => {
  try {
    return require.resolve("node-gyp/bin/node-gyp.js")
  } catch {
    return process.env.npm_config_node_gyp
  }
})()
if (nodeGyp === undefined || !existsSync(nodeGyp)) {
  console.error(
    "gcs-native: no prebuilt binary fits this platform and node-gyp was not found; run the install through npm"
  )
  process.exit(1)
}

const args = [nodeGyp, "rebuild"]
if (process.env.GCS_NATIVE_DEBUG === "1") args.push("--debug")

// binding.gyp runs `node` to find node-addon-api and the ASan switch
// (GCS_NATIVE_ASAN=1): make that the same node that runs this build.
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}` }
if (ownHeaders) env.npm_config_nodedir = nodeRoot
else delete env.npm_config_nodedir
console.log(
  `gcs-native: building for Node ${process.version} with headers from ${ownHeaders ? nodeRoot : "node-gyp's cache"}`
)
const result = spawnSync(process.execPath, args, { cwd: packageDir, stdio: "inherit", env })
process.exit(result.status ?? 1)
