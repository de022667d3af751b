/**
 * `npm run bench`: runs every suite (or those named on the command line),
 * prints each table, and writes bench/RESULTS.md plus bench/results.json.
 * `--quick` is the CI smoke: tiny sizes, one round, and nothing is written
 * unless `--write` is also given, so a smoke run never overwrites the figures
 * of a full run.
 */
import { writeFileSync } from "node:fs"
import { arch, cpus, release, totalmem } from "node:os"
import { fileURLToPath } from "node:url"
import type { BenchSuite, SuiteResult } from "./lib/types.js"
import { renderMarkdown } from "./lib/report.js"
import { suites } from "./suites/index.js"

const args = process.argv.slice(2)
const quick = args.includes("--quick")
const write = args.includes("--write") || !quick
const roundsArg = args.find((a) => a.startsWith("--rounds="))
const rounds = roundsArg ? Number(roundsArg.slice("--rounds=".length)) : quick ? 1 : 5
const only = args.filter((a) => !a.startsWith("--"))

const selected: ReadonlyArray<BenchSuite> =
  only.length === 0 ? suites : suites.filter((s) => only.includes(s.name))
if (selected.length === 0) {
  console.error(`no suite named ${only.join(", ")}; known: ${suites.map((s) => s.name).join(", ")}`)
  process.exit(2)
}

const machine = {
  node: process.version,
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  platform: `${process.platform} ${release()} ${arch()}`,
  date: new Date().toISOString()
}

const results: Array<SuiteResult> = []
for (const suite of selected) {
  console.log(`# ${suite.name}${quick ? " (quick)" : ""}`)
  const result = await suite.run({ quick, rounds })
  results.push(result)
  console.log(renderMarkdown([result], machine, { quick, rounds }))
}

if (write) {
  const dir = fileURLToPath(new URL("../", import.meta.url))
  writeFileSync(`${dir}RESULTS.md`, renderMarkdown(results, machine, { quick, rounds }, true))
  writeFileSync(`${dir}results.json`, JSON.stringify({ machine, quick, rounds, results }, null, 2) + "\n")
  console.log(`wrote ${dir}RESULTS.md and ${dir}results.json`)
}
