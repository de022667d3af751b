// Prebuilds the addon with prebuildify (one N-API binary per platform/arch,
// stripped) into prebuilds/<platform>-<arch>/, offline: like build.mjs it
// points node-gyp at the running Node's own headers
// (<execPath>/../../include/node) when they exist, through npm_config_nodedir,
// which node-gyp reads from the environment (prebuildify has no such flag).
// Extra arguments are passed to prebuildify (e.g. --arch).
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { delimiter, dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const packageDir = resolve(here, "..")
const require = createRequire(import.meta.url)

const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}` }
const nodeRoot = resolve(dirname(process.execPath), "..")
if (existsSync(join(nodeRoot, "include", "node", "node_api.h"))) {
  env.npm_config_nodedir = nodeRoot
}

const prebuildify = require.resolve("prebuildify/bin.js")
const args = [prebuildify, "--napi", "--strip", ...process.argv.slice(2)]
const result = spawnSync(process.execPath, args, { cwd: packageDir, stdio: "inherit", env })
process.exit(result.status ?? 1)
