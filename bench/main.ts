/**
 * `npm run bench`: runs every suite (or those named on the command line),
 * prints each table and then issue 10's targets judged on them, and writes
 * bench/RESULTS.md plus bench/results.json (targets on top of both).
 * `--quick` is the CI smoke: tiny sizes, one round, and nothing is written
 * unless `--write` is also given, so a smoke run never overwrites the figures
 * of a full run. `--compare=<older results.json>` adds a column with the
 * older run's median of each row of the same suite and name
 * (`--compare-label=…` names it; by default the Effect 3 run).
 */
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { loadComparison, machine, renderMarkdown } from "./lib/report.js"
import { renderTargets } from "./lib/targets.js"
import type { BenchSuite, SuiteResult } from "./lib/types.js"
import { suite as churn } from "./suites/churn.js"
import { suite as codec } from "./suites/codec.js"
import { suite as rpc } from "./suites/rpc.js"
import { suite as scale } from "./suites/scale.js"
import { suite as stdio } from "./suites/stdio.js"
import { suite as transport } from "./suites/transport.js"

/** Every suite, in the order of the report (and the order they run in). */
const suites: ReadonlyArray<BenchSuite> = [codec, transport, rpc, stdio, churn, scale]

const args = process.argv.slice(2)
const option = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const quick = args.includes("--quick")
const write = args.includes("--write") || !quick
const rounds = Number(option("rounds") ?? (quick ? 1 : 5))
const comparePath = option("compare")
const compare =
  comparePath === undefined
    ? undefined
    : loadComparison(comparePath, option("compare-label") ?? "Effect 3 (same machine, same session)")
const only = args.filter((a) => !a.startsWith("--"))

const selected: ReadonlyArray<BenchSuite> =
  only.length === 0 ? suites : suites.filter((s) => only.includes(s.name))
if (selected.length === 0) {
  console.error(`no suite named ${only.join(", ")}; known: ${suites.map((s) => s.name).join(", ")}`)
  process.exit(2)
}

const host = machine()
const run = { quick, rounds, compare }
const results: Array<SuiteResult> = []
for (const suite of selected) {
  console.log(`# ${suite.name}${quick ? " (quick)" : ""}`)
  const result = await suite.run({ quick, rounds })
  results.push(result)
  console.log(renderMarkdown([result], host, run))
}

const targets = results.flatMap((r) => r.targets ?? [])
console.log(renderTargets(targets, quick))

if (write) {
  const dir = fileURLToPath(new URL("../", import.meta.url))
  writeFileSync(`${dir}RESULTS.md`, renderMarkdown(results, host, run, true))
  writeFileSync(
    `${dir}results.json`,
    JSON.stringify({ machine: host, quick, rounds, targets, results }, null, 2) + "\n"
  )
  console.log(`wrote ${dir}RESULTS.md and ${dir}results.json`)
}
