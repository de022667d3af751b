/**
 * `npm run bench`: runs every suite (or those named on the command line),
 * prints each table and then issue 10's targets judged on them, and writes
 * bench/RESULTS.md plus bench/results.json (targets on top of both).
 * `--quick` is the CI smoke: tiny sizes, one round, and nothing is written
 * unless `--write` is also given, so a smoke run never overwrites the figures
 * of a full run. `--compare=<older results.json>` adds a column with the
 * older run's median of each row of the same suite and name
 * (`--compare-label=…` names it; by default the Effect 3 run).
 *
 * Each suite runs in a node process of its own (this script again, with `--emit=<file>`): a suite's figures then
 * do not depend on what ran before it in the same process. Run after the codec and transport suites, the Start at
 * one in flight cost 45.5-50.2 µs per call; in a process of its own, 41.8-42.3 (alternating runs, same machine).
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
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

const run = { quick, rounds, compare }
const emit = option("emit")

/** Runs `suite` in a child process and reads back what it emitted. */
const inChild = (suite: BenchSuite, dir: string): SuiteResult => {
  const file = join(dir, `${suite.name}.json`)
  const passed = args.filter((a) => a.startsWith("--rounds=") || a === "--quick")
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), suite.name, ...passed, `--emit=${file}`],
    { stdio: "inherit" }
  )
  if (child.status !== 0)
    throw new Error(`bench suite ${suite.name} failed (${child.status ?? child.signal})`)
  return JSON.parse(readFileSync(file, "utf8")) as SuiteResult
}

const results: Array<SuiteResult> = []
if (emit !== undefined || selected.length === 1) {
  for (const suite of selected) {
    console.log(`# ${suite.name}${quick ? " (quick)" : ""}`)
    const result = await suite.run({ quick, rounds })
    results.push(result)
    console.log(renderMarkdown([result], run))
  }
  if (emit !== undefined) {
    writeFileSync(emit, JSON.stringify(results[0]))
    process.exit(0)
  }
} else {
  const dir = mkdtempSync(join(tmpdir(), "gcsb-bench-"))
  try {
    for (const suite of selected) results.push(inChild(suite, dir))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const targets = results.flatMap((r) => r.targets ?? [])
console.log(renderTargets(targets, quick))

if (write) {
  // Probed after the suites, in the process that writes: a suite's process never pays for the probe, nor holds
  // its 64 MiB of touched pages.
  const host = machine()
  const dir = fileURLToPath(new URL("../", import.meta.url))
  writeFileSync(`${dir}RESULTS.md`, renderMarkdown(results, run, host))
  writeFileSync(
    `${dir}results.json`,
    JSON.stringify({ machine: host, quick, rounds, targets, results }, null, 2) + "\n"
  )
  console.log(`wrote ${dir}RESULTS.md and ${dir}results.json`)
}
