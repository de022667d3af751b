/**
 * Stdio suite (issue 6, benchmark 2): 1 GiB through the stdout relay
 * (`dd if=/dev/zero bs=64K count=16384` run by our guest, read by the host
 * from `Process.stdout`) and through the stdin relay (written by the host into
 * `Process.stdin`, counted by `wc -c` in the guest); reference: a raw AF_UNIX
 * stream of the same size in 64 KiB writes, both directions, same run. The
 * guest and the raw peer are processes of their own: the CPU figures are the
 * host's alone.
 */
import { join } from "node:path"
import type { GuestConnectionService } from "@gcs-bridge/runtime"
import { Chunk, Effect, Stream } from "effect"
import { interleave } from "../lib/measure.js"
import type { BenchSuite, Measurement, SuiteOptions } from "../lib/types.js"
import { profile, readProfile, renderProfile, type ProfileSummary } from "../support/cpuProfile.js"
import { hostSession, pickEngine, type Engine } from "../support/hostSession.js"
import { checkPeer, socketDir, startPeer, type PeerProcess } from "../support/peerProcess.js"
import { rawStream, type RawStream } from "../support/rawStream.js"
import { fmt, throughputRow } from "../support/rows.js"

const ChunkSize = 64 * 1024

// Go host bridge of hcsshim against the genuine Linux guest (measured elsewhere, 2 cores).
const GoStdout = 3_800
const GoStdin = 4_400

const sizeOf = (options: SuiteOptions): number => (options.quick ? 16 << 20 : 1 << 30)

/**
 * `dd` in the guest writes `bytes` to stdout; the host drains `Process.stdout`
 * and waits for the exit. Gives the number of bytes that never arrived: a
 * short stream is reported (see the notes), a failed `dd` is fatal.
 */
const stdoutRelay = (connection: GuestConnectionService, bytes: number): Effect.Effect<number, unknown> =>
  Effect.scoped(
    Effect.gen(function* () {
      const process = yield* connection.exec({
        CommandArgs: ["dd", "if=/dev/zero", `bs=${ChunkSize}`, `count=${bytes / ChunkSize}`],
        CreateStdOutPipe: true
      })
      const received = yield* Stream.runFold(process.stdout, 0, (n, chunk) => n + chunk.length)
      const code = yield* process.wait
      if (code !== 0 || received > bytes) {
        return yield* Effect.dieMessage(`stdout relay: ${received} of ${bytes} bytes, exit code ${code}`)
      }
      return bytes - received
    })
  )

/** The host writes `bytes` into `Process.stdin` of `wc -c` in the guest and reads its count back. */
const stdinRelay = (connection: GuestConnectionService, bytes: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const process = yield* connection.exec({
        CommandArgs: ["wc", "-c"],
        CreateStdInPipe: true,
        CreateStdOutPipe: true
      })
      const block = new Uint8Array(ChunkSize)
      // One 64 KiB chunk per element, as a Node Readable piped into a Stream gives them.
      const input = Stream.range(1, bytes / ChunkSize, 1).pipe(Stream.map(() => block))
      const write = Effect.zipRight(Stream.run(input, process.stdin), process.closeStdin)
      const read = Stream.runCollect(process.stdout)
      const [, output] = yield* Effect.all([write, read], { concurrency: 2 })
      const code = yield* process.wait
      const text = Buffer.concat(Chunk.toReadonlyArray(output)).toString("utf8").trim()
      if (Number(text) !== bytes || code !== 0) {
        return yield* Effect.dieMessage(`stdin relay: wc -c counted '${text}' of ${bytes}, exit code ${code}`)
      }
    })
  )

/**
 * Where our guest's time goes during `scenario`: a guest of its own started
 * with `--cpu-prof`, served one connection, its profile read once it exited.
 */
const profileGuest = async (
  engine: Engine,
  path: string,
  scenario: (connection: GuestConnectionService) => Effect.Effect<void, unknown>
): Promise<ProfileSummary> => {
  const profileDir = socketDir("prof")
  const session = hostSession(engine)
  const peer = startPeer("guestPeer", { path, engine }, ["--cpu-prof", `--cpu-prof-dir=${profileDir.path}`])
  try {
    const connection = await session.connect(path)
    await session.run(scenario(connection))
    await session.close()
    await peer.stop(10_000)
    await checkPeer(peer, "profiled guest")
    return readProfile(profileDir.path)
  } finally {
    await session.close()
    await peer.stop()
    profileDir.dispose()
  }
}

/** Which side's single thread limits a relay, from the busy shares of the two profiles. */
const bottleneck = (stream: string, host: ProfileSummary, guest: ProfileSummary): string =>
  `Where the ${stream} relay is limited: the host's JS thread was busy ${host.busyPercent.toFixed(0)} % of the ` +
  `relay and our guest's ${guest.busyPercent.toFixed(0)} % (two cores are shared by the host, the guest and ` +
  `the process at the other end of the pipe). ${
    guest.busyPercent > host.busyPercent * 2
      ? "The guest's one thread, moving every 64 KiB chunk between a pipe and a socket, is the ceiling: the " +
        "host waits for it. The host's own cost per GiB is in the table."
      : "Neither side is saturated: the relay is limited by the hand-offs between them."
  }`

/** The stdio benchmark suite. */
export const suite: BenchSuite = {
  name: "stdio",
  run: async (options) => {
    const bytes = sizeOf(options)
    const dir = socketDir("stdio")
    const { engine, why } = await pickEngine(dir.path)
    const session = hostSession(engine)
    const peers: Array<PeerProcess> = []
    let raw: RawStream | undefined
    try {
      raw = await rawStream(join(dir.path, "raw"))
      const guestPath = join(dir.path, "guest")
      peers.push(startPeer("guestPeer", { path: guestPath, engine }))
      const connection = await session.connect(guestPath)
      const stream = raw
      // Bytes missing from each stdout round that came up short (see the notes).
      const shortRounds: Array<number> = []
      const variants = {
        rawOut: () => stream.receive(bytes),
        rawIn: () => stream.send(bytes),
        stdout: async () => {
          const lost = await session.run(stdoutRelay(connection, bytes))
          if (lost > 0) shortRounds.push(lost)
        },
        stdin: () => session.run(stdinRelay(connection, bytes))
      }
      // One untimed pass (a sixteenth of the size) warms the JIT on every path.
      const warm = Math.max(ChunkSize, bytes / 16)
      await stream.receive(warm)
      await stream.send(warm)
      await session.run(stdoutRelay(connection, warm))
      await session.run(stdinRelay(connection, warm))
      const r = await interleave(options.rounds, variants)

      const outRef = "raw AF_UNIX stream, peer → host"
      const inRef = "raw AF_UNIX stream, host → peer"
      const rows: Array<Measurement> = [
        throughputRow(outRef, r.rawOut, bytes, {
          note: "reference: node net, 64 KiB writes, peer process writes"
        }),
        throughputRow(inRef, r.rawIn, bytes, {
          note: "reference: node net, 64 KiB writes, peer process counts"
        }),
        throughputRow("stdout relay: dd in guest → Process.stdout", r.stdout, bytes, {
          reference: outRef,
          note: `target ≥ 90 % of reference; Go host: ≈ ${fmt(GoStdout)} MB/s`
        }),
        throughputRow("stdin relay: Process.stdin → wc -c in guest", r.stdin, bytes, {
          reference: inRef,
          note: `target ≥ 90 % of reference; Go host: ≈ ${fmt(GoStdin)} MB/s`
        })
      ]
      const get = (name: string) => rows.find((m) => m.name === name)!
      const outShare = get("stdout relay: dd in guest → Process.stdout").median / get(outRef).median
      const inShare = get("stdin relay: Process.stdin → wc -c in guest").median / get(inRef).median
      const notes: Array<string> = [
        `${bytes >= 1 << 30 ? `${bytes / 2 ** 30} GiB` : `${bytes / 2 ** 20} MiB`} per round, ${options.rounds} ` +
          "interleaved rounds; MB/s = 10^6 bytes/s of wall time, each round timed from the exec (listeners bound, " +
          "process started) to the exit status. Host CPU µs/op is per 64 KiB moved (s/GiB in the note): " +
          "process.cpuUsage of the host process only; our guest (which runs `dd` / `wc -c` and relays their pipes " +
          "to the sockets) and the raw peer are separate processes. " +
          `Host transport: Transport.${engine === "native" ? "layer (native engine)" : "layerNode"}; guest the same; ` +
          "the raw reference uses node `net` at both ends.",
        ...(why === undefined ? [] : [`The native engine is not available here: ${why}`]),
        ...(shortRounds.length === 0
          ? []
          : [
              `**Data loss: ${shortRounds.length} of ${options.rounds} timed stdout rounds came up short ` +
                `(${shortRounds.map((n) => `${n} bytes`).join(", ")} missing of ${bytes}), with \`dd\` exiting 0.** ` +
                "The cause is in our guest (packages/guest/src/internal/stdio.ts, `pull`/`fromReadable`): it reads " +
                "the child's stdout in paused mode and attaches its 'readable' listener only while waiting; when " +
                "the child exits between two reads, Node's ChildProcess calls `stream.resume()` on its stdio " +
                "(`flushStdio`), which puts the pipe into flowing mode with no 'data' listener, and the bytes still " +
                "buffered are dropped. A 'readable' listener kept attached for the stream's whole life makes that " +
                "resume() a no-op. The timing of a short round is kept (the relay did move its bytes at that pace)."
            ]),
        "Targets:\n\n" +
          [
            `stdout relay at ${(outShare * 100).toFixed(0)} % of the raw stream (target ≥ 90 %) — ${outShare >= 0.9 ? "met" : "missed"}`,
            `stdin relay at ${(inShare * 100).toFixed(0)} % of the raw stream (target ≥ 90 %) — ${inShare >= 0.9 ? "met" : "missed"}`
          ]
            .map((v) => `- ${v}`)
            .join("\n"),
        `External reference, not measured here: the Go host bridge against the genuine Linux GCS over Unix sockets ` +
          `on another 2-core machine relayed stdout at ≈ ${fmt(GoStdout)} MB/s and stdin into \`wc -c\` at ≈ ` +
          `${fmt(GoStdin)} MB/s, with a raw stream reference of 4,500-4,800 MB/s there.`
      ]
      if (!options.quick) {
        const part = bytes / 4
        const size = `${part / 2 ** 20} MiB`
        const sizeLabel = `${bytes / 2 ** 20} MiB`
        if (outShare < 0.9) {
          const hot = await profile(() => session.run(Effect.asVoid(stdoutRelay(connection, part))))
          notes.push(renderProfile(`Host profile of a ${size} stdout relay`, hot))
          const guestHot = await profileGuest(engine, join(dir.path, "pg-out"), (c) =>
            Effect.asVoid(stdoutRelay(c, bytes))
          )
          notes.push(
            renderProfile(
              `Guest profile of a whole ${sizeLabel} stdout relay (our guest's process, start-up included)`,
              guestHot
            ),
            bottleneck("stdout", hot, guestHot)
          )
        }
        if (inShare < 0.9) {
          const hot = await profile(() => session.run(stdinRelay(connection, part)))
          notes.push(renderProfile(`Host profile of a ${size} stdin relay`, hot))
          const guestHot = await profileGuest(engine, join(dir.path, "pg-in"), (c) => stdinRelay(c, bytes))
          notes.push(
            renderProfile(
              `Guest profile of a whole ${sizeLabel} stdin relay (our guest's process, start-up included)`,
              guestHot
            ),
            bottleneck("stdin", hot, guestHot)
          )
        }
      }
      return { suite: "stdio", title: "Stdio relay throughput (1 GiB)", measurements: rows, notes }
    } finally {
      await raw?.close()
      await session.close()
      await Promise.all(peers.map((p) => p.stop()))
      for (const p of peers) await checkPeer(p, "stdio peer")
      dir.dispose()
    }
  }
}
