/**
 * RESULTS.md and results.json: issue 10's targets on top, the tables of every
 * suite, the machine, and optionally a column with the medians of an older run
 * (`--compare`).
 */
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { arch, cpus, release, totalmem } from "node:os"
import { fmt } from "./measure.js"
import { renderTargets } from "./targets.js"
import type { SuiteResult } from "./types.js"

/** The machine a run is on, printed on top of a report. */
export type Machine = {
  readonly node: string
  readonly cpu: string
  readonly cores: number
  readonly memoryGiB: number
  readonly platform: string
  readonly date: string
  /** Wall µs per first touch of a fresh page, measured now: what every new read buffer and heap page costs. */
  readonly pageFaultMicros: number
  /** Wall ms of a spawn + exit of `/bin/true` from this process (median of 9): what a fork costs here. */
  readonly spawnMillis: number
}

// The same source on another day of the same machine has read 1 µs or 27 µs per fault and 1 ms or 5 ms per spawn,
// and every figure with a page or a process in it moved with them: so each run says what they cost during it.
const pageFaultMicros = (): number => {
  const bytes = 64 * 2 ** 20
  // Above glibc's mmap threshold: pages nobody has touched yet, one fault per page on the first write.
  const buffer = Buffer.allocUnsafeSlow(bytes)
  const before = process.resourceUsage().minorPageFault
  const start = performance.now()
  for (let at = 0; at < bytes; at += 4096) buffer[at] = 1
  const elapsed = performance.now() - start
  const faults = process.resourceUsage().minorPageFault - before
  return faults > 0 ? (elapsed * 1000) / faults : 0
}

const spawnMillis = (): number => {
  const times: Array<number> = []
  for (let i = 0; i < 9; i++) {
    const start = performance.now()
    spawnSync("/bin/true")
    times.push(performance.now() - start)
  }
  return times.sort((a, b) => a - b)[4]!
}

/** This machine, now, with what a page fault and a spawn cost on it during this run. */
export const machine = (): Machine => ({
  node: process.version,
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  platform: `${process.platform} ${release()} ${arch()}`,
  date: new Date().toISOString(),
  pageFaultMicros: Number(pageFaultMicros().toFixed(2)),
  spawnMillis: Number(spawnMillis().toFixed(2))
})

/** Medians of an older run, by suite and measurement name, shown beside the new ones. */
export interface Comparison {
  readonly label: string
  readonly medians: ReadonlyMap<string, number>
}

const key = (suite: string, name: string) => `${suite}\u0000${name}`

/** Reads the medians of an older `results.json`. */
export const loadComparison = (path: string, label: string): Comparison => {
  const old = JSON.parse(readFileSync(path, "utf8")) as { readonly results: ReadonlyArray<SuiteResult> }
  const medians = new Map<string, number>()
  for (const r of old.results) for (const m of r.measurements) medians.set(key(r.suite, m.name), m.median)
  return { label, medians }
}

/** Renders suites as Markdown tables; given the `host`, as the whole document, with the machine and run on top. */
export const renderMarkdown = (
  results: ReadonlyArray<SuiteResult>,
  run: { quick: boolean; rounds: number; compare?: Comparison | undefined },
  host?: Machine
): string => {
  const lines: Array<string> = []
  const compare = run.compare
  if (host !== undefined) {
    lines.push(
      "# Benchmark results",
      "",
      "Produced by `npm run bench` (bench/main.ts). Every figure is the median of interleaved rounds, with the",
      "min-max beside it, and is compared with a reference measured in the same run on the same machine.",
      "Each suite runs in a node process of its own, so that no suite's figures depend on what ran before it.",
      ...(compare === undefined
        ? []
        : [`The column "${compare.label}" is the median of the older run's row.`]),
      "",
      `Machine: ${Object.entries(host)
        .map(([k, v]) => `${k} ${v}`)
        .join("; ")}.`,
      `Rounds: ${run.rounds}${run.quick ? " (quick smoke: not representative)" : ""}.`,
      "",
      renderTargets(
        results.flatMap((r) => r.targets ?? []),
        run.quick
      )
    )
  }
  for (const result of results) {
    const old = (name: string) => {
      const m = compare?.medians.get(key(result.suite, name))
      return m === undefined ? "" : fmt(m)
    }
    lines.push(
      `## ${result.title}`,
      "",
      compare === undefined
        ? "| measurement | median | min-max | unit | host CPU µs/op | vs reference | note |"
        : `| measurement | median | ${compare.label} | min-max | unit | host CPU µs/op | vs reference | note |`,
      compare === undefined ? "|---|---:|---:|---|---:|---|---|" : "|---|---:|---:|---:|---|---:|---|---|"
    )
    for (const m of result.measurements) {
      const ref = m.reference ? result.measurements.find((r) => r.name === m.reference) : undefined
      const ratio =
        ref && ref.median !== 0 ? `${((m.median / ref.median) * 100).toFixed(0)} % of ${ref.name}` : ""
      const cpu = m.cpuMicrosPerOp === undefined ? "" : fmt(m.cpuMicrosPerOp)
      const median = compare === undefined ? fmt(m.median) : `${fmt(m.median)} | ${old(m.name)}`
      lines.push(
        `| ${m.name} | ${median} | ${fmt(m.min)}-${fmt(m.max)} | ${m.unit} | ${cpu} | ${ratio} | ${m.note ?? ""} |`
      )
    }
    lines.push("")
    for (const note of result.notes) lines.push(note, "")
  }
  return lines.join("\n")
}
