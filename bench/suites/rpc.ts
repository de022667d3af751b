/**
 * RPC suite (issue 6, benchmark 1): the round trip of a Start on the UVM (the
 * null container id, the cheapest RPC a guest really handles) through the
 * runtime's `GuestConnection`, one call in flight and 64 concurrent callers on
 * one connection, against the minimal responder (canned answers, no JSON: the
 * host's own cost) and against our guest; reference: a raw echo of the same
 * 123-byte frame over the same socket type, in the same run. Peers run in
 * processes of their own, so the CPU column is the host's alone.
 */
import { join } from "node:path"
import { hrtime } from "node:process"
import type { CallError, GuestConnectionService } from "@gcs-bridge/runtime"
import { GuestError } from "@gcs-bridge/runtime"
import { Effect } from "effect"
import { fmt, interleave, quantile, rateRow, valueRow } from "../lib/measure.js"
import { floorWhy, judge, NoProfile } from "../lib/targets.js"
import type { BenchSuite, Measurement } from "../lib/types.js"
import type { Round } from "../lib/measure.js"
import { hostSession, withHost, type HostSession } from "../support/hostSession.js"
import * as Handoff from "../support/handoff.js"
import { profile, profileGist, renderProfile } from "../support/profile.js"
import { rawEcho, rawExec, startPayload } from "../support/raw.js"
import { frame, Proc, requestType } from "../support/wire.js"

/** Exactly what the Go host sends for a Start on the UVM: 16 + 107 = 123 bytes. */
const startFrame = frame(requestType(Proc.Start), 1n, startPayload)

const Depth = 64

// Go host bridge of hcsshim against the genuine Linux guest (measured elsewhere, 2 cores).
// The Go host beside us: issue 10's side-by-side run (genuine Linux guest bridge, 7 interleaved rounds).
const GoSeqPerSecond = 8_760
const GoSeqCpu = 68
const GoParPerSecond = 49_750
const GoParCpu = 14

/** Issue 10's targets: host CPU µs per call (1 in flight, Depth callers), and the share of the batched raw echo. */
const TargetSeqCpu = 50
const TargetParCpu = 12
const TargetParShare = 0.5

type Start = Effect.Effect<void, CallError>

/**
 * The Start to time on a connection: as is when the peer answers it with
 * success; when the peer answers with a `GuestError` (our guest, see the
 * notes), that answered error round trip, the only one it offers.
 */
const startOf = async (
  session: HostSession,
  connection: GuestConnectionService
): Promise<{ readonly start: Start; readonly refused?: GuestError }> => {
  const uvm = await session.uvm(connection)
  const probe = await session.run(Effect.result(uvm.start))
  if (probe._tag === "Success") return { start: uvm.start }
  if (!(probe.failure instanceof GuestError)) throw probe.failure
  return { start: Effect.catchTag(uvm.start, "GuestError", () => Effect.void), refused: probe.failure }
}

/** `count` Starts one after the other, each one's latency in µs into `latencies`. */
const sequential = (start: Effect.Effect<void, unknown>, count: number, latencies: Float64Array) =>
  Effect.gen(function* () {
    for (let i = 0; i < count; i++) {
      const t0 = hrtime.bigint()
      yield* start
      latencies[i] = Number(hrtime.bigint() - t0) / 1000
    }
  })

/** `count` Starts from `Depth` concurrent callers sharing one connection. */
const concurrent = (start: Effect.Effect<void, unknown>, count: number) => {
  const share = Math.floor(count / Depth)
  const caller = (n: number) =>
    Effect.gen(function* () {
      for (let i = 0; i < n; i++) yield* start
    })
  return Effect.all(
    Array.from({ length: Depth }, (_, i) => caller(i === 0 ? count - share * (Depth - 1) : share)),
    { concurrency: "unbounded", discard: true }
  )
}

/** The RPC benchmark suite. */
export const suite: BenchSuite = {
  name: "rpc",
  run: (options) =>
    withHost("rpc", async (host) => {
      // Calls per timed round, per peer (1 in flight / Depth callers): enough for ≥ 0.2 s each at full size.
      const n = options.quick
        ? { raw: [500, 2000], responder: [300, 1000], guest: [200, 500] }
        : { raw: [20_000, 100_000], responder: [5_000, 20_000], guest: [3_000, 8_000] }
      const { session } = host
      const echo = await rawEcho(join(host.dir, "echo"), startFrame)
      host.defer(echo.close)
      // The same Starts from a bare net host to a responder of its own: Node's floor for the whole exchange.
      const barePath = join(host.dir, "bare")
      const bare = await rawExec(barePath, { kind: "responder", paths: [barePath], holdWaits: false })
      host.defer(bare.close)
      const responder = await startOf(session, await host.responder("resp"))
      if (responder.refused !== undefined)
        throw new Error(`the responder refused Start: ${responder.refused.message}`)
      // The same host over Node's net (Transport.layerNode), to tell the engine's share from the runtime's.
      const nodeSession = host.engine === "native" ? hostSession("node") : undefined
      if (nodeSession !== undefined) host.defer(nodeSession.close)
      const viaNode =
        nodeSession && (await startOf(nodeSession, await host.responder("resp-node", nodeSession))).start
      const guest = await startOf(session, await host.guest("guest"))

      const peers = {
        raw: "raw echo",
        responder: "runtime → responder",
        guest: "runtime → our guest"
      } as const
      type Peer = keyof typeof peers
      const latencies = new Float64Array(Math.max(n.raw[0]!, n.responder[0]!, n.guest[0]!))
      const percentiles: Record<Peer, Array<[number, number]>> = { raw: [], responder: [], guest: [] }
      const timedSeq = (peer: Peer, run: () => Promise<void>) => async () => {
        await run()
        const l = latencies.subarray(0, n[peer][0])
        percentiles[peer].push([quantile(l, 0.5), quantile(l, 0.99)])
      }
      const starts = { responder: responder.start, guest: guest.start }
      const variants: Record<string, () => Promise<void>> = {
        rawSeq: timedSeq("raw", () => echo.sequential(n.raw[0]!, latencies)),
        rawPar: () => echo.pipelined(n.raw[1]!, Depth, false),
        rawParBatched: () => echo.pipelined(n.raw[1]!, Depth, true),
        bareSeq: () => bare.starts(n.raw[0]!, 1),
        barePar: () => bare.starts(n.raw[1]!, Depth),
        fiberSeq: () => session.run(sequential(bare.start, n.raw[0]!, latencies)),
        fiberPar: () => session.run(concurrent(bare.start, n.raw[1]!)),
        ...Object.fromEntries(
          (["responder", "guest"] as const).flatMap((peer) => [
            [
              `${peer}Seq`,
              timedSeq(peer, () => session.run(sequential(starts[peer], n[peer][0]!, latencies)))
            ],
            [`${peer}Par`, () => session.run(concurrent(starts[peer], n[peer][1]!))]
          ])
        ),
        // Latencies of the layerNode variant are not reported (the rate and CPU rows are what it is for).
        ...(nodeSession === undefined || viaNode === undefined
          ? {}
          : {
              nodeSeq: () =>
                nodeSession.run(sequential(viaNode, n.responder[0]!, new Float64Array(n.responder[0]!))),
              nodePar: () => nodeSession.run(concurrent(viaNode, n.responder[1]!))
            })
      }
      // One untimed pass warms the JIT everywhere; its percentiles are dropped.
      for (const run of Object.values(variants)) await run()
      for (const list of Object.values(percentiles)) list.length = 0
      // Rows at one in flight run in an interleave of their own, then the rows with 64 in flight. Interleaved
      // together, the runtime's row at one in flight came right after the bare host's 100,000 pipelined calls and
      // paid for them: 45.8-47.1 µs per Start against 37.3-41.3 for the layerNode row placed after a lighter one;
      // apart, 39.4 against 37.3 (rpc suite alone, alternating runs, three rounds each).
      const group = (sequential: boolean) =>
        Object.fromEntries(Object.entries(variants).filter(([key]) => key.endsWith("Seq") === sequential))
      const sockets = {
        ...(await interleave(options.rounds, group(true))),
        ...(await interleave(options.rounds, group(false)))
      }
      // The in-process hand-offs run in an interleave of their own afterwards. Run just before the runtime rows, their
      // 100,000 Effect calls per round with no I/O made the next row dearer: 49-57 µs per Start at 1 in flight against
      // the responder, 42-45 µs with them apart (three suite runs each; 41-45 µs in a process of its own). No host
      // runs such a loop between its calls.
      const handoffs = await interleave(
        options.rounds,
        {
          handoffQueue: () => Effect.runPromise(Handoff.viaQueue(n.raw[1]!)),
          handoffFlush: () => Effect.runPromise(Handoff.viaMicrotask(n.raw[1]!))
        },
        1
      )
      const r: Record<string, ReadonlyArray<Round>> = { ...sockets, ...handoffs }

      const seqRef = "raw echo, 1 in flight"
      const handoffRef = "call → writer hand-off, Effect Queue"
      const parRef = `raw echo, ${Depth} in flight`
      const parBatchedRef = `raw echo, ${Depth} in flight, batched writes`
      const bareSeqName = "bare net host → responder, Start, 1 in flight"
      const bareParName = `bare net host → responder, Start, ${Depth} in flight`
      const fiberSeqName = "bare Effect host → responder, Start, 1 in flight"
      const fiberParName = `bare Effect host → responder, Start, ${Depth} callers`
      const seqName = (via: string) => `Start via ${via}, 1 in flight`
      const parName = (via: string) => `Start via ${via}, ${Depth} callers`
      const calls = (name: string, key: string, count: number, extra: Partial<Measurement>) =>
        rateRow(name, "calls/s", r[key]!, count, extra)
      // A floor's two rows, 1 in flight and Depth at once, over the raw echo's counts.
      const floorRows = (
        key: string,
        [seq, par]: readonly [string, string],
        [seqNote, parNote]: readonly [string, string]
      ) => [
        calls(seq, `${key}Seq`, n.raw[0]!, { reference: seqRef, note: seqNote }),
        calls(par, `${key}Par`, n.raw[1]!, { reference: parBatchedRef, note: parNote })
      ]
      const rows: Array<Measurement> = [
        rateRow(seqRef, "round trips/s", r["rawSeq"]!, n.raw[0]!, {
          note: "reference: 123-byte frame, net socket both ends, echo peer process"
        }),
        rateRow(parRef, "round trips/s", r["rawPar"]!, n.raw[1]!, {
          note: "reference: window refilled as frames return, one write (syscall) per frame"
        }),
        rateRow(parBatchedRef, "round trips/s", r["rawParBatched"]!, n.raw[1]!, {
          note: "reference: frames returned by one read replaced by one write"
        }),
        ...floorRows(
          "bare",
          [bareSeqName, bareParName],
          [
            "floor of the whole exchange: the Start frame from a template, one JSON.parse per answer",
            "the same; the Starts replacing the answers of one read go out in one write"
          ]
        ),
        ...floorRows(
          "fiber",
          [fiberSeqName, fiberParName],
          [
            "the bare net host's Starts made by the runtime rows' callers: each an Effect.callback, no protocol work",
            `the same, from the runtime rows' ${Depth} caller fibers: the floor of a host whose calls are fibers`
          ]
        ),
        calls(seqName("runtime → responder"), "responderSeq", n.responder[0]!, {
          reference: seqRef,
          note: `Go host: ≈ ${fmt(GoSeqPerSecond)}/s, ${GoSeqCpu} µs CPU/call (vs genuine guest)`
        }),
        calls(parName("runtime → responder"), "responderPar", n.responder[1]!, {
          reference: parBatchedRef,
          note: `Go host: ≈ ${fmt(GoParPerSecond)}/s, ${GoParCpu} µs CPU/call`
        }),
        ...(r["nodeSeq"] === undefined
          ? []
          : [
              calls(seqName("runtime over layerNode → responder"), "nodeSeq", n.responder[0]!, {
                reference: seqRef,
                note: "same, host transport Transport.layerNode (node net) instead of the native engine"
              }),
              calls(parName("runtime over layerNode → responder"), "nodePar", n.responder[1]!, {
                reference: parRef
              })
            ]),
        calls(seqName("runtime → our guest"), "guestSeq", n.guest[0]!, {
          reference: seqRef,
          note: "guest in its own process"
        }),
        calls(parName("runtime → our guest"), "guestPar", n.guest[1]!, { reference: parRef }),
        rateRow(handoffRef, "hand-offs/s", r["handoffQueue"]!, n.raw[1]!, {
          note: "reference: Effect Queue offerUnsafe → takeAll, the taker woken by the scheduler (no I/O)"
        }),
        rateRow("call → writer hand-off, microtask flush", "hand-offs/s", r["handoffFlush"]!, n.raw[1]!, {
          reference: handoffRef,
          note: "the bridge's writer: why it is hand-made (bench/support/handoff.ts)"
        })
      ]
      for (const peer of ["raw", "responder", "guest"] as const) {
        for (const [i, p] of [
          [0, "p50"],
          [1, "p99"]
        ] as const) {
          rows.push(
            valueRow(
              `${peers[peer]}, 1 in flight: ${p} latency`,
              "µs",
              percentiles[peer].map((x) => x[i]),
              peer === "raw" ? {} : { reference: `raw echo, 1 in flight: ${p} latency` }
            )
          )
        }
      }

      const get = (name: string) => rows.find((m) => m.name === name)!
      const seq = get(seqName("runtime → responder"))
      const par = get(parName("runtime → responder"))
      const [rawSeq, rawPar, rawBatched] = [get(seqRef), get(parRef), get(parBatchedRef)]
      const cpu = (m: Measurement) => m.cpuMicrosPerOp!
      const parShare = par.median / rawBatched.median
      const barePar = get(bareParName)
      const bareShare = barePar.median / rawBatched.median
      const fiberPar = get(fiberParName)
      const fiberShare = fiberPar.median / rawBatched.median
      const notes: Array<string> = [
        `Rounds: ${options.rounds}, interleaved (the rows at 1 in flight among themselves, then those with ${Depth} in ` +
          `flight, so that no row at 1 in flight runs right after a pipelined one); calls per round: raw ${n.raw.join(" / ")}, ` +
          `responder ${n.responder.join(" / ")}, guest ${n.guest.join(" / ")} (1 in flight / ${Depth} callers). ` +
          `${host.engine === "native" ? "Host transport: Transport.layer (native engine)" : "Host transport: Transport.layerNode"} ` +
          "on AF_UNIX in a private 0700 directory; the raw echo uses node `net` on AF_UNIX. " +
          "Host CPU µs/op = process.cpuUsage (user+system) of the host process per call; the peers (echo, " +
          "responder, guest) are separate processes and not counted. For the raw echo it is the cost of a bare " +
          "net socket round trip in Node.",
        "API note: the runtime has no public UVM-level Start; the figure goes through " +
          "`GuestConnection.openContainer(NullGuid).start`, whose request is byte-for-byte the Go host's 123-byte " +
          "Start on the null container. The handle is kept in a scope closed after the connection, because " +
          "closing an open container's scope sends ShutdownForced, which on the null container powers the UVM off.",
        `Hand-off rows: ${fmt(n.raw[1]!)} calls per round, in process, no I/O, in rounds of their own after the ` +
          "socket rows (run among them, they made the runtime row after them dearer); each call is queued for a consumer " +
          "fiber that completes it at once, one call after the other. This is the bridge's caller → writer step. " +
          "Effect's Queue wakes its taker with the scheduler (setImmediate: one more event-loop turn per call on " +
          "a live connection) and keeps a fiber waiting per connection; the bridge queues into an array flushed " +
          "in a microtask on a fiber that ends with the write, so calls made in one synchronous run still " +
          "leave in one write.",
        ...(host.why === undefined
          ? []
          : [
              `The native engine is not available here, so Transport.layerNode carries the host and the guest: ${host.why}`
            ]),
        ...(guest.refused === undefined
          ? []
          : [
              `Our guest answers Start on the null container with ${guest.refused.message} ` +
                `(HRESULT 0x${guest.refused.hresult.toString(16)}), where the Linux GCS answers success (a no-op, ` +
                "GCS-PROTOCOL §8.2): the ‘our guest’ rows time that answered error round trip (a 250-byte " +
                "response with ErrorRecords, decoded into a GuestError on the host)."
            ]),
        `Two raw references at ${Depth} in flight: one write (one syscall) per returning frame, the shape of a ` +
          "client that answers each frame as it is parsed (the Go reference's 266,000/s is of that order), and " +
          "one write per read, replacing every frame a read brought back at once (what a batching writer " +
          "achieves at best). The target is stated against both.",
        "Ratios in the ‘vs reference’ column are rate vs rate (or latency vs latency); latency percentiles are " +
          "per round (nearest rank over every call of the round), median over rounds.",
        "The targets (on top of the report) are judged against the minimal responder, so that no guest work " +
          "is in the host CPU; their floor is the raw echo: a bare node net socket doing the same 123-byte round trip. " +
          "The bare net host rows do the whole exchange against a responder of their own (the Start frame from a " +
          "template with its id, one JSON.parse per answer, no Schema, no fiber): what Node costs for it. The bare " +
          "Effect host rows send those same frames on the same socket, but each Start is an `Effect.callback` made " +
          "by the callers of the runtime rows (the same loops, the same fibers) and resumed by the read handler: " +
          "what a host whose calls are fibers costs before any protocol work.",
        `External reference, not measured here: the Go host bridge of hcsshim against the genuine Linux GCS over ` +
          `Unix sockets on another 2-core machine did ≈ ${fmt(GoSeqPerSecond)} calls/s with ${GoSeqCpu} µs host CPU ` +
          `per call at 1 in flight and ≈ ${fmt(GoParPerSecond)} calls/s with ${GoParCpu} µs at ${Depth} in flight ` +
          "(hybrid-vsock Unix sockets, 7 interleaved rounds)."
      ]
      const missed = cpu(seq) > TargetSeqCpu || cpu(par) > TargetParCpu || parShare < TargetParShare
      const gists: { seq?: string; par?: string } = {}
      if (missed && !options.quick) {
        const [seqCount, parCount] = n.responder
        const hotSeq = await profile(() => session.run(sequential(responder.start, seqCount!, latencies)))
        notes.push(renderProfile(`Profile of ${seqCount} Starts, 1 in flight, against the responder`, hotSeq))
        const hotPar = await profile(() => session.run(concurrent(responder.start, parCount!)))
        notes.push(
          renderProfile(`Profile of ${parCount} Starts, ${Depth} callers, against the responder`, hotPar)
        )
        gists.seq = profileGist("Host profile (this run)", hotSeq)
        gists.par = profileGist("Host profile (this run)", hotPar)
      }
      const cpuTarget = (
        what: string,
        m: Measurement,
        limit: number,
        floor: Measurement,
        goCpu: number,
        goRate: number,
        gist: string | undefined
      ) =>
        judge({
          target: `Start RPC, ${what}: host CPU ≤ ${limit} µs per call`,
          value: cpu(m),
          limit,
          unit: "µs",
          ours: `${fmt(cpu(m))} µs (${fmt(m.median)}/s)`,
          reference: `floor ${fmt(cpu(floor))} µs (${floor.name})`,
          go: `${goCpu} µs (${fmt(goRate)}/s)`,
          why: () =>
            floorWhy({
              ours: cpu(m),
              floor: cpu(floor),
              limit,
              unit: "µs",
              floorName: `a bare node net socket (${floor.name})`,
              profile: gist
            })
        })
      const targets = [
        cpuTarget("1 in flight", seq, TargetSeqCpu, rawSeq, GoSeqCpu, GoSeqPerSecond, gists.seq),
        cpuTarget(`${Depth} callers`, par, TargetParCpu, rawBatched, GoParCpu, GoParPerSecond, gists.par),
        judge({
          target: `Start RPC, ${Depth} callers: throughput ≥ ${TargetParShare * 100} % of the raw echo with batched writes`,
          value: parShare * 100,
          limit: TargetParShare * 100,
          unit: "%",
          atLeast: true,
          ours: `${fmt(par.median)}/s (${(parShare * 100).toFixed(1)} %)`,
          reference:
            `${fmt(rawBatched.median)}/s (${rawBatched.name}); ${fmt(rawPar.median)}/s one write per frame; ` +
            `${fmt(barePar.median)}/s (${(bareShare * 100).toFixed(0)} %) for a bare net host doing the same Starts; ` +
            `${fmt(fiberPar.median)}/s (${(fiberShare * 100).toFixed(0)} %) when ${Depth} fibers make them`,
          go: `${fmt(GoParPerSecond)}/s`,
          why: () =>
            `At ${fmt(par.median)} calls/s × ${fmt(cpu(par))} µs the host's thread was busy ` +
            `${((par.median * cpu(par)) / 1e4).toFixed(0)} % of a core: ` +
            (par.median * cpu(par) > 0.8e6
              ? "the rate is bound by the host's CPU per call (the target above), while the raw echo spends " +
                `${fmt(cpu(rawBatched))} µs per round trip.`
              : "the host was not saturated; the rest is the round trip through the responder's process on the " +
                "shared cores.") +
            ` Node's floor for the same exchange: a bare net host sending the same Starts to a responder of its ` +
            `own reached ${fmt(barePar.median)}/s (${(bareShare * 100).toFixed(0)} % of the batched echo) with ` +
            `${fmt(cpu(barePar))} µs of host CPU per call` +
            (bareShare >= TargetParShare
              ? "."
              : barePar.median * cpu(barePar) > 0.8e6
                ? ", itself under the target, bound by its own CPU per call."
                : ", itself under the target with its thread not saturated: the responder's process, one frame " +
                  "scan and one answer per call, is the ceiling there.") +
            ` The same Starts made by the runtime rows' ${Depth} caller fibers, each an \`Effect.callback\` resumed ` +
            `by the read handler (no Schema, no bridge), reached ${fmt(fiberPar.median)}/s ` +
            `(${(fiberShare * 100).toFixed(0)} %) with ${fmt(cpu(fiberPar))} µs per call: what a fiber per call ` +
            `costs in Effect ${fiberShare >= TargetParShare ? "leaves the target in reach" : "already puts the target out of reach"}; ` +
            `ours is ${fmt(cpu(par) - cpu(fiberPar))} µs per call above it.` +
            ` ${gists.par ?? NoProfile}`
        })
      ]
      return { suite: "rpc", title: "RPC: Start on the UVM, round trip", measurements: rows, notes, targets }
    })
}
