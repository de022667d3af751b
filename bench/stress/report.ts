/**
 * bench/STRESS.md: what ran, on what, and how it came out — the fault matrix
 * as a fault × step table with the details of every cell, the fuzzers'
 * tallies and findings, the native churn and sanitizer run, and the soak.
 */
import type { Machine } from "../lib/report.js"
import type { AsanResult } from "./asan.js"
import type { FuzzResult } from "./fuzz/run.js"
import type { Step } from "./lifecycle.js"
import { closeBound } from "./lifecycle.js"
import type { CellResult, FaultRow } from "./matrix.js"
import { firstMessageOf, outcomeText } from "./matrix.js"
import type { NativeCyclesResult } from "./nativeCycles.js"
import type { SoakResult } from "./soak.js"
import {
  asanProblems,
  fuzzProblems,
  heapSlope,
  nativeProblems,
  SoakHeapToleranceBytes,
  soakProblems
} from "./verdicts.js"

/** Everything a run produced (parts that did not run are absent). */
export interface StressReport {
  readonly quick: boolean
  readonly machine: Machine
  readonly seconds: number
  readonly matrix?: {
    readonly runs: ReadonlyArray<{ readonly engine: string; readonly cells: ReadonlyArray<CellResult> }>
    readonly rows: ReadonlyArray<FaultRow>
    readonly steps: ReadonlyArray<Step>
    readonly deadlineMs: number
    readonly closeTimeoutMs: number
    readonly payloadBytes: number
    readonly heapToleranceBytes: number
  }
  readonly fuzz?: {
    readonly result: FuzzResult
    readonly wanted: number
    readonly seed: number
    readonly workers: number
    readonly slowMs: number
    readonly hangMs: number
    readonly heapLimitMb: number
    readonly channelEvery: number
  }
  readonly native?: {
    readonly result: NativeCyclesResult
    readonly inFlight: number
    readonly payloadBytes: number
  }
  readonly asan?: AsanResult | { readonly skipped: string }
  readonly soak?: {
    readonly result: SoakResult
    readonly engine: string
    readonly inFlight: number
    readonly payloadBytes: number
  }
  /** Free text for the top of the report (bugs found, scaling notes). */
  readonly notes: ReadonlyArray<string>
}

const n = (x: number) => x.toLocaleString("en-US")
const ms = (x: number) => `${Math.round(x)}`
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(2)

/** The short text of a cell in the matrix table. */
const cellText = (c: CellResult, deadlineMs: number): string => {
  const s = c.surfaced
  const where = s.step === c.step ? "" : ` @${s.step}`
  const time = s.outcome.kind === "deadline" ? `deadline+${ms(s.ms - deadlineMs)}` : ms(s.ms)
  const text = `${outcomeText(s.outcome)}${where} ${time}`
  return c.failures.length > 0 ? `**FAIL** ${text}` : text
}

const matrixSection = (m: NonNullable<StressReport["matrix"]>): Array<string> => {
  const out: Array<string> = []
  out.push("## 1. Fault matrix", "")
  out.push(
    "Host: `GuestConnection.make` of `@gcs-bridge/runtime` (the production path: listen, accept, negotiate). " +
      "Guest: `Guest.run` of `@gcs-bridge/guest` (once) with the fault, in the same process. Both over Unix sockets " +
      "(`unix://`) in a private 0700 directory of their own per cell. Each cell is a fresh run of the standard lifecycle:",
    "",
    "1. **accept** — the host accepts the guest's bridge connection (timed through the host's Transport);",
    "2. **negotiate** — NegotiateProtocol, until `make` returns;",
    "3. **create** — `createContainer` (an LCOW `LinuxHostedSystem` whose init is `sleep 3600`);",
    "4. **start** — `Container.start` plus the init's `exec` (on Linux the container runs from its init's ExecuteProcess);",
    `5. **exec** — \`Container.exec\` of \`sh -c 'cat; echo err >&2'\` with stdin, stdout and stderr;`,
    `6. **stdio** — ${n(m.payloadBytes)} bytes into stdin and half-close, stdout read back byte for byte, stderr \`err\\n\`;`,
    "7. **wait** — `Process.wait` (exit code 0);",
    "8. **signal** — `Process.signal(28)` (SIGWINCH, ignored by `sleep`) to the init: delivered;",
    "9. **shutdown** — `Container.shutdown` (SIGTERM to the init);",
    "10. **close** — the connection's scope is closed (container finalizer: exit awaited or ShutdownForced; processes; bridge), then the guest must stop by itself.",
    "",
    `Every step but close runs under the caller's deadline, \`Effect.timeout(${m.deadlineMs} ms)\`, and a hard guard 2.5 s beyond it ` +
      "(the step runs detached) that turns an interruption that never completes into a HANG. The run stops at the first step that does not succeed, then " +
      `closes. \`closeTimeout\` is ${m.closeTimeoutMs} ms (the caller's bound on what closing does in the guest); the close must end within ` +
      `${closeBound(m.closeTimeoutMs)} ms (three objects closed one after the other, each bounded by \`closeTimeout\`, plus 2 s).`,
    "",
    "How each fault is armed at a step: the guest's faults count the messages it writes on the connection, so a message-counted fault is armed at the " +
      "first message the guest writes in that step (`firstMessageOf`: " +
      Object.entries(firstMessageOf)
        .map(([s, i]) => `${s} ${i}`)
        .join(", ") +
      "). Two pairs of steps share their first message — accept/negotiate (the NegotiateProtocol answer) and stdio/wait " +
      "(the WaitForProcess answer is written when the process exits at the end of its stdio) — so their cells are separate runs of the same arming; " +
      "`drop-after=N` hangs up *instead of* writing message N, which for stdio means in the middle of the transfer. `delay` and `flood` are not " +
      "message-counted: they act from the start, and the cell runs the lifecycle up to and including its step, then closes (so each cell also " +
      "tests a close at that point). The `none` row is the same without a fault.",
    "",
    "A cell passes when: its outcome is a success or a typed error (the error's `_tag` and reason/code) within 2 s of the step's start (which is at or " +
      "before the fault), or the caller's deadline (`TimeoutException`, shown as deadline+ms) when the guest never answers; no defect, no hang; " +
      "the close is within its bound; and afterwards (after waiting up to 2 s for the event loop to release them) the process has as many file " +
      "descriptors and child processes as before, no fiber forked during the run (host and guest, counted through `Metric.FiberRuntimeMetrics`) is alive, the " +
      `cell's directory is empty, the heap is within ${m.heapToleranceBytes / 1024} KiB of its level before, and no ` +
      "unhandled rejection or uncaught exception happened. Rows `none`, `delay` and `flood` must also succeed at every step. A warm-up lifecycle " +
      "runs first (JIT, lazily created handles) and is not in the table.",
    "",
    "Heap here is the heap in use after two full collections minus V8's compiled code and bytecode with their metadata " +
      "(`v8.getHeapCodeStatistics`): those grow by tens of KiB whenever a code path runs for the first times and tiers up, for hundreds of " +
      "runs (the same cell repeated 200 times here grew ~1.5 MiB over its first 20 runs, then about 0-8 KiB per run). A cell over the " +
      "tolerance is therefore run twice more: a leak grows the heap again every time, warm-up does not; it fails only when every re-run is " +
      "over the tolerance too (the details say when a re-run was needed).",
    ""
  )
  for (const run of m.runs) {
    const failed = run.cells.filter((c) => c.failures.length > 0)
    out.push(
      `### Engine \`${run.engine}\`: ${run.cells.length} cells, ${run.cells.length - failed.length} pass, ${failed.length} FAIL`,
      ""
    )
    out.push(`| fault | ${m.steps.join(" | ")} |`, `|---|${m.steps.map(() => "---").join("|")}|`)
    for (const row of m.rows) {
      const cells = m.steps.map((step) => {
        const c = run.cells.find((x) => x.fault === row.name && x.step === step)
        return c === undefined ? "—" : cellText(c, m.deadlineMs)
      })
      out.push(`| ${row.name} | ${cells.join(" | ")} |`)
    }
    out.push(
      "",
      "Cell: outcome of the step where the fault surfaced (`@step` when that is a later step than the column), ms from that step's start. " +
        "`ok*`: succeeded with less than the full result (see the details).",
      ""
    )
    if (failed.length > 0) {
      out.push("Failed cells:", "")
      for (const c of failed)
        out.push(`- **${c.fault} × ${c.step}** (\`${c.spec}\`): ${c.failures.join("; ")}`)
      out.push("")
    }
    out.push("<details><summary>Every cell: arming, every step, close, resources</summary>", "")
    out.push(
      "| fault | step | armed | steps (outcome ms) | close ms | fds Δ | fibers left | children Δ | heap Δ KiB | warnings | notes |"
    )
    out.push("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for (const c of run.cells) {
      const steps = c.records.map((r) => `${r.step} ${outcomeText(r.outcome)} ${ms(r.ms)}`).join(", ")
      const notes = [
        ...c.notes,
        ...c.errors.map((e) => `logged error: ${e}`),
        ...c.failures.map((f) => `FAIL: ${f}`)
      ].join("; ")
      out.push(
        `| ${c.fault} | ${c.step} | \`${c.spec}\` | ${steps} | ${ms(c.closeMs)} | ${c.fdDelta} | ${c.fibersLeft} | ${c.childrenLeft} | ${(c.heapDelta / 1024).toFixed(0)} | ${c.warnings} | ${notes.replace(/\|/g, "\\|")} |`
      )
    }
    out.push("", "</details>", "")
  }
  return out
}

const fuzzSection = (f: NonNullable<StressReport["fuzz"]>): Array<string> => {
  const r = f.result
  const problems = fuzzProblems(r, f.wanted)
  const out: Array<string> = ["## 2. Fuzzing the frame decoder and every body decoder", ""]
  out.push(
    `${n(r.inputs)} inputs (seed ${f.seed}; ${n(r.frameInputs)} frame streams, ${n(r.bodyInputs)} bodies) in ${r.seconds.toFixed(0)} s on ${f.workers} ` +
      "worker thread(s). Every input is a pure function of (seed, index), so any finding is rebuilt with " +
      "`node bench/dist/stress/main.js replay <seed> <index>`.",
    "",
    "- **Frame streams**: 1-3 frames of the Go wire vectors (all 75, both directions), most of them mutated at the frame level (size field set to " +
      "boundary values 0/15/16/17/0xffff/0x10000/0x10001/0x7fffffff/0xffffffff/±k, type word of every class, id halves, truncation, splicing with " +
      "another frame, payload damaged under a consistent size), sometimes damaged again at the byte level, then cut into random chunks (single " +
      "bytes, split headers, random sizes, whole) and fed to `FrameReader` with the default limit, or 16/17/100/64 KiB/1 MiB, and the default or " +
      `an accept-all type filter. Checked: no throw; every frame returned is exactly what its header announces; a clean end only on a frame boundary ` +
      `with every byte accounted for (offset, buffered); header violations reported at the header's offset; Oversize/Undersize only when true. One ` +
      `frame stream in ${f.channelEvery} also goes through the \`decodeFrames\` Channel, which must give the same frames and the same error.`,
    "- **Bodies**: the payload of a vector (responses and notifications, or requests), mutated at the JSON level (values replaced by values of " +
      "other types and edge values — -0, 2^31, 2^32, ±2^53, 1e308, lone surrogates, NUL, GUID look-alikes —, fields dropped, added " +
      "(`__proto__`, `constructor`, case variants), strings holding JSON re-mutated inside, values nested up to 21,000 levels deep, duplicate keys, " +
      "surrounding whitespace), at the byte level, both, or generated from scratch (with and without a plausible response base). Fed to " +
      "`parsePayload`, `decodeResponse` (the frame's own procedure and a random one), `decodeResponseBase`, `decodeNotification`, " +
      "`decodePropertiesV1`/`V2` (of the document's `Properties`), and for requests the guest's `decodeRequest` (own type word, sometimes a random one). " +
      "Checked: no throw, the result is a `Result` whose failure is a `ProtocolError`.",
    `- Per-input time bound ${f.slowMs} ms; an input making no progress for ${f.hangMs / 1000} s is a hang (the watchdog reads the input index ` +
      `from shared memory, terminates the worker and resumes after it); each worker's old generation is capped at ${f.heapLimitMb} MiB, so unbounded ` +
      "memory kills it and is reported.",
    ""
  )
  out.push("| decoder | calls | success | failure | contract broken |", "|---|---:|---:|---:|---:|")
  for (const [target, t] of Object.entries(r.tally)) {
    const broken = r.findings.filter((x) => x.target === target).reduce((a, x) => a + x.count, 0)
    out.push(
      `| \`${target}\` | ${n(t.calls)} | ${n(t.success)} | ${n(t.failure)} | ${broken === 0 ? "0" : `**${n(broken)}**`} |`
    )
  }
  out.push(
    "",
    `Slowest input: ${r.maxMs.toFixed(1)} ms of wall time on a shared machine (input ${r.maxMsIndex}; \`replay ${f.seed} ${r.maxMsIndex}\` runs it alone). Hangs: ${r.hangs.length}. Workers killed for memory: ${r.memoryFailures.length}. ` +
      `Heap of a worker across a slice of inputs (after full collections at its start and end): at most ${mib(r.heapGrowthMax)} MiB of growth; ` +
      `largest heap seen ${mib(r.heapPeakMax)} MiB.`,
    ""
  )
  if (r.findings.length > 0) {
    out.push("Findings (distinct by decoder, kind and message):", "")
    out.push(
      "| decoder | kind | message | calls | first input | input (hex, start) |",
      "|---|---|---|---:|---:|---|"
    )
    for (const x of r.findings) {
      out.push(
        `| \`${x.target}\` | ${x.kind} | ${x.message.replace(/\|/g, "\\|")} | ${n(x.count)} | ${x.index} | \`${x.inputHex.slice(0, 48)}…\` |`
      )
    }
    out.push("")
  }
  out.push(
    `Verdict: ${problems.length === 0 ? "pass — no throw, no broken invariant, no hang, memory bounded" : `**FAIL**: ${problems.slice(0, 10).join("; ")}${problems.length > 10 ? `; and ${problems.length - 10} more` : ""}`}.`,
    ""
  )
  return out
}

const nativeSection = (nat: StressReport["native"], asan: StressReport["asan"]): Array<string> => {
  const out: Array<string> = ["## 3. Native addon", ""]
  if (nat !== undefined) {
    const r = nat.result
    const problems = nativeProblems(r)
    out.push(
      `${n(r.cycles)} connect / accept / write / close cycles on AF_UNIX straight through \`@gcs-bridge/native\` (${nat.inFlight} in flight; ` +
        `the client writes ${n(nat.payloadBytes)} bytes and half-closes, the server reads to EOF, checks the count and closes, the client sees EOF ` +
        `and closes) in ${r.seconds.toFixed(1)} s. File descriptors before ${r.fdsBefore}, after ${r.fdsAfter} (listener closed); live addon handles ` +
        `${r.handlesBefore} before, ${r.handlesAfter} after. Failed cycles: ${r.failures}${r.firstFailure === undefined ? "" : ` (first: ${r.firstFailure})`}.`,
      "",
      "| cycles | fds (listener open) | addon handles |",
      "|---:|---:|---:|",
      ...r.samples.map((s) => `| ${n(s.cycles)} | ${s.fds} | ${s.handles} |`),
      "",
      `Verdict: ${problems.length === 0 ? "pass — the fd count is flat" : `**FAIL**: ${problems.join("; ")}`}.`,
      ""
    )
  }
  if (asan !== undefined) {
    out.push("### Sanitizer run", "")
    if ("skipped" in asan) out.push(`Not run: ${asan.skipped}.`, "")
    else if (!asan.ran)
      out.push(`The native package offers no sanitizer entry (${asan.script} does not exist).`, "")
    else {
      const problems = asanProblems(asan)
      out.push(
        `\`bash native/scripts/asan.sh\` (the native owner's entry: the addon rebuilt with \`-fsanitize=address\` in a private staging copy, its ` +
          `vitest suite native/test run with libasan preloaded, LeakSanitizer reports through the addon counted as failures, reports from Node ` +
          `itself ignored) exited with ${asan.exitCode} after ${asan.seconds.toFixed(0)} s:`,
        "",
        "```text",
        ...asan.summary,
        "```",
        "",
        `Verdict: ${problems.length === 0 ? "pass — zero memory errors, zero leaks through the addon" : `**FAIL**: ${problems.join("; ")}`}.`,
        ""
      )
      if (problems.length > 0) out.push("```text", ...asan.tail, "```", "")
    }
  }
  return out
}

const soakSection = (s: NonNullable<StressReport["soak"]>): Array<string> => {
  const r = s.result
  const problems = soakProblems(r)
  const steady = r.samples.slice(1)
  return [
    "## 4. Soak",
    "",
    `${n(r.cycles)} exec + wait cycles against our guest on one connection (engine \`${s.engine}\` on both sides; ` +
      `the guest in a process of its own, so the host is measured alone; ${s.inFlight} in flight): a UVM process ` +
      `\`cat\` with stdin, stdout and stderr, ${n(s.payloadBytes)} bytes in and back, stderr empty, exit code 0, each ` +
      `cycle in a scope of its own; ${r.seconds.toFixed(0)} s. Failed cycles: ${r.failures}` +
      `${r.firstFailure === undefined ? "" : ` (first: ${r.firstFailure})`}. Runtime warnings logged: ${r.warnings}; ` +
      `errors: ${r.errors.length}. The guest process: ${r.guestExit}.`,
    "",
    "| cycles | s | host fds | host heap MiB | guest fds | guest children |",
    "|---:|---:|---:|---:|---:|---:|",
    ...r.samples.map(
      (x) =>
        `| ${n(x.cycles)} | ${x.seconds.toFixed(0)} | ${x.fds} | ${mib(x.heap)} | ${x.guestFds} | ${x.children} |`
    ),
    "",
    `Sample 0 is taken before the first exec; the first interval is the warm-up. After it: host fds ` +
      `${[...new Set(steady.map((x) => x.fds))].join("/")}, guest fds ${[...new Set(steady.map((x) => x.guestFds))].join("/")}, ` +
      `host heap slope ${heapSlope(steady).toFixed(0)} bytes per cycle (least squares over the samples after warm-up). ` +
      `Flat means: descriptors unchanged, no guest child left between intervals, and less than ` +
      `${SoakHeapToleranceBytes / 1024} KiB of host heap growth over the second half of the run (heap: in use after full ` +
      "collections, minus V8's compiled code and bytecode, as in the matrix).",
    "",
    `Verdict: ${problems.length === 0 ? "pass — fds and heap flat" : `**FAIL**: ${problems.join("; ")}`}.`,
    ""
  ]
}

/** The whole report as Markdown. */
export const renderReport = (r: StressReport): string => {
  const out: Array<string> = ["# Stress and faults", ""]
  out.push(
    `Written by \`npm run stress\`${r.quick ? " --quick" : ""} on ${r.machine.date.slice(0, 10)}: Node ${r.machine.node}, ${r.machine.cpu} × ` +
      `${r.machine.cores} (shared with other work), ${r.machine.platform}. The run took ${(r.seconds / 60).toFixed(1)} min.`,
    ""
  )
  if (r.notes.length > 0) out.push(...r.notes, "")
  if (r.matrix !== undefined) out.push(...matrixSection(r.matrix))
  if (r.fuzz !== undefined) out.push(...fuzzSection(r.fuzz))
  if (r.native !== undefined || r.asan !== undefined) out.push(...nativeSection(r.native, r.asan))
  if (r.soak !== undefined) out.push(...soakSection(r.soak))
  return out.join("\n") + "\n"
}
