/**
 * Churn suite (issue 6, benchmark 3): exec + wait of `/bin/true` in our guest,
 * one after the other, without stdio and with a stdout pipe (drained to its
 * end before the wait); reference: the same spawn + exit done locally with
 * Node's child_process, same run. The guest is a process of its own: the CPU
 * per exec is the host's alone.
 */
import { spawn } from "node:child_process"
import { join } from "node:path"
import type { GuestConnectionService } from "@gcs-bridge/runtime"
import { Effect, Stream } from "effect"
import { interleave } from "../lib/measure.js"
import type { BenchSuite, Measurement, SuiteOptions } from "../lib/types.js"
import { profile, renderProfile } from "../support/cpuProfile.js"
import { bridgeSocketPath, hostSession, pickEngine } from "../support/hostSession.js"
import { checkPeer, socketDir, startPeer, type PeerProcess } from "../support/peerProcess.js"
import { fmt, rateRow } from "../support/rows.js"

// Go host bridge of hcsshim against the genuine Linux guest (measured elsewhere, 2 cores).
const GoRate = 1_160
const GoCpu = 216

const countOf = (options: SuiteOptions): number => (options.quick ? 20 : 500)

/** `count` times: exec `/bin/true` in the UVM, (drain its stdout,) wait for exit code 0. */
const churn = (connection: GuestConnectionService, count: number, withStdout: boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < count; i++) {
      const code = yield* Effect.scoped(
        Effect.flatMap(
          connection.exec({ CommandArgs: ["/bin/true"], CreateStdOutPipe: withStdout }),
          (process) =>
            withStdout ? Effect.zipRight(Stream.runDrain(process.stdout), process.wait) : process.wait
        )
      )
      if (code !== 0) return yield* Effect.dieMessage(`/bin/true exited with ${code}`)
    }
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
  run: async (options) => {
    const count = countOf(options)
    const dir = socketDir("churn")
    const { engine, why } = await pickEngine(dir.path)
    const session = hostSession(engine)
    const peers: Array<PeerProcess> = []
    try {
      const guestPath = join(dir.path, "guest")
      peers.push(startPeer("guestPeer", { path: guestPath, engine }))
      const connection = await session.connect(guestPath)
      // The minimal responder answers ExecuteProcess with a new pid and WaitForProcess at once, exit 0.
      const responderPath = join(dir.path, "resp")
      peers.push(startPeer("responderPeer", { paths: [bridgeSocketPath(responderPath)], holdWaits: false }))
      const responder = await session.connect(responderPath)
      const variants = {
        local: () => localChurn(count, false),
        localPipe: () => localChurn(count, true),
        bridge: () => session.run(churn(connection, count, false)),
        bridgePipe: () => session.run(churn(connection, count, true)),
        responder: () => session.run(churn(responder, count, false))
      }
      const warm = Math.max(5, count / 10)
      await localChurn(warm, true)
      await session.run(churn(connection, warm, false))
      await session.run(churn(connection, warm, true))
      await session.run(churn(responder, warm, false))
      const r = await interleave(options.rounds, variants)

      const ref = "local spawn + exit of /bin/true (no bridge)"
      const refPipe = "local spawn + exit of /bin/true, stdout pipe"
      const rows: Array<Measurement> = [
        rateRow(ref, "exec+wait/s", r.local, count, {
          note: "reference: child_process.spawn in this process, awaited one by one (its fork cost is host CPU here)"
        }),
        rateRow(refPipe, "exec+wait/s", r.localPipe, count, { note: "reference, stdout piped and drained" }),
        rateRow("exec + wait via runtime → our guest", "exec+wait/s", r.bridge, count, {
          reference: ref,
          note: `Go host: ≈ ${fmt(GoRate)}/s with ${GoCpu} µs host CPU per exec`
        }),
        rateRow("exec + wait via runtime → our guest, stdout pipe", "exec+wait/s", r.bridgePipe, count, {
          reference: refPipe,
          note: "stdout listener bound, accepted, drained to EOF, then the wait"
        }),
        rateRow("exec + wait via runtime → minimal responder", "exec+wait/s", r.responder, count, {
          note: "no process at all: the host's own cost of ExecuteProcess + WaitForProcess"
        })
      ]
      const bridge = rows[2]!
      const hostOnly = rows[4]!
      const bridgePipe = rows[3]!
      const met = bridge.cpuMicrosPerOp! <= GoCpu
      const notes: Array<string> = [
        `${count} exec + wait per round, one at a time, ${options.rounds} interleaved rounds. Each exec runs in ` +
          "its own Scope (listeners, connections and the process handle released before the next). Our guest " +
          "runs in its own process and spawns `/bin/true` with child_process; host CPU µs/op = process.cpuUsage " +
          "of the host process per exec. " +
          `Host transport: Transport.${engine === "native" ? "layer (native engine)" : "layerNode"}; guest the same.`,
        ...(why === undefined ? [] : [`The native engine is not available here: ${why}`]),
        "Target:\n\n" +
          `- host CPU per exec: ${fmt(bridge.cpuMicrosPerOp!)} µs without stdio, ${fmt(bridgePipe.cpuMicrosPerOp!)} µs ` +
          `with a stdout pipe, vs Go ${GoCpu} µs — ${met ? "met" : "missed"} (without stdio; the Go figure ` +
          `was also taken against a real guest). Against the minimal responder the host spends ` +
          `${fmt(hostOnly.cpuMicrosPerOp!)} µs per exec + wait: the rest is the host's share of waiting on a ` +
          "real process (more wake-ups, reads and timers per exec).",
        `External reference, not measured here: the Go host bridge against the genuine Linux GCS on another ` +
          `2-core machine did ≈ ${fmt(GoRate)} exec+wait/s with ${GoCpu} µs host CPU per exec.`
      ]
      if (!met && !options.quick) {
        const hot = await profile(() => session.run(churn(connection, count, false)))
        notes.push(renderProfile(`Profile of ${count} exec + wait without stdio`, hot))
      }
      return { suite: "churn", title: "Process churn: exec + wait of /bin/true", measurements: rows, notes }
    } finally {
      await session.close()
      await Promise.all(peers.map((p) => p.stop()))
      for (const p of peers) await checkPeer(p, "churn peer")
      dir.dispose()
    }
  }
}
