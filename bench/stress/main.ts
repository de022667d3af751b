/**
 * `npm run stress`: the fault matrix, the fuzzers, the native addon's churn
 * and sanitizer run, and the exec soak; prints progress and writes
 * bench/STRESS.md. `--quick` is the CI smoke (small sizes, fewer matrix
 * steps, one engine, no sanitizer build; nothing is written unless `--write`
 * is also given, so a smoke run never overwrites the figures of a full run).
 * Naming parts (`matrix`, `fuzz`, `native`, `asan`, `soak`) runs only those;
 * `--engines=native,node` runs the matrix (and the soak, on the first) over
 * those Transport engines (default: both in a full run, `native` — the
 * production one — in a quick one).
 * `replay <seed> <index>` rebuilds one fuzz input and runs it in the
 * foreground. Exits 1 when any check failed.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { machine } from "../lib/report.js"
import { probeEngine } from "../support/hostSession.js"
import type { AsanResult } from "./asan.js"
import { runAsan } from "./asan.js"
import { CountingLogger } from "./logs.js"
import { loadCorpus } from "./fuzz/corpus.js"
import { runFuzz } from "./fuzz/run.js"
import { isFrameInput, runInput } from "./fuzz/targets.js"
import type { Step } from "./lifecycle.js"
import { runLifecycle, Steps } from "./lifecycle.js"
import type { CellResult } from "./matrix.js"
import { rows, runMatrix } from "./matrix.js"
import { runNativeCycles } from "./nativeCycles.js"
import { processProblems } from "./probes.js"
import type { StressReport } from "./report.js"
import { renderReport } from "./report.js"
import { runSoak } from "./soak.js"
import { asanProblems, fuzzProblems, nativeProblems, soakProblems } from "./verdicts.js"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const vectorsPath = join(root, "packages/protocol/test/vectors/go-wire-vectors.json")
const args = process.argv.slice(2)
const quick = args.includes("--quick")
const write = args.includes("--write") || !quick
const parts = ["matrix", "fuzz", "native", "asan", "soak"] as const
const named = args.filter((a) => !a.startsWith("--"))

if (named[0] === "replay") {
  // One fuzz input, rebuilt from (seed, index), run where a debugger or a stack trace can see it.
  const seed = Number(named[1])
  const index = Number(named[2])
  const tally = {}
  try {
    const found = runInput(seed, index, loadCorpus(vectorsPath), true, tally)
    const kind = isFrameInput(index) ? "frame stream" : "body"
    console.log(JSON.stringify({ seed, index, kind, tally, findings: found }, null, 2))
    process.exit(found.length === 0 ? 0 : 1)
  } catch (e) {
    // Only the harness itself can throw here: the targets catch what the decoders throw.
    console.error(`input ${index} of seed ${seed} broke the harness:`, e)
    process.exit(1)
  }
}

const unknown = named.filter((a) => !(parts as ReadonlyArray<string>).includes(a))
if (unknown.length > 0) {
  console.error(`unknown part ${unknown.join(", ")}; known: ${parts.join(", ")}, or replay <seed> <index>`)
  process.exit(2)
}
const selected = (part: (typeof parts)[number]) => named.length === 0 || named.includes(part)

const enginesArg = args.find((a) => a.startsWith("--engines="))
const engines = enginesArg === undefined ? undefined : enginesArg.slice("--engines=".length).split(",")
const settings = quick
  ? {
      engines: engines ?? ["native"],
      steps: ["negotiate", "create", "exec", "stdio", "close"] as ReadonlyArray<Step>,
      flood: 1000,
      fuzzInputs: 20_000,
      channelEvery: 10,
      nativeCycles: 2_000,
      soakCycles: 200,
      soakEvery: 50
    }
  : {
      engines: engines ?? ["native", "node"],
      steps: Steps as ReadonlyArray<Step>,
      flood: 10_000,
      fuzzInputs: 1_000_000,
      channelEvery: 25,
      nativeCycles: 100_000,
      soakCycles: 10_000,
      soakEvery: 1_000
    }
const matrixConfig = {
  deadlineMs: 1000,
  closeTimeoutMs: 500,
  delayMs: 200,
  payloadBytes: 256 * 1024,
  heapToleranceBytes: 512 * 1024
}
const fuzzConfig = {
  seed: 20261128,
  workers: 2,
  slice: 25_000,
  slowMs: 2000,
  hangMs: 10_000,
  heapLimitMb: 256
}
const log = (line: string) => console.log(line)

const started = Date.now()
const work = mkdtempSync(join(tmpdir(), "gcs-stress-"))
const problems: Array<string> = []
const notes: Array<string> = []
let matrix: StressReport["matrix"]
let fuzz: StressReport["fuzz"]
let nativeReport: StressReport["native"]
let asan: AsanResult | { skipped: string } | undefined
let soak: StressReport["soak"]

try {
  if (selected("native")) {
    log(`# native: ${settings.nativeCycles} cycles`)
    const dir = mkdtempSync(join(work, "native-"))
    const result = await runNativeCycles({
      dir,
      cycles: settings.nativeCycles,
      inFlight: 8,
      payloadBytes: 4096,
      samples: 10,
      log
    })
    nativeReport = { result, inFlight: 8, payloadBytes: 4096 }
    problems.push(...nativeProblems(result).map((p) => `native: ${p}`))
  }

  if (selected("fuzz")) {
    log(`# fuzz: ${settings.fuzzInputs} inputs`)
    const fuzzResult = await runFuzz({
      ...fuzzConfig,
      vectorsPath,
      inputs: settings.fuzzInputs,
      channelEvery: settings.channelEvery,
      log
    })
    fuzz = {
      result: fuzzResult,
      wanted: settings.fuzzInputs,
      channelEvery: settings.channelEvery,
      ...fuzzConfig
    }
    problems.push(...fuzzProblems(fuzzResult, settings.fuzzInputs).map((p) => `fuzz: ${p}`))
    log(
      `  fuzz: ${fuzzResult.inputs} inputs in ${fuzzResult.seconds.toFixed(0)} s, ${fuzzResult.findings.length} distinct finding(s)`
    )
  }

  if (selected("asan")) {
    if (quick && !named.includes("asan")) {
      asan = {
        skipped:
          "quick mode (the instrumented build takes over a minute); the full run and `npm run asan -w native` run it"
      }
    } else {
      log("# native test suite under AddressSanitizer")
      asan = await runAsan(root, log)
      problems.push(...asanProblems(asan).map((p) => `asan: ${p}`))
    }
  }

  if (selected("soak")) {
    const engine = settings.engines[0] === "node" ? "node" : "native"
    const transport = await probeEngine(engine, work)
    if (typeof transport === "string") {
      problems.push(`soak: engine ${engine} unavailable: ${transport}`)
    } else {
      log(`# soak: ${settings.soakCycles} exec + wait cycles, engine ${engine}`)
      const dir = mkdtempSync(join(work, "soak-"))
      const result = await runSoak({
        dir,
        transport,
        engine,
        cycles: settings.soakCycles,
        sampleEvery: settings.soakEvery,
        inFlight: 8,
        payloadBytes: 4096,
        log
      })
      soak = { result, engine, inFlight: 8, payloadBytes: 4096 }
      problems.push(...soakProblems(result).map((p) => `soak: ${p}`))
    }
  }
  // Last: a cell that hangs may leave fibers and descriptors behind, which must not skew the other parts.
  if (selected("matrix")) {
    const runs: Array<{ engine: string; cells: ReadonlyArray<CellResult> }> = []
    for (const engine of settings.engines) {
      const transport = await probeEngine(engine, work)
      if (typeof transport === "string") {
        notes.push(`The \`${engine}\` engine could not be used here (${transport}); its matrix did not run.`)
        problems.push(`matrix: engine ${engine} unavailable`)
        continue
      }
      log(`# fault matrix, engine ${engine}`)
      // Warm-up: JIT, lazily created handles (libuv's child-signal pipe), caches filled once.
      const warmDir = mkdtempSync(join(work, "warm-"))
      await Effect.runPromise(
        runLifecycle({
          dir: warmDir,
          transport,
          faults: [],
          deadlineMs: 5000,
          closeTimeoutMs: 500,
          payload: new Uint8Array(1024)
        }).pipe(Effect.provide(CountingLogger))
      )
      const cells = await runMatrix({
        ...matrixConfig,
        transport,
        engine,
        dir: work,
        floodSize: settings.flood,
        steps: settings.steps,
        log
      })
      runs.push({ engine, cells })
      for (const c of cells)
        for (const f of c.failures) problems.push(`matrix ${engine} ${c.fault} × ${c.step}: ${f}`)
    }
    matrix = {
      runs,
      rows: rows({ delayMs: matrixConfig.delayMs, floodSize: settings.flood }),
      steps: settings.steps,
      ...matrixConfig
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}

const late = processProblems()
if (late.unhandledRejections + late.uncaughtExceptions > 0) {
  problems.push(
    `${late.unhandledRejections} unhandled rejection(s), ${late.uncaughtExceptions} uncaught exception(s): ${late.first.join(" | ")}`
  )
}

const summary = [
  `**Outcome: ${problems.length === 0 ? "every check passed" : `${problems.length} check(s) failed`}.**`,
  "",
  ...notes,
  ...(notes.length > 0 ? [""] : []),
  "Found by earlier runs of this harness and fixed since (`node bench/dist/stress/repro.js <name>` keeps a reproduction of each " +
    "of the first three, exiting 1 if it comes back):",
  "",
  "- `close-after-interrupted-create` — closing a connection hung for ever after a Create or ExecuteProcess that the caller's " +
    "deadline interrupted and the guest never answered: the reaper forked by `Bridge.background` from an `onInterrupt` handler " +
    "was uninterruptible, and the bridge scope waited for it before failing its call (runtime, f178f95).",
  "- `stdio-listener-leak` — a stdio listener's descriptor leaked when the process's scope closed while the accept fiber was " +
    "closing the listener: an interrupted `Scope.close` abandons the remaining finalizers (runtime, f178f95).",
  "- `deep-json` — the body decoders threw `RangeError` on JSON nested ~3,000 deep (the error formatter recursed), so one " +
    "hostile 6 KB reply killed the host's bridge as a defect (protocol, 124bc5f).",
  "- Closing a container created but never started waited the whole `closeTimeout` (30 s by default) for an exit notification " +
    "that never comes (runtime, 419ec30).",
  "- The guest's `delay` fault did not delay the NegotiateProtocol answer, so the host's negotiation was never tested " +
    "against a slow guest (guest, 1f20a75)."
]
const report: StressReport = {
  quick,
  machine: machine(),
  seconds: (Date.now() - started) / 1000,
  ...(matrix === undefined ? {} : { matrix }),
  ...(fuzz === undefined ? {} : { fuzz }),
  ...(nativeReport === undefined ? {} : { native: nativeReport }),
  ...(asan === undefined ? {} : { asan }),
  ...(soak === undefined ? {} : { soak }),
  notes: summary
}

if (write) {
  const path = join(root, "bench/STRESS.md")
  writeFileSync(path, renderReport(report))
  log(`wrote ${path}`)
}
log(`# ${problems.length === 0 ? "all checks passed" : `${problems.length} check(s) failed:`}`)
for (const p of problems) log(`  - ${p}`)
log(`(${((Date.now() - started) / 1000).toFixed(0)} s)`)
process.exit(problems.length === 0 ? 0 : 1)
