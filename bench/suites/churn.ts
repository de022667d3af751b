/**
 * Churn suite (issue 6, benchmark 3): exec + wait of `/bin/true` in our guest,
 * one after the other, without stdio and with a stdout pipe (drained to its
 * end before the wait); references: the same spawn + exit done locally with
 * Node's child_process, and the floor — a bare `net` host sending the same
 * ExecuteProcess + WaitForProcess frames to our guest and to the minimal
 * responder — same run. The peers are processes of their own: the CPU per
 * exec is the host's alone.
 */
import { spawn } from "node:child_process"
import { join } from "node:path"
import type { GuestConnectionService } from "@gcs-bridge/runtime"
import { Effect, Stream } from "effect"
import { fmt, interleave, rateRow } from "../lib/measure.js"
import { floorWhy, judge } from "../lib/targets.js"
import type { BenchSuite } from "../lib/types.js"
import { bridgeSocketPath, engineNote, withHost } from "../support/hostSession.js"
import { profile, profileGist, renderProfile } from "../support/profile.js"
import { rawExec } from "../support/raw.js"

// Go host bridge of hcsshim against the genuine Linux guest (measured elsewhere, 2 cores).
// The Go host beside us: issue 10's side-by-side run (exec + wait of /bin/true, genuine Linux guest).
const GoRate = 860
const GoCpu = 222

/** Issue 10's targets: host CPU µs per exec + wait against a real process, and against the minimal responder. */
const TargetCpu = 200
const TargetHostOnlyCpu = 120

/** `count` times: exec `/bin/true` in the UVM, (drain its stdout,) wait for exit code 0. */
const churn = (connection: GuestConnectionService, count: number, withStdout: boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < count; i++) {
      const code = yield* Effect.scoped(
        Effect.flatMap(
          connection.exec({ CommandArgs: ["/bin/true"], CreateStdOutPipe: withStdout }),
          (process) =>
            withStdout ? Effect.andThen(Stream.runDrain(process.stdout), process.wait) : process.wait
        )
      )
      if (code !== 0) return yield* Effect.die(new Error(`/bin/true exited with ${code}`))
    }
  })

/** `count` exec + wait of a bare host's, one after the other, each made by the same fiber. */
const fiberChurn = (exec: Effect.Effect<void, Error>, count: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < count; i++) yield* exec
  })

/** Reference: `count` local spawns of `/bin/true` from this Node process, each awaited to its exit. */
const localChurn = async (count: number, withStdout: boolean): Promise<void> => {
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve, reject) => {
      const child = spawn("/bin/true", [], { stdio: ["ignore", withStdout ? "pipe" : "ignore", "ignore"] })
      child.stdout?.resume()
      child.once("error", reject)
      // "close" comes after the exit and the end of every pipe.
      child.once("close", (code) =>
        code === 0 ? resolve() : reject(new Error(`/bin/true exited with ${code}`))
      )
    })
  }
}

/** The churn benchmark suite. */
export const suite: BenchSuite = {
  name: "churn",
  run: (options) =>
    withHost("churn", async (host) => {
      const count = options.quick ? 20 : 500
      // Against the responder an exec + wait takes ~0.1 ms: 500 of them made rounds of 50 ms, whose CPU readings
      // swung by a third between runs; these rounds last about as long as the guest's.
      const hostCount = options.quick ? 20 : 5000
      const { session } = host
      const guest = await host.guest("guest")
      // The minimal responder answers ExecuteProcess with a new pid and WaitForProcess at once, exit 0.
      const responder = await host.responder("resp")
      const path = (name: string) => join(host.dir, name)
      const rawGuest = await rawExec(bridgeSocketPath(path("raw-g")), {
        kind: "guest",
        path: path("raw-g"),
        engine: host.engine
      })
      host.defer(rawGuest.close)
      const rawResponder = await rawExec(path("raw-r"), {
        kind: "responder",
        paths: [path("raw-r")],
        holdWaits: false
      })
      host.defer(rawResponder.close)
      // Two whole untimed passes first: V8 was still optimising some 200 functions in the first pass and 125
      // in the second (--trace-opt), and an exec + wait against the responder cost 185, 156, 154, 145 µs in
      // the first rounds before it levelled out near 120; the floors fell the same way (82, 60, 49 µs).
      const warmupPasses = 2
      const r = await interleave(
        options.rounds,
        {
          local: () => localChurn(count, false),
          localPipe: () => localChurn(count, true),
          rawGuest: () => rawGuest.run(count),
          rawResponder: () => rawResponder.run(hostCount),
          fiberGuest: () => session.run(fiberChurn(rawGuest.exec, count)),
          fiberResponder: () => session.run(fiberChurn(rawResponder.exec, hostCount)),
          bridge: () => session.run(churn(guest, count, false)),
          bridgePipe: () => session.run(churn(guest, count, true)),
          responder: () => session.run(churn(responder, hostCount, false))
        },
        warmupPasses
      )

      const ref = "local spawn + exit of /bin/true (no bridge)"
      const refPipe = "local spawn + exit of /bin/true, stdout pipe"
      const unit = "exec+wait/s"
      const bridge = rateRow("exec + wait via runtime → our guest", unit, r.bridge, count, {
        reference: ref,
        note: `Go host: ≈ ${fmt(GoRate)}/s with ${GoCpu} µs host CPU per exec`
      })
      const bridgePipe = rateRow(
        "exec + wait via runtime → our guest, stdout pipe",
        unit,
        r.bridgePipe,
        count,
        {
          reference: refPipe,
          note: "stdout listener bound, accepted, drained to EOF, then the wait"
        }
      )
      const rawGuestRef = "bare net host → our guest, same frames (floor)"
      const rawResponderRef = "bare net host → minimal responder, same frames (floor)"
      const hostOnly = rateRow("exec + wait via runtime → minimal responder", unit, r.responder, hostCount, {
        reference: rawResponderRef,
        note: "no process at all: the host's own cost of ExecuteProcess + WaitForProcess"
      })
      const rawNote = "floor: node net, canned ExecuteProcess + WaitForProcess frames, no Schema, no Effect"
      const floorGuest = rateRow(rawGuestRef, unit, r.rawGuest, count, { note: rawNote })
      const floorResponder = rateRow(rawResponderRef, unit, r.rawResponder, hostCount, { note: rawNote })
      const fiberNote =
        "the bare host's frames, each call an `Effect.callback` of one fiber resumed by the read handler: " +
        "Effect's own cost, no Schema, no bridge, no Scope"
      const fiberGuest = rateRow("bare Effect host → our guest, same frames", unit, r.fiberGuest, count, {
        reference: rawGuestRef,
        note: fiberNote
      })
      const fiberResponder = rateRow(
        "bare Effect host → minimal responder, same frames",
        unit,
        r.fiberResponder,
        hostCount,
        { reference: rawResponderRef, note: fiberNote }
      )
      const rows = [
        rateRow(ref, unit, r.local, count, {
          note: "reference: child_process.spawn in this process, awaited one by one (its fork cost is host CPU here)"
        }),
        rateRow(refPipe, unit, r.localPipe, count, { note: "reference, stdout piped and drained" }),
        floorGuest,
        floorResponder,
        fiberGuest,
        fiberResponder,
        bridge,
        bridgePipe,
        hostOnly
      ]
      const cpu = (m: typeof bridge) => m.cpuMicrosPerOp!
      const missed = cpu(bridge) > TargetCpu || cpu(hostOnly) > TargetHostOnlyCpu
      const profiles = { guest: undefined as string | undefined, responder: undefined as string | undefined }
      const notes: Array<string> = [
        `${count} exec + wait per round (${hostCount} against the minimal responder), one at a time, ` +
          `${options.rounds} interleaved rounds after ${warmupPasses} untimed ones (V8 compiles through the first two). ` +
          "Each exec runs in " +
          "its own Scope (listeners, connections and the process handle released before the next). Our guest " +
          "runs in its own process and spawns `/bin/true` with child_process; host CPU µs/op = process.cpuUsage " +
          "of the host process per exec. The floor rows are a bare node `net` host sending the runtime's " +
          "ExecuteProcess and WaitForProcess frames (built from a template) and reading the answers with one " +
          "JSON.parse each: what Node itself costs for the same exchange; the bare Effect host rows make the same " +
          `calls from one fiber: what Effect itself adds. ${engineNote(host)}`,
        `Host CPU per exec + wait with a stdout pipe: ${fmt(cpu(bridgePipe))} µs (no target). Against the minimal ` +
          `responder the host spends ${fmt(cpu(hostOnly))} µs per exec + wait, against our guest ` +
          `${fmt(cpu(bridge))} µs: the rest is the host's share of waiting on a real process (more wake-ups, ` +
          "reads and timers per exec).",
        `External reference, not measured here: the Go host bridge against the genuine Linux GCS on another ` +
          `2-core machine did ≈ ${fmt(GoRate)} exec+wait/s with ${GoCpu} µs host CPU per exec.`
      ]
      if (missed && !options.quick) {
        const hot = await profile(() => session.run(churn(guest, count, false)))
        notes.push(renderProfile(`Profile of ${count} exec + wait without stdio`, hot))
        profiles.guest = profileGist("Host profile (this run, our guest)", hot)
        const hotResponder = await profile(() => session.run(churn(responder, hostCount, false)))
        notes.push(
          renderProfile(`Profile of ${hostCount} exec + wait against the minimal responder`, hotResponder)
        )
        profiles.responder = profileGist("Host profile (this run, minimal responder)", hotResponder)
      }
      const floorName = (to: string) => `a bare node net host doing the same exec + wait with ${to}`
      // Effect's own share of the work: how far above a fiber making the same calls ours is.
      const effectFloor = (fiber: typeof bridge, ours: typeof bridge) =>
        `The same exec + wait made by one fiber with \`Effect.callback\` per call (${fiber.name}) costs ` +
        `${fmt(cpu(fiber))} µs: ours is ${fmt(cpu(ours) - cpu(fiber))} µs above what Effect itself costs.`
      const targets = [
        judge({
          target: `exec + wait of /bin/true in our guest: host CPU ≤ ${TargetCpu} µs`,
          value: cpu(bridge),
          limit: TargetCpu,
          unit: "µs",
          ours: `${fmt(cpu(bridge))} µs (${fmt(bridge.median)}/s)`,
          reference: `floor ${fmt(cpu(floorGuest))} µs (${fmt(floorGuest.median)}/s); Effect floor ${fmt(cpu(fiberGuest))} µs; local spawn ${fmt(cpu(rows[0]!))} µs`,
          go: `${GoCpu} µs (${fmt(GoRate)}/s)`,
          why: () =>
            floorWhy({
              ours: cpu(bridge),
              floor: cpu(floorGuest),
              limit: TargetCpu,
              unit: "µs",
              floorName: floorName("our guest"),
              profile: profiles.guest,
              beside: effectFloor(fiberGuest, bridge)
            })
        }),
        judge({
          target: `exec + wait against the minimal responder: host CPU ≤ ${TargetHostOnlyCpu} µs`,
          value: cpu(hostOnly),
          limit: TargetHostOnlyCpu,
          unit: "µs",
          ours: `${fmt(cpu(hostOnly))} µs (${fmt(hostOnly.median)}/s)`,
          reference: `floor ${fmt(cpu(floorResponder))} µs (${fmt(floorResponder.median)}/s); Effect floor ${fmt(cpu(fiberResponder))} µs`,
          go: "not measured (Go's figure is against a real guest)",
          why: () =>
            floorWhy({
              ours: cpu(hostOnly),
              floor: cpu(floorResponder),
              limit: TargetHostOnlyCpu,
              unit: "µs",
              floorName: floorName("the responder"),
              profile: profiles.responder,
              beside: effectFloor(fiberResponder, hostOnly)
            })
        })
      ]
      return {
        suite: "churn",
        title: "Process churn: exec + wait of /bin/true",
        measurements: rows,
        notes,
        targets
      }
    })
}
